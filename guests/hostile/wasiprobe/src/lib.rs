//! Probes the WASI the host links: `on-create` uses `std::collections::HashMap` (whose hasher
//! seed comes from `wasi:random/insecure-seed`) to count the `example.probe.*` attributes and
//! sets `example.probe.summary`; `on-update` tries what a guest
//! must not be able to do (read the environment, arguments and files, open sockets, resolve
//! names) and what it may (clocks), and refuses with a report of what it found, for the test to
//! check: `env=0; args=0; fs=denied (...); dir=denied (...); tcp=denied (...); udp=denied (...);
//! dns=denied (...); wall-clock=ok; monotonic-clock=ok`.

use std::collections::HashMap;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ocni_handler_sdk::{Change, Entity, Handler, Refusal};

struct WasiProbe;

impl Handler for WasiProbe {
    fn on_create(entity: Entity) -> Result<Vec<Change>, Refusal> {
        let mut by_prefix: HashMap<&str, usize> = HashMap::new();
        for attribute in &entity.attributes {
            let prefix = attribute.name.rsplit_once('.').map_or(attribute.name.as_str(), |(p, _)| p);
            *by_prefix.entry(prefix).or_default() += 1;
        }
        let probes = by_prefix.get("example.probe").copied().unwrap_or(0);
        Ok(vec![Change::set("example.probe.summary", format!("hashmap: {probes} example.probe attribute(s)"))])
    }

    fn on_update(_old: Entity, _new: Entity) -> Result<Vec<Change>, Refusal> {
        let outcome = |what: &str, result: std::io::Result<String>| match result {
            Ok(found) => format!("{what}=allowed ({found})"),
            Err(e) => format!("{what}=denied ({e})"),
        };
        let after_2020 = SystemTime::now().duration_since(UNIX_EPOCH).is_ok_and(|d| d.as_secs() > 1_577_836_800);
        let started = Instant::now();
        let report = [
            format!("env={}", std::env::vars_os().count()),
            format!("args={}", std::env::args_os().count()),
            outcome("fs", std::fs::read_to_string("/etc/passwd").map(|t| format!("{} bytes", t.len()))),
            outcome("dir", std::fs::read_dir(".").map(|d| format!("{} entries", d.count()))),
            outcome("tcp", TcpStream::connect("127.0.0.1:80").map(|_| "connected".into())),
            outcome("udp", UdpSocket::bind("0.0.0.0:0").map(|_| "bound".into())),
            outcome("dns", ("localhost", 80).to_socket_addrs().map(|a| format!("{} addresses", a.count()))),
            format!("wall-clock={}", if after_2020 { "ok" } else { "wrong" }),
            format!("monotonic-clock={}", if started.elapsed().as_secs() < 60 { "ok" } else { "wrong" }),
        ];
        Err(Refusal::other(report.join("; ")))
    }
}

ocni_handler_sdk::export_handler!(WasiProbe);
