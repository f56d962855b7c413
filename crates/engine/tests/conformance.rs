//! Conformance suite for the engine, in the style of the upstream Kubernetes e2e netpol suite:
//! every case of `palisade-conformance` (namespaces x, y, z with pods a, b, c, and a truth
//! table written from the documented semantics) is checked in full — every ordered pair, ports
//! 80 and 81, TCP, UDP and SCTP — against `Analysis::decide`, and `Analysis::allowed_ports`
//! against `decide`. The lab runs the same cases on real namespaces.

mod conformance {
    mod properties;
    mod verdicts;
}

use palisade_engine::PolicyTypes;

#[test]
fn every_case_matches_its_truth_table() {
    let cases = palisade_conformance::cases();
    assert!(cases.len() >= 79, "only {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let outcome = case.world.check(&case.expected);
            outcome
                .err()
                .map(|report| format!("case {}: {report}", case.name))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn case_names_are_unique() {
    let mut names: Vec<String> = palisade_conformance::cases()
        .into_iter()
        .map(|c| c.name)
        .collect();
    let all = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all);
}

#[test]
fn policy_types_defaulting_follows_the_api_server() {
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
