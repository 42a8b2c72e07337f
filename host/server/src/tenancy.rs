//! Multi-tenant hosting: which mode the server is in, who a request is (tokens checked in constant
//! time), each tenant's limits and request rate. The admin API that changes them is
//! `occi/admin.rs`.
//!
//! *Local mode* (no admin token configured and no tenant in the store): every request is the
//! implicit tenant [`DEFAULT_TENANT`], unauthenticated, with the
//! server's own limits only. *Multi-tenant mode* (an admin token, or tenants in the store): every
//! OCCI request needs `Authorization: Bearer <token>` of a tenant; nothing is served as an implicit
//! tenant.
//!
//! Tokens are `ocni_<id>_<secret>`: `id` is 8 random bytes in hex (public: the key for lookup,
//! listing and revocation), `secret` 32 random bytes in hex. The store keeps the SHA-256 of the
//! secret only; a presented secret is hashed and compared with [`subtle::ConstantTimeEq`]. The
//! admin token is compared the same way (SHA-256 of both sides). Tokens never reach a log.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use hyper::header::HeaderValue;
use ocni_model::{Catalog, Category};
use ocni_store::{Reads, Step, Store, TokenRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::error::ApiError;
use crate::reply::R;

/// The tenant every request is in local mode (no authentication).
pub const DEFAULT_TENANT: &str = "default";

/// Who an admin request is, in the audit log (not a valid tenant name).
pub const ADMIN: &str = "(admin)";
/// Who a request that was not authenticated is, in the audit log.
pub const NOBODY: &str = "(none)";

/// A tenant's limits in effect: its own where set, the server's defaults elsewhere. Their JSON
/// form (field names) is what the admin API and the store use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// (its flags were lowered since) is lowered to it; a name that is no limit is ignored.
    pub fn of(set: &BTreeMap<String, u64>, config: &Config) -> Limits {
        let mut map = Limits::defaults(config).to_map();
        for (name, value) in set {
            if let Some(slot) = map.get_mut(name) {
                *slot = Value::from((*value).min(max_of(name, config)));
            }
        }
        serde_json::from_value(Value::Object(map)).expect("the limits' own fields, with whole numbers")
    }

    /// The limits by name.
    fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("limits serialize to an object"),
        }
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.to_map())
    }

    /// The names of the limits, as in JSON and the store.
    pub fn names(config: &Config) -> Vec<String> {
        Limits::defaults(config).to_map().into_iter().map(|(k, _)| k).collect()
    }

    /// The handler limits of one call.
    pub fn call_limits(&self) -> ocni_runtime::CallLimits {
        ocni_runtime::CallLimits {
            deadline: Some(std::time::Duration::from_millis(self.handler_deadline_ms)),
            max_memory_bytes: Some(usize::try_from(self.handler_memory_mib << 20).unwrap_or(usize::MAX)),
            job: false,
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
    let names = Limits::names(config);
    let mut out = BTreeMap::new();
    for (name, value) in obj {
        if !names.contains(name) {
            return Err(ApiError::bad(format!("unknown limit {name:?}; the limits are {}", names.join(", "))));
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

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn random_hex(n: usize) -> R<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| ApiError::internal("no randomness for a token", e))?;
    Ok(hex::encode(&buf))
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new token: (its record for the store, the token to show once).
pub(crate) fn new_token(tenant: &str) -> R<(TokenRecord, String)> {
    let id = random_hex(ID_BYTES)?;
    let secret = random_hex(SECRET_BYTES)?;
    let record = TokenRecord {
        id: id.clone(),
        tenant: tenant.to_string(),
        secret_sha256: hex::encode(sha256(&secret)),
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
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
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
    /// On a shared store, [`Store::admin_changes`] when the maps above were last read from it.
    loaded: Mutex<Option<u64>>,
}

impl Tenancy {
    /// Loads the tenants and tokens of the store and decides the mode.
    pub fn load(store: &Store, config: &Config) -> Result<Tenancy, String> {
        let changes = store.admin_changes();
        let (tokens, tenants) = read_tenancy(store, config, &HashMap::new())?;
        Ok(Tenancy {
            multi: config.admin_token.is_some() || !tenants.is_empty(),
            admin: config.admin_token.as_ref().map(|s| sha256(s.expose())),
            tokens: RwLock::new(tokens),
            tenants: RwLock::new(tenants),
            loaded: Mutex::new(changes),
        })
    }

    /// On a shared store (etcd), reads the tenants and tokens again when another node (or
    /// this one) changed them since they were read: a token issued or revoked on any node
    /// counts on every node from its next request. Rate buckets of tenants whose limits did
    /// not change are kept (the rate is per node).
    pub fn refresh(&self, store: &Store, config: &Config) -> R<()> {
        let Some(changes) = store.admin_changes() else { return Ok(()) };
        let mut loaded = self.loaded.lock();
        if *loaded == Some(changes) {
            return Ok(());
        }
        let known = self.tenants.read().clone();
        let (tokens, tenants) = read_tenancy(store, config, &known).map_err(|e| ApiError::internal("tenancy", e))?;
        *self.tokens.write() = tokens;
        *self.tenants.write() = tenants;
        *loaded = Some(changes);
        Ok(())
    }

    /// Whether requests need a tenant's token (else: local mode, one implicit tenant).
    pub fn is_multi_tenant(&self) -> bool {
        self.multi
    }

    /// The tenant of a request to the OCCI API: the implicit one in local mode, else the one
    /// its bearer token names (401 for a missing, malformed, unknown, revoked or wrong token).
    pub fn authenticate(&self, header: Option<&HeaderValue>) -> R<Tenant> {
        if !self.multi {
            return Ok((DEFAULT_TENANT.to_string(), None));
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

    /// Refuses a write of a tenant deleted since its request was authenticated (it would leave
    /// data behind that nobody owns). A first check: the step of a multi-tenant write also reads
    /// the tenant's record, so a deletion that this map has not seen yet (another node's, on
    /// etcd) makes it conflict, and its retry is refused here.
    pub fn check_live(&self, tenant: &str) -> R<()> {
        if self.multi && !self.tenants.read().contains_key(tenant) {
            return Err(invalid(REALM, NOT_VALID));
        }
        Ok(())
    }

    /// After the admin API committed a tenant (new, or with new limits).
    pub(crate) fn set_tenant(&self, name: &str, limits: Limits) {
        self.tenants.write().insert(name.to_string(), Arc::new(TenantState::new(name, limits)));
    }

    /// After the admin API committed a tenant's deletion: its tokens go with it.
    pub(crate) fn remove_tenant(&self, name: &str) {
        self.tokens.write().retain(|_, (tenant, _)| tenant != name);
        self.tenants.write().remove(name);
    }

    /// After the admin API committed a new token.
    pub(crate) fn add_token(&self, t: &TokenRecord) {
        if let Some(hash) = unhex32(&t.secret_sha256) {
            self.tokens.write().insert(t.id.clone(), (t.tenant.clone(), hash));
        }
    }

    /// After the admin API committed a token's revocation.
    pub(crate) fn revoke_token(&self, id: &str) {
        self.tokens.write().remove(id);
    }
}

type Tokens = HashMap<String, (String, [u8; 32])>;
type Tenants = HashMap<String, Arc<TenantState>>;

/// The tokens and tenants of the store (a tenant in `known` with the same limits keeps its
/// state).
fn read_tenancy(store: &Store, config: &Config, known: &Tenants) -> Result<(Tokens, Tenants), String> {
    let r = store.read().map_err(|e| e.to_string())?;
    let mut tokens = HashMap::new();
    for t in r.tokens().map_err(|e| e.to_string())? {
        let hash = unhex32(&t.secret_sha256).ok_or_else(|| format!("stored token {} is corrupt", t.id))?;
        tokens.insert(t.id, (t.tenant, hash));
    }
    let mut tenants = HashMap::new();
    for t in r.tenants().map_err(|e| e.to_string())? {
        let limits = Limits::of(&t.limits, config);
        let state = match known.get(&t.name) {
            Some(s) if s.limits == limits => Arc::clone(s),
            _ => Arc::new(TenantState::new(&t.name, limits)),
        };
        tenants.insert(t.name, state);
    }
    Ok((tokens, tenants))
}

/// Limits checked while a write is prepared.
impl Tenancy {
    /// 403 when the tenant already has as many entities as it may (checked inside the write
    /// transaction, before an entity is added).
    pub(crate) fn check_entity_limit(&self, w: &Step, tenant: &str) -> R<()> {
        if let Some(limits) = self.limits(tenant) {
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
        let Some(limits) = self.limits(tenant) else { return Ok(()) };
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
        if let Some(limits) = self.limits(tenant)
            && w.handlers(tenant)?.len() as u64 >= limits.max_handlers
        {
            return Err(limit_reached(tenant, limits.max_handlers, "handlers"));
        }
        Ok(())
    }

    /// The handler limits of one call for a tenant.
    pub(crate) fn call_limits(&self, tenant: &str) -> ocni_runtime::CallLimits {
        self.limits(tenant).map(|l| l.call_limits()).unwrap_or_default()
    }
}

/// 401 for a request whose tenant was deleted while it was served.
pub(crate) fn deleted_tenant() -> ApiError {
    invalid(REALM, NOT_VALID)
}

pub(crate) fn limit_reached(tenant: &str, limit: u64, what: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, format!("tenant {tenant} has reached its limit of {limit} {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(record.secret_sha256, hex::encode(sha256(secret)));
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
        // Every limit has a name in JSON, and each is read back under it.
        let names = Limits::names(&config);
        assert_eq!(names.len(), 10);
        for (i, name) in names.iter().enumerate() {
            let set = BTreeMap::from([(name.clone(), i as u64 + 1)]);
            assert_eq!(Limits::of(&set, &config).to_json()[name], i as u64 + 1, "{name}");
        }
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
