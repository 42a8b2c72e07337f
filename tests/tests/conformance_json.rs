//! OCCI conformance of the JSON rendering `application/occi+json` (GFD.226, with its appendix
//! "JSON Rendering Examples") and of the GFD.223 protocol rules as they apply to it (versioning,
//! status codes, pagination, filtering by request headers, the method table). Renderings are
//! validated against the OCCI JSON schemas in `tests/occi-json-schema` ([`validate_occi_json`]).
//!
//! Each case is a list of HTTP exchanges, each with the status and the checks its answer must
//! pass. The cases of one table run in order against one server; a case stops at its first
//! failing exchange, and every failing case is reported at the end. Texts may use `{base}` (the
//! server's `http://host:port`) and the names a case captured (`.capture("loc")` keeps the path
//! of a `Location` header).
//!
//! The appendix examples are kept as text with their typos fixed (each fix is noted where the
//! example is), and parsed, so that a fix that leaves broken JSON fails loudly.

use ocni_tests::conformance::*;
use ocni_tests::{COMPUTE, JSON, NETWORK, NETWORKINTERFACE, TestServer, validate_occi_json};
use serde_json::{Value, json};

// ------------------------------------------------------------------------------------- helpers

const RESOURCE_KIND: &str = "http://schemas.ogf.org/occi/core#resource";
const VM_ID: &str = "996ad860-2a9a-504f-8861-aeafd0b2ae29";
const NIC_ID: &str = "22fe83ae-a20f-54fc-b436-cec85c94c5e8";
const NET_ID: &str = "b7d55bf4-7057-5113-85c8-141871bf7635";

/// JSON-specific checks on top of the shared [`Step`] builder.
trait JsonChecks {
    fn schema(self, schema: &'static str) -> Self;
    fn json_has(self, pointer: &'static str, item: Value) -> Self;
    fn json_len(self, pointer: &'static str, n: usize) -> Self;
    fn category(self, group: &'static str, id: &str, members: Value) -> Self;
    fn no_category(self, group: &'static str, id: &str) -> Self;
}

impl JsonChecks for Step {
    /// The body validates against this OCCI JSON schema.
    fn schema(self, schema: &'static str) -> Self {
        self.custom("schema", move |r| validate_occi_json(schema, &parse_json(r)?))
    }
    /// The JSON value at `pointer` is an array holding `item`.
    fn json_has(self, pointer: &'static str, item: Value) -> Self {
        self.custom("array member", move |r| {
            let v = parse_json(r)?;
            match v.pointer(pointer).and_then(Value::as_array) {
                Some(a) if a.contains(&item) => Ok(()),
                other => Err(format!("{pointer} is {other:?}, which lacks {item}")),
            }
        })
    }
    /// The JSON value at `pointer` is an array of this length (absent counts as empty).
    fn json_len(self, pointer: &'static str, n: usize) -> Self {
        self.custom("array length", move |r| {
            let v = parse_json(r)?;
            let len = v.pointer(pointer).and_then(Value::as_array).map_or(0, Vec::len);
            if len == n { Ok(()) } else { Err(format!("{pointer} has {len} items, expected {n}")) }
        })
    }
    /// The category `id` of group `kinds`/`mixins`/`actions` has these members (others ignored).
    fn category(self, group: &'static str, id: &str, members: Value) -> Self {
        let id = id.to_string();
        self.custom("category members", move |r| {
            let v = parse_json(r)?;
            let cat = find_category(&v, group, &id).ok_or_else(|| format!("{group} has no {id}"))?;
            subset(&members, cat, "")
        })
    }
    /// No category `id` in group `group`.
    fn no_category(self, group: &'static str, id: &str) -> Self {
        let id = id.to_string();
        self.custom("category absent", move |r| match find_category(&parse_json(r)?, group, &id) {
            Some(_) => Err(format!("{group} has {id}")),
            None => Ok(()),
        })
    }
}

fn find_category<'a>(v: &'a Value, group: &str, id: &str) -> Option<&'a Value> {
    v.get(group)?.as_array()?.iter().find(|c| {
        format!("{}{}", c["scheme"].as_str().unwrap_or_default(), c["term"].as_str().unwrap_or_default()) == id
    })
}

/// Every member `want` states is in `have`, recursively (arrays and scalars compared whole).
fn subset(want: &Value, have: &Value, at: &str) -> Result<(), String> {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            for (k, wv) in w {
                let hv = h.get(k).ok_or_else(|| format!("{at}/{k} is missing in {have}"))?;
                subset(wv, hv, &format!("{at}/{k}"))?;
            }
            Ok(())
        }
        _ if want == have => Ok(()),
        _ => Err(format!("{at} is {have}, expected {want}")),
    }
}

fn post_json(path: &str, v: Value) -> Step {
    step("POST", path).accept(JSON).json_body(v)
}

fn get_json(path: &str) -> Step {
    step("GET", path).accept(JSON).ctype("application/occi+json")
}

fn parse_example(name: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("the fixed GFD.226 {name} example is no JSON: {e}"))
}

