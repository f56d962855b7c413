//! PAL001: pods that cannot resolve names because isolation blocks UDP or TCP 53 to cluster DNS.

use super::{Ctx, name_some};
use crate::finding::{Finding, LintId};
use palisade_engine::{
    Analysis, ContainerPort, Endpoint, EndpointId, EndpointKind, Labels, PolicyId, Protocol,
    SideVerdict, Subject,
};
use std::collections::{BTreeMap, BTreeSet};

const DNS_NAMESPACE: &str = "kube-system";
const DNS_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
const DNS_PORT: u16 = 53;
/// Resolvers use UDP and fall back to TCP for large answers: both must pass.
const DNS_PROTOCOLS: [Protocol; 2] = [Protocol::Udp, Protocol::Tcp];

/// Which side refuses: the source's egress (the usual culprit) or the DNS pods' ingress.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    SourceEgress,
    DnsIngress,
}

/// Which side refuses, the policies that isolate that side, and the protocols refused.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Blame {
    side: Side,
    policies: Vec<PolicyId>,
    protocols: BTreeSet<Protocol>,
}

pub(super) fn check(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    let found = dns_pods(ctx.analysis);
    // Manifests rarely include the cluster's own DNS: then ask about the standard one, as an
    // extra endpoint appended after the real ones (so real endpoint ids stay valid).
    let assumed;
    let (analysis, targets, synthetic) = if found.is_empty() {
        let mut cluster = ctx.analysis.cluster().clone();
        let id = cluster.endpoints.push_and_get_key(standard_dns_pod());
        assumed = Analysis::new(cluster);
        (&assumed, vec![id], true)
    } else {
        (ctx.analysis, found, false)
    };

    let mut blamed: BTreeMap<Blame, Vec<EndpointId>> = BTreeMap::new();
    for source in ctx.endpoint_ids() {
        if targets.contains(&source) || ctx.analysis.endpoint(source).host_network {
            continue;
        }
        let mut by_side: BTreeMap<(Side, Vec<PolicyId>), BTreeSet<Protocol>> = BTreeMap::new();
        for protocol in DNS_PROTOCOLS {
            let decisions: Vec<_> = targets
                .iter()
                .map(|&t| {
                    analysis.decide(
                        Subject::Endpoint(source),
                        Subject::Endpoint(t),
                        protocol,
                        DNS_PORT,
                    )
                })
                .collect();
            if decisions.iter().any(|d| d.allowed) {
                continue;
            }
            let (side, isolating) = match (&decisions[0].egress, &decisions[0].ingress) {
                (SideVerdict::NoRuleAdmits { isolating }, _) => (Side::SourceEgress, isolating),
                (_, SideVerdict::NoRuleAdmits { isolating }) => (Side::DnsIngress, isolating),
                _ => continue,
            };
            by_side
                .entry((side, isolating.clone()))
                .or_default()
                .insert(protocol);
        }
        for ((side, policies), protocols) in by_side {
            blamed
                .entry(Blame {
                    side,
                    policies,
                    protocols,
                })
                .or_default()
                .push(source);
        }
    }

    let dns_names: Vec<String> = targets
        .iter()
        .map(|&t| analysis.endpoint(t).qualified_name())
        .collect();
    let dns_desc = if synthetic {
        format!(
            "the cluster DNS pods (assumed: pods labelled {}={} in {DNS_NAMESPACE}; none are in the inputs)",
            DNS_LABEL.0, DNS_LABEL.1
        )
    } else {
        format!("the cluster DNS pods ({})", name_some(&dns_names, 3))
    };
    for (blame, sources) in blamed {
        findings.push(finding(
            ctx, analysis, &targets, &dns_desc, &blame, &sources,
        ));
    }
}

