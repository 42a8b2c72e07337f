//! OCCI 1.2 JSON output checked against the rOCCI JSON schemas in `tests/occi-json-schema`
//! (validated in process by [`validate_occi_json`], with the `jsonschema` crate).

use ocni_tests::{COMPUTE, NETWORK, NETWORKINTERFACE, TestServer, expect, validate_occi_json};
use serde_json::{Value, json};

#[track_caller]
fn validate(schema: &str, doc: &Value) {
    if let Err(e) = validate_occi_json(schema, doc) {
        panic!("{schema} rendering {e}\ndocument: {doc:#}");
    }
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
