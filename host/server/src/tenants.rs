//! Multi-tenant hosting: which mode the server is in, who a request is (tokens checked in constant
//! time), each tenant's limits and request rate, and the admin API under `/-/admin/`.
//!
//! *Local mode* (no admin token configured and no tenant in the store): every request is the
//! implicit tenant [`DEFAULT_TENANT`](crate::api::DEFAULT_TENANT), unauthenticated, with the
//! server's own limits only. *Multi-tenant mode* (an admin token, or tenants in the store): every
//! OCCI request needs `Authorization: Bearer <token>` of a tenant; nothing is served as an implicit
//! tenant.
//!
//! Tokens are `ocni_<id>_<secret>`: `id` is 8 random bytes in hex (public: the key for lookup,
//! listing and revocation), `secret` 32 random bytes in hex. The store keeps the SHA-256 of the
//! secret only; a presented secret is hashed and compared with [`subtle::ConstantTimeEq`]. The
//! admin token is compared the same way (SHA-256 of both sides). Tokens never reach a log.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use ocni_store::{Reads, Step, Store, TenantRecord, TokenRecord, Writer};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Config;
use crate::api::{App, Body, Reply, Request};
use crate::error::ApiError;
use ocni_model::{Catalog, Category};

type R<T> = Result<T, ApiError>;

/// Who an admin request is, in the audit log (not a valid tenant name).
pub const ADMIN: &str = "(admin)";
/// Who a request that was not authenticated is, in the audit log.
pub const NOBODY: &str = "(none)";
/// Shortest admin token accepted at start.
pub const MIN_ADMIN_TOKEN: usize = 16;

