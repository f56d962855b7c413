//! `diff`: which connections a change of manifests adds and removes, decided by the engine on both
//! sides, and which object changes are responsible.

use crate::sample::{Allowed, endpoint_object, merge_adjacent, outside_ranges, subtract};
use palisade_engine::{
    Analysis, ClassId, Direction, EndpointId, PolicyId, PortSet, Protocol, Subject,
};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConnectivityDiff {
    pub added: Vec<ConnectionChange>,
    pub removed: Vec<ConnectionChange>,
    /// Every NetworkPolicy added, removed or changed, whether or not it changed a connection.
    pub policy_changes: Vec<ObjectChange>,
    /// Endpoints only in the new set (`ns/name` or `ns/kind/name`); their connections are not
    /// compared, there is nothing to compare them with.
    pub endpoints_added: Vec<String>,
    pub endpoints_removed: Vec<String>,
}

impl ConnectivityDiff {
    pub fn changes_connectivity(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

/// One side of a connection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Party {
    Endpoint {
        namespace: String,
        /// `ns/name` or `ns/kind/name`, as `check` accepts it.
        name: String,
        /// `Pod ns/name`, `Deployment ns/name`.
        object: String,
    },
    /// Addresses outside the cluster: `0.0.0.0/0`, `10.0.0.0/8`, or `first-last`.
    Outside { range: String },
}

impl Party {
    pub fn label(&self) -> &str {
        match self {
            Party::Endpoint { name, .. } => name,
            Party::Outside { range } => range,
        }
    }

    /// The namespace for grouping; `None` for outside addresses.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Party::Endpoint { namespace, .. } => Some(namespace),
            Party::Outside { .. } => None,
        }
    }
}

/// Connections from one party to another that appeared (or disappeared) on these ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionChange {
    pub from: Party,
    pub to: Party,
    pub ports: PortSet,
    pub causes: Vec<Cause>,
}

impl Serialize for ConnectionChange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ConnectionChange", 5)?;
        s.serialize_field("from", &self.from)?;
        s.serialize_field("to", &self.to)?;
        s.serialize_field("ports", &self.ports.to_string())?;
        s.serialize_field("port_ranges", &port_ranges(&self.ports))?;
        s.serialize_field("causes", &self.causes)?;
        s.end()
    }
}

#[derive(Serialize)]
struct PortRange {
    protocol: Protocol,
    first: u16,
    last: u16,
}

