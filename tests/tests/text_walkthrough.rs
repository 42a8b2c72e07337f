//! The seed's section-4 walkthrough again, every operation in the OCCI text renderings: once
//! with the fields as text/plain body lines, once as text/occi request headers (GFD.185 3.6.6).
//! The pyOCNI providers body has no text form and is left to the JSON walkthrough.

use ocni_tests::{COMPUTE, COMPUTE_ACTION, TestServer};
use serde_json::Value;

const INFRA: &str = "http://schemas.ogf.org/occi/infrastructure#";

const VM: &str = "996ad860-2a9a-504f-8861-aeafd0b2ae29";

type Fields = Vec<(&'static str, String)>;

struct Step {
    id: &'static str,
    method: &'static str,
    path: String,
    fields: Fields,
    status: u16,
    /// A piece of text the answer must contain (in body or headers).
    expect: Option<String>,
}

fn step(id: &'static str, method: &'static str, path: &str, fields: Fields, status: u16) -> Step {
    Step { id, method, path: path.to_string(), fields, status, expect: None }
}

fn cat(term: &str, scheme: &str, class: &str, rest: &str) -> (&'static str, String) {
    ("Category", format!("{term}; scheme=\"{scheme}\"; class=\"{class}\"{rest}"))
}

fn attr(a: &str) -> (&'static str, String) {
    ("X-OCCI-Attribute", a.to_string())
}

fn loc(l: &str) -> (&'static str, String) {
    ("X-OCCI-Location", l.to_string())
}

fn steps(base: &str) -> Vec<Step> {
    let compute = || cat("compute", INFRA, "kind", "");
    let start = || cat("start", COMPUTE_ACTION, "action", "");
    let medium = |title: &str| {
        cat(
            "medium",
            "http://example.com/template/resource#",
            "mixin",
            &format!(
                "; title=\"{title}\"; rel=\"{INFRA}resource_tpl\"; location=\"/template/resource/medium/\"; attributes=\"occi.compute.speed\""
            ),
        )
    };
    let vm_attrs = || {
        vec![
            attr("occi.compute.speed=2"),
            attr("occi.compute.memory=4"),
            attr("occi.compute.cores=12"),
            attr("occi.core.title=\"Compute resource\""),
            attr("occi.core.summary=\"This is a compute resource\""),
        ]
    };
    let mut custom = vec![compute(), cat("medium", "http://example.com/template/resource#", "mixin", "")];
    custom.extend(vm_attrs());
    let mut s = vec![
        step("4.1.1", "GET", "/-/", vec![], 200),
        // The seed's filter finds the stop action; a Category filter names it (GFD.185 3.4.1:
        // the answer is exactly the category named).
        Step {
            expect: Some(format!("stop; scheme=\"{COMPUTE_ACTION}\"; class=\"action\"")),
            ..step("4.1.2", "GET", "/-/", vec![cat("stop", COMPUTE_ACTION, "action", "")], 200)
        },
        step(
            "4.1.3",
            "POST",
            "/-/",
            vec![
                cat(
                    "vm",
                    "http://example.com/occi/seed#",
                    "kind",
                    &format!(
                        "; title=\"Compute Resource (seed)\"; rel=\"http://schemas.ogf.org/occi/core#resource\"; location=\"/vm/\"; attributes=\"seed.vm.hostname seed.vm.state{{immutable}}\"; actions=\"{COMPUTE_ACTION}start {COMPUTE_ACTION}stop {COMPUTE_ACTION}restart\""
                    ),
                ),
                cat(
                    "my_mixin",
                    "http://schemas.opennebula.org/occi/infrastructure#",
                    "mixin",
                    "; location=\"/mixins/opennebula/my_mixin/\"",
                ),
                cat(
                    "my_mixin",
                    "http://schemas.other.org/occi#",
                    "mixin",
                    "; location=\"/mixins/other/my_mixin/\"; attributes=\"org.other.occi.my_mixin.my_attribute\"",
                ),
                medium("Medium VM"),
                cat("backup", "http://example.com/occi/seed/vm/action#", "action", "; attributes=\"method\""),
            ],
            200,
        ),
        step("4.1.4", "PUT", "/-/", vec![medium("MediumVM")], 200),
        step("4.1.5", "DELETE", "/-/", vec![cat("vm", "http://example.com/occi/seed#", "kind", "")], 200),
    ];
    let mut create = vec![
        compute(),
        cat("my_mixin", "http://schemas.opennebula.org/occi/infrastructure#", "mixin", ""),
        // GFD.185: class may be left out of a request Category; the server looks it up.
        ("Category", "my_mixin; scheme=\"http://schemas.other.org/occi#\"".to_string()),
        attr(&format!("occi.core.id=\"{VM}\"")),
        attr("occi.compute.speed=2, occi.compute.memory=4, occi.compute.cores=2"),
        attr("org.other.occi.my_mixin.my_attribute=\"my_value\""),
        attr("occi.core.title=\"Compute resource\""),
    ];
    create.push(attr("occi.core.summary=\"This is a compute resource\""));
    let vm_url = format!("{base}/compute/{VM}");
    s.extend([
        Step { expect: Some(vm_url.clone()), ..step("4.3.3", "POST", "/compute/", create, 201) },
        Step { expect: Some(vm_url.clone()), ..step("4.3.1", "GET", "/compute/", vec![], 200) },
        Step {
            expect: Some(vm_url.clone()),
            ..step(
                "4.3.2",
                "GET",
                "/compute/",
                vec![attr("occi.compute.speed=2"), attr("occi.compute.memory=4"), attr("occi.compute.cores=2")],
                200,
            )
        },
        step("4.3.4", "POST", "/compute/?action=start", vec![start()], 200),
        step("4.3.5", "POST", "/template/resource/medium/", vec![loc(&vm_url)], 200),
        step("4.3.6", "PUT", "/template/resource/medium/", vec![loc(&vm_url)], 200),
        step("4.3.7", "DELETE", "/template/resource/medium/", vec![loc(&vm_url)], 200),
        step("4.4.1", "PUT", "/compute/9930", custom.clone(), 201),
        Step { expect: Some("occi.compute.cores=12".into()), ..step("4.4.2", "GET", "/compute/9930", vec![], 200) },
        step("4.4.3", "PUT", "/compute/9930", custom, 201),
        step("4.4.4", "POST", "/compute/9930", vec![attr("occi.compute.speed=5, occi.compute.cores=2")], 201),
        step("4.4.5", "POST", "/compute/9930?action=start", vec![start()], 200),
        Step {
            expect: Some("occi.compute.state=\"active\"".into()),
            ..step("4.4.5b", "GET", "/compute/9930", vec![], 200)
        },
        step("4.4.6", "DELETE", "/compute/9930", vec![], 200),
        step("4.4.7", "GET", "/compute/9930", vec![], 404),
        step("4.2.0", "PUT", "/users/bilel/vm1", vec![compute(), attr("occi.compute.cores=1")], 201),
        Step { expect: Some(format!("{base}/users/bilel/vm1")), ..step("4.2.1", "GET", "/users/", vec![], 200) },
        step("4.2.2", "GET", "/users/bilel/", vec![], 200),
        step("4.2.3", "DELETE", "/users/bilel/", vec![], 200),
        step("4.2.4", "GET", "/users/bilel/vm1", vec![], 404),
    ]);
    s
}

async fn run(headers_mode: bool) {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let (accept, content_type) = if headers_mode { ("text/occi", "text/occi") } else { ("text/plain", "text/plain") };
    let mut failures = Vec::new();
    for s in steps(&server.base) {
        let mut req = client
            .request(reqwest::Method::from_bytes(s.method.as_bytes()).unwrap(), server.url(&s.path))
            .header("Accept", accept);
        if !s.fields.is_empty() {
            req = req.header("Content-Type", content_type);
            if headers_mode {
                for (k, v) in &s.fields {
                    req = req.header(*k, v.as_str());
                }
            } else {
                let body: String = s.fields.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
                req = req.body(body);
            }
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers: String =
            resp.headers().iter().map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or("?"))).collect();
        let body = resp.text().await.unwrap();
        let all = format!("{headers}\n{body}");
        if status != s.status {
            failures.push(format!("{} {} {}: expected {}, got {status}: {body}", s.id, s.method, s.path, s.status));
            continue;
        }
        if headers_mode && status < 300 && body.trim() != "OK" {
            failures.push(format!("{} {}: text/occi body must be OK, got {body:?}", s.id, s.path));
        }
        if let Some(want) = &s.expect
            && !all.contains(want.as_str())
        {
            failures.push(format!("{} {}: answer lacks {want:?}:\n{all}", s.id, s.path));
        }
    }
    assert!(failures.is_empty(), "{} steps failed:\n{}", failures.len(), failures.join("\n"));

    // The state the walkthrough left, read as JSON.
    let vm: Value = server.get(&format!("/compute/{VM}")).await.json();
    assert_eq!(vm["kind"], COMPUTE);
    assert_eq!(vm["attributes"]["occi.compute.state"], "active");
    assert_eq!(vm["attributes"]["org.other.occi.my_mixin.my_attribute"], "my_value");
    assert_eq!(vm["attributes"]["occi.compute.cores"], 2);
    assert_eq!(vm["title"], "Compute resource");
    let cats = server.get("/-/").await.json();
    let medium = cats["mixins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["term"] == "medium" && m["scheme"] == "http://example.com/template/resource#");
    assert_eq!(medium.expect("medium mixin defined")["title"], "MediumVM");
    assert!(!cats["kinds"].as_array().unwrap().iter().any(|k| k["term"] == "vm"), "vm kind was deleted");
}

#[tokio::test]
async fn walkthrough_in_text_plain() {
    run(false).await;
}

#[tokio::test]
async fn walkthrough_in_text_occi_headers() {
    run(true).await;
}