// ------------------------------------------------------------------- GFD.226 appendix examples

/// A.1 Resource Instance Example. Fixes: `"location:"/network/...` is `"location":"/network/...`
/// (spec typo); the link attributes are spelled `occi.infrastructure.networkinterface.*` in the
/// spec but GFD.224 names them `occi.networkinterface.*` (spec error, renamed); the ids lose
/// their `urn:uuid:` prefix (ids are the last segment of an entity's URL here).
const RESOURCE_EXAMPLE: &str = r#"{
    "kind": "http://schemas.ogf.org/occi/infrastructure#compute",
    "mixins": [
        "http://example.com/occi/infrastructure/os_tpl#debian9",
        "http://example.com/occi/infrastructure/resource_tpl#medium"
    ],
    "attributes": {
        "occi.compute.speed": 2,
        "occi.compute.memory": 4,
        "occi.compute.cores": 2,
        "com.example.occi.templates.myosmixin": {
            "mykey": "myvalue"
        }
    },
    "actions": [
        "http://schemas.ogf.org/occi/infrastructure/compute/action#start"
    ],
    "id": "996ad860-2a9a-504f-8861-aeafd0b2ae29",
    "links": [
        {
            "kind":"http://schemas.ogf.org/occi/infrastructure#networkinterface",
            "mixins":[
                "http://schemas.ogf.org/occi/infrastructure/networkinterface#ipnetworkinterface"
            ],
            "attributes":{
                "occi.networkinterface.interface":"eth0",
                "occi.networkinterface.mac":"00:80:41:ae:fd:7e",
                "occi.networkinterface.address":"192.168.0.100",
                "occi.networkinterface.gateway":"192.168.0.1",
                "occi.networkinterface.allocation":"dynamic"
            },
            "actions":[
                "http://schemas.ogf.org/occi/infrastructure/networkinterface/action#up",
                "http://schemas.ogf.org/occi/infrastructure/networkinterface/action#down"
            ],
            "id":"22fe83ae-a20f-54fc-b436-cec85c94c5e8",
            "target": {
                "location":"/network/b7d55bf4-7057-5113-85c8-141871bf7635",
                "kind":"http://schemas.ogf.org/occi/infrastructure#network"
            },
            "source": {
                "location":"/compute/996ad860-2a9a-504f-8861-aeafd0b2ae29",
                "kind":"http://schemas.ogf.org/occi/infrastructure#compute"
            }
        }
    ]
}"#;

/// A.2 Action Invocation Example (no fix needed).
const ACTION_INVOCATION_EXAMPLE: &str = r#"{
    "action":"http://schemas.ogf.org/occi/infrastructure/compute/action#stop",
    "attributes":{
        "method":"graceful"
    }
}"#;

/// A.3 Link Instance Example. Fixes as in A.1: `"location:"` (spec typo), the
/// `occi.infrastructure.networkinterface.*` attribute names (spec error) and the `urn:uuid:` id.
const LINK_EXAMPLE: &str = r#"{
    "kind":"http://schemas.ogf.org/occi/infrastructure#networkinterface",
    "mixins":[
        "http://schemas.ogf.org/occi/infrastructure/networkinterface#ipnetworkinterface"
    ],
    "attributes":{
        "occi.networkinterface.interface":"eth0",
        "occi.networkinterface.mac":"00:80:41:ae:fd:7e",
        "occi.networkinterface.address":"192.168.0.100",
        "occi.networkinterface.gateway":"192.168.0.1",
        "occi.networkinterface.allocation":"dynamic"
    },
    "actions":[
        "http://schemas.ogf.org/occi/infrastructure/networkinterface/action#up",
        "http://schemas.ogf.org/occi/infrastructure/networkinterface/action#down"
    ],
    "id":"22fe83ae-a20f-54fc-b436-cec85c94c5e8",
    "target": {
        "location":"/network/b7d55bf4-7057-5113-85c8-141871bf7635",
        "kind":"http://schemas.ogf.org/occi/infrastructure#network"
    },
    "source": {
        "location":"/compute/996ad860-2a9a-504f-8861-aeafd0b2ae29",
        "kind":"http://schemas.ogf.org/occi/infrastructure#compute"
    }
}"#;

