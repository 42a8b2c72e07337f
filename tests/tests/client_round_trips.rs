//! What a plain OCCI client does, end to end: read a resource, change one attribute and send the
//! whole rendering back (Link lines, inline links and action links included), in text/plain,
//! text/occi and JSON; and create links with only their ends, leaving the values a provider
//! assigns (MAC address, interface name, device id) to the server.

use std::collections::BTreeSet;
use std::sync::Arc;

use ocni_tests::{COMPUTE, JSON, NETWORK, NETWORKINTERFACE, Reply, STORAGE, STORAGELINK, TestServer, expect};
use serde_json::{Value, json};

const MAC: &str = "occi.networkinterface.mac";
const INTERFACE: &str = "occi.networkinterface.interface";
const DEVICE_ID: &str = "occi.storagelink.deviceid";
const NI_CATEGORY: &str = r#"networkinterface; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#;
const SL_CATEGORY: &str = r#"storagelink; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#;

async fn create(server: &TestServer, collection: &str, entity: Value) {
    expect(&server.json("POST", collection, Some(entity)).await, 201);
}

/// Networks `net1` and `net2`, and a compute `vm` (hostname `vm1`, one core) linked to `net1`
/// through `nic1`.
async fn compute_with_a_link(server: &TestServer) {
    create(server, "/network/", json!({"kind": NETWORK, "id": "net1"})).await;
    create(server, "/network/", json!({"kind": NETWORK, "id": "net2"})).await;
    create(
        server,
        "/compute/",
        json!({"kind": COMPUTE, "id": "vm", "title": "web",
               "attributes": {"occi.compute.hostname": "vm1", "occi.compute.cores": 1}}),
    )
    .await;
    create(
        server,
        "/networkinterface/",
        json!({"kind": NETWORKINTERFACE, "id": "nic1", "source": "/compute/vm", "target": "/network/net1",
               "attributes": {MAC: "02:00:00:00:00:01", INTERFACE: "eth0"}}),
    )
    .await;
}

/// The compute's links and the link's own rendering: what an update must leave as it is.
async fn links_of_vm(server: &TestServer) -> (Value, Value) {
    let vm = server.get_ok("/compute/vm").await;
    (vm["links"].clone(), server.get_ok("/networkinterface/nic1").await)
}

/// A text/occi request: the OCCI data in `headers`, no body.
async fn send_occi(server: &TestServer, method: &str, path: &str, headers: &[(String, String)]) -> Reply {
    let mut req = reqwest::Client::new()
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), server.url(path))
        .header("Accept", "text/occi")
        .header("Content-Type", "text/occi");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    Reply::read(req.send().await.expect("request reaches the server")).await
}

/// The OCCI headers of a text/occi answer, as a client would send them back.
fn occi_headers(reply: &Reply) -> Vec<(String, String)> {
    reply
        .headers
        .iter()
        .filter(|(k, _)| ["category", "link", "x-occi-attribute"].contains(&k.as_str()))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect()
}

/// `text` with `from` replaced by `to`, which must be there.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in {text}");
    text.replace(from, to)
}

/// Asserts a refusal (400) whose answer, in whatever rendering, names every one of `words`.
#[track_caller]
fn refused(reply: &Reply, words: &[&str]) {
    expect(reply, 400);
    for w in words {
        assert!(reply.text.contains(w), "the answer should name {w:?}: {}", reply.text);
    }
}

// ---------------------------------------------------------------------- item 1: updates

/// GFD.223: "Any OCCI Links associated with an existing OCCI Resource MUST be left intact." A
/// client that GETs a compute in JSON, changes one attribute and PUTs (or POSTs) the whole
/// rendering back, its inline links and actions included, updates the compute (201, as every
/// entity create and update here) and leaves the links as they are.
#[tokio::test]
async fn json_rendering_sent_back_is_an_update() {
    let server = TestServer::start().await;
    compute_with_a_link(&server).await;
    let before = links_of_vm(&server).await;
    let mut vm = server.get_ok("/compute/vm").await;
    assert_eq!(vm["links"].as_array().map(Vec::len), Some(1), "{vm}");
    assert!(vm["actions"].as_array().is_some_and(|a| !a.is_empty()), "{vm}");

    vm["attributes"]["occi.compute.hostname"] = json!("renamed");
    expect(&server.json("PUT", "/compute/vm", Some(vm.clone())).await, 201);
    let after = server.get_ok("/compute/vm").await;
    assert_eq!(after["attributes"]["occi.compute.hostname"], "renamed");
    assert_eq!(after["title"], "web");
    assert_eq!(links_of_vm(&server).await, before);

    let mut vm = after;
    vm["attributes"]["occi.compute.cores"] = json!(4);
    expect(&server.json("POST", "/compute/vm", Some(vm)).await, 201);
    let after = server.get_ok("/compute/vm").await;
    assert_eq!(after["attributes"]["occi.compute.cores"], 4);
    assert_eq!(links_of_vm(&server).await, before);

    // The pyOCNI dialect's rendering (action links as objects, link ends as strings) too.
    let reply = server.py("GET", "/compute/vm", None).await;
    expect(&reply, 200);
    let mut body = reply.json();
    body["resources"][0]["attributes"]["occi"]["compute"]["hostname"] = json!("py");
    expect(&server.py("PUT", "/compute/vm", Some(body)).await, 201);
    assert_eq!(server.get_ok("/compute/vm").await["attributes"]["occi.compute.hostname"], "py");
    assert_eq!(links_of_vm(&server).await, before);
}

