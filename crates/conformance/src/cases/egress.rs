//! Egress isolation, and that a connection needs the source's egress AND the destination's
//! ingress.

use crate::Cases;
use crate::harness::*;
use palisade_engine::Operator::NotIn;
use palisade_engine::{NAMESPACE_NAME_LABEL, Rule};

fn default_deny_egress(c: &mut Cases) {
    let w = World::xyz().policy(np("x", "deny-egress-ns-x").egress([]));
    let mut r = w.reachability(true);
    r.expect_peer("x/*", "*", false);
    c.add(&w, r);
}

fn default_deny_all_both_directions(c: &mut Cases) {
    let w = World::xyz().policy(np("x", "deny-all").ingress([]).egress([]));
    let mut r = w.reachability(true);
    r.expect_peer("*", "x/*", false)
        .expect_peer("x/*", "*", false);
    c.add(&w, r);
}

fn deny_egress_of_one_pod(c: &mut Cases) {
    let w = World::xyz().policy(np("x", "deny-egress-pod-a").select(pod("a")).egress([]));
    let mut r = w.reachability(true);
    r.expect_all_egress("x/a", false);
    c.add(&w, r);
}

fn egress_to_one_pod_in_another_namespace(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "allow-to-ns-y-pod-a")
            .select(pod("a"))
            .egress([rule([pods_in(ns_name("y"), pod("a"))], [])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_egress("x/a", false).expect("x/a", "y/a", true);
    c.add(&w, r);
}

/// Upstream "should support denying of egress traffic on the client side (even if the server
/// explicitly allows this traffic)".
fn egress_denial_wins_over_a_server_that_allows(c: &mut Cases) {
    let from_x_a = rule([pods_in(ns_name("x"), pod("a"))], []);
    let w = World::xyz()
        .policy(
            np("x", "allow-to-ns-y-pod-a")
                .select(pod("a"))
                .egress([rule([pods_in(ns_name("y"), pod("a"))], [])]),
        )
        .policy(
            np("y", "allow-from-xa-on-ya")
                .select(pod("a"))
                .ingress([from_x_a.clone()]),
        )
        .policy(
            np("y", "allow-from-xa-on-yb")
                .select(pod("b"))
                .ingress([from_x_a]),
        );
    let mut r = w.reachability(true);
    r.expect_peer("x/a", "*", false)
        .expect_peer("*", "y/a", false)
        .expect("x/a", "y/a", true)
        .expect_peer("*", "y/b", false);
    c.add(&w, r);
}

/// The source may send (its egress admits y/a) but y/a's ingress does not admit x/a.
fn egress_allowed_still_needs_destination_ingress(c: &mut Cases) {
    let w = World::xyz()
        .policy(
            np("x", "a-to-every-a")
                .select(pod("a"))
                .egress([rule([pods_in(everything(), pod("a"))], [])]),
        )
        .policy(
            np("y", "a-from-own-ns")
                .select(pod("a"))
                .ingress([rule([pods(everything())], [])]),
        );
    let mut r = w.reachability(true);
    r.expect_all_egress("x/a", false)
        .expect_peer("x/a", "*/a", true)
        .expect_all_ingress("y/a", false)
        .expect_peer("y/*", "y/a", true);
    c.add(&w, r);
}

fn egress_namespace_not_in_by_default_label(c: &mut Cases) {
    let w = World::xyz().external("203.0.113.9").policy(
        np("x", "allow-ns-y-match-selector-for-immutable-ns-label")
            .select(pod("a"))
            .egress([rule(
                [namespaces(expr(NAMESPACE_NAME_LABEL, NotIn, &["y"]))],
                [],
            )]),
    );
    let mut r = w.reachability(true);
    r.expect_peer("x/a", "y/*", false)
        // A namespace selector never matches an outside address.
        .expect("x/a", "@203.0.113.9", false);
    c.add(&w, r);
}

/// Upstream "should work with Ingress, Egress specified together".
fn ingress_and_egress_in_one_policy(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "allow-client-a-via-pod-selector")
            .select(pod("a"))
            .ingress([rule([pods(pod("b"))], [])])
            .egress([rule([], [port(Tcp, 80)])]),
    );
    let mut r = w.reachability(true);
    r.expect_all_egress("x/a", false)
        .on(at(Tcp, 80), |r| {
            r.expect_all_egress("x/a", true);
        })
        .expect_all_ingress("x/a", false)
        .expect("x/b", "x/a", true);
    c.add(&w, r);
}

/// Upstream "should enforce policies to check ingress and egress policies can be controlled
/// independently based on PodSelector".
fn ingress_and_egress_policies_are_independent(c: &mut Cases) {
    let w = World::xyz()
        .policy(
            np("x", "allow-egress-for-target")
                .select(pod("a"))
                .egress([Rule::default()]),
        )
        .policy(
            np("x", "deny-ingress-via-label-selector")
                .select(pod("a"))
                .ingress([]),
        );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false);
    c.add(&w, r);
}

fn egress_port_restriction_alone(c: &mut Cases) {
    let w =
        World::xyz().policy(np("x", "allow-egress-port-80").egress([rule([], [port(Tcp, 80)])]));
    let mut r = w.reachability(true);
    r.expect_peer("x/*", "*", false).on(at(Tcp, 80), |r| {
        r.expect_peer("x/*", "*", true);
    });
    c.add(&w, r);
}

/// Upstream "should enforce multiple egress policies with egress allow-all policy taking
/// precedence".
fn egress_allow_all_policy_adds_to_a_port_restriction(c: &mut Cases) {
    let w = World::xyz()
        .policy(np("x", "allow-egress-port-80").egress([rule([], [port(Tcp, 80)])]))
        .policy(np("x", "allow-egress").egress([Rule::default()]));
    let r = w.reachability(true);
    c.add(&w, r);
}

pub(crate) fn register(c: &mut Cases) {
    c.case("default_deny_egress", default_deny_egress);
    c.case(
        "default_deny_all_both_directions",
        default_deny_all_both_directions,
    );
    c.case("deny_egress_of_one_pod", deny_egress_of_one_pod);
    c.case(
        "egress_to_one_pod_in_another_namespace",
        egress_to_one_pod_in_another_namespace,
    );
    c.case(
        "egress_denial_wins_over_a_server_that_allows",
        egress_denial_wins_over_a_server_that_allows,
    );
    c.case(
        "egress_allowed_still_needs_destination_ingress",
        egress_allowed_still_needs_destination_ingress,
    );
    c.case(
        "egress_namespace_not_in_by_default_label",
        egress_namespace_not_in_by_default_label,
    );
    c.case(
        "ingress_and_egress_in_one_policy",
        ingress_and_egress_in_one_policy,
    );
    c.case(
        "ingress_and_egress_policies_are_independent",
        ingress_and_egress_policies_are_independent,
    );
    c.case(
        "egress_port_restriction_alone",
        egress_port_restriction_alone,
    );
    c.case(
        "egress_allow_all_policy_adds_to_a_port_restriction",
        egress_allow_all_policy_adds_to_a_port_restriction,
    );
}