/// A secret held in memory (the admin token): `Debug` never shows it.
// No `PartialEq`: a plain `==` on a secret is not constant-time.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Checks an admin token read from a file or the environment: surrounding white space is
    /// dropped; empty or shorter than [`MIN_ADMIN_TOKEN`] characters is refused.
    pub fn admin_token(raw: &str) -> Result<Secret, String> {
        let token = raw.trim();
        if token.is_empty() {
            return Err("the admin token is empty".into());
        }
        if token.chars().count() < MIN_ADMIN_TOKEN {
            return Err(format!("the admin token is shorter than {MIN_ADMIN_TOKEN} characters"));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the admin token contains white space or control characters".into());
        }
        Ok(Secret(token.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Server-wide defaults of the per-tenant limits that have no server flag of their own (the
/// handler and body limits default to the server's `--handler-*`, `--max-handler-bytes` and
/// `--max-body`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantDefaults {
    pub max_entities: u64,
    pub max_categories: u64,
    pub max_category_attributes: u64,
    pub max_catalog_bytes: u64,
    pub max_handlers: u64,
    pub requests_per_second: u64,
}

impl Default for TenantDefaults {
    fn default() -> Self {
        TenantDefaults {
            max_entities: 100_000,
            max_categories: 1000,
            max_category_attributes: 256,
            max_catalog_bytes: 4 << 20,
            max_handlers: 32,
            requests_per_second: 1000,
        }
    }
}

/// The names of the limits, as in JSON and the store.
pub const LIMIT_NAMES: [&str; 10] = [
    "max_entities",
    "max_categories",
    "max_category_attributes",
    "max_catalog_bytes",
    "max_handlers",
    "max_handler_bytes",
    "handler_deadline_ms",
    "handler_memory_mib",
    "max_body_bytes",
    "requests_per_second",
];

/// A tenant's limits in effect: its own where set, the server's defaults elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_entities: u64,
    pub max_categories: u64,
    pub max_category_attributes: u64,
    pub max_catalog_bytes: u64,
    pub max_handlers: u64,
    pub max_handler_bytes: u64,
    pub handler_deadline_ms: u64,
    pub handler_memory_mib: u64,
    pub max_body_bytes: u64,
    pub requests_per_second: u64,
}

impl Limits {
    /// The defaults of a server.
    pub fn defaults(config: &Config) -> Limits {
        let d = &config.tenant_defaults;
        Limits {
            max_entities: d.max_entities,
            max_categories: d.max_categories,
            max_category_attributes: d.max_category_attributes,
            max_catalog_bytes: d.max_catalog_bytes,
            max_handlers: d.max_handlers,
            max_handler_bytes: config.runtime.max_component_bytes as u64,
            handler_deadline_ms: config.runtime.deadline.as_millis() as u64,
            handler_memory_mib: (config.runtime.max_memory_bytes >> 20) as u64,
            max_body_bytes: config.max_body as u64,
            requests_per_second: d.requests_per_second,
        }
    }

    /// The limits of a tenant with these values set. A stored value above what the server allows
    /// (its flags were lowered since) is lowered to it.
    pub fn of(set: &BTreeMap<String, u64>, config: &Config) -> Limits {
        let mut limits = Limits::defaults(config);
        for (name, value) in set {
            if let Some(slot) = limits.slot(name) {
                *slot = (*value).min(max_of(name, config));
            }
        }
        limits
    }

    fn slot(&mut self, name: &str) -> Option<&mut u64> {
        Some(match name {
            "max_entities" => &mut self.max_entities,
            "max_categories" => &mut self.max_categories,
            "max_category_attributes" => &mut self.max_category_attributes,
            "max_catalog_bytes" => &mut self.max_catalog_bytes,
            "max_handlers" => &mut self.max_handlers,
            "max_handler_bytes" => &mut self.max_handler_bytes,
            "handler_deadline_ms" => &mut self.handler_deadline_ms,
            "handler_memory_mib" => &mut self.handler_memory_mib,
            "max_body_bytes" => &mut self.max_body_bytes,
            "requests_per_second" => &mut self.requests_per_second,
            _ => return None,
        })
    }

    pub fn to_json(&self) -> Value {
        let mut copy = self.clone();
        let map: Map<String, Value> =
            LIMIT_NAMES.iter().map(|n| (n.to_string(), json!(*copy.slot(n).expect("known name")))).collect();
        Value::Object(map)
    }

    /// The handler limits of one call.
    pub fn call_limits(&self) -> ocni_runtime::CallLimits {
        ocni_runtime::CallLimits {
            deadline: Some(std::time::Duration::from_millis(self.handler_deadline_ms)),
            max_memory_bytes: Some(usize::try_from(self.handler_memory_mib << 20).unwrap_or(usize::MAX)),
        }
    }
}

/// The largest value a tenant may be given for a limit: the server's own for the handler and
/// body limits.
fn max_of(name: &str, config: &Config) -> u64 {
    match name {
        "max_handler_bytes" => config.runtime.max_component_bytes as u64,
        "handler_deadline_ms" => config.runtime.deadline.as_millis() as u64,
        "handler_memory_mib" => (config.runtime.max_memory_bytes >> 20) as u64,
        "max_body_bytes" => config.max_body as u64,
        "requests_per_second" => 1_000_000,
        _ => u64::MAX,
    }
}

/// Reads a limits object (`{"max_entities": 10, "max_handlers": null, ...}`): a number sets a
/// limit, `null` goes back to the server's default. Unknown names and values out of range are
/// refused.
pub fn parse_limits(v: &Value, config: &Config) -> R<BTreeMap<String, Option<u64>>> {
    let obj = v.as_object().ok_or_else(|| ApiError::bad("limits must be a JSON object"))?;
    let mut out = BTreeMap::new();
    for (name, value) in obj {
        if !LIMIT_NAMES.contains(&name.as_str()) {
            return Err(ApiError::bad(format!("unknown limit {name:?}; the limits are {}", LIMIT_NAMES.join(", "))));
        }
        let value = match value {
            Value::Null => None,
            v => Some(v.as_u64().ok_or_else(|| {
                ApiError::bad(format!("limit {name}: {v} is not a whole number (or null for the default)"))
            })?),
        };
        if let Some(n) = value {
            let min = if name.starts_with("max_") && !name.ends_with("bytes") { 0 } else { 1 };
            let max = max_of(name, config);
            if n < min || n > max {
                return Err(ApiError::bad(format!(
                    "limit {name}: {n} is out of range: {min} to {max}{}",
                    if max < u64::MAX && name != "requests_per_second" { " (this server's own limit)" } else { "" }
                )));
            }
        }
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// Tenant names: what fits in a URL segment, a store key and a log field.
pub fn check_tenant_name(name: &str) -> R<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "tenant name {name:?} is not valid: 1 to 64 of a-z, 0-9, '-', '_', starting with a letter or digit"
        )))
    }
}