/// A.4 Kind Instance Example. Fixes: the comma missing after `"description"` (spec typo) and
/// `"\S+"`, an invalid JSON escape, written `"\\S+"` (spec typo). Renamed: the scheme
/// `http://schemas.ogf.org/occi/infrastructure#` becomes `http://example.com/occi/infrastructure#`
/// and the location `/compute/` becomes `/example/compute/`, since the built-in compute kind
/// holds both.
const KIND_EXAMPLE: &str = r#"{
    "term":"compute",
    "scheme":"http://example.com/occi/infrastructure#",
    "title":"ComputeResource",
    "parent":"http://schemas.ogf.org/occi/core#resource",
    "attributes":{
        "occi.compute.hostname":{
            "mutable":true,
            "required":false,
            "type":"string",
            "description":"Hostname of the compute resource",
            "pattern": {
                "$schema": "http://json-schema.org/draft-04/schema#",
                "type": "string",
                "pattern": "\\S+"
            }
        },
        "occi.compute.state":{
            "mutable":false,
            "required":false,
            "type":"string",
            "default":"inactive",
            "description":"State the compute resource is in"
        }
    },
    "actions":[
        "http://schemas.ogf.org/occi/infrastructure/compute/action#start",
        "http://schemas.ogf.org/occi/infrastructure/compute/action#stop",
        "http://schemas.ogf.org/occi/infrastructure/compute/action#restart",
        "http://schemas.ogf.org/occi/infrastructure/compute/action#suspend"
    ],
    "location":"/example/compute/"
}"#;

/// A.5 Mixin Instance Example. Fix: `depends` names `...infrastructure#resourcetpl`, which GFD.224
/// calls `...infrastructure#resource_tpl` (spec error). No rename needed: the scheme
/// `http://example.com/template/resource#` is free.
const MIXIN_EXAMPLE: &str = r#"{
    "term":"medium",
    "scheme":"http://example.com/template/resource#",
    "depends":[
        "http://schemas.ogf.org/occi/infrastructure#resource_tpl"
    ],
    "applies":[
        "http://schemas.ogf.org/occi/infrastructure#compute"
    ],
    "attributes":{
        "occi.compute.speed":{
            "type":"number",
            "default":2.8
        }
    },
    "title":"MediumVM",
    "location":"/template/resource/medium/"
}"#;

/// A.6 Action Instance Example. Renamed: the scheme
/// `http://schemas.ogf.org/occi/infrastructure/compute/action#` becomes
/// `http://example.com/occi/infrastructure/compute/action#` (the built-in stop action has the id).
const ACTION_EXAMPLE: &str = r#"{
    "term":"stop",
    "scheme":"http://example.com/occi/infrastructure/compute/action#",
    "title":"StopComputeinstance",
    "attributes":{
        "method":{
            "mutable":true,
            "required":false,
            "type":"string",
            "default":"poweroff"
        }
    }
}"#;

