//! Handler logs for their authors ([`HandlerLogs`]): the recent log lines and failures of each
//! handler of each tenant, in a bounded ring per handler, kept in this node's memory, for
//! `GET /-/handlers/{name}/log`. The operator's log (`tracing`) gets every line too.
//!
//! A ring holds at most `max_lines` lines and `max_bytes` bytes (message and fields); the oldest
//! go first and are counted. A line longer than [`MAX_LINE_BYTES`] is cut. Rings are not stored:
//! a restart (or another node) starts empty. A deleted handler's ring goes with it; a new upload
//! under the same name starts empty; a replacement keeps the ring and notes the new digest.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use ocni_runtime::LogLevel;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// The longest message (fields included) kept in a ring; longer ones are cut, saying so.
pub const MAX_LINE_BYTES: usize = 4096;

/// One line of a handler's log.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub time: SystemTime,
    pub level: LogLevel,
    /// Where it came from: `guest` (a `log` call), `host` (a failure, a limit, a refusal of
    /// the host: what the host says about the call).
    pub source: &'static str,
    /// The entity the call was about, if any.
    pub entity: Option<String>,
    /// The operation of the request (`create`, `update`, `delete`, `action`), if any.
    pub operation: Option<&'static str>,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl LogLine {
    /// A line the host writes about the handler (not about one call).
    pub fn host(level: LogLevel, message: String) -> LogLine {
        LogLine {
            time: SystemTime::now(),
            level,
            source: "host",
            entity: None,
            operation: None,
            message,
            fields: Vec::new(),
        }
    }

    fn size(&self) -> usize {
        self.fields.iter().fold(self.message.len(), |n, (k, v)| n + k.len() + v.len())
    }

    /// Cuts the message (then the fields) so that the line holds at most [`MAX_LINE_BYTES`].
    fn bounded(mut self) -> LogLine {
        let size = self.size();
        if size <= MAX_LINE_BYTES {
            return self;
        }
        let mut room = MAX_LINE_BYTES;
        let cut = |s: &mut String, room: &mut usize| {
            if s.len() > *room {
                let mut end = *room;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
            }
            *room -= s.len();
        };
        cut(&mut self.message, &mut room);
        self.fields.retain_mut(|(k, v)| {
            if k.len() > room {
                return false;
            }
            room -= k.len();
            cut(v, &mut room);
            true
        });
        self.fields.push(("cut_bytes".into(), (size - self.size()).to_string()));
        self
    }

    pub fn level_name(&self) -> &'static str {
        level_name(self.level)
    }

    /// The JSON rendering: `{"time", "level", "source", "entity"?, "operation"?, "message", "fields"}`.
    pub fn json(&self) -> Value {
        let mut v = json!({
            "time": humantime::format_rfc3339_millis(self.time).to_string(),
            "level": self.level_name(),
            "source": self.source,
        });
        if let Some(e) = &self.entity {
            v["entity"] = json!(e);
        }
        if let Some(op) = self.operation {
            v["operation"] = json!(op);
        }
        v["message"] = json!(self.message);
        v["fields"] = Value::Object(self.fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
        v
    }

    /// The text rendering: one line, `TIME LEVEL source [operation entity] message k="v"...`,
    /// line breaks in the message escaped.
    pub fn text(&self) -> String {
        let mut line = format!(
            "{} {:5} {}",
            humantime::format_rfc3339_millis(self.time),
            self.level_name().to_ascii_uppercase(),
            self.source
        );
        if let Some(op) = self.operation {
            line.push(' ');
            line.push_str(op);
        }
        if let Some(e) = &self.entity {
            line.push(' ');
            line.push_str(e);
        }
        line.push_str(": ");
        line.push_str(&self.message.escape_debug().to_string());
        for (k, v) in &self.fields {
            line.push_str(&format!(" {k}={v:?}"));
        }
        line
    }
}

pub fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    bytes: usize,
    /// Lines that left the ring to make room, since it was created.
    evicted: u64,
}

/// The rings of every handler of every tenant on this node.
pub struct HandlerLogs {
    rings: Mutex<HashMap<(String, String), Ring>>,
    max_lines: usize,
    max_bytes: usize,
}

