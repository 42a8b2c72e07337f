//! Request routing as a pure function: method, path and query in, a [`Route`] out. Whether a
//! collection path is a kind, a mixin or an unbound path is decided later, against the catalog
//! ([`allowed`] takes that answer and gives the methods the target allows).

use std::collections::HashMap;

use hyper::Method;
use ocni_model::Class;

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/-/` or `/.well-known/org/ogf/occi/-/`.
    QueryInterface,
    /// A path ending in `/`: a kind or mixin collection, or an unbound path.
    Collection(String),
    /// Any other path: one entity.
    Entity(String),
    /// `/-/handlers/` (`None`) or `/-/handlers/{name}`: uploaded WebAssembly handlers.
    Handlers(Option<String>),
    /// `/-/handlers/{name}/log`: a handler's recent log lines and failures.
    HandlerLog(String),
    /// `/-/jobs` or `/-/jobs/` (`None`), `/-/jobs/{id}`: the tenant's jobs.
    Jobs(Option<String>),
    /// `/-/admin/...`: the admin API (tenants, tokens, limits).
    Admin(AdminPath),
}

/// What a path under `/-/admin/` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminPath {
    /// `tenants`
    Tenants,
    /// `tenants/{name}`
    Tenant(String),
    /// `tenants/{name}/tokens`
    Tokens(String),
    /// `tenants/{name}/tokens/{id}`
    Token(String, String),
    /// `tenants/{name}/limits`
    Limits(String),
    /// Anything else (the path after `/-/admin/`): 404 once the admin is authenticated.
    Unknown(String),
}

impl AdminPath {
    fn parse(rest: &str) -> AdminPath {
        let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        let owned = |s: &str| s.to_string();
        match parts.as_slice() {
            ["tenants"] => AdminPath::Tenants,
            ["tenants", name] => AdminPath::Tenant(owned(name)),
            ["tenants", name, "tokens"] => AdminPath::Tokens(owned(name)),
            ["tenants", name, "tokens", id] => AdminPath::Token(owned(name), owned(id)),
            ["tenants", name, "limits"] => AdminPath::Limits(owned(name)),
            _ => AdminPath::Unknown(rest.to_string()),
        }
    }
}

/// A parsed request line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub target: Target,
    /// `?action=term`
    pub action: Option<String>,
    /// OCCI 1.2 pagination: `?page=N&number=M` (page counts from 1).
    pub page: Option<u64>,
    pub number: Option<u64>,
    /// `?continue=TOKEN`: the next page after the one whose `Link: rel="next"` gave the token
    /// (cursor paging; `number` may go with it, `page` may not).
    pub cursor: Option<String>,
    /// `?cascade=true` on DELETE of the query interface.
    pub cascade: bool,
    /// `?related=true` on GET of the query interface: a category filter selects the named
    /// categories with what they refer to and what refers to them (GFD.223 7.1's relatives),
    /// not only the named ones (GFD.185 3.4.1).
    pub related: bool,
    /// `?allow-outbound=ORIGIN,ORIGIN` on a handler upload: the origins it may send HTTP to.
    pub allow_outbound: Option<String>,
}

impl Route {
    /// Whether `method` on this route reads one entity (GET or HEAD, no action): served in
    /// place on the async worker, from the framed-answer cache, without a request span.
    pub fn reads_one_entity(&self, method: &Method) -> bool {
        matches!(*method, Method::GET | Method::HEAD)
            && matches!(self.target, Target::Entity(_))
            && self.action.is_none()
    }
}

/// Why a request line cannot be routed.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteError(pub String);

fn decode(s: &str) -> Result<String, RouteError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| RouteError(format!("{s:?} is not valid UTF-8 once percent-decoded")))
}

/// Parses the path and query of a request.
pub fn route(path: &str, query: Option<&str>) -> Result<Route, RouteError> {
    let path = decode(path)?;
    // Store keys join their parts with NUL, and text renderings are lines: no control character
    // may reach either.
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(RouteError(format!(
            "path {path:?} holds the control character U+{:04X}; paths and ids may not",
            c as u32
        )));
    }
    if !path.starts_with('/') {
        return Err(RouteError(format!("path {path:?} must start with '/'")));
    }
    if path.contains("//") || path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(RouteError(format!("path {path:?} has an empty, '.' or '..' segment")));
    }
    let mut params = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        params.insert(k.into_owned(), v.into_owned());
    }
    let number = |name: &str| -> Result<Option<u64>, RouteError> {
        params
            .get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| RouteError(format!("query parameter {name}={v:?} is not a whole number")))
            })
            .transpose()
    };
    let page = number("page")?;
    if page == Some(0) {
        return Err(RouteError("query parameter page counts from 1".into()));
    }
    let number_ = number("number")?;
    if number_ == Some(0) {
        return Err(RouteError("query parameter number must be at least 1".into()));
    }
    let cursor = match params.get("continue") {
        Some(c) if c.is_empty() => {
            return Err(RouteError("query parameter continue needs the token of a listing's Link rel=\"next\"".into()));
        }
        Some(_) if page.is_some() => {
            return Err(RouteError(
                "query parameters page and continue do not go together: page by one or the other".into(),
            ));
        }
        other => other.cloned(),
    };
    let flag = |name: &str| match params.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(other) => Err(RouteError(format!("query parameter {name}={other:?}: use true or false"))),
    };
    let cascade = flag("cascade")?;
    let related = flag("related")?;
    let action = match params.get("action") {
        Some(a) if a.is_empty() => return Err(RouteError("query parameter action needs an action term".into())),
        other => other.cloned(),
    };
    let target = if path == "/-/" || path == "/.well-known/org/ogf/occi/-/" {
        Target::QueryInterface
    } else if let Some(rest) = path.strip_prefix("/-/handlers/") {
        match rest {
            "" => Target::Handlers(None),
            name if !name.contains('/') => Target::Handlers(Some(name.to_string())),
            rest => match rest.strip_suffix("/log") {
                Some(name) if !name.contains('/') => Target::HandlerLog(name.to_string()),
                _ => return Err(RouteError(format!("{path:?}: handler names contain no '/'"))),
            },
        }
    } else if path == "/-/jobs" || path == "/-/jobs/" {
        Target::Jobs(None)
    } else if let Some(id) = path.strip_prefix("/-/jobs/") {
        match id.strip_suffix('/').unwrap_or(id) {
            id if !id.contains('/') => Target::Jobs(Some(id.to_string())),
            _ => return Err(RouteError(format!("{path:?}: job ids contain no '/'"))),
        }
    } else if let Some(rest) = path.strip_prefix("/-/admin/") {
        Target::Admin(AdminPath::parse(rest))
    } else if path.ends_with('/') {
        Target::Collection(path)
    } else {
        Target::Entity(path)
    };
    let allow_outbound = params.get("allow-outbound").cloned();
    Ok(Route { target, action, page, number: number_, cursor, cascade, related, allow_outbound })
}

/// The methods a target allows, and how a 405 names the target. Written once here: the check
/// made before a request body is read and the operations' own 405s use the same lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// The target, as a 405 message names it.
    pub what: &'static str,
    /// The `Allow` header: methods separated by ", ".
    pub methods: &'static str,
}

impl Allowed {
    pub const QUERY_INTERFACE: Allowed =
        Allowed { what: "the query interface", methods: "GET, HEAD, POST, PUT, DELETE" };
    pub const KIND_COLLECTION: Allowed = Allowed { what: "a kind collection", methods: "GET, HEAD, POST, DELETE" };
    pub const MIXIN_COLLECTION: Allowed =
        Allowed { what: "a mixin collection", methods: "GET, HEAD, POST, PUT, DELETE" };
    /// A path ending in `/` that is no kind or mixin location (other than `/`).
    pub const PATH: Allowed =
        Allowed { what: "a path that is no kind or mixin location", methods: "GET, HEAD, DELETE" };
    /// `/` when it is no kind or mixin location: POST there creates an entity (GFD.185 3.4.4).
    pub const ROOT: Allowed = Allowed { what: "the service root", methods: "GET, HEAD, POST, DELETE" };
    pub const ENTITY: Allowed = Allowed { what: "an entity", methods: "GET, HEAD, PUT, POST, DELETE" };
    pub const HANDLER_LIST: Allowed = Allowed { what: "the handler list", methods: "GET, HEAD" };
    pub const HANDLER: Allowed = Allowed { what: "a handler", methods: "GET, HEAD, PUT, DELETE" };
    pub const HANDLER_LOG: Allowed = Allowed { what: "a handler's log", methods: "GET, HEAD" };
    pub const JOB_LIST: Allowed = Allowed { what: "the job list", methods: "GET, HEAD" };
    pub const JOB: Allowed = Allowed { what: "a job", methods: "GET, HEAD" };
    pub const TENANTS: Allowed = Allowed { what: "the tenant list", methods: "GET, HEAD, POST" };
    pub const TENANT: Allowed = Allowed { what: "a tenant", methods: "GET, HEAD, DELETE" };
    pub const TOKENS: Allowed = Allowed { what: "a tenant's tokens", methods: "GET, HEAD, POST" };
    pub const TOKEN: Allowed = Allowed { what: "a token", methods: "DELETE" };
    pub const LIMITS: Allowed = Allowed { what: "a tenant's limits", methods: "GET, HEAD, PUT" };

    /// An unbound collection path: `/` or another.
    pub fn unbound(path: &str) -> Allowed {
        if path == "/" { Allowed::ROOT } else { Allowed::PATH }
    }

    pub fn allows(self, method: &Method) -> bool {
        self.methods.split(", ").any(|m| m == method.as_str())
    }
}

/// The methods `target` allows. `collection` is what the tenant's catalog says a collection
/// path is: the class of the kind or mixin at that location, or `None` (an unbound path).
/// `None` for an unknown admin path (404, whatever the method).
pub fn allowed(target: &Target, collection: Option<Class>) -> Option<Allowed> {
    Some(match target {
        Target::QueryInterface => Allowed::QUERY_INTERFACE,
        Target::Collection(path) => match collection {
            Some(Class::Kind) => Allowed::KIND_COLLECTION,
            Some(_) => Allowed::MIXIN_COLLECTION,
            None => Allowed::unbound(path),
        },
        Target::Entity(_) => Allowed::ENTITY,
        Target::Handlers(None) => Allowed::HANDLER_LIST,
        Target::Handlers(Some(_)) => Allowed::HANDLER,
        Target::HandlerLog(_) => Allowed::HANDLER_LOG,
        Target::Jobs(None) => Allowed::JOB_LIST,
        Target::Jobs(Some(_)) => Allowed::JOB,
        Target::Admin(path) => match path {
            AdminPath::Tenants => Allowed::TENANTS,
            AdminPath::Tenant(_) => Allowed::TENANT,
            AdminPath::Tokens(_) => Allowed::TOKENS,
            AdminPath::Token(..) => Allowed::TOKEN,
            AdminPath::Limits(_) => Allowed::LIMITS,
            AdminPath::Unknown(_) => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(route("/-/", None).unwrap().target, Target::QueryInterface);
        assert_eq!(route("/.well-known/org/ogf/occi/-/", None).unwrap().target, Target::QueryInterface);
        assert_eq!(route("/compute/", None).unwrap().target, Target::Collection("/compute/".into()));
        assert_eq!(route("/", None).unwrap().target, Target::Collection("/".into()));
        assert_eq!(route("/compute/a%20b", None).unwrap().target, Target::Entity("/compute/a b".into()));
        assert_eq!(route("/-/handlers/", None).unwrap().target, Target::Handlers(None));
        assert_eq!(route("/-/handlers/compute", None).unwrap().target, Target::Handlers(Some("compute".into())));
        assert!(route("/-/handlers/a/b", None).is_err());
        assert_eq!(route("/-/handlers/compute/log", None).unwrap().target, Target::HandlerLog("compute".into()));
        assert!(route("/-/handlers/a/b/log", None).is_err());
        assert_eq!(route("/-/jobs", None).unwrap().target, Target::Jobs(None));
        assert_eq!(route("/-/jobs/", None).unwrap().target, Target::Jobs(None));
        assert_eq!(route("/-/jobs/0192-ab", None).unwrap().target, Target::Jobs(Some("0192-ab".into())));
        assert!(route("/-/jobs/a/b", None).is_err());
        let admin = |p: &str| route(p, None).unwrap().target;
        assert_eq!(admin("/-/admin/tenants/a"), Target::Admin(AdminPath::Tenant("a".into())));
        assert_eq!(admin("/-/admin/tenants/"), Target::Admin(AdminPath::Tenants));
        assert_eq!(admin("/-/admin/tenants/a/tokens/0f"), Target::Admin(AdminPath::Token("a".into(), "0f".into())));
        assert_eq!(admin("/-/admin/tenants/a/limits"), Target::Admin(AdminPath::Limits("a".into())));
        assert_eq!(admin("/-/admin/tenants/a/b"), Target::Admin(AdminPath::Unknown("tenants/a/b".into())));
        let r = route("/compute/x", Some("action=start")).unwrap();
        assert_eq!(r.action.as_deref(), Some("start"));
    }

    #[test]
    fn bad_lines() {
        assert!(route("/a//b", None).is_err());
        assert!(route("/a/../b", None).is_err());
        assert!(route("/a/", Some("page=0")).is_err());
        assert!(route("/a/", Some("number=x")).is_err());
        assert!(route("/a/", Some("continue=")).is_err());
        assert!(route("/a/", Some("continue=abc&page=2")).is_err());
        assert_eq!(route("/a/", Some("continue=abc&number=3")).unwrap().cursor.as_deref(), Some("abc"));
        assert!(route("/a", Some("action=")).is_err());
        assert!(route("/a/", Some("cascade=maybe")).is_err());
        let r = route("/a/", Some("page=2&number=10&cascade=true")).unwrap();
        assert_eq!((r.page, r.number, r.cascade, r.related), (Some(2), Some(10), true, false));
    }

    #[test]
    fn related_is_a_flag() {
        assert!(route("/-/", Some("related=true")).unwrap().related);
        assert!(route("/-/", Some("related")).unwrap().related);
        assert!(!route("/-/", Some("related=false")).unwrap().related);
        assert!(!route("/-/", None).unwrap().related);
        let e = route("/-/", Some("related=yes")).unwrap_err();
        assert!(e.0.contains("related=\"yes\"") && e.0.contains("true or false"), "{}", e.0);
    }

    #[test]
    fn allowed_methods() {
        let t = |p: &str| route(p, None).unwrap().target;
        let allows = |a: Option<Allowed>, m: Method| a.unwrap().allows(&m);
        assert!(!allows(allowed(&t("/-/"), None), Method::PATCH));
        assert!(allows(allowed(&t("/-/"), None), Method::PUT));
        assert!(!allows(allowed(&t("/compute/"), Some(Class::Kind)), Method::PUT));
        assert!(allows(allowed(&t("/os_tpl/"), Some(Class::Mixin)), Method::PUT));
        assert!(!allows(allowed(&t("/nothing/"), None), Method::POST));
        assert!(allows(allowed(&t("/"), None), Method::POST));
        assert!(allows(allowed(&t("/compute/x"), None), Method::POST));
        assert!(!allows(allowed(&t("/compute/x"), None), Method::PATCH));
        assert!(!allows(allowed(&t("/-/handlers/"), None), Method::PUT));
        assert!(!allows(allowed(&t("/-/admin/tenants/a/tokens/0f"), None), Method::GET));
        assert_eq!(allowed(&t("/-/admin/nothing"), None), None);
        // A method name that only starts like an allowed one is not allowed.
        assert!(!allows(allowed(&t("/-/"), None), Method::from_bytes(b"GETX").unwrap()));
    }

    #[test]
    fn control_characters_in_paths_are_refused() {
        for path in ["/compute/a%00b", "/v%00/l/1", "/compute/%0D%0AX-OCCI-Attribute:x", "/p/%7F"] {
            let e = route(path, None).unwrap_err();
            assert!(e.0.contains("control character"), "{path}: {}", e.0);
        }
        assert!(route("/compute/a%20b", None).is_ok(), "a space is no control character");
    }
}