/// The same round trip in text/plain: the rendering's Category, Link (the link and the action
/// links) and X-OCCI-Attribute lines go back in the body.
#[tokio::test]
async fn text_plain_rendering_sent_back_is_an_update() {
    let server = TestServer::start().await;
    compute_with_a_link(&server).await;
    let before = links_of_vm(&server).await;
    let reply = server.send("GET", "/compute/vm", Some("text/plain"), None, None).await;
    expect(&reply, 200);
    let body = reply.text;
    assert!(body.contains(&format!("Link: <{}/network/net1>", server.base)), "{body}");
    assert!(body.contains("?action=start>"), "{body}");

    let put = replaced(&body, r#"occi.compute.hostname="vm1""#, r#"occi.compute.hostname="renamed""#);
    expect(&server.send("PUT", "/compute/vm", Some("text/plain"), Some("text/plain"), Some(put)).await, 201);
    assert_eq!(server.get_ok("/compute/vm").await["attributes"]["occi.compute.hostname"], "renamed");
    assert_eq!(links_of_vm(&server).await, before);

    let post = replaced(&body, "occi.compute.cores=1", "occi.compute.cores=4");
    expect(&server.send("POST", "/compute/vm", Some("text/plain"), Some("text/plain"), Some(post)).await, 201);
    let vm = server.get_ok("/compute/vm").await;
    assert_eq!(vm["attributes"]["occi.compute.cores"], 4);
    assert_eq!(vm["attributes"]["occi.compute.hostname"], "vm1", "the POST sent back the hostname it read");
    assert_eq!(links_of_vm(&server).await, before);
}

/// The same round trip in text/occi: the rendering's OCCI headers go back as request headers.
#[tokio::test]
async fn text_occi_rendering_sent_back_is_an_update() {
    let server = TestServer::start().await;
    compute_with_a_link(&server).await;
    let before = links_of_vm(&server).await;
    let reply = server.send("GET", "/compute/vm", Some("text/occi"), None, None).await;
    expect(&reply, 200);
    let headers = occi_headers(&reply);
    let links: Vec<&str> = headers.iter().filter(|(k, _)| k == "link").map(|(_, v)| v.as_str()).collect();
    assert!(links.iter().any(|l| l.contains(&format!("<{}/network/net1>", server.base))), "{links:?}");
    assert!(links.iter().any(|l| l.contains("?action=start>")), "{links:?}");

    let change = |from: &str, to: &str| -> Vec<(String, String)> {
        assert!(headers.iter().any(|(_, v)| v.contains(from)), "{from:?} is not in {headers:?}");
        headers.iter().map(|(k, v)| (k.clone(), v.replace(from, to))).collect()
    };
    let put = change(r#"occi.compute.hostname="vm1""#, r#"occi.compute.hostname="renamed""#);
    expect(&send_occi(&server, "PUT", "/compute/vm", &put).await, 201);
    assert_eq!(server.get_ok("/compute/vm").await["attributes"]["occi.compute.hostname"], "renamed");
    assert_eq!(links_of_vm(&server).await, before);

    let post = change("occi.compute.cores=1", "occi.compute.cores=4");
    expect(&send_occi(&server, "POST", "/compute/vm", &post).await, 201);
    assert_eq!(server.get_ok("/compute/vm").await["attributes"]["occi.compute.cores"], 4);
    assert_eq!(links_of_vm(&server).await, before);
}

/// A rendering sent back with a link the compute does not have, or with a link's attribute
/// changed, would change links through an update: 400 naming the link, and nothing is written.
#[tokio::test]
async fn an_update_that_adds_or_changes_a_link_is_refused() {
    let server = TestServer::start().await;
    compute_with_a_link(&server).await;
    let before_vm = server.get_ok("/compute/vm").await;
    let before = links_of_vm(&server).await;
    let unchanged = || async {
        let vm = server.get_ok("/compute/vm").await;
        assert_eq!(vm["attributes"], before_vm["attributes"], "nothing of a refused update is written");
        assert_eq!(links_of_vm(&server).await, before);
        let listed = server.get_ok("/networkinterface/").await;
        assert_eq!(listed["links"].as_array().map(Vec::len), Some(1), "no link was added: {listed}");
    };

    // JSON: an added inline link, a changed one.
    let mut added = before_vm.clone();
    added["attributes"]["occi.compute.hostname"] = json!("renamed");
    added["links"].as_array_mut().unwrap().push(json!({
        "kind": NETWORKINTERFACE, "target": {"location": "/network/net2", "kind": NETWORK},
        "attributes": {MAC: "02:00:00:00:00:02"},
    }));
    for method in ["PUT", "POST"] {
        let reply = server.json(method, "/compute/vm", Some(added.clone())).await;
        refused(&reply, &["links[1]", "/network/net2", "not one of the links", "/networkinterface/"]);
        unchanged().await;
    }
    let mut changed = before_vm.clone();
    changed["links"][0]["attributes"][MAC] = json!("02:00:00:00:00:99");
    for method in ["PUT", "POST"] {
        let reply = server.json(method, "/compute/vm", Some(changed.clone())).await;
        refused(&reply, &["links[0]", "/networkinterface/nic1", MAC, "02:00:00:00:00:99"]);
        unchanged().await;
    }

    // text/plain: an added Link line, a changed one.
    let reply = server.send("GET", "/compute/vm", Some("text/plain"), None, None).await;
    let body = reply.text;
    let added = format!(
        "{body}Link: </network/net2>; rel=\"{NETWORK}\"; category=\"{NETWORKINTERFACE}\"; {MAC}=\"02:00:00:00:00:02\"\n"
    );
    let changed = replaced(&body, &format!("{MAC}=\"02:00:00:00:00:01\""), &format!("{MAC}=\"02:00:00:00:00:99\""));
    for method in ["PUT", "POST"] {
        let reply =
            server.send(method, "/compute/vm", Some("text/plain"), Some("text/plain"), Some(added.clone())).await;
        refused(&reply, &["/network/net2", "not one of the links"]);
        let reply =
            server.send(method, "/compute/vm", Some("text/plain"), Some("text/plain"), Some(changed.clone())).await;
        refused(&reply, &["/networkinterface/nic1", MAC, "02:00:00:00:00:99"]);
        unchanged().await;
    }

    // text/occi: the same as headers.
    let headers = occi_headers(&server.send("GET", "/compute/vm", Some("text/occi"), None, None).await);
    let mut added = headers.clone();
    added.push((
        "Link".into(),
        format!("</network/net2>; rel=\"{NETWORK}\"; category=\"{NETWORKINTERFACE}\"; {MAC}=\"02:00:00:00:00:02\""),
    ));
    let changed: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.clone(), v.replace("02:00:00:00:00:01", "02:00:00:00:00:99"))).collect();
    assert_ne!(changed, headers);
    for method in ["PUT", "POST"] {
        refused(&send_occi(&server, method, "/compute/vm", &added).await, &["/network/net2", "not one of the links"]);
        refused(&send_occi(&server, method, "/compute/vm", &changed).await, &["/networkinterface/nic1", MAC]);
        unchanged().await;
    }
}

