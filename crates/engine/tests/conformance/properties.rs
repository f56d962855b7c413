//! Invariants that hold for any set of policies, checked over random policy sets on the fixture
//! (plus outside addresses, a hostNetwork pod and a replicated workload).

use palisade_conformance::*;
use palisade_engine::Operator::{Exists, In, NotIn};
use palisade_engine::{
    Endpoint, EndpointKind, LabelSelector, NAMESPACE_NAME_LABEL, NetworkPolicy, Peer, PolicyTypes,
    PortRule, Rule,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

fn world() -> World {
    let host = Endpoint {
        host_network: true,
        ..standard_pod("y", "node", "10.0.2.100")
    };
    let web = Endpoint {
        kind: EndpointKind::Workload {
            kind: "Deployment".to_string(),
        },
        replicas: 2,
        ..standard_pod("z", "web", "10.0.3.10")
    };
    World::xyz()
        .ns_label("y", "team", "blue")
        .endpoint(host)
        .endpoint(web)
        .external("10.0.2.200")
        .external("203.0.113.9")
}

fn selectors() -> Vec<LabelSelector> {
    vec![
        everything(),
        pod("a"),
        pod("b"),
        pod("web"),
        expr("pod", In, &["a", "c"]),
        expr("pod", NotIn, &["b"]),
    ]
}

fn peers() -> Vec<Peer> {
    vec![
        pods(everything()),
        pods(pod("b")),
        namespaces(everything()),
        namespaces(sel(&[("team", "blue")])),
        namespaces(expr(NAMESPACE_NAME_LABEL, NotIn, &["x"])),
        namespaces(expr("team", Exists, &[])),
        pods_in(ns_name("z"), pod("c")),
        pods_in(everything(), pod("web")),
        ip_block("10.0.2.0/24", &[]),
        ip_block("0.0.0.0/0", &["10.0.0.0/8"]),
        ip_block("10.0.0.0/16", &["10.0.1.0/24"]),
        ip_block("203.0.113.9/32", &[]),
    ]
}

fn port_rules() -> Vec<PortRule> {
    vec![
        port(Tcp, 80),
        port(Udp, 81),
        port_range(Tcp, 80, 81),
        port_range(Sctp, 79, 80),
        named_port(Tcp, "serve-81-tcp"),
        named_port(Udp, "serve-80-udp"),
        named_port(Tcp, "missing"),
        every_port(Sctp),
    ]
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    (vec(select(peers()), 0..3), vec(select(port_rules()), 0..3))
        .prop_map(|(peers, ports)| rule(peers, ports))
}

fn arb_types() -> impl Strategy<Value = Option<PolicyTypes>> {
    select(vec![
        None,
        Some(PolicyTypes {
            ingress: true,
            egress: false,
        }),
        Some(PolicyTypes {
            ingress: false,
            egress: true,
        }),
        Some(PolicyTypes {
            ingress: true,
            egress: true,
        }),
    ])
}

fn arb_policy() -> impl Strategy<Value = NetworkPolicy> {
    (
        select(NAMESPACES.to_vec()),
        select(selectors()),
        vec(arb_rule(), 0..3),
        vec(arb_rule(), 0..3),
        arb_types(),
    )
        .prop_map(
            |(namespace, pod_selector, ingress, egress, declared)| NetworkPolicy {
                namespace: namespace.to_string(),
                name: "generated".to_string(),
                pod_selector,
                policy_types: PolicyTypes::defaulted(declared, !egress.is_empty()),
                ingress,
                egress,
            },
        )
}

fn arb_policies() -> impl Strategy<Value = Vec<NetworkPolicy>> {
    vec(arb_policy(), 0..5)
}

fn with(policies: impl IntoIterator<Item = NetworkPolicy>) -> World {
    policies.into_iter().fold(world(), World::policy)
}

fn allowed(policies: &[NetworkPolicy]) -> Grid {
    with(policies.iter().cloned()).observe().grid
}

proptest! {
    /// `decide` and `allowed_ports` agree everywhere, every decision agrees with its reasons,
    /// and a single pod always reaches itself.
    #[test]
    fn engine_answers_agree_and_loopback_holds(policies in arb_policies()) {
        let w = with(policies);
        let observed = w.observe();
        prop_assert!(observed.inconsistencies.is_empty(), "{:#?}", observed.inconsistencies);
        let mut loopback = w.reachability(false);
        loopback.allow_loopback();
        let broken = loopback.grid().violations(&observed.grid, |expected, seen| !expected || seen);
        prop_assert!(broken.is_empty(), "loopback denied: {broken:#?}");
    }

    /// Adding a rule to a policy (of a direction it isolates or not) never takes away a
    /// connection: isolation is unchanged and admitted sets only grow.
    #[test]
    fn adding_a_rule_never_removes_a_connection(
        policies in vec(arb_policy(), 1..5),
        which in any::<prop::sample::Index>(),
        egress in any::<bool>(),
        extra in arb_rule(),
    ) {
        let before = allowed(&policies);
        let mut more = policies;
        let index = which.index(more.len());
        let target = &mut more[index];
        if egress { target.egress.push(extra) } else { target.ingress.push(extra) }
        let lost = before.violations(&allowed(&more), |b, a| !b || a);
        prop_assert!(lost.is_empty(), "connections lost: {lost:#?}");
    }

    /// A policy without rules only isolates: it never allows anything new.
    #[test]
    fn a_policy_without_rules_never_adds_a_connection(
        policies in arb_policies(),
        mut deny in arb_policy(),
    ) {
        deny.ingress.clear();
        deny.egress.clear();
        let before = allowed(&policies);
        let mut more = policies;
        more.push(deny);
        let gained = before.violations(&allowed(&more), |b, a| b || !a);
        prop_assert!(gained.is_empty(), "connections gained: {gained:#?}");
    }

    /// A policy admitting everything in both directions never takes a connection away, and on
    /// its own it leaves everything allowed (isolated, but by rules that admit all).
    #[test]
    fn isolating_with_allow_all_rules_removes_nothing(
        policies in arb_policies(),
        mut open in arb_policy(),
    ) {
        open.ingress = vec![Rule::default()];
        open.egress = vec![Rule::default()];
        open.policy_types = PolicyTypes { ingress: true, egress: true };
        let alone = allowed(std::slice::from_ref(&open));
        let denied = world().reachability(true).grid().violations(&alone, |b, a| b == a);
        prop_assert!(denied.is_empty(), "denied with only an allow-all policy: {denied:#?}");
        let before = allowed(&policies);
        let mut more = policies;
        more.push(open);
        let lost = before.violations(&allowed(&more), |b, a| !b || a);
        prop_assert!(lost.is_empty(), "connections lost: {lost:#?}");
    }

    /// Policies are a set: their order never matters.
    #[test]
    fn policy_order_does_not_matter(policies in arb_policies()) {
        let mut reversed = policies.clone();
        reversed.reverse();
        let changed = allowed(&policies).violations(&allowed(&reversed), |b, a| b == a);
        prop_assert!(changed.is_empty(), "order changed: {changed:#?}");
    }
}
