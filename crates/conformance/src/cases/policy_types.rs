//! `policyTypes`: which directions a policy isolates, as written or as the API server defaults
//! them (Ingress always; Egress only when the egress list is non-empty).

use crate::Cases;
use crate::harness::*;

/// Ingress rules of a policy whose types are only [Egress] are kept but ignored: x/a is not
/// ingress-isolated, so its ingress from pod b only rule restricts nothing.
fn ingress_rules_ignored_without_the_ingress_type(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "egress-only")
            .select(pod("a"))
            .ingress([rule([pods(pod("b"))], [])])
            .egress([])
            .types(false, true),
    );
    let mut r = w.reachability(true);
    r.expect_all_egress("x/a", false);
    c.add(&w, r);
}

fn egress_rules_ignored_without_the_egress_type(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "ingress-only")
            .select(pod("a"))
            .ingress([])
            .egress([rule([pods(pod("b"))], [])])
            .types(true, false),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false);
    c.add(&w, r);
}

/// No `policyTypes`, an egress section: both directions isolated (Ingress with no rules).
fn undeclared_types_with_egress_rules_isolate_both_directions(c: &mut Cases) {
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
    c.add(&w, r);
}

/// No `policyTypes`, no egress section: ingress only, egress stays open.
fn undeclared_types_without_egress_rules_isolate_ingress_only(c: &mut Cases) {
    let w = World::xyz().policy(
        np("x", "ingress-from-b")
            .select(pod("a"))
            .ingress([rule([pods(pod("b"))], [])])
            .undeclared_types(),
    );
    let mut r = w.reachability(true);
    r.expect_all_ingress("x/a", false)
        .expect("x/b", "x/a", true);
    c.add(&w, r);
}

pub(crate) fn register(c: &mut Cases) {
    c.case(
        "ingress_rules_ignored_without_the_ingress_type",
        ingress_rules_ignored_without_the_ingress_type,
    );
    c.case(
        "egress_rules_ignored_without_the_egress_type",
        egress_rules_ignored_without_the_egress_type,
    );
    c.case(
        "undeclared_types_with_egress_rules_isolate_both_directions",
        undeclared_types_with_egress_rules_isolate_both_directions,
    );
    c.case(
        "undeclared_types_without_egress_rules_isolate_ingress_only",
        undeclared_types_without_egress_rules_isolate_ingress_only,
    );
}
