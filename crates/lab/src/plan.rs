//! What a lab will consist of, decided before anything is created: which subjects (pods and
//! outside hosts) exist, their addresses, nodes and served ports. Pure, so it is unit-tested.

use crate::LabError;
use palisade_engine::{Analysis, Protocol};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

/// Most nodes a lab builds; node links form a full mesh and interface names carry the index.
pub const MAX_NODES: usize = 16;
/// Subject indexes go into MAC addresses (16 bits) and interface names.
const MAX_SUBJECTS: usize = 4096;

/// The address every pod uses as its gateway, as Calico does; its neighbour entry is pinned.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The node side of every pod link, as Calico does; only the pod's pinned neighbour uses it.
pub const NODE_SIDE_MAC: &str = "ee:ee:ee:ee:ee:ee";

/// Lab address pools for pods without `status.podIP`, in order of preference. The first one no
/// ipBlock overlaps is used, so allocated addresses do not change what the policies mean.
const POOLS: [(Ipv4Addr, u8); 4] = [
    (Ipv4Addr::new(10, 244, 0, 0), 16),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
];

/// Addresses a namespace cannot use as a host address (or that the lab itself uses).
const UNUSABLE: [(Ipv4Addr, u8); 4] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(224, 0, 0, 0), 3),
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubjectKind {
    /// One pod standing for a cluster endpoint; `endpoint` is its `qualified_name()`.
    Pod { endpoint: String },
    /// An outside address an ipBlock names.
    Host,
}

/// One network namespace with an address: a pod, or an outside host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSubject {
    /// The name `matrix` prints: `namespace/name`, or the outside range's label.
    pub name: String,
    pub kind: SubjectKind,
    pub ip: Ipv4Addr,
    pub node: usize,
    /// Ports the probe server serves, ascending. SCTP is answered on a raw socket.
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    pub sctp: Vec<u16>,
}

impl LabSubject {
    /// The (port, protocol) pairs `matrix` probes by default for this destination.
    pub fn default_ports(&self) -> Vec<(u16, Protocol)> {
        let mut ports: Vec<(u16, Protocol)> = [
            (Protocol::Tcp, &self.tcp),
            (Protocol::Udp, &self.udp),
            (Protocol::Sctp, &self.sctp),
        ]
        .into_iter()
        .flat_map(|(proto, list)| list.iter().map(move |&p| (p, proto)))
        .collect();
        ports.sort();
        ports
    }

    pub fn serves(&self, port: u16, protocol: Protocol) -> bool {
        match protocol {
            Protocol::Tcp => self.tcp.contains(&port),
            Protocol::Udp => self.udp.contains(&port),
            Protocol::Sctp => self.sctp.contains(&port),
        }
    }

    pub fn is_host(&self) -> bool {
        self.kind == SubjectKind::Host
    }

    /// Interface and namespace role: `p<k>` for pods, `h<k>` for hosts (`k`: subject index).
    pub fn role(&self, index: usize) -> String {
        match self.kind {
            SubjectKind::Pod { .. } => format!("p{index}"),
            SubjectKind::Host => format!("h{index}"),
        }
    }
}

#[derive(Debug)]
pub struct Plan {
    pub nodes: usize,
    /// Pods in cluster order, then outside hosts: the order of probe rows.
    pub subjects: Vec<LabSubject>,
    /// What the lab leaves out or had to choose, for the user.
    pub notes: Vec<String>,
}

