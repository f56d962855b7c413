//! The reasons behind decisions: which policies isolate, which rule, peer and port admitted.

use palisade_conformance::*;
use palisade_engine::Direction::{Egress, Ingress};
use palisade_engine::{Decision, PolicyId, Protocol, RuleRef, SideVerdict, Subject};

fn decide(w: &World, from: &str, to: &str, protocol: Protocol, port: u16) -> Decision {
    w.analysis()
        .decide(w.subject(from), w.subject(to), protocol, port)
}

#[test]
fn default_deny_names_the_isolating_policy() {
    let w = World::xyz().policy(np("x", "deny-ingress").ingress([]));
    assert_eq!(
        decide(&w, "y/a", "x/a", Tcp, 80),
        Decision {
            allowed: false,
            egress: SideVerdict::NotIsolated,
            ingress: SideVerdict::NoRuleAdmits {
                isolating: policies([0])
            },
        }
    );
}

#[test]
fn every_isolating_policy_is_listed_and_the_admitting_rule_named() {
    let w = World::xyz()
        .policy(np("y", "unrelated").ingress([]))
        .policy(np("x", "deny-ingress").ingress([]))
        .policy(np("x", "b-on-81").select(pod("a")).ingress([rule(
            [pods(pod("c")), pods(pod("b"))],
            [port(Udp, 53), port(Tcp, 81)],
        )]));
    assert_eq!(
        decide(&w, "x/c", "x/a", Tcp, 80).ingress,
        SideVerdict::NoRuleAdmits {
            isolating: policies([1, 2])
        }
    );
    assert_eq!(
        decide(&w, "x/b", "x/a", Tcp, 81).ingress,
        SideVerdict::Admitted {
            isolating: policies([1, 2]),
            by: vec![RuleRef {
                policy: PolicyId::from(2),
                direction: Ingress,
                rule: 0,
                peer: Some(1),
                port: Some(1),
            }],
        }
    );
}

/// Every admitting rule is reported; a rule without peers or ports names neither.
#[test]
fn all_admitting_rules_are_reported() {
    let w = World::xyz().policy(
        np("x", "two-ways")
            .select(pod("a"))
            .ingress([rule([], []), rule([pods(pod("b"))], [every_port(Tcp)])]),
    );
    let decision = decide(&w, "x/b", "x/a", Tcp, 80);
    assert!(decision.allowed);
    assert_eq!(
        decision.ingress,
        SideVerdict::Admitted {
            isolating: policies([0]),
            by: vec![
                RuleRef {
                    policy: PolicyId::from(0),
                    direction: Ingress,
                    rule: 0,
                    peer: None,
                    port: None,
                },
                RuleRef {
                    policy: PolicyId::from(0),
                    direction: Ingress,
                    rule: 1,
                    peer: Some(0),
                    port: Some(0),
                },
            ],
        }
    );
}

#[test]
fn egress_side_reasons_and_outside_addresses() {
    let w = World::xyz().external("8.8.8.8").policy(
        np("x", "to-y-b")
            .select(pod("a"))
            .egress([rule([ip_block("10.0.2.2/32", &[])], [])]),
    );
    assert_eq!(
        decide(&w, "x/a", "y/b", Sctp, 81),
        Decision {
            allowed: true,
            egress: SideVerdict::Admitted {
                isolating: policies([0]),
                by: vec![RuleRef {
                    policy: PolicyId::from(0),
                    direction: Egress,
                    rule: 0,
                    peer: Some(0),
                    port: None,
                }],
            },
            ingress: SideVerdict::NotIsolated,
        }
    );
    assert_eq!(
        decide(&w, "x/a", "@8.8.8.8", Tcp, 80),
        Decision {
            allowed: false,
            egress: SideVerdict::NoRuleAdmits {
                isolating: policies([0])
            },
            ingress: SideVerdict::NotGoverned,
        }
    );
}

#[test]
fn loopback_and_not_governed_sides() {
    let host = palisade_engine::Endpoint {
        host_network: true,
        ..standard_pod("y", "node", "192.168.0.10")
    };
    let w = World::xyz()
        .endpoint(host)
        .external("203.0.113.9")
        .policy(np("x", "deny-all").ingress([]).egress([]));
    assert_eq!(
        decide(&w, "x/a", "x/a", Udp, 80),
        Decision {
            allowed: true,
            egress: SideVerdict::Loopback,
            ingress: SideVerdict::Loopback,
        }
    );
    let from_node = decide(&w, "y/node", "x/a", Tcp, 80);
    assert_eq!(from_node.egress, SideVerdict::NotGoverned);
    assert_eq!(
        from_node.ingress,
        SideVerdict::NoRuleAdmits {
            isolating: policies([0])
        }
    );
    let to_outside = decide(&w, "y/a", "@203.0.113.9", Tcp, 80);
    assert_eq!(to_outside.egress, SideVerdict::NotIsolated);
    assert_eq!(to_outside.ingress, SideVerdict::NotGoverned);
    assert!(to_outside.allowed);
}

#[test]
fn replicated_workload_to_itself_is_not_loopback() {
    let web = palisade_engine::Endpoint {
        kind: palisade_engine::EndpointKind::Workload {
            kind: "Deployment".to_string(),
        },
        replicas: 2,
        ..standard_pod("x", "web", "10.0.1.10")
    };
    let w = World::xyz()
        .endpoint(web)
        .policy(np("x", "deny-ingress").ingress([]));
    let decision = decide(&w, "x/deployment/web", "x/deployment/web", Tcp, 80);
    assert_eq!(decision.egress, SideVerdict::NotIsolated);
    assert_eq!(
        decision.ingress,
        SideVerdict::NoRuleAdmits {
            isolating: policies([0])
        }
    );
}

/// Isolation is per direction: an ingress-only policy does not list under egress.
#[test]
fn isolating_policies_per_direction() {
    let w = World::xyz()
        .policy(np("x", "in").select(pod("a")).ingress([]))
        .policy(np("x", "out").egress([]))
        .policy(
            np("x", "types-egress-only")
                .select(pod("a"))
                .ingress([])
                .types(false, true),
        );
    let analysis = w.analysis();
    let Subject::Endpoint(x_a) = w.subject("x/a") else {
        unreachable!("x/a is a pod")
    };
    assert_eq!(analysis.isolating_policies(x_a, Ingress), policies([0]));
    assert_eq!(analysis.isolating_policies(x_a, Egress), policies([1, 2]));
}

/// Policy ids by their position in the world's policy list.
fn policies<const N: usize>(positions: [usize; N]) -> Vec<PolicyId> {
    positions.map(PolicyId::from).to_vec()
}
