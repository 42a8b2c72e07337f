//! Where `ocni serve` writes its log: standard error, through a buffer that the async workers
//! fill and empty whenever they have nothing else to do.
//!
//! Writing each request's log line straight to stderr cost a `write` system call per request
//! (a sixth of a GET's time on one core, with stderr on a file). A line logged on an async worker
//! (every request's `done` line is) is appended to a shared buffer instead; the buffer is written
//! out when a worker is about to park (`tokio::runtime::Builder::on_thread_park`, see
//! [`LogWriter::flush_buffered`]), or when it holds [`FLUSH_AT`] bytes. A line logged on any other
//! thread (start-up, the writer thread, a blocking task that runs long) first writes out what is
//! buffered, then itself, at once, so lines keep their order and none waits on an idle server.
//! What stays buffered is lost only if the process dies without unwinding (a signal, an abort).
//!
//! When stderr is not a terminal (a file, a pipe, a journal: how a server runs), lines are
//! formatted by [`PlainFormat`] and [`PlainFields`]: tracing-subscriber's default text without
//! its colour machinery, which took a tenth of a GET's time on one core. The line every request
//! ends with (`done method=.. path=.. status=.. latency_us=..`) is then written by
//! [`request_done`] directly, the same text without the subscriber's dispatch, field visitors
//! and `fmt` machinery: through tracing it was 3.6% of a GET's time on one core (`perf record`,
//! `ocni serve` pinned to one core under `wrk -c64`), about a seventh of ocni's own part of it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The buffer is written out when it holds this much.
pub const FLUSH_AT: usize = 64 << 10;

static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

