//! OCCI conformance of the `text/plain` rendering (GFD.185 sections 3.4-3.6, GFD.229 sections 5-6,
//! 8) and of the protocol rules that go with it (GFD.223: versioning, status codes, pagination,
//! filtering, the method table), as one table of named cases.
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

const CAT_COMPUTE: &str = r#"Category: compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#;
const CAT_NETWORK: &str = r#"Category: network; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#;

/// Lines of a text/plain body.
fn lines(ls: &[&str]) -> String {
    let mut s = ls.join("\n");
    s.push('\n');
    s
}

fn get_json(path: &str) -> Step {
    step("GET", path).accept(JSON)
}

fn get_plain(path: &str) -> Step {
    step("GET", path).accept("text/plain").ctype("text/plain")
}

/// A text/plain create at `path` from these body lines.
fn put_plain(path: &str, body: &[&str]) -> Step {
    step("PUT", path).accept("text/plain").plain(&lines(body)).status(201)
}

/// Defines a mixin (no attributes) bound to `/{term}/` with a text/plain POST /-/.
fn define_mixin(term: &str) -> Step {
    let body = format!(r#"Category: {term}; scheme="{EX}"; class="mixin"; location="/{term}/""#);
    step("POST", "/-/").accept("text/plain").plain(&body)
}

/// GFD.229 5.1.1: `1*(Category) *(Link) *(Attribute)`, in that order, Category first.
fn resource_order(r: &Reply) -> Result<(), String> {
    let mut rank = 0;
    for (i, l) in r.text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let name = l.split_once(':').map(|(n, _)| n.trim().to_ascii_lowercase()).unwrap_or_default();
        let this = match name.as_str() {
            "category" => 0,
            "link" => 1,
            "x-occi-attribute" => 2,
            other => return Err(format!("line {} is a {other:?} field", i + 1)),
        };
        if i == 0 && this != 0 {
            return Err("the first line is no Category".into());
        }
        if this < rank {
            return Err(format!("line {} ({l:?}) comes after a later kind of field", i + 1));
        }
        rank = this;
    }
    Ok(())
}