/// Links an update body leaves out are left as they are (GFD.223): listing one of two links, or
/// none, removes nothing.
#[tokio::test]
async fn links_left_out_of_an_update_stay() {
    let server = TestServer::start().await;
    compute_with_a_link(&server).await;
    create(
        &server,
        "/networkinterface/",
        json!({"kind": NETWORKINTERFACE, "id": "nic2", "source": "/compute/vm", "target": "/network/net2"}),
    )
    .await;
    let mut vm = server.get_ok("/compute/vm").await;
    let both = vm["links"].clone();
    assert_eq!(both.as_array().map(Vec::len), Some(2), "{vm}");
    vm["links"].as_array_mut().unwrap().retain(|l| l["id"] == "nic1");
    vm["attributes"]["occi.compute.hostname"] = json!("one-link");
    expect(&server.json("PUT", "/compute/vm", Some(vm.clone())).await, 201);
    vm.as_object_mut().unwrap().remove("links");
    vm["attributes"]["occi.compute.hostname"] = json!("no-link");
    expect(&server.json("PUT", "/compute/vm", Some(vm)).await, 201);
    let after = server.get_ok("/compute/vm").await;
    assert_eq!(after["attributes"]["occi.compute.hostname"], "no-link");
    assert_eq!(after["links"], both);
}

