//! OCCI conformance of the `text/occi` rendering (GFD.185 sections 3.4-3.6, GFD.229 sections 5
//! and 7): the OCCI data travels in the HTTP headers `Category`, `Link`, `X-OCCI-Attribute` and
//! `X-OCCI-Location`, the body is `OK`; plus the protocol rules of GFD.223 as they apply to it
//! (versioning, status codes, pagination, filtering by request headers, the method table).
//!
//! Each case is a list of HTTP exchanges, each with the status and the checks its answer must
//! pass. The cases of one table run in order against one server; a case stops at its first
//! failing exchange, and every failing case is reported at the end. Texts may use `{base}` (the
//! server's `http://host:port`) and the names a case captured (`.capture("loc")` keeps the path
//! of a `Location` header).
//!
//! Typos of the specification examples are fixed where noted ("spec typo").

use ocni_tests::conformance::*;
use ocni_tests::{COMPUTE, JSON, NETWORK, NETWORKINTERFACE, Reply, TestServer};
use serde_json::json;

// ------------------------------------------------------------------------------------- helpers

const NETWORK_REF: &str = r#"network; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#;
const OS_TPL_REF: &str = r#"os_tpl; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="mixin""#;

/// A request in the text/occi rendering: Accept and Content-Type text/occi, data in headers.
fn occi(method: &'static str, path: &str) -> Step {
    let s = step(method, path).accept("text/occi");
    if method == "GET" || method == "HEAD" { s } else { s.h("Content-Type", "text/occi") }
}

/// A text/occi GET whose answer is text/occi with the body `OK`.
fn get_occi(path: &str) -> Step {
    occi("GET", path).ctype("text/occi").custom("body is OK", ok_body)
}

