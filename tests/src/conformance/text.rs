//! The conformance cases of the two text renderings, one list for both: GFD.185 sections 3.4-3.7,
//! GFD.229 sections 5-8, and the protocol rules of GFD.223 that go with them (versioning, status
//! codes, pagination, filtering, the method table).
//!
//! A case is written once against a [`Rendering`], which puts its OCCI fields where that
//! rendering carries them ([`Step::occi`]: `Name: value` lines of a text/plain body, or text/occi
//! headers) and checks the answer in that rendering's shape ([`Rendering::get`], [`Step::has`],
//! [`Step::rendered`], [`Step::occi_body_ok`], [`Step::names_place`]). A [`Table`] case runs in
//! both renderings; the few that only one rendering has (a text/plain body's line syntax, content
//! negotiation that picks text/plain, the text/plain examples of the specifications) are added
//! with [`Table::only`]. `tests/tests/conformance_text_plain.rs` and `conformance_text_occi.rs`
//! run each table on a server of its own.
//!
//! Typos of the specification examples are fixed where noted ("spec typo").

use serde_json::json;

use super::{
    ACTIONS, COMPUTE_REF, Case, DUMMY_ID, EX, INFRA, Match, Rendering, Step, absolute_locations, case, category_abnf,
    compute_json, dummy_id_echoed, kind_first, put_json, step,
};
use crate::{COMPUTE, JSON, NETWORK, NETWORKINTERFACE, Reply};

use Rendering::{TextOcci, TextPlain};

/// The cases of one table for one rendering, in order.
pub struct Table {
    r: Rendering,
    cases: Vec<Case>,
}

impl Table {
    fn new(r: Rendering) -> Table {
        Table { r, cases: Vec::new() }
    }
    /// A case of both renderings.
    fn case(&mut self, name: &'static str, steps: impl FnOnce(Rendering) -> Vec<Step>) {
        self.cases.push(case(name, steps(self.r)));
    }
    /// A case only rendering `only` has.
    fn only(&mut self, only: Rendering, name: &'static str, steps: impl FnOnce(Rendering) -> Vec<Step>) {
        if self.r == only {
            self.cases.push(case(name, steps(self.r)));
        }
    }
}

// ------------------------------------------------------------------------------------- helpers

const NETWORK_REF: &str = r#"network; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#;
const OS_TPL_REF: &str = r#"os_tpl; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="mixin""#;
const NETWORKINTERFACE_REF: &str =
    r#"networkinterface; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#;

/// Lines of a text/plain body.
fn lines(ls: &[&str]) -> String {
    let mut s = ls.join("\n");
    s.push('\n');
    s
}

fn get_json(path: &str) -> Step {
    step("GET", path).accept(JSON)
}

/// A create at `path` with the compute Category (more fields may follow).
fn put_compute(r: Rendering, path: &str) -> Step {
    r.req("PUT", path).occi("Category", COMPUTE_REF).status(201)
}