// ---------------------------------------------------------------------- item 2: provider values

/// A MAC address ocni assigns: lower-case `xx:xx:xx:xx:xx:xx`, locally administered (bit 0x02
/// of the first octet set) and unicast (bit 0x01 clear).
#[track_caller]
fn assert_provider_mac(mac: &Value) {
    let mac = mac.as_str().unwrap_or_else(|| panic!("no MAC: {mac}"));
    let octets: Vec<&str> = mac.split(':').collect();
    assert!(
        octets.len() == 6
            && octets.iter().all(|o| o.len() == 2 && o.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))),
        "{mac}"
    );
    let first = u8::from_str_radix(octets[0], 16).unwrap();
    assert_eq!(first & 0x03, 0x02, "locally administered unicast: {mac}");
}

/// Networks `net1` and `net2`, computes `vm` and `vm2`, storages `disk1`..`disk3`.
async fn infrastructure(server: &TestServer) {
    for n in ["net1", "net2"] {
        create(server, "/network/", json!({"kind": NETWORK, "id": n})).await;
    }
    for c in ["vm", "vm2"] {
        create(server, "/compute/", json!({"kind": COMPUTE, "id": c})).await;
    }
    for s in ["disk1", "disk2", "disk3"] {
        create(server, "/storage/", json!({"kind": STORAGE, "id": s, "attributes": {"occi.storage.size": 1.0}})).await;
    }
}

/// GFD.224 gives a network interface a MAC and an interface name, but they are the provider's:
/// a networkinterface created with only its source and target, in JSON and text/plain at
/// `/networkinterface/` and in text/occi by `POST /` with its Category, gets a fresh MAC and the
/// next free interface name of its compute.
#[tokio::test]
async fn networkinterface_with_only_its_ends_gets_mac_and_interface() {
    let server = TestServer::start().await;
    infrastructure(&server).await;
    let ends = |source: &str, target: &str| {
        format!("X-OCCI-Attribute: occi.core.source=\"{source}\"\nX-OCCI-Attribute: occi.core.target=\"{target}\"\n")
    };
    let reply = server
        .json(
            "POST",
            "/networkinterface/",
            Some(json!({"kind": NETWORKINTERFACE, "id": "a", "source": "/compute/vm", "target": "/network/net1"})),
        )
        .await;
    expect(&reply, 201);
    let body = format!(
        "Category: {NI_CATEGORY}\nX-OCCI-Attribute: occi.core.id=\"b\"\n{}",
        ends("/compute/vm", "/network/net2")
    );
    expect(&server.send("POST", "/networkinterface/", Some("text/plain"), Some("text/plain"), Some(body)).await, 201);
    let headers = vec![
        ("Category".to_string(), NI_CATEGORY.to_string()),
        ("X-OCCI-Attribute".to_string(), "occi.core.id=\"c\"".to_string()),
        ("X-OCCI-Attribute".to_string(), "occi.core.source=\"/compute/vm\"".to_string()),
        ("X-OCCI-Attribute".to_string(), format!("occi.core.target=\"{}\"", server.url("/network/net1"))),
    ];
    expect(&send_occi(&server, "POST", "/", &headers).await, 201);
    let body = format!(
        "Category: {NI_CATEGORY}\nX-OCCI-Attribute: occi.core.id=\"d\"\n{}",
        ends("/compute/vm2", "/network/net1")
    );
    expect(&server.send("POST", "/networkinterface/", Some("text/plain"), Some("text/plain"), Some(body)).await, 201);

    let mut macs = BTreeSet::new();
    for (id, interface) in [("a", "eth0"), ("b", "eth1"), ("c", "eth2"), ("d", "eth0")] {
        let link = server.get_ok(&format!("/networkinterface/{id}")).await;
        assert_provider_mac(&link["attributes"][MAC]);
        macs.insert(link["attributes"][MAC].as_str().unwrap().to_string());
        assert_eq!(link["attributes"][INTERFACE], interface, "{id}: the next free name of its compute: {link}");
    }
    assert_eq!(macs.len(), 4, "every interface has its own MAC: {macs:?}");

    // The next free name, not the count: eth1 is free again once its link is gone.
    expect(&server.json("DELETE", "/networkinterface/b", None).await, 200);
    create(
        &server,
        "/networkinterface/",
        json!({"kind": NETWORKINTERFACE, "id": "e", "source": "/compute/vm", "target": "/network/net2"}),
    )
    .await;
    assert_eq!(server.get_ok("/networkinterface/e").await["attributes"][INTERFACE], "eth1");

    // A replacement that leaves the provider's values out keeps them.
    let a = server.get_ok("/networkinterface/a").await;
    let put = json!({"kind": NETWORKINTERFACE, "source": "/compute/vm", "target": "/network/net1", "title": "uplink"});
    expect(&server.json("PUT", "/networkinterface/a", Some(put)).await, 201);
    let after = server.get_ok("/networkinterface/a").await;
    assert_eq!(after["title"], "uplink");
    assert_eq!(after["attributes"][MAC], a["attributes"][MAC]);
    assert_eq!(after["attributes"][INTERFACE], "eth0");
}

