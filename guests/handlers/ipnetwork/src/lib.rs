//! IP addressing checks for networks with the `ipnetwork` mixin and network interfaces with the
//! `ipnetworkinterface` mixin. Bind it to both mixins (or to the network and networkinterface
//! kinds); an entity with neither the mixin nor its address attribute passes untouched.
//!
//! `validate` (create, update, action; deletes are not checked) refuses:
//!
//! * a network whose `occi.network.address` is not an IPv4 or IPv6 network in CIDR notation
//!   (host bits may be set, as in `192.168.0.1/24`: the network is `192.168.0.0/24`), or whose
//!   `occi.network.gateway` is not an address inside that network (invalid attribute, 400);
//! * an interface whose `occi.networkinterface.address` (an address, optionally with a prefix
//!   length) or `occi.networkinterface.gateway` is malformed, or lies outside the network of its
//!   target (`occi.core.target`, looked up with `query::get`) when that network has an
//!   `occi.network.address` (invalid attribute, 400);
//! * an interface whose address is already used by another networkinterface link to the same
//!   target (conflict, 409). Addresses are compared as the host compares attribute values, so
//!   `10.0.0.5` and `10.0.0.5/24` count as different.

use std::net::IpAddr;

use ocni_handler_sdk::query::{self, Filter};
use ocni_handler_sdk::{Entity, Handler, Operation, Refusal};

/// The networkinterface link kind.
pub const NETWORKINTERFACE: &str = "http://schemas.ogf.org/occi/infrastructure#networkinterface";
/// The mixin that gives a network its addressing.
pub const IPNETWORK: &str = "http://schemas.ogf.org/occi/infrastructure/network#ipnetwork";
/// The mixin that gives a network interface its address.
pub const IPNETWORKINTERFACE: &str = "http://schemas.ogf.org/occi/infrastructure/networkinterface#ipnetworkinterface";

const NET_ADDRESS: &str = "occi.network.address";
const NET_GATEWAY: &str = "occi.network.gateway";
const IF_ADDRESS: &str = "occi.networkinterface.address";
const IF_GATEWAY: &str = "occi.networkinterface.gateway";
const TARGET: &str = "occi.core.target";

struct IpNetwork;

impl Handler for IpNetwork {
    fn validate(entity: Entity, op: Operation) -> Result<(), Vec<Refusal>> {
        if op == Operation::Delete {
            return Ok(());
        }
        let mut refusals = Vec::new();
        if entity.has_mixin(IPNETWORK) || entity.has_attr(NET_ADDRESS) || entity.has_attr(NET_GATEWAY) {
            check_network(&entity, &mut refusals);
        }
        if entity.has_mixin(IPNETWORKINTERFACE) || entity.has_attr(IF_ADDRESS) {
            check_interface(&entity, &mut refusals);
        }
        if refusals.is_empty() { Ok(()) } else { Err(refusals) }
    }
}

ocni_handler_sdk::export_handler!(IpNetwork);

/// An IP network: an address and a prefix length, with the host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `address/prefix` (IPv4 or IPv6). Host bits may be set; they are cleared.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let Some((addr, prefix)) = text.trim().split_once('/') else {
            return Err("must be a network in CIDR notation, e.g. 192.168.0.0/24 or fc00::/7".into());
        };
        let (addr, prefix) = parse_address(addr, Some(prefix))?;
        let prefix = prefix.unwrap_or(0);
        Ok(Cidr { network: mask(addr, prefix), prefix })
    }

    /// Whether `addr` lies inside the network (an address of the other IP version never does).
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.network.is_ipv4() && mask(addr, self.prefix) == self.network
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Parses an address with an optional `/prefix` (as interface addresses are written).
pub fn parse_host(text: &str) -> Result<(IpAddr, Option<u8>), String> {
    match text.trim().split_once('/') {
        Some((addr, prefix)) => parse_address(addr, Some(prefix)),
        None => parse_address(text.trim(), None),
    }
}

fn parse_address(addr: &str, prefix: Option<&str>) -> Result<(IpAddr, Option<u8>), String> {
    let addr: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => None,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max && !p.starts_with('+') => Some(n),
            _ => return Err(format!("the prefix length {p:?} must be a number from 0 to {max}")),
        },
    };
    Ok((addr, prefix))
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// The checks of a network: its address is a CIDR network and its gateway lies inside it.
pub fn check_network(entity: &Entity, refusals: &mut Vec<Refusal>) {
    let network = match entity.attr(NET_ADDRESS) {
        None => None,
        Some(value) => match value.as_str().map(Cidr::parse) {
            Some(Ok(cidr)) => Some(cidr),
            Some(Err(reason)) => {
                refusals.push(Refusal::invalid(NET_ADDRESS, reason));
                None
            }
            None => {
                refusals.push(Refusal::invalid(NET_ADDRESS, "must be text in CIDR notation"));
                None
            }
        },
    };
    if let Some(gateway) = entity.attr(NET_GATEWAY) {
        match gateway.as_str().map(|s| parse_address(s.trim(), None)) {
            Some(Ok((addr, _))) => {
                if let Some(net) = network.filter(|net| !net.contains(addr)) {
                    refusals.push(Refusal::invalid(NET_GATEWAY, format!("{addr} is not inside the network {net}")));
                }
            }
            Some(Err(reason)) => refusals.push(Refusal::invalid(NET_GATEWAY, reason)),
            None => refusals.push(Refusal::invalid(NET_GATEWAY, "must be an IP address as text")),
        }
    }
}

