//! Decisions about one connection: [`Analysis::decide`] with both sides' reasons, and
//! [`Analysis::allowed_ports`] for a pair. Each side asks the rules in [`crate::rules`].

use crate::analysis::{Analysis, Subject};
use crate::ids::PolicyId;
use crate::model::{Direction, Endpoint, NetworkPolicy, Rule};
use crate::ports::{PortSet, Protocol};
use crate::rules;
use serde::Serialize;

/// Points at the rule, peer and port entry that admitted a connection. `peer`/`port` are `None`
/// when the rule has no peers (admits every peer) or no ports (admits every port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub policy: PolicyId,
    pub direction: Direction,
    pub rule: usize,
    pub peer: Option<usize>,
    pub port: Option<usize>,
}

/// What one side (the source's egress or the destination's ingress) says about a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SideVerdict {
    /// The connection is from a pod to itself: it never leaves the pod's network namespace.
    Loopback,
    /// Outside addresses and hostNetwork pods are not subject to NetworkPolicy.
    NotGoverned,
    /// No policy with this direction selects the pod.
    NotIsolated,
    Admitted {
        isolating: Vec<PolicyId>,
        by: Vec<RuleRef>,
    },
    NoRuleAdmits {
        isolating: Vec<PolicyId>,
    },
}

impl SideVerdict {
    pub fn allows(&self) -> bool {
        !matches!(self, SideVerdict::NoRuleAdmits { .. })
    }
}

/// The answer to "may SRC open this connection to DST?", with both sides' reasons. Replies of an
/// allowed connection are never evaluated: NetworkPolicy is connection-stateful.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub egress: SideVerdict,
    pub ingress: SideVerdict,
}

impl Analysis {
    /// The full decision with reasons, for one connection.
    ///
    /// Evaluation order is the one ClusterNetworkPolicy will extend: an Admin tier would be
    /// consulted before the NetworkPolicy sides below, a Baseline tier after them.
    pub fn decide(&self, src: Subject, dst: Subject, protocol: Protocol, port: u16) -> Decision {
        if self.is_loopback(src, dst) {
            return Decision {
                allowed: true,
                egress: SideVerdict::Loopback,
                ingress: SideVerdict::Loopback,
            };
        }
        let egress = self.side_verdict(Direction::Egress, src, dst, protocol, port);
        let ingress = self.side_verdict(Direction::Ingress, dst, src, protocol, port);
        Decision {
            allowed: egress.allows() && ingress.allows(),
            egress,
            ingress,
        }
    }

    /// Every (protocol, port) on which `src` may open a connection to `dst`.
    pub fn allowed_ports(&self, src: Subject, dst: Subject) -> PortSet {
        self.allowed_ports_narrowed(src, dst, |id| &self.cluster.policies[id])
    }

