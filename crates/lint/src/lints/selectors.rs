//! Selectors that do not do what they look like: PAL002 (pod selectors where outside access was
//! meant), PAL003 (a policy selecting no pod) and PAL004 (a peer selecting nothing).

use super::{Ctx, name_some, peer_path, rule_path};
use crate::finding::{Finding, LintId};
use crate::sample::outside_ranges;
use palisade_engine::{
    Direction, EndpointId, LabelSelector, Labels, Namespace, NamespaceScope, NetworkPolicy,
    Operator, Peer, PolicyId, PortRef, Protocol, Rule, Subject,
};
use palisade_manifest::nearest;
use std::collections::BTreeSet;

/// Ports that almost always mean "some service on the internet" in an egress rule.
const OUTSIDE_PORTS: [u16; 2] = [80, 443];
/// Words in a policy name that announce outside access.
const OUTSIDE_WORDS: [&str; 6] = [
    "internet",
    "external",
    "outside",
    "world",
    "public",
    "egress-all",
];

/// PAL002: an egress rule with only pod/namespace selectors, on pods that reach no outside address
/// at all, where something says outside access was intended.
pub(super) fn egress_cluster_only(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    let analysis = ctx.analysis;
    let outside = outside_ranges(&[analysis]);
    for (policy_id, policy) in analysis.cluster().policies.iter_enumerated() {
        if !policy.isolates(Direction::Egress) {
            continue;
        }
        // Pods this policy isolates that no policy lets reach any outside address.
        let cut_off: Vec<EndpointId> = analysis
            .selected_endpoints(policy_id)
            .into_iter()
            .filter(|&s| {
                outside.iter().all(|r| {
                    analysis
                        .allowed_ports(Subject::Endpoint(s), Subject::External(r.first))
                        .is_empty()
                })
            })
            .collect();
        if cut_off.is_empty() {
            continue;
        }
        for (index, rule) in policy.egress.iter().enumerate() {
            let selectors_only =
                !rule.peers.is_empty() && rule.peers.iter().all(|p| matches!(p, Peer::Pods { .. }));
            if !selectors_only {
                continue;
            }
            let Some(why) = outside_intent(ctx, policy_id, policy, rule) else {
                continue;
            };
            let pods: Vec<String> = cut_off.iter().map(|&e| ctx.endpoint_object(e)).collect();
            findings.push(
                Finding::new(
                    LintId::EgressClusterOnly,
                    ctx.policy_location(policy_id),
                    format!(
                        "{} of NetworkPolicy {} allows cluster pods only, yet {why}. Pod and namespace selectors never match outside addresses, and {} can reach no address outside the cluster.",
                        rule_path(Direction::Egress, index),
                        policy.qualified_name(),
                        name_some(&pods, 5),
                    ),
                )
                .objects([ctx.policy_object(policy_id)])
                .objects(pods.iter().cloned())
                .details(pods.into_iter().map(|p| format!("no outside access: {p}")))
                .fix(format!(
                    "To allow outside addresses, add an ipBlock peer to {} (keep the cluster's pod and service ranges out):\n      - ipBlock:\n          cidr: 0.0.0.0/0\n          except:\n            - <pod CIDR>\n            - <service CIDR>\nIf cluster pods only were meant, name them with a narrower selector.",
                    rule_path(Direction::Egress, index)
                )),
            );
        }
    }
}

/// Why a selector-only egress rule looks meant for outside access, if it does.
fn outside_intent(
    ctx: &Ctx<'_>,
    policy_id: PolicyId,
    policy: &NetworkPolicy,
    rule: &Rule,
) -> Option<String> {
    let everything_everywhere = rule.peers.iter().any(|peer| {
        matches!(peer, Peer::Pods { namespaces: NamespaceScope::Selected(ns), pods }
            if ns.selects_everything() && pods.selects_everything())
    });
    if everything_everywhere {
        return Some(
            "it uses `namespaceSelector: {}`, which selects every pod in every namespace, not the internet".to_string(),
        );
    }
    let lower = policy.name.to_lowercase();
    if let Some(word) = OUTSIDE_WORDS.iter().find(|w| lower.contains(*w)) {
        return Some(format!("the policy's name says \"{word}\""));
    }
    let peer_pods: BTreeSet<EndpointId> = rule
        .peers
        .iter()
        .flat_map(|peer| ctx.analysis.peer_endpoints(policy_id, peer))
        .collect();
    let web_port = rule.ports.iter().find_map(|p| match p.port {
        Some(PortRef::Number(n)) if p.protocol == Protocol::Tcp && OUTSIDE_PORTS.contains(&n) => {
            Some(n)
        }
        _ => None,
    })?;
    let declared = peer_pods.iter().any(|&e| {
        ctx.analysis
            .endpoint(e)
            .ports
            .iter()
            .any(|p| p.port == web_port && p.protocol == Protocol::Tcp)
    });
    (!declared)
        .then(|| format!("it opens TCP port {web_port}, which none of the selected pods declares"))
}

