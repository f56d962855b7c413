//! The NetworkPolicy rules, each defined once. Decisions ([`crate::Analysis::decide`]),
//! whole-cluster connectivity, node programs and lint all answer through these:
//! - isolation: [`selects`] (which endpoints a policy's podSelector selects; hostNetwork pods
//!   never) and [`isolates`] (selected, and the policy has the direction in its types);
//! - peer match: [`peer_matches_endpoint`] (pod peers by namespace and labels, its halves
//!   [`namespace_matches`] and [`pod_matches`]; ipBlocks by any of the pod's addresses:
//!   [`block_matches_endpoint`]) and [`peer_matches_outside`];
//!   [`depends_on_policy_namespace`] tells whether a peer's matches depend on the namespace of
//!   the policy it is in;
//! - port match: [`rule_ports`] (every port a rule admits on a destination: numeric entries
//!   as written, named ports resolved on a destination pod, none on an outside address) and
//!   [`depends_on_destination`] (whether a rule names a port);
//! - the destination of a connection seen from one side: [`destination`].

use crate::model::{
    Direction, Endpoint, IpBlock, NamespaceScope, NetworkPolicy, Peer, PortRef, Rule,
};
use crate::ports::{MAX_PORT, MIN_PORT, PortSet};
use crate::selector::{LabelSelector, Labels};
use std::net::IpAddr;

/// Whether the policy's podSelector selects the endpoint: a pod of the policy's namespace whose
/// labels match. hostNetwork pods share the node's network and are never selected.
pub(crate) fn selects(policy: &NetworkPolicy, endpoint: &Endpoint) -> bool {
    endpoint.namespace == policy.namespace
        && !endpoint.host_network
        && policy.pod_selector.matches(&endpoint.labels)
}

/// Whether the policy isolates the endpoint in `direction`: it selects it and its policyTypes
/// (as defaulted) include the direction.
pub(crate) fn isolates(policy: &NetworkPolicy, endpoint: &Endpoint, direction: Direction) -> bool {
    policy.isolates(direction) && selects(policy, endpoint)
}

/// Whether `peer`, in a policy of namespace `policy_namespace`, matches the endpoint, whose
/// namespace carries `namespace_labels`.
pub(crate) fn peer_matches_endpoint(
    peer: &Peer,
    policy_namespace: &str,
    endpoint: &Endpoint,
    namespace_labels: &Labels,
) -> bool {
    match peer {
        Peer::IpBlock(block) => block_matches_endpoint(block, endpoint),
        Peer::Pods { namespaces, pods } => {
            // The namespace first: it is the cheaper half, and it rules out most pods.
            namespace_matches(
                namespaces,
                policy_namespace,
                &endpoint.namespace,
                namespace_labels,
            ) && pod_matches(pods, endpoint)
        }
    }
}

/// The namespace half of a pod peer: whether it admits the namespace `namespace`, labelled
/// `labels` (the policy's own namespace without a namespaceSelector).
pub(crate) fn namespace_matches(
    scope: &NamespaceScope,
    policy_namespace: &str,
    namespace: &str,
    labels: &Labels,
) -> bool {
    match scope {
        NamespaceScope::PolicyNamespace => namespace == policy_namespace,
        NamespaceScope::Selected(selector) => selector.matches(labels),
    }
}

/// The pod half of a pod peer: whether its podSelector matches the endpoint. hostNetwork pods
/// are no pod peer's.
pub(crate) fn pod_matches(pods: &LabelSelector, endpoint: &Endpoint) -> bool {
    !endpoint.host_network && pods.matches(&endpoint.labels)
}

/// As the upstream e2e suite expects: an ipBlock matches a pod by any of its addresses.
pub(crate) fn block_matches_endpoint(block: &IpBlock, endpoint: &Endpoint) -> bool {
    endpoint.ips.iter().any(|ip| block.contains(*ip))
}

/// Whether `peer` matches an address outside the cluster: only ipBlocks can.
pub(crate) fn peer_matches_outside(peer: &Peer, ip: IpAddr) -> bool {
    match peer {
        Peer::IpBlock(block) => block.contains(ip),
        Peer::Pods { .. } => false,
    }
}

/// Only a pod peer without a namespaceSelector depends on its policy's namespace; ipBlocks and
/// namespace selectors match the same endpoints from every namespace.
pub(crate) fn depends_on_policy_namespace(peer: &Peer) -> bool {
    matches!(
        peer,
        Peer::Pods {
            namespaces: NamespaceScope::PolicyNamespace,
            ..
        }
    )
}

/// The destination of a connection seen from the `direction` side of `subject` whose other end
/// is `other`: the subject itself for ingress, the other end for egress.
pub(crate) fn destination<T>(direction: Direction, subject: T, other: T) -> T {
    match direction {
        Direction::Ingress => subject,
        Direction::Egress => other,
    }
}

