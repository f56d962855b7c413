//! The policy mix: per namespace a default deny (and the DNS allowance that egress isolation
//! needs), then allow rules of every shape real clusters use.

use crate::topology::{GeneratedNamespace, TEAMS, Tier, Workload, apportion, unique};
use ipnet::IpNet;
use palisade_engine::{
    ContainerPort, IpBlock, LabelSelector, NAMESPACE_NAME_LABEL, NamespaceScope, NetworkPolicy,
    Operator, Peer, PolicyTypes, PortRef, PortRule, Protocol, Requirement, Rule,
};
use rand::RngExt;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PolicyKind {
    DenyIngress,
    DenyEgress,
    DenyAll,
    AllowDns,
    SameApp,
    FromTier,
    FromTeamNamespaces,
    MatchExpressions,
    EgressToTier,
    EgressIpBlock,
    IngressIpBlock,
    PortRange,
    Udp,
    Sctp,
    ScrapeMetrics,
}

/// Allow kinds with their weight in percent. The first round takes each once, in this order,
/// so that a cluster with a dozen policies beyond the default denies has every kind (the
/// variants within a kind are drawn).
const ALLOWS: [(PolicyKind, u32); 11] = [
    (PolicyKind::SameApp, 15),
    (PolicyKind::FromTier, 20),
    (PolicyKind::FromTeamNamespaces, 12),
    (PolicyKind::MatchExpressions, 8),
    (PolicyKind::EgressToTier, 10),
    (PolicyKind::EgressIpBlock, 8),
    (PolicyKind::IngressIpBlock, 5),
    (PolicyKind::PortRange, 6),
    (PolicyKind::Udp, 6),
    (PolicyKind::Sctp, 4),
    (PolicyKind::ScrapeMetrics, 6),
];

/// Distributes `total` policies over the application namespaces in proportion to their pods.
pub(crate) fn assign(namespaces: &mut [GeneratedNamespace], total: usize, rng: &mut ChaCha8Rng) {
    let weights: Vec<u64> = namespaces
        .iter()
        .map(|ns| ns.workloads.iter().map(|w| w.pods.len() as u64).sum())
        .collect();
    let budgets = apportion(total, &weights);
    let teams: Vec<&'static str> = {
        let present: HashSet<&str> = namespaces
            .iter()
            .filter_map(|ns| ns.label("team"))
            .collect();
        TEAMS.into_iter().filter(|t| present.contains(t)).collect()
    };
    let mut allows_so_far = 0;
    for (index, (ns, budget)) in namespaces.iter_mut().zip(budgets).enumerate() {
        let mut kinds = Vec::with_capacity(budget);
        // The first three namespaces show each variant; later ones draw.
        let deny = match index {
            0 => PolicyKind::DenyIngress,
            1 => PolicyKind::DenyAll,
            2 => PolicyKind::DenyEgress,
            _ => match rng.random_range(0..100) {
                0..50 => PolicyKind::DenyIngress,
                50..85 => PolicyKind::DenyAll,
                _ => PolicyKind::DenyEgress,
            },
        };
        kinds.push(deny);
        if deny != PolicyKind::DenyIngress {
            kinds.push(PolicyKind::AllowDns);
        }
        while kinds.len() < budget {
            kinds.push(match ALLOWS.get(allows_so_far) {
                Some(&(kind, _)) => kind,
                None => weighted_allow(rng),
            });
            allows_so_far += 1;
        }
        kinds.truncate(budget);
        let mut builder = Builder {
            ns,
            rng: &mut *rng,
            teams: &teams,
            names: HashSet::new(),
        };
        let policies = kinds.into_iter().map(|k| builder.build(k)).collect();
        ns.policies = policies;
    }
}

fn weighted_allow(rng: &mut ChaCha8Rng) -> PolicyKind {
    let total: u32 = ALLOWS.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for &(kind, weight) in &ALLOWS {
        if pick < weight {
            return kind;
        }
        pick -= weight;
    }
    PolicyKind::SameApp
}

/// The pods a policy is about.
struct Target {
    /// For the policy's name.
    app: String,
    selector: LabelSelector,
    tier: Tier,
    ports: Vec<ContainerPort>,
}

struct Builder<'b> {
    ns: &'b GeneratedNamespace,
    rng: &'b mut ChaCha8Rng,
    teams: &'b [&'static str],
    names: HashSet<String>,
}