impl HandlerLogs {
    pub fn new(max_lines: usize, max_bytes: usize) -> HandlerLogs {
        HandlerLogs { rings: Mutex::default(), max_lines: max_lines.max(1), max_bytes: max_bytes.max(MAX_LINE_BYTES) }
    }

    /// Appends a line to the ring of `tenant`'s `handler`, dropping the oldest to make room.
    pub fn push(&self, tenant: &str, handler: &str, line: LogLine) {
        let line = line.bounded();
        let size = line.size();
        let mut rings = self.rings.lock();
        let ring = rings.entry((tenant.to_string(), handler.to_string())).or_default();
        while !ring.lines.is_empty() && (ring.lines.len() >= self.max_lines || ring.bytes + size > self.max_bytes) {
            let old = ring.lines.pop_front().expect("not empty");
            ring.bytes -= old.size();
            ring.evicted += 1;
        }
        ring.bytes += size;
        ring.lines.push_back(line);
    }

    /// The lines of a handler's ring, oldest first, and how many left it to make room.
    pub fn lines(&self, tenant: &str, handler: &str) -> (Vec<LogLine>, u64) {
        let rings = self.rings.lock();
        match rings.get(&(tenant.to_string(), handler.to_string())) {
            Some(ring) => (ring.lines.iter().cloned().collect(), ring.evicted),
            None => (Vec::new(), 0),
        }
    }

    /// Drops the ring of a handler (deleted, or uploaded anew under a name that was free).
    pub fn forget(&self, tenant: &str, handler: &str) {
        self.rings.lock().remove(&(tenant.to_string(), handler.to_string()));
    }

    /// Drops every ring of a tenant (deleted).
    pub fn forget_tenant(&self, tenant: &str) {
        self.rings.lock().retain(|(t, _), _| t != tenant);
    }

    /// The bounds: (lines, bytes) per handler.
    pub fn bounds(&self) -> (usize, usize) {
        (self.max_lines, self.max_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> LogLine {
        LogLine {
            time: SystemTime::UNIX_EPOCH,
            level: LogLevel::Info,
            source: "guest",
            entity: Some("/compute/a".into()),
            operation: Some("create"),
            message: message.into(),
            fields: vec![("k".into(), "v".into())],
        }
    }

    #[test]
    fn rings_keep_the_newest_lines_within_both_bounds() {
        let logs = HandlerLogs::new(3, MAX_LINE_BYTES);
        for i in 0..5 {
            logs.push("t", "h", line(&format!("line {i}")));
        }
        let (lines, evicted) = logs.lines("t", "h");
        let messages: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["line 2", "line 3", "line 4"]);
        assert_eq!(evicted, 2);
        // Another tenant's handler of the same name has its own (empty) ring.
        assert!(logs.lines("u", "h").0.is_empty());

        // Bytes: two lines of 3000 bytes do not fit in 4096.
        let logs = HandlerLogs::new(100, MAX_LINE_BYTES);
        logs.push("t", "h", line(&"a".repeat(3000)));
        logs.push("t", "h", line(&"b".repeat(3000)));
        let (lines, evicted) = logs.lines("t", "h");
        assert_eq!((lines.len(), evicted), (1, 1));
        assert!(lines[0].message.starts_with('b'));

        logs.forget("t", "h");
        let (lines, evicted) = logs.lines("t", "h");
        assert_eq!((lines.len(), evicted), (0, 0));
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary_and_say_so() {
        let logs = HandlerLogs::new(10, 1 << 20);
        logs.push("t", "h", line(&"é".repeat(5000)));
        let (lines, _) = logs.lines("t", "h");
        let l = &lines[0];
        assert!(l.size() <= MAX_LINE_BYTES + 32, "{}", l.size());
        assert!(l.fields.iter().any(|(k, _)| k == "cut_bytes"), "{:?}", l.fields);
        assert!(l.text().contains("cut_bytes="));
        assert_eq!(l.json()["level"], "info");
        assert_eq!(l.json()["time"], "1970-01-01T00:00:00.000Z");
    }
}