fn appendix_cases() -> Vec<Case> {
    let resource = parse_example("resource", RESOURCE_EXAMPLE);
    let link = parse_example("link", LINK_EXAMPLE);
    let kind = parse_example("kind", KIND_EXAMPLE);
    let mixin = parse_example("mixin", MIXIN_EXAMPLE);
    let action = parse_example("action", ACTION_EXAMPLE);
    let invocation = parse_example("action invocation", ACTION_INVOCATION_EXAMPLE);
    let vm = format!("/compute/{VM_ID}");
    let nic = format!("/networkinterface/{NIC_ID}");
    let net = format!("/network/{NET_ID}");
    let ipni = "http://schemas.ogf.org/occi/infrastructure/networkinterface#ipnetworkinterface";
    let debian9 = "http://example.com/occi/infrastructure/os_tpl#debian9";
    let medium = "http://example.com/occi/infrastructure/resource_tpl#medium";
    let nic_attributes = json!({
        "occi.networkinterface.interface": "eth0",
        "occi.networkinterface.mac": "00:80:41:ae:fd:7e",
        "occi.networkinterface.address": "192.168.0.100",
        "occi.networkinterface.gateway": "192.168.0.1",
        "occi.networkinterface.allocation": "dynamic"
    });
    // Both ends of a link are rendered absolute (one form for link ends).
    let target = json!({"location": format!("{{base}}{net}"), "kind": NETWORK});
    let source = json!({"location": format!("{{base}}{vm}"), "kind": COMPUTE});
    vec![
        case(
            "GFD.226 A.4: the kind example, POSTed to /-/, is answered and read back as a model that validates and keeps its members",
            vec![
                post_json("/-/", json!({"kinds": [kind]}))
                    .schema("model")
                    .category("kinds", "http://example.com/occi/infrastructure#compute", json!({"title": "ComputeResource"})),
                get_json("/-/")
                    .schema("model")
                    .category(
                        "kinds",
                        "http://example.com/occi/infrastructure#compute",
                        json!({
                            "term": "compute", "scheme": "http://example.com/occi/infrastructure#", "title": "ComputeResource",
                            "parent": RESOURCE_KIND, "location": "/example/compute/",
                            "actions": [format!("{ACTIONS}start"), format!("{ACTIONS}stop"), format!("{ACTIONS}restart"), format!("{ACTIONS}suspend")],
                            "attributes": {
                                "occi.compute.hostname": {"mutable": true, "required": false, "type": "string",
                                                          "description": "Hostname of the compute resource"},
                                "occi.compute.state": {"mutable": false, "required": false, "type": "string", "default": "inactive",
                                                       "description": "State the compute resource is in"}
                            }
                        }),
                    )
                    .custom("the hostname pattern \\S+ is kept (as a JSON schema or its regular expression)", |r| {
                        let v = parse_json(r)?;
                        let cat = find_category(&v, "kinds", "http://example.com/occi/infrastructure#compute").ok_or("no kind")?;
                        let p = &cat["attributes"]["occi.compute.hostname"]["pattern"];
                        if p == "\\S+" || p["pattern"] == "\\S+" { Ok(()) } else { Err(format!("pattern {p}")) }
                    }),
            ],
        ),
        case(
            "GFD.226 3.5.1: the kind example's attribute description is enforced (pattern \\S+, default inactive)",
            vec![
                post_json(
                    "/example/compute/",
                    json!({"kind": "http://example.com/occi/infrastructure#compute", "id": "bad-host",
                           "attributes": {"occi.compute.hostname": "has space"}}),
                )
                .status(400)
                .custom("names the attribute", |r| {
                    if r.text.contains("occi.compute.hostname") { Ok(()) } else { Err(r.text.clone()) }
                }),
                post_json(
                    "/example/compute/",
                    json!({"kind": "http://example.com/occi/infrastructure#compute", "id": "good-host",
                           "attributes": {"occi.compute.hostname": "nospace"}}),
                )
                .status(201)
                .header("location", Match::Eq, "{base}/example/compute/good-host"),
                get_json("/example/compute/good-host")
                    .schema("resource")
                    .json("/attributes/occi.compute.state", json!("inactive"))
                    .json_has("/actions", json!(format!("{ACTIONS}start"))),
            ],
        ),
        case(
            "GFD.226 A.5: the mixin example (depends, applies, attribute default) is accepted, read back and validated",
            vec![
                post_json("/-/", json!({"mixins": [mixin]})).schema("model"),
                get_json("/-/").schema("model").category(
                    "mixins",
                    "http://example.com/template/resource#medium",
                    json!({
                        "title": "MediumVM", "location": "/template/resource/medium/",
                        "depends": [format!("{INFRA}resource_tpl")], "applies": [COMPUTE],
                        "attributes": {"occi.compute.speed": {"type": "number", "default": 2.8}}
                    }),
                ),
            ],
        ),
        case(
            "GFD.226 3.5.1: a mixin attribute default MUST be used when the attribute is absent (speed 2.8 from the mixin example)",
            vec![
                put_json("/compute/with-medium", json!({"kind": COMPUTE, "mixins": ["http://example.com/template/resource#medium"]})),
                get_json("/compute/with-medium").schema("resource").json("/attributes/occi.compute.speed", json!(2.8)),
            ],
        ),
        case(
            "GFD.226 A.6: the action example is accepted, read back and validated",
            vec![
                post_json("/-/", json!({"actions": [action]})).schema("model"),
                get_json("/-/").schema("model").category(
                    "actions",
                    "http://example.com/occi/infrastructure/compute/action#stop",
                    json!({
                        "title": "StopComputeinstance",
                        "attributes": {"method": {"mutable": true, "required": false, "type": "string", "default": "poweroff"}}
                    }),
                ),
            ],
        ),
        case(
            "GFD.226 A.1: the resource example with an inline link is created (201, absolute Location) and rendered back as a valid resource",
            vec![
                post_json(
                    "/-/",
                    json!({"mixins": [
                        {"term": "debian9", "scheme": "http://example.com/occi/infrastructure/os_tpl#",
                         "depends": [format!("{INFRA}os_tpl")], "applies": [COMPUTE], "location": "/example/os_tpl/debian9/",
                         "attributes": {"com.example.occi.templates.myosmixin": {"type": "object", "mutable": true}}},
                        {"term": "medium", "scheme": "http://example.com/occi/infrastructure/resource_tpl#",
                         "depends": [format!("{INFRA}resource_tpl")], "applies": [COMPUTE], "location": "/example/resource_tpl/medium/"}
                    ]}),
                ),
                put_json(&net, json!({"kind": NETWORK})),
                post_json("/compute/", resource)
                    .status(201)
                    .ctype("application/occi+json")
                    .header_count("location", 1)
                    .header("location", Match::Eq, &format!("{{base}}{vm}"))
                    .schema("locations")
                    .json("/0", json!(format!("{{base}}{vm}"))),
                get_json(&vm)
                    .schema("resource")
                    .json("/kind", json!(COMPUTE))
                    .json("/id", json!(VM_ID))
                    .json("/mixins", json!([debian9, medium]))
                    .json("/attributes/occi.compute.speed", json!(2))
                    .json("/attributes/occi.compute.memory", json!(4))
                    .json("/attributes/occi.compute.cores", json!(2))
                    .json("/attributes/com.example.occi.templates.myosmixin", json!({"mykey": "myvalue"}))
                    .json_has("/actions", json!(format!("{ACTIONS}start")))
                    .json_len("/links", 1)
                    .json("/links/0/kind", json!(NETWORKINTERFACE))
                    .json("/links/0/id", json!(NIC_ID))
                    .json("/links/0/mixins", json!([ipni]))
                    .json("/links/0/target", target.clone())
                    .json("/links/0/source", source.clone())
                    .custom("the link's attributes", {
                        let want = nic_attributes.clone();
                        move |r| subset(&want, &parse_json(r)?["links"][0]["attributes"], "/links/0/attributes")
                    }),
                get_json(&nic).schema("link").json("/target", target.clone()).json("/source", source.clone()),
            ],
        ),
        case(
            "GFD.223 8.2.2: a PUT replacing a resource leaves its links intact",
            vec![
                put_json(&vm, json!({"kind": COMPUTE, "mixins": [debian9, medium], "attributes": {"occi.compute.cores": 4}}))
                    .status(201)
                    .header("location", Match::Eq, &format!("{{base}}{vm}")),
                get_json(&vm).schema("resource").json("/attributes/occi.compute.cores", json!(4)).json("/links/0/id", json!(NIC_ID)),
            ],
        ),
        case(
            "GFD.226 A.3: the link example is created on its own (after its inline twin is deleted) and rendered back as a valid link",
            vec![
                step("DELETE", &nic).accept(JSON).status_in(&[200, 204]),
                get_json(&vm).json_len("/links", 0),
                post_json("/networkinterface/", link)
                    .status(201)
                    .header("location", Match::Eq, &format!("{{base}}{nic}"))
                    .schema("locations"),
                get_json(&nic)
                    .schema("link")
                    .json("/kind", json!(NETWORKINTERFACE))
                    .json("/id", json!(NIC_ID))
                    .json("/mixins", json!([ipni]))
                    .json("/target", target.clone())
                    .json("/source", source.clone())
                    .custom("the link's attributes", {
                        let want = nic_attributes.clone();
                        move |r| subset(&want, &parse_json(r)?["attributes"], "/attributes")
                    }),
                get_json(&vm).schema("resource").json("/links/0/id", json!(NIC_ID)),
                get_json("/networkinterface/").schema("entity-collection").json("/links/0/id", json!(NIC_ID)),
            ],
        ),
        case(
            "GFD.226 A.2: the action invocation example (stop, method graceful) validates and is answered with a valid resource",
            vec![
                post_json(&format!("{vm}?action=start"), json!({"action": format!("{ACTIONS}start")}))
                    .schema("resource")
                    .json("/attributes/occi.compute.state", json!("active")),
                post_json(&format!("{vm}?action=stop"), invocation.clone())
                    .custom("the example is an action-instance", move |_| validate_occi_json("action-instance", &invocation))
                    .ctype("application/occi+json")
                    .schema("resource")
                    .json("/attributes/occi.compute.state", json!("inactive")),
            ],
        ),
    ]
}