/// Whether a rule's ports depend on the destination: it names a port, which resolves on the
/// destination pod's container ports.
pub(crate) fn depends_on_destination(rule: &Rule) -> bool {
    rule.ports
        .iter()
        .any(|p| matches!(p.port, Some(PortRef::Named(_))))
}

/// Every port a rule admits on `destination` (`None`: an address outside the cluster). A rule
/// without ports admits every port of every protocol.
pub(crate) fn rule_ports(rule: &Rule, destination: Option<&Endpoint>) -> PortSet {
    let mut set = PortSet::empty();
    add_rule_ports(&mut set, rule, destination);
    set
}

/// Adds [`rule_ports`] to `set` in place.
pub(crate) fn add_rule_ports(set: &mut PortSet, rule: &Rule, destination: Option<&Endpoint>) {
    if rule.ports.is_empty() {
        *set = PortSet::all();
        return;
    }
    for entry in &rule.ports {
        add_entry_ports(set, entry, destination);
    }
}

/// The ports of one entry of a rule on `destination` ([`add_entry_ports`]).
pub(crate) fn entry_ports(
    entry: &crate::model::PortRule,
    destination: Option<&Endpoint>,
) -> PortSet {
    let mut set = PortSet::empty();
    add_entry_ports(&mut set, entry, destination);
    set
}