/// Defines a mixin (no attributes) bound to `/{term}/` with a POST /-/.
fn define_mixin(r: Rendering, term: &str) -> Step {
    r.req("POST", "/-/").occi("Category", &format!(r#"{term}; scheme="{EX}"; class="mixin"; location="/{term}/""#))
}

/// GFD.229 5.1.1 (text/plain): `1*(Category) *(Link) *(Attribute)`, in that order, Category first.
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

/// The attributes of the GFD.185 / GFD.229 dummy VM example as the server renders them.
fn dummy_vm(step: Step) -> Step {
    step.has("X-OCCI-Attribute", r#"occi.core.title="My Dummy VM""#)
        .has("X-OCCI-Attribute", r#"occi.compute.architecture="x86""#)
        .has("X-OCCI-Attribute", r#"occi.compute.state="inactive""#)
        .has("X-OCCI-Attribute", "occi.compute.speed=1.33")
        .has("X-OCCI-Attribute", "occi.compute.memory=2.0")
        .has("X-OCCI-Attribute", "occi.compute.cores=2")
        .has("X-OCCI-Attribute", r#"occi.compute.hostname="dummy""#)
        .custom("occi.core.id is the id given (urn:uuid: prefix optional, see the ambiguity note)", dummy_id_echoed)
}

/// The dummy VM example of GFD.185 3.7.2 / GFD.229 6 as text/plain lines, each field on its own
/// line(s); `continued` ends the lines of one field with a backslash (GFD.229 6).
fn dummy_vm_plain(continued: bool) -> Vec<&'static str> {
    let mut v = if continued {
        vec![
            r#"Category: compute; \"#,
            r#"    scheme="http://schemas.ogf.org/occi/infrastructure#"; \"#,
            r#"    class="kind";"#,
            r#"Link: </users/foo/compute/b9ff813e-fee5-4a9d-b839-673f39746096?action=start>; \"#,
            r#"    rel="http://schemas.ogf.org/occi/infrastructure/compute/action#start""#,
        ]
    } else {
        vec![
            "Category: compute;",
            r#"    scheme="http://schemas.ogf.org/occi/infrastructure#";"#,
            r#"    class="kind";"#,
            "Link: </users/foo/compute/b9ff813e-fee5-4a9d-b839-673f39746096?action=start>;",
            r#"    rel="http://schemas.ogf.org/occi/infrastructure/compute/action#start""#,
        ]
    };
    v.extend([
        r#"X-OCCI-Attribute: occi.core.id="urn:uuid:b9ff813e-fee5-4a9d-b839-673f39746096""#,
        r#"X-OCCI-Attribute: occi.core.title="My Dummy VM""#,
        r#"X-OCCI-Attribute: occi.compute.architecture="x86""#,
        r#"X-OCCI-Attribute: occi.compute.state="inactive""#,
        "X-OCCI-Attribute: occi.compute.speed=1.33",
        "X-OCCI-Attribute: occi.compute.memory=2.0",
        "X-OCCI-Attribute: occi.compute.cores=2",
        r#"X-OCCI-Attribute: occi.compute.hostname="dummy""#,
    ]);
    v
}

// ---------------------------------------------------------------------------------------- tables

/// The query interface (`/-/`) and how entities and collections are rendered.
pub fn query_interface_and_rendering(r: Rendering) -> Vec<Case> {
    let compute_line = format!(
        r#"compute; scheme="{INFRA}"; class="kind"; title="Compute Resource"; rel="http://schemas.ogf.org/occi/core#resource"; location="/compute/"; attributes="occi.compute.architecture occi.compute.cores occi.compute.hostname occi.compute.share occi.compute.speed occi.compute.memory occi.compute.state{{immutable}} occi.compute.state.message{{immutable}}"; actions="{ACTIONS}start {ACTIONS}stop {ACTIONS}restart {ACTIONS}suspend {ACTIONS}save""#
    );
    let compute_line = compute_line.as_str();
    let mut t = Table::new(r);
    t.case(
        "GFD.185 3.5.1 / 3.6.6: GET /-/ renders the compute kind exactly as term; scheme; class; title; rel; location; attributes; actions",
        |r| vec![r.get("/-/").field("Category", Match::Eq, compute_line).when(TextOcci, |s| s.lacks("Category:"))],
    );
    t.case(
        "GFD.185 3.5.1: every Category value of GET /-/ follows the ABNF order, kinds and mixins with a relative location ending in /",
        |r| vec![r.get("/-/").custom("Category ABNF", category_abnf)],
    );
    t.case("GFD.185 3.5.1: attribute properties {required} and {immutable} (the storage kind example)", |r| {
        vec![
            r.get("/-/")
                .field(
                    "Category",
                    Match::Prefix,
                    &format!(
                        r#"storage; scheme="{INFRA}"; class="kind"; title="Storage Resource"; rel="http://schemas.ogf.org/occi/core#resource"; location="/storage/"; attributes="occi.storage.size{{required}} occi.storage.state{{immutable}} "#
                    ),
                )
                .field("Category", Match::Has, r#"; attributes="occi.storage.size{required} occi.storage.state{immutable} "#),
        ]
    });
    t.case(
        "GFD.185 3.4.1 / 3.5.1: actions are Categories with class=\"action\", title and attributes (start, stop with attributes=\"method\")",
        |r| {
            vec![
                r.get("/-/")
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
            ]
        },
    );
    t.case(
        "GFD.185 3.4.1 / GFD.229 5.5.2: mixins are Categories with class=\"mixin\", rel (first depends) and location",
        |r| {
            vec![r.get("/-/").field(
                "Category",
                Match::Prefix,
                r#"medium; scheme="http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#"; class="mixin"; title="A medium Compute instance"; rel="http://schemas.ogf.org/occi/infrastructure#resource_tpl"; location="/templates/resource/medium/"; attributes=""#,
            )]
        },
    );
    t.case("GFD.185 3.6.7: /.well-known/org/ogf/occi/-/ mirrors the query interface", |r| {
        vec![r.get("/.well-known/org/ogf/occi/-/").field("Category", Match::Eq, compute_line)]
    });
    t.case(
        "GFD.185 3.4.1: a storage kind Category in a GET /-/ filters the categories to exactly that kind; GFD.223 7.1: ?related=true adds the related ones",
        |r| {
            let start = format!(r#"start; scheme="{ACTIONS}""#);
            vec![
                r.get("/-/")
                    .occi("Category", &format!(r#"storage; scheme="{INFRA}"; class="kind""#))
                    .field("Category", Match::Prefix, &format!(r#"storage; scheme="{INFRA}"; class="kind"; title="#))
                    .field_count("Category", 1),
                r.get("/-/?related=true")
                    .occi("Category", &format!(r#"storage; scheme="{INFRA}"; class="kind""#))
                    .field("Category", Match::Prefix, &format!(r#"storage; scheme="{INFRA}"; class="kind""#))
                    .field("Category", Match::Prefix, "resize; scheme=")
                    .no_field("Category", Match::Prefix, "compute;")
                    .no_field("Category", Match::Prefix, "network;")
                    .no_field("Category", Match::Prefix, "os_tpl;")
                    .no_field("Category", Match::Prefix, &start)
                    .when(TextPlain, |s| s.lacks(&start)),
            ]
        },
    );
    t.case(
        "GFD.185 3.4.1: a compute kind Category in a GET /-/ filters the categories to exactly that kind, completely rendered; GFD.223 7.1: ?related=true adds its actions, no others",
        |r| {
            vec![
                r.get("/-/").occi("Category", COMPUTE_REF).field("Category", Match::Eq, compute_line).field_count("Category", 1),
                r.get("/-/?related=true")
                    .occi("Category", COMPUTE_REF)
                    .field("Category", Match::Eq, compute_line)
                    .field("Category", Match::Prefix, &format!(r#"start; scheme="{ACTIONS}"; class="action""#))
                    .no_field("Category", Match::Prefix, "storage;")
                    .no_field("Category", Match::Prefix, "network;")
                    .no_field("Category", Match::Prefix, "up;")
                    .no_field("Category", Match::Prefix, "ipnetworkinterface;"),
            ]
        },
    );
    t.case("GFD.185 3.4.1: a mixin Category in a GET /-/ filters the categories to exactly that mixin", |r| {
        vec![
            r.get("/-/")
                .occi("Category", OS_TPL_REF)
                .field("Category", Match::Prefix, &format!(r#"os_tpl; scheme="{INFRA}"; class="mixin""#))
                .field_count("Category", 1)
                .no_field("Category", Match::Prefix, "storage;")
                .no_field("Category", Match::Prefix, "network;")
                .no_field("Category", Match::Prefix, "resource_tpl;")
                .no_field("Category", Match::Prefix, "ssh_key;"),
        ]
    });
    t.case("GFD.185 3.5 / 3.6.6: a comma-separated Category filter equals two Category fields", |r| {
        vec![
            r.get("/-/")
                .occi("Category", &format!(r#"storage; scheme="{INFRA}"; class="kind", {NETWORK_REF}"#))
                .field("Category", Match::Prefix, "storage;")
                .field("Category", Match::Prefix, "network;")
                .no_field("Category", Match::Prefix, "compute;"),
            r.get("/-/")
                .occi("Category", &format!(r#"storage; scheme="{INFRA}"; class="kind""#))
                .occi("Category", NETWORK_REF)
                .field("Category", Match::Prefix, "storage;")
                .field("Category", Match::Prefix, "network;")
                .no_field("Category", Match::Prefix, "compute;"),
        ]
    });
    t.case(
        // Spec typo: rel="http:/example.com/..." has one slash; fixed, and the mixin it names
        // is defined first (the server checks that rel names an existing mixin).
        "GFD.185 3.4.1 / GFD.229 7: POST /-/ adds user mixins (one with rel and location), DELETE /-/ (trailing ';') removes one; text/occi answers OK",
        |r| {
            vec![
                r.req("POST", "/-/")
                    .occi(
                        "Category",
                        r#"mixin; scheme="http://example.com/occi/something_else#"; class="mixin"; location="/something_else/""#,
                    )
                    .occi_body_ok(),
                r.req("POST", "/-/")
                    .occi(
                        "Category",
                        r#"my_stuff; scheme="http://example.com/occi/my_stuff#"; class="mixin"; rel="http://example.com/occi/something_else#mixin"; location="/my_stuff/""#,
                    )
                    .plain_layout(&[
                        "Category: my_stuff;",
                        r#"          scheme="http://example.com/occi/my_stuff#";"#,
                        r#"          class="mixin";"#,
                        r#"          rel="http://example.com/occi/something_else#mixin";"#,
                        r#"          location="/my_stuff/""#,
                    ])
                    .occi_body_ok(),
                r.get("/-/")
                    .field(
                        "Category",
                        Match::Eq,
                        r#"my_stuff; scheme="http://example.com/occi/my_stuff#"; class="mixin"; rel="http://example.com/occi/something_else#mixin"; location="/my_stuff/""#,
                    )
                    .field(
                        "Category",
                        Match::Eq,
                        r#"mixin; scheme="http://example.com/occi/something_else#"; class="mixin"; location="/something_else/""#,
                    ),
                r.req("DELETE", "/-/")
                    .occi("Category", r#"my_stuff; scheme="http://example.com/occi/my_stuff#"; class="mixin";"#)
                    .plain_layout(&[
                        "Category: my_stuff; ",
                        r#"            scheme="http://example.com/occi/my_stuff#"; "#,
                        r#"            class="mixin";"#,
                    ])
                    .occi_body_ok(),
                // The other categories are still listed; the deleted one is not.
                r.get("/-/")
                    .field("Category", Match::Prefix, "compute;")
                    .no_field("Category", Match::Prefix, "my_stuff;"),
            ]
        },
    );
    t.case("GFD.185 3.4.1: DELETE /-/ of a provider-defined mixin is 403 Forbidden", |r| {
        vec![
            r.req("DELETE", "/-/").occi("Category", OS_TPL_REF).status(403),
            r.get("/-/").field("Category", Match::Prefix, "os_tpl;"),
        ]
    });
    t.case("GFD.185 3.6.8 / GFD.223 5.4: POST /-/ of a category id that exists is 409 Conflict", |r| {
        vec![
            define_mixin(r, "dup_mixin"),
            define_mixin(r, "dup_mixin").status(409),
            r.req("POST", "/-/")
                .occi("Category", &format!(r#"compute; scheme="{INFRA}"; class="kind"; location="/compute2/""#))
                .status(409),
        ]
    });
    t.case(
        "GFD.185 3.4.4 / 3.6.6 / GFD.229 5.1.1, 7: an entity renders its Categories (kind first), then Link, then X-OCCI-Attribute",
        |r| {
            vec![
                put_json(
                    "/compute/r1",
                    json!({"kind": COMPUTE, "mixins": [format!("{INFRA}os_tpl")], "title": "Rendered",
                           "attributes": {"occi.compute.cores": 2, "occi.compute.hostname": "foobar", "occi.compute.memory": 2.5}}),
                ),
                r.get("/compute/r1")
                    .custom("kind first", kind_first(COMPUTE_REF))
                    .has("Category", OS_TPL_REF)
                    .field_count("Category", 2)
                    .when(TextPlain, |s| {
                        s.custom("field order", resource_order).custom("first line", |r| {
                            match r.text.lines().next() {
                                Some(l) if l == format!("Category: {COMPUTE_REF}") => Ok(()),
                                other => Err(format!("first line {other:?}")),
                            }
                        })
                    })
                    .when(TextOcci, |s| s.lacks("X-OCCI-Attribute")),
            ]
        },
    );
    t.case(
        "GFD.185 3.5.3: action references are Links </compute/r1?action=start>; rel=\"...#start\" (server-relative), only those applicable in the state (inactive: start, not stop or suspend)",
        |r| {
            vec![
                r.get("/compute/r1")
                    .has("Link", &format!(r#"</compute/r1?action=start>; rel="{ACTIONS}start""#))
                    .no_field("Link", Match::Has, "?action=stop>")
                    .no_field("Link", Match::Has, "?action=suspend>"),
            ]
        },
    );
    t.case("GFD.185 3.5.4: X-OCCI-Attribute renders numbers bare and strings quoted", |r| {
        vec![
            r.get("/compute/r1")
                .has("X-OCCI-Attribute", "occi.compute.cores=2")
                .has("X-OCCI-Attribute", "occi.compute.memory=2.5")
                .has("X-OCCI-Attribute", r#"occi.compute.hostname="foobar""#)
                .has("X-OCCI-Attribute", r#"occi.compute.state="inactive""#)
                .has("X-OCCI-Attribute", r#"occi.core.title="Rendered""#)
                .has("X-OCCI-Attribute", r#"occi.core.id="r1""#),
        ]
    });
    t.case(
        "GFD.185 3.6.6 (RFC 2616 quoted-string): quotes and backslashes in rendered strings are escaped; a value with commas stays one value",
        |r| {
            vec![
                put_json("/compute/r2", json!({"kind": COMPUTE, "title": "say \"hi\" \\ ok"})),
                r.get("/compute/r2").has("X-OCCI-Attribute", r#"occi.core.title="say \"hi\" \\ ok""#),
                put_json("/compute/r3", json!({"kind": COMPUTE, "title": "a, \"b\", c"})),
                r.get("/compute/r3").has("X-OCCI-Attribute", r#"occi.core.title="a, \"b\", c""#),
            ]
        },
    );
    t.case(
        "GFD.185 3.4.5 / 3.5.2: a resource renders its link as Link: <target>; rel; self; category; link attributes (the target absolute)",
        |r| {
            vec![
                put_json("/network/ln1", json!({"kind": NETWORK})),
                put_json(
                    "/compute/lr1",
                    json!({"kind": COMPUTE, "links": [{"kind": NETWORKINTERFACE, "id": "lr1-eth0",
                            "target": {"location": "/network/ln1"},
                            "attributes": {"occi.networkinterface.interface": "eth0", "occi.networkinterface.mac": "00:11:22:33:44:55"}}]}),
                ),
                r.get("/compute/lr1")
                    .field(
                        "Link",
                        Match::Prefix,
                        &format!(
                            r#"<{{base}}/network/ln1>; rel="{INFRA}network"; self="/networkinterface/lr1-eth0"; category="{INFRA}networkinterface""#
                        ),
                    )
                    .field("Link", Match::Has, r#"; occi.networkinterface.interface="eth0""#)
                    .field("Link", Match::Has, r#"; occi.networkinterface.mac="00:11:22:33:44:55""#)
                    .field("Link", Match::Has, r#"; occi.networkinterface.state="inactive""#)
                    .when(TextPlain, |s| s.custom("field order", resource_order)),
            ]
        },
    );
    t.case(
        "GFD.185 3.4.5: a link renders its Category and occi.core.source / occi.core.target as X-OCCI-Attribute (both absolute)",
        |r| {
            vec![
                r.get("/networkinterface/lr1-eth0")
                    .custom("kind first", kind_first(NETWORKINTERFACE_REF))
                    .has("Category", NETWORKINTERFACE_REF)
                    .has("X-OCCI-Attribute", r#"occi.core.source="{base}/compute/lr1""#)
                    .has("X-OCCI-Attribute", r#"occi.core.target="{base}/network/ln1""#)
                    .has("X-OCCI-Attribute", r#"occi.networkinterface.mac="00:11:22:33:44:55""#)
                    .when(TextPlain, |s| s.custom("field order", resource_order)),
            ]
        },
    );
    t.case("GFD.185 3.4.3 / 3.5.5: GET of a kind collection lists X-OCCI-Location with absolute URLs", |r| {
        vec![
            r.get("/compute/")
                .has("X-OCCI-Location", "{base}/compute/r1")
                .has("X-OCCI-Location", "{base}/compute/lr1")
                .no_field("X-OCCI-Location", Match::Has, "/network/")
                .custom("absolute URLs", absolute_locations),
        ]
    });
    t.case("GFD.185 3.4.2: GET of a path that is no location lists the entities below it", |r| {
        vec![
            compute_json("/vms/foo/vm1", json!({})),
            compute_json("/vms/bar/vm1", json!({})),
            r.get("/vms/foo/").has("X-OCCI-Location", "{base}/vms/foo/vm1").field_count("X-OCCI-Location", 1),
            r.get("/vms/").field_count("X-OCCI-Location", 2).custom("absolute URLs", absolute_locations),
        ]
    });
    t.case("GFD.185 3.6.6 / GFD.229 8: Accept text/uri-list on a collection gives one absolute URL per line", |_| {
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
            step("GET", "/network/").accept("text/uri-list").ctype("text/uri-list").line("{base}/network/ln1"),
        ]
    });
    t.case("GFD.185 3.6.6 / GFD.229 8: Accept text/uri-list on a single entity is 400", |_| {
        vec![
            step("GET", "/vms/foo/vm1").accept("text/uri-list").status(400),
            step("GET", "/compute/r1").accept("text/uri-list").status(400),
        ]
    });
    t.case("GFD.185 3.6.6 / GFD.229 8: Accept text/uri-list on the query interface is 400", |_| {
        vec![step("GET", "/-/").accept("text/uri-list").status(400)]
    });
    t.cases
}

/// Creating and updating entities, and how requests are parsed.
pub fn requests(r: Rendering) -> Vec<Case> {
    let attrs = json!({"occi.compute.cores": 3, "occi.compute.hostname": "h1", "occi.compute.memory": 1.5, "occi.compute.state": "inactive"});
    let mut t = Table::new(r);
    t.case(
        "GFD.185 3.4.4 / 3.6.6: POST of a resource to its kind's location is 201 with one absolute Location (text/occi: body OK)",
        |r| {
            vec![
                r.req("POST", "/compute/")
                    .occi("Category", COMPUTE_REF)
                    .occi("X-OCCI-Attribute", "occi.compute.cores=2")
                    .occi("X-OCCI-Attribute", r#"occi.compute.hostname="foobar""#)
                    .status(201)
                    .rendered()
                    .header("location", Match::Prefix, "{base}/compute/")
                    .header_count("location", 1)
                    .capture("loc"),
                get_json("{loc}")
                    .json("/kind", json!(COMPUTE))
                    .json("/attributes/occi.compute.cores", json!(2))
                    .json("/attributes/occi.compute.hostname", json!("foobar")),
                r.get("/compute/").has("X-OCCI-Location", "{base}{loc}"),
            ]
        },
    );
    t.case("GFD.185 3.4.4 / GFD.223 8.2.1: PUT creates at the URL the client chose (201, Location is that URL)", |r| {
        vec![
            put_compute(r, "/compute/chosen-1").occi("X-OCCI-Attribute", "occi.compute.cores=1").rendered().header(
                "location",
                Match::Eq,
                "{base}/compute/chosen-1",
            ),
            get_json("/compute/chosen-1").json("/id", json!("chosen-1")),
        ]
    });
    t.case(
        "GFD.185 3.4.4: a resource PUT at a path outside its kind's location is added to the kind's collection",
        |r| vec![put_compute(r, "/elsewhere/vm7"), r.get("/compute/").has("X-OCCI-Location", "{base}/elsewhere/vm7")],
    );
    t.case("GFD.185 3.4.4 (Kind location): POST / with a kind Category creates in that kind's collection", |r| {
        vec![
            r.req("POST", "/")
                .occi("Category", &format!(r#"storage; scheme="{INFRA}"; class="kind""#))
                .occi("X-OCCI-Attribute", "occi.storage.size=10")
                .status(201)
                .header("location", Match::Prefix, "{base}/storage/")
                .capture("loc"),
            get_json("{loc}").json("/attributes/occi.storage.size", json!(10)),
        ]
    });
    t.case("GFD.185 3.4.5: a Link with category= in a create makes the link, which the resource then renders", |r| {
        vec![
            r.req("PUT", "/network/123").occi("Category", NETWORK_REF).status(201),
            r.req("POST", "/compute/")
                .occi("Category", COMPUTE_REF)
                .occi(
                    "Link",
                    &format!(
                        r#"</network/123>; rel="{INFRA}network"; category="{INFRA}networkinterface"; occi.networkinterface.interface="eth0"; occi.networkinterface.mac="00:11:22:33:44:55";"#
                    ),
                )
                .occi("X-OCCI-Attribute", r#"occi.compute.cores=2, occi.compute.hostname="foobar""#)
                // The example of GFD.185 3.4.5, with its continuation lines.
                .plain_layout(&[
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
                ])
                .status(201)
                .header("location", Match::Prefix, "{base}/compute/")
                .capture("loc"),
            r.get("{loc}")
                .field("Link", Match::Prefix, &format!(r#"<{{base}}/network/123>; rel="{INFRA}network"; self="/networkinterface/"#))
                .field("Link", Match::Has, &format!(r#"; category="{INFRA}networkinterface""#))
                .field("Link", Match::Has, r#"; occi.networkinterface.mac="00:11:22:33:44:55""#)
                .field("Link", Match::Has, r#"; occi.networkinterface.interface="eth0""#),
            r.get("/networkinterface/").field_count("X-OCCI-Location", 1),
        ]
    });
    t.case("GFD.185 3.4.5: an inline link creation returns only the Location of the resource", |r| {
        vec![
            r.req("PUT", "/network/124").occi("Category", NETWORK_REF).status(201),
            r.req("POST", "/compute/")
                .occi("Category", COMPUTE_REF)
                .occi(
                    "Link",
                    &format!(
                        r#"</network/124>; rel="{INFRA}network"; category="{INFRA}networkinterface"; occi.networkinterface.mac="00:11:22:33:44:56""#
                    ),
                )
                .status(201)
                .header_count("location", 1)
                .header("location", Match::Prefix, "{base}/compute/")
                .no_field("Location", Match::Has, "/networkinterface/"),
        ]
    });
    t.case("GFD.185 3.4.4 (Full Update): a Link in a PUT on an existing resource is 400", |r| {
        vec![
            r.req("PUT", "/network/125").occi("Category", NETWORK_REF).status(201),
            put_compute(r, "/compute/full-update"),
            put_compute(r, "/compute/full-update")
                .occi(
                    "Link",
                    &format!(
                        r#"</network/125>; rel="{INFRA}network"; category="{INFRA}networkinterface"; occi.networkinterface.mac="00:11:22:33:44:57""#
                    ),
                )
                .status(400),
        ]
    });
    t.case(
        "GFD.185 3.4.4 / GFD.223 8.3.1: Partial Update with POST on a resource changes only the attributes sent (201, Location is the resource)",
        |r| {
            vec![
                put_compute(r, "/compute/partial")
                    .occi("X-OCCI-Attribute", "occi.compute.cores=2, occi.compute.memory=2.0"),
                r.req("POST", "/compute/partial")
                    .occi("X-OCCI-Attribute", "occi.compute.memory=4.0")
                    .status(201)
                    .header("location", Match::Eq, "{base}/compute/partial"),
                get_json("/compute/partial")
                    .json("/attributes/occi.compute.memory", json!(4.0))
                    .json("/attributes/occi.compute.cores", json!(2)),
            ]
        },
    );
    t.case("GFD.185 3.5 / 3.6.6: one comma-separated X-OCCI-Attribute and several give identical entities", |r| {
        vec![
            put_compute(r, "/compute/p-comma").occi(
                "X-OCCI-Attribute",
                r#"occi.compute.cores=3, occi.compute.hostname="h1", occi.compute.memory=1.5"#,
            ),
            put_compute(r, "/compute/p-lines")
                .occi("X-OCCI-Attribute", "occi.compute.cores=3")
                .occi("X-OCCI-Attribute", r#"occi.compute.hostname="h1""#)
                .occi("X-OCCI-Attribute", "occi.compute.memory=1.5"),
            get_json("/compute/p-comma").json("/attributes", attrs.clone()),
            get_json("/compute/p-lines").json("/attributes", attrs.clone()),
        ]
    });
    t.case("GFD.185 3.5 / 3.6.6: one comma-separated Category and several give identical entities", |r| {
        vec![
            r.req("PUT", "/compute/p-cats-comma").occi("Category", &format!("{COMPUTE_REF}, {OS_TPL_REF}")).status(201),
            r.req("PUT", "/compute/p-cats-lines")
                .occi("Category", COMPUTE_REF)
                .occi("Category", OS_TPL_REF)
                .status(201),
            get_json("/compute/p-cats-comma")
                .json("/kind", json!(COMPUTE))
                .json("/mixins", json!([format!("{INFRA}os_tpl")])),
            get_json("/compute/p-cats-lines")
                .json("/kind", json!(COMPUTE))
                .json("/mixins", json!([format!("{INFRA}os_tpl")])),
        ]
    });
    t.case(
        "GFD.185 3.5 / 3.6.6 / 3.4.3: one comma-separated X-OCCI-Location and several associate the same entities",
        |r| {
            vec![
                define_mixin(r, "tag_comma"),
                define_mixin(r, "tag_lines"),
                compute_json("/compute/x1", json!({})),
                compute_json("/compute/x2", json!({})),
                r.req("POST", "/tag_comma/").occi("X-OCCI-Location", "{base}/compute/x1, {base}/compute/x2"),
                r.req("POST", "/tag_lines/")
                    .occi("X-OCCI-Location", "{base}/compute/x1")
                    .occi("X-OCCI-Location", "{base}/compute/x2"),
                // GFD.185 3.5.5: several URIs are returned as several X-OCCI-Location fields
                // (text/plain lines, which .has checks one by one; text/occi headers).
                r.get("/tag_comma/")
                    .has("X-OCCI-Location", "{base}/compute/x1")
                    .has("X-OCCI-Location", "{base}/compute/x2")
                    .field_count("X-OCCI-Location", 2)
                    .when(TextOcci, |s| s.header_count("x-occi-location", 2)),
                r.get("/tag_lines/")
                    .has("X-OCCI-Location", "{base}/compute/x1")
                    .has("X-OCCI-Location", "{base}/compute/x2")
                    .field_count("X-OCCI-Location", 2),
            ]
        },
    );
    t.case("GFD.185 3.6.6 (RFC 2616 quoted-string): commas inside a quoted value are no list separators", |r| {
        vec![
            put_compute(r, "/compute/p-commas")
                .occi("X-OCCI-Attribute", r#"occi.core.title="a, b, c", occi.compute.cores=2"#),
            get_json("/compute/p-commas")
                .json("/title", json!("a, b, c"))
                .json("/attributes/occi.compute.cores", json!(2)),
        ]
    });
    t.case("GFD.185 3.6.6 (RFC 2616 quoted-pair): \\\" and \\\\ escapes in quoted values", |r| {
        vec![
            put_compute(r, "/compute/p-escapes").occi("X-OCCI-Attribute", r#"occi.core.title="say \"hi\", \\ bye""#),
            get_json("/compute/p-escapes").json("/title", json!("say \"hi\", \\ bye")),
        ]
    });
    t.case(
        "GFD.185 3.6.6 (RFC 2616 field names): field names are case-insensitive (category, x-occi-attribute, X-Occi-Attribute)",
        |r| {
            vec![
                r.req("PUT", "/compute/p-case")
                    .occi("category", COMPUTE_REF)
                    .occi("x-occi-attribute", "occi.compute.cores=5")
                    .occi("X-Occi-Attribute", r#"occi.compute.hostname="mixed""#)
                    .status(201),
                get_json("/compute/p-case")
                    .json("/attributes/occi.compute.cores", json!(5))
                    .json("/attributes/occi.compute.hostname", json!("mixed")),
            ]
        },
    );
    t.case("GFD.185 3.5.1: a Category without class is looked up by scheme and term", |r| {
        vec![
            r.req("PUT", "/compute/p-noclass").occi("Category", &format!(r#"compute; scheme="{INFRA}""#)).status(201),
            get_json("/compute/p-noclass").json("/kind", json!(COMPUTE)),
        ]
    });
    t.case("GFD.185 3.5.1: an optional trailing ';', extra spaces and an unquoted class are accepted", |r| {
        vec![
            r.req("PUT", "/compute/p-spaces")
                .occi("Category", &format!(r#"  compute ;   scheme="{INFRA}"  ;  class=kind ;"#))
                .occi("X-OCCI-Attribute", r#"   occi.compute.cores=7 ,  occi.compute.hostname="sp"  "#)
                .status(201),
            get_json("/compute/p-spaces")
                .json("/kind", json!(COMPUTE))
                .json("/attributes/occi.compute.cores", json!(7))
                .json("/attributes/occi.compute.hostname", json!("sp")),
        ]
    });
    t.only(
        TextPlain,
        "GFD.185 3.6.6 text/plain (RFC 2616 LWS folding): a line starting with white space continues the previous line",
        |r| {
            vec![
                r.req("PUT", "/compute/p-continued")
                    .body(
                        "text/plain",
                        &lines(&[
                            "Category: compute;",
                            &format!(r#"  scheme="{INFRA}";"#),
                            "\tclass=\"kind\"",
                            "X-OCCI-Attribute:",
                            "   occi.compute.cores=6,",
                            r#"   occi.compute.hostname="cont""#,
                        ]),
                    )
                    .status(201),
                get_json("/compute/p-continued")
                    .json("/attributes/occi.compute.cores", json!(6))
                    .json("/attributes/occi.compute.hostname", json!("cont")),
            ]
        },
    );
    t.case(
        "GFD.185 3.5.4: bare numbers and booleans and quoted strings get their types (checked through JSON and re-rendered)",
        |r| {
            vec![
                step("POST", "/-/").accept(JSON).json_body(json!({"mixins": [{
                    "term": "typed", "scheme": EX, "location": "/typed/",
                    "attributes": {
                        "ex.flag": {"type": "boolean", "mutable": true},
                        "ex.ratio": {"type": "number", "mutable": true},
                        "ex.count": {"type": "number", "mutable": true},
                        "ex.label": {"type": "string", "mutable": true}
                    }}]})),
                put_compute(r, "/compute/p-typed")
                    .occi("Category", &format!(r#"typed; scheme="{EX}"; class="mixin""#))
                    .occi("X-OCCI-Attribute", r#"ex.flag=true, ex.ratio=0.75, ex.count=42, ex.label="42""#)
                    .occi("X-OCCI-Attribute", r#"occi.compute.hostname="true", occi.compute.memory=2.0"#),
                r.req("PUT", "/compute/p-typed-2")
                    .occi("Category", &format!(r#"{COMPUTE_REF}, typed; scheme="{EX}"; class="mixin""#))
                    .occi("X-OCCI-Attribute", r#"ex.flag=false, ex.ratio=0.25, ex.count=7, ex.label="false""#)
                    .occi("X-OCCI-Attribute", r#"occi.compute.hostname="12", occi.compute.speed=3.0"#)
                    .status(201),
                get_json("/compute/p-typed")
                    .json("/attributes/ex.flag", json!(true))
                    .json("/attributes/ex.ratio", json!(0.75))
                    .json("/attributes/ex.count", json!(42))
                    .json("/attributes/ex.label", json!("42"))
                    .json("/attributes/occi.compute.hostname", json!("true"))
                    .json("/attributes/occi.compute.memory", json!(2.0)),
                get_json("/compute/p-typed-2")
                    .json("/attributes/ex.flag", json!(false))
                    .json("/attributes/ex.ratio", json!(0.25))
                    .json("/attributes/ex.count", json!(7))
                    .json("/attributes/ex.label", json!("false"))
                    .json("/attributes/occi.compute.hostname", json!("12"))
                    .json("/attributes/occi.compute.speed", json!(3.0)),
                r.get("/compute/p-typed")
                    .has("X-OCCI-Attribute", "ex.flag=true")
                    .has("X-OCCI-Attribute", "ex.ratio=0.75")
                    .has("X-OCCI-Attribute", "ex.count=42")
                    .has("X-OCCI-Attribute", r#"ex.label="42""#)
                    .has("X-OCCI-Attribute", r#"occi.compute.hostname="true""#),
                r.get("/compute/p-typed-2")
                    .has("X-OCCI-Attribute", "ex.flag=false")
                    .has("X-OCCI-Attribute", r#"ex.label="false""#)
                    .has("X-OCCI-Attribute", "ex.count=7"),
            ]
        },
    );
    t.case(
        "GFD.185 3.5.4: a quoted number is a string, so an integer attribute refuses it with 400 naming the attribute",
        |r| {
            vec![
                put_compute(r, "/compute/p-quoted-int")
                    .occi("X-OCCI-Attribute", r#"occi.compute.cores="2""#)
                    .status(400)
                    .contains("occi.compute.cores"),
                get_json("/compute/p-quoted-int").status(404),
            ]
        },
    );
    t.only(TextPlain, "GFD.185 3.6.8: a text/plain line without ':' is 400 naming the line (line 2)", |r| {
        vec![
            r.req("PUT", "/compute/p-bad-colon")
                .body(
                    "text/plain",
                    &lines(&[&format!("Category: {COMPUTE_REF}"), "X-OCCI-Attribute occi.compute.cores=2"]),
                )
                .status(400)
                .contains("line 2"),
        ]
    });
    t.case(
        "GFD.185 3.6.8: a malformed X-OCCI-Attribute (no '=') is 400 naming its place (line 2, or the header)",
        |r| {
            vec![
                put_compute(r, "/compute/p-bad-eq")
                    .occi("X-OCCI-Attribute", "occi.compute.cores")
                    .status(400)
                    .names_place(2, "x-occi-attribute"),
            ]
        },
    );
    t.case("GFD.185 3.6.8: an unterminated quoted string is 400 naming its place (line 3, or the header)", |r| {
        vec![
            put_compute(r, "/compute/p-bad-quote")
                .occi("X-OCCI-Attribute", "occi.compute.cores=2")
                .occi("X-OCCI-Attribute", r#"occi.core.title="open, occi.compute.cores=2"#)
                .status(400)
                .names_place(3, "x-occi-attribute"),
        ]
    });
    t.only(TextPlain, "GFD.185 3.6.8: an unknown field name is 400 naming the line (line 2)", |r| {
        vec![put_compute(r, "/compute/p-bad-field").occi("X-Foo", "bar").status(400).contains("line 2")]
    });
    t.case("GFD.185 3.6.8: a Category without scheme is 400 naming its place (line 1, or the header)", |r| {
        vec![
            r.req("PUT", "/compute/p-bad-scheme")
                .occi("Category", r#"compute; class="kind""#)
                .status(400)
                .names_place(1, "category"),
        ]
    });
    t.case("GFD.185 3.6.8: a Link without <URI> is 400 naming its place (line 2, or the header)", |r| {
        vec![
            put_compute(r, "/compute/p-bad-link")
                .occi("Link", &format!(r#"/network/1; rel="{INFRA}network"; category="{INFRA}networkinterface""#))
                .status(400)
                .names_place(2, "link"),
        ]
    });
    t.case("GFD.185 3.6.6: a text/uri-list body associates the listed entities with a mixin", |r| {
        vec![
            define_mixin(r, "tag_uris"),
            compute_json("/compute/u1", json!({})),
            compute_json("/compute/u2", json!({})),
            step("POST", "/tag_uris/")
                .accept(r.media_type())
                .body("text/uri-list", "# two entities\n{base}/compute/u1\r\n/compute/u2\n"),
            r.get("/tag_uris/")
                .has("X-OCCI-Location", "{base}/compute/u1")
                .has("X-OCCI-Location", "{base}/compute/u2")
                .field_count("X-OCCI-Location", 2),
            get_json("/compute/u1").json("/mixins", json!([format!("{EX}tag_uris")])),
        ]
    });
    t.cases
}

/// Filters, actions, pagination, versions, content negotiation, the method table, statuses.
pub fn protocol(r: Rendering) -> Vec<Case> {
    let mut t = Table::new(r);
    // The negotiation cases read /compute/r1.
    t.case("setup: a compute at /compute/r1", |_| vec![compute_json("/compute/r1", json!({}))]);
    t.case("GFD.185 3.4.3 / GFD.223 7.2: an X-OCCI-Attribute in a GET filters a collection by attribute value", |r| {
        vec![
            compute_json("/compute/f1", json!({"occi.compute.hostname": "filter-a"})),
            compute_json("/compute/f2", json!({"occi.compute.hostname": "filter-b"})),
            r.get("/compute/")
                .occi("X-OCCI-Attribute", r#"occi.compute.hostname="filter-a""#)
                .has("X-OCCI-Location", "{base}/compute/f1")
                .field_count("X-OCCI-Location", 1),
        ]
    });
    t.case("GFD.185 3.4.3: a mixin Category in a GET filters a collection by mixin", |r| {
        vec![
            put_json("/compute/fm1", json!({"kind": COMPUTE, "mixins": [format!("{INFRA}os_tpl")]})),
            r.get("/compute/")
                .occi("Category", OS_TPL_REF)
                .has("X-OCCI-Location", "{base}/compute/fm1")
                .no_field("X-OCCI-Location", Match::Has, "/compute/f1")
                .no_field("X-OCCI-Location", Match::Eq, "{base}/compute/f1"),
        ]
    });
    t.case(
        "GFD.185 3.4.3 / GFD.229 7: POST /mixin/?action=start with the action Category acts on every member (text/occi: the association answers OK)",
        |r| {
            vec![
                define_mixin(r, "act_group"),
                compute_json("/compute/a1", json!({})),
                compute_json("/compute/a2", json!({})),
                r.req("POST", "/act_group/").occi("X-OCCI-Location", "/compute/a1, /compute/a2").occi_body_ok(),
                r.req("POST", "/act_group/?action=start")
                    .occi("Category", &format!(r#"start; scheme="{ACTIONS}"; class="action""#)),
                get_json("/compute/a1").json("/attributes/occi.compute.state", json!("active")),
                get_json("/compute/a2").json("/attributes/occi.compute.state", json!("active")),
                get_json("/compute/f1").json("/attributes/occi.compute.state", json!("inactive")),
            ]
        },
    );
    t.case(
        "GFD.185 3.4.4 / GFD.229 7: POST ?action=stop with the example's Category and X-OCCI-Attribute: method=\"poweroff\" (text/occi: answers OK)",
        |r| {
            vec![
                r.req("POST", "/compute/a1?action=stop")
                    .occi("Category", &format!(r#"stop; scheme="{ACTIONS}"; class="action";"#))
                    .occi("X-OCCI-Attribute", r#"method="poweroff""#)
                    .occi_body_ok(),
                get_json("/compute/a1").json("/attributes/occi.compute.state", json!("inactive")),
            ]
        },
    );
    t.case("GFD.185 3.4.4: an action the resource does not offer is 400", |r| {
        vec![r.req("POST", "/compute/a1?action=up").status(400)]
    });
    t.case(
        "GFD.223 6: pagination with page and number; past the end an empty 200; number above the limit of 1000 is 413",
        |r| {
            vec![
                compute_json("/pg/a", json!({})),
                compute_json("/pg/b", json!({})),
                compute_json("/pg/c", json!({})),
                r.get("/pg/?page=1&number=2").field_count("X-OCCI-Location", 2),
                r.get("/pg/?page=2&number=2").field_count("X-OCCI-Location", 1),
                r.get("/pg/?page=3&number=2").field_count("X-OCCI-Location", 0),
                r.get("/pg/?number=1000").field_count("X-OCCI-Location", 3),
                r.get("/pg/?page=1&number=1000").field_count("X-OCCI-Location", 3),
                r.req("GET", "/pg/?page=1&number=1001").status(413),
                r.req("GET", "/pg/?number=1001").status(413),
            ]
        },
    );
    t.case("GFD.185 3.6.4 / GFD.223 5.3: every answer has a Server header with OCCI/1.1 and OCCI/1.2", |r| {
        vec![
            r.get("/-/").header("server", Match::Has, "OCCI/1.1").header("server", Match::Has, "OCCI/1.2"),
            r.req("GET", "/compute/nothing-here").status(404).header("server", Match::Has, "OCCI/1.1").header(
                "server",
                Match::Has,
                "OCCI/1.2",
            ),
        ]
    });
    t.case("GFD.185 3.6.4 / GFD.223 5.3: User-Agent with OCCI/1.3 is 501, OCCI/1.1 and OCCI/1.2 are served", |r| {
        vec![
            r.req("GET", "/-/").h("User-Agent", "x OCCI/1.3").status(501).header("server", Match::Has, "OCCI/1.2"),
            r.get("/-/").h("User-Agent", "occi-client/1.1 (linux) libcurl/7.19.4 OCCI/1.1"),
            r.get("/-/").h("User-Agent", "occi-client/1.1 (linux) libcurl/7.19.4 OCCI/1.2"),
            r.get("/-/").h("User-Agent", "occi-client/1.1 OCCI/1.2"),
        ]
    });
    t.only(TextPlain, "GFD.185 3.6.6: without an Accept header the answer is text/plain", |_| {
        vec![step("GET", "/-/").no_accept().ctype("text/plain").field("Category", Match::Prefix, COMPUTE_REF)]
    });
    t.only(TextPlain, "GFD.185 3.6.6: Accept */* gives text/plain", |_| {
        vec![step("GET", "/compute/r1").accept("*/*").ctype("text/plain").line(&format!("Category: {COMPUTE_REF}"))]
    });
    t.only(TextPlain, "RFC 7231 5.3.2: Accept text/* gives text/plain", |_| {
        vec![step("GET", "/compute/r1").accept("text/*").ctype("text/plain").line(&format!("Category: {COMPUTE_REF}"))]
    });
    t.case("RFC 7231 5.3.2: q-values choose this rendering over application/occi+json;q=0.1", |r| {
        vec![
            step("GET", "/compute/r1")
                .accept(&format!("application/occi+json;q=0.1, {};q=0.9", r.media_type()))
                .in_rendering(r)
                .rendered()
                .has("Category", COMPUTE_REF)
                .custom("kind first", kind_first(COMPUTE_REF)),
        ]
    });
    t.case("RFC 7231 5.3.2: at equal q the first listed text rendering wins", |r| {
        vec![
            step("GET", "/compute/r1")
                .accept(&format!("{}, {}", r.media_type(), r.other().media_type()))
                .in_rendering(r)
                .rendered()
                .has("Category", COMPUTE_REF),
        ]
    });
    t.case("RFC 7231 5.3.2: a lower q-value loses to the other text rendering", |r| {
        vec![
            step("GET", "/compute/r1")
                .accept(&format!("{};q=0.5, {};q=0.6", r.media_type(), r.other().media_type()))
                .in_rendering(r.other())
                .rendered()
                .has("Category", COMPUTE_REF),
        ]
    });
    t.case(
        "GFD.185 3.6.6 / GFD.223 5.4: nothing acceptable (text/html, image/png; application/xml; this rendering with q=0) is 406",
        |r| {
            vec![
                step("GET", "/compute/r1").accept("text/html, image/png").status(406),
                step("GET", "/compute/r1").accept("application/xml").status(406),
                step("GET", "/-/").accept(&format!("{};q=0", r.media_type())).status(406),
            ]
        },
    );
    t.case("GFD.223 9 (method table): PUT on a kind collection is 405 with an Allow header", |r| {
        vec![
            r.req("PUT", "/compute/")
                .occi("Category", COMPUTE_REF)
                .status(405)
                .header("allow", Match::Has, "GET")
                .header("allow", Match::Has, "POST")
                .allow_lacks_put(),
        ]
    });
    t.case("GFD.185 3.6.8 / GFD.223 5.4: GET and DELETE of an unknown entity are 404", |r| {
        vec![
            r.req("GET", "/compute/unknown-entity").status(404),
            r.req("DELETE", "/compute/unknown-entity").status(404),
        ]
    });
    t.case("GFD.223 5.4: creating an entity whose id exists is 409 Conflict", |r| {
        vec![
            put_compute(r, "/compute/dup1"),
            r.req("POST", "/compute/")
                .occi("Category", COMPUTE_REF)
                .occi("X-OCCI-Attribute", r#"occi.core.id="dup1""#)
                .status(409),
        ]
    });
    t.case("GFD.223 8.4 / GFD.229 7: DELETE of an entity is 200 (text/occi: body OK) and the entity is gone", |r| {
        vec![
            put_compute(r, "/compute/to-delete"),
            r.req("DELETE", "/compute/to-delete").occi_body_ok(),
            r.req("GET", "/compute/to-delete").status(404),
        ]
    });
    t.case(
        "GFD.185 3.4.3: POST /compute/?action=... with the action Category acts on the whole kind collection, all or nothing (409 while one member is in a state the action does not apply to)",
        |r| {
            vec![
                r.req("POST", "/compute/?action=start")
                    .occi("Category", &format!(r#"start; scheme="{ACTIONS}"; class="action""#))
                    .status(409),
                get_json("/compute/f1").json("/attributes/occi.compute.state", json!("inactive")),
                r.req("POST", "/compute/a2?action=stop").occi("Category", &format!(r#"stop; scheme="{ACTIONS}"; class="action""#)),
                r.req("POST", "/compute/?action=start")
                    .occi("Category", &format!(r#"start; scheme="{ACTIONS}"; class="action""#)),
                get_json("/compute/f1").json("/attributes/occi.compute.state", json!("active")),
                r.req("POST", "/compute/?action=stop")
                    .occi("Category", &format!(r#"stop; scheme="{ACTIONS}"; class="action";"#))
                    .occi("X-OCCI-Attribute", r#"method="poweroff""#),
                get_json("/compute/f1").json("/attributes/occi.compute.state", json!("inactive")),
                get_json("/compute/a1").json("/attributes/occi.compute.state", json!("inactive")),
            ]
        },
    );
    t.cases
}

/// The examples of GFD.185 3.7 and GFD.229 6-7.
pub fn spec_examples(r: Rendering) -> Vec<Case> {
    let dummy = format!("/users/foo/compute/{DUMMY_ID}");
    let header_example = format!("/gfd229/header/{DUMMY_ID}");
    let mut t = Table::new(r);
    t.case(
        "GFD.185 3.7.1 (More Complete Examples): the text/occi create with the Category header only, answered in this rendering (text/plain: to Accept */*)",
        |r| {
            let accept = match r {
                TextPlain => "*/*",
                TextOcci => "text/occi",
            };
            vec![
                step("POST", "/compute/")
                    .h("User-Agent", "curl/7.21.0 (x86_64-pc-linux-gnu) libcurl/7.21.0 OpenSSL/0.9.8o zlib/1.2.3.4 libidn/1.18")
                    .accept(accept)
                    .h("Content-Type", "text/occi")
                    .h("Category", r#"compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind";"#)
                    .in_rendering(r)
                    .status(201)
                    .rendered()
                    .header_count("location", 1)
                    .header("location", Match::Prefix, "{base}/compute/")
                    .header("server", Match::Has, "OCCI/1.1")
                    .capture("loc"),
                step("GET", "{loc}")
                    .accept(accept)
                    .in_rendering(r)
                    .rendered()
                    .has("Category", COMPUTE_REF)
                    .custom("kind first", kind_first(COMPUTE_REF)),
            ]
        },
    );
    t.only(
        TextPlain,
        // Spec typo: the example has no ';' between scheme="..." and class="kind"; added.
        // The retrieve example is sent as the body of a text/plain PUT, then read back.
        "GFD.185 3.7.2 (More Complete Examples): the retrieved compute example, PUT as text/plain and read back with Accept */*",
        |r| {
            vec![
                r.req("PUT", &dummy)
                    .body("text/plain", &lines(&dummy_vm_plain(false)))
                    .status(201)
                    .header("location", Match::Eq, &format!("{{base}}{dummy}")),
                dummy_vm(
                    step("GET", &dummy)
                        .accept("*/*")
                        .in_rendering(r)
                        .rendered()
                        .custom("field order", resource_order)
                        .has("Category", COMPUTE_REF)
                        .has(
                            "Link",
                            &format!(
                                r#"</users/foo/compute/{DUMMY_ID}?action=start>; rel="http://schemas.ogf.org/occi/infrastructure/compute/action#start""#
                            ),
                        ),
                ),
                r.get("/compute/").has("X-OCCI-Location", &format!("{{base}}{dummy}")),
            ]
        },
    );
    t.only(
        TextPlain,
        // Spec typo as above: ';' added after scheme="...". The '< ' response markers are dropped.
        "GFD.229 6 (text/plain example): the backslash-continued entity rendering as a text/plain body",
        |r| {
            let path = format!("/gfd229/plain/{DUMMY_ID}");
            vec![
                r.req("PUT", &path).body("text/plain", &lines(&dummy_vm_plain(true))).status(201),
                dummy_vm(r.get(&path).has("Category", COMPUTE_REF)),
            ]
        },
    );
    t.case(
        // Spec typo as above. text/occi sends the header values on one line each (a backslash
        // continuation is no HTTP syntax); text/plain sends the example's backslash-continued
        // lines as its body. The trailing "OK" body line is left out.
        "GFD.229 7 (text/occi example): the entity rendering with a comma list of attributes, sent and read back",
        |r| {
            vec![
                r.req("PUT", &header_example)
                    .occi("Category", r#"compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind";"#)
                    .occi(
                        "Link",
                        r#"</users/foo/compute/b9ff813e-fee5-4a9d-b839-673f39746096?action=start>; rel="http://schemas.ogf.org/occi/infrastructure/compute/action#start""#,
                    )
                    .occi(
                        "X-OCCI-Attribute",
                        r#"occi.core.id="urn:uuid:b9ff813e-fee5-4a9d-b839-673f39746096", occi.core.title="My Dummy VM", occi.compute.architecture="x86", occi.compute.state="inactive", occi.compute.speed=1.33, occi.compute.memory=2.0, occi.compute.cores=2, occi.compute.hostname="dummy""#,
                    )
                    .plain_layout(&[
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
                    ])
                    .status(201)
                    .header("location", Match::Eq, &format!("{{base}}{header_example}")),
                dummy_vm(
                    r.get(&header_example)
                        .custom("kind first", kind_first(COMPUTE_REF))
                        .has("Category", COMPUTE_REF)
                        .has("Link", &format!(r#"<{header_example}?action=start>; rel="{ACTIONS}start""#)),
                ),
                r.get("/compute/").has("X-OCCI-Location", &format!("{{base}}{header_example}")),
            ]
        },
    );
    t.cases
}
