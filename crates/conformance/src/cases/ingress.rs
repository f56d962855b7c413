//! Ingress isolation and the peer selectors (upstream "NetworkPolicy between server and client").

use crate::Cases;
use crate::harness::*;
use palisade_engine::Operator::{DoesNotExist, Exists, In, NotIn};
use palisade_engine::{LabelSelector, NAMESPACE_NAME_LABEL, Peer, Rule};

fn default_deny_ingress(c: &mut Cases) {
    let w = World::xyz().policy(np("x", "deny-ingress").ingress([]));
    let mut r = w.reachability(true);
    r.expect_peer("*", "x/*", false);
    c.add(&w, r);
}

fn allow_all_ingress_with_an_empty_rule(c: &mut Cases) {
    let w = World::xyz().policy(np("x", "allow-all").ingress([Rule::default()]));
    let r = w.reachability(true);
    c.add(&w, r);
}

/// Upstream "should enforce multiple ingress policies with ingress allow-all policy taking
/// precedence": policies are a union, so the allow-all one opens what the other closed.
fn allow_all_ingress_policy_adds_to_a_port_restriction(c: &mut Cases) {
    let w = World::xyz()
        .policy(np("x", "allow-ingress-port-80").ingress([rule([], [port(Tcp, 80)])]))
        .policy(np("x", "allow-ingress").ingress([Rule::default()]));
    let r = w.reachability(true);
    c.add(&w, r);
}

