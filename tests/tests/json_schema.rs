//! OCCI 1.2 JSON output checked against the rOCCI JSON schemas with the validator shipped in
//! `tests/occi-json-schema` (python3 + jsonschema, which `scripts/test.sh` installs).

use std::process::Command;

use ocni_tests::{COMPUTE, NETWORK, NETWORKINTERFACE, TestServer, expect, repo_root};
use serde_json::{Value, json};

fn validate(schema: &str, doc: &Value) {
    let occi = repo_root().join("tests/occi-json-schema");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("doc.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = Command::new("python3")
        .arg(occi.join("validate_occi_json.py"))
        .arg(&occi)
        .arg(schema)
        .arg(&file)
        .output()
        .expect("python3 runs the OCCI JSON validator (python3 -m pip install jsonschema)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{schema} rendering fails the schema:\n{stdout}\n{}\ndocument: {doc:#}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn renderings_validate_against_the_occi_schemas() {
    let server = TestServer::start().await;
    // A tenant kind, mixin and action next to the built-ins.
    let r = server
        .json(
            "POST",
            "/-/",
            Some(json!({
                "actions": [{"term": "rebuild", "scheme": "http://example.com/occi/vm/action#",
                             "attributes": {"image": {"type": "string", "required": true, "mutable": true}}}],
                "kinds": [{"term": "vm", "scheme": "http://example.com/occi#", "location": "/vm/",
                           "actions": ["http://example.com/occi/vm/action#rebuild"],
                           "attributes": {"example.vm.size": {"type": "integer", "mutable": true, "default": 1, "minimum": 1}}}],
                "mixins": [{"term": "gold", "scheme": "http://example.com/occi#", "location": "/gold/",
                            "applies": ["http://example.com/occi#vm"]}]
            })),
        )
        .await;
    expect(&r, 200);
    validate("model", &r.json());
    validate("model", &server.get("/-/").await.json());

    expect(
        &server
            .json(
                "PUT",
                "/compute/c1",
                Some(json!({"kind": COMPUTE, "title": "one", "attributes": {"occi.compute.cores": 2}})),
            )
            .await,
        201,
    );
    expect(&server.json("PUT", "/network/n1", Some(json!({"kind": NETWORK}))).await, 201);
    let link = json!({"kind": NETWORKINTERFACE, "source": {"location": "/compute/c1"}, "target": {"location": "/network/n1"},
                      "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:55"}});
    let created = server.json("PUT", "/networkinterface/l1", Some(link)).await;
    expect(&created, 201);
    validate("locations", &created.json());

    validate("resource", &server.get("/compute/c1").await.json());
    validate("link", &server.get("/networkinterface/l1").await.json());
    validate("entity-collection", &server.get("/compute/").await.json());
    validate("entity-collection", &server.get("/networkinterface/").await.json());
    // An empty collection too.
    validate("entity-collection", &server.get("/storage/").await.json());
    let acted = server
        .json(
            "POST",
            "/compute/c1?action=start",
            Some(json!({"action": "http://schemas.ogf.org/occi/infrastructure/compute/action#start"})),
        )
        .await;
    expect(&acted, 200);
    validate("resource", &acted.json());
}