fn port_ranges(ports: &PortSet) -> Vec<PortRange> {
    Protocol::ALL
        .into_iter()
        .flat_map(|protocol| {
            ports
                .ranges(protocol)
                .iter()
                .map(move |&(first, last)| PortRange {
                    protocol,
                    first,
                    last,
                })
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Changed => "changed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectChange {
    /// `NetworkPolicy ns/name`, `Deployment ns/name`, `Namespace name`.
    pub object: String,
    pub change: ChangeKind,
}

/// How a changed object bears on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A policy that selects the source and isolates its egress (before or after).
    SourceEgress,
    /// A policy that selects the destination and isolates its ingress (before or after).
    DestinationIngress,
    /// The source endpoint or its namespace changed (labels, ports, addresses).
    Source,
    Destination,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceEgress => "egress of the source",
            Self::DestinationIngress => "ingress of the destination",
            Self::Source => "the source",
            Self::Destination => "the destination",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Cause {
    #[serde(flatten)]
    pub change: ObjectChange,
    pub role: Role,
}

/// Compares two clusters connection by connection. Endpoints are matched by namespace, name and
/// kind; outside addresses are compared range by range over the ranges of both sides.
pub fn diff(old: &Analysis, new: &Analysis) -> ConnectivityDiff {
    let matching = Matching::new(old, new);
    let (old_allowed, new_allowed) = (Allowed::new(old), Allowed::new(new));
    let causes = Causes::new(old, new, &matching);
    let undone = Counterfactuals::new(&causes, old, new);
    let mut out = ConnectivityDiff {
        policy_changes: causes.policies.iter().map(|p| p.change.clone()).collect(),
        endpoints_added: matching.only_new.clone(),
        endpoints_removed: matching.only_old.clone(),
        ..ConnectivityDiff::default()
    };
    let mut record = |from: Party,
                      to: Party,
                      (src, dst): (Option<usize>, Option<usize>),
                      subjects: (Subject, Subject),
                      before: &PortSet,
                      after: &PortSet| {
        let gained = subtract(after, before);
        let lost = subtract(before, after);
        for (ports, list, opened) in [
            (gained, &mut out.added, true),
            (lost, &mut out.removed, false),
        ] {
            if !ports.is_empty() {
                let change = (&ports, opened);
                let causes = causes.for_connection(src, dst, &undone, subjects, change);
                list.push(ConnectionChange {
                    from: from.clone(),
                    to: to.clone(),
                    ports,
                    causes,
                });
            }
        }
    };

    // Endpoint pairs, one question per pair of groups (same class on both sides).
    let groups = &matching.groups;
    for a in groups {
        for b in groups {
            let same_group = std::ptr::eq(a, b);
            let (x, y) = match (same_group, a.get(1)) {
                (false, _) => (a[0], b[0]),
                (true, Some(&second)) => (a[0], second),
                // A one-member group has no pair of distinct members.
                (true, None) => continue,
            };
            let before = old_allowed.ports(matching.old_subject(x), matching.old_subject(y));
            let after = new_allowed.ports(matching.new_subject(x), matching.new_subject(y));
            if before == after {
                continue;
            }
            for &m in a {
                for &n in b.iter().filter(|&&n| n != m) {
                    record(
                        matching.party(m),
                        matching.party(n),
                        (Some(m), Some(n)),
                        // Members of a group answer alike: the pair of representatives
                        // stands for every pair.
                        (matching.new_subject(x), matching.new_subject(y)),
                        &before,
                        &after,
                    );
                }
            }
        }
    }
    // A member with itself: loopback depends on replicas, which classes do not capture.
    for m in 0..matching.pairs.len() {
        let before = old_allowed.ports(matching.old_subject(m), matching.old_subject(m));
        let after = new_allowed.ports(matching.new_subject(m), matching.new_subject(m));
        if before != after {
            record(
                matching.party(m),
                matching.party(m),
                (Some(m), Some(m)),
                (matching.new_subject(m), matching.new_subject(m)),
                &before,
                &after,
            );
        }
    }
    // Outside addresses, both directions, merged into the widest ranges that changed alike.
    let ranges = outside_ranges(&[old, new]);
    for group in groups {
        for direction in [Direction::Egress, Direction::Ingress] {
            let rep = group[0];
            let compared: Vec<_> = ranges
                .iter()
                .map(|range| {
                    let outside = Subject::External(range.first);
                    let ports = |allowed: &Allowed<'_>, me: Subject| {
                        match direction {
                            Direction::Egress => allowed.ports(me, outside),
                            Direction::Ingress => allowed.ports(outside, me),
                        }
                        .into_owned()
                    };
                    let key = (
                        ports(&old_allowed, matching.old_subject(rep)),
                        ports(&new_allowed, matching.new_subject(rep)),
                    );
                    (*range, key)
                })
                .collect();
            for (range, (before, after)) in merge_adjacent(compared) {
                if before == after {
                    continue;
                }
                let outside = Party::Outside {
                    range: range.label(),
                };
                let (address, me) = (Subject::External(range.first), matching.new_subject(rep));
                for &m in group {
                    match direction {
                        Direction::Egress => record(
                            matching.party(m),
                            outside.clone(),
                            (Some(m), None),
                            (me, address),
                            &before,
                            &after,
                        ),
                        Direction::Ingress => record(
                            outside.clone(),
                            matching.party(m),
                            (None, Some(m)),
                            (address, me),
                            &before,
                            &after,
                        ),
                    }
                }
            }
        }
    }
    for list in [&mut out.added, &mut out.removed] {
        list.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    }
    out
}

/// Endpoints present on both sides, and groups of them that both analyses treat alike.
struct Matching {
    /// (old id, new id), sorted by name.
    pairs: Vec<(EndpointId, EndpointId)>,
    parties: Vec<Party>,
    groups: Vec<Vec<usize>>,
    only_old: Vec<String>,
    only_new: Vec<String>,
}

impl Matching {
    fn new(old: &Analysis, new: &Analysis) -> Self {
        let names = |a: &Analysis| -> BTreeMap<String, EndpointId> {
            a.cluster()
                .endpoints
                .iter_enumerated()
                .map(|(i, e)| (e.qualified_name(), i))
                .collect()
        };
        let (old_names, new_names) = (names(old), names(new));
        let mut pairs = Vec::new();
        let mut parties = Vec::new();
        for (name, &o) in &old_names {
            if let Some(&n) = new_names.get(name) {
                let endpoint = new.endpoint(n);
                pairs.push((o, n));
                parties.push(Party::Endpoint {
                    namespace: endpoint.namespace.clone(),
                    name: name.clone(),
                    object: endpoint_object(endpoint),
                });
            }
        }
        let mut by_classes: BTreeMap<(ClassId, ClassId), Vec<usize>> = BTreeMap::new();
        for (i, &(o, n)) in pairs.iter().enumerate() {
            by_classes
                .entry((old.class_of(o), new.class_of(n)))
                .or_default()
                .push(i);
        }
        let only = |a: &BTreeMap<String, EndpointId>, b: &BTreeMap<String, EndpointId>| {
            a.keys().filter(|k| !b.contains_key(*k)).cloned().collect()
        };
        Self {
            only_old: only(&old_names, &new_names),
            only_new: only(&new_names, &old_names),
            pairs,
            parties,
            groups: by_classes.into_values().collect(),
        }
    }

    fn old_subject(&self, m: usize) -> Subject {
        Subject::Endpoint(self.pairs[m].0)
    }

    fn new_subject(&self, m: usize) -> Subject {
        Subject::Endpoint(self.pairs[m].1)
    }

    fn party(&self, m: usize) -> Party {
        self.parties[m].clone()
    }
}

/// A changed policy and the matched endpoints it governs per direction, before or after.
/// Changed policies beyond this are blamed by what they select, without the analyses that
/// tell which of them decided a connection.
const MAX_COUNTERFACTUALS: usize = 16;

/// For each changed policy, the new cluster with only that change undone: whether a change
/// decided a connection when several could have. Empty when one policy changed (it is the
/// cause) or more than [`MAX_COUNTERFACTUALS`] (each costs an analysis).
struct Counterfactuals {
    analyses: Vec<Analysis>,
    /// (policy, connection, opened) → decisive; a connection of a group pair is asked once.
    decided: RefCell<FxHashMap<(usize, Subject, Subject, bool), bool>>,
}

impl Counterfactuals {
    fn new(causes: &Causes, old: &Analysis, new: &Analysis) -> Self {
        let analyses = match (2..=MAX_COUNTERFACTUALS).contains(&causes.policies.len()) {
            false => Vec::new(),
            true => causes
                .policies
                .iter()
                .map(|cause| {
                    let mut cluster = new.cluster().clone();
                    let policies = &mut cluster.policies;
                    let before = cause.old_id.map(|id| old.policy(id).clone());
                    match (cause.new_id, before) {
                        (Some(id), Some(before)) => policies[id] = before,
                        (Some(id), None) => {
                            policies.remove(id);
                        }
                        (None, Some(before)) => policies.push(before),
                        (None, None) => {}
                    }
                    Analysis::new(cluster)
                })
                .collect(),
        };
        Self {
            analyses,
            decided: RefCell::default(),
        }
    }

    /// Whether undoing policy change `i` alone takes back a port `ports` opened, or gives
    /// back a port they closed.
    fn decisive(
        &self,
        i: usize,
        (from, to): (Subject, Subject),
        (ports, opened): (&PortSet, bool),
    ) -> bool {
        *self
            .decided
            .borrow_mut()
            .entry((i, from, to, opened))
            .or_insert_with(|| {
                let without = self.analyses[i].allowed_ports(from, to);
                match opened {
                    true => !subtract(ports, &without).is_empty(),
                    false => !ports.intersection(&without).is_empty(),
                }
            })
    }
}

struct PolicyCause {
    change: ObjectChange,
    /// The policy in the old and in the new analysis.
    old_id: Option<PolicyId>,
    new_id: Option<PolicyId>,
    /// Indexed by `Direction` slot: 0 ingress, 1 egress.
    governs: [BTreeSet<usize>; 2],
}

struct Causes {
    policies: Vec<PolicyCause>,
    /// Per matched endpoint: the endpoint itself or its namespace changed.
    endpoint_changes: Vec<Vec<ObjectChange>>,
}

impl Causes {
    fn new(old: &Analysis, new: &Analysis, matching: &Matching) -> Self {
        let by_name = |a: &Analysis| -> BTreeMap<String, PolicyId> {
            a.cluster()
                .policies
                .iter_enumerated()
                .map(|(i, p)| (p.qualified_name(), i))
                .collect()
        };
        let (old_policies, new_policies) = (by_name(old), by_name(new));
        let old_to_match: BTreeMap<EndpointId, usize> = matching
            .pairs
            .iter()
            .enumerate()
            .map(|(m, &(o, _))| (o, m))
            .collect();
        let new_to_match: BTreeMap<EndpointId, usize> = matching
            .pairs
            .iter()
            .enumerate()
            .map(|(m, &(_, n))| (n, m))
            .collect();
        let names: BTreeSet<&String> = old_policies.keys().chain(new_policies.keys()).collect();
        let mut policies = Vec::new();
        for name in names {
            let before = old_policies.get(name).map(|&i| (i, old.policy(i)));
            let after = new_policies.get(name).map(|&i| (i, new.policy(i)));
            let change = match (before, after) {
                (None, Some(_)) => ChangeKind::Added,
                (Some(_), None) => ChangeKind::Removed,
                (Some((_, b)), Some((_, a))) if b != a => ChangeKind::Changed,
                _ => continue,
            };
            let mut governs = [BTreeSet::new(), BTreeSet::new()];
            for (version, analysis, to_match) in
                [(before, old, &old_to_match), (after, new, &new_to_match)]
            {
                let Some((id, policy)) = version else {
                    continue;
                };
                for (slot, direction) in [Direction::Ingress, Direction::Egress]
                    .into_iter()
                    .enumerate()
                {
                    if policy.isolates(direction) {
                        governs[slot].extend(
                            analysis
                                .selected_endpoints(id)
                                .into_iter()
                                .filter_map(|e| to_match.get(&e).copied()),
                        );
                    }
                }
            }
            policies.push(PolicyCause {
                change: ObjectChange {
                    object: format!("NetworkPolicy {name}"),
                    change,
                },
                old_id: before.map(|(id, _)| id),
                new_id: after.map(|(id, _)| id),
                governs,
            });
        }

        let endpoint_changes = matching
            .pairs
            .iter()
            .map(|&(o, n)| {
                let (before, after) = (old.endpoint(o), new.endpoint(n));
                let mut changes = Vec::new();
                if before != after {
                    changes.push(ObjectChange {
                        object: endpoint_object(after),
                        change: ChangeKind::Changed,
                    });
                }
                let labels =
                    |a: &Analysis| a.namespace(&after.namespace).map(|ns| ns.labels.clone());
                if labels(old) != labels(new) {
                    changes.push(ObjectChange {
                        object: format!("Namespace {}", after.namespace),
                        change: ChangeKind::Changed,
                    });
                }
                changes
            })
            .collect();
        Self {
            policies,
            endpoint_changes,
        }
    }

    /// What changed that bears on a connection whose `ports` opened (or closed): policies
    /// that govern its source's egress or its destination's ingress, and the ends themselves.
    /// Of several changed policies, only those whose change alone, undone, would undo part of
    /// this one are named (if none is, each could have done it alone: all are named).
    fn for_connection(
        &self,
        src: Option<usize>,
        dst: Option<usize>,
        undone: &Counterfactuals,
        (from, to): (Subject, Subject),
        (ports, opened): (&PortSet, bool),
    ) -> Vec<Cause> {
        let mut causes = BTreeSet::new();
        let governing: Vec<(usize, Role)> = self
            .policies
            .iter()
            .enumerate()
            .flat_map(|(i, policy)| {
                let egress = src.is_some_and(|s| policy.governs[1].contains(&s));
                let ingress = dst.is_some_and(|d| policy.governs[0].contains(&d));
                [
                    egress.then_some((i, Role::SourceEgress)),
                    ingress.then_some((i, Role::DestinationIngress)),
                ]
            })
            .flatten()
            .collect();
        let distinct: BTreeSet<usize> = governing.iter().map(|&(i, _)| i).collect();
        let kept: BTreeSet<usize> = match undone.analyses.is_empty() || distinct.len() < 2 {
            true => distinct.clone(),
            false => {
                let kept: BTreeSet<usize> = distinct
                    .iter()
                    .copied()
                    .filter(|&i| undone.decisive(i, (from, to), (ports, opened)))
                    .collect();
                if kept.is_empty() { distinct } else { kept }
            }
        };
        for (i, role) in governing {
            if kept.contains(&i) {
                causes.insert(Cause {
                    change: self.policies[i].change.clone(),
                    role,
                });
            }
        }
        for (end, role) in [(src, Role::Source), (dst, Role::Destination)] {
            if let Some(m) = end {
                for change in &self.endpoint_changes[m] {
                    causes.insert(Cause {
                        change: change.clone(),
                        role,
                    });
                }
            }
        }
        causes.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::arb_cluster;
    use proptest::prelude::*;

    fn lines(changes: &[ConnectionChange]) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = changes
            .iter()
            .map(|c| {
                (
                    c.from.label().to_string(),
                    c.to.label().to_string(),
                    c.ports.to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn diff_is_antisymmetric(a in arb_cluster(), b in arb_cluster()) {
            let (a, b) = (Analysis::new(a), Analysis::new(b));
            let forward = diff(&a, &b);
            let backward = diff(&b, &a);
            prop_assert_eq!(lines(&forward.added), lines(&backward.removed));
            prop_assert_eq!(lines(&forward.removed), lines(&backward.added));
        }

        /// Grouping by class must not lose or invent a change: compare with asking every pair.
        #[test]
        fn grouped_pairs_agree_with_every_pair(a in arb_cluster(), b in arb_cluster()) {
            let (old, new) = (Analysis::new(a), Analysis::new(b));
            let result = diff(&old, &new);
            let mut expected = Vec::new();
            for (i, from) in old.cluster().endpoints.iter_enumerated() {
                for (j, to) in old.cluster().endpoints.iter_enumerated() {
                    let (Some(ni), Some(nj)) = (
                        new.find_endpoint(&from.qualified_name()),
                        new.find_endpoint(&to.qualified_name()),
                    ) else { continue };
                    let before = old.allowed_ports(Subject::Endpoint(i), Subject::Endpoint(j));
                    let after = new.allowed_ports(Subject::Endpoint(ni), Subject::Endpoint(nj));
                    let gained = subtract(&after, &before);
                    if !gained.is_empty() {
                        expected.push((from.qualified_name(), to.qualified_name(), gained.to_string()));
                    }
                }
            }
            expected.sort();
            let between_endpoints: Vec<ConnectionChange> = result
                .added
                .into_iter()
                .filter(|c| matches!((&c.from, &c.to), (Party::Endpoint { .. }, Party::Endpoint { .. })))
                .collect();
            let actual = lines(&between_endpoints);
            prop_assert_eq!(actual, expected);
        }
    }
}