// ---------------------------------------------------------------------- tokens

const TOKEN_PREFIX: &str = "ocni_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn random_hex(n: usize) -> R<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| ApiError::internal("no randomness for a token", e))?;
    Ok(hex(&buf))
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new token: (its record for the store, the token to show once).
fn new_token(tenant: &str) -> R<(TokenRecord, String)> {
    let id = random_hex(ID_BYTES)?;
    let secret = random_hex(SECRET_BYTES)?;
    let record = TokenRecord {
        id: id.clone(),
        tenant: tenant.to_string(),
        secret_sha256: hex(&sha256(&secret)),
        created: now(),
    };
    Ok((record, format!("{TOKEN_PREFIX}{id}_{secret}")))
}

/// `ocni_<id>_<secret>` split into its parts, if it has that form.
fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    (is_lower_hex(id, ID_BYTES * 2) && is_lower_hex(secret, SECRET_BYTES * 2)).then_some((id, secret))
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A tenant's tokens as the admin API lists them: ids and creation times, never a secret.
fn token_list(r: &ocni_store::Reader, tenant: &str) -> R<Vec<Value>> {
    Ok(r.tokens()?
        .into_iter()
        .filter(|t| t.tenant == tenant)
        .map(|t| json!({"id": t.id, "created": t.created}))
        .collect())
}

/// 401 for a request without credentials.
fn missing(realm: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "this server hosts several tenants: send Authorization: Bearer <token>")
        .with_header("WWW-Authenticate", format!("Bearer realm=\"{realm}\""))
}

/// 401 for credentials that are not valid; the same answer whatever was wrong with them.
fn invalid(realm: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message)
        .with_header("WWW-Authenticate", format!("Bearer realm=\"{realm}\", error=\"invalid_token\""))
}

const REALM: &str = "ocni";
const ADMIN_REALM: &str = "ocni-admin";
const MALFORMED: &str = "the Authorization header must be \"Bearer <token>\" with an ocni token (ocni_<id>_<secret>)";
const NOT_VALID: &str = "the token is not valid";

/// The token of an `Authorization: Bearer <token>` header. `Err(())` when there is a header
/// that is no bearer credential.
fn bearer(header: Option<&HeaderValue>) -> Result<Option<&str>, ()> {
    let Some(h) = header else { return Ok(None) };
    let h = h.to_str().map_err(|_| ())?;
    let (scheme, token) = h.trim().split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(());
    }
    let token = token.trim();
    if token.is_empty() { Err(()) } else { Ok(Some(token)) }
}

// ---------------------------------------------------------------------- in-memory state

/// A tenant as the request path sees it: its limits and its request-rate bucket.
#[derive(Debug)]
pub struct TenantState {
    pub name: String,
    pub limits: Limits,
    /// (tokens left, when last refilled): a token bucket of `requests_per_second` per second,
    /// holding at most one second's worth.
    bucket: Mutex<(f64, Instant)>,
}

impl TenantState {
    fn new(name: &str, limits: Limits) -> TenantState {
        let full = limits.requests_per_second as f64;
        TenantState { name: name.to_string(), limits, bucket: Mutex::new((full, Instant::now())) }
    }

    /// Takes one request from the bucket, or says when to retry (429).
    pub fn admit(&self) -> R<()> {
        let rate = self.limits.requests_per_second.max(1) as f64;
        let mut bucket = self.bucket.lock();
        let now = Instant::now();
        let (tokens, last) = *bucket;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * rate).min(rate);
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            return Ok(());
        }
        *bucket = (tokens, now);
        let wait = ((1.0 - tokens) / rate).ceil().max(1.0) as u64;
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "tenant {} is over its limit of {} requests per second; retry after {wait} s",
                self.name, self.limits.requests_per_second
            ),
        )
        .with_header("Retry-After", wait.to_string()))
    }
}

/// Who a request is: the tenant's name, and its state in multi-tenant mode (none in local mode).
pub type Tenant = (String, Option<Arc<TenantState>>);