/// Namespaces every cluster has, whether or not the inputs declare them.
const WELL_KNOWN_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// PAL003 and PAL004. Selectors are judged only against namespaces whose pods are in the inputs:
/// policies linted without their workloads would otherwise "select nothing" everywhere.
pub(super) fn selects_nothing(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    let analysis = ctx.analysis;
    let namespaces = known_namespaces(ctx);
    let with_pods: BTreeSet<&str> = analysis
        .cluster()
        .endpoints
        .iter()
        .filter(|e| !e.host_network)
        .map(|e| e.namespace.as_str())
        .collect();
    for (policy_id, policy) in analysis.cluster().policies.iter_enumerated() {
        if with_pods.contains(policy.namespace.as_str())
            && analysis.selected_classes(policy_id).is_empty()
        {
            let own_pods = pod_labels_in(ctx, |ns| ns == policy.namespace);
            let hints = selector_hints(&policy.pod_selector, &own_pods, "pod");
            findings.push(
                Finding::new(
                    LintId::PolicySelectsNothing,
                    ctx.policy_location(policy_id),
                    format!(
                        "spec.podSelector ({}) of NetworkPolicy {} selects no pod in namespace {}, so the policy does nothing.",
                        policy.pod_selector,
                        policy.qualified_name(),
                        policy.namespace
                    ),
                )
                .objects([ctx.policy_object(policy_id)])
                .details(hints.iter().map(|h| h.text.clone()))
                .fix(fix_text(&hints, "spec.podSelector", "or delete the policy")),
            );
        }
        for direction in [Direction::Ingress, Direction::Egress] {
            for (rule_index, rule) in policy.rules(direction).iter().enumerate() {
                for (peer_index, peer) in rule.peers.iter().enumerate() {
                    let Peer::Pods {
                        namespaces: scope,
                        pods,
                    } = peer
                    else {
                        continue;
                    };
                    if !analysis.peer_classes(policy_id, peer).is_empty() {
                        continue;
                    }
                    let path = peer_path(direction, rule_index, peer_index);
                    let problem = peer_problem(ctx, &namespaces, policy, scope, pods);
                    if let Some((what, hints)) = problem {
                        findings.push(
                            Finding::new(
                                LintId::PeerSelectsNothing,
                                ctx.policy_location(policy_id),
                                format!(
                                    "{path} of NetworkPolicy {} matches nothing: {what}, so the peer admits no connection.",
                                    policy.qualified_name()
                                ),
                            )
                            .objects([ctx.policy_object(policy_id)])
                            .details(hints.iter().map(|h| h.text.clone()))
                            .fix(fix_text(&hints, &path, "or delete the peer")),
                        );
                    }
                }
            }
        }
    }
}

/// Namespaces of the inputs plus the well-known ones, with their labels.
fn known_namespaces(ctx: &Ctx<'_>) -> Vec<(String, Labels)> {
    let mut out: Vec<(String, Labels)> = ctx
        .analysis
        .cluster()
        .namespaces
        .iter()
        .map(|ns| (ns.name.clone(), ns.labels.clone()))
        .collect();
    for name in WELL_KNOWN_NAMESPACES {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), Namespace::new(name, Labels::new()).labels));
        }
    }
    out
}