// --------------------------------------------------------------------------------------- cases

fn rendering_cases() -> Vec<Case> {
    vec![
        case(
            "GFD.226 3.2 / 3.4: GET /-/ is a model with kinds, mixins and actions; the compute kind's members",
            vec![
                get_json("/-/")
                    .schema("model")
                    .category(
                        "kinds",
                        COMPUTE,
                        json!({
                            "term": "compute", "scheme": INFRA, "parent": RESOURCE_KIND, "location": "/compute/",
                            "attributes": {
                                "occi.compute.cores": {"mutable": true, "required": false, "type": "number"},
                                "occi.compute.state": {"mutable": false, "required": false, "type": "string", "default": "inactive"}
                            }
                        }),
                    )
                    .category("mixins", &format!("{INFRA}os_tpl"), json!({"location": "/mixins/os_tpl/"}))
                    .category(
                        "actions",
                        &format!("{ACTIONS}stop"),
                        json!({"attributes": {"method": {"type": "string", "mutable": true}}}),
                    )
                    .custom("kind actions are ids of actions", |r| {
                        let v = parse_json(r)?;
                        let k = find_category(&v, "kinds", COMPUTE).ok_or("no compute")?;
                        if k["actions"].as_array().is_some_and(|a| a.contains(&json!(format!("{ACTIONS}start")))) {
                            Ok(())
                        } else {
                            Err(format!("actions {}", k["actions"]))
                        }
                    }),
            ],
        ),
        case(
            "GFD.185 3.4.1 / GFD.223 7.1: a Category request header filters GET /-/ to exactly that category (JSON answer); ?related=true adds its relatives",
            vec![
                get_json("/-/")
                    .h("Category", r#"storage; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#)
                    .schema("model")
                    .category("kinds", &format!("{INFRA}storage"), json!({"location": "/storage/"}))
                    .json_len("/kinds", 1)
                    .json_len("/mixins", 0)
                    .json_len("/actions", 0),
                get_json("/-/?related=true")
                    .h("Category", r#"storage; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#)
                    .schema("model")
                    .category("kinds", &format!("{INFRA}storage"), json!({"location": "/storage/"}))
                    .category("actions", "http://schemas.ogf.org/occi/infrastructure/storage/action#resize", json!({}))
                    .no_category("kinds", COMPUTE)
                    .no_category("kinds", NETWORK)
                    .no_category("actions", &format!("{ACTIONS}start")),
            ],
        ),
        case(
            "GFD.226 3.1.1 / 3.3: a resource and a collection validate; the resource carries kind, id, title, attributes, actions",
            vec![
                put_json("/compute/j1", json!({"kind": COMPUTE, "title": "one", "summary": "first",
                                               "attributes": {"occi.compute.cores": 2, "occi.compute.memory": 1.5}})),
                get_json("/compute/j1")
                    .schema("resource")
                    .json("/kind", json!(COMPUTE))
                    .json("/id", json!("j1"))
                    .json("/title", json!("one"))
                    .json("/summary", json!("first"))
                    .json("/attributes/occi.compute.cores", json!(2))
                    .json("/attributes/occi.compute.memory", json!(1.5))
                    .json_has("/actions", json!(format!("{ACTIONS}start"))),
                get_json("/compute/").schema("entity-collection").custom("j1 is listed", |r| {
                    let v = parse_json(r)?;
                    let ids: Vec<&Value> = v["resources"].as_array().map(|a| a.iter().map(|e| &e["id"]).collect()).unwrap_or_default();
                    if ids.contains(&&json!("j1")) { Ok(()) } else { Err(format!("ids {ids:?}")) }
                }),
            ],
        ),
        case(
            "GFD.226 3.3 / GFD.223 6: an empty collection is 200 and a valid (empty) entity collection",
            vec![get_json("/storage/").schema("entity-collection").json_len("/resources", 0)],
        ),
        case(
            "GFD.223 5.4: Accept text/uri-list on a single entity is 400, on a collection a list of absolute URLs",
            vec![
                step("GET", "/compute/j1").accept("text/uri-list").status(400),
                step("GET", "/compute/").accept("text/uri-list").ctype("text/uri-list").line("{base}/compute/j1"),
            ],
        ),
    ]
}

fn request_cases() -> Vec<Case> {
    vec![
        case(
            "GFD.223 9.3.1: POST of a JSON resource to its kind's collection is 201 with an absolute Location and a locations body",
            vec![
                post_json("/compute/", json!({"kind": COMPUTE, "attributes": {"occi.compute.cores": 3}}))
                    .status(201)
                    .ctype("application/occi+json")
                    .header_count("location", 1)
                    .header("location", Match::Prefix, "{base}/compute/")
                    .schema("locations")
                    .custom("the body lists the Location", |r| {
                        let v = parse_json(r)?;
                        let loc = r.header("location").unwrap_or_default();
                        if v.as_array().is_some_and(|a| a.contains(&json!(loc))) {
                            Ok(())
                        } else {
                            Err(format!("body {v}"))
                        }
                    })
                    .capture("loc"),
                get_json("{loc}").schema("resource").json("/attributes/occi.compute.cores", json!(3)),
            ],
        ),
        case(
            "GFD.223 9.3.1: a resource collection body ({\"resources\": [...]}) creates each resource",
            vec![
                post_json(
                    "/compute/",
                    json!({"resources": [{"kind": COMPUTE, "id": "jc1"}, {"kind": COMPUTE, "id": "jc2"}]}),
                )
                .status(201)
                .schema("locations")
                .json_len("", 2),
                get_json("/compute/jc1").schema("resource"),
                get_json("/compute/jc2").schema("resource"),
            ],
        ),
        case(
            "GFD.223 8.2.1: PUT creates at the URL the client chose (201, Location is that URL)",
            vec![
                put_json("/compute/j-chosen", json!({"kind": COMPUTE}))
                    .header("location", Match::Eq, "{base}/compute/j-chosen")
                    .ctype("application/occi+json"),
                get_json("/compute/j-chosen").json("/id", json!("j-chosen")),
            ],
        ),
        case(
            "GFD.185 3.4.4: POST / with a kind creates in that kind's collection",
            vec![
                post_json("/", json!({"kind": COMPUTE, "attributes": {"occi.compute.cores": 2}}))
                    .status(201)
                    .header("location", Match::Prefix, "{base}/compute/")
                    .capture("loc"),
                get_json("{loc}").json("/kind", json!(COMPUTE)),
            ],
        ),
        case(
            "GFD.223 8.3.1: a partial update (POST on an entity) changes only what it names; 201 with a Location",
            vec![
                put_json(
                    "/compute/j-partial",
                    json!({"kind": COMPUTE, "title": "before", "attributes": {"occi.compute.cores": 2}}),
                ),
                // GFD.226 3.1.1: kind has multiplicity 1 in a resource rendering, so the partial
                // rendering names it (the server refuses a body without kind).
                post_json("/compute/j-partial", json!({"kind": COMPUTE, "attributes": {"occi.compute.memory": 4.0}}))
                    .status(201)
                    .header("location", Match::Eq, "{base}/compute/j-partial"),
                get_json("/compute/j-partial")
                    .json("/title", json!("before"))
                    .json("/attributes/occi.compute.cores", json!(2))
                    .json("/attributes/occi.compute.memory", json!(4.0)),
            ],
        ),
        case(
            "GFD.223 7.2: an X-OCCI-Attribute request header filters a collection (JSON answer)",
            vec![
                compute_json("/compute/jf1", json!({"occi.compute.hostname": "filter-a"})),
                compute_json("/compute/jf2", json!({"occi.compute.hostname": "filter-b"})),
                get_json("/compute/")
                    .h("X-OCCI-Attribute", r#"occi.compute.hostname="filter-a""#)
                    .schema("entity-collection")
                    .json_len("/resources", 1)
                    .json("/resources/0/id", json!("jf1")),
            ],
        ),
        case(
            "GFD.223 9.3.3: POST /mixin/?action=start with a JSON action invocation acts on every member",
            vec![
                post_json("/-/", json!({"mixins": [{"term": "jact", "scheme": EX, "location": "/jact/"}]})),
                compute_json("/compute/ja1", json!({})),
                compute_json("/compute/ja2", json!({})),
                post_json("/jact/", json!(["/compute/ja1", "{base}/compute/ja2"])),
                post_json("/jact/?action=start", json!({"action": format!("{ACTIONS}start")})),
                get_json("/compute/ja1").json("/attributes/occi.compute.state", json!("active")),
                get_json("/compute/ja2").json("/attributes/occi.compute.state", json!("active")),
                get_json("/compute/jf1").json("/attributes/occi.compute.state", json!("inactive")),
            ],
        ),
        case(
            "GFD.185 3.6.6: a text/uri-list body associates entities with a mixin (Accept JSON); the mixin collection lists them",
            vec![
                post_json("/-/", json!({"mixins": [{"term": "juris", "scheme": EX, "location": "/juris/"}]})),
                compute_json("/compute/ju1", json!({})),
                step("POST", "/juris/").accept(JSON).body("text/uri-list", "{base}/compute/ju1\n"),
                get_json("/juris/")
                    .schema("entity-collection")
                    .json_len("/resources", 1)
                    .json("/resources/0/id", json!("ju1")),
                get_json("/compute/ju1").json("/mixins", json!([format!("{EX}juris")])),
            ],
        ),
        case(
            "GFD.223 9.3.2: associating entities with a mixin answers 200 with an entity collection rendering",
            vec![
                post_json("/-/", json!({"mixins": [{"term": "jassoc", "scheme": EX, "location": "/jassoc/"}]})),
                compute_json("/compute/jas1", json!({})),
                post_json("/jassoc/", json!(["/compute/jas1"]))
                    .ctype("application/occi+json")
                    .schema("entity-collection")
                    .json("/resources/0/id", json!("jas1")),
            ],
        ),
        case(
            "GFD.226 3.1.2: a link POSTed on its own gets source and target rendered as {location, kind}, both locations absolute",
            vec![
                put_json("/network/jn1", json!({"kind": NETWORK})),
                put_json("/compute/jl1", json!({"kind": COMPUTE})),
                post_json(
                    "/networkinterface/",
                    json!({"kind": NETWORKINTERFACE, "id": "jl1-eth0",
                           "source": {"location": "/compute/jl1"}, "target": {"location": "/network/jn1"},
                           "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:55"}}),
                )
                .status(201)
                .header("location", Match::Eq, "{base}/networkinterface/jl1-eth0"),
                get_json("/networkinterface/jl1-eth0")
                    .schema("link")
                    .json("/source", json!({"location": "{base}/compute/jl1", "kind": COMPUTE}))
                    .json("/target", json!({"location": "{base}/network/jn1", "kind": NETWORK})),
                get_json("/compute/jl1").schema("resource").json("/links/0/id", json!("jl1-eth0")),
            ],
        ),
    ]
}

fn protocol_cases() -> Vec<Case> {
    vec![
        case(
            "GFD.223 6: pagination with page and number; past the end an empty 200; number above the limit of 1000 is 413",
            vec![
                compute_json("/jpg/a", json!({})),
                compute_json("/jpg/b", json!({})),
                compute_json("/jpg/c", json!({})),
                get_json("/jpg/?page=1&number=2").schema("entity-collection").json_len("/resources", 2),
                get_json("/jpg/?page=2&number=2").schema("entity-collection").json_len("/resources", 1),
                get_json("/jpg/?page=3&number=2").schema("entity-collection").json_len("/resources", 0),
                get_json("/jpg/?number=1000").json_len("/resources", 3),
                step("GET", "/jpg/?page=1&number=1001").accept(JSON).status(413).json("/error/status", json!(413)),
            ],
        ),
        case(
            "GFD.223 5.3: Server header with OCCI/1.1 and OCCI/1.2; User-Agent OCCI/1.3 is 501, OCCI/1.2 is served",
            vec![
                get_json("/-/").header("server", Match::Has, "OCCI/1.1").header("server", Match::Has, "OCCI/1.2"),
                step("GET", "/-/")
                    .accept(JSON)
                    .h("User-Agent", "x OCCI/1.3")
                    .status(501)
                    .header("server", Match::Has, "OCCI/1.2")
                    .json("/error/status", json!(501)),
                get_json("/-/").h("User-Agent", "occi-client/1.1 (linux) libcurl/7.19.4 OCCI/1.2").schema("model"),
            ],
        ),
        case(
            "RFC 7231 5.3.2: q-values choose application/occi+json over text/plain;q=0.2",
            vec![
                step("GET", "/compute/j1")
                    .accept("text/plain;q=0.2, application/occi+json;q=0.8")
                    .ctype("application/occi+json")
                    .schema("resource"),
            ],
        ),
        case(
            "GFD.223 5.2: the Content-Type is the rendering produced (application/json and application/* give application/occi+json)",
            vec![
                step("GET", "/compute/j1").accept("application/json").ctype("application/occi+json").schema("resource"),
                step("GET", "/compute/j1").accept("application/*").ctype("application/occi+json").schema("resource"),
            ],
        ),
        case(
            "GFD.223 5.4: nothing acceptable (application/xml) is 406",
            vec![step("GET", "/compute/j1").accept("application/xml").status(406)],
        ),
        case(
            "GFD.223 9 (method table): PUT on a kind collection is 405 with an Allow header",
            vec![
                step("PUT", "/compute/")
                    .accept(JSON)
                    .json_body(json!({"kind": COMPUTE}))
                    .status(405)
                    .header("allow", Match::Has, "GET")
                    .allow_lacks_put()
                    .json("/error/status", json!(405)),
            ],
        ),
        case(
            "GFD.223 5.4: GET and DELETE of an unknown entity are 404",
            vec![
                step("GET", "/compute/j-unknown").accept(JSON).status(404).json("/error/status", json!(404)),
                step("DELETE", "/compute/j-unknown").accept(JSON).status(404),
            ],
        ),
        case(
            "GFD.223 5.4: creating an entity whose id exists is 409 Conflict",
            vec![
                post_json("/compute/", json!({"kind": COMPUTE, "id": "j1"}))
                    .status(409)
                    .json("/error/status", json!(409)),
            ],
        ),
        case(
            "GFD.223 8.4: DELETE of an entity is 200 or 204 and the entity is gone",
            vec![
                put_json("/compute/j-delete", json!({"kind": COMPUTE})),
                step("DELETE", "/compute/j-delete").accept(JSON).status_in(&[200, 204]),
                step("GET", "/compute/j-delete").accept(JSON).status(404),
            ],
        ),
    ]
}

// ----------------------------------------------------------------------------------------- tests

#[tokio::test]
async fn json_appendix_examples() {
    let server = TestServer::start().await;
    run(&server, appendix_cases()).await;
}

#[tokio::test]
async fn json_rendering_requests_and_protocol() {
    let server = TestServer::start().await;
    let mut cases = rendering_cases();
    cases.extend(request_cases());
    cases.extend(protocol_cases());
    run(&server, cases).await;
}