/// The tenancy of a server: its mode, the admin token's hash, and caches of the tokens and
/// tenants in the store (changed only by the admin API, after its transaction committed).
pub struct Tenancy {
    multi: bool,
    admin: Option<[u8; 32]>,
    /// token id -> (tenant, SHA-256 of the secret)
    tokens: RwLock<HashMap<String, (String, [u8; 32])>>,
    tenants: RwLock<HashMap<String, Arc<TenantState>>>,
}

impl Tenancy {
    /// Loads the tenants and tokens of the store and decides the mode.
    pub fn load(store: &Store, config: &Config) -> Result<Tenancy, String> {
        let r = store.read().map_err(|e| e.to_string())?;
        let records = r.tenants().map_err(|e| e.to_string())?;
        let mut tokens = HashMap::new();
        for t in r.tokens().map_err(|e| e.to_string())? {
            let hash = unhex32(&t.secret_sha256).ok_or_else(|| format!("stored token {} is corrupt", t.id))?;
            tokens.insert(t.id, (t.tenant, hash));
        }
        let tenants = records
            .iter()
            .map(|t| (t.name.clone(), Arc::new(TenantState::new(&t.name, Limits::of(&t.limits, config)))))
            .collect();
        Ok(Tenancy {
            multi: config.admin_token.is_some() || !records.is_empty(),
            admin: config.admin_token.as_ref().map(|s| sha256(s.expose())),
            tokens: RwLock::new(tokens),
            tenants: RwLock::new(tenants),
        })
    }

    /// Whether requests need a tenant's token (else: local mode, one implicit tenant).
    pub fn is_multi_tenant(&self) -> bool {
        self.multi
    }

    /// The tenant of a request to the OCCI API: the implicit one in local mode, else the one
    /// its bearer token names (401 for a missing, malformed, unknown, revoked or wrong token).
    pub fn authenticate(&self, header: Option<&HeaderValue>) -> R<Tenant> {
        if !self.multi {
            return Ok((crate::api::DEFAULT_TENANT.to_string(), None));
        }
        let token = bearer(header).map_err(|()| invalid(REALM, MALFORMED))?.ok_or_else(|| missing(REALM))?;
        let (id, secret) = parse_token(token).ok_or_else(|| invalid(REALM, MALFORMED))?;
        let tenant = self.verify(id, secret).ok_or_else(|| invalid(REALM, NOT_VALID))?;
        let state = self.tenants.read().get(&tenant).cloned().ok_or_else(|| invalid(REALM, NOT_VALID))?;
        Ok((tenant, Some(state)))
    }

    /// The tenant a token id and secret belong to, if the secret is right: its hash is compared
    /// in constant time (an unknown id is compared against a dummy, to take the same time).
    fn verify(&self, id: &str, secret: &str) -> Option<String> {
        let presented = sha256(secret);
        let tokens = self.tokens.read();
        let (tenant, stored) = match tokens.get(id) {
            Some((tenant, hash)) => (Some(tenant), *hash),
            None => (None, [0u8; 32]),
        };
        let equal: bool = presented.ct_eq(&stored).into();
        if equal { tenant.cloned() } else { None }
    }

    /// Lets an admin request through: 403 when no admin token is configured or a tenant's
    /// token is presented, 401 when the admin token is missing or wrong.
    pub fn check_admin(&self, header: Option<&HeaderValue>) -> R<()> {
        let Some(admin) = &self.admin else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the admin API is off: start ocni serve with --admin-token-file FILE or OCNI_ADMIN_TOKEN set \
                 (at least 16 characters)",
            ));
        };
        let token =
            bearer(header).map_err(|()| invalid(ADMIN_REALM, MALFORMED))?.ok_or_else(|| missing(ADMIN_REALM))?;
        if bool::from(sha256(token).ct_eq(admin)) {
            return Ok(());
        }
        if let Some((id, secret)) = parse_token(token)
            && self.verify(id, secret).is_some()
        {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "the admin API needs the admin token, not a tenant's"));
        }
        Err(invalid(ADMIN_REALM, NOT_VALID))
    }

    /// The limits of a tenant (none in local mode: the server's own limits apply).
    pub fn limits(&self, tenant: &str) -> Option<Limits> {
        if !self.multi {
            return None;
        }
        self.tenants.read().get(tenant).map(|t| t.limits.clone())
    }

    /// On the writer thread: refuses a write of a tenant deleted since its request was
    /// authenticated (it would leave data behind that nobody owns). Tenants are created and
    /// deleted only by admin jobs of the same thread, which update this map before the next
    /// job runs, so it agrees with the store here.
    pub fn check_live(&self, tenant: &str) -> R<()> {
        if self.multi && !self.tenants.read().contains_key(tenant) {
            return Err(invalid(REALM, NOT_VALID));
        }
        Ok(())
    }

    fn set_tenant(&self, name: &str, limits: Limits) {
        self.tenants.write().insert(name.to_string(), Arc::new(TenantState::new(name, limits)));
    }

    fn add_token(&self, t: &TokenRecord) {
        if let Some(hash) = unhex32(&t.secret_sha256) {
            self.tokens.write().insert(t.id.clone(), (t.tenant.clone(), hash));
        }
    }
}

