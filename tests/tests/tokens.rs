//! Authentication end to end: tenants' bearer tokens (missing, malformed, wrong, unknown,
//! revoked, another tenant's, several per tenant), the admin token and the admin API, and local
//! mode, which needs none of it.

use ocni_tests::{ADMIN_TOKEN, COMPUTE, JSON, Reply, TestServer, expect, expect_error};
use serde_json::{Value, json};

/// A request with this `Authorization` header (or none).
async fn with_auth(server: &TestServer, auth: Option<&str>, method: &str, path: &str, body: Option<Value>) -> Reply {
    server.send_as(auth, method, path, Some(JSON), None, body.map(|b| b.to_string().into_bytes())).await
}

#[track_caller]
fn unauthorized(reply: &Reply, www_authenticate: &str) {
    expect(reply, 401);
    assert_eq!(reply.header("www-authenticate"), Some(www_authenticate), "{}", reply.text);
    assert_eq!(reply.json()["error"]["status"], 401, "an error body like every other");
}

const MISSING: &str = "Bearer realm=\"ocni\"";
const INVALID: &str = "Bearer realm=\"ocni\", error=\"invalid_token\"";

#[tokio::test]
async fn a_request_without_a_token_is_401() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", None).await;
    expect(&acme.get("/-/").await, 200);
    for (method, path) in
        [("GET", "/-/"), ("GET", "/compute/"), ("GET", "/compute/x"), ("DELETE", "/"), ("GET", "/-/handlers/")]
    {
        let r = with_auth(&server, None, method, path, None).await;
        unauthorized(&r, MISSING);
        assert!(r.error_message().contains("Authorization: Bearer"), "{}", r.text);
    }
    // Nothing was served as some implicit tenant: a write without a token changed nothing.
    let r = with_auth(&server, None, "POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "x"}))).await;
    unauthorized(&r, MISSING);
    expect(&acme.get("/compute/x").await, 404);
}

#[tokio::test]
async fn malformed_authorization_is_401_invalid_token() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", None).await;
    let (id, secret) = acme.token.strip_prefix("ocni_").unwrap().split_once('_').unwrap();
    for auth in [
        format!("Basic {}", acme.token),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        acme.token.clone(),
        "Bearer not-a-token".to_string(),
        format!("Bearer {}", acme.token.to_uppercase()),
        format!("Bearer ocni_{id}"),
        format!("Bearer ocni_{id}_{}", &secret[1..]),
        format!("Bearer ocni_{id}_{secret}0"),
        format!("Bearer {} extra", acme.token),
    ] {
        let r = with_auth(&server, Some(&auth), "GET", "/-/", None).await;
        unauthorized(&r, INVALID);
        assert!(r.error_message().contains("Bearer <token>"), "{auth:?}: {}", r.text);
    }
}

#[tokio::test]
async fn wrong_unknown_and_revoked_tokens_get_the_same_401() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", None).await;
    let (id, secret) = acme.token.strip_prefix("ocni_").unwrap().split_once('_').unwrap();
    let flip = |c: char| if c == '0' { '1' } else { '0' };
    let wrong_secret = format!("ocni_{id}_{}{}", flip(secret.chars().next().unwrap()), &secret[1..]);
    let unknown_id = format!("ocni_{}{}_{secret}", flip(id.chars().next().unwrap()), &id[1..]);
    let mut answers = Vec::new();
    for token in [&wrong_secret, &unknown_id] {
        let r = with_auth(&server, Some(&format!("Bearer {token}")), "GET", "/-/", None).await;
        unauthorized(&r, INVALID);
        answers.push(r.text);
    }
    // Revoked: the next request is refused, the same way.
    let second = server.admin("POST", "/-/admin/tenants/acme/tokens", None).await;
    expect(&second, 201);
    let second = second.json();
    let second_token = second["token"].as_str().unwrap().to_string();
    expect(&with_auth(&server, Some(&format!("Bearer {second_token}")), "GET", "/-/", None).await, 200);
    let revoke = format!("/-/admin/tenants/acme/tokens/{}", second["id"].as_str().unwrap());
    expect(&server.admin("DELETE", &revoke, None).await, 200);
    let r = with_auth(&server, Some(&format!("Bearer {second_token}")), "GET", "/-/", None).await;
    unauthorized(&r, INVALID);
    answers.push(r.text);
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "one answer for all: {answers:?}");
    // Revoking again: not found. The first token still works.
    expect(&server.admin("DELETE", &revoke, None).await, 404);
    expect(&acme.get("/-/").await, 200);
}

