//! Rules that cannot work as written: PAL005 (named port nobody declares), PAL006 (ipBlock over pod
//! addresses), PAL007 (rules for a direction `policyTypes` leaves out).

use super::{Ctx, name_some, peer_path, rule_path};
use crate::finding::{Finding, LintId};
use palisade_engine::{Direction, Peer, PortRef};
use std::collections::BTreeSet;

/// PAL005: a named port that none of the rule's destination pods declares with its protocol.
/// Destinations are the engine's ([`palisade_engine::Analysis::rule_destinations`]).
pub(super) fn named_ports(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    let analysis = ctx.analysis;
    for (policy_id, policy) in analysis.cluster().policies.iter_enumerated() {
        for direction in [Direction::Ingress, Direction::Egress] {
            for (rule_index, rule) in policy.rules(direction).iter().enumerate() {
                let names_a_port =
                    (rule.ports.iter()).any(|entry| matches!(entry.port, Some(PortRef::Named(_))));
                if !names_a_port {
                    continue;
                }
                let destinations = analysis.rule_destinations(policy_id, direction, rule);
                // Nothing to resolve against: a selector lint says why.
                if destinations.is_empty() {
                    continue;
                }
                for (port_index, entry) in rule.ports.iter().enumerate() {
                    let Some(PortRef::Named(name)) = &entry.port else {
                        continue;
                    };
                    let resolves = destinations.iter().any(|&d| {
                        analysis
                            .endpoint(d)
                            .named_port(name, entry.protocol)
                            .is_some()
                    });
                    if resolves {
                        continue;
                    }
                    let declared: BTreeSet<String> = destinations
                        .iter()
                        .flat_map(|&d| &analysis.endpoint(d).ports)
                        .filter_map(|p| {
                            p.name
                                .as_ref()
                                .map(|n| format!("{n} ({} {})", p.protocol, p.port))
                        })
                        .collect();
                    let other_protocol = destinations.iter().find_map(|&d| {
                        analysis
                            .endpoint(d)
                            .ports
                            .iter()
                            .find(|p| p.name.as_deref() == Some(name.as_str()))
                    });
                    let dest_names: Vec<String> = destinations
                        .iter()
                        .map(|&d| ctx.endpoint_object(d))
                        .collect();
                    let path = format!("{}.ports[{port_index}]", rule_path(direction, rule_index));
                    let fix = match other_protocol {
                        Some(p) => format!(
                            "The port \"{name}\" is declared with protocol {}: set `protocol: {}` in {path}.",
                            p.protocol, p.protocol
                        ),
                        None if declared.is_empty() => format!(
                            "Declare a containerPort named \"{name}\" ({}) on the destination pods, or use the port number in {path}.",
                            entry.protocol
                        ),
                        None => format!(
                            "Use one of the declared names ({}) or the port number in {path}, or declare \"{name}\" on the destination pods.",
                            declared.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    };
                    findings.push(
                        Finding::new(
                            LintId::NamedPortUndeclared,
                            ctx.policy_location(policy_id),
                            format!(
                                "{path} of NetworkPolicy {} names port \"{name}\" ({}), which none of its {} destination(s) declares, so this entry admits nothing: {}.",
                                policy.qualified_name(),
                                entry.protocol,
                                destinations.len(),
                                name_some(&dest_names, 5)
                            ),
                        )
                        .objects([ctx.policy_object(policy_id)])
                        .objects(dest_names)
                        .fix(fix),
                    );
                }
            }
        }
    }
}

/// PAL006: ipBlock peers whose ranges contain pod addresses.
pub(super) fn ip_blocks_cover_pods(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    let analysis = ctx.analysis;
    for (policy_id, policy) in analysis.cluster().policies.iter_enumerated() {
        for direction in [Direction::Ingress, Direction::Egress] {
            for (rule_index, rule) in policy.rules(direction).iter().enumerate() {
                for (peer_index, peer) in rule.peers.iter().enumerate() {
                    let Peer::IpBlock(block) = peer else {
                        continue;
                    };
                    let covered = analysis.peer_endpoints(policy_id, peer);
                    if covered.is_empty() {
                        continue;
                    }
                    let names: Vec<String> =
                        covered.iter().map(|&e| ctx.endpoint_object(e)).collect();
                    let path = peer_path(direction, rule_index, peer_index);
                    findings.push(
                        Finding::new(
                            LintId::IpBlockCoversPods,
                            ctx.policy_location(policy_id),
                            format!(
                                "{path} of NetworkPolicy {} (ipBlock {block}) covers the addresses of {}. Pod addresses change when pods are rescheduled, and whether an ipBlock matches pods at all depends on the network plugin.",
                                policy.qualified_name(),
                                name_some(&names, 5)
                            ),
                        )
                        .objects([ctx.policy_object(policy_id)])
                        .objects(names.iter().cloned())
                        .details(covered.iter().map(|&e| {
                            let ep = analysis.endpoint(e);
                            let ips: Vec<String> = ep.ips.iter().map(ToString::to_string).collect();
                            format!("{} at {}", ctx.endpoint_object(e), ips.join(", "))
                        }))
                        .fix(format!(
                            "Select these pods with a podSelector/namespaceSelector peer instead, and add the pod range to `except` of {path} if the ipBlock is meant for outside addresses."
                        )),
                    );
                }
            }
        }
    }
}

/// PAL007: rules written for a direction the policy does not isolate are ignored.
pub(super) fn ignored_directions(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    for (policy_id, policy) in ctx.analysis.cluster().policies.iter_enumerated() {
        for direction in [Direction::Ingress, Direction::Egress] {
            let rules = policy.rules(direction);
            if rules.is_empty() || policy.isolates(direction) {
                continue;
            }
            let type_name = match direction {
                Direction::Ingress => "Ingress",
                Direction::Egress => "Egress",
            };
            findings.push(
                Finding::new(
                    LintId::RulesIgnoredByPolicyTypes,
                    ctx.policy_location(policy_id),
                    format!(
                        "NetworkPolicy {} has {} {direction} rule(s) but spec.policyTypes does not list {type_name}, so they are ignored: {direction} of the selected pods is not restricted by this policy.",
                        policy.qualified_name(),
                        rules.len()
                    ),
                )
                .objects([ctx.policy_object(policy_id)])
                .fix(format!(
                    "Add {type_name} to spec.policyTypes to enforce the rules{}, or delete spec.{direction}.",
                    if direction == Direction::Egress {
                        " (egress isolation then also needs a DNS rule)"
                    } else {
                        ""
                    }
                )),
            );
        }
    }
}