// ---------------------------------------------------------------------- admin API

/// What `/-/admin/...` names.
enum AdminPath<'a> {
    Tenants,
    Tenant(&'a str),
    Tokens(&'a str),
    Token(&'a str, &'a str),
    Limits(&'a str),
}

fn admin_path(rest: &str) -> R<AdminPath<'_>> {
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    Ok(match parts.as_slice() {
        ["tenants"] => AdminPath::Tenants,
        ["tenants", name] => AdminPath::Tenant(name),
        ["tenants", name, "tokens"] => AdminPath::Tokens(name),
        ["tenants", name, "tokens", id] => AdminPath::Token(name, id),
        ["tenants", name, "limits"] => AdminPath::Limits(name),
        _ => {
            return Err(ApiError::not_found(format!(
                "no admin resource at /-/admin/{rest}: see /-/admin/tenants, /-/admin/tenants/NAME, \
                 /-/admin/tenants/NAME/tokens[/ID], /-/admin/tenants/NAME/limits"
            )));
        }
    })
}

fn admin_reply(status: StatusCode, v: &Value) -> Reply {
    let mut body = serde_json::to_vec_pretty(v).expect("JSON values serialize");
    body.push(b'\n');
    Reply { status, headers: Vec::new(), body, content_type: Some("application/json") }
}

fn json_body<'a>(req: &'a Request) -> R<Option<&'a Value>> {
    match &req.body {
        None => Ok(None),
        Some(Body::Json(v)) => Ok(Some(v)),
        Some(_) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the admin API takes JSON bodies (Content-Type: application/json)",
        )),
    }
}

fn no_tenant(name: &str) -> ApiError {
    ApiError::not_found(format!("no tenant named {name:?}"))
}