#[tokio::test]
async fn another_tenants_token_acts_as_that_tenant() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", None).await;
    let umbrella = server.create_tenant("umbrella", None).await;
    expect(&acme.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "mine"}))).await, 201);
    // The token decides the tenant: umbrella's token sees umbrella's (empty) world.
    expect(&umbrella.get("/compute/mine").await, 404);
    expect(&umbrella.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "theirs"}))).await, 201);
    expect(&acme.get("/compute/theirs").await, 404);
    expect(&acme.get("/compute/mine").await, 200);
}

#[tokio::test]
async fn a_tenant_may_hold_several_tokens() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", None).await;
    let mut tokens = vec![acme.token.clone()];
    for _ in 0..2 {
        let r = server.admin("POST", "/-/admin/tenants/acme/tokens", None).await;
        expect(&r, 201);
        tokens.push(r.json()["token"].as_str().unwrap().to_string());
    }
    for t in &tokens {
        expect(&with_auth(&server, Some(&format!("Bearer {t}")), "GET", "/-/", None).await, 200);
    }
    // The list shows ids and creation times, never a token or its hash.
    let list = server.admin("GET", "/-/admin/tenants/acme/tokens", None).await;
    expect(&list, 200);
    let ids: Vec<String> =
        list.json()["tokens"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 3);
    for t in &tokens {
        let (id, secret) = t.strip_prefix("ocni_").unwrap().split_once('_').unwrap();
        assert!(ids.contains(&id.to_string()));
        assert!(!list.text.contains(secret));
    }
    for entry in list.json()["tokens"].as_array().unwrap() {
        let keys: Vec<&str> = entry.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "created"]);
    }
}

#[tokio::test]
async fn tokens_are_stored_as_hashes_only() {
    // On redb whatever OCNI_TEST_STORE says: the test reads the database file.
    let server = TestServer::start_multi_tenant(|c| c.store = None).await;
    let token = server.create_tenant("acme", None).await.token;
    let secret = token.rsplit('_').next().unwrap().to_string();
    let mut server = server;
    server.stop().await;
    let db = std::fs::read(server.data.join("ocni.redb")).unwrap();
    let has = |needle: &[u8]| db.windows(needle.len()).any(|w| w == needle);
    assert!(!has(secret.as_bytes()), "the secret is not in the database");
    assert!(!has(ADMIN_TOKEN.as_bytes()), "nor is the admin token");
    // Its SHA-256 is, and it still works after a restart.
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert!(has(hash.as_bytes()));
    let server = server.restart().await;
    expect(&with_auth(&server, Some(&format!("Bearer {token}")), "GET", "/-/", None).await, 200);
    // Restarted without an admin token: still multi-tenant (there are tenants).
    unauthorized(&with_auth(&server, None, "GET", "/-/", None).await, MISSING);
}

// ---------------------------------------------------------------------- the admin API

#[tokio::test]
async fn admin_paths_need_the_admin_token() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", None).await;
    // A tenant's token: 403.
    let r = with_auth(&server, Some(&format!("Bearer {}", acme.token)), "GET", "/-/admin/tenants", None).await;
    expect_error(&r, 403, &["admin token"]);
    let r =
        with_auth(&server, Some(&format!("Bearer {}", acme.token)), "POST", "/-/admin/tenants/acme/tokens", None).await;
    expect(&r, 403);
    // No token, a wrong one, a malformed header: 401.
    let realm = "Bearer realm=\"ocni-admin\"";
    unauthorized(&with_auth(&server, None, "GET", "/-/admin/tenants", None).await, realm);
    let wrong = format!("Bearer {ADMIN_TOKEN}x");
    let invalid = "Bearer realm=\"ocni-admin\", error=\"invalid_token\"";
    unauthorized(&with_auth(&server, Some(&wrong), "GET", "/-/admin/tenants", None).await, invalid);
    unauthorized(&with_auth(&server, Some(ADMIN_TOKEN), "GET", "/-/admin/tenants", None).await, invalid);
    // The admin token is no tenant token.
    let admin = format!("Bearer {ADMIN_TOKEN}");
    unauthorized(&with_auth(&server, Some(&admin), "GET", "/-/", None).await, INVALID);
    // Errors of the admin API are JSON whatever the client accepts.
    let r = server.send_as(None, "GET", "/-/admin/tenants", Some("text/plain"), None, None).await;
    assert_eq!(r.json()["error"]["status"], 401);
}