/// Decides the lab for `analysis`: one pod per non-hostNetwork endpoint, spread over `nodes`
/// nodes, and one host per stretch of outside IPv4 addresses the ipBlocks tell apart.
pub fn plan(analysis: &Analysis, nodes: usize) -> Result<Plan, LabError> {
    if !(1..=MAX_NODES).contains(&nodes) {
        return Err(LabError::Invalid(format!(
            "--nodes must be between 1 and {MAX_NODES}, got {nodes}"
        )));
    }
    let cluster = analysis.cluster();
    let mut notes = Vec::new();
    let probe = analysis.ports_to_probe();
    let mut subjects = Vec::new();
    let mut owner: HashMap<Ipv4Addr, String> = HashMap::new();
    let mut unaddressed = Vec::new();
    for ep in &cluster.endpoints {
        let name = format!("{}/{}", ep.namespace, ep.name);
        if ep.host_network {
            notes.push(format!(
                "{name} uses the host network: not part of the lab (it would be node traffic)"
            ));
            continue;
        }
        let ip = match ep.ips.iter().find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        }) {
            Some(ip) => Some(ip),
            None if ep.ips.is_empty() => None,
            None => {
                return Err(LabError::Invalid(format!(
                    "{name} has only IPv6 addresses ({}); the lab builds IPv4 pods only",
                    join(&ep.ips)
                )));
            }
        };
        if let Some(ip) = ip {
            if unusable(ip) {
                return Err(LabError::Invalid(format!(
                    "{name} has podIP {ip}, which no pod can use (loopback, link-local, \
                     multicast or 0.0.0.0/8)"
                )));
            }
            if let Some(other) = owner.insert(ip, name.clone()) {
                return Err(LabError::Invalid(format!(
                    "{other} and {name} both have podIP {ip}; pod addresses must be unique"
                )));
            }
        } else {
            unaddressed.push(subjects.len());
        }
        let (tcp, udp, sctp) = split(&probe.for_endpoint(ep));
        subjects.push(LabSubject {
            name,
            kind: SubjectKind::Pod {
                endpoint: ep.qualified_name(),
            },
            ip: ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            node: subjects.len() % nodes,
            tcp,
            udp,
            sctp,
        });
    }
    if !unaddressed.is_empty() {
        let (pool, prefix, overlapped) = choose_pool(analysis);
        if overlapped {
            notes.push(format!(
                "every lab address pool overlaps an ipBlock; allocating from {pool}/{prefix}, \
                 so ipBlocks may match allocated pod addresses"
            ));
        }
        let mut next = u32::from(pool) + 1;
        for index in unaddressed {
            let ip = loop {
                let candidate = Ipv4Addr::from(next);
                next += 1;
                if !in_net(candidate, pool, prefix) {
                    return Err(LabError::Invalid(format!(
                        "address pool {pool}/{prefix} is exhausted"
                    )));
                }
                if !owner.contains_key(&candidate) && u32::from(candidate) & 0xff != 0 {
                    break candidate;
                }
            };
            owner.insert(ip, subjects[index].name.clone());
            subjects[index].ip = ip;
        }
    }
    let (tcp, udp, sctp) = split(probe.for_outside());
    for range in analysis.external_ranges() {
        let (IpAddr::V4(first), IpAddr::V4(last)) = (range.first, range.last) else {
            notes.push(format!(
                "outside range {} is IPv6: the lab builds IPv4 hosts only",
                range.label()
            ));
            continue;
        };
        match representative(first, last, &owner) {
            Some(ip) => {
                owner.insert(ip, range.label());
                subjects.push(LabSubject {
                    name: range.label(),
                    kind: SubjectKind::Host,
                    ip,
                    node: 0,
                    tcp: tcp.clone(),
                    udp: udp.clone(),
                    sctp: sctp.clone(),
                });
            }
            None => notes.push(format!(
                "outside range {} has no address a lab host can use",
                range.label()
            )),
        }
    }
    if subjects.is_empty() {
        return Err(LabError::Invalid(
            "nothing to run: the manifests have no pods or workloads".into(),
        ));
    }
    if subjects.len() > MAX_SUBJECTS {
        return Err(LabError::Invalid(format!(
            "the lab would need {} namespaces; at most {MAX_SUBJECTS} are supported",
            subjects.len()
        )));
    }
    Ok(Plan {
        nodes,
        subjects,
        notes,
    })
}