impl App {
    /// Serves `/-/admin/{rest}` (already authenticated as the admin).
    pub fn admin(&self, rest: &str, req: &Request) -> R<Reply> {
        if req.route.action.is_some() {
            return Err(ApiError::bad("?action= does not apply to the admin API"));
        }
        let method = req.method;
        match (admin_path(rest)?, method) {
            (AdminPath::Tenants, &Method::GET | &Method::HEAD) => {
                let r = self.store.read()?;
                let mut list = Vec::new();
                for t in r.tenants()? {
                    list.push(self.describe_tenant(&r, &t)?);
                }
                Ok(admin_reply(StatusCode::OK, &json!({ "tenants": list })))
            }
            (AdminPath::Tenants, &Method::POST) => self.create_tenant(req),
            (AdminPath::Tenants, m) => Err(ApiError::method(m, "the tenant list", "GET, HEAD, POST")),
            (AdminPath::Tenant(name), &Method::GET | &Method::HEAD) => {
                let r = self.store.read()?;
                let t = r.tenant(name)?.ok_or_else(|| no_tenant(name))?;
                Ok(admin_reply(StatusCode::OK, &self.describe_tenant(&r, &t)?))
            }
            (AdminPath::Tenant(name), &Method::DELETE) => self.delete_tenant(name),
            (AdminPath::Tenant(_), m) => Err(ApiError::method(m, "a tenant", "GET, HEAD, DELETE")),
            (AdminPath::Tokens(name), &Method::GET | &Method::HEAD) => {
                let r = self.store.read()?;
                r.tenant(name)?.ok_or_else(|| no_tenant(name))?;
                Ok(admin_reply(StatusCode::OK, &json!({ "tenant": name, "tokens": token_list(&r, name)? })))
            }
            (AdminPath::Tokens(name), &Method::POST) => {
                if json_body(req)?.is_some_and(|b| b.as_object().is_none_or(|o| !o.is_empty())) {
                    return Err(ApiError::bad("issuing a token takes no body (or {})"));
                }
                let (record, token) = new_token(name)?;
                self.admin_write(|w| {
                    w.tenant(name)?.ok_or_else(|| no_tenant(name))?;
                    Ok(w.put_token(&record)?)
                })?;
                self.tenancy.add_token(&record);
                tracing::info!(tenant = name, token_id = %record.id, "token issued");
                let v = json!({"tenant": name, "id": record.id, "created": record.created, "token": token});
                Ok(admin_reply(StatusCode::CREATED, &v))
            }
            (AdminPath::Tokens(_), m) => Err(ApiError::method(m, "a tenant's tokens", "GET, HEAD, POST")),
            (AdminPath::Token(name, id), &Method::DELETE) => {
                self.admin_write(|w| {
                    w.tenant(name)?.ok_or_else(|| no_tenant(name))?;
                    if w.delete_token(name, id)? {
                        Ok(())
                    } else {
                        Err(ApiError::not_found(format!("tenant {name:?} has no token {id:?}")))
                    }
                })?;
                self.tenancy.tokens.write().remove(id);
                tracing::info!(tenant = name, token_id = id, "token revoked");
                Ok(admin_reply(StatusCode::OK, &json!({"tenant": name, "revoked": id})))
            }
            (AdminPath::Token(..), m) => Err(ApiError::method(m, "a token", "DELETE")),
            (AdminPath::Limits(name), &Method::GET | &Method::HEAD) => {
                let t = self.store.read()?.tenant(name)?.ok_or_else(|| no_tenant(name))?;
                Ok(admin_reply(
                    StatusCode::OK,
                    &json!({"tenant": name, "limits": Limits::of(&t.limits, &self.config).to_json()}),
                ))
            }
            (AdminPath::Limits(name), &Method::PUT) => {
                let body = json_body(req)?.ok_or_else(|| ApiError::bad("PUT limits needs a JSON object of limits"))?;
                let changes = parse_limits(body, &self.config)?;
                let record = self.admin_write(|w| {
                    let mut t = w.tenant(name)?.ok_or_else(|| no_tenant(name))?;
                    for (k, v) in &changes {
                        match v {
                            Some(n) => t.limits.insert(k.clone(), *n),
                            None => t.limits.remove(k),
                        };
                    }
                    w.put_tenant(&t)?;
                    Ok(t)
                })?;
                let limits = Limits::of(&record.limits, &self.config);
                self.tenancy.set_tenant(name, limits.clone());
                let changed = Value::Object(changes.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
                tracing::info!(tenant = name, limits = %changed, "limits set");
                Ok(admin_reply(StatusCode::OK, &json!({"tenant": name, "limits": limits.to_json()})))
            }
            (AdminPath::Limits(_), m) => Err(ApiError::method(m, "a tenant's limits", "GET, HEAD, PUT")),
        }
    }

    /// Runs an administration write (tenants, tokens, limits) in a durable transaction of its
    /// own; a batch being written commits first (redb has one write transaction at a time).
    fn admin_write<T>(&self, f: impl FnOnce(&mut Writer) -> R<T>) -> R<T> {
        self.store.write(f)
    }

    fn create_tenant(&self, req: &Request) -> R<Reply> {
        let body = json_body(req)?.ok_or_else(|| ApiError::bad("POST /-/admin/tenants needs {\"name\": ...}"))?;
        let obj = body.as_object().ok_or_else(|| ApiError::bad("the body must be a JSON object"))?;
        if let Some(other) = obj.keys().find(|k| *k != "name" && *k != "limits") {
            return Err(ApiError::bad(format!("member {other:?} is not allowed here (name, limits)")));
        }
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("member \"name\" (the tenant's name) is missing"))?;
        check_tenant_name(name)?;
        let set: BTreeMap<String, u64> = match obj.get("limits") {
            None => BTreeMap::new(),
            Some(l) => parse_limits(l, &self.config)?.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
        };
        let record = TenantRecord { name: name.to_string(), created: now(), limits: set };
        let (token_record, token) = new_token(name)?;
        self.admin_write(|w| {
            if w.tenant(name)?.is_some() {
                return Err(ApiError::conflict(format!("tenant {name:?} already exists")));
            }
            w.put_tenant(&record)?;
            Ok(w.put_token(&token_record)?)
        })?;
        let limits = Limits::of(&record.limits, &self.config);
        self.tenancy.set_tenant(name, limits.clone());
        self.tenancy.add_token(&token_record);
        // Data already under this name (the local mode's `default`) is the tenant's; its catalog
        // is read afresh.
        self.forget_catalog(name);
        tracing::info!(tenant = name, token_id = %token_record.id, "tenant created");
        let r = self.store.read()?;
        let mut v = self.describe_tenant(&r, &record)?;
        v["token"] = json!({"id": token_record.id, "created": token_record.created, "token": token});
        let mut reply = admin_reply(StatusCode::CREATED, &v);
        reply.headers.push(("Location", format!("{}/-/admin/tenants/{name}", req.base_url)));
        Ok(reply)
    }

