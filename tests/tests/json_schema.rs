//! OCCI 1.2 JSON output checked against the rOCCI JSON schemas in `tests/occi-json-schema`
//! (validated in process by [`validate_occi_json`], with the `jsonschema` crate), and that check
//! itself shown to reject what the schemas forbid.

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

/// The check is no rubber stamp: documents the schemas forbid fail, and the error names the place.
#[test]
fn the_schema_check_rejects_invalid_documents_and_names_the_place() {
    #[track_caller]
    fn rejected(schema: &str, doc: Value, place: &str, words: &[&str]) {
        let err = validate_occi_json(schema, &doc).expect_err(&format!("{schema} schema accepts {doc}"));
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("INVALID at {place}: ")))
            .unwrap_or_else(|| panic!("no error at {place} for {doc}: {err}"));
        for w in words {
            assert!(line.contains(w), "error at {place} should mention {w:?}: {err}");
        }
    }
    let resource = json!({"kind": COMPUTE, "id": "c1", "attributes": {"occi.compute.cores": 2}});
    let link = json!({"kind": NETWORKINTERFACE, "id": "l1", "attributes": {},
                      "source": {"location": "/compute/c1"}, "target": {"location": "/network/n1", "kind": NETWORK}});
    validate("resource", &resource);
    validate("link", &link);
    validate("entity-collection", &json!({"resources": [resource.clone()], "links": [link.clone()]}));
    validate("locations", &json!(["/compute/c1"]));

    // A resource without `kind`; one whose `id` is a number; one with a key OCCI does not have.
    let mut no_kind = resource.clone();
    no_kind.as_object_mut().unwrap().remove("kind");
    rejected("resource", no_kind, "/", &["\"kind\"", "required"]);
    let mut numeric_id = resource.clone();
    numeric_id["id"] = json!(7);
    rejected("resource", numeric_id, "/id", &["7", "string"]);
    let mut extra = resource.clone();
    extra["colour"] = json!("red");
    rejected("resource", extra, "/", &["colour"]);
    // Through the `$ref`s: a link inside a resource, a resource inside a collection.
    let mut bad_link = link.clone();
    bad_link["target"] = json!({"kind": NETWORK});
    let mut with_link = resource.clone();
    with_link["links"] = json!([bad_link]);
    rejected("resource", with_link, "/links/0/target", &["\"location\"", "required"]);
    let mut no_id = resource.clone();
    no_id.as_object_mut().unwrap().remove("id");
    rejected("entity-collection", json!({"resources": [resource.clone(), no_id]}), "/resources/1", &["\"id\""]);
    // The draft-04 meta-schema's stringArray (locations, mixins, actions).
    rejected("locations", json!(["/compute/c1", 3]), "/1", &["3", "string"]);
    let mut mixins = resource.clone();
    mixins["mixins"] = json!([]);
    rejected("resource", mixins, "/mixins", &["[]"]);
    rejected("action-instance", json!({"attributes": {}}), "/", &["\"action\"", "required"]);
    rejected(
        "model",
        json!({"kinds": [{"term": "vm", "scheme": "http://example.com/occi#"}]}),
        "/kinds/0",
        &["\"location\""],
    );
    rejected("category-identifiers", json!({"kinds": "x"}), "/kinds", &["\"x\""]);
    // A schema name that does not exist is an error, not a pass.
    assert!(validate_occi_json("no-such-schema", &resource).unwrap_err().contains("no OCCI JSON schema"));
}
