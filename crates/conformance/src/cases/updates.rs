//! Upstream's update cases, as two snapshots: the engine is a function of the cluster, so
//! "after the update" is the same question asked of the changed cluster.

use crate::Cases;
use crate::harness::*;
use palisade_engine::Rule;

/// Upstream "should enforce updated policy": allow-all, then the same policy with no rules.
fn updated_policy(c: &mut Cases) {
    let before =
        World::xyz().policy(np("x", "allow-all-mutate-to-deny-all").ingress([Rule::default()]));
    let r = before.reachability(true);
    c.add(&before, r);

    let after = World::xyz().policy(np("x", "allow-all-mutate-to-deny-all").ingress([]));
    let mut r = after.reachability(true);
    r.expect_peer("*", "x/*", false);
    c.add(&after, r);
}

/// Upstream "should allow ingress access from updated namespace".
fn ingress_from_updated_namespace(c: &mut Cases) {
    let policy = || {
        np("x", "allow-client-a-via-ns-selector")
            .select(pod("a"))
            .ingress([rule([namespaces(sel(&[("ns2", "updated")]))], [])])
    };
    let before = World::xyz().policy(policy());
    let mut r = before.reachability(true);
    r.expect_all_ingress("x/a", false);
    c.add(&before, r);

    let after = World::xyz()
        .ns_label("y", "ns2", "updated")
        .policy(policy());
    let mut r = after.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect_peer("y/*", "*", true);
    c.add(&after, r);
}

/// Upstream "should allow ingress access from updated pod".
fn ingress_from_updated_pod(c: &mut Cases) {
    let policy = || {
        np("x", "allow-client-a-via-pod-selector")
            .select(pod("a"))
            .ingress([rule([pods(sel(&[("pod", "b"), ("pod2", "updated")]))], [])])
    };
    let before = World::xyz().policy(policy());
    let mut r = before.reachability(true);
    r.expect_all_ingress("x/a", false);
    c.add(&before, r);

    let after = World::xyz()
        .pod_label("x/b", "pod2", "updated")
        .policy(policy());
    let mut r = after.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect("x/b", "x/a", true);
    c.add(&after, r);
}

/// Upstream "should deny ingress access to updated pod".
fn ingress_denied_to_updated_pod(c: &mut Cases) {
    let policy = || {
        np("x", "deny-ingress-via-label-selector")
            .select(sel(&[("target", "isolated")]))
            .ingress([])
    };
    let before = World::xyz().policy(policy());
    let r = before.reachability(true);
    c.add(&before, r);

    let after = World::xyz()
        .pod_label("x/a", "target", "isolated")
        .policy(policy());
    let mut r = after.reachability(true);
    r.expect_all_ingress("x/a", false);
    c.add(&after, r);
}

/// Upstream "should stop enforcing policies after they are deleted".
fn deleted_policies_stop_applying(c: &mut Cases) {
    let before = World::xyz().policy(np("x", "deny-all").ingress([]).egress([]));
    let mut r = before.reachability(true);
    r.expect_peer("x/*", "*", false)
        .expect_peer("*", "x/*", false);
    c.add(&before, r);

    let after = World::xyz();
    let r = after.reachability(true);
    c.add(&after, r);
}

pub(crate) fn register(c: &mut Cases) {
    c.case("updated_policy", updated_policy);
    c.case(
        "ingress_from_updated_namespace",
        ingress_from_updated_namespace,
    );
    c.case("ingress_from_updated_pod", ingress_from_updated_pod);
    c.case(
        "ingress_denied_to_updated_pod",
        ingress_denied_to_updated_pod,
    );
    c.case(
        "deleted_policies_stop_applying",
        deleted_policies_stop_applying,
    );
}
