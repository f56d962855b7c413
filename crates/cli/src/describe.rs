//! Plain-words renderings shared by `check` and `explain`.

use palisade_engine::{Analysis, Direction, PolicyId, RuleRef, SideVerdict, Subject};
use serde_json::{Value, json};

pub fn subject_name(analysis: &Analysis, subject: Subject) -> String {
    match subject {
        Subject::Endpoint(id) => analysis.endpoint(id).qualified_name(),
        Subject::External(ip) => format!("{ip} (outside the cluster)"),
    }
}

pub fn policy_names(analysis: &Analysis, ids: &[PolicyId]) -> Vec<String> {
    ids.iter()
        .map(|&id| analysis.policy(id).qualified_name())
        .collect()
}

/// "expense/poda-egress egress rule 1: to pods with app=podC in namespace expense, on TCP 80".
/// Rules, peers and ports are numbered from 1 as people count them.
pub fn rule_ref(analysis: &Analysis, r: &RuleRef) -> String {
    let policy = analysis.policy(r.policy);
    let rule = &policy.rules(r.direction)[r.rule];
    let (verb, any_peer) = match r.direction {
        Direction::Ingress => ("from", "from every source"),
        Direction::Egress => ("to", "to every destination"),
    };
    let peer = match r.peer {
        Some(i) => format!("{verb} {}", rule.peers[i].describe(&policy.namespace)),
        None => any_peer.to_string(),
    };
    let port = match r.port {
        Some(i) => format!("on {}", rule.ports[i]),
        None => "on every port".to_string(),
    };
    format!(
        "{} {} rule {}: {peer}, {port}",
        policy.qualified_name(),
        r.direction,
        r.rule + 1
    )
}

pub fn side_text(analysis: &Analysis, verdict: &SideVerdict) -> Vec<String> {
    match verdict {
        SideVerdict::Loopback => {
            vec!["a pod's connection to itself never leaves it: always allowed".to_string()]
        }
        SideVerdict::NotGoverned => {
            vec!["not governed by NetworkPolicy (outside address or hostNetwork pod)".to_string()]
        }
        SideVerdict::NotIsolated => {
            vec!["not isolated: no policy selects it in this direction".to_string()]
        }
        SideVerdict::Admitted { isolating, by } => {
            let mut lines = vec![format!(
                "isolated by {}",
                policy_names(analysis, isolating).join(", ")
            )];
            lines.extend(
                by.iter()
                    .map(|r| format!("admitted by {}", rule_ref(analysis, r))),
            );
            lines
        }
        SideVerdict::NoRuleAdmits { isolating } => vec![
            format!(
                "isolated by {}",
                policy_names(analysis, isolating).join(", ")
            ),
            format!(
                "no rule of {} admits it",
                policy_names(analysis, isolating).join(", ")
            ),
        ],
    }
}

pub fn side_json(analysis: &Analysis, verdict: &SideVerdict) -> Value {
    let (name, isolating, by): (&str, &[PolicyId], &[RuleRef]) = match verdict {
        SideVerdict::Loopback => ("loopback", &[], &[]),
        SideVerdict::NotGoverned => ("not-governed", &[], &[]),
        SideVerdict::NotIsolated => ("not-isolated", &[], &[]),
        SideVerdict::Admitted { isolating, by } => ("admitted", isolating, by),
        SideVerdict::NoRuleAdmits { isolating } => ("no-rule-admits", isolating, &[]),
    };
    json!({
        "verdict": name,
        "allows": verdict.allows(),
        "isolating_policies": policy_names(analysis, isolating),
        "admitted_by": by.iter().map(|r| json!({
            "policy": analysis.policy(r.policy).qualified_name(),
            "direction": r.direction.to_string(),
            "rule": r.rule + 1,
            "peer": r.peer.map(|p| p + 1),
            "port": r.port.map(|p| p + 1),
            "text": rule_ref(analysis, r),
        })).collect::<Vec<_>>(),
    })
}
