//! Which of the node's interfaces its pods send through: the interface of the node's route
//! to each pod address (a veth per pod with Calico- or Cilium-style routing, the bridge with
//! bridge CNIs). The table checks that packets arriving on them come from an address routed
//! back through them.

use crate::nft::{Error, Runner};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// The interfaces the node's main routing table sends `pods` addresses through. An address
/// without a route (its pod is being set up) names none.
pub fn pod_interfaces(
    runner: &Runner,
    pods: impl IntoIterator<Item = IpAddr>,
) -> Result<BTreeSet<String>, Error> {
    let mut routes = Routes::default();
    for (family, v4) in [("-4", true), ("-6", false)] {
        let args = ["-j", family, "route", "show", "table", "main"];
        let json = runner.run("ip", &args, None)?;
        routes.add(&json, v4).map_err(|message| Error::Output {
            command: format!("ip {}", args.join(" ")),
            message,
        })?;
    }
    Ok(pods
        .into_iter()
        .filter_map(|ip| routes.device(ip))
        .map(str::to_string)
        .collect())
}

/// Routes by family and prefix length: a longest-prefix match is one lookup per length.
#[derive(Default)]
struct Routes {
    /// (IPv4?, prefix length) -> network address (masked) -> device.
    by_length: HashMap<(bool, u8), HashMap<u128, String>>,
}

impl Routes {
    /// Adds the routes of `ip -j -4|-6 route show` output (IPv4 ones when `v4`).
    fn add(&mut self, json: &str, v4: bool) -> Result<(), String> {
        let routes: Vec<serde_json::Value> =
            serde_json::from_str(json).map_err(|e| e.to_string())?;
        for route in routes {
            let (Some(dst), Some(dev)) = (route["dst"].as_str(), route["dev"].as_str()) else {
                continue;
            };
            // Only the device names an nft set can hold without quoting trouble.
            if !dev
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
            {
                continue;
            }
            if dst == "default" {
                self.insert(v4, 0, 0, dev);
                continue;
            }
            let (net, length) = match dst.split_once('/') {
                Some((net, length)) => (net, length.parse().map_err(|_| format!("route {dst}"))?),
                None => (dst, if v4 { 32 } else { 128 }),
            };
            let net: IpAddr = net.parse().map_err(|_| format!("route {dst}"))?;
            if net.is_ipv4() != v4 {
                return Err(format!("route {dst} in the other family's table"));
            }
            self.insert(v4, length, palisade_engine::ip_to_u128(net), dev);
        }
        Ok(())
    }

    fn insert(&mut self, v4: bool, length: u8, net: u128, dev: &str) {
        let key = mask(net, v4, length);
        // The first route of a prefix is the one the kernel lists first: the lowest metric.
        self.by_length
            .entry((v4, length))
            .or_default()
            .entry(key)
            .or_insert_with(|| dev.to_string());
    }

    fn device(&self, ip: IpAddr) -> Option<&str> {
        let v4 = ip.is_ipv4();
        let addr = palisade_engine::ip_to_u128(ip);
        let bits = if v4 { 32 } else { 128 };
        (0..=bits).rev().find_map(|length| {
            self.by_length
                .get(&(v4, length))?
                .get(&mask(addr, v4, length))
                .map(String::as_str)
        })
    }
}

/// `addr` with all but the first `length` bits of its family cleared.
fn mask(addr: u128, v4: bool, length: u8) -> u128 {
    let bits: u32 = if v4 { 32 } else { 128 };
    let host_bits = bits - u32::from(length).min(bits);
    if host_bits >= 128 {
        0
    } else {
        addr >> host_bits << host_bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_matching_route_names_the_device() {
        let mut routes = Routes::default();
        routes
            .add(
                r#"[{"dst":"default","gateway":"192.168.1.1","dev":"eth0","flags":[]},
                    {"dst":"10.244.1.0/24","dev":"cni0","prefsrc":"10.244.1.1","flags":[]},
                    {"dst":"10.244.1.7","dev":"cali12ab","scope":"link","flags":[]},
                    {"dst":"10.244.1.7","dev":"later","scope":"link","flags":[]},
                    {"type":"blackhole","dst":"10.9.0.0/16","flags":[]},
                    {"dst":"10.8.0.0/16","dev":"we\"ird","flags":[]}]"#,
                true,
            )
            .unwrap();
        routes
            .add(
                r#"[{"dst":"fd00:1::/64","dev":"cni0","flags":[]},
                    {"dst":"fe80::/64","dev":"eth0","flags":[]}]"#,
                false,
            )
            .unwrap();
        let device = |ip: &str| routes.device(ip.parse().unwrap());
        assert_eq!(device("10.244.1.7"), Some("cali12ab"));
        assert_eq!(device("10.244.1.8"), Some("cni0"));
        assert_eq!(device("8.8.8.8"), Some("eth0"));
        assert_eq!(
            device("10.8.0.1"),
            Some("eth0"),
            "an unquotable name is left out"
        );
        assert_eq!(device("fd00:1::5"), Some("cni0"));
        assert_eq!(device("fd00:2::5"), None, "no IPv6 default route");
        assert!(Routes::default().add("not json", true).is_err());
        assert!(
            Routes::default()
                .add(r#"[{"dst":"fd00::/8","dev":"x"}]"#, true)
                .is_err()
        );
    }
}
