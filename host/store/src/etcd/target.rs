//! Where an etcd-backed store lives: `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`.

use std::fmt;
use std::str::FromStr;

/// The key prefix of a store when the URL names none.
pub const DEFAULT_PREFIX: &str = "/ocni";

/// An etcd cluster (every client endpoint given) and the key prefix ocni keeps its data under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdTarget {
    /// `http://HOST:PORT`, one per member given.
    pub endpoints: Vec<String>,
    /// Starts with `/`, does not end with one (`/ocni`).
    pub prefix: String,
}

impl FromStr for EtcdTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<EtcdTarget, String> {
        let rest = s
            .strip_prefix("etcd://")
            .ok_or_else(|| format!("{s:?} is not an etcd store URL: it must start with etcd://"))?;
        let (hosts, prefix) = match rest.split_once('/') {
            Some((hosts, prefix)) => (hosts, format!("/{}", prefix.trim_end_matches('/'))),
            None => (rest, DEFAULT_PREFIX.to_string()),
        };
        if prefix == "/" || prefix.contains("//") || prefix.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!(
                "{s:?}: the key prefix {prefix:?} must be one or more non-empty path segments without spaces"
            ));
        }
        let mut endpoints = Vec::new();
        for host in hosts.split(',') {
            let valid = host.rsplit_once(':').is_some_and(|(name, port)| {
                port.parse::<u16>().is_ok_and(|p| p > 0)
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c))
            });
            if !valid {
                return Err(format!("{s:?}: {host:?} is not HOST:PORT"));
            }
            endpoints.push(format!("http://{host}"));
        }
        Ok(EtcdTarget { endpoints, prefix })
    }
}

impl fmt::Display for EtcdTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<&str> = self.endpoints.iter().map(|e| e.trim_start_matches("http://")).collect();
        write!(f, "etcd://{}{}", hosts.join(","), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_prefix() {
        let t: EtcdTarget = "etcd://127.0.0.1:2379,10.0.0.2:2379/tenants/a".parse().unwrap();
        assert_eq!(t.endpoints, ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]);
        assert_eq!(t.prefix, "/tenants/a");
        assert_eq!(t.to_string(), "etcd://127.0.0.1:2379,10.0.0.2:2379/tenants/a");
        let t: EtcdTarget = "etcd://localhost:2379".parse().unwrap();
        assert_eq!(t.prefix, DEFAULT_PREFIX);
        assert_eq!("etcd://h:1/p/".parse::<EtcdTarget>().unwrap().prefix, "/p");
    }

    #[test]
    fn refuses_what_is_not_an_etcd_url() {
        for bad in ["http://h:1", "etcd://", "etcd://h", "etcd://h:1,", "etcd://h:x", "etcd://h:1//", "etcd://h:1/a b"]
        {
            let e = bad.parse::<EtcdTarget>().unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
