//! Ingress isolation and the peer selectors (upstream "NetworkPolicy between server and client").

use super::harness::*;
use palisade_engine::Operator::{DoesNotExist, Exists, In, NotIn};
use palisade_engine::{LabelSelector, NAMESPACE_NAME_LABEL, Peer, Rule};

#[test]
fn default_deny_ingress() {
    let w = World::xyz().policy(np("x", "deny-ingress").ingress([]));
    let mut r = w.reachability(true);
    r.expect_peer("*", "x/*", false);
    w.verify(r);
}

#[test]
fn allow_all_ingress_with_an_empty_rule() {
    let w = World::xyz().policy(np("x", "allow-all").ingress([Rule::default()]));
    w.verify(w.reachability(true));
}

/// Upstream "should enforce multiple ingress policies with ingress allow-all policy taking
/// precedence": policies are a union, so the allow-all one opens what the other closed.
#[test]
fn allow_all_ingress_policy_adds_to_a_port_restriction() {
    let w = World::xyz()
        .policy(np("x", "allow-ingress-port-80").ingress([rule([], [port(Tcp, 80)])]))
        .policy(np("x", "allow-ingress").ingress([Rule::default()]));
    w.verify(w.reachability(true));
}

#[test]
fn allow_ingress_for_a_target_on_top_of_default_deny() {
    let w = World::xyz().policy(np("x", "deny-all").ingress([])).policy(
        np("x", "allow-all-to-a")
            .select(pod("a"))
            .ingress([rule([pods_in(everything(), everything())], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/b", false)
        .expect_all_ingress("x/c", false);
    w.verify(r);
}

/// `namespaceSelector: {}` is every pod in every namespace, and nothing outside the cluster.
#[test]
fn empty_namespace_selector_admits_every_pod_but_no_outside_address() {
    let w = World::xyz().external("198.51.100.7").policy(
        np("x", "allow-from-another-ns")
            .select(pod("a"))
            .ingress([rule([namespaces(everything())], [])]),
    );
    let mut r = w.reachability(true);
    r.expect("@198.51.100.7", "x/a", false);
    w.verify(r);
}

#[test]
fn empty_namespace_selector_with_pod_selector_admits_that_pod_everywhere() {
    let w = World::xyz().policy(
        np("x", "allow-b-anywhere")
            .select(pod("a"))
            .ingress([rule([pods_in(everything(), pod("b"))], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect_peer("*/b", "x/a", true);
    w.verify(r);
}

/// x/a admits only x/b; everything else into x/a is denied, including other namespaces' b.
fn only_x_b_reaches_x_a(w: World, peer: Peer) {
    let w = w.policy(
        np("x", "x-a-allows-x-b")
            .select(pod("a"))
            .ingress([rule([peer], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect("x/b", "x/a", true);
    w.verify(r);
}

#[test]
fn pod_selector_match_labels() {
    only_x_b_reaches_x_a(World::xyz(), pods(pod("b")));
}

#[test]
fn pod_selector_match_expressions_in() {
    only_x_b_reaches_x_a(World::xyz(), pods(expr("pod", In, &["b"])));
}

#[test]
fn pod_selector_exists() {
    let w = World::xyz().pod_label("x/b", "role", "client");
    only_x_b_reaches_x_a(w, pods(expr("role", Exists, &[])));
}

/// Pods without the key match `NotIn`: x/c lacks `tier`, so only the labelled pods are left out.
#[test]
fn pod_selector_not_in_matches_pods_without_the_key() {
    let w = World::xyz()
        .pod_label("x/a", "tier", "db")
        .pod_label("x/c", "tier", "db")
        .pod_label("y/b", "tier", "web");
    only_x_b_reaches_x_a(w, pods(expr("tier", NotIn, &["db"])));
}

#[test]
fn pod_selector_does_not_exist() {
    let w = World::xyz()
        .pod_label("x/a", "tier", "db")
        .pod_label("x/c", "tier", "db");
    only_x_b_reaches_x_a(w, pods(expr("tier", DoesNotExist, &[])));
}

/// Only namespace y reaches x/a (upstream's NamespaceSelector cases).
fn only_y_reaches_x_a(w: World, namespace_selector: LabelSelector) {
    let w = w.policy(
        np("x", "allow-client-a-via-ns-selector")
            .select(pod("a"))
            .ingress([rule([namespaces(namespace_selector)], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_peer("x/*", "x/a", false)
        .expect_peer("z/*", "x/a", false);
    w.verify(r);
}

#[test]
fn namespace_selector_match_labels() {
    only_y_reaches_x_a(World::xyz(), sel(&[("ns", "y")]));
}

#[test]
fn namespace_selector_default_name_label() {
    only_y_reaches_x_a(World::xyz(), ns_name("y"));
}

#[test]
fn namespace_selector_match_expressions_in() {
    only_y_reaches_x_a(World::xyz(), expr(NAMESPACE_NAME_LABEL, In, &["y"]));
}

#[test]
fn namespace_selector_not_in() {
    only_y_reaches_x_a(World::xyz(), expr("ns", NotIn, &["x", "z"]));
}

#[test]
fn namespace_selector_exists() {
    let w = World::xyz().ns_label("y", "team", "blue");
    only_y_reaches_x_a(w, expr("team", Exists, &[]));
}

/// x/a admits every namespace but y; y alone carries `team=blue`.
fn all_but_y_reach_x_a(namespace_selector: LabelSelector) {
    let w = World::xyz().ns_label("y", "team", "blue").policy(
        np("x", "not-from-blue")
            .select(pod("a"))
            .ingress([rule([namespaces(namespace_selector)], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_peer("y/*", "x/a", false);
    w.verify(r);
}

#[test]
fn namespace_selector_does_not_exist() {
    all_but_y_reach_x_a(expr("team", DoesNotExist, &[]));
}

#[test]
fn namespace_selector_not_in_matches_namespaces_without_the_key() {
    all_but_y_reach_x_a(expr("team", NotIn, &["blue"]));
}

/// Upstream "should enforce policy based on PodSelector and NamespaceSelector": one peer with
/// both selectors needs both to match.
#[test]
fn pod_and_namespace_selector_in_one_peer_are_anded() {
    let w = World::xyz().policy(
        np("x", "allow-ns-y-podselector-and-nsselector")
            .select(pod("a"))
            .ingress([rule(
                [pods_in(expr(NAMESPACE_NAME_LABEL, NotIn, &["x"]), pod("b"))],
                [],
            )]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect("y/b", "x/a", true)
        .expect("z/b", "x/a", true);
    w.verify(r);
}

/// The same two selectors as two peers of one rule: either one admits.
#[test]
fn pod_and_namespace_selector_as_two_peers_are_ored() {
    let w = World::xyz().policy(
        np("x", "allow-ns-y-match-selector")
            .select(pod("a"))
            .ingress([rule(
                [
                    namespaces(expr(NAMESPACE_NAME_LABEL, NotIn, &["x"])),
                    pods(pod("b")),
                ],
                [],
            )]),
    );
    let mut r = w.reachability(true);
    r.expect("x/c", "x/a", false);
    w.verify(r);
}

#[test]
fn multiple_pod_and_namespace_selectors() {
    let w = World::xyz().policy(
        np("x", "allow-ns-y-z-pod-b-c")
            .select(pod("a"))
            .ingress([rule(
                [pods_in(
                    expr(NAMESPACE_NAME_LABEL, NotIn, &["x"]),
                    expr("pod", In, &["b", "c"]),
                )],
                [],
            )]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false);
    for src in ["y/b", "y/c", "z/b", "z/c"] {
        r.expect(src, "x/a", true);
    }
    w.verify(r);
}

#[test]
fn any_of_several_pod_selectors() {
    let w = World::xyz().policy(
        np("x", "allow-ns-x-pod-b-c")
            .select(pod("a"))
            .ingress([rule([pods(pod("b")), pods(pod("c"))], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect("x/b", "x/a", true)
        .expect("x/c", "x/a", true);
    w.verify(r);
}

#[test]
fn one_pod_in_another_namespace() {
    let w = World::xyz().policy(
        np("x", "allow-ns-y-pod-a-via-namespace-pod-selector")
            .select(pod("a"))
            .ingress([rule([pods_in(ns_name("y"), pod("a"))], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect("y/a", "x/a", true);
    w.verify(r);
}

/// Upstream "should deny ingress from pods on other namespaces": a bare podSelector `{}`
/// means every pod of the policy's namespace only.
#[test]
fn bare_empty_pod_selector_means_own_namespace_only() {
    let w =
        World::xyz().policy(np("x", "deny-empty-policy").ingress([rule([pods(everything())], [])]));
    let mut r = w.reachability(true);
    r.expect_peer("y/*", "x/*", false)
        .expect_peer("z/*", "x/*", false);
    w.verify(r);
}

/// An omitted (empty) `from` admits every source, outside addresses included; a rule list with
/// no rules admits nothing.
#[test]
fn empty_peer_list_admits_every_source() {
    let w = World::xyz()
        .external("203.0.113.9")
        .policy(
            np("x", "open-80")
                .select(pod("a"))
                .ingress([rule([], [port(Tcp, 80)])]),
        )
        .policy(np("x", "closed").select(pod("b")).ingress([]));
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .on(at(Tcp, 80), |r| {
            r.expect_all_ingress("x/a", true);
        })
        .expect_all_ingress("x/b", false);
    w.verify(r);
}

/// A policy selects pods of its own namespace only, whatever its podSelector.
#[test]
fn policies_select_only_pods_of_their_namespace() {
    let w = World::xyz()
        .policy(np("y", "deny-a").select(pod("a")).ingress([]))
        .policy(np("z", "deny-all").select(everything()).egress([]));
    let mut r = w.reachability(true);
    r.expect_all_ingress("y/a", false)
        .expect_peer("z/*", "*", false);
    w.verify(r);
}

#[test]
fn policy_selecting_no_pod_changes_nothing() {
    let w = World::xyz().policy(
        np("x", "nobody")
            .select(pod("nobody"))
            .ingress([])
            .egress([]),
    );
    w.verify(w.reachability(true));
}

#[test]
fn no_policies_allow_everything() {
    let w = World::xyz().dual_stack().external("203.0.113.9");
    w.verify(w.reachability(true));
}