thread_local! {
    /// Whether this thread is an async worker (it has parked at least once): its lines are
    /// buffered.
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

/// The `MakeWriter` of the log (stderr, buffered on async workers).
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl LogWriter {
    /// For `on_thread_park`: marks this thread as an async worker and writes out what is
    /// buffered.
    pub fn flush_buffered() {
        WORKER.with(|w| w.set(true));
        let mut buf = BUFFER.lock();
        write_out(&mut buf);
    }
}

fn write_out(buf: &mut Vec<u8>) {
    if !buf.is_empty() {
        // Nowhere to report a failed log write: like `eprintln!` without the panic.
        let _ = io::stderr().lock().write_all(buf);
        buf.clear();
    }
}

impl Write for LogWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut buf = BUFFER.lock();
        if WORKER.with(Cell::get) {
            buf.extend_from_slice(line);
            if buf.len() >= FLUSH_AT {
                write_out(&mut buf);
            }
        } else {
            write_out(&mut buf);
            io::stderr().lock().write_all(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

/// The line format of `ocni serve` on anything but a terminal: the text of tracing-subscriber's
/// default format (`Full`) with colours off, `2026-12-06T02:40:00.123456Z  INFO span{fields}:
/// target: message fields`, written with a few `write_str` calls instead of the default format's
/// styled pieces (each a `Display` through `fmt::write`, even when its style is empty). The
/// fields are formatted by the subscriber's field formatter, as the default format does.
pub struct PlainFormat;

impl<S, N> FormatEvent<S, N> for PlainFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        // RFC 3339 in UTC with microseconds, as tracing-subscriber's `SystemTime` writes it.
        let mut stamp = [0; STAMP_LEN];
        writer.write_str(timestamp(SystemTime::now(), &mut stamp))?;
        writer.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    writer.write_char('{')?;
                    writer.write_str(fields)?;
                    writer.write_char('}')?;
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// Length of an RFC 3339 time in UTC with microseconds (`2026-12-06T02:40:00.123456Z`).
const STAMP_LEN: usize = 27;

thread_local! {
    /// The whole second last formatted on this thread, and its text up to the `.`.
    static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
}

/// `now` as RFC 3339 in UTC with microseconds, as `humantime::format_rfc3339_micros` writes it
/// (and tracing-subscriber's default timer), into `out`. The date and time of day are formatted
/// once per second per thread; within a second only the microseconds are.
fn timestamp(now: SystemTime, out: &mut [u8; STAMP_LEN]) -> &str {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != secs {
        let whole = humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string();
        // `2026-12-06T02:40:00Z`: 20 bytes for any year 1970-9999.
        match whole.as_bytes().get(..19) {
            Some(head) if whole.len() == 20 => {
                prefix[..19].copy_from_slice(head);
                prefix[19] = b'.';
                SECOND.set((secs, prefix));
            }
            // Beyond year 9999: humantime's own text, uncached.
            _ => return fallback(now, out),
        }
    }
    out[..20].copy_from_slice(&prefix);
    let mut micros = since.subsec_micros();
    for i in (20..26).rev() {
        out[i] = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out[26] = b'Z';
    std::str::from_utf8(out).unwrap_or_default()
}

#[cold]
fn fallback(now: SystemTime, out: &mut [u8; STAMP_LEN]) -> &str {
    let text = humantime::format_rfc3339_micros(now).to_string();
    let n = text.len().min(STAMP_LEN);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    std::str::from_utf8(&out[..n]).unwrap_or_default()
}

/// Whether [`request_done`] may write lines: the subscriber of `ocni serve` formats with
/// [`PlainFormat`] into [`LogWriter`] (see [`use_plain_format`]).
static PLAIN: AtomicBool = AtomicBool::new(false);

/// Says that the installed subscriber writes [`PlainFormat`] lines with [`PlainFields`] to
/// [`LogWriter`]: from then on [`request_done`] writes its line itself.
pub fn use_plain_format() {
    PLAIN.store(true, Ordering::Relaxed);
}

thread_local! {
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The line a request ends with, as `tracing::info!(%method, %path, status, latency_us, "done")`
/// logged from `target` formats it with [`PlainFormat`], written to [`LogWriter`]; `false` (and
/// nothing written) when the subscriber is not that one (see [`use_plain_format`]). The caller
/// checks that the level is enabled; `method` and `path` are written as they are (an HTTP method
/// and a request path are visible ASCII: nothing to escape).
pub fn request_done(target: &str, method: &str, path: &str, status: u16, latency_us: u64) -> bool {
    if !PLAIN.load(Ordering::Relaxed) {
        return false;
    }
    LINE.with_borrow_mut(|line| {
        line.clear();
        done_line(line, SystemTime::now(), target, method, path, status, latency_us);
        // Nowhere to report a failed log write (as tracing-subscriber's writer does).
        let _ = LogWriter.write_all(line);
    });
    true
}

/// The text of [`request_done`]'s line at `now`, appended to `line`.
fn done_line(
    line: &mut Vec<u8>,
    now: SystemTime,
    target: &str,
    method: &str,
    path: &str,
    status: u16,
    latency_us: u64,
) {
    let mut stamp = [0; STAMP_LEN];
    line.extend_from_slice(timestamp(now, &mut stamp).as_bytes());
    for piece in ["  INFO ", target, ": done method=", method, " path=", path, " status="] {
        line.extend_from_slice(piece.as_bytes());
    }
    line.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    line.extend_from_slice(b" latency_us=");
    line.extend_from_slice(itoa::Buffer::new().format(latency_us).as_bytes());
    line.push(b'\n');
}

/// The field format that goes with [`PlainFormat`]: tracing-subscriber's default field text
/// (`name=value`, separated by spaces; strings quoted, `%` values as `Display` writes them),
/// without its styling of each name; messages and errors (which it escapes and expands) are
/// left to the default visitor.
pub struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> PlainVisitor<'a> {
        PlainVisitor { writer, is_empty: true, result: Ok(()) }
    }
}

/// See [`PlainFields`].
pub struct PlainVisitor<'a> {
    writer: Writer<'a>,
    /// Nothing written yet (no space before the next field).
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Has the default visitor record one field, after what was written before.
    fn default(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut v = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut v);
        self.result = v.finish();
        self.is_empty = false;
    }

    /// `name=` and the value (`text` when given, else its `Debug` form), as the default visitor
    /// writes an ordinary field; the fields it treats apart (a bare message, raw identifiers,
    /// log metadata) it writes itself.
    fn field(&mut self, field: &Field, text: Option<&str>, value: &dyn fmt::Debug) {
        let name = field.name();
        if name == "message" || name.starts_with("r#") || name.starts_with("log.") {
            return self.default(|v| v.record_debug(field, value));
        }
        if self.result.is_err() {
            return;
        }
        let pad = if self.is_empty { "" } else { " " };
        self.is_empty = false;
        self.result = (|| {
            self.writer.write_str(pad)?;
            self.writer.write_str(name)?;
            self.writer.write_char('=')?;
            match text {
                Some(t) => self.writer.write_str(t),
                None => write!(self.writer, "{value:?}"),
            }
        })();
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, Some(itoa::Buffer::new().format(value)), &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, Some(itoa::Buffer::new().format(value)), &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, Some(if value { "true" } else { "false" }), &value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            // Written as text, not quoted: the default visitor's own case.
            return self.default(|v| v.record_str(field, value));
        }
        self.field(field, None, &value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.default(|v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, None, value);
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use tracing_subscriber::fmt::format::FmtSpan;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    /// Events of every level, in nested spans and none, with fields of every kind.
    fn events() {
        #[derive(Debug)]
        struct Failure;
        impl std::fmt::Display for Failure {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("disk full")
            }
        }
        impl std::error::Error for Failure {}
        tracing::info!(address = %"127.0.0.1:8080", mode = "local", "ocni serving");
        let request = tracing::info_span!("request", method = %"POST", path = %"/compute/");
        let _r = request.enter();
        tracing::warn!(status = 503u16, latency_us = 1234u64, ok = false, "done");
        let inner = tracing::debug_span!("write", tenant = "alpha", n = -3i64);
        let _i = inner.enter();
        tracing::error!(error = &Failure as &(dyn std::error::Error + 'static), ratio = 0.5, "a batch failed");
        tracing::debug!(bytes = ?[1u8, 2], "message with \"quotes\" and \u{1b}[31m escapes");
        tracing::trace!("only a message");
        let empty = tracing::info_span!("empty");
        let _e = empty.enter();
        tracing::info!(target: "ocni::audit", tenant = "beta", operation = %"PUT", status = 201u16, "write");
        tracing::info!(r#type = 7u64, big = u64::MAX, small = i64::MIN, yes = true, last = "x");
        tracing::info!(message = 42u64, count = 1u64);
        tracing::info!(message = "a message given as a str", quoted = "tab\there \"q\"", shown = %"a b", dbg = ?Some(1));
    }

    /// The lines `events` logs with `format` (the default format when `None`), timestamps cut
    /// off; and the timestamps.
    fn lines(plain: bool) -> (Vec<String>, Vec<String>) {
        let out = Capture::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .with_span_events(FmtSpan::NONE);
        if plain {
            tracing::subscriber::with_default(
                builder.event_format(PlainFormat).fmt_fields(PlainFields).finish(),
                events,
            );
        } else {
            tracing::subscriber::with_default(builder.finish(), events);
        }
        let text = String::from_utf8(out.0.lock().clone()).unwrap();
        text.lines().map(|l| l.split_once(' ').map(|(t, rest)| (rest.to_string(), t.to_string())).unwrap()).unzip()
    }

    #[test]
    fn the_plain_format_writes_what_the_default_format_writes_without_colours() {
        let (plain, times) = lines(true);
        let (full, _) = lines(false);
        assert_eq!(plain.len(), 9, "{plain:#?}");
        assert_eq!(plain, full);
        for t in times {
            assert!(humantime::parse_rfc3339(&t).is_ok(), "{t:?} is an RFC 3339 time");
            assert_eq!(t.len(), "2026-12-06T02:40:00.123456Z".len(), "{t:?} has microseconds");
        }
    }

    #[test]
    fn timestamps_are_humantimes_text_within_a_second_and_across_seconds() {
        let base = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        // Within one second, across seconds, minutes, days, a leap day, backwards, the epoch.
        let mut times: Vec<SystemTime> = (0..5000u64).map(|i| base + Duration::from_micros(i * 997)).collect();
        times.extend((0..400u64).map(|i| base + Duration::from_secs(i * 86_399 + i % 7)));
        times.extend([UNIX_EPOCH, base, UNIX_EPOCH + Duration::from_nanos(1_709_164_800_000_999_999)]);
        times.push(UNIX_EPOCH + Duration::from_secs(253_402_300_799) + Duration::from_micros(999_999));
        for &t in times.iter().chain(times.iter().rev()) {
            let mut out = [0; STAMP_LEN];
            assert_eq!(timestamp(t, &mut out), humantime::format_rfc3339_micros(t).to_string(), "{t:?}");
        }
    }

    /// What `tracing::info!(%method, %path, status, latency_us, "done")` writes with the plain
    /// format, timestamp cut off.
    fn traced_done(method: &str, path: &str, status: u16, latency_us: u64) -> String {
        let out = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .event_format(PlainFormat)
            .fmt_fields(PlainFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(method = %method, path = %path, status, latency_us, "done");
        });
        let text = String::from_utf8(out.0.lock().clone()).unwrap();
        text.split_once(' ').unwrap().1.to_string()
    }

    #[test]
    fn the_done_line_is_the_traced_line() {
        let now = SystemTime::now();
        for (method, path, status, latency) in [
            ("GET", "/compute/one", 200, 57u64),
            ("DELETE", "/", 404, 0),
            ("POST", "/compute/?action=start", 503, u64::MAX),
            ("PROPFIND", "/%7E/a%20b/", 405, 1_000_000),
        ] {
            let mut line = Vec::new();
            done_line(&mut line, now, module_path!(), method, path, status, latency);
            let line = String::from_utf8(line).unwrap();
            let (stamp, rest) = line.split_once(' ').unwrap();
            assert_eq!(stamp, humantime::format_rfc3339_micros(now).to_string());
            assert_eq!(rest, traced_done(method, path, status, latency));
        }
    }

    #[test]
    fn request_done_leaves_other_subscribers_to_tracing() {
        // `use_plain_format` is never called in these tests: another subscriber may be installed.
        assert!(!request_done(module_path!(), "GET", "/", 200, 1));
    }

    #[test]
    fn worker_lines_wait_for_a_park_and_others_write_them_out_first() {
        let worker = std::thread::spawn(|| {
            LogWriter::flush_buffered();
            LogWriter.write_all(b"from a worker\n").unwrap();
            BUFFER.lock().len()
        });
        assert_eq!(worker.join().unwrap(), b"from a worker\n".len(), "a worker's line is buffered");
        // Another thread's line writes out the buffer, then itself.
        LogWriter.write_all(b"from elsewhere\n").unwrap();
        assert!(BUFFER.lock().is_empty());
    }
}
