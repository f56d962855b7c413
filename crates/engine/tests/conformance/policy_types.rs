//! `policyTypes`: which directions a policy isolates, as written or as the API server defaults
//! them (Ingress always; Egress only when the egress list is non-empty).

use super::harness::*;
use palisade_engine::PolicyTypes;

/// Ingress rules of a policy whose types are only [Egress] are kept but ignored: x/a is not
/// ingress-isolated, so its ingress from pod b only rule restricts nothing.
#[test]
fn ingress_rules_ignored_without_the_ingress_type() {
    let w = World::xyz().policy(
        np("x", "egress-only")
            .select(pod("a"))
            .ingress([rule([pods(pod("b"))], [])])
            .egress([])
            .types(false, true),
    );
    let mut r = w.reachability(true);
    r.expect_all_egress("x/a", false);
    w.verify(r);
}

#[test]
fn egress_rules_ignored_without_the_egress_type() {
    let w = World::xyz().policy(
        np("x", "ingress-only")
            .select(pod("a"))
            .ingress([])
            .egress([rule([pods(pod("b"))], [])])
            .types(true, false),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false);
    w.verify(r);
}

/// No `policyTypes`, an egress section: both directions isolated (Ingress with no rules).
#[test]
fn undeclared_types_with_egress_rules_isolate_both_directions() {
    let w = World::xyz().policy(
        np("x", "egress-to-b")
            .select(pod("a"))
            .egress([rule([pods(pod("b"))], [])])
            .undeclared_types(),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect_all_egress("x/a", false)
        .expect("x/a", "x/b", true);
    w.verify(r);
}

/// No `policyTypes`, no egress section: ingress only, egress stays open.
#[test]
fn undeclared_types_without_egress_rules_isolate_ingress_only() {
    let w = World::xyz().policy(
        np("x", "ingress-from-b")
            .select(pod("a"))
            .ingress([rule([pods(pod("b"))], [])])
            .undeclared_types(),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect("x/b", "x/a", true);
    w.verify(r);
}

#[test]
fn defaulting_follows_the_api_server() {
    let both = PolicyTypes {
        ingress: true,
        egress: true,
    };
    let ingress_only = PolicyTypes {
        ingress: true,
        egress: false,
    };
    let egress_only = PolicyTypes {
        ingress: false,
        egress: true,
    };
    // (declared, non-empty egress list, effective)
    let table = [
        (None, false, ingress_only),
        (None, true, both),
        (Some(egress_only), false, egress_only),
        (Some(ingress_only), true, ingress_only),
    ];
    for (declared, has_egress, effective) in table {
        assert_eq!(
            PolicyTypes::defaulted(declared, has_egress),
            effective,
            "declared {declared:?}, egress rules present: {has_egress}"
        );
    }
}