/// Links created inline with their compute get values in the order given: the second sees the
/// first, written earlier in the same request.
#[tokio::test]
async fn inline_links_get_the_next_free_values_in_order() {
    let server = TestServer::start().await;
    infrastructure(&server).await;
    let body = json!({"resources": [{"kind": COMPUTE, "id": "vm3", "links": [
        {"kind": NETWORKINTERFACE, "target": {"location": "/network/net1", "kind": NETWORK}},
        {"kind": STORAGELINK, "target": {"location": "/storage/disk1", "kind": STORAGE}},
        {"kind": NETWORKINTERFACE, "target": {"location": "/network/net2", "kind": NETWORK}},
        {"kind": STORAGELINK, "target": {"location": "/storage/disk2", "kind": STORAGE}},
    ]}]});
    expect(&server.json("POST", "/compute/", Some(body)).await, 201);
    let vm = server.get_ok("/compute/vm3").await;
    let links = vm["links"].as_array().unwrap_or_else(|| panic!("no links: {vm}"));
    let of = |target: &str| {
        links.iter().find(|l| l["target"]["location"].as_str().unwrap().ends_with(target)).unwrap()["attributes"]
            .clone()
    };
    assert_eq!(of("/network/net1")[INTERFACE], "eth0");
    assert_eq!(of("/network/net2")[INTERFACE], "eth1");
    assert_provider_mac(&of("/network/net1")[MAC]);
    assert_provider_mac(&of("/network/net2")[MAC]);
    assert_ne!(of("/network/net1")[MAC], of("/network/net2")[MAC]);
    assert_eq!(of("/storage/disk1")[DEVICE_ID], "/dev/vdb");
    assert_eq!(of("/storage/disk2")[DEVICE_ID], "/dev/vdc");
}

/// A storagelink without a device id gets `/dev/vdb`, then `/dev/vdc` (per compute; a given one
/// is kept and counts as taken).
#[tokio::test]
async fn storagelink_without_deviceid_gets_the_next_device() {
    let server = TestServer::start().await;
    infrastructure(&server).await;
    let link = |id: &str, source: &str, target: &str| json!({"kind": STORAGELINK, "id": id, "source": source, "target": target});
    create(&server, "/storagelink/", link("s1", "/compute/vm", "/storage/disk1")).await;
    let body = format!(
        "Category: {SL_CATEGORY}\nX-OCCI-Attribute: occi.core.id=\"s2\"\n\
         X-OCCI-Attribute: occi.core.source=\"/compute/vm\"\nX-OCCI-Attribute: occi.core.target=\"/storage/disk2\"\n"
    );
    expect(&server.send("POST", "/storagelink/", Some("text/plain"), Some("text/plain"), Some(body)).await, 201);
    let mut given = link("s3", "/compute/vm", "/storage/disk3");
    given["attributes"] = json!({DEVICE_ID: "/dev/vdd"});
    create(&server, "/storagelink/", given).await;
    create(&server, "/storagelink/", link("s4", "/compute/vm", "/storage/disk3")).await;
    create(&server, "/storagelink/", link("s5", "/compute/vm2", "/storage/disk1")).await;
    for (id, device) in
        [("s1", "/dev/vdb"), ("s2", "/dev/vdc"), ("s3", "/dev/vdd"), ("s4", "/dev/vde"), ("s5", "/dev/vdb")]
    {
        let l = server.get_ok(&format!("/storagelink/{id}")).await;
        assert_eq!(l["attributes"][DEVICE_ID], device, "{id}: {l}");
    }
}