/// The checks of a network interface: well-formed addresses, inside the target's network, and
/// not used by another interface on the same target.
pub fn check_interface(entity: &Entity, refusals: &mut Vec<Refusal>) {
    let mut addresses = Vec::new();
    for name in [IF_ADDRESS, IF_GATEWAY] {
        match entity.attr(name).map(|v| v.as_str().map(parse_host)) {
            None => {}
            Some(Some(Ok((addr, _)))) => addresses.push((name, addr)),
            Some(Some(Err(reason))) => refusals.push(Refusal::invalid(name, reason)),
            Some(None) => refusals.push(Refusal::invalid(name, "must be an IP address as text")),
        }
    }
    let Some(target) = entity.target() else { return };

    if !addresses.is_empty() {
        let network = target_entity(target).and_then(|net| net.attr_str(NET_ADDRESS).and_then(|a| Cidr::parse(a).ok()));
        if let Some(net) = network {
            for (name, addr) in &addresses {
                if !net.contains(*addr) {
                    refusals
                        .push(Refusal::invalid(*name, format!("{addr} is not inside the network {net} of {target}")));
                }
            }
        }
    }

    if let Some(address) = entity.attr(IF_ADDRESS) {
        let same = query::find(
            Filter::new().kind(NETWORKINTERFACE).attr(TARGET, target).attr(IF_ADDRESS, address.clone()).limit(2),
        );
        if let Some(other) = same.iter().find(|other| other.location != entity.location) {
            let shown = address.as_str().unwrap_or("the address");
            refusals.push(Refusal::conflict(format!(
                "{IF_ADDRESS} {shown} is already used on {target} by {}",
                other.location
            )));
        }
    }
}

/// The entity a link points to: by its location, or by the path of an absolute URL.
fn target_entity(target: &str) -> Option<Entity> {
    query::get(target).or_else(|| {
        let rest = target.split_once("://")?.1;
        let path = &rest[rest.find('/')?..];
        query::get(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let net = Cidr::parse("192.168.1.7/24").unwrap();
        assert_eq!(net.to_string(), "192.168.1.0/24");
        assert!(net.contains("192.168.1.254".parse().unwrap()));
        assert!(!net.contains("192.168.2.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let v6 = Cidr::parse("fc00::/7").unwrap();
        assert!(v6.contains("fd12:3456::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::/0").unwrap().contains("2001:db8::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.1/32").unwrap().contains("10.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0/8", "fc00::/129", "x/8", "10.0.0.0/+8", "10.0.0.0/"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_host("10.0.0.5").unwrap(), ("10.0.0.5".parse().unwrap(), None));
        assert_eq!(parse_host("10.0.0.5/24").unwrap(), ("10.0.0.5".parse().unwrap(), Some(24)));
        assert_eq!(parse_host("fc00::5/64").unwrap(), ("fc00::5".parse().unwrap(), Some(64)));
        assert!(parse_host("10.0.0.256").is_err());
        assert!(parse_host("10.0.0.5/40").is_err());
    }

    #[test]
    fn network_checks() {
        use ocni_handler_sdk::Attribute;
        let net = |attrs| Entity {
            location: "/network/1".into(),
            id: "1".into(),
            kind: "http://schemas.ogf.org/occi/infrastructure#network".into(),
            mixins: vec![IPNETWORK.into()],
            attributes: attrs,
        };
        let mut r = Vec::new();
        check_network(
            &net(vec![Attribute::new(NET_ADDRESS, "10.1.0.0/16"), Attribute::new(NET_GATEWAY, "10.1.0.1")]),
            &mut r,
        );
        assert!(r.is_empty(), "{r:?}");
        check_network(
            &net(vec![Attribute::new(NET_ADDRESS, "10.1.0.0/16"), Attribute::new(NET_GATEWAY, "10.2.0.1")]),
            &mut r,
        );
        assert_eq!(r, vec![Refusal::invalid(NET_GATEWAY, "10.2.0.1 is not inside the network 10.1.0.0/16")]);
        r.clear();
        check_network(&net(vec![Attribute::new(NET_ADDRESS, "10.1.0.0"), Attribute::new(NET_GATEWAY, "nope")]), &mut r);
        assert_eq!(r.len(), 2);
        assert!(matches!(&r[0], Refusal::InvalidAttribute((n, _)) if n == NET_ADDRESS));
        assert!(matches!(&r[1], Refusal::InvalidAttribute((n, _)) if n == NET_GATEWAY));
    }
}