fn labels(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector::with_labels(pairs.iter().copied())
}

fn expression(key: &str, operator: Operator, values: &[&str]) -> Requirement {
    Requirement {
        key: key.into(),
        operator,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

fn pods_here(pods: LabelSelector) -> Peer {
    Peer::Pods {
        namespaces: NamespaceScope::PolicyNamespace,
        pods,
    }
}

fn pods_in(namespaces: LabelSelector, pods: LabelSelector) -> Peer {
    Peer::Pods {
        namespaces: NamespaceScope::Selected(namespaces),
        pods,
    }
}

/// `a.b.c.d/len`, checked when compiling.
const fn net(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpNet {
    IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), len)
}

const EVERYWHERE: IpNet = net(0, 0, 0, 0, 0);
const POD_NETWORK: IpNet = net(10, 0, 0, 0, 8);
const METADATA_SERVICE: IpNet = net(169, 254, 169, 254, 32);
const PARTNER: IpNet = net(203, 0, 113, 0, 24);
const VENDOR: IpNet = net(198, 51, 100, 0, 24);
const VENDOR_LAB: IpNet = net(198, 51, 100, 128, 25);
const OFFICE: IpNet = net(192, 0, 2, 0, 24);
const OFFICE_GUESTS: IpNet = net(192, 0, 2, 64, 26);

fn ip_block(cidr: IpNet, except: &[IpNet]) -> Peer {
    Peer::IpBlock(IpBlock {
        cidr,
        except: except.to_vec(),
    })
}

fn port(protocol: Protocol, port: u16) -> PortRule {
    PortRule {
        protocol,
        port: Some(PortRef::Number(port)),
        end_port: None,
    }
}

fn named(protocol: Protocol, name: &str) -> PortRule {
    PortRule {
        protocol,
        port: Some(PortRef::Named(name.into())),
        end_port: None,
    }
}

fn port_range(protocol: Protocol, from: u16, to: u16) -> PortRule {
    PortRule {
        protocol,
        port: Some(PortRef::Number(from)),
        end_port: Some(to),
    }
}

const INGRESS: PolicyTypes = PolicyTypes {
    ingress: true,
    egress: false,
};
const EGRESS: PolicyTypes = PolicyTypes {
    ingress: false,
    egress: true,
};

impl Builder<'_> {
    fn policy(
        &mut self,
        name: String,
        pod_selector: LabelSelector,
        policy_types: PolicyTypes,
        ingress: Vec<Rule>,
        egress: Vec<Rule>,
    ) -> NetworkPolicy {
        NetworkPolicy {
            namespace: self.ns.namespace.name.clone(),
            name: unique(name, &mut self.names),
            pod_selector,
            policy_types,
            ingress,
            egress,
        }
    }

    fn ns_label(&self, key: &str) -> String {
        self.ns.label(key).unwrap_or_default().to_string()
    }

    /// A workload of this namespace that `wanted` accepts, else any, else a placeholder that
    /// selects the namespace's APIs (a namespace with no pods still gets its policies).
    fn target(&mut self, wanted: impl Fn(&Workload) -> bool) -> Target {
        let fitting: Vec<&Workload> = self.ns.workloads.iter().filter(|w| wanted(w)).collect();
        let chosen = if fitting.is_empty() {
            self.ns.workloads.choose(self.rng)
        } else {
            fitting.choose(self.rng).copied()
        };
        match chosen {
            Some(w) => Target {
                app: w.name.clone(),
                selector: labels(&[("app", &w.name)]),
                tier: w.label("tier").and_then(Tier::parse).unwrap_or(Tier::Api),
                ports: w.ports.clone(),
            },
            None => Target {
                app: "api".into(),
                selector: labels(&[("tier", "api")]),
                tier: Tier::Api,
                ports: vec![ContainerPort {
                    name: Some("http".into()),
                    port: 8080,
                    protocol: Protocol::Tcp,
                }],
            },
        }
    }

    fn build(&mut self, kind: PolicyKind) -> NetworkPolicy {
        use Protocol::{Sctp, Tcp, Udp};
        let everything = LabelSelector::everything;
        match kind {
            PolicyKind::DenyIngress | PolicyKind::DenyEgress | PolicyKind::DenyAll => {
                let (name, types) = match kind {
                    PolicyKind::DenyIngress => ("default-deny-ingress", INGRESS),
                    PolicyKind::DenyEgress => ("default-deny-egress", EGRESS),
                    _ => (
                        "default-deny-all",
                        PolicyTypes {
                            ingress: true,
                            egress: true,
                        },
                    ),
                };
                self.policy(name.into(), everything(), types, vec![], vec![])
            }
            PolicyKind::AllowDns => {
                let kube_dns = pods_in(
                    labels(&[(NAMESPACE_NAME_LABEL, "kube-system")]),
                    labels(&[("k8s-app", "kube-dns")]),
                );
                let rule = Rule {
                    peers: vec![kube_dns],
                    ports: vec![port(Udp, 53), port(Tcp, 53)],
                };
                self.policy("allow-dns".into(), everything(), EGRESS, vec![], vec![rule])
            }
            PolicyKind::SameApp => {
                let t = self.target(|_| true);
                let rule = Rule {
                    peers: vec![pods_here(t.selector.clone())],
                    ports: vec![],
                };
                let name = format!("allow-same-app-{}", t.app);
                self.policy(name, t.selector, INGRESS, vec![rule], vec![])
            }
            PolicyKind::FromTier => {
                let t = self.target(|_| true);
                let first = &t.ports[0];
                let entry = match &first.name {
                    Some(name) => named(first.protocol, name),
                    None => port(first.protocol, first.port),
                };
                let (from, peer) = match t.tier {
                    // Frontends take traffic from every pod of their environment.
                    Tier::Web => {
                        let env = self.ns_label("env");
                        let peer = pods_in(labels(&[("env", &env)]), everything());
                        (env, peer)
                    }
                    Tier::Api => ("web".into(), pods_here(labels(&[("tier", "web")]))),
                    Tier::Db | Tier::Cache | Tier::Worker => {
                        ("api".into(), pods_here(labels(&[("tier", "api")])))
                    }
                };
                let rule = Rule {
                    peers: vec![peer],
                    ports: vec![entry],
                };
                let name = format!("allow-{from}-to-{}", t.app);
                self.policy(name, t.selector, INGRESS, vec![rule], vec![])
            }
            PolicyKind::FromTeamNamespaces => {
                let t = self.target(|_| true);
                let team = self.teams.choose(self.rng).copied().unwrap_or("platform");
                let pods = if self.rng.random_bool(0.5) {
                    labels(&[("tier", "web")])
                } else {
                    everything()
                };
                let first = &t.ports[0];
                let rule = Rule {
                    peers: vec![pods_in(labels(&[("team", team)]), pods)],
                    ports: vec![port(first.protocol, first.port)],
                };
                let name = format!("allow-team-{team}-to-{}", t.app);
                self.policy(name, t.selector, INGRESS, vec![rule], vec![])
            }
            PolicyKind::MatchExpressions => {
                if self.rng.random_bool(0.5) {
                    let selector = LabelSelector {
                        match_expressions: vec![expression("tier", Operator::In, &["web", "api"])],
                        ..everything()
                    };
                    let namespaces = LabelSelector {
                        match_expressions: vec![expression("env", Operator::NotIn, &["dev"])],
                        ..everything()
                    };
                    let pods = LabelSelector {
                        match_expressions: vec![expression("version", Operator::Exists, &[])],
                        ..everything()
                    };
                    let rule = Rule {
                        peers: vec![pods_in(namespaces, pods)],
                        ports: vec![port(Tcp, 8080), port(Tcp, 9000)],
                    };
                    let name = "allow-versioned-to-frontends".into();
                    self.policy(name, selector, INGRESS, vec![rule], vec![])
                } else {
                    let team = self.ns_label("team");
                    let selector = LabelSelector {
                        match_labels: [("team".to_string(), team)].into(),
                        match_expressions: vec![expression("version", Operator::DoesNotExist, &[])],
                    };
                    let pods = LabelSelector {
                        match_expressions: vec![
                            expression("tier", Operator::NotIn, &["db", "cache"]),
                            expression("app", Operator::Exists, &[]),
                        ],
                        ..everything()
                    };
                    let rule = Rule {
                        peers: vec![pods_here(pods)],
                        ports: vec![named(Tcp, "metrics")],
                    };
                    let name = "allow-metrics-to-unversioned".into();
                    self.policy(name, selector, INGRESS, vec![rule], vec![])
                }
            }
            PolicyKind::EgressToTier => {
                let t = self.target(|w| {
                    matches!(w.label("tier"), Some("web") | Some("api") | Some("worker"))
                });
                let (tier, entries) = if self.rng.random_bool(0.5) {
                    ("db", vec![named(Tcp, "postgres"), port(Tcp, 3306)])
                } else {
                    ("cache", vec![named(Tcp, "redis"), port(Tcp, 11211)])
                };
                let rule = Rule {
                    peers: vec![pods_here(labels(&[("tier", tier)]))],
                    ports: entries,
                };
                let name = format!("allow-{}-to-{tier}", t.app);
                self.policy(name, t.selector, EGRESS, vec![], vec![rule])
            }
            PolicyKind::EgressIpBlock => {
                let t = self.target(|_| true);
                let (what, rule) = match self.rng.random_range(0..3) {
                    0 => (
                        "internet",
                        Rule {
                            peers: vec![ip_block(EVERYWHERE, &[POD_NETWORK, METADATA_SERVICE])],
                            ports: vec![port(Tcp, 443)],
                        },
                    ),
                    1 => (
                        "partner",
                        Rule {
                            peers: vec![ip_block(PARTNER, &[])],
                            ports: vec![port(Tcp, 8443), port(Udp, 123)],
                        },
                    ),
                    _ => (
                        "vendor",
                        Rule {
                            peers: vec![ip_block(VENDOR, &[VENDOR_LAB])],
                            ports: vec![],
                        },
                    ),
                };
                let name = format!("allow-{}-to-{what}", t.app);
                self.policy(name, t.selector, EGRESS, vec![], vec![rule])
            }
            PolicyKind::IngressIpBlock => {
                let t = self.target(|w| w.label("tier") == Some("web"));
                let first = &t.ports[0];
                let rule = Rule {
                    peers: vec![ip_block(PARTNER, &[]), ip_block(OFFICE, &[OFFICE_GUESTS])],
                    ports: vec![port(first.protocol, first.port)],
                };
                let name = format!("allow-lb-to-{}", t.app);
                self.policy(name, t.selector, INGRESS, vec![rule], vec![])
            }
            PolicyKind::PortRange => {
                let t = self.target(|_| true);
                if self.rng.random_bool(0.5) {
                    let rule = Rule {
                        peers: vec![pods_here(everything())],
                        ports: vec![port_range(Tcp, 8000, 8100)],
                    };
                    let name = format!("allow-8000-8100-to-{}", t.app);
                    self.policy(name, t.selector, INGRESS, vec![rule], vec![])
                } else {
                    let rule = Rule {
                        peers: vec![ip_block(OFFICE, &[])],
                        ports: vec![port_range(Tcp, 30000, 32767)],
                    };
                    let name = format!("allow-{}-to-nodeports", t.app);
                    self.policy(name, t.selector, EGRESS, vec![], vec![rule])
                }
            }
            PolicyKind::Udp => {
                let t = self.target(|w| w.ports.iter().any(|p| p.protocol == Udp));
                let env = self.ns_label("env");
                let rule = Rule {
                    peers: vec![pods_in(labels(&[("env", &env)]), everything())],
                    ports: vec![port(Udp, 8125), port(Udp, 11211)],
                };
                let name = format!("allow-udp-to-{}", t.app);
                self.policy(name, t.selector, INGRESS, vec![rule], vec![])
            }
            PolicyKind::Sctp => {
                let t = self.target(|w| w.ports.iter().any(|p| p.protocol == Sctp));
                let rule = Rule {
                    peers: vec![pods_in(everything(), labels(&[("tier", "api")]))],
                    ports: vec![port(Sctp, 3868)],
                };
                let name = format!("allow-sctp-to-{}", t.app);
                self.policy(name, t.selector, INGRESS, vec![rule], vec![])
            }
            PolicyKind::ScrapeMetrics => {
                let rule = Rule {
                    peers: vec![pods_in(labels(&[("team", "platform")]), everything())],
                    ports: vec![named(Tcp, "metrics")],
                };
                let name = "allow-metrics-scrape".into();
                self.policy(name, everything(), INGRESS, vec![rule], vec![])
            }
        }
    }
}