#[tokio::test]
async fn local_mode_serves_without_tokens_and_has_no_admin_api() {
    let server = TestServer::start().await;
    expect(&server.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "vm"}))).await, 201);
    expect(&server.get("/compute/vm").await, 200);
    // A token-looking header changes nothing in local mode.
    let r = with_auth(&server, Some("Bearer whatever"), "GET", "/compute/vm", None).await;
    expect(&r, 200);
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let r = with_auth(&server, Some(&admin), "GET", "/-/admin/tenants", None).await;
    expect_error(&r, 403, &["--admin-token-file", "OCNI_ADMIN_TOKEN"]);
    let r = with_auth(&server, Some(&admin), "POST", "/-/admin/tenants", Some(json!({"name": "x"}))).await;
    expect(&r, 403);
}

#[tokio::test]
async fn the_admin_creates_lists_shows_and_deletes_tenants() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let created =
        server.admin("POST", "/-/admin/tenants", Some(json!({"name": "acme", "limits": {"max_entities": 5}}))).await;
    expect(&created, 201);
    assert!(created.header("location").unwrap().ends_with("/-/admin/tenants/acme"));
    assert_eq!(created.header("content-type"), Some("application/json"));
    let v = created.json();
    assert_eq!(v["name"], "acme");
    assert_eq!(v["limits"]["max_entities"], 5);
    assert_eq!(v["limits"]["max_handlers"], 32, "the others are the defaults");
    let token = v["token"]["token"].as_str().unwrap();
    assert!(token.starts_with(&format!("ocni_{}_", v["token"]["id"].as_str().unwrap())));
    assert_eq!(v["tokens"][0]["id"], v["token"]["id"]);

    expect_error(
        &server.admin("POST", "/-/admin/tenants", Some(json!({"name": "acme"}))).await,
        409,
        &["acme", "exists"],
    );
    for bad in ["", "Acme", "-acme", "a/b", "a b", &"x".repeat(65)] {
        expect_error(
            &server.admin("POST", "/-/admin/tenants", Some(json!({"name": bad}))).await,
            400,
            &["tenant name"],
        );
    }
    expect_error(
        &server.admin("POST", "/-/admin/tenants", Some(json!({"name": "b", "colour": 1}))).await,
        400,
        &["colour"],
    );
    expect_error(
        &server.admin("POST", "/-/admin/tenants", Some(json!({"name": "b", "limits": {"max_entites": 1}}))).await,
        400,
        &["max_entites"],
    );
    expect(&server.admin("POST", "/-/admin/tenants", Some(json!({"name": "b-2"}))).await, 201);

    let list = server.admin("GET", "/-/admin/tenants", None).await.json();
    let names: Vec<&str> = list["tenants"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme", "b-2"]);
    let acme = server.admin("GET", "/-/admin/tenants/acme", None).await.json();
    assert_eq!(
        (acme["entities"].clone(), acme["categories"].clone(), acme["handlers"].clone()),
        (json!(0), json!(0), json!(0))
    );
    expect_error(&server.admin("GET", "/-/admin/tenants/nope", None).await, 404, &["nope"]);
    expect_error(&server.admin("DELETE", "/-/admin/tenants/nope", None).await, 404, &["nope"]);
    expect_error(&server.admin("POST", "/-/admin/tenants/nope/tokens", None).await, 404, &["nope"]);
    expect(&server.admin("GET", "/-/admin/nothing", None).await, 404);
    expect(&server.admin("PATCH", "/-/admin/tenants", None).await, 405);

    let deleted = server.admin("DELETE", "/-/admin/tenants/acme", None).await;
    expect(&deleted, 200);
    assert_eq!(deleted.json()["tokens_revoked"], 1);
    unauthorized(&with_auth(&server, Some(&format!("Bearer {token}")), "GET", "/-/", None).await, INVALID);
    let list = server.admin("GET", "/-/admin/tenants", None).await.json();
    assert_eq!(list["tenants"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_default_tenant_can_adopt_local_data() {
    // Data written in local mode belongs to the implicit tenant "default".
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    let mut local = TestServer::start_with(ocni_server::Config::new(&data), Some(dir.clone())).await;
    expect(&local.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "old"}))).await, 201);
    local.stop().await;
    // With an admin token the server is multi-tenant; a tenant "default" gets that data.
    let mut config = ocni_server::Config::new(&data);
    config.admin_token = Some(ocni_server::Secret::admin_token(ADMIN_TOKEN).unwrap());
    let server = TestServer::start_with(config, Some(dir)).await;
    unauthorized(&with_auth(&server, None, "GET", "/compute/old", None).await, MISSING);
    let default = server.create_tenant("default", None).await;
    expect(&default.get("/compute/old").await, 200);
    assert_eq!(server.admin("GET", "/-/admin/tenants/default", None).await.json()["entities"], 1);
    let other = server.create_tenant("other", None).await;
    expect(&other.get("/compute/old").await, 404);
}
