//! The table-driven harness of the conformance tests (`tests/tests/conformance_*.rs`): a case is
//! a list of HTTP exchanges ([`Step`]), each with the status and the [`Check`]s its answer must
//! pass; [`run`] runs the cases of one table in order against one server and reports every
//! failing case at the end. Texts may use `{base}` (the server's `http://host:port`) and the
//! names a case captured (`.capture("loc")` keeps the path of a `Location` header).
//!
//! The two text renderings share one case list ([`text`]); a [`Rendering`] is the adapter that
//! puts a case's OCCI fields where that rendering carries them and checks the answer's shape.

pub mod text;

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::{COMPUTE, JSON, Reply, TestServer};

#[derive(Clone, Copy, Debug)]
pub enum Match {
    Eq,
    Prefix,
    Has,
}

impl Match {
    pub fn test(self, have: &str, want: &str) -> bool {
        match self {
            Match::Eq => have == want,
            Match::Prefix => have.starts_with(want),
            Match::Has => have.contains(want),
        }
    }
}

pub type CheckFn = Box<dyn Fn(&Reply) -> Result<(), String>>;

/// What an answer must show. Texts are filled in (`{base}`, captures) before they are compared.
pub enum Check {
    /// The body contains this text.
    Contains(String),
    /// The body does not contain this text.
    Lacks(String),
    /// The body has this line (trailing white space ignored).
    Line(String),
    /// An OCCI field (text/plain body lines, or text/occi headers; comma lists split) has a
    /// value that matches.
    Field(&'static str, Match, String),
    /// No value of the OCCI field matches.
    NoField(&'static str, Match, String),
    /// The OCCI field has this many values.
    FieldCount(&'static str, usize),
    /// An HTTP header has a value that matches.
    Header(&'static str, Match, String),
    /// The HTTP header appears this many times.
    HeaderCount(&'static str, usize),
    /// The Content-Type is this media type (parameters ignored).
    ContentType(&'static str),
    /// The body is JSON and the value at this JSON pointer equals this (types compared too;
    /// strings in it are filled in).
    Json(&'static str, Value),
    /// Anything else, described.
    Custom(&'static str, CheckFn),
}

/// One HTTP exchange.
pub struct Step {
    /// For a step of the text renderings ([`Rendering::req`]): where [`Step::occi`] puts the
    /// OCCI fields and how [`Step::has`] and [`Step::rendered`] read the answer.
    rendering: Option<Rendering>,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    /// Sent over a bare TCP connection without any Accept header (reqwest always adds one).
    no_accept: bool,
    /// The acceptable statuses.
    status: Vec<u16>,
    checks: Vec<Check>,
    capture: Option<&'static str>,
}

pub fn step(method: &'static str, path: &str) -> Step {
    Step {
        rendering: None,
        method,
        path: path.to_string(),
        headers: Vec::new(),
        body: None,
        no_accept: false,
        status: vec![200],
        checks: Vec::new(),
        capture: None,
    }
}

impl Step {
    pub fn h(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
    pub fn accept(self, a: &str) -> Self {
        self.h("Accept", a)
    }
    pub fn body(mut self, content_type: &str, body: &str) -> Self {
        self.body = Some(body.to_string());
        self.h("Content-Type", content_type)
    }
    pub fn plain(self, body: &str) -> Self {
        self.body("text/plain", body)
    }
    pub fn json_body(self, v: Value) -> Self {
        self.body(JSON, &v.to_string())
    }
    pub fn status(mut self, s: u16) -> Self {
        self.status = vec![s];
        self
    }
    pub fn status_in(mut self, s: &[u16]) -> Self {
        self.status = s.to_vec();
        self
    }
    pub fn no_accept(mut self) -> Self {
        self.no_accept = true;
        self
    }
    pub fn capture(mut self, name: &'static str) -> Self {
        self.capture = Some(name);
        self
    }
    pub fn check(mut self, c: Check) -> Self {
        self.checks.push(c);
        self
    }
    pub fn contains(self, s: &str) -> Self {
        self.check(Check::Contains(s.into()))
    }
    pub fn lacks(self, s: &str) -> Self {
        self.check(Check::Lacks(s.into()))
    }
    pub fn line(self, s: &str) -> Self {
        self.check(Check::Line(s.into()))
    }
    pub fn field(self, name: &'static str, m: Match, v: &str) -> Self {
        self.check(Check::Field(name, m, v.into()))
    }
    pub fn no_field(self, name: &'static str, m: Match, v: &str) -> Self {
        self.check(Check::NoField(name, m, v.into()))
    }
    pub fn field_count(self, name: &'static str, n: usize) -> Self {
        self.check(Check::FieldCount(name, n))
    }
    pub fn header(self, name: &'static str, m: Match, v: &str) -> Self {
        self.check(Check::Header(name, m, v.into()))
    }
    pub fn header_count(self, name: &'static str, n: usize) -> Self {
        self.check(Check::HeaderCount(name, n))
    }
    pub fn ctype(self, t: &'static str) -> Self {
        self.check(Check::ContentType(t))
    }
    pub fn json(self, pointer: &'static str, v: Value) -> Self {
        self.check(Check::Json(pointer, v))
    }
    pub fn custom(self, what: &'static str, f: impl Fn(&Reply) -> Result<(), String> + 'static) -> Self {
        self.check(Check::Custom(what, Box::new(f)))
    }
    /// The text rendering whose rules [`Step::occi`], [`Step::has`] and [`Step::rendered`]
    /// follow (steps made by [`Rendering::req`] have theirs already).
    pub fn in_rendering(mut self, r: Rendering) -> Self {
        self.rendering = Some(r);
        self
    }
    fn rendering(&self) -> Rendering {
        self.rendering.unwrap_or_else(|| panic!("{} {} is no step of a text rendering", self.method, self.path))
    }
    /// An OCCI field of the request (`Category`, `Link`, `X-OCCI-Attribute`, `X-OCCI-Location`):
    /// a `Name: value` line of the text/plain body, or a text/occi header. Repeat it for several.
    pub fn occi(mut self, name: &'static str, value: &str) -> Self {
        match self.rendering() {
            Rendering::TextPlain => {
                if self.body.is_none() {
                    self = self.body("text/plain", "");
                }
                let body = self.body.as_mut().expect("a text/plain body");
                body.push_str(&format!("{name}: {value}\n"));
                self
            }
            Rendering::TextOcci => self.h(name, value),
        }
    }
    /// text/plain: sends the fields given with [`Step::occi`] laid out as these body lines
    /// instead (continuation lines and the like, which headers cannot carry); text/occi: no change.
    pub fn plain_layout(mut self, body_lines: &[&str]) -> Self {
        if self.rendering() == Rendering::TextPlain {
            assert!(self.body.is_some(), "plain_layout lays out fields given with .occi(...) first");
            let mut body = body_lines.join("\n");
            body.push('\n');
            self.body = Some(body);
        }
        self
    }
    /// The answer has this OCCI field value: text/plain, the body line `Name: value`; text/occi,
    /// a value of the `Name` headers (comma lists split).
    pub fn has(self, name: &'static str, value: &str) -> Self {
        match self.rendering() {
            Rendering::TextPlain => self.line(&format!("{name}: {value}")),
            Rendering::TextOcci => self.field(name, Match::Eq, value),
        }
    }
    /// The answer is in this rendering: its Content-Type, and for text/occi the body `OK`
    /// (GFD.185 3.6.6 / GFD.229 7: the data is in the headers).
    pub fn rendered(self) -> Self {
        let r = self.rendering();
        let s = self.ctype(r.media_type());
        if r == Rendering::TextOcci { s.custom("body is OK", ok_body) } else { s }
    }
    /// GFD.229 7: a successful text/occi answer without data is Content-Type text/occi with the
    /// body `OK`. (text/plain has no such rule: such an answer may have no body at all.)
    pub fn occi_body_ok(self) -> Self {
        if self.rendering() == Rendering::TextOcci {
            self.ctype("text/occi").custom("body is OK", ok_body)
        } else {
            self
        }
    }
    /// A 400's message names the place of the error: text/plain, `line {line}` of the body;
    /// text/occi, the header (any case).
    pub fn names_place(self, line: usize, header: &'static str) -> Self {
        match self.rendering() {
            Rendering::TextPlain => self.contains(&format!("line {line}")),
            Rendering::TextOcci => self.custom("names the header", names_header(header)),
        }
    }
    /// `f` applies to this step only in rendering `r`: checks (or request details) that only
    /// one rendering has.
    pub fn when(self, r: Rendering, f: impl FnOnce(Step) -> Step) -> Self {
        if self.rendering() == r { f(self) } else { self }
    }
    /// A 405 whose `Allow` does not list PUT.
    pub fn allow_lacks_put(self) -> Self {
        self.custom("Allow lacks PUT", |r| match r.header("allow") {
            Some(a) if !a.split(',').any(|m| m.trim() == "PUT") => Ok(()),
            other => Err(format!("Allow {other:?}")),
        })
    }
}

/// The text renderings of OCCI: the same data as `Name: value` lines of a text/plain body
/// (GFD.185 3.6.6, GFD.229 6), or as HTTP headers of a text/occi message whose body is `OK`
/// (GFD.229 7). The adapter of the shared case list [`text`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendering {
    TextPlain,
    TextOcci,
}

impl Rendering {
    pub fn media_type(self) -> &'static str {
        match self {
            Rendering::TextPlain => "text/plain",
            Rendering::TextOcci => "text/occi",
        }
    }
    pub fn other(self) -> Rendering {
        match self {
            Rendering::TextPlain => Rendering::TextOcci,
            Rendering::TextOcci => Rendering::TextPlain,
        }
    }
    /// A request of this rendering: it accepts the rendering; its OCCI fields go in with
    /// [`Step::occi`]. A text/occi request other than GET and HEAD says `Content-Type: text/occi`
    /// even without fields (a text/plain one has a Content-Type only with a body).
    pub fn req(self, method: &'static str, path: &str) -> Step {
        let s = step(method, path).accept(self.media_type()).in_rendering(self);
        match self {
            Rendering::TextOcci if method != "GET" && method != "HEAD" => s.h("Content-Type", "text/occi"),
            _ => s,
        }
    }
    /// A GET answered in this rendering ([`Step::rendered`]).
    pub fn get(self, path: &str) -> Step {
        self.req("GET", path).rendered()
    }
}

/// GFD.185 3.6.6 / GFD.229 7: the body of a successful text/occi answer is the string OK (a
/// line end after it is allowed).
pub fn ok_body(r: &Reply) -> Result<(), String> {
    if r.text.trim_end_matches(['\r', '\n']) == "OK" { Ok(()) } else { Err(format!("body {:?}", r.text)) }
}

/// The message of an error answer names this header (any case).
pub fn names_header(header: &'static str) -> impl Fn(&Reply) -> Result<(), String> {
    move |r: &Reply| {
        if r.text.to_ascii_lowercase().contains(header) { Ok(()) } else { Err(format!("message {:?}", r.text)) }
    }
}

/// The first Category value (body line or header) is this kind.
pub fn kind_first(kind_ref: &'static str) -> impl Fn(&Reply) -> Result<(), String> {
    move |r: &Reply| match field_values(r, "Category").first() {
        Some(v) if v == kind_ref => Ok(()),
        other => Err(format!("first Category value {other:?}")),
    }
}

pub struct Case {
    name: &'static str,
    steps: Vec<Step>,
}

pub fn case(name: &'static str, steps: Vec<Step>) -> Case {
    Case { name, steps }
}

/// `{base}` and captured values.
pub struct Vars(HashMap<String, String>);

impl Vars {
    pub fn fill(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (k, v) in &self.0 {
            out = out.replace(&format!("{{{k}}}"), v);
        }
        out
    }
}

/// Splits a field value at commas outside quoted strings and `<...>` (RFC 2616 lists).
pub fn split_list(s: &str) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    for c in s.chars() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
        } else {
            match c {
                '"' => quoted = true,
                '<' => angle = true,
                '>' => angle = false,
                ',' if !angle => {
                    out.push(cur.trim().to_string());
                    cur.clear();
                    continue;
                }
                _ => {}
            }
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out.retain(|v| !v.is_empty());
    out
}

pub fn media_type(r: &Reply) -> String {
    r.header("content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The values of an OCCI field: HTTP headers for text/occi, `Name: value` body lines otherwise.
pub fn field_values(r: &Reply, name: &str) -> Vec<String> {
    let raw: Vec<String> = if media_type(r) == "text/occi" {
        r.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
    } else {
        r.text
            .lines()
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .collect()
    };
    raw.iter().flat_map(|v| split_list(v)).collect()
}

pub fn header_values(r: &Reply, name: &str) -> Vec<String> {
    r.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
}

pub fn parse_json(r: &Reply) -> Result<Value, String> {
    serde_json::from_str(&r.text).map_err(|e| format!("body is not JSON ({e})"))
}

pub fn verify(c: &Check, r: &Reply, vars: &Vars) -> Result<(), String> {
    match c {
        Check::Contains(s) => {
            let s = vars.fill(s);
            if r.text.contains(&s) { Ok(()) } else { Err(format!("body lacks {s:?}")) }
        }
        Check::Lacks(s) => {
            let s = vars.fill(s);
            if r.text.contains(&s) { Err(format!("body has {s:?}")) } else { Ok(()) }
        }
        Check::Line(s) => {
            let s = vars.fill(s);
            if r.text.lines().any(|l| l.trim_end() == s) { Ok(()) } else { Err(format!("no line {s:?}")) }
        }
        Check::Field(name, m, v) => {
            let v = vars.fill(v);
            let have = field_values(r, name);
            if have.iter().any(|h| m.test(h, &v)) {
                Ok(())
            } else {
                Err(format!("no {name} value {m:?} {v:?}; {name} values: {have:#?}"))
            }
        }
        Check::NoField(name, m, v) => {
            let v = vars.fill(v);
            match field_values(r, name).into_iter().find(|h| m.test(h, &v)) {
                Some(h) => Err(format!("unexpected {name} value {h:?} ({m:?} {v:?})")),
                None => Ok(()),
            }
        }
        Check::FieldCount(name, n) => {
            let have = field_values(r, name);
            if have.len() == *n {
                Ok(())
            } else {
                Err(format!("{} {name} values, expected {n}: {have:#?}", have.len()))
            }
        }
        Check::Header(name, m, v) => {
            let v = vars.fill(v);
            let have = header_values(r, name);
            if have.iter().any(|h| m.test(h, &v)) {
                Ok(())
            } else {
                Err(format!("no {name} header {m:?} {v:?}; {name} headers: {have:?}"))
            }
        }
        Check::HeaderCount(name, n) => {
            let have = header_values(r, name);
            if have.len() == *n {
                Ok(())
            } else {
                Err(format!("{} {name} headers, expected {n}: {have:?}", have.len()))
            }
        }
        Check::ContentType(t) => {
            if media_type(r) == *t {
                Ok(())
            } else {
                Err(format!("Content-Type {:?}, expected {t}", r.header("content-type")))
            }
        }
        Check::Json(pointer, want) => {
            let v = parse_json(r)?;
            let want: Value = serde_json::from_str(&vars.fill(&want.to_string())).expect("filled JSON");
            match v.pointer(pointer) {
                Some(have) if *have == want => Ok(()),
                have => Err(format!("JSON {pointer} is {have:?}, expected {want}")),
            }
        }
        Check::Custom(what, f) => f(r).map_err(|e| format!("{what}: {e}")),
    }
}

/// GET without an Accept header, over a bare connection.
pub async fn get_without_accept(server: &TestServer, path: &str) -> Result<Reply, String> {
    let addr = server.base.trim_start_matches("http://");
    crate::raw_request(server, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await
}

pub fn show(r: &Reply) -> String {
    let mut headers: Vec<String> = r
        .headers
        .iter()
        .filter(|(k, _)| k.as_str() != "date" && k.as_str() != "content-length")
        .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    headers.sort();
    let body: String = r.text.chars().take(2500).collect();
    format!("\n        headers: {headers:?}\n        body: {body}")
}

pub async fn run_step(client: &reqwest::Client, server: &TestServer, s: &Step, vars: &mut Vars) -> Result<(), String> {
    let path = vars.fill(&s.path);
    let reply = if s.no_accept {
        get_without_accept(server, &path).await?
    } else {
        let mut req = client.request(reqwest::Method::from_bytes(s.method.as_bytes()).unwrap(), server.url(&path));
        for (k, v) in &s.headers {
            req = req.header(*k, vars.fill(v));
        }
        if let Some(b) = &s.body {
            req = req.body(vars.fill(b));
        }
        let resp = req.send().await.map_err(|e| format!("request failed: {e}"))?;
        Reply::read(resp).await
    };
    if !s.status.contains(&reply.status) {
        return Err(format!("status {}, expected {:?}{}", reply.status, s.status, show(&reply)));
    }
    for c in &s.checks {
        verify(c, &reply, vars).map_err(|e| format!("{e}{}", show(&reply)))?;
    }
    if let Some(name) = s.capture {
        let loc = reply.header("location").ok_or_else(|| format!("no Location header to capture{}", show(&reply)))?;
        let path = loc.strip_prefix(&server.base).unwrap_or(loc).to_string();
        vars.0.insert(name.to_string(), path);
    }
    Ok(())
}

/// Runs the cases in order against one server and fails with the names of all failing ones.
pub async fn run(server: &TestServer, cases: Vec<Case>) {
    let client = reqwest::Client::new();
    let total = cases.len();
    let mut names = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case name {:?}", c.name);
        let mut vars = Vars(HashMap::from([("base".to_string(), server.base.clone())]));
        for (i, s) in c.steps.iter().enumerate() {
            if let Err(e) = run_step(&client, server, s, &mut vars).await {
                failures.push(format!("{}\n      step {} ({} {}): {e}", c.name, i + 1, s.method, vars.fill(&s.path)));
                break;
            }
        }
    }
    eprintln!("{} of {total} cases passed", total - failures.len());
    assert!(failures.is_empty(), "{} of {total} cases failed:\n  - {}\n", failures.len(), failures.join("\n  - "));
}

// ---------------------------------------------------------------------- shared spec helpers

pub use crate::COMPUTE_ACTION as ACTIONS;

pub const EX: &str = "http://example.com/occi/conformance#";

pub const INFRA: &str = "http://schemas.ogf.org/occi/infrastructure#";

pub fn compute_json(path: &str, attributes: Value) -> Step {
    put_json(path, json!({"kind": COMPUTE, "attributes": attributes}))
}

pub fn put_json(path: &str, v: Value) -> Step {
    step("PUT", path).accept(JSON).json_body(v).status(201)
}

pub const COMPUTE_REF: &str = r#"compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#;

pub const DUMMY_ID: &str = "b9ff813e-fee5-4a9d-b839-673f39746096";

/// Every X-OCCI-Location is an absolute URL.
pub fn absolute_locations(r: &Reply) -> Result<(), String> {
    for v in field_values(r, "X-OCCI-Location") {
        if !v.starts_with("http://") && !v.starts_with("https://") {
            return Err(format!("{v:?} is not an absolute URL"));
        }
    }
    Ok(())
}

/// Checks that every Category value keeps the GFD.185 3.5.1 ABNF: `term; scheme="..."; class=...`
/// then the optional parameters in the order title, rel, location, attributes, actions; kinds
/// and mixins with a relative location path ending in `/`; actions without location/actions.
pub fn category_abnf(r: &Reply) -> Result<(), String> {
    const ORDER: [&str; 7] = ["scheme", "class", "title", "rel", "location", "attributes", "actions"];
    let values = field_values(r, "Category");
    if values.is_empty() {
        return Err("no Category values".into());
    }
    for v in &values {
        let pieces: Vec<String> = split_params(v);
        let term = &pieces[0];
        if term.is_empty() || !term.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(format!("bad term in {v:?}"));
        }
        let mut last = None;
        let mut params = HashMap::new();
        for p in &pieces[1..] {
            let (k, val) = p.split_once('=').ok_or_else(|| format!("parameter {p:?} of {v:?} is not key=value"))?;
            let i =
                ORDER.iter().position(|o| *o == k.trim()).ok_or_else(|| format!("unknown parameter {k} in {v:?}"))?;
            if last.is_some_and(|l| l >= i) {
                return Err(format!("parameters out of the ABNF order in {v:?}"));
            }
            last = Some(i);
            params.insert(k.trim().to_string(), val.trim().to_string());
        }
        let scheme = params.get("scheme").ok_or_else(|| format!("no scheme in {v:?}"))?;
        if !(scheme.starts_with('"') && scheme.ends_with("#\"")) {
            return Err(format!("scheme is not a quoted URI ending in # in {v:?}"));
        }
        let class = params.get("class").ok_or_else(|| format!("no class in {v:?}"))?.trim_matches('"');
        match class {
            "kind" | "mixin" => {
                let loc = params.get("location").ok_or_else(|| format!("no location in {v:?}"))?;
                if !(loc.starts_with("\"/") && loc.ends_with("/\"")) {
                    return Err(format!("location is not a quoted path \"/.../\" in {v:?}"));
                }
            }
            "action" => {
                if params.contains_key("location") || params.contains_key("actions") {
                    return Err(format!("an action with location or actions: {v:?}"));
                }
            }
            other => return Err(format!("class {other:?} in {v:?}")),
        }
    }
    Ok(())
}

/// Splits at `;` outside quoted strings.
pub fn split_params(v: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in v.chars() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
        } else if c == '"' {
            quoted = true;
        } else if c == ';' {
            out.push(cur.trim().to_string());
            cur.clear();
            continue;
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out.retain(|p| !p.is_empty());
    out
}

/// The GFD.185 example's `occi.core.id` is echoed, with or without its `urn:uuid:` prefix.
pub fn dummy_id_echoed(r: &Reply) -> Result<(), String> {
    let want = [format!("\"urn:uuid:{DUMMY_ID}\""), format!("\"{DUMMY_ID}\"")];
    let have = field_values(r, "X-OCCI-Attribute");
    if have.iter().any(|v| want.iter().any(|w| *v == format!("occi.core.id={w}"))) {
        Ok(())
    } else {
        Err(format!("no occi.core.id={}: {have:?}", want[0]))
    }
}