    /// [`Self::allowed_ports`] as if each policy were `policy(id)`: a narrowing of the cluster's
    /// own, with the same namespace and pod selector and at most its directions and rules (what
    /// "would removing this change anything?" asks). Nothing is compiled: the cluster's
    /// isolation lists are narrowed to the directions the stand-ins keep.
    pub fn allowed_ports_narrowed<'p>(
        &'p self,
        src: Subject,
        dst: Subject,
        policy: impl Fn(PolicyId) -> &'p NetworkPolicy,
    ) -> PortSet {
        if self.is_loopback(src, dst) {
            return PortSet::all();
        }
        let egress = self.side_ports_narrowed(Direction::Egress, src, dst, &policy);
        let ingress = self.side_ports_narrowed(Direction::Ingress, dst, src, &policy);
        match (egress, ingress) {
            (None, None) => PortSet::all(),
            (Some(e), None) => e,
            (None, Some(i)) => i,
            (Some(e), Some(i)) => e.intersection(&i),
        }
    }

    /// A pod talking to itself: the traffic never leaves its network namespace.
    pub fn is_loopback(&self, src: Subject, dst: Subject) -> bool {
        matches!((src, dst), (Subject::Endpoint(a), Subject::Endpoint(b))
            if a == b && self.cluster.endpoints[a].replicas <= 1)
    }

    /// The policies isolating `subject` in `direction`, or `None` when the subject is not
    /// governed by NetworkPolicy at all (outside address, hostNetwork pod).
    fn isolation(&self, subject: Subject, direction: Direction) -> Option<&[PolicyId]> {
        match subject {
            Subject::External(_) => None,
            Subject::Endpoint(id) if self.cluster.endpoints[id].host_network => None,
            Subject::Endpoint(id) => Some(self.isolating_policies(id, direction)),
        }
    }

    fn side_verdict(
        &self,
        direction: Direction,
        subject: Subject,
        other: Subject,
        protocol: Protocol,
        port: u16,
    ) -> SideVerdict {
        let Some(isolating) = self.isolation(subject, direction) else {
            return SideVerdict::NotGoverned;
        };
        if isolating.is_empty() {
            return SideVerdict::NotIsolated;
        }
        let destination = self.endpoint_of(rules::destination(direction, subject, other));
        let mut by = Vec::new();
        for &policy_id in isolating {
            let policy = &self.cluster.policies[policy_id];
            for (rule_index, rule) in policy.rules(direction).iter().enumerate() {
                let Some(peer) = self.matching_peer(policy, rule, other) else {
                    continue;
                };
                let Some(port_entry) = Self::matching_port(rule, destination, protocol, port)
                else {
                    continue;
                };
                by.push(RuleRef {
                    policy: policy_id,
                    direction,
                    rule: rule_index,
                    peer,
                    port: port_entry,
                });
            }
        }
        let isolating = isolating.to_vec();
        if by.is_empty() {
            SideVerdict::NoRuleAdmits { isolating }
        } else {
            SideVerdict::Admitted { isolating, by }
        }
    }

    /// One side of [`Self::allowed_ports_narrowed`]: what `subject`'s `direction` admits with
    /// `other` at the far end; `None` when that side is not isolated (or not governed at all),
    /// which admits every port.
    pub fn side_ports_narrowed<'p>(
        &'p self,
        direction: Direction,
        subject: Subject,
        other: Subject,
        policy: impl Fn(PolicyId) -> &'p NetworkPolicy,
    ) -> Option<PortSet> {
        let mut isolating = (self.isolation(subject, direction)?.iter())
            .map(|&id| policy(id))
            .filter(|p| p.isolates(direction))
            .peekable();
        isolating.peek()?;
        let destination = self.endpoint_of(rules::destination(direction, subject, other));
        let mut ports = PortSet::empty();
        for policy in isolating {
            for rule in policy.rules(direction) {
                if self.matching_peer(policy, rule, other).is_some() {
                    rules::add_rule_ports(&mut ports, rule, destination);
                }
            }
        }
        Some(ports)
    }

    /// `Some(None)`: the rule admits every peer; `Some(Some(i))`: peer `i` matches.
    fn matching_peer(
        &self,
        policy: &NetworkPolicy,
        rule: &Rule,
        other: Subject,
    ) -> Option<Option<usize>> {
        if rule.peers.is_empty() {
            return Some(None);
        }
        rule.peers
            .iter()
            .position(|peer| self.peer_matches(policy, peer, other))
            .map(Some)
    }

    /// `Some(None)`: the rule admits every port; `Some(Some(i))`: port entry `i` matches.
    fn matching_port(
        rule: &Rule,
        destination: Option<&Endpoint>,
        protocol: Protocol,
        port: u16,
    ) -> Option<Option<usize>> {
        if rule.ports.is_empty() {
            return Some(None);
        }
        rule.ports
            .iter()
            .position(|entry| rules::entry_ports(entry, destination).contains(protocol, port))
            .map(Some)
    }
}
