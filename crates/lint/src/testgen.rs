//! Small random clusters for property tests: few labels, so selectors overlap often and
//! redundancy, shadowing and connectivity changes actually happen.

use palisade_engine::{
    Cluster, ContainerPort, Endpoint, IpBlock, LabelSelector, Labels, Namespace, NamespaceScope,
    NetworkPolicy, Peer, PolicyTypes, PortRef, PortRule, Protocol, Rule,
};
use proptest::prelude::*;

const APPS: [&str; 3] = ["web", "api", "db"];
const NAMESPACES: [(&str, &str); 2] = [("a", "x"), ("b", "y")];

fn selector(app: Option<usize>) -> LabelSelector {
    app.map_or_else(LabelSelector::everything, |i| {
        LabelSelector::with_labels([("app", APPS[i])])
    })
}

fn arb_peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        proptest::option::of(0..3usize).prop_map(|app| Peer::Pods {
            namespaces: NamespaceScope::PolicyNamespace,
            pods: selector(app),
        }),
        (0..2usize, proptest::option::of(0..3usize)).prop_map(|(ns, app)| Peer::Pods {
            namespaces: NamespaceScope::Selected(LabelSelector::with_labels([(
                "team",
                NAMESPACES[ns].1
            )])),
            pods: selector(app),
        }),
        Just(Peer::Pods {
            namespaces: NamespaceScope::Selected(LabelSelector::everything()),
            pods: LabelSelector::everything(),
        }),
        Just(Peer::IpBlock(IpBlock {
            cidr: "10.0.0.0/30".parse().unwrap(),
            except: Vec::new(),
        })),
        Just(Peer::IpBlock(IpBlock {
            cidr: "0.0.0.0/0".parse().unwrap(),
            except: vec!["10.0.0.0/8".parse().unwrap()],
        })),
    ]
}

fn arb_port() -> impl Strategy<Value = PortRule> {
    prop_oneof![
        Just(PortRule {
            protocol: Protocol::Tcp,
            port: Some(PortRef::Number(80)),
            end_port: None
        }),
        Just(PortRule {
            protocol: Protocol::Tcp,
            port: Some(PortRef::Number(80)),
            end_port: Some(90)
        }),
        Just(PortRule {
            protocol: Protocol::Tcp,
            port: Some(PortRef::Named("http".into())),
            end_port: None
        }),
        Just(PortRule {
            protocol: Protocol::Udp,
            port: None,
            end_port: None
        }),
    ]
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    (
        proptest::collection::vec(arb_peer(), 0..3),
        proptest::collection::vec(arb_port(), 0..3),
    )
        .prop_map(|(peers, ports)| Rule { peers, ports })
}

fn arb_policy() -> impl Strategy<Value = NetworkPolicy> {
    (
        0..2usize,
        proptest::option::of(0..3usize),
        1..4u8,
        proptest::collection::vec(arb_rule(), 0..3),
        proptest::collection::vec(arb_rule(), 0..3),
    )
        .prop_map(|(ns, app, types, ingress, egress)| NetworkPolicy {
            namespace: NAMESPACES[ns].0.to_string(),
            name: String::new(),
            pod_selector: selector(app),
            policy_types: PolicyTypes {
                ingress: types & 1 != 0,
                egress: types & 2 != 0,
            },
            ingress,
            egress,
        })
}

fn arb_endpoint() -> impl Strategy<Value = (usize, usize, bool, u32)> {
    (0..2usize, 0..3usize, any::<bool>(), 1..3u32)
}

pub fn arb_cluster() -> impl Strategy<Value = Cluster> {
    (
        proptest::collection::vec(arb_endpoint(), 1..6),
        proptest::collection::vec(arb_policy(), 0..5),
    )
        .prop_map(|(endpoints, mut policies)| {
            for (i, policy) in policies.iter_mut().enumerate() {
                policy.name = format!("p{i}");
            }
            Cluster {
                namespaces: NAMESPACES
                    .iter()
                    .map(|(name, team)| {
                        Namespace::new(*name, Labels::from([("team".into(), team.to_string())]))
                    })
                    .collect(),
                endpoints: endpoints
                    .into_iter()
                    .enumerate()
                    .map(|(i, (ns, app, http, replicas))| {
                        let mut pod = Endpoint::pod(
                            NAMESPACES[ns].0,
                            format!("pod{i}"),
                            Labels::from([("app".into(), APPS[app].to_string())]),
                        );
                        pod.ips = vec![std::net::IpAddr::from([10, 0, 0, i as u8])];
                        pod.replicas = replicas;
                        if http {
                            pod.ports = vec![ContainerPort {
                                name: Some("http".into()),
                                port: 8080,
                                protocol: Protocol::Tcp,
                            }];
                        }
                        pod
                    })
                    .collect(),
                policies: policies.into(),
            }
        })
}