/// A value the client gives is still checked against its definition, and kept when valid.
#[tokio::test]
async fn given_provider_values_are_still_validated() {
    let server = TestServer::start().await;
    infrastructure(&server).await;
    let nic = |id: &str, mac: &str| {
        json!({"kind": NETWORKINTERFACE, "id": id, "source": "/compute/vm", "target": "/network/net1",
               "attributes": {MAC: mac}})
    };
    let reply = server.json("POST", "/networkinterface/", Some(nic("bad", "zz:zz:zz:zz:zz:zz"))).await;
    expect(&reply, 400);
    assert!(reply.error_message().contains(MAC), "{}", reply.text);
    expect(&server.get("/networkinterface/bad").await, 404);
    let body = format!(
        "Category: {NI_CATEGORY}\nX-OCCI-Attribute: occi.core.source=\"/compute/vm\"\n\
         X-OCCI-Attribute: occi.core.target=\"/network/net1\"\nX-OCCI-Attribute: {MAC}=\"02:00:00:00:00\"\n"
    );
    let reply = server.send("POST", "/networkinterface/", Some(JSON), Some("text/plain"), Some(body)).await;
    expect(&reply, 400);
    assert!(reply.error_message().contains(MAC), "{}", reply.text);

    create(&server, "/networkinterface/", nic("ok", "00:16:3E:AA:BB:CC")).await;
    let mut named = nic("named", "02:16:3e:00:00:01");
    named["attributes"][INTERFACE] = json!("eth0");
    create(&server, "/networkinterface/", named).await;
    let ok = server.get_ok("/networkinterface/ok").await;
    assert_eq!(ok["attributes"][MAC], "00:16:3E:AA:BB:CC", "a given MAC is kept as given");
    assert_eq!(ok["attributes"][INTERFACE], "eth0", "the interface name is still assigned");
    let named = server.get_ok("/networkinterface/named").await;
    assert_eq!(named["attributes"][INTERFACE], "eth0", "a given name is kept, even one in use");
}

/// Concurrent creates on one compute each read what is in use inside their write, so none
/// takes another's MAC or interface name: a conflicting one is prepared again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_get_distinct_values() {
    let server = Arc::new(TestServer::start().await);
    infrastructure(&server).await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let body = json!({"kind": NETWORKINTERFACE, "id": format!("n{i}"), "source": "/compute/vm", "target": "/network/net1"});
            server.json("POST", "/networkinterface/", Some(body)).await
        }));
    }
    for t in tasks {
        expect(&t.await.unwrap(), 201);
    }
    let (mut macs, mut names) = (BTreeSet::new(), BTreeSet::new());
    for i in 0..6 {
        let l = server.get_ok(&format!("/networkinterface/n{i}")).await;
        assert_provider_mac(&l["attributes"][MAC]);
        macs.insert(l["attributes"][MAC].as_str().unwrap().to_string());
        names.insert(l["attributes"][INTERFACE].as_str().unwrap().to_string());
    }
    assert_eq!(macs.len(), 6, "{macs:?}");
    assert_eq!(names, (0..6).map(|n| format!("eth{n}")).collect::<BTreeSet<_>>());
}

/// The query interface no longer says a client must give the provider's values.
#[tokio::test]
async fn query_interface_does_not_require_provider_values() {
    let server = TestServer::start().await;
    let model = server.get_ok("/-/").await;
    let kind = |term: &str| {
        model["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["term"] == term)
            .unwrap_or_else(|| panic!("{term}"))
            .clone()
    };
    for (term, attribute) in [("networkinterface", MAC), ("networkinterface", INTERFACE), ("storagelink", DEVICE_ID)] {
        let def = &kind(term)["attributes"][attribute];
        assert_eq!(def["required"], false, "{attribute}: {def}");
    }
    let reply = server.send("GET", "/-/", Some("text/plain"), None, None).await;
    expect(&reply, 200);
    for (term, attribute) in [("networkinterface", MAC), ("storagelink", DEVICE_ID)] {
        let line = reply
            .text
            .lines()
            .find(|l| l.starts_with(&format!("Category: {term};")))
            .unwrap_or_else(|| panic!("no {term} Category: {}", reply.text));
        assert!(line.contains(attribute), "{line}");
        assert!(!line.contains(&format!("{attribute}{{required")), "{line}");
    }
}
