//! A small cluster for the dataplane tests: two namespaces, pods with named ports, dual stack,
//! and policies that use every kind of peer and port.

#![allow(dead_code)] // each test binary uses a part

pub mod topology;

use palisade_dataplane::{RenderOptions, Ruleset, render};
use palisade_engine::{
    Analysis, Cluster, ContainerPort, Endpoint, IpBlock, LabelSelector, Labels, Namespace,
    NamespaceScope, NetworkPolicy, NodeProgram, Peer, PolicyTypes, PortRef, PortRule, Protocol,
    Rule, every_pod_local,
};

/// The cluster compiled and rendered as one node hosting every pod.
pub fn compile(cluster: Cluster, audit: bool) -> (Analysis, NodeProgram, Ruleset) {
    let analysis = Analysis::new(cluster);
    let program = NodeProgram::compile(&analysis, &every_pod_local(analysis.cluster()));
    let options = RenderOptions {
        audit,
        log_group: 100,
    };
    let ruleset = render(&analysis, &program, options);
    (analysis, program, ruleset)
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn pod(
    ns: &str,
    name: &str,
    app: &str,
    ips: &[&str],
    ports: &[(&str, u16, Protocol)],
) -> Endpoint {
    let mut ep = Endpoint::pod(ns, name, labels(&[("app", app)]));
    ep.ips = ips.iter().map(|ip| ip.parse().unwrap()).collect();
    ep.ports = ports
        .iter()
        .map(|(n, port, protocol)| ContainerPort {
            name: Some(n.to_string()),
            port: *port,
            protocol: *protocol,
        })
        .collect();
    ep
}

pub fn app_peer(ns: Option<&str>, app: &str) -> Peer {
    Peer::Pods {
        namespaces: ns.map_or(NamespaceScope::PolicyNamespace, |team| {
            NamespaceScope::Selected(LabelSelector::with_labels([("team", team)]))
        }),
        pods: LabelSelector::with_labels([("app", app)]),
    }
}

pub fn tcp(port: u16) -> PortRule {
    PortRule {
        protocol: Protocol::Tcp,
        port: Some(PortRef::Number(port)),
        end_port: None,
    }
}

pub fn named(protocol: Protocol, name: &str) -> PortRule {
    PortRule {
        protocol,
        port: Some(PortRef::Named(name.to_string())),
        end_port: None,
    }
}

pub fn policy(
    ns: &str,
    name: &str,
    app: Option<&str>,
    ingress: Option<Vec<Rule>>,
    egress: Option<Vec<Rule>>,
) -> NetworkPolicy {
    NetworkPolicy {
        namespace: ns.into(),
        name: name.into(),
        pod_selector: app.map_or_else(LabelSelector::everything, |a| {
            LabelSelector::with_labels([("app", a)])
        }),
        policy_types: PolicyTypes {
            ingress: ingress.is_some(),
            egress: egress.is_some(),
        },
        ingress: ingress.unwrap_or_default(),
        egress: egress.unwrap_or_default(),
    }
}

/// `shop/web` (80 http, 81 UDP "stats"), `shop/db` (5432 pg), `ops/probe`; web admits probe on
/// http and the 10.99.0.0/16 block except 10.99.9.0/24 on 81-82; db admits web on pg; probe's
/// egress reaches web's http and UDP 53 anywhere.
pub fn shop() -> Cluster {
    Cluster {
        namespaces: vec![
            Namespace::new("shop", labels(&[("team", "shop")])),
            Namespace::new("ops", labels(&[("team", "ops")])),
        ],
        endpoints: vec![
            pod(
                "shop",
                "web",
                "web",
                &["10.1.0.1", "fd01::1"],
                &[("http", 80, Protocol::Tcp), ("stats", 81, Protocol::Udp)],
            ),
            pod(
                "shop",
                "db",
                "db",
                &["10.1.0.2", "fd01::2"],
                &[("pg", 5432, Protocol::Tcp)],
            ),
            pod("ops", "probe", "probe", &["10.2.0.1", "fd02::1"], &[]),
        ]
        .into(),
        policies: vec![
            policy(
                "shop",
                "web",
                Some("web"),
                Some(vec![
                    Rule {
                        peers: vec![app_peer(Some("ops"), "probe")],
                        ports: vec![named(Protocol::Tcp, "http")],
                    },
                    Rule {
                        peers: vec![Peer::IpBlock(IpBlock {
                            cidr: "10.99.0.0/16".parse().unwrap(),
                            except: vec!["10.99.9.0/24".parse().unwrap()],
                        })],
                        ports: vec![PortRule {
                            protocol: Protocol::Tcp,
                            port: Some(PortRef::Number(81)),
                            end_port: Some(82),
                        }],
                    },
                ]),
                None,
            ),
            policy(
                "shop",
                "db",
                Some("db"),
                Some(vec![Rule {
                    peers: vec![app_peer(None, "web")],
                    ports: vec![named(Protocol::Tcp, "pg")],
                }]),
                None,
            ),
            policy(
                "ops",
                "probe",
                Some("probe"),
                None,
                Some(vec![
                    Rule {
                        peers: vec![app_peer(Some("shop"), "web")],
                        ports: vec![named(Protocol::Tcp, "http")],
                    },
                    Rule {
                        peers: vec![],
                        ports: vec![PortRule {
                            protocol: Protocol::Udp,
                            port: Some(PortRef::Number(53)),
                            end_port: None,
                        }],
                    },
                ]),
            ),
        ]
        .into(),
    }
}
