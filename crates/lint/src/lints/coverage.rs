//! PAL011: namespaces without a default-deny policy, with how many pods are isolated anyway.

use super::Ctx;
use crate::finding::{Finding, LintId};
use palisade_engine::{Direction, EndpointId};
use std::collections::BTreeMap;

#[derive(Default)]
struct Coverage {
    pods: u64,
    isolated: [u64; 2],
    first_endpoint: Option<EndpointId>,
}

pub(super) fn check(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    let analysis = ctx.analysis;
    let cluster = analysis.cluster();
    let directions = [Direction::Ingress, Direction::Egress];
    let mut per_namespace: BTreeMap<&str, Coverage> = BTreeMap::new();
    for (id, endpoint) in cluster.endpoints.iter_enumerated() {
        // hostNetwork pods cannot be isolated by any policy: they are not part of the share.
        if endpoint.host_network {
            continue;
        }
        let entry = per_namespace.entry(&endpoint.namespace).or_default();
        entry.first_endpoint.get_or_insert(id);
        let replicas = u64::from(endpoint.replicas);
        entry.pods += replicas;
        for (slot, direction) in directions.into_iter().enumerate() {
            if !analysis.isolating_policies(id, direction).is_empty() {
                entry.isolated[slot] += replicas;
            }
        }
    }
    for (namespace, coverage) in per_namespace {
        // A default deny selects every pod of the namespace, present and future.
        let missing: Vec<Direction> = directions
            .into_iter()
            .filter(|&d| {
                !cluster.policies.iter().any(|p| {
                    p.namespace == namespace && p.pod_selector.selects_everything() && p.isolates(d)
                })
            })
            .collect();
        if missing.is_empty() || coverage.pods == 0 {
            continue;
        }
        let shares: Vec<String> = directions
            .into_iter()
            .enumerate()
            .map(|(slot, d)| {
                let n = coverage.isolated[slot];
                format!(
                    "{d}: {n} of {} pods isolated ({}%)",
                    coverage.pods,
                    n * 100 / coverage.pods
                )
            })
            .collect();
        let missing_names: Vec<String> = missing.iter().map(ToString::to_string).collect();
        let verbs: Vec<&str> = missing
            .iter()
            .map(|d| match d {
                Direction::Ingress => "accept",
                Direction::Egress => "open",
            })
            .collect();
        let types: Vec<&str> = missing
            .iter()
            .map(|d| match d {
                Direction::Ingress => "Ingress",
                Direction::Egress => "Egress",
            })
            .collect();
        findings.push(
            Finding::new(
                LintId::NoDefaultDeny,
                ctx.namespace_location(namespace)
                    .or_else(|| coverage.first_endpoint.and_then(|e| ctx.endpoint_location(e))),
                format!(
                    "Namespace {namespace} has no default-deny policy for {}: pods no policy isolates {} any connection, and so will every new pod.",
                    missing_names.join(" and "),
                    verbs.join(" and "),
                ),
            )
            .objects([format!("Namespace {namespace}")])
            .details(shares)
            .fix(format!(
                "Add a default deny, then allow what is needed explicitly{}:\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  namespace: {namespace}\nspec:\n  podSelector: {{}}\n  policyTypes: [{}]",
                if missing.contains(&Direction::Egress) {
                    " (with egress, include DNS)"
                } else {
                    ""
                },
                types.join(", ")
            )),
        );
    }
}