    fn delete_tenant(&self, name: &str) -> R<Reply> {
        let (ids, entities) = self.admin_write(|w| {
            w.tenant(name)?.ok_or_else(|| no_tenant(name))?;
            let entities = w.entity_count(name)?;
            Ok((w.delete_tenant(name)?, entities))
        })?;
        self.tenancy.tokens.write().retain(|_, (tenant, _)| tenant != name);
        self.tenancy.tenants.write().remove(name);
        self.forget_catalog(name);
        tracing::info!(tenant = name, tokens = ids.len(), entities, "tenant deleted");
        Ok(admin_reply(
            StatusCode::OK,
            &json!({"deleted": name, "tokens_revoked": ids.len(), "entities_deleted": entities}),
        ))
    }

    fn describe_tenant(&self, r: &ocni_store::Reader, t: &TenantRecord) -> R<Value> {
        let tokens = token_list(r, &t.name)?;
        Ok(json!({
            "name": t.name,
            "created": t.created,
            "limits": Limits::of(&t.limits, &self.config).to_json(),
            "entities": r.entity_count(&t.name)?,
            "categories": r.categories(&t.name)?.len(),
            "handlers": r.handlers(&t.name)?.len(),
            "tokens": tokens,
        }))
    }

    /// 403 when the tenant already has as many entities as it may (checked inside the write
    /// transaction, before an entity is added).
    pub(crate) fn check_entity_limit(&self, w: &Step, tenant: &str) -> R<()> {
        if let Some(limits) = self.tenancy.limits(tenant) {
            if w.entity_count_estimate(tenant)? >= limits.max_entities {
                return Err(limit_reached(tenant, limits.max_entities, "entities"));
            }
            // Concurrent creates do not read the count (they would all conflict): the writer
            // checks the cap against the count as it is when the step is applied.
            w.cap_entities(tenant, limits.max_entities);
        }
        Ok(())
    }

    /// 403 when the tenant's own categories in `next` (the catalog a write would leave) are
    /// more than it may have, one of them has more attributes than a category may, or all of
    /// them together take more room (as stored, in JSON) than its catalog may.
    pub(crate) fn check_catalog_limits(&self, tenant: &str, next: &Catalog) -> R<()> {
        let Some(limits) = self.tenancy.limits(tenant) else { return Ok(()) };
        let own: Vec<&Category> = next.iter().filter(|c| !c.builtin).map(|c| &**c).collect();
        if own.len() as u64 > limits.max_categories {
            return Err(limit_reached(tenant, limits.max_categories, "categories of its own"));
        }
        if let Some(c) = own.iter().find(|c| c.attributes.len() as u64 > limits.max_category_attributes) {
            let what = format!("attributes per category ({} defines {})", c.id(), c.attributes.len());
            return Err(limit_reached(tenant, limits.max_category_attributes, &what));
        }
        let mut bytes = 0u64;
        for c in &own {
            bytes += serde_json::to_vec(c).map_err(|e| ApiError::internal("sizing a category", e))?.len() as u64;
        }
        if bytes > limits.max_catalog_bytes {
            let what = format!("bytes of category definitions (its categories would take {bytes})");
            return Err(limit_reached(tenant, limits.max_catalog_bytes, &what));
        }
        Ok(())
    }

