//! Upstream's update cases, as two snapshots: the engine is a function of the cluster, so
//! "after the update" is the same question asked of the changed cluster.

use super::harness::*;
use palisade_engine::Rule;

/// Upstream "should enforce updated policy": allow-all, then the same policy with no rules.
#[test]
fn updated_policy() {
    let before =
        World::xyz().policy(np("x", "allow-all-mutate-to-deny-all").ingress([Rule::default()]));
    before.verify(before.reachability(true));

    let after = World::xyz().policy(np("x", "allow-all-mutate-to-deny-all").ingress([]));
    let mut r = after.reachability(true);
    r.expect_peer("*", "x/*", false);
    after.verify(r);
}

/// Upstream "should allow ingress access from updated namespace".
#[test]
fn ingress_from_updated_namespace() {
    let policy = || {
        np("x", "allow-client-a-via-ns-selector")
            .select(pod("a"))
            .ingress([rule([namespaces(sel(&[("ns2", "updated")]))], [])])
    };
    let before = World::xyz().policy(policy());
    let mut r = before.reachability(true);
    r.expect_all_ingress("x/a", false);
    before.verify(r);

    let after = World::xyz()
        .ns_label("y", "ns2", "updated")
        .policy(policy());
    let mut r = after.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect_peer("y/*", "*", true);
    after.verify(r);
}

/// Upstream "should allow ingress access from updated pod".
#[test]
fn ingress_from_updated_pod() {
    let policy = || {
        np("x", "allow-client-a-via-pod-selector")
            .select(pod("a"))
            .ingress([rule([pods(sel(&[("pod", "b"), ("pod2", "updated")]))], [])])
    };
    let before = World::xyz().policy(policy());
    let mut r = before.reachability(true);
    r.expect_all_ingress("x/a", false);
    before.verify(r);

    let after = World::xyz()
        .pod_label("x/b", "pod2", "updated")
        .policy(policy());
    let mut r = after.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect("x/b", "x/a", true);
    after.verify(r);
}

/// Upstream "should deny ingress access to updated pod".
#[test]
fn ingress_denied_to_updated_pod() {
    let policy = || {
        np("x", "deny-ingress-via-label-selector")
            .select(sel(&[("target", "isolated")]))
            .ingress([])
    };
    let before = World::xyz().policy(policy());
    before.verify(before.reachability(true));

    let after = World::xyz()
        .pod_label("x/a", "target", "isolated")
        .policy(policy());
    let mut r = after.reachability(true);
    r.expect_all_ingress("x/a", false);
    after.verify(r);
}

/// Upstream "should stop enforcing policies after they are deleted".
#[test]
fn deleted_policies_stop_applying() {
    let before = World::xyz().policy(np("x", "deny-all").ingress([]).egress([]));
    let mut r = before.reachability(true);
    r.expect_peer("x/*", "*", false)
        .expect_peer("*", "x/*", false);
    before.verify(r);

    let after = World::xyz();
    after.verify(after.reachability(true));
}