/// A text/occi create at `path` with a compute Category and these extra headers.
fn put_compute(path: &str, extra: &[(&'static str, &str)]) -> Step {
    let mut s = occi("PUT", path).h("Category", COMPUTE_REF).status(201);
    for (k, v) in extra {
        s = s.h(k, v);
    }
    s
}

fn get_json(path: &str) -> Step {
    step("GET", path).accept(JSON)
}

/// Defines a mixin (no attributes) bound to `/{term}/` with a text/occi POST /-/.
fn define_mixin(term: &str) -> Step {
    occi("POST", "/-/").h("Category", &format!(r#"{term}; scheme="{EX}"; class="mixin"; location="/{term}/""#))
}

/// GFD.185 3.6.6 / GFD.229 7: the body of a successful text/occi answer is the string OK (a
/// line end after it is allowed).
fn ok_body(r: &Reply) -> Result<(), String> {
    if r.text.trim_end_matches(['\r', '\n']) == "OK" { Ok(()) } else { Err(format!("body {:?}", r.text)) }
}

/// The message of an error answer names this header (any case).
fn names_header(header: &'static str) -> impl Fn(&Reply) -> Result<(), String> {
    move |r: &Reply| {
        if r.text.to_ascii_lowercase().contains(header) { Ok(()) } else { Err(format!("message {:?}", r.text)) }
    }
}

/// The first Category value is the kind.
fn kind_first(kind_ref: &'static str) -> impl Fn(&Reply) -> Result<(), String> {
    move |r: &Reply| match field_values(r, "Category").first() {
        Some(v) if v == kind_ref => Ok(()),
        other => Err(format!("first Category value {other:?}")),
    }
}

/// The attributes of the GFD.185 / GFD.229 dummy VM example, as X-OCCI-Attribute values.
fn dummy_vm_fields(step: Step) -> Step {
    step.field("X-OCCI-Attribute", Match::Eq, r#"occi.core.title="My Dummy VM""#)
        .field("X-OCCI-Attribute", Match::Eq, r#"occi.compute.architecture="x86""#)
        .field("X-OCCI-Attribute", Match::Eq, r#"occi.compute.state="inactive""#)
        .field("X-OCCI-Attribute", Match::Eq, "occi.compute.speed=1.33")
        .field("X-OCCI-Attribute", Match::Eq, "occi.compute.memory=2.0")
        .field("X-OCCI-Attribute", Match::Eq, "occi.compute.cores=2")
        .field("X-OCCI-Attribute", Match::Eq, r#"occi.compute.hostname="dummy""#)
        .custom("occi.core.id is the id given (urn:uuid: prefix optional, see the ambiguity note)", dummy_id_echoed)
}

// --------------------------------------------------------------------------------------- cases

fn query_interface_cases() -> Vec<Case> {
    let compute_line = format!(
        r#"compute; scheme="{INFRA}"; class="kind"; title="Compute Resource"; rel="http://schemas.ogf.org/occi/core#resource"; location="/compute/"; attributes="occi.compute.architecture occi.compute.cores occi.compute.hostname occi.compute.share occi.compute.speed occi.compute.memory occi.compute.state{{immutable}} occi.compute.state.message{{immutable}}"; actions="{ACTIONS}start {ACTIONS}stop {ACTIONS}restart {ACTIONS}suspend {ACTIONS}save""#
    );
    vec![
        case(
            "GFD.185 3.6.6 / 3.5.1: GET /-/ with Accept text/occi renders the compute kind exactly in a Category header, body OK",
            vec![get_occi("/-/").field("Category", Match::Eq, &compute_line).lacks("Category:")],
        ),
        case(
            "GFD.185 3.5.1: every Category header value of GET /-/ follows the ABNF order, kinds and mixins with a relative location ending in /",
            vec![get_occi("/-/").custom("Category ABNF", category_abnf)],
        ),
        case(
            "GFD.185 3.5.1: attribute properties {required} and {immutable} and an action Category with attributes",
            vec![
                get_occi("/-/")
                    .field("Category", Match::Has, r#"; attributes="occi.storage.size{required} occi.storage.state{immutable} "#)
                    .field(
                        "Category",
                        Match::Eq,
                        &format!(
                            r#"stop; scheme="{ACTIONS}"; class="action"; title="Stop the compute instance"; attributes="method""#
                        ),
                    ),
            ],
        ),
        case(
            "GFD.185 3.4.1 / GFD.223 7.1: a Category request header filters GET /-/ (the kind and related categories only)",
            vec![
                get_occi("/-/")
                    .h("Category", COMPUTE_REF)
                    .field("Category", Match::Eq, &compute_line)
                    .field("Category", Match::Prefix, &format!(r#"start; scheme="{ACTIONS}"; class="action""#))
                    .no_field("Category", Match::Prefix, "storage;")
                    .no_field("Category", Match::Prefix, "network;")
                    .no_field("Category", Match::Prefix, "up;")
                    .no_field("Category", Match::Prefix, "ipnetworkinterface;"),
            ],
        ),
        case(
            "GFD.185 3.4.1: a mixin Category request header filters GET /-/ to that mixin and its relatives",
            vec![
                get_occi("/-/")
                    .h("Category", OS_TPL_REF)
                    .field("Category", Match::Prefix, &format!(r#"os_tpl; scheme="{INFRA}"; class="mixin""#))
                    .no_field("Category", Match::Prefix, "storage;")
                    .no_field("Category", Match::Prefix, "network;")
                    .no_field("Category", Match::Prefix, "resource_tpl;")
                    .no_field("Category", Match::Prefix, "ssh_key;"),
            ],
        ),
        case(
            "GFD.185 3.5 / 3.6.6: a comma-separated Category filter header equals two Category headers",
            vec![
                get_occi("/-/")
                    .h("Category", &format!(r#"storage; scheme="{INFRA}"; class="kind", {NETWORK_REF}"#))
                    .field("Category", Match::Prefix, "storage;")
                    .field("Category", Match::Prefix, "network;")
                    .no_field("Category", Match::Prefix, "compute;"),
                get_occi("/-/")
                    .h("Category", &format!(r#"storage; scheme="{INFRA}"; class="kind""#))
                    .h("Category", NETWORK_REF)
                    .field("Category", Match::Prefix, "storage;")
                    .field("Category", Match::Prefix, "network;")
                    .no_field("Category", Match::Prefix, "compute;"),
            ],
        ),
        case(
            "GFD.185 3.4.1: POST /-/ with a mixin Category header adds it (200, body OK); DELETE /-/ with the Category header removes it",
            vec![
                occi("POST", "/-/")
                    .h("Category", r#"my_stuff; scheme="http://example.com/occi/my_stuff#"; class="mixin"; location="/my_stuff/""#)
                    .ctype("text/occi")
                    .custom("body is OK", ok_body),
                get_occi("/-/").field(
                    "Category",
                    Match::Eq,
                    r#"my_stuff; scheme="http://example.com/occi/my_stuff#"; class="mixin"; location="/my_stuff/""#,
                ),
                occi("DELETE", "/-/").h("Category", r#"my_stuff; scheme="http://example.com/occi/my_stuff#"; class="mixin";"#),
                // The other categories are still listed; the deleted one is not.
                get_occi("/-/").field("Category", Match::Prefix, "compute;").no_field("Category", Match::Prefix, "my_stuff;"),
            ],
        ),
        case(
            "GFD.229 7: a successful DELETE /-/ answers with the body OK",
            vec![
                define_mixin("gone_mixin"),
                occi("DELETE", "/-/")
                    .h("Category", &format!(r#"gone_mixin; scheme="{EX}"; class="mixin""#))
                    .ctype("text/occi")
                    .custom("body is OK", ok_body),
            ],
        ),
        case(
            "GFD.185 3.4.1: DELETE /-/ of a provider-defined mixin is 403 Forbidden",
            vec![occi("DELETE", "/-/").h("Category", OS_TPL_REF).status(403)],
        ),
    ]
}

fn rendering_cases() -> Vec<Case> {
    vec![
        case(
            "GFD.185 3.6.6 / GFD.229 7: an entity in text/occi: Category headers (kind first), Link and X-OCCI-Attribute headers, body OK",
            vec![
                put_json(
                    "/compute/o1",
                    json!({"kind": COMPUTE, "mixins": [format!("{INFRA}os_tpl")], "title": "Rendered",
                           "attributes": {"occi.compute.cores": 2, "occi.compute.hostname": "foobar", "occi.compute.memory": 2.5}}),
                ),
                get_occi("/compute/o1")
                    .custom("kind first", kind_first(COMPUTE_REF))
                    .field("Category", Match::Eq, OS_TPL_REF)
                    .field_count("Category", 2)
                    .lacks("X-OCCI-Attribute"),
            ],
        ),
        case(
            "GFD.185 3.5.3: action references are Link headers </compute/o1?action=start>; rel=\"...#start\" (server-relative), only those applicable in the state (inactive: start, not suspend)",
            vec![
                get_occi("/compute/o1")
                    .field("Link", Match::Eq, &format!(r#"</compute/o1?action=start>; rel="{ACTIONS}start""#))
                    .no_field("Link", Match::Has, "?action=suspend>"),
            ],
        ),
        case(
            "GFD.185 3.5.4: X-OCCI-Attribute headers render numbers bare and strings quoted",
            vec![
                get_occi("/compute/o1")
                    .field("X-OCCI-Attribute", Match::Eq, "occi.compute.cores=2")
                    .field("X-OCCI-Attribute", Match::Eq, "occi.compute.memory=2.5")
                    .field("X-OCCI-Attribute", Match::Eq, r#"occi.compute.hostname="foobar""#)
                    .field("X-OCCI-Attribute", Match::Eq, r#"occi.core.title="Rendered""#)
                    .field("X-OCCI-Attribute", Match::Eq, r#"occi.core.id="o1""#),
            ],
        ),
        case(
            "GFD.185 3.6.6 (RFC 2616 quoted-string): a rendered value with commas and quotes stays one header value",
            vec![
                put_json("/compute/o2", json!({"kind": COMPUTE, "title": "a, \"b\", c"})),
                get_occi("/compute/o2").field("X-OCCI-Attribute", Match::Eq, r#"occi.core.title="a, \"b\", c""#),
            ],
        ),
        case(
            "GFD.185 3.4.5 / 3.5.2: a resource renders its link as a Link header with rel, self, category and link attributes",
            vec![
                put_json("/network/on1", json!({"kind": NETWORK})),
                put_json(
                    "/compute/ol1",
                    json!({"kind": COMPUTE, "links": [{"kind": NETWORKINTERFACE, "id": "ol1-eth0",
                            "target": {"location": "/network/on1"},
                            "attributes": {"occi.networkinterface.interface": "eth0", "occi.networkinterface.mac": "00:11:22:33:44:55"}}]}),
                ),
                get_occi("/compute/ol1")
                    .field(
                        "Link",
                        Match::Prefix,
                        &format!(
                            r#"</network/on1>; rel="{INFRA}network"; self="/networkinterface/ol1-eth0"; category="{INFRA}networkinterface""#
                        ),
                    )
                    .field("Link", Match::Has, r#"; occi.networkinterface.mac="00:11:22:33:44:55""#)
                    .field("Link", Match::Has, r#"; occi.networkinterface.interface="eth0""#),
            ],
        ),
        case(
            "GFD.185 3.4.5: a link in text/occi: its Category and occi.core.source / occi.core.target attributes",
            vec![
                get_occi("/networkinterface/ol1-eth0")
                    .custom("kind first", kind_first(r#"networkinterface; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#))
                    .field("X-OCCI-Attribute", Match::Eq, r#"occi.core.source="/compute/ol1""#)
                    .field("X-OCCI-Attribute", Match::Eq, r#"occi.core.target="/network/on1""#),
            ],
        ),
        case(
            "GFD.185 3.5.5: a collection in text/occi is X-OCCI-Location headers with absolute URLs, body OK",
            vec![
                get_occi("/compute/")
                    .field("X-OCCI-Location", Match::Eq, "{base}/compute/o1")
                    .field("X-OCCI-Location", Match::Eq, "{base}/compute/ol1")
                    .custom("absolute URLs", absolute_locations),
            ],
        ),
        case(
            "GFD.229 8: Accept text/uri-list on a single entity is 400, on a collection a URI list",
            vec![
                step("GET", "/compute/o1").accept("text/uri-list").status(400),
                step("GET", "/network/").accept("text/uri-list").ctype("text/uri-list").line("{base}/network/on1"),
            ],
        ),
    ]
}

fn create_cases() -> Vec<Case> {
    vec![
        case(
            "GFD.185 3.4.4 / 3.6.6: POST of a text/occi resource is 201 with one absolute Location header and the body OK",
            vec![
                occi("POST", "/compute/")
                    .h("Category", COMPUTE_REF)
                    .h("X-OCCI-Attribute", "occi.compute.cores=2")
                    .h("X-OCCI-Attribute", r#"occi.compute.hostname="foobar""#)
                    .status(201)
                    .ctype("text/occi")
                    .custom("body is OK", ok_body)
                    .header_count("location", 1)
                    .header("location", Match::Prefix, "{base}/compute/")
                    .capture("loc"),
                get_json("{loc}")
                    .json("/attributes/occi.compute.cores", json!(2))
                    .json("/attributes/occi.compute.hostname", json!("foobar")),
            ],
        ),
        case(
            "GFD.185 3.4.4 / GFD.223 8.2.1: PUT creates at the URL the client chose (201, Location is that URL)",
            vec![
                put_compute("/compute/o-chosen", &[("X-OCCI-Attribute", "occi.compute.cores=1")])
                    .custom("body is OK", ok_body)
                    .header("location", Match::Eq, "{base}/compute/o-chosen"),
                get_json("/compute/o-chosen").json("/id", json!("o-chosen")),
            ],
        ),
        case(
            "GFD.185 3.4.4: POST / with a kind Category header creates in that kind's collection",
            vec![
                occi("POST", "/")
                    .h("Category", &format!(r#"storage; scheme="{INFRA}"; class="kind""#))
                    .h("X-OCCI-Attribute", "occi.storage.size=10")
                    .status(201)
                    .header("location", Match::Prefix, "{base}/storage/")
                    .capture("loc"),
                get_json("{loc}").json("/attributes/occi.storage.size", json!(10)),
            ],
        ),
        case(
            "GFD.185 3.4.5: a Link header with category= in a create makes the link, which the resource then renders",
            vec![
                occi("PUT", "/network/o123").h("Category", NETWORK_REF).status(201),
                occi("POST", "/compute/")
                    .h("Category", COMPUTE_REF)
                    .h(
                        "Link",
                        &format!(
                            r#"</network/o123>; rel="{INFRA}network"; category="{INFRA}networkinterface"; occi.networkinterface.interface="eth0"; occi.networkinterface.mac="00:11:22:33:44:55";"#
                        ),
                    )
                    .h("X-OCCI-Attribute", r#"occi.compute.cores=2, occi.compute.hostname="foobar""#)
                    .status(201)
                    .header("location", Match::Prefix, "{base}/compute/")
                    .capture("loc"),
                get_occi("{loc}")
                    .field(
                        "Link",
                        Match::Prefix,
                        &format!(r#"</network/o123>; rel="{INFRA}network"; self="/networkinterface/"#),
                    )
                    .field("Link", Match::Has, &format!(r#"; category="{INFRA}networkinterface""#))
                    .field("Link", Match::Has, r#"; occi.networkinterface.mac="00:11:22:33:44:55""#),
                get_occi("/networkinterface/").field_count("X-OCCI-Location", 1),
            ],
        ),
        case(
            "GFD.185 3.4.5: an inline link creation returns only the Location of the resource",
            vec![
                occi("PUT", "/network/o124").h("Category", NETWORK_REF).status(201),
                occi("POST", "/compute/")
                    .h("Category", COMPUTE_REF)
                    .h(
                        "Link",
                        &format!(
                            r#"</network/o124>; rel="{INFRA}network"; category="{INFRA}networkinterface"; occi.networkinterface.mac="00:11:22:33:44:56""#
                        ),
                    )
                    .status(201)
                    .header_count("location", 1)
                    .header("location", Match::Prefix, "{base}/compute/"),
            ],
        ),
        case(
            "GFD.185 3.4.4 (Full Update): a Link header in a PUT on an existing resource is 400",
            vec![
                occi("PUT", "/network/o125").h("Category", NETWORK_REF).status(201),
                put_compute("/compute/o-full-update", &[]),
                put_compute(
                    "/compute/o-full-update",
                    &[(
                        "Link",
                        r#"</network/o125>; rel="http://schemas.ogf.org/occi/infrastructure#network"; category="http://schemas.ogf.org/occi/infrastructure#networkinterface"; occi.networkinterface.mac="00:11:22:33:44:57""#,
                    )],
                )
                .status(400),
            ],
        ),
    ]
}

fn parsing_cases() -> Vec<Case> {
    let attrs = json!({"occi.compute.cores": 3, "occi.compute.hostname": "h1", "occi.compute.memory": 1.5, "occi.compute.state": "inactive"});
    vec![
        case(
            "GFD.185 3.6.6: repeated X-OCCI-Attribute headers and one comma-separated header give identical entities",
            vec![
                put_compute(
                    "/compute/o-comma",
                    &[("X-OCCI-Attribute", r#"occi.compute.cores=3, occi.compute.hostname="h1", occi.compute.memory=1.5"#)],
                ),
                put_compute(
                    "/compute/o-repeated",
                    &[
                        ("X-OCCI-Attribute", "occi.compute.cores=3"),
                        ("X-OCCI-Attribute", r#"occi.compute.hostname="h1""#),
                        ("X-OCCI-Attribute", "occi.compute.memory=1.5"),
                    ],
                ),
                get_json("/compute/o-comma").json("/attributes", attrs.clone()),
                get_json("/compute/o-repeated").json("/attributes", attrs),
            ],
        ),
        case(
            "GFD.185 3.6.6: repeated Category headers and one comma-separated Category header give identical entities",
            vec![
                occi("PUT", "/compute/o-cats-comma").h("Category", &format!("{COMPUTE_REF}, {OS_TPL_REF}")).status(201),
                occi("PUT", "/compute/o-cats-repeated").h("Category", COMPUTE_REF).h("Category", OS_TPL_REF).status(201),
                get_json("/compute/o-cats-comma").json("/kind", json!(COMPUTE)).json("/mixins", json!([format!("{INFRA}os_tpl")])),
                get_json("/compute/o-cats-repeated").json("/kind", json!(COMPUTE)).json("/mixins", json!([format!("{INFRA}os_tpl")])),
            ],
        ),
        case(
            "GFD.185 3.6.6 / 3.4.3: repeated X-OCCI-Location headers and one comma-separated header associate the same entities",
            vec![
                define_mixin("otag_comma"),
                define_mixin("otag_repeated"),
                compute_json("/compute/ox1", json!({})),
                compute_json("/compute/ox2", json!({})),
                occi("POST", "/otag_comma/").h("X-OCCI-Location", "{base}/compute/ox1, {base}/compute/ox2"),
                occi("POST", "/otag_repeated/")
                    .h("X-OCCI-Location", "{base}/compute/ox1")
                    .h("X-OCCI-Location", "{base}/compute/ox2"),
                // GFD.185 3.5.5: several URIs are returned as several X-OCCI-Location headers.
                get_occi("/otag_comma/")
                    .header_count("x-occi-location", 2)
                    .field("X-OCCI-Location", Match::Eq, "{base}/compute/ox1")
                    .field("X-OCCI-Location", Match::Eq, "{base}/compute/ox2")
                    .field_count("X-OCCI-Location", 2),
                get_occi("/otag_repeated/")
                    .field("X-OCCI-Location", Match::Eq, "{base}/compute/ox1")
                    .field("X-OCCI-Location", Match::Eq, "{base}/compute/ox2")
                    .field_count("X-OCCI-Location", 2),
            ],
        ),
        case(
            "GFD.185 3.6.6 (RFC 2616 quoted-string): commas inside a quoted header value are no list separators",
            vec![
                put_compute("/compute/o-commas", &[("X-OCCI-Attribute", r#"occi.core.title="a, b, c", occi.compute.cores=2"#)]),
                get_json("/compute/o-commas").json("/title", json!("a, b, c")).json("/attributes/occi.compute.cores", json!(2)),
            ],
        ),
        case(
            "GFD.185 3.6.6 (RFC 2616 quoted-pair): \\\" and \\\\ escapes in a quoted header value",
            vec![
                put_compute("/compute/o-escapes", &[("X-OCCI-Attribute", r#"occi.core.title="say \"hi\", \\ bye""#)]),
                get_json("/compute/o-escapes").json("/title", json!("say \"hi\", \\ bye")),
            ],
        ),
        case(
            "GFD.185 3.6.6 (RFC 2616 field names): header names are case-insensitive (x-occi-attribute, CATEGORY, X-Occi-Attribute)",
            vec![
                occi("PUT", "/compute/o-case")
                    .h("CATEGORY", COMPUTE_REF)
                    .h("x-occi-attribute", "occi.compute.cores=5")
                    .h("X-Occi-Attribute", r#"occi.compute.hostname="mixed""#)
                    .status(201),
                get_json("/compute/o-case")
                    .json("/attributes/occi.compute.cores", json!(5))
                    .json("/attributes/occi.compute.hostname", json!("mixed")),
            ],
        ),
        case(
            "GFD.185 3.5.1: a Category header without class is looked up by scheme and term",
            vec![
                occi("PUT", "/compute/o-noclass").h("Category", &format!(r#"compute; scheme="{INFRA}""#)).status(201),
                get_json("/compute/o-noclass").json("/kind", json!(COMPUTE)),
            ],
        ),
        case(
            "GFD.185 3.5.1: an optional trailing ';', extra spaces and an unquoted class in a Category header are accepted",
            vec![
                occi("PUT", "/compute/o-spaces")
                    .h("Category", &format!(r#"compute ;   scheme="{INFRA}"  ;  class=kind ;"#))
                    .h("X-OCCI-Attribute", "occi.compute.cores=7 ,  occi.compute.hostname=\"sp\"  ")
                    .status(201),
                get_json("/compute/o-spaces")
                    .json("/kind", json!(COMPUTE))
                    .json("/attributes/occi.compute.cores", json!(7))
                    .json("/attributes/occi.compute.hostname", json!("sp")),
            ],
        ),
        case(
            "GFD.185 3.5.4: bare numbers and booleans and quoted strings in headers get their types (checked through JSON)",
            vec![
                step("POST", "/-/").accept(JSON).json_body(json!({"mixins": [{
                    "term": "otyped", "scheme": EX, "location": "/otyped/",
                    "attributes": {
                        "ex.flag": {"type": "boolean", "mutable": true},
                        "ex.ratio": {"type": "number", "mutable": true},
                        "ex.count": {"type": "number", "mutable": true},
                        "ex.label": {"type": "string", "mutable": true}
                    }}]})),
                occi("PUT", "/compute/o-typed")
                    .h("Category", &format!(r#"{COMPUTE_REF}, otyped; scheme="{EX}"; class="mixin""#))
                    .h("X-OCCI-Attribute", r#"ex.flag=false, ex.ratio=0.25, ex.count=7, ex.label="false""#)
                    .h("X-OCCI-Attribute", r#"occi.compute.hostname="12", occi.compute.speed=3.0"#)
                    .status(201),
                get_json("/compute/o-typed")
                    .json("/attributes/ex.flag", json!(false))
                    .json("/attributes/ex.ratio", json!(0.25))
                    .json("/attributes/ex.count", json!(7))
                    .json("/attributes/ex.label", json!("false"))
                    .json("/attributes/occi.compute.hostname", json!("12"))
                    .json("/attributes/occi.compute.speed", json!(3.0)),
                get_occi("/compute/o-typed")
                    .field("X-OCCI-Attribute", Match::Eq, "ex.flag=false")
                    .field("X-OCCI-Attribute", Match::Eq, r#"ex.label="false""#)
                    .field("X-OCCI-Attribute", Match::Eq, "ex.count=7"),
            ],
        ),
        case(
            "GFD.185 3.5.4: a quoted number in a header is a string, so an integer attribute refuses it with 400",
            vec![
                put_compute("/compute/o-quoted-int", &[("X-OCCI-Attribute", r#"occi.compute.cores="2""#)])
                    .status(400)
                    .contains("occi.compute.cores"),
            ],
        ),
        case(
            "GFD.185 3.6.8: a malformed X-OCCI-Attribute header (no '=') is 400 naming the header",
            vec![
                put_compute("/compute/o-bad1", &[("X-OCCI-Attribute", "occi.compute.cores")])
                    .status(400)
                    .custom("names x-occi-attribute", names_header("x-occi-attribute")),
            ],
        ),
        case(
            "GFD.185 3.6.8: a malformed Category header (no scheme) is 400 naming the header",
            vec![
                occi("PUT", "/compute/o-bad2")
                    .h("Category", r#"compute; class="kind""#)
                    .status(400)
                    .custom("names category", names_header("category")),
            ],
        ),
        case(
            "GFD.185 3.6.8: a malformed Link header (no <URI>) is 400 naming the header",
            vec![
                put_compute(
                    "/compute/o-bad3",
                    &[(
                        "Link",
                        r#"/network/o123; rel="http://schemas.ogf.org/occi/infrastructure#network"; category="http://schemas.ogf.org/occi/infrastructure#networkinterface""#,
                    )],
                )
                .status(400)
                .custom("names link", names_header("link")),
            ],
        ),
        case(
            "GFD.185 3.6.8: an unterminated quoted string in a header is 400 naming the header",
            vec![
                put_compute("/compute/o-bad4", &[("X-OCCI-Attribute", r#"occi.core.title="open, occi.compute.cores=2"#)])
                    .status(400)
                    .custom("names x-occi-attribute", names_header("x-occi-attribute")),
            ],
        ),
        case(
            "GFD.185 3.6.6: a text/uri-list body associates the listed entities with a mixin (Accept text/occi)",
            vec![
                define_mixin("otag_uris"),
                compute_json("/compute/ou1", json!({})),
                step("POST", "/otag_uris/").accept("text/occi").body("text/uri-list", "{base}/compute/ou1\n"),
                get_occi("/otag_uris/").field("X-OCCI-Location", Match::Eq, "{base}/compute/ou1").field_count("X-OCCI-Location", 1),
            ],
        ),
    ]
}

fn protocol_cases() -> Vec<Case> {
    vec![
        case(
            "GFD.185 3.4.3 / GFD.223 7.2: an X-OCCI-Attribute request header filters a collection by attribute value",
            vec![
                compute_json("/compute/of1", json!({"occi.compute.hostname": "filter-a"})),
                compute_json("/compute/of2", json!({"occi.compute.hostname": "filter-b"})),
                get_occi("/compute/")
                    .h("X-OCCI-Attribute", r#"occi.compute.hostname="filter-a""#)
                    .field("X-OCCI-Location", Match::Eq, "{base}/compute/of1")
                    .field_count("X-OCCI-Location", 1),
            ],
        ),
        case(
            "GFD.185 3.4.3: a mixin Category request header filters a collection",
            vec![
                put_json("/compute/ofm1", json!({"kind": COMPUTE, "mixins": [format!("{INFRA}os_tpl")]})),
                get_occi("/compute/")
                    .h("Category", OS_TPL_REF)
                    .field("X-OCCI-Location", Match::Eq, "{base}/compute/ofm1")
                    .no_field("X-OCCI-Location", Match::Eq, "{base}/compute/of1"),
            ],
        ),
        case(
            "GFD.185 3.4.3: POST /mixin/?action=start with the action Category header acts on every member",
            vec![
                define_mixin("oact_group"),
                compute_json("/compute/oa1", json!({})),
                compute_json("/compute/oa2", json!({})),
                occi("POST", "/oact_group/").h("X-OCCI-Location", "/compute/oa1, /compute/oa2"),
                occi("POST", "/oact_group/?action=start")
                    .h("Category", &format!(r#"start; scheme="{ACTIONS}"; class="action""#)),
                get_json("/compute/oa1").json("/attributes/occi.compute.state", json!("active")),
                get_json("/compute/oa2").json("/attributes/occi.compute.state", json!("active")),
                get_json("/compute/of1").json("/attributes/occi.compute.state", json!("inactive")),
            ],
        ),
        case(
            "GFD.185 3.4.4: POST ?action=stop with the example's Category and X-OCCI-Attribute: method=\"poweroff\" headers",
            vec![
                occi("POST", "/compute/oa1?action=stop")
                    .h("Category", &format!(r#"stop; scheme="{ACTIONS}"; class="action";"#))
                    .h("X-OCCI-Attribute", r#"method="poweroff""#),
                get_json("/compute/oa1").json("/attributes/occi.compute.state", json!("inactive")),
            ],
        ),
        case(
            "GFD.229 7: a successful action invocation answers with the body OK",
            vec![
                occi("POST", "/compute/oa2?action=stop")
                    .h("Category", &format!(r#"stop; scheme="{ACTIONS}"; class="action""#))
                    .ctype("text/occi")
                    .custom("body is OK", ok_body),
            ],
        ),
        case(
            "GFD.229 7: a successful DELETE of an entity answers with the body OK",
            vec![
                put_compute("/compute/o-delete-me", &[]),
                occi("DELETE", "/compute/o-delete-me").ctype("text/occi").custom("body is OK", ok_body),
            ],
        ),
        case(
            "GFD.229 7: a successful mixin association answers with the body OK",
            vec![
                define_mixin("otag_ok"),
                put_compute("/compute/o-assoc", &[]),
                occi("POST", "/otag_ok/")
                    .h("X-OCCI-Location", "/compute/o-assoc")
                    .ctype("text/occi")
                    .custom("body is OK", ok_body),
            ],
        ),
        case(
            "GFD.223 6: pagination with page and number in text/occi; past the end an empty 200; number above 1000 is 413",
            vec![
                compute_json("/opg/a", json!({})),
                compute_json("/opg/b", json!({})),
                compute_json("/opg/c", json!({})),
                get_occi("/opg/?page=1&number=2").field_count("X-OCCI-Location", 2),
                get_occi("/opg/?page=2&number=2").field_count("X-OCCI-Location", 1),
                get_occi("/opg/?page=3&number=2").field_count("X-OCCI-Location", 0),
                get_occi("/opg/?page=1&number=1000").field_count("X-OCCI-Location", 3),
                occi("GET", "/opg/?number=1001").status(413),
            ],
        ),
        case(
            "GFD.223 5.3: Server header with OCCI/1.1 and OCCI/1.2; User-Agent OCCI/1.3 is 501",
            vec![
                get_occi("/-/").header("server", Match::Has, "OCCI/1.1").header("server", Match::Has, "OCCI/1.2"),
                occi("GET", "/-/").h("User-Agent", "x OCCI/1.3").status(501).header("server", Match::Has, "OCCI/1.2"),
                get_occi("/-/").h("User-Agent", "occi-client/1.1 OCCI/1.2"),
            ],
        ),
        case(
            "RFC 7231 5.3.2: Accept application/occi+json;q=0.1, text/occi;q=0.9 gives text/occi",
            vec![
                step("GET", "/compute/o1")
                    .accept("application/occi+json;q=0.1, text/occi;q=0.9")
                    .ctype("text/occi")
                    .custom("body is OK", ok_body)
                    .custom("kind first", kind_first(COMPUTE_REF)),
            ],
        ),
        case(
            "RFC 7231 5.3.2: at equal q the first listed wins (text/occi, text/plain gives text/occi)",
            vec![step("GET", "/compute/o1").accept("text/occi, text/plain").ctype("text/occi")],
        ),
        case(
            "RFC 7231 5.3.2: a lower q-value loses (text/occi;q=0.5, text/plain;q=0.6 gives text/plain)",
            vec![
                step("GET", "/compute/o1")
                    .accept("text/occi;q=0.5, text/plain;q=0.6")
                    .ctype("text/plain")
                    .line(&format!("Category: {COMPUTE_REF}")),
            ],
        ),
        case(
            "GFD.223 5.4: nothing acceptable (application/xml) is 406",
            vec![step("GET", "/compute/o1").accept("application/xml").status(406)],
        ),
        case(
            "GFD.223 9 (method table): PUT on a kind collection is 405 with an Allow header",
            vec![
                occi("PUT", "/compute/")
                    .h("Category", COMPUTE_REF)
                    .status(405)
                    .header("allow", Match::Has, "POST")
                    .allow_lacks_put(),
            ],
        ),
        case("GFD.223 5.4: DELETE of an unknown entity is 404", vec![occi("DELETE", "/compute/o-unknown").status(404)]),
        case(
            "GFD.223 5.4: creating an entity whose id exists is 409 Conflict",
            vec![
                put_compute("/compute/o-dup", &[]),
                occi("POST", "/compute/")
                    .h("Category", COMPUTE_REF)
                    .h("X-OCCI-Attribute", r#"occi.core.id="o-dup""#)
                    .status(409),
            ],
        ),
        case(
            "GFD.185 3.4.3: POST /compute/?action=stop with the action Category acts on the whole kind collection",
            vec![
                occi("POST", "/compute/?action=start")
                    .h("Category", &format!(r#"start; scheme="{ACTIONS}"; class="action""#)),
                get_json("/compute/of1").json("/attributes/occi.compute.state", json!("active")),
                occi("POST", "/compute/?action=stop")
                    .h("Category", &format!(r#"stop; scheme="{ACTIONS}"; class="action";"#))
                    .h("X-OCCI-Attribute", r#"method="poweroff""#),
                get_json("/compute/of1").json("/attributes/occi.compute.state", json!("inactive")),
                get_json("/compute/oa1").json("/attributes/occi.compute.state", json!("inactive")),
            ],
        ),
    ]
}

fn spec_example_cases() -> Vec<Case> {
    vec![
        case(
            "GFD.185 3.7.1 (More Complete Examples): creating a compute with the Category header only, Accept text/occi",
            vec![
                occi("POST", "/compute/")
                    .h("User-Agent", "curl/7.21.0 (x86_64-pc-linux-gnu) libcurl/7.21.0 OpenSSL/0.9.8o zlib/1.2.3.4 libidn/1.18")
                    .h("Category", r#"compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind";"#)
                    .status(201)
                    .ctype("text/occi")
                    .custom("body is OK", ok_body)
                    .header_count("location", 1)
                    .header("location", Match::Prefix, "{base}/compute/")
                    .capture("loc"),
                get_occi("{loc}").custom("kind first", kind_first(COMPUTE_REF)),
            ],
        ),
        case(
            // Spec typo: no ';' between scheme="..." and class="kind"; added. The header values are
            // sent on one line each (a backslash continuation is no HTTP syntax).
            "GFD.229 7 (text/occi example): the entity rendering sent as headers (comma list of attributes) and read back",
            vec![
                occi("PUT", &format!("/users/foo/compute/{DUMMY_ID}"))
                    .h("Category", r#"compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind";"#)
                    .h(
                        "Link",
                        r#"</users/foo/compute/b9ff813e-fee5-4a9d-b839-673f39746096?action=start>; rel="http://schemas.ogf.org/occi/infrastructure/compute/action#start""#,
                    )
                    .h(
                        "X-OCCI-Attribute",
                        r#"occi.core.id="urn:uuid:b9ff813e-fee5-4a9d-b839-673f39746096", occi.core.title="My Dummy VM", occi.compute.architecture="x86", occi.compute.state="inactive", occi.compute.speed=1.33, occi.compute.memory=2.0, occi.compute.cores=2, occi.compute.hostname="dummy""#,
                    )
                    .status(201)
                    .header("location", Match::Eq, &format!("{{base}}/users/foo/compute/{DUMMY_ID}")),
                dummy_vm_fields(
                    get_occi(&format!("/users/foo/compute/{DUMMY_ID}"))
                        .custom("kind first", kind_first(COMPUTE_REF))
                        .field(
                            "Link",
                            Match::Eq,
                            &format!(r#"</users/foo/compute/{DUMMY_ID}?action=start>; rel="{ACTIONS}start""#),
                        ),
                ),
                get_occi("/compute/").field("X-OCCI-Location", Match::Eq, &format!("{{base}}/users/foo/compute/{DUMMY_ID}")),
            ],
        ),
    ]
}

// ----------------------------------------------------------------------------------------- tests

#[tokio::test]
async fn text_occi_query_interface_and_rendering() {
    let server = TestServer::start().await;
    let mut cases = query_interface_cases();
    cases.extend(rendering_cases());
    run(&server, cases).await;
}

#[tokio::test]
async fn text_occi_requests() {
    let server = TestServer::start().await;
    let mut cases = create_cases();
    cases.extend(parsing_cases());
    run(&server, cases).await;
}

#[tokio::test]
async fn text_occi_protocol_and_spec_examples() {
    let server = TestServer::start().await;
    // The negotiation cases read /compute/o1.
    let mut cases = vec![case("setup: a compute at /compute/o1", vec![compute_json("/compute/o1", json!({}))])];
    cases.extend(protocol_cases());
    cases.extend(spec_example_cases());
    run(&server, cases).await;
}