    /// 403 when the tenant already has as many handlers as it may.
    pub(crate) fn check_handler_limit(&self, w: &Step, tenant: &str) -> R<()> {
        if let Some(limits) = self.tenancy.limits(tenant)
            && w.handlers(tenant)?.len() as u64 >= limits.max_handlers
        {
            return Err(limit_reached(tenant, limits.max_handlers, "handlers"));
        }
        Ok(())
    }

    /// The handler limits of one call for a tenant.
    pub(crate) fn call_limits(&self, tenant: &str) -> ocni_runtime::CallLimits {
        self.tenancy.limits(tenant).map(|l| l.call_limits()).unwrap_or_default()
    }
}

pub(crate) fn limit_reached(tenant: &str, limit: u64, what: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, format!("tenant {tenant} has reached its limit of {limit} {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn tokens_have_their_form_and_only_their_hash_is_kept() {
        let (record, token) = new_token("acme").unwrap();
        let (id, secret) = parse_token(&token).expect("a new token parses");
        assert_eq!(id, record.id);
        assert_eq!(secret.len(), 64, "32 random bytes");
        assert!(!record.secret_sha256.contains(secret));
        assert_eq!(record.secret_sha256, hex(&sha256(secret)));
        let (other, _) = new_token("acme").unwrap();
        assert_ne!(record.id, other.id);
        for bad in
            ["", "ocni_", "ocni_abc_def", "ocni_0123456789abcdef", "xocni_0123456789abcdef_00", &token.to_uppercase()]
        {
            assert!(parse_token(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer(None), Ok(None));
        assert_eq!(bearer(Some(&header("Bearer abc"))), Ok(Some("abc")));
        assert_eq!(bearer(Some(&header("bearer  abc "))), Ok(Some("abc")));
        assert_eq!(bearer(Some(&header("Basic abc"))), Err(()));
        assert_eq!(bearer(Some(&header("Bearer"))), Err(()));
        assert_eq!(bearer(Some(&header("Bearer  "))), Err(()));
    }

    #[test]
    fn admin_tokens_must_be_long_enough_and_never_print() {
        assert!(Secret::admin_token("").is_err());
        assert!(Secret::admin_token("  \n").is_err());
        assert!(Secret::admin_token("short").is_err());
        assert!(Secret::admin_token("has white space inside").is_err());
        let s = Secret::admin_token("0123456789abcdef\n").unwrap();
        assert_eq!(s.expose(), "0123456789abcdef");
        assert_eq!(format!("{s:?}"), "Secret(..)");
    }

    #[test]
    fn limits_parse_and_stay_within_the_server() {
        let config = Config::new("/nonexistent");
        let l = parse_limits(&json!({"max_entities": 5, "max_handlers": null}), &config).unwrap();
        assert_eq!(l.get("max_entities"), Some(&Some(5)));
        assert_eq!(l.get("max_handlers"), Some(&None));
        assert!(parse_limits(&json!({"max_entites": 5}), &config).is_err());
        assert!(parse_limits(&json!({"max_entities": -1}), &config).is_err());
        assert!(parse_limits(&json!({"max_entities": "5"}), &config).is_err());
        assert!(parse_limits(&json!({"handler_deadline_ms": 101}), &config).is_err(), "above the server's 100");
        assert!(parse_limits(&json!({"requests_per_second": 0}), &config).is_err());
        let defaults = Limits::defaults(&config);
        assert_eq!(defaults.max_body_bytes, 1 << 20);
        assert_eq!(defaults.handler_memory_mib, 32);
        let set = BTreeMap::from([("max_entities".to_string(), 7), ("handler_memory_mib".to_string(), 1000)]);
        let l = Limits::of(&set, &config);
        assert_eq!((l.max_entities, l.handler_memory_mib), (7, 32), "a stored value above the server's is lowered");
        assert_eq!(l.to_json()["max_entities"], 7);
    }

    #[test]
    fn the_rate_bucket_holds_one_second() {
        let state = TenantState::new("t", Limits { requests_per_second: 3, ..Limits::defaults(&Config::new("/x")) });
        for _ in 0..3 {
            state.admit().unwrap();
        }
        let e = state.admit().unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.headers, vec![("Retry-After", "1".to_string())]);
    }
}