/// The MAC of a subject's `eth0`: locally administered, unique within the lab.
pub fn subject_mac(index: usize) -> String {
    format!("02:50:00:00:{:02x}:{:02x}", index >> 8, index & 0xff)
}

/// The MAC of node `from`'s link towards node `to`.
pub fn node_link_mac(from: usize, to: usize) -> String {
    format!("02:4e:00:00:{from:02x}:{to:02x}")
}

fn split(ports: &BTreeSet<(u16, Protocol)>) -> (Vec<u16>, Vec<u16>, Vec<u16>) {
    let of = |proto: Protocol| {
        ports
            .iter()
            .filter(|(_, p)| *p == proto)
            .map(|(port, _)| *port)
            .collect()
    };
    (of(Protocol::Tcp), of(Protocol::Udp), of(Protocol::Sctp))
}

/// The first pool no IPv4 ipBlock overlaps; `true` when every pool is overlapped.
fn choose_pool(analysis: &Analysis) -> (Ipv4Addr, u8, bool) {
    let blocks: Vec<ipnet::Ipv4Net> = analysis
        .cluster()
        .policies
        .iter()
        .flat_map(|p| p.ingress.iter().chain(&p.egress))
        .flat_map(|r| &r.peers)
        .filter_map(|peer| match peer {
            palisade_engine::Peer::IpBlock(block) => match block.cidr {
                ipnet::IpNet::V4(net) => Some(net),
                ipnet::IpNet::V6(_) => None,
            },
            palisade_engine::Peer::Pods { .. } => None,
        })
        .collect();
    let overlaps = |(addr, prefix): (Ipv4Addr, u8)| {
        blocks.iter().any(|b| {
            let shorter = b.prefix_len().min(prefix);
            in_net(addr, b.network(), shorter)
        })
    };
    match POOLS.into_iter().find(|&pool| !overlaps(pool)) {
        Some((addr, prefix)) => (addr, prefix, false),
        None => (POOLS[0].0, POOLS[0].1, true),
    }
}

/// The lowest address of `first..=last` that a host can use and no pod has.
fn representative(
    first: Ipv4Addr,
    last: Ipv4Addr,
    taken: &HashMap<Ipv4Addr, String>,
) -> Option<Ipv4Addr> {
    let (mut candidate, last) = (u64::from(u32::from(first)), u64::from(u32::from(last)));
    while candidate <= last {
        // Candidates come from a u32 range and stay at or below `last`.
        let ip = Ipv4Addr::from(candidate as u32);
        if let Some(&(net, prefix)) = UNUSABLE.iter().find(|(n, p)| in_net(ip, *n, *p)) {
            candidate = u64::from(u32::from(net)) + (1u64 << (32 - prefix));
        } else if taken.contains_key(&ip) {
            candidate += 1;
        } else {
            return Some(ip);
        }
    }
    None
}

fn unusable(ip: Ipv4Addr) -> bool {
    UNUSABLE
        .iter()
        .any(|&(net, prefix)| in_net(ip, net, prefix))
}

