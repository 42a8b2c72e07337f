//! Provider-assigned attributes: values GFD.224 gives multiplicity 1 but that name something the
//! provider owns (a device's MAC address, its interface name, a disk's device id). A client may
//! give them (and they are validated as any value); when it leaves them out, the server fills
//! them in. This module computes the values from what is already in use; reading what is in use
//! (the tenant's interfaces, the links of a compute) is the server's business: the model does no
//! I/O.

pub const ATTR_MAC: &str = "occi.networkinterface.mac";
pub const ATTR_INTERFACE: &str = "occi.networkinterface.interface";
pub const ATTR_DEVICE_ID: &str = "occi.storagelink.deviceid";

/// The built-in attributes the provider assigns when a client leaves them out. Their definitions
/// say `required: false` (a client need not give them), and a replacement (PUT) that leaves one
/// out keeps the stored value rather than dropping it.
pub const PROVIDER_ASSIGNED: [&str; 3] = [ATTR_MAC, ATTR_INTERFACE, ATTR_DEVICE_ID];

/// A MAC address made of six random bytes: locally administered (bit 0x02 of the first octet
/// set), unicast (bit 0x01 clear), written `xx:xx:xx:xx:xx:xx` in lower case.
pub fn mac_from_bytes(mut bytes: [u8; 6]) -> String {
    bytes[0] = (bytes[0] | 0x02) & !0x01;
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The form two MAC addresses are compared in: lower case, `:` between octets (the pattern of
/// `occi.networkinterface.mac` also takes `-`).
pub fn canonical_mac(mac: &str) -> String {
    mac.trim().to_ascii_lowercase().replace('-', ":")
}

/// The first interface name `eth0`, `eth1`, ... not in `used`.
pub fn next_interface<'a>(used: impl IntoIterator<Item = &'a str>) -> String {
    let used: Vec<&str> = used.into_iter().collect();
    (0..).map(|n| format!("eth{n}")).find(|name| !used.contains(&name.as_str())).expect("names never run out")
}

/// The first device id `/dev/vdb`, `/dev/vdc`, ... `/dev/vdz`, `/dev/vdaa`, ... not in `used`
/// (`/dev/vda` is taken to be the compute's own boot disk).
pub fn next_device_id<'a>(used: impl IntoIterator<Item = &'a str>) -> String {
    let used: Vec<&str> = used.into_iter().collect();
    (1..)
        .map(|n| format!("/dev/vd{}", disk_letters(n)))
        .find(|id| !used.contains(&id.as_str()))
        .expect("ids never run out")
}

/// The letters of the `n`th disk (0: `a`, 25: `z`, 26: `aa`, 701: `zz`, 702: `aaa`), as Linux
/// names virtio and SCSI disks.
pub fn disk_letters(mut n: u64) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'a' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII letters")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalog;
    use crate::attribute::check_value;

    #[test]
    fn macs_are_locally_administered_unicast_lower_case() {
        assert_eq!(mac_from_bytes([0xff; 6]), "fe:ff:ff:ff:ff:ff");
        assert_eq!(mac_from_bytes([0; 6]), "02:00:00:00:00:00");
        assert_eq!(mac_from_bytes([0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6]), "a2:b2:c3:d4:e5:f6");
        let defs = Catalog::builtin().attribute_set("http://schemas.ogf.org/occi/infrastructure#networkinterface", &[]);
        for b in [[0u8; 6], [0xff; 6], [0x13, 0x57, 0x9b, 0xdf, 0x24, 0x68]] {
            let mac = mac_from_bytes(b);
            let first = u8::from_str_radix(&mac[..2], 16).unwrap();
            assert_eq!(first & 0x03, 0x02, "{mac}");
            check_value(&defs[ATTR_MAC], &serde_json::json!(mac)).unwrap();
        }
        assert_eq!(canonical_mac(" 02-AB-cd-00-11-22"), "02:ab:cd:00:11:22");
    }

    #[test]
    fn interface_names_take_the_first_free_one() {
        assert_eq!(next_interface([]), "eth0");
        assert_eq!(next_interface(["eth0"]), "eth1");
        assert_eq!(next_interface(["eth1", "lo", "eth0", "eth3"]), "eth2");
        assert_eq!(next_interface(["eth1"]), "eth0");
    }

    #[test]
    fn device_ids_follow_linux_disk_names() {
        assert_eq!(next_device_id([]), "/dev/vdb");
        assert_eq!(next_device_id(["/dev/vdb"]), "/dev/vdc");
        assert_eq!(next_device_id(["/dev/vdc", "/dev/sdb"]), "/dev/vdb");
        assert_eq!(disk_letters(0), "a");
        assert_eq!(disk_letters(25), "z");
        assert_eq!(disk_letters(26), "aa");
        assert_eq!(disk_letters(27), "ab");
        assert_eq!(disk_letters(701), "zz");
        assert_eq!(disk_letters(702), "aaa");
        let used: Vec<String> = (1..=25).map(|n| format!("/dev/vd{}", disk_letters(n))).collect();
        assert_eq!(next_device_id(used.iter().map(String::as_str)), "/dev/vdaa");
    }

    #[test]
    fn provider_assigned_attributes_are_not_required() {
        let c = Catalog::builtin();
        for (kind, name) in [
            ("http://schemas.ogf.org/occi/infrastructure#networkinterface", ATTR_MAC),
            ("http://schemas.ogf.org/occi/infrastructure#networkinterface", ATTR_INTERFACE),
            ("http://schemas.ogf.org/occi/infrastructure#storagelink", ATTR_DEVICE_ID),
        ] {
            let def = &c.attribute_set(kind, &[])[name];
            assert!(!def.is_required(), "{name}");
            assert!(PROVIDER_ASSIGNED.contains(&name));
        }
    }
}