/// Adds the ports of one entry of a rule on `destination` to `set`: numeric entries as written
/// (`port` through `endPort`), no port meaning every port of the protocol, a named port
/// resolved on the destination pod (outside addresses declare none). In place: the node
/// program asks this for every destination pod of every rule.
fn add_entry_ports(
    set: &mut PortSet,
    entry: &crate::model::PortRule,
    destination: Option<&Endpoint>,
) {
    match &entry.port {
        None => set.insert_range(entry.protocol, MIN_PORT, MAX_PORT),
        Some(PortRef::Number(first)) => {
            set.insert_range(entry.protocol, *first, entry.end_port.unwrap_or(*first));
        }
        Some(PortRef::Named(name)) => {
            if let Some(port) = destination.and_then(|ep| ep.named_port(name, entry.protocol)) {
                set.insert_range(entry.protocol, port, port);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Protocol::{self, Tcp, Udp};
    use crate::testing::{block, labels, pod, pods_peer, policy, port};

    fn named(name: &str) -> Option<PortRef> {
        Some(PortRef::Named(name.to_string()))
    }

    #[test]
    fn a_policy_selects_and_isolates_pods_of_its_namespace_only() {
        let web = pod("prod", "web", &[("app", "web")], &["10.0.0.1"], &[]);
        let mut host = pod("prod", "host", &[("app", "web")], &["10.9.0.1"], &[]);
        host.host_network = true;
        let other_ns = pod("dev", "web", &[("app", "web")], &["10.0.1.1"], &[]);
        let db = pod("prod", "db", &[("app", "db")], &["10.0.0.2"], &[]);
        let ingress_only = policy("prod", "p", &[("app", "web")], Some(vec![]), None);
        let all_pods = policy("prod", "all", &[], Some(vec![]), Some(vec![]));
        // (policy, endpoint, selects, isolates ingress, isolates egress)
        let cases = [
            (&ingress_only, &web, true, true, false),
            (&ingress_only, &host, false, false, false),
            (&ingress_only, &other_ns, false, false, false),
            (&ingress_only, &db, false, false, false),
            (&all_pods, &db, true, true, true),
            (&all_pods, &host, false, false, false),
            (&all_pods, &other_ns, false, false, false),
        ];
        for (policy, endpoint, selected, ingress, egress) in cases {
            let context = format!("{} {}", policy.name, endpoint.qualified_name());
            assert_eq!(selects(policy, endpoint), selected, "{context}");
            assert_eq!(
                isolates(policy, endpoint, Direction::Ingress),
                ingress,
                "{context}"
            );
            assert_eq!(
                isolates(policy, endpoint, Direction::Egress),
                egress,
                "{context}"
            );
        }
    }

    #[test]
    fn peers_match_pods_by_namespace_and_labels_and_ipblocks_by_any_address() {
        let web = pod(
            "prod",
            "web",
            &[("app", "web")],
            &["10.0.0.1", "fd00::1"],
            &[],
        );
        let mut host = pod("prod", "host", &[("app", "web")], &["10.0.0.9"], &[]);
        host.host_network = true;
        let prod = labels(&[("env", "prod")]);
        let dev = labels(&[("env", "dev")]);
        // (peer, policy namespace, endpoint, its namespace's labels, matches)
        let cases = [
            (
                pods_peer(None, &[("app", "web")]),
                "prod",
                &web,
                &prod,
                true,
            ),
            (
                pods_peer(None, &[("app", "web")]),
                "dev",
                &web,
                &prod,
                false,
            ),
            (
                pods_peer(None, &[("app", "db")]),
                "prod",
                &web,
                &prod,
                false,
            ),
            (pods_peer(Some(&[]), &[]), "dev", &web, &prod, true),
            (
                pods_peer(Some(&[("env", "prod")]), &[]),
                "dev",
                &web,
                &prod,
                true,
            ),
            (
                pods_peer(Some(&[("env", "prod")]), &[]),
                "dev",
                &web,
                &dev,
                false,
            ),
            // hostNetwork pods are no pod peer's, but an ipBlock matches their address.
            (pods_peer(Some(&[]), &[]), "prod", &host, &prod, false),
            (block("10.0.0.0/24", &[]), "dev", &host, &prod, true),
            (
                block("10.0.0.0/24", &["10.0.0.0/28"]),
                "dev",
                &web,
                &prod,
                false,
            ),
            // Any of the pod's addresses will do.
            (block("fd00::/64", &[]), "dev", &web, &prod, true),
            (block("10.1.0.0/16", &[]), "dev", &web, &prod, false),
        ];
        for (peer, policy_namespace, endpoint, namespace_labels, expected) in cases {
            assert_eq!(
                peer_matches_endpoint(&peer, policy_namespace, endpoint, namespace_labels),
                expected,
                "{peer:?} from {policy_namespace} on {}",
                endpoint.qualified_name()
            );
        }
        let outside = "10.0.0.200".parse().unwrap();
        assert!(peer_matches_outside(&block("10.0.0.0/24", &[]), outside));
        assert!(!peer_matches_outside(
            &block("10.0.0.0/24", &["10.0.0.128/25"]),
            outside
        ));
        assert!(!peer_matches_outside(&pods_peer(Some(&[]), &[]), outside));
    }

    #[test]
    fn only_pod_peers_without_namespace_selector_depend_on_the_policy_namespace() {
        assert!(depends_on_policy_namespace(&pods_peer(None, &[])));
        assert!(!depends_on_policy_namespace(&pods_peer(Some(&[]), &[])));
        assert!(!depends_on_policy_namespace(&block("10.0.0.0/8", &[])));
    }

    #[test]
    fn rule_ports_resolve_named_ports_on_the_destination_only() {
        let web = pod(
            "prod",
            "web",
            &[],
            &[],
            &[("http", 8080, Tcp), ("dns", 53, Udp)],
        );
        let rule = |ports| Rule {
            peers: Vec::new(),
            ports,
        };
        let set = |ranges: &[(Protocol, u16, u16)]| {
            let mut set = PortSet::empty();
            for &(protocol, lo, hi) in ranges {
                set.insert_range(protocol, lo, hi);
            }
            set
        };
        // (rule, depends on destination, ports on web, ports outside)
        let cases = [
            (rule(vec![]), false, PortSet::all(), PortSet::all()),
            (
                rule(vec![port(Tcp, Some(PortRef::Number(80)), None)]),
                false,
                set(&[(Tcp, 80, 80)]),
                set(&[(Tcp, 80, 80)]),
            ),
            (
                rule(vec![port(Tcp, Some(PortRef::Number(80)), Some(90))]),
                false,
                set(&[(Tcp, 80, 90)]),
                set(&[(Tcp, 80, 90)]),
            ),
            (
                rule(vec![port(Udp, None, None)]),
                false,
                PortSet::all_of(Udp),
                PortSet::all_of(Udp),
            ),
            (
                rule(vec![
                    port(Tcp, named("http"), None),
                    port(Tcp, Some(PortRef::Number(443)), None),
                ]),
                true,
                set(&[(Tcp, 443, 443), (Tcp, 8080, 8080)]),
                set(&[(Tcp, 443, 443)]),
            ),
            // A name resolves only with its protocol.
            (
                rule(vec![port(Udp, named("http"), None)]),
                true,
                PortSet::empty(),
                PortSet::empty(),
            ),
            (
                rule(vec![port(Udp, named("dns"), None)]),
                true,
                set(&[(Udp, 53, 53)]),
                PortSet::empty(),
            ),
        ];
        for (rule, depends, on_web, outside) in cases {
            assert_eq!(depends_on_destination(&rule), depends, "{rule:?}");
            assert_eq!(rule_ports(&rule, Some(&web)), on_web, "{rule:?}");
            assert_eq!(rule_ports(&rule, None), outside, "{rule:?}");
        }
    }

    #[test]
    fn the_destination_is_the_subject_for_ingress_and_the_other_end_for_egress() {
        assert_eq!(
            destination(Direction::Ingress, "subject", "other"),
            "subject"
        );
        assert_eq!(destination(Direction::Egress, "subject", "other"), "other");
    }
}