fn finding(
    ctx: &Ctx<'_>,
    analysis: &Analysis,
    targets: &[EndpointId],
    dns_desc: &str,
    blame: &Blame,
    sources: &[EndpointId],
) -> Finding {
    let protocols = DNS_PROTOCOLS
        .iter()
        .filter(|p| blame.protocols.contains(p))
        .map(|p| format!("{p} {DNS_PORT}"))
        .collect::<Vec<_>>()
        .join(" and ");
    let policy_names: Vec<String> = blame
        .policies
        .iter()
        .map(|&p| analysis.policy(p).qualified_name())
        .collect();
    let pods: Vec<String> = sources.iter().map(|&s| ctx.endpoint_object(s)).collect();
    let (message, fix) = match blame.side {
        Side::SourceEgress => (
            format!(
                "{} {} egress-isolated by {} and no egress rule admits {protocols} to {dns_desc}: name resolution fails.",
                name_some(&pods, 5),
                if pods.len() == 1 { "is" } else { "are" },
                policy_names.join(", "),
            ),
            format!(
                "Add this rule to spec.egress of NetworkPolicy {}:\n{}",
                policy_names[0],
                egress_rule_snippet(analysis, targets)
            ),
        ),
        Side::DnsIngress => (
            format!(
                "{dns_desc} are ingress-isolated by {} and no ingress rule admits {protocols} from {}: name resolution fails there.",
                policy_names.join(", "),
                name_some(&pods, 5),
            ),
            format!(
                "Add this rule to spec.ingress of NetworkPolicy {}:\n  - ports:\n      - protocol: UDP\n        port: 53\n      - protocol: TCP\n        port: 53",
                policy_names[0]
            ),
        ),
    };
    // Egress findings belong to the source's policy; ingress ones to the DNS pods' policy.
    Finding::new(
        LintId::DnsBlocked,
        ctx.policy_location(blame.policies[0]),
        message,
    )
    .objects(blame.policies.iter().map(|&p| ctx.policy_object(p)))
    .objects(pods.iter().cloned())
    .details(
        pods.into_iter()
            .map(|p| format!("cannot resolve names: {p}")),
    )
    .fix(fix)
}

/// A peer selecting the DNS pods: the well-known labels when they are kube-dns, otherwise the
/// first DNS pod's namespace and labels.
fn egress_rule_snippet(analysis: &Analysis, targets: &[EndpointId]) -> String {
    let first = analysis.endpoint(targets[0]);
    let standard = targets.iter().all(|&t| is_kube_dns(analysis.endpoint(t)));
    let labels: Labels = if standard {
        Labels::from([(DNS_LABEL.0.to_string(), DNS_LABEL.1.to_string())])
    } else {
        first.labels.clone()
    };
    let mut out = format!(
        "  - to:\n      - namespaceSelector:\n          matchLabels:\n            kubernetes.io/metadata.name: {}\n        podSelector:\n          matchLabels:\n",
        first.namespace
    );
    for (k, v) in &labels {
        out.push_str(&format!("            {k}: {v}\n"));
    }
    out.push_str(
        "    ports:\n      - protocol: UDP\n        port: 53\n      - protocol: TCP\n        port: 53",
    );
    out
}

fn is_kube_dns(endpoint: &Endpoint) -> bool {
    endpoint.namespace == DNS_NAMESPACE
        && endpoint.labels.get(DNS_LABEL.0).map(String::as_str) == Some(DNS_LABEL.1)
}

/// DNS servers in the inputs: kube-dns pods, and any pod that declares port 53.
fn dns_pods(analysis: &Analysis) -> Vec<EndpointId> {
    analysis
        .cluster()
        .endpoints
        .iter_enumerated()
        .filter(|(_, e)| !e.host_network)
        .filter(|(_, e)| is_kube_dns(e) || e.ports.iter().any(|p| p.port == DNS_PORT))
        .map(|(i, _)| i)
        .collect()
}

/// CoreDNS as kubeadm and most distributions deploy it. It has no address: whether an ipBlock
/// would reach it depends on the implementation, and ipBlocks for pods are a finding anyway.
fn standard_dns_pod() -> Endpoint {
    let mut pod = Endpoint::pod(
        DNS_NAMESPACE,
        "coredns",
        Labels::from([(DNS_LABEL.0.to_string(), DNS_LABEL.1.to_string())]),
    );
    pod.kind = EndpointKind::Workload {
        kind: "Deployment".to_string(),
    };
    pod.replicas = 2;
    pod.ports = vec![
        ContainerPort {
            name: Some("dns".to_string()),
            port: DNS_PORT,
            protocol: Protocol::Udp,
        },
        ContainerPort {
            name: Some("dns-tcp".to_string()),
            port: DNS_PORT,
            protocol: Protocol::Tcp,
        },
    ];
    pod
}