fn in_net(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_engine::{
        Cluster, ContainerPort, Endpoint, IpBlock, LabelSelector, NetworkPolicy, Peer, PolicyTypes,
        PortRef, PortRule, Rule,
    };

    fn pod(ns: &str, name: &str, ip: Option<&str>, ports: &[(u16, Protocol)]) -> Endpoint {
        let mut ep = Endpoint::pod(ns, name, Default::default());
        ep.ips = ip.into_iter().map(|s| s.parse().unwrap()).collect();
        ep.ports = ports
            .iter()
            .map(|&(port, protocol)| ContainerPort {
                name: None,
                port,
                protocol,
            })
            .collect();
        ep
    }

    fn egress_to(cidr: &str, except: &[&str], port: u16) -> NetworkPolicy {
        NetworkPolicy {
            namespace: "x".into(),
            name: "out".into(),
            pod_selector: LabelSelector::default(),
            policy_types: PolicyTypes {
                ingress: false,
                egress: true,
            },
            ingress: vec![],
            egress: vec![Rule {
                peers: vec![Peer::IpBlock(IpBlock {
                    cidr: cidr.parse().unwrap(),
                    except: except.iter().map(|e| e.parse().unwrap()).collect(),
                })],
                ports: vec![PortRule {
                    protocol: Protocol::Tcp,
                    port: Some(PortRef::Number(port)),
                    end_port: None,
                }],
            }],
        }
    }

    fn plan_of(endpoints: Vec<Endpoint>, policies: Vec<NetworkPolicy>) -> Result<Plan, LabError> {
        plan(
            &Analysis::new(Cluster {
                namespaces: vec![],
                endpoints: endpoints.into(),
                policies: policies.into(),
            }),
            2,
        )
    }

    #[test]
    fn pods_keep_declared_addresses_and_the_rest_are_allocated_outside_ip_blocks() {
        let plan = plan_of(
            vec![
                pod("x", "a", None, &[(80, Protocol::Tcp)]),
                pod("x", "b", Some("10.244.0.1"), &[(80, Protocol::Udp)]),
                pod("x", "c", None, &[]),
            ],
            vec![],
        )
        .unwrap();
        let ips: Vec<String> = plan.subjects.iter().map(|s| s.ip.to_string()).collect();
        assert_eq!(ips, ["10.244.0.2", "10.244.0.1", "10.244.0.3"]);
        let nodes: Vec<usize> = plan.subjects.iter().map(|s| s.node).collect();
        assert_eq!(nodes, [0, 1, 0]);

        let with_block = plan_of(
            vec![pod("x", "a", None, &[(80, Protocol::Tcp)])],
            vec![egress_to("10.0.0.0/8", &[], 443)],
        )
        .unwrap();
        assert_eq!(with_block.subjects[0].ip.to_string(), "100.64.0.1");
    }

    #[test]
    fn hosts_represent_each_outside_range_with_a_usable_address() {
        let plan = plan_of(
            vec![pod("x", "a", Some("10.0.0.5"), &[(80, Protocol::Tcp)])],
            vec![egress_to("0.0.0.0/0", &["10.0.0.0/8"], 443)],
        )
        .unwrap();
        let hosts: Vec<(String, String, Vec<u16>)> = plan
            .subjects
            .iter()
            .filter(|s| s.is_host())
            .map(|s| (s.name.clone(), s.ip.to_string(), s.tcp.clone()))
            .collect();
        assert_eq!(
            hosts,
            [
                (
                    "0.0.0.0-9.255.255.255".to_string(),
                    "1.0.0.0".to_string(),
                    vec![443]
                ),
                ("10.0.0.0/8".to_string(), "10.0.0.0".to_string(), vec![443]),
                (
                    "11.0.0.0-255.255.255.255".to_string(),
                    "11.0.0.0".to_string(),
                    vec![443]
                ),
            ]
        );
    }

    #[test]
    fn invalid_input_is_refused_with_the_reason() {
        let cases: [(Vec<Endpoint>, &str); 4] = [
            (vec![], "nothing to run"),
            (
                vec![
                    pod("x", "a", Some("10.1.1.1"), &[]),
                    pod("y", "b", Some("10.1.1.1"), &[]),
                ],
                "x/a and y/b both have podIP 10.1.1.1",
            ),
            (
                vec![pod("x", "a", Some("fd00::1"), &[])],
                "x/a has only IPv6 addresses",
            ),
            (
                vec![pod("x", "a", Some("127.0.0.2"), &[])],
                "x/a has podIP 127.0.0.2",
            ),
        ];
        for (endpoints, expected) in cases {
            let err = plan_of(endpoints, vec![]).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }
}