fn allow_ingress_for_a_target_on_top_of_default_deny(c: &mut Cases) {
    let w = World::xyz().policy(np("x", "deny-all").ingress([])).policy(
        np("x", "allow-all-to-a")
            .select(pod("a"))
            .ingress([rule([pods_in(everything(), everything())], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/b", false)
        .expect_all_ingress("x/c", false);
    c.add(&w, r);
}

/// `namespaceSelector: {}` is every pod in every namespace, and nothing outside the cluster.
fn empty_namespace_selector_admits_every_pod_but_no_outside_address(c: &mut Cases) {
    let w = World::xyz().external("198.51.100.7").policy(
        np("x", "allow-from-another-ns")
            .select(pod("a"))
            .ingress([rule([namespaces(everything())], [])]),
    );
    let mut r = w.reachability(true);
    r.expect("@198.51.100.7", "x/a", false);
    c.add(&w, r);
}

fn empty_namespace_selector_with_pod_selector_admits_that_pod_everywhere(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "allow-b-anywhere")
            .select(pod("a"))
            .ingress([rule([pods_in(everything(), pod("b"))], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect_peer("*/b", "x/a", true);
    c.add(&w, r);
}

/// x/a admits only x/b; everything else into x/a is denied, including other namespaces' b.
fn only_x_b_reaches_x_a(c: &mut Cases, w: World, peer: Peer) {
    let w = w.policy(
        np("x", "x-a-allows-x-b")
            .select(pod("a"))
            .ingress([rule([peer], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect("x/b", "x/a", true);
    c.add(&w, r);
}

fn pod_selector_match_labels(c: &mut Cases) {
    only_x_b_reaches_x_a(c, World::xyz(), pods(pod("b")));
}

fn pod_selector_match_expressions_in(c: &mut Cases) {
    only_x_b_reaches_x_a(c, World::xyz(), pods(expr("pod", In, &["b"])));
}

fn pod_selector_exists(c: &mut Cases) {
    let w = World::xyz().pod_label("x/b", "role", "client");
    only_x_b_reaches_x_a(c, w, pods(expr("role", Exists, &[])));
}

/// Pods without the key match `NotIn`: x/c lacks `tier`, so only the labelled pods are left out.
fn pod_selector_not_in_matches_pods_without_the_key(c: &mut Cases) {
    let w = World::xyz()
        .pod_label("x/a", "tier", "db")
        .pod_label("x/c", "tier", "db")
        .pod_label("y/b", "tier", "web");
    only_x_b_reaches_x_a(c, w, pods(expr("tier", NotIn, &["db"])));
}

fn pod_selector_does_not_exist(c: &mut Cases) {
    let w = World::xyz()
        .pod_label("x/a", "tier", "db")
        .pod_label("x/c", "tier", "db");
    only_x_b_reaches_x_a(c, w, pods(expr("tier", DoesNotExist, &[])));
}

/// Only namespace y reaches x/a (upstream's NamespaceSelector cases).
fn only_y_reaches_x_a(c: &mut Cases, w: World, namespace_selector: LabelSelector) {
    let w = w.policy(
        np("x", "allow-client-a-via-ns-selector")
            .select(pod("a"))
            .ingress([rule([namespaces(namespace_selector)], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_peer("x/*", "x/a", false)
        .expect_peer("z/*", "x/a", false);
    c.add(&w, r);
}

fn namespace_selector_match_labels(c: &mut Cases) {
    only_y_reaches_x_a(c, World::xyz(), sel(&[("ns", "y")]));
}

fn namespace_selector_default_name_label(c: &mut Cases) {
    only_y_reaches_x_a(c, World::xyz(), ns_name("y"));
}

fn namespace_selector_match_expressions_in(c: &mut Cases) {
    only_y_reaches_x_a(c, World::xyz(), expr(NAMESPACE_NAME_LABEL, In, &["y"]));
}

fn namespace_selector_not_in(c: &mut Cases) {
    only_y_reaches_x_a(c, World::xyz(), expr("ns", NotIn, &["x", "z"]));
}

fn namespace_selector_exists(c: &mut Cases) {
    let w = World::xyz().ns_label("y", "team", "blue");
    only_y_reaches_x_a(c, w, expr("team", Exists, &[]));
}

/// x/a admits every namespace but y; y alone carries `team=blue`.
fn all_but_y_reach_x_a(c: &mut Cases, namespace_selector: LabelSelector) {
    let w = World::xyz().ns_label("y", "team", "blue").policy(
        np("x", "not-from-blue")
            .select(pod("a"))
            .ingress([rule([namespaces(namespace_selector)], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_peer("y/*", "x/a", false);
    c.add(&w, r);
}

fn namespace_selector_does_not_exist(c: &mut Cases) {
    all_but_y_reach_x_a(c, expr("team", DoesNotExist, &[]));
}

fn namespace_selector_not_in_matches_namespaces_without_the_key(c: &mut Cases) {
    all_but_y_reach_x_a(c, expr("team", NotIn, &["blue"]));
}

/// Upstream "should enforce policy based on PodSelector and NamespaceSelector": one peer with
/// both selectors needs both to match.
fn pod_and_namespace_selector_in_one_peer_are_anded(c: &mut Cases) {
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
    c.add(&w, r);
}

/// The same two selectors as two peers of one rule: either one admits.
fn pod_and_namespace_selector_as_two_peers_are_ored(c: &mut Cases) {
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
    c.add(&w, r);
}

fn multiple_pod_and_namespace_selectors(c: &mut Cases) {
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
    c.add(&w, r);
}

fn any_of_several_pod_selectors(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "allow-ns-x-pod-b-c")
            .select(pod("a"))
            .ingress([rule([pods(pod("b")), pods(pod("c"))], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect("x/b", "x/a", true)
        .expect("x/c", "x/a", true);
    c.add(&w, r);
}

fn one_pod_in_another_namespace(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "allow-ns-y-pod-a-via-namespace-pod-selector")
            .select(pod("a"))
            .ingress([rule([pods_in(ns_name("y"), pod("a"))], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect("y/a", "x/a", true);
    c.add(&w, r);
}

/// Upstream "should deny ingress from pods on other namespaces": a bare podSelector `{}`
/// means every pod of the policy's namespace only.
fn bare_empty_pod_selector_means_own_namespace_only(c: &mut Cases) {
    let w =
        World::xyz().policy(np("x", "deny-empty-policy").ingress([rule([pods(everything())], [])]));
    let mut r = w.reachability(true);
    r.expect_peer("y/*", "x/*", false)
        .expect_peer("z/*", "x/*", false);
    c.add(&w, r);
}

/// An omitted (empty) `from` admits every source, outside addresses included; a rule list with
/// no rules admits nothing.
fn empty_peer_list_admits_every_source(c: &mut Cases) {
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
    c.add(&w, r);
}

/// A policy selects pods of its own namespace only, whatever its podSelector.
fn policies_select_only_pods_of_their_namespace(c: &mut Cases) {
    let w = World::xyz()
        .policy(np("y", "deny-a").select(pod("a")).ingress([]))
        .policy(np("z", "deny-all").select(everything()).egress([]));
    let mut r = w.reachability(true);
    r.expect_all_ingress("y/a", false)
        .expect_peer("z/*", "*", false);
    c.add(&w, r);
}

fn policy_selecting_no_pod_changes_nothing(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "nobody")
            .select(pod("nobody"))
            .ingress([])
            .egress([]),
    );
    let r = w.reachability(true);
    c.add(&w, r);
}

fn no_policies_allow_everything(c: &mut Cases) {
    let w = World::xyz().dual_stack().external("203.0.113.9");
    let r = w.reachability(true);
    c.add(&w, r);
}

pub(crate) fn register(c: &mut Cases) {
    c.case("default_deny_ingress", default_deny_ingress);
    c.case(
        "allow_all_ingress_with_an_empty_rule",
        allow_all_ingress_with_an_empty_rule,
    );
    c.case(
        "allow_all_ingress_policy_adds_to_a_port_restriction",
        allow_all_ingress_policy_adds_to_a_port_restriction,
    );
    c.case(
        "allow_ingress_for_a_target_on_top_of_default_deny",
        allow_ingress_for_a_target_on_top_of_default_deny,
    );
    c.case(
        "empty_namespace_selector_admits_every_pod_but_no_outside_address",
        empty_namespace_selector_admits_every_pod_but_no_outside_address,
    );
    c.case(
        "empty_namespace_selector_with_pod_selector_admits_that_pod_everywhere",
        empty_namespace_selector_with_pod_selector_admits_that_pod_everywhere,
    );
    c.case("pod_selector_match_labels", pod_selector_match_labels);
    c.case(
        "pod_selector_match_expressions_in",
        pod_selector_match_expressions_in,
    );
    c.case("pod_selector_exists", pod_selector_exists);
    c.case(
        "pod_selector_not_in_matches_pods_without_the_key",
        pod_selector_not_in_matches_pods_without_the_key,
    );
    c.case("pod_selector_does_not_exist", pod_selector_does_not_exist);
    c.case(
        "namespace_selector_match_labels",
        namespace_selector_match_labels,
    );
    c.case(
        "namespace_selector_default_name_label",
        namespace_selector_default_name_label,
    );
    c.case(
        "namespace_selector_match_expressions_in",
        namespace_selector_match_expressions_in,
    );
    c.case("namespace_selector_not_in", namespace_selector_not_in);
    c.case("namespace_selector_exists", namespace_selector_exists);
    c.case(
        "namespace_selector_does_not_exist",
        namespace_selector_does_not_exist,
    );
    c.case(
        "namespace_selector_not_in_matches_namespaces_without_the_key",
        namespace_selector_not_in_matches_namespaces_without_the_key,
    );
    c.case(
        "pod_and_namespace_selector_in_one_peer_are_anded",
        pod_and_namespace_selector_in_one_peer_are_anded,
    );
    c.case(
        "pod_and_namespace_selector_as_two_peers_are_ored",
        pod_and_namespace_selector_as_two_peers_are_ored,
    );
    c.case(
        "multiple_pod_and_namespace_selectors",
        multiple_pod_and_namespace_selectors,
    );
    c.case("any_of_several_pod_selectors", any_of_several_pod_selectors);
    c.case("one_pod_in_another_namespace", one_pod_in_another_namespace);
    c.case(
        "bare_empty_pod_selector_means_own_namespace_only",
        bare_empty_pod_selector_means_own_namespace_only,
    );
    c.case(
        "empty_peer_list_admits_every_source",
        empty_peer_list_admits_every_source,
    );
    c.case(
        "policies_select_only_pods_of_their_namespace",
        policies_select_only_pods_of_their_namespace,
    );
    c.case(
        "policy_selecting_no_pod_changes_nothing",
        policy_selecting_no_pod_changes_nothing,
    );
    c.case("no_policies_allow_everything", no_policies_allow_everything);
}