/// The attribute lines of the GFD.185 "Retrieving a Compute resource instance" example as the
/// server renders them (its attributes sorted by name).
fn dummy_vm_lines(step: Step) -> Step {
    step.line(r#"X-OCCI-Attribute: occi.core.title="My Dummy VM""#)
        .line(r#"X-OCCI-Attribute: occi.compute.architecture="x86""#)
        .line(r#"X-OCCI-Attribute: occi.compute.state="inactive""#)
        .line("X-OCCI-Attribute: occi.compute.speed=1.33")
        .line("X-OCCI-Attribute: occi.compute.memory=2.0")
        .line("X-OCCI-Attribute: occi.compute.cores=2")
        .line(r#"X-OCCI-Attribute: occi.compute.hostname="dummy""#)
        .custom("occi.core.id is the id given (urn:uuid: prefix optional, see the ambiguity note)", dummy_id_echoed)
}

// --------------------------------------------------------------------------------------- cases

fn query_interface_cases() -> Vec<Case> {
    let compute_line = format!(
        r#"compute; scheme="{INFRA}"; class="kind"; title="Compute Resource"; rel="http://schemas.ogf.org/occi/core#resource"; location="/compute/"; attributes="occi.compute.architecture occi.compute.cores occi.compute.hostname occi.compute.share occi.compute.speed occi.compute.memory occi.compute.state{{immutable}} occi.compute.state.message{{immutable}}"; actions="{ACTIONS}start {ACTIONS}stop {ACTIONS}restart {ACTIONS}suspend {ACTIONS}save""#
    );
    vec![
        case(
            "GFD.185 3.5.1: GET /-/ renders the compute kind exactly as term; scheme; class; title; rel; location; attributes; actions",
            vec![get_plain("/-/").field("Category", Match::Eq, &compute_line)],
        ),
        case(
            "GFD.185 3.5.1: every Category line of GET /-/ follows the ABNF order, kinds and mixins with a relative location ending in /",
            vec![get_plain("/-/").custom("Category ABNF", category_abnf)],
        ),
        case(
            "GFD.185 3.5.1: attribute properties {required} and {immutable} (the storage kind example)",
            vec![get_plain("/-/").field(
                "Category",
                Match::Prefix,
                &format!(
                    r#"storage; scheme="{INFRA}"; class="kind"; title="Storage Resource"; rel="http://schemas.ogf.org/occi/core#resource"; location="/storage/"; attributes="occi.storage.size{{required}} occi.storage.state{{immutable}} "#
                ),
            )],
        ),
        case(
            "GFD.185 3.4.1: actions are Category lines with class=\"action\", title and attributes (start, stop with attributes=\"method\")",
            vec![
                get_plain("/-/")
                    .field(
                        "Category",
                        Match::Eq,
                        &format!(r#"start; scheme="{ACTIONS}"; class="action"; title="Start the compute instance""#),
                    )
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
            "GFD.185 3.4.1 / GFD.229 5.5.2: mixins are Category lines with class=\"mixin\", rel (first depends) and location",
            vec![get_plain("/-/").field(
                "Category",
                Match::Prefix,
                r#"medium; scheme="http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#"; class="mixin"; title="A medium Compute instance"; rel="http://schemas.ogf.org/occi/infrastructure#resource_tpl"; location="/templates/resource/medium/"; attributes=""#,
            )],
        ),
        case(
            "GFD.185 3.6.7: /.well-known/org/ogf/occi/-/ mirrors the query interface",
            vec![get_plain("/.well-known/org/ogf/occi/-/").field("Category", Match::Eq, &compute_line)],
        ),
        case(
            "GFD.185 3.4.1 / GFD.223 7.1: a Category in a GET /-/ text/plain body filters the categories (kind and related only)",
            vec![
                get_plain("/-/")
                    .plain(&format!(r#"Category: storage; scheme="{INFRA}"; class="kind""#))
                    .field("Category", Match::Prefix, &format!(r#"storage; scheme="{INFRA}"; class="kind""#))
                    .no_field("Category", Match::Prefix, "compute;")
                    .no_field("Category", Match::Prefix, "network;")
                    .no_field("Category", Match::Prefix, "os_tpl;")
                    .lacks(&format!(r#"start; scheme="{ACTIONS}""#)),
            ],
        ),
        case(
            // Spec typo: rel="http:/example.com/..." has one slash; fixed, and the mixin it names
            // is defined first (the server checks that rel names an existing mixin).
            "GFD.185 3.4.1: POST /-/ adds a user mixin with rel and location, DELETE /-/ (trailing ';', continuation lines) removes it",
            vec![
                step("POST", "/-/").accept("text/plain").plain(&lines(&[
                    r#"Category: mixin; scheme="http://example.com/occi/something_else#"; class="mixin"; location="/something_else/""#,
                ])),
                step("POST", "/-/").accept("text/plain").plain(&lines(&[
                    "Category: my_stuff;",
                    r#"          scheme="http://example.com/occi/my_stuff#";"#,
                    r#"          class="mixin";"#,
                    r#"          rel="http://example.com/occi/something_else#mixin";"#,
                    r#"          location="/my_stuff/""#,
                ])),
                get_plain("/-/").field(
                    "Category",
                    Match::Eq,
                    r#"my_stuff; scheme="http://example.com/occi/my_stuff#"; class="mixin"; rel="http://example.com/occi/something_else#mixin"; location="/my_stuff/""#,
                ),
                step("DELETE", "/-/").accept("text/plain").plain(&lines(&[
                    "Category: my_stuff; ",
                    r#"            scheme="http://example.com/occi/my_stuff#"; "#,
                    r#"            class="mixin";"#,
                ])),
                // The other categories are still listed; the deleted one is not.
                get_plain("/-/").field("Category", Match::Prefix, "compute;").no_field("Category", Match::Prefix, "my_stuff;"),
            ],
        ),
        case(
            "GFD.185 3.4.1: DELETE /-/ of a provider-defined mixin is 403 Forbidden",
            vec![
                step("DELETE", "/-/")
                    .accept("text/plain")
                    .plain(&format!(r#"Category: os_tpl; scheme="{INFRA}"; class="mixin""#))
                    .status(403),
                get_plain("/-/").field("Category", Match::Prefix, "os_tpl;"),
            ],
        ),
        case(
            "GFD.185 3.6.8 / GFD.223 5.4: POST /-/ of a category id that exists is 409 Conflict",
            vec![
                define_mixin("dup_mixin"),
                define_mixin("dup_mixin").status(409),
                step("POST", "/-/")
                    .accept("text/plain")
                    .plain(&format!(r#"Category: compute; scheme="{INFRA}"; class="kind"; location="/compute2/""#))
                    .status(409),
            ],
        ),
    ]
}

fn rendering_cases() -> Vec<Case> {
    vec![
        case(
            "GFD.185 3.4.4 / GFD.229 5.1.1: a resource renders its Category lines first, then Link, then X-OCCI-Attribute",
            vec![
                put_json(
                    "/compute/r1",
                    json!({"kind": COMPUTE, "mixins": [format!("{INFRA}os_tpl")], "title": "Rendered",
                           "attributes": {"occi.compute.cores": 2, "occi.compute.hostname": "foobar", "occi.compute.memory": 2.5}}),
                ),
                get_plain("/compute/r1")
                    .custom("field order", resource_order)
                    .custom("first line", |r| match r.text.lines().next() {
                        Some(l) if l == format!("Category: {COMPUTE_REF}") => Ok(()),
                        other => Err(format!("first line {other:?}")),
                    })
                    .line(&format!(r#"Category: os_tpl; scheme="{INFRA}"; class="mixin""#)),
            ],
        ),
        case(
            "GFD.185 3.5.3: action references are Link: </compute/r1?action=start>; rel=\"...#start\" (server-relative), only those applicable in the state (inactive: start, not stop)",
            vec![
                get_plain("/compute/r1")
                    .line(&format!(r#"Link: </compute/r1?action=start>; rel="{ACTIONS}start""#))
                    .lacks("/compute/r1?action=stop>"),
            ],
        ),
        case(
            "GFD.185 3.5.4: X-OCCI-Attribute renders numbers bare and strings quoted",
            vec![
                get_plain("/compute/r1")
                    .line("X-OCCI-Attribute: occi.compute.cores=2")
                    .line("X-OCCI-Attribute: occi.compute.memory=2.5")
                    .line(r#"X-OCCI-Attribute: occi.compute.hostname="foobar""#)
                    .line(r#"X-OCCI-Attribute: occi.compute.state="inactive""#)
                    .line(r#"X-OCCI-Attribute: occi.core.title="Rendered""#)
                    .line(r#"X-OCCI-Attribute: occi.core.id="r1""#),
            ],
        ),
        case(
            "GFD.185 3.6.6 (RFC 2616 quoted-string): quotes and backslashes in rendered strings are escaped",
            vec![
                put_json("/compute/r2", json!({"kind": COMPUTE, "title": "say \"hi\" \\ ok"})),
                get_plain("/compute/r2").line(r#"X-OCCI-Attribute: occi.core.title="say \"hi\" \\ ok""#),
            ],
        ),
        case(
            "GFD.185 3.4.5 / 3.5.2: a resource renders its link as Link: <target>; rel; self; category; link attributes",
            vec![
                put_json("/network/ln1", json!({"kind": NETWORK})),
                put_json(
                    "/compute/lr1",
                    json!({"kind": COMPUTE, "links": [{"kind": NETWORKINTERFACE, "id": "lr1-eth0",
                            "target": {"location": "/network/ln1"},
                            "attributes": {"occi.networkinterface.interface": "eth0", "occi.networkinterface.mac": "00:11:22:33:44:55"}}]}),
                ),
                get_plain("/compute/lr1")
                    .custom("field order", resource_order)
                    .field(
                        "Link",
                        Match::Prefix,
                        &format!(
                            r#"</network/ln1>; rel="{INFRA}network"; self="/networkinterface/lr1-eth0"; category="{INFRA}networkinterface""#
                        ),
                    )
                    .field("Link", Match::Has, r#"; occi.networkinterface.interface="eth0""#)
                    .field("Link", Match::Has, r#"; occi.networkinterface.mac="00:11:22:33:44:55""#)
                    .field("Link", Match::Has, r#"; occi.networkinterface.state="inactive""#),
            ],
        ),
        case(
            "GFD.185 3.4.5: a link renders its Category and occi.core.source / occi.core.target as X-OCCI-Attribute",
            vec![
                get_plain("/networkinterface/lr1-eth0")
                    .custom("field order", resource_order)
                    .line(&format!(r#"Category: networkinterface; scheme="{INFRA}"; class="kind""#))
                    .line(r#"X-OCCI-Attribute: occi.core.source="/compute/lr1""#)
                    .line(r#"X-OCCI-Attribute: occi.core.target="/network/ln1""#)
                    .line(r#"X-OCCI-Attribute: occi.networkinterface.mac="00:11:22:33:44:55""#),
            ],
        ),
        case(
            "GFD.185 3.4.3 / 3.5.5: GET of a kind collection lists X-OCCI-Location with absolute URLs",
            vec![
                get_plain("/compute/")
                    .line("X-OCCI-Location: {base}/compute/r1")
                    .line("X-OCCI-Location: {base}/compute/lr1")
                    .no_field("X-OCCI-Location", Match::Has, "/network/")
                    .custom("absolute URLs", absolute_locations),
            ],
        ),
        case(
            "GFD.185 3.4.2: GET of a path that is no location lists the entities below it",
            vec![
                compute_json("/vms/foo/vm1", json!({})),
                compute_json("/vms/bar/vm1", json!({})),
                get_plain("/vms/foo/")
                    .line("X-OCCI-Location: {base}/vms/foo/vm1")
                    .field_count("X-OCCI-Location", 1),
                get_plain("/vms/").field_count("X-OCCI-Location", 2).custom("absolute URLs", absolute_locations),
            ],
        ),
        case(
            "GFD.185 3.6.6 / GFD.229 8: Accept text/uri-list on a collection gives one absolute URL per line",
            vec![
                step("GET", "/vms/")
                    .accept("text/uri-list")
                    .ctype("text/uri-list")
                    .line("{base}/vms/foo/vm1")
                    .line("{base}/vms/bar/vm1")
                    .custom("two lines", |r| {
                        let n = r.text.lines().filter(|l| !l.trim().is_empty()).count();
                        if n == 2 { Ok(()) } else { Err(format!("{n} lines")) }
                    }),
            ],
        ),
        case(
            "GFD.185 3.6.6 / GFD.229 8: Accept text/uri-list on a single entity is 400",
            vec![step("GET", "/vms/foo/vm1").accept("text/uri-list").status(400)],
        ),
        case(
            "GFD.185 3.6.6 / GFD.229 8: Accept text/uri-list on the query interface is 400",
            vec![step("GET", "/-/").accept("text/uri-list").status(400)],
        ),
    ]
}

fn create_cases() -> Vec<Case> {
    vec![
        case(
            "GFD.185 3.4.4: POST of a text/plain resource to its kind's location is 201 with an absolute Location",
            vec![
                step("POST", "/compute/")
                    .accept("text/plain")
                    .plain(&lines(&[
                        CAT_COMPUTE,
                        "X-OCCI-Attribute: occi.compute.cores=2",
                        r#"X-OCCI-Attribute: occi.compute.hostname="foobar""#,
                    ]))
                    .status(201)
                    .ctype("text/plain")
                    .header("location", Match::Prefix, "{base}/compute/")
                    .header_count("location", 1)
                    .capture("loc"),
                get_json("{loc}")
                    .json("/kind", json!(COMPUTE))
                    .json("/attributes/occi.compute.cores", json!(2))
                    .json("/attributes/occi.compute.hostname", json!("foobar")),
                get_plain("/compute/").line("X-OCCI-Location: {base}{loc}"),
            ],
        ),
        case(
            "GFD.185 3.4.4 / GFD.223 8.2.1: PUT creates at the URL the client chose (201, Location is that URL)",
            vec![
                put_plain("/compute/chosen-1", &[CAT_COMPUTE, "X-OCCI-Attribute: occi.compute.cores=1"])
                    .ctype("text/plain")
                    .header("location", Match::Eq, "{base}/compute/chosen-1"),
                get_json("/compute/chosen-1").json("/id", json!("chosen-1")),
            ],
        ),
        case(
            "GFD.185 3.4.4: a resource PUT at a path outside its kind's location is added to the kind's collection",
            vec![
                put_plain("/elsewhere/vm7", &[CAT_COMPUTE]),
                get_plain("/compute/").line("X-OCCI-Location: {base}/elsewhere/vm7"),
            ],
        ),
        case(
            "GFD.185 3.4.4 (Kind location): POST / with a kind Category creates in that kind's collection",
            vec![
                step("POST", "/")
                    .accept("text/plain")
                    .plain(&lines(&[
                        &format!(r#"Category: storage; scheme="{INFRA}"; class="kind""#),
                        "X-OCCI-Attribute: occi.storage.size=10",
                    ]))
                    .status(201)
                    .header("location", Match::Prefix, "{base}/storage/")
                    .capture("loc"),
                get_json("{loc}").json("/attributes/occi.storage.size", json!(10)),
            ],
        ),
        case(
            "GFD.185 3.4.5: a Link with category= in a create makes the link, which the resource then renders",
            vec![
                put_plain("/network/123", &[CAT_NETWORK]),
                // The example of GFD.185 3.4.5, with its continuation lines.
                step("POST", "/compute/")
                    .accept("text/plain")
                    .plain(&lines(&[
                        "Category: compute; ",
                        r#"            scheme="http://schemas.ogf.org/occi/infrastructure#"; "#,
                        r#"            class="kind"; "#,
                        "Link: </network/123>;",
                        r#"        rel="http://schemas.ogf.org/occi/infrastructure#network";"#,
                        r#"        category="http://schemas.ogf.org/occi/infrastructure#networkinterface";"#,
                        r#"        occi.networkinterface.interface="eth0";"#,
                        r#"        occi.networkinterface.mac="00:11:22:33:44:55";"#,
                        "X-OCCI-Attribute: occi.compute.cores=2",
                        r#"X-OCCI-Attribute: occi.compute.hostname="foobar""#,
                    ]))
                    .status(201)
                    .header("location", Match::Prefix, "{base}/compute/")
                    .capture("loc"),
                get_plain("{loc}")
                    .field(
                        "Link",
                        Match::Prefix,
                        &format!(r#"</network/123>; rel="{INFRA}network"; self="/networkinterface/"#),
                    )
                    .field("Link", Match::Has, &format!(r#"; category="{INFRA}networkinterface""#))
                    .field("Link", Match::Has, r#"; occi.networkinterface.mac="00:11:22:33:44:55""#)
                    .field("Link", Match::Has, r#"; occi.networkinterface.interface="eth0""#),
                get_plain("/networkinterface/").field_count("X-OCCI-Location", 1),
            ],
        ),
        case(
            "GFD.185 3.4.5: an inline link creation returns only the Location of the resource",
            vec![
                put_plain("/network/124", &[CAT_NETWORK]),
                step("POST", "/compute/")
                    .accept("text/plain")
                    .plain(&lines(&[
                        CAT_COMPUTE,
                        &format!(
                            r#"Link: </network/124>; rel="{INFRA}network"; category="{INFRA}networkinterface"; occi.networkinterface.mac="00:11:22:33:44:56""#
                        ),
                    ]))
                    .status(201)
                    .header_count("location", 1)
                    .header("location", Match::Prefix, "{base}/compute/")
                    .no_field("Location", Match::Has, "/networkinterface/"),
            ],
        ),
        case(
            "GFD.185 3.4.4 (Full Update): a Link in a PUT on an existing resource is 400",
            vec![
                put_plain("/network/125", &[CAT_NETWORK]),
                put_plain("/compute/full-update", &[CAT_COMPUTE]),
                step("PUT", "/compute/full-update")
                    .accept("text/plain")
                    .plain(&lines(&[
                        CAT_COMPUTE,
                        &format!(
                            r#"Link: </network/125>; rel="{INFRA}network"; category="{INFRA}networkinterface"; occi.networkinterface.mac="00:11:22:33:44:57""#
                        ),
                    ]))
                    .status(400),
            ],
        ),
        case(
            "GFD.185 3.4.4: Partial Update with POST on a resource changes only the attributes sent",
            vec![
                put_plain("/compute/partial", &[CAT_COMPUTE, "X-OCCI-Attribute: occi.compute.cores=2, occi.compute.memory=2.0"]),
                step("POST", "/compute/partial")
                    .accept("text/plain")
                    .plain("X-OCCI-Attribute: occi.compute.memory=4.0\n")
                    .status_in(&[200, 201])
                    .created_has_location(),
                get_json("/compute/partial")
                    .json("/attributes/occi.compute.memory", json!(4.0))
                    .json("/attributes/occi.compute.cores", json!(2)),
            ],
        ),
    ]
}

fn parsing_cases() -> Vec<Case> {
    vec![
        case(
            "GFD.185 3.5: a comma-separated X-OCCI-Attribute list and separate lines give identical entities",
            vec![
                put_plain(
                    "/compute/p-comma",
                    &[CAT_COMPUTE, r#"X-OCCI-Attribute: occi.compute.cores=3, occi.compute.hostname="h1", occi.compute.memory=1.5"#],
                ),
                put_plain(
                    "/compute/p-lines",
                    &[
                        CAT_COMPUTE,
                        "X-OCCI-Attribute: occi.compute.cores=3",
                        r#"X-OCCI-Attribute: occi.compute.hostname="h1""#,
                        "X-OCCI-Attribute: occi.compute.memory=1.5",
                    ],
                ),
                get_json("/compute/p-comma").json(
                    "/attributes",
                    json!({"occi.compute.cores": 3, "occi.compute.hostname": "h1", "occi.compute.memory": 1.5, "occi.compute.state": "inactive"}),
                ),
                get_json("/compute/p-lines").json(
                    "/attributes",
                    json!({"occi.compute.cores": 3, "occi.compute.hostname": "h1", "occi.compute.memory": 1.5, "occi.compute.state": "inactive"}),
                ),
            ],
        ),
        case(
            "GFD.185 3.5: a comma-separated Category list and separate Category lines give identical entities",
            vec![
                put_plain(
                    "/compute/p-cats-comma",
                    &[&format!(r#"Category: {COMPUTE_REF}, os_tpl; scheme="{INFRA}"; class="mixin""#)],
                ),
                put_plain(
                    "/compute/p-cats-lines",
                    &[CAT_COMPUTE, &format!(r#"Category: os_tpl; scheme="{INFRA}"; class="mixin""#)],
                ),
                get_json("/compute/p-cats-comma").json("/mixins", json!([format!("{INFRA}os_tpl")])),
                get_json("/compute/p-cats-lines").json("/mixins", json!([format!("{INFRA}os_tpl")])),
            ],
        ),
        case(
            "GFD.185 3.5 / 3.4.3: a comma-separated X-OCCI-Location list and separate lines associate the same entities",
            vec![
                define_mixin("tag_comma"),
                define_mixin("tag_lines"),
                compute_json("/compute/x1", json!({})),
                compute_json("/compute/x2", json!({})),
                step("POST", "/tag_comma/")
                    .accept("text/plain")
                    .plain("X-OCCI-Location: {base}/compute/x1, {base}/compute/x2\n"),
                step("POST", "/tag_lines/")
                    .accept("text/plain")
                    .plain("X-OCCI-Location: {base}/compute/x1\nX-OCCI-Location: {base}/compute/x2\n"),
                get_plain("/tag_comma/")
                    .line("X-OCCI-Location: {base}/compute/x1")
                    .line("X-OCCI-Location: {base}/compute/x2")
                    .field_count("X-OCCI-Location", 2),
                get_plain("/tag_lines/")
                    .line("X-OCCI-Location: {base}/compute/x1")
                    .line("X-OCCI-Location: {base}/compute/x2")
                    .field_count("X-OCCI-Location", 2),
            ],
        ),
        case(
            "GFD.185 3.6.6 (RFC 2616 quoted-string): commas inside a quoted value are no list separators",
            vec![
                put_plain(
                    "/compute/p-commas",
                    &[CAT_COMPUTE, r#"X-OCCI-Attribute: occi.core.title="a, b, c", occi.compute.cores=2"#],
                ),
                get_json("/compute/p-commas").json("/title", json!("a, b, c")).json("/attributes/occi.compute.cores", json!(2)),
            ],
        ),
        case(
            "GFD.185 3.6.6 (RFC 2616 quoted-pair): \\\" and \\\\ escapes in quoted values",
            vec![
                put_plain("/compute/p-escapes", &[CAT_COMPUTE, r#"X-OCCI-Attribute: occi.core.title="say \"hi\", \\ bye""#]),
                get_json("/compute/p-escapes").json("/title", json!("say \"hi\", \\ bye")),
            ],
        ),
        case(
            "GFD.185 3.6.6 (RFC 2616 field names): field names are case-insensitive (category, x-occi-attribute, X-Occi-Attribute)",
            vec![
                put_plain(
                    "/compute/p-case",
                    &[
                        &format!("category: {COMPUTE_REF}"),
                        "x-occi-attribute: occi.compute.cores=5",
                        r#"X-Occi-Attribute: occi.compute.hostname="mixed""#,
                    ],
                ),
                get_json("/compute/p-case")
                    .json("/attributes/occi.compute.cores", json!(5))
                    .json("/attributes/occi.compute.hostname", json!("mixed")),
            ],
        ),
        case(
            "GFD.185 3.5.1: a Category without class is looked up by scheme and term",
            vec![
                put_plain("/compute/p-noclass", &[&format!(r#"Category: compute; scheme="{INFRA}""#)]),
                get_json("/compute/p-noclass").json("/kind", json!(COMPUTE)),
            ],
        ),
        case(
            "GFD.185 3.5.1: an optional trailing ';', extra spaces and an unquoted class are accepted",
            vec![
                put_plain(
                    "/compute/p-spaces",
                    &[
                        &format!(r#"Category:   compute ;   scheme="{INFRA}"  ;  class=kind ;"#),
                        "X-OCCI-Attribute:    occi.compute.cores=7   ",
                    ],
                ),
                get_json("/compute/p-spaces").json("/kind", json!(COMPUTE)).json("/attributes/occi.compute.cores", json!(7)),
            ],
        ),
        case(
            "GFD.185 3.6.6 text/plain (RFC 2616 LWS folding): a line starting with white space continues the previous line",
            vec![
                put_plain(
                    "/compute/p-continued",
                    &[
                        "Category: compute;",
                        &format!(r#"  scheme="{INFRA}";"#),
                        "\tclass=\"kind\"",
                        "X-OCCI-Attribute:",
                        "   occi.compute.cores=6,",
                        r#"   occi.compute.hostname="cont""#,
                    ],
                ),
                get_json("/compute/p-continued")
                    .json("/attributes/occi.compute.cores", json!(6))
                    .json("/attributes/occi.compute.hostname", json!("cont")),
            ],
        ),
        case(
            "GFD.185 3.5.4: bare numbers and booleans and quoted strings get their types (checked through JSON and re-rendered)",
            vec![
                step("POST", "/-/").accept(JSON).json_body(json!({"mixins": [{
                    "term": "typed", "scheme": EX, "location": "/typed/",
                    "attributes": {
                        "ex.flag": {"type": "boolean", "mutable": true},
                        "ex.ratio": {"type": "number", "mutable": true},
                        "ex.count": {"type": "number", "mutable": true},
                        "ex.label": {"type": "string", "mutable": true}
                    }}]})),
                put_plain(
                    "/compute/p-typed",
                    &[
                        CAT_COMPUTE,
                        &format!(r#"Category: typed; scheme="{EX}"; class="mixin""#),
                        r#"X-OCCI-Attribute: ex.flag=true, ex.ratio=0.75, ex.count=42, ex.label="42""#,
                        r#"X-OCCI-Attribute: occi.compute.hostname="true", occi.compute.memory=2.0"#,
                    ],
                ),
                get_json("/compute/p-typed")
                    .json("/attributes/ex.flag", json!(true))
                    .json("/attributes/ex.ratio", json!(0.75))
                    .json("/attributes/ex.count", json!(42))
                    .json("/attributes/ex.label", json!("42"))
                    .json("/attributes/occi.compute.hostname", json!("true"))
                    .json("/attributes/occi.compute.memory", json!(2.0)),
                get_plain("/compute/p-typed")
                    .line("X-OCCI-Attribute: ex.flag=true")
                    .line("X-OCCI-Attribute: ex.ratio=0.75")
                    .line("X-OCCI-Attribute: ex.count=42")
                    .line(r#"X-OCCI-Attribute: ex.label="42""#)
                    .line(r#"X-OCCI-Attribute: occi.compute.hostname="true""#),
            ],
        ),
        case(
            "GFD.185 3.5.4: a quoted number is a string, so an integer attribute refuses it with 400 naming the attribute",
            vec![
                put_plain("/compute/p-quoted-int", &[CAT_COMPUTE, r#"X-OCCI-Attribute: occi.compute.cores="2""#])
                    .status(400)
                    .contains("occi.compute.cores"),
                get_json("/compute/p-quoted-int").status(404),
            ],
        ),
        case(
            "GFD.185 3.6.8: a text/plain line without ':' is 400 naming the line (line 2)",
            vec![
                put_plain("/compute/p-bad1", &[CAT_COMPUTE, "X-OCCI-Attribute occi.compute.cores=2"])
                    .status(400)
                    .contains("line 2"),
            ],
        ),
        case(
            "GFD.185 3.6.8: an unterminated quoted string is 400 naming the line (line 3)",
            vec![
                put_plain(
                    "/compute/p-bad2",
                    &[CAT_COMPUTE, "X-OCCI-Attribute: occi.compute.cores=2", r#"X-OCCI-Attribute: occi.core.title="open"#],
                )
                .status(400)
                .contains("line 3"),
            ],
        ),
        case(
            "GFD.185 3.6.8: an unknown field name is 400 naming the line (line 2)",
            vec![put_plain("/compute/p-bad3", &[CAT_COMPUTE, "X-Foo: bar"]).status(400).contains("line 2")],
        ),
        case(
            "GFD.185 3.6.8: a Category without scheme is 400 naming the line (line 1)",
            vec![put_plain("/compute/p-bad4", &["Category: compute; class=\"kind\""]).status(400).contains("line 1")],
        ),
        case(
            "GFD.185 3.6.8: a Link without <URI> is 400 naming the line (line 2)",
            vec![
                put_plain(
                    "/compute/p-bad5",
                    &[CAT_COMPUTE, &format!(r#"Link: /network/1; rel="{INFRA}network"; category="{INFRA}networkinterface""#)],
                )
                .status(400)
                .contains("line 2"),
            ],
        ),
        case(
            "GFD.185 3.6.6: a text/uri-list body associates the listed entities with a mixin",
            vec![
                define_mixin("tag_uris"),
                compute_json("/compute/u1", json!({})),
                compute_json("/compute/u2", json!({})),
                step("POST", "/tag_uris/")
                    .accept("text/plain")
                    .body("text/uri-list", "# two entities\n{base}/compute/u1\r\n/compute/u2\n"),
                get_plain("/tag_uris/")
                    .line("X-OCCI-Location: {base}/compute/u1")
                    .line("X-OCCI-Location: {base}/compute/u2")
                    .field_count("X-OCCI-Location", 2),
                get_json("/compute/u1").json("/mixins", json!([format!("{EX}tag_uris")])),
            ],
        ),
    ]
}

fn protocol_cases() -> Vec<Case> {
    vec![
        case(
            "GFD.185 3.4.3 / GFD.223 7.2: an X-OCCI-Attribute in a GET body filters a collection by attribute value",
            vec![
                compute_json("/compute/f1", json!({"occi.compute.hostname": "filter-a"})),
                compute_json("/compute/f2", json!({"occi.compute.hostname": "filter-b"})),
                get_plain("/compute/")
                    .plain("X-OCCI-Attribute: occi.compute.hostname=\"filter-a\"\n")
                    .line("X-OCCI-Location: {base}/compute/f1")
                    .field_count("X-OCCI-Location", 1),
            ],
        ),
        case(
            "GFD.185 3.4.3: a Category in a GET body filters a collection by mixin",
            vec![
                put_json("/compute/fm1", json!({"kind": COMPUTE, "mixins": [format!("{INFRA}os_tpl")]})),
                get_plain("/compute/")
                    .plain(&format!(r#"Category: os_tpl; scheme="{INFRA}"; class="mixin""#))
                    .line("X-OCCI-Location: {base}/compute/fm1")
                    .no_field("X-OCCI-Location", Match::Has, "/compute/f1"),
            ],
        ),
        case(
            "GFD.185 3.4.3: POST /mixin/?action=start with the action Category acts on every member",
            vec![
                define_mixin("act_group"),
                compute_json("/compute/a1", json!({})),
                compute_json("/compute/a2", json!({})),
                step("POST", "/act_group/").accept("text/plain").plain("X-OCCI-Location: /compute/a1, /compute/a2\n"),
                step("POST", "/act_group/?action=start")
                    .accept("text/plain")
                    .plain(&format!(r#"Category: start; scheme="{ACTIONS}"; class="action""#)),
                get_json("/compute/a1").json("/attributes/occi.compute.state", json!("active")),
                get_json("/compute/a2").json("/attributes/occi.compute.state", json!("active")),
                get_json("/compute/f1").json("/attributes/occi.compute.state", json!("inactive")),
            ],
        ),
        case(
            "GFD.185 3.4.4: POST ?action=stop with the action Category and an X-OCCI-Attribute parameter",
            vec![
                step("POST", "/compute/a1?action=stop").accept("text/plain").plain(&lines(&[
                    &format!(r#"Category: stop; scheme="{ACTIONS}"; class="action";"#),
                    r#"X-OCCI-Attribute: method="poweroff""#,
                ])),
                get_json("/compute/a1").json("/attributes/occi.compute.state", json!("inactive")),
            ],
        ),
        case(
            "GFD.185 3.4.4: an action the resource does not offer is 400",
            vec![step("POST", "/compute/a1?action=up").accept("text/plain").status(400)],
        ),
        case(
            "GFD.223 6: pagination with page and number; past the end an empty 200; number above the limit of 1000 is 413",
            vec![
                compute_json("/pg/a", json!({})),
                compute_json("/pg/b", json!({})),
                compute_json("/pg/c", json!({})),
                get_plain("/pg/?page=1&number=2").field_count("X-OCCI-Location", 2),
                get_plain("/pg/?page=2&number=2").field_count("X-OCCI-Location", 1),
                get_plain("/pg/?page=3&number=2").field_count("X-OCCI-Location", 0),
                get_plain("/pg/?number=1000").field_count("X-OCCI-Location", 3),
                step("GET", "/pg/?page=1&number=1001").accept("text/plain").status(413),
            ],
        ),
        case(
            "GFD.185 3.6.4 / GFD.223 5.3: every answer has a Server header with OCCI/1.1 and OCCI/1.2",
            vec![
                get_plain("/-/").header("server", Match::Has, "OCCI/1.1").header("server", Match::Has, "OCCI/1.2"),
                step("GET", "/compute/nothing-here")
                    .accept("text/plain")
                    .status(404)
                    .header("server", Match::Has, "OCCI/1.1")
                    .header("server", Match::Has, "OCCI/1.2"),
            ],
        ),
        case(
            "GFD.185 3.6.4 / GFD.223 5.3: User-Agent with OCCI/1.3 is 501, OCCI/1.1 and OCCI/1.2 are served",
            vec![
                step("GET", "/-/").accept("text/plain").h("User-Agent", "x OCCI/1.3").status(501),
                get_plain("/-/").h("User-Agent", "occi-client/1.1 (linux) libcurl/7.19.4 OCCI/1.1"),
                get_plain("/-/").h("User-Agent", "occi-client/1.1 (linux) libcurl/7.19.4 OCCI/1.2"),
            ],
        ),
        case(
            "GFD.185 3.6.6: without an Accept header the answer is text/plain",
            vec![step("GET", "/-/").no_accept().ctype("text/plain").field("Category", Match::Prefix, COMPUTE_REF)],
        ),
        case(
            "GFD.185 3.6.6: Accept */* gives text/plain",
            vec![
                step("GET", "/compute/r1").accept("*/*").ctype("text/plain").line(&format!("Category: {COMPUTE_REF}")),
            ],
        ),
        case(
            "RFC 7231 5.3.2: Accept text/* gives text/plain",
            vec![
                step("GET", "/compute/r1")
                    .accept("text/*")
                    .ctype("text/plain")
                    .line(&format!("Category: {COMPUTE_REF}")),
            ],
        ),
        case(
            "RFC 7231 5.3.2: q-values choose text/plain over application/occi+json;q=0.1",
            vec![
                step("GET", "/compute/r1")
                    .accept("application/occi+json;q=0.1, text/plain;q=0.8")
                    .ctype("text/plain")
                    .line(&format!("Category: {COMPUTE_REF}")),
            ],
        ),
        case(
            "GFD.185 3.6.6 / GFD.223 5.4: nothing acceptable (text/html, image/png) is 406",
            vec![
                step("GET", "/compute/r1").accept("text/html, image/png").status(406),
                step("GET", "/-/").accept("text/plain;q=0").status(406),
            ],
        ),
        case(
            "GFD.223 9 (method table): PUT on a kind collection is 405 with an Allow header",
            vec![
                step("PUT", "/compute/")
                    .accept("text/plain")
                    .plain(&lines(&[CAT_COMPUTE]))
                    .status(405)
                    .header("allow", Match::Has, "GET")
                    .allow_lacks_put(),
            ],
        ),
        case(
            "GFD.185 3.6.8 / GFD.223 5.4: GET and DELETE of an unknown entity are 404",
            vec![
                step("GET", "/compute/unknown-entity").accept("text/plain").status(404),
                step("DELETE", "/compute/unknown-entity").accept("text/plain").status(404),
            ],
        ),
        case(
            "GFD.223 5.4: creating an entity whose id exists is 409 Conflict",
            vec![
                put_plain("/compute/dup1", &[CAT_COMPUTE]),
                step("POST", "/compute/")
                    .accept("text/plain")
                    .plain(&lines(&[CAT_COMPUTE, r#"X-OCCI-Attribute: occi.core.id="dup1""#]))
                    .status(409),
            ],
        ),
        case(
            "GFD.223 8.4: DELETE of an entity is 200 and the entity is gone",
            vec![
                put_plain("/compute/to-delete", &[CAT_COMPUTE]),
                step("DELETE", "/compute/to-delete").accept("text/plain"),
                step("GET", "/compute/to-delete").accept("text/plain").status(404),
            ],
        ),
    ]
}

fn spec_example_cases() -> Vec<Case> {
    let dummy = format!("/users/foo/compute/{DUMMY_ID}");
    vec![
        case(
            "GFD.185 3.7.1 (More Complete Examples): creating a compute with the Category only, Accept */*",
            vec![
                step("POST", "/compute/")
                    .h("User-Agent", "curl/7.21.0 (x86_64-pc-linux-gnu) libcurl/7.21.0 OpenSSL/0.9.8o zlib/1.2.3.4 libidn/1.18")
                    .accept("*/*")
                    .h("Content-Type", "text/occi")
                    .h("Category", r#"compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind";"#)
                    .status(201)
                    .ctype("text/plain")
                    .header_count("location", 1)
                    .header("location", Match::Prefix, "{base}/compute/")
                    .header("server", Match::Has, "OCCI/1.1")
                    .capture("loc"),
                step("GET", "{loc}").accept("*/*").ctype("text/plain").line(&format!("Category: {COMPUTE_REF}")),
            ],
        ),
        case(
            // Spec typo: the example has no ';' between scheme="..." and class="kind"; added.
            // The retrieve example is sent as the body of a text/plain PUT, then read back.
            "GFD.185 3.7.2 (More Complete Examples): the retrieved compute example, PUT as text/plain and read back with Accept */*",
            vec![
                step("PUT", &dummy)
                    .accept("text/plain")
                    .plain(&lines(&[
                        "Category: compute;",
                        r#"    scheme="http://schemas.ogf.org/occi/infrastructure#";"#,
                        r#"    class="kind";"#,
                        "Link: </users/foo/compute/b9ff813e-fee5-4a9d-b839-673f39746096?action=start>;",
                        r#"    rel="http://schemas.ogf.org/occi/infrastructure/compute/action#start""#,
                        r#"X-OCCI-Attribute: occi.core.id="urn:uuid:b9ff813e-fee5-4a9d-b839-673f39746096""#,
                        r#"X-OCCI-Attribute: occi.core.title="My Dummy VM""#,
                        r#"X-OCCI-Attribute: occi.compute.architecture="x86""#,
                        r#"X-OCCI-Attribute: occi.compute.state="inactive""#,
                        "X-OCCI-Attribute: occi.compute.speed=1.33",
                        "X-OCCI-Attribute: occi.compute.memory=2.0",
                        "X-OCCI-Attribute: occi.compute.cores=2",
                        r#"X-OCCI-Attribute: occi.compute.hostname="dummy""#,
                    ]))
                    .status(201)
                    .header("location", Match::Eq, &format!("{{base}}{dummy}")),
                dummy_vm_lines(
                    step("GET", &dummy)
                        .accept("*/*")
                        .ctype("text/plain")
                        .custom("field order", resource_order)
                        .line(&format!("Category: {COMPUTE_REF}"))
                        .line(&format!(
                            r#"Link: </users/foo/compute/{DUMMY_ID}?action=start>; rel="http://schemas.ogf.org/occi/infrastructure/compute/action#start""#
                        )),
                ),
                get_plain("/compute/").line(&format!("X-OCCI-Location: {{base}}{dummy}")),
            ],
        ),
        case(
            // Spec typo as above: ';' added after scheme="...". The '< ' response markers are dropped.
            "GFD.229 6 (text/plain example): the backslash-continued entity rendering as a text/plain body",
            vec![
                put_plain(
                    &format!("/gfd229/plain/{DUMMY_ID}"),
                    &[
                        r#"Category: compute; \"#,
                        r#"    scheme="http://schemas.ogf.org/occi/infrastructure#"; \"#,
                        r#"    class="kind";"#,
                        r#"Link: </users/foo/compute/b9ff813e-fee5-4a9d-b839-673f39746096?action=start>; \"#,
                        r#"    rel="http://schemas.ogf.org/occi/infrastructure/compute/action#start""#,
                        r#"X-OCCI-Attribute: occi.core.id="urn:uuid:b9ff813e-fee5-4a9d-b839-673f39746096""#,
                        r#"X-OCCI-Attribute: occi.core.title="My Dummy VM""#,
                        r#"X-OCCI-Attribute: occi.compute.architecture="x86""#,
                        r#"X-OCCI-Attribute: occi.compute.state="inactive""#,
                        "X-OCCI-Attribute: occi.compute.speed=1.33",
                        "X-OCCI-Attribute: occi.compute.memory=2.0",
                        "X-OCCI-Attribute: occi.compute.cores=2",
                        r#"X-OCCI-Attribute: occi.compute.hostname="dummy""#,
                    ],
                ),
                dummy_vm_lines(get_plain(&format!("/gfd229/plain/{DUMMY_ID}")).line(&format!("Category: {COMPUTE_REF}"))),
            ],
        ),
        case(
            // Spec typo as above. The header-rendering example (comma list over continued lines)
            // sent as a text/plain body; the trailing "OK" body line is left out.
            "GFD.229 7 (text/occi example): the backslash-continued comma list of attributes as a text/plain body",
            vec![
                put_plain(
                    &format!("/gfd229/header/{DUMMY_ID}"),
                    &[
                        r#"Category: compute; \"#,
                        r#"    scheme="http://schemas.ogf.org/occi/infrastructure#"; \"#,
                        r#"    class="kind";"#,
                        r#"Link: </users/foo/compute/b9ff813e-fee5-4a9d-b839-673f39746096?action=start>; \"#,
                        r#"    rel="http://schemas.ogf.org/occi/infrastructure/compute/action#start""#,
                        r#"X-OCCI-Attribute: occi.core.id="urn:uuid:b9ff813e-fee5-4a9d-b839-673f39746096", \"#,
                        r#" occi.core.title="My Dummy VM", occi.compute.architecture="x86", \"#,
                        r#" occi.compute.state="inactive", occi.compute.speed=1.33, \"#,
                        r#" occi.compute.memory=2.0, occi.compute.cores=2, \"#,
                        r#" occi.compute.hostname="dummy""#,
                    ],
                ),
                dummy_vm_lines(get_plain(&format!("/gfd229/header/{DUMMY_ID}")).line(&format!("Category: {COMPUTE_REF}"))),
            ],
        ),
    ]
}

// ----------------------------------------------------------------------------------------- tests

#[tokio::test]
async fn text_plain_query_interface_and_rendering() {
    let server = TestServer::start().await;
    let mut cases = query_interface_cases();
    cases.extend(rendering_cases());
    run(&server, cases).await;
}

#[tokio::test]
async fn text_plain_requests() {
    let server = TestServer::start().await;
    let mut cases = create_cases();
    cases.extend(parsing_cases());
    run(&server, cases).await;
}

#[tokio::test]
async fn text_plain_protocol() {
    let server = TestServer::start().await;
    // The negotiation cases read /compute/r1.
    let mut cases = vec![case("setup: a compute at /compute/r1", vec![compute_json("/compute/r1", json!({}))])];
    cases.extend(protocol_cases());
    run(&server, cases).await;
}

#[tokio::test]
async fn text_plain_spec_examples() {
    let server = TestServer::start().await;
    run(&server, spec_example_cases()).await;
}