/// Why a pod peer that matches no endpoint matches nothing, or `None` when the inputs cannot
/// tell (its namespaces exist but none of their pods are in the inputs).
fn peer_problem(
    ctx: &Ctx<'_>,
    namespaces: &[(String, Labels)],
    policy: &NetworkPolicy,
    scope: &NamespaceScope,
    pods: &LabelSelector,
) -> Option<(String, Vec<Hint>)> {
    let selected: Vec<&str> = match scope {
        NamespaceScope::PolicyNamespace => vec![policy.namespace.as_str()],
        NamespaceScope::Selected(sel) => namespaces
            .iter()
            .filter(|(_, labels)| sel.matches(labels))
            .map(|(name, _)| name.as_str())
            .collect(),
    };
    if let NamespaceScope::Selected(sel) = scope
        && selected.is_empty()
    {
        let labels: Vec<&Labels> = namespaces.iter().map(|(_, labels)| labels).collect();
        return Some((
            format!("its namespaceSelector ({sel}) selects no namespace"),
            selector_hints(sel, &labels, "namespace"),
        ));
    }
    let candidates = pod_labels_in(ctx, |ns| selected.contains(&ns));
    if candidates.is_empty() {
        return None;
    }
    let place = if selected.len() == 1 {
        format!("namespace {}", selected[0])
    } else {
        format!("namespaces {}", selected.join(", "))
    };
    Some((
        format!("its podSelector ({pods}) selects no pod in {place}"),
        selector_hints(pods, &candidates, "pod"),
    ))
}

/// A part of a selector that nothing satisfies, and the nearest thing that exists.
struct Hint {
    text: String,
    /// (what was written, what exists) when a near match was found.
    replace: Option<(String, String)>,
}

/// The nearest-label replacement, when there is one, is the fix.
fn fix_text(hints: &[Hint], path: &str, alternative: &str) -> String {
    let replacements: Vec<String> = hints
        .iter()
        .filter_map(|h| h.replace.as_ref())
        .map(|(wanted, near)| format!("{wanted} with {near}"))
        .collect();
    if replacements.is_empty() {
        format!("Correct the selector in {path}, {alternative}.")
    } else {
        format!(
            "Replace {} in {path} (the nearest existing label), {alternative}.",
            replacements.join(", ")
        )
    }
}

fn pod_labels_in<'a>(ctx: &'a Ctx<'_>, in_namespace: impl Fn(&str) -> bool) -> Vec<&'a Labels> {
    ctx.analysis
        .cluster()
        .endpoints
        .iter()
        .filter(|e| !e.host_network && in_namespace(&e.namespace))
        .map(|e| &e.labels)
        .collect()
}

/// For each part of the selector that no candidate satisfies, a hint naming it and, when one is
/// close, the nearest label the candidates do carry (by edit distance on `key=value`).
fn selector_hints(selector: &LabelSelector, candidates: &[&Labels], noun: &str) -> Vec<Hint> {
    let existing: BTreeSet<String> = candidates
        .iter()
        .flat_map(|labels| labels.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    let keys: BTreeSet<&str> = candidates
        .iter()
        .flat_map(|labels| labels.keys().map(String::as_str))
        .collect();
    let hint = |what: &str, wanted: String, near: Option<&str>| match near {
        Some(near) => Hint {
            text: format!("no {noun} has {what} {wanted}; did you mean {near}?"),
            replace: Some((wanted, near.to_string())),
        },
        None => Hint {
            text: format!("no {noun} has {what} {wanted}"),
            replace: None,
        },
    };
    let mut hints = Vec::new();
    for (key, value) in &selector.match_labels {
        let wanted = format!("{key}={value}");
        if !existing.contains(&wanted) {
            let near = nearest(&wanted, existing.iter().map(String::as_str));
            hints.push(hint("label", wanted, near));
        }
    }
    for requirement in &selector.match_expressions {
        let needs_key = matches!(requirement.operator, Operator::In | Operator::Exists);
        if needs_key && !keys.contains(requirement.key.as_str()) {
            let near = nearest(&requirement.key, keys.iter().copied());
            hints.push(hint("label key", requirement.key.clone(), near));
        }
    }
    if hints.is_empty() && !selector.selects_everything() {
        hints.push(Hint {
            text: format!("each label exists on some {noun}, but no {noun} has them all"),
            replace: None,
        });
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_picks_the_closest_within_reach() {
        let labels = ["app=frontend", "app=backend", "tier=web"];
        let table = [
            ("app=frontnd", Some("app=frontend")),
            ("app=backnd", Some("app=backend")),
            ("tier=wbe", Some("tier=web")),
            ("role=database", None),
        ];
        for (wanted, expected) in table {
            assert_eq!(nearest(wanted, labels.into_iter()), expected, "{wanted}");
        }
    }
}
