//! Builders of small clusters and proptest strategies for random ones, shared by the engine's
//! unit tests.

use crate::model::{
    Cluster, ContainerPort, Endpoint, IpBlock, Namespace, NamespaceScope, NetworkPolicy, Peer,
    PolicyTypes, PortRef, PortRule, Rule,
};
use crate::ports::Protocol;
use crate::selector::{LabelSelector, Labels};
use proptest::prelude::*;
use typed_index_collections::TiVec;

pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) fn pod(
    ns: &str,
    name: &str,
    pairs: &[(&str, &str)],
    ips: &[&str],
    ports: &[(&str, u16, Protocol)],
) -> Endpoint {
    let mut ep = Endpoint::pod(ns, name, labels(pairs));
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

pub(crate) fn policy(
    ns: &str,
    name: &str,
    selector: &[(&str, &str)],
    ingress: Option<Vec<Rule>>,
    egress: Option<Vec<Rule>>,
) -> NetworkPolicy {
    NetworkPolicy {
        namespace: ns.into(),
        name: name.into(),
        pod_selector: LabelSelector::with_labels(selector.iter().copied()),
        policy_types: PolicyTypes {
            ingress: ingress.is_some(),
            egress: egress.is_some(),
        },
        ingress: ingress.unwrap_or_default(),
        egress: egress.unwrap_or_default(),
    }
}

pub(crate) fn pods_peer(ns: Option<&[(&str, &str)]>, pods: &[(&str, &str)]) -> Peer {
    Peer::Pods {
        namespaces: ns.map_or(NamespaceScope::PolicyNamespace, |sel| {
            NamespaceScope::Selected(LabelSelector::with_labels(sel.iter().copied()))
        }),
        pods: LabelSelector::with_labels(pods.iter().copied()),
    }
}

pub(crate) fn block(cidr: &str, except: &[&str]) -> Peer {
    Peer::IpBlock(IpBlock {
        cidr: cidr.parse().unwrap(),
        except: except.iter().map(|e| e.parse().unwrap()).collect(),
    })
}

pub(crate) fn port(protocol: Protocol, port: Option<PortRef>, end_port: Option<u16>) -> PortRule {
    PortRule {
        protocol,
        port,
        end_port,
    }
}

pub(crate) fn web_cluster() -> Cluster {
    let web_ports: &[(&str, u16, Protocol)] =
        &[("http", 80, Protocol::Tcp), ("dns", 53, Protocol::Udp)];
    Cluster {
        namespaces: vec![
            Namespace::new("prod", labels(&[("env", "prod")])),
            Namespace::new("dev", Labels::new()),
        ],
        endpoints: vec![
            pod(
                "prod",
                "web",
                &[("app", "web")],
                &["10.0.0.1", "fd00::1"],
                web_ports,
            ),
            pod(
                "prod",
                "web2",
                &[("app", "web")],
                &["10.0.0.2"],
                &[("http", 8080, Protocol::Tcp)],
            ),
            pod(
                "prod",
                "db",
                &[("app", "db")],
                &["10.0.0.3"],
                &[("pg", 5432, Protocol::Tcp)],
            ),
            pod(
                "dev",
                "client",
                &[("app", "client")],
                &["10.0.1.1", "fd00::11"],
                &[],
            ),
        ]
        .into(),
        policies: TiVec::new(),
    }
}

pub(crate) fn arb_selector() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    proptest::collection::vec(
        prop_oneof![Just(("app", "a")), Just(("app", "b")), Just(("tier", "x"))],
        0..2,
    )
}

pub(crate) fn arb_peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        (proptest::option::of(arb_selector()), arb_selector()).prop_map(|(ns, pods)| {
            let ns: Option<Vec<(&str, &str)>> =
                ns.map(|s| s.into_iter().map(|(_, v)| ("team", v)).collect());
            pods_peer(ns.as_deref(), &pods)
        }),
        (0u8..4, any::<bool>()).prop_map(|(net, except)| {
            let cidr = format!("10.{net}.0.0/16");
            let hole = format!("10.{net}.0.0/30");
            let holes = [hole.as_str()];
            block(&cidr, if except { &holes[..] } else { &[] })
        }),
    ]
}

pub(crate) fn arb_port() -> impl Strategy<Value = PortRule> {
    (
        0usize..3,
        prop_oneof![
            Just((None, None)),
            Just((Some(PortRef::Number(80)), None)),
            Just((Some(PortRef::Number(53)), Some(81))),
            Just((Some(PortRef::Named("http".to_string())), None)),
            Just((Some(PortRef::Named("alt".to_string())), None)),
        ],
    )
        .prop_map(|(p, (number, end))| port(Protocol::ALL[p], number, end))
}

pub(crate) fn arb_rule() -> impl Strategy<Value = Rule> {
    (
        proptest::collection::vec(arb_peer(), 0..3),
        proptest::collection::vec(arb_port(), 0..3),
    )
        .prop_map(|(peers, ports)| Rule { peers, ports })
}

pub(crate) fn arb_cluster() -> impl Strategy<Value = Cluster> {
    let endpoint = (0usize..2, arb_selector(), 0u16..3, any::<bool>());
    let rules = || proptest::option::of(proptest::collection::vec(arb_rule(), 0..3));
    let pol = (0usize..2, arb_selector(), rules(), rules());
    (
        proptest::collection::vec(endpoint, 1..6),
        proptest::collection::vec(pol, 0..4),
    )
        .prop_map(|(endpoints, policies)| {
            let namespaces = ["a", "b"];
            Cluster {
                namespaces: vec![
                    Namespace::new("a", labels(&[("team", "a")])),
                    Namespace::new("b", labels(&[("team", "b")])),
                ],
                endpoints: endpoints
                    .into_iter()
                    .enumerate()
                    .map(|(i, (ns, sel, alt, v6))| {
                        let v4 = format!("10.{}.0.{}", i % 4, i + 1);
                        let v6a = format!("fd00::{}", i + 1);
                        let ips: Vec<&str> = if v6 { vec![&v4, &v6a] } else { vec![&v4] };
                        pod(
                            namespaces[ns],
                            &format!("p{i}"),
                            &sel,
                            &ips,
                            &[
                                ("http", 80, Protocol::Tcp),
                                ("alt", 80 + alt, Protocol::Udp),
                            ],
                        )
                    })
                    .collect(),
                policies: policies
                    .into_iter()
                    .enumerate()
                    .map(|(i, (ns, sel, ingress, egress))| {
                        policy(namespaces[ns], &format!("np{i}"), &sel, ingress, egress)
                    })
                    .collect(),
            }
        })
}
