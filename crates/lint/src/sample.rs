//! Ways to ask the engine about every connection that matters without asking about every address
//! and every endpoint pair: outside address ranges that all policies treat alike, and endpoint
//! classes that no policy can tell apart.

use palisade_engine::{
    Analysis, ClassId, Connectivity, DestinationKey, Endpoint, EndpointId, EndpointKind, IpRange,
    PortSet, Protocol, SourceKey, Subject, Vertex, ip_to_u128, ranges_from_starts,
};
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::hash::Hash;
use std::net::IpAddr;

/// [`Analysis::allowed_ports`] for many pairs at once: answered from the engine's whole-cluster
/// tables, which cost one build and then a lookup per pair, instead of evaluating every rule
/// of both sides for every pair.
pub struct Allowed<'a> {
    analysis: &'a Analysis,
    connectivity: Connectivity,
}

impl<'a> Allowed<'a> {
    pub fn new(analysis: &'a Analysis) -> Self {
        Self {
            analysis,
            connectivity: analysis.connectivity(),
        }
    }

    /// Exactly what `allowed_ports(src, dst)` answers.
    pub fn ports(&self, src: Subject, dst: Subject) -> Cow<'_, PortSet> {
        // The tables know classes, not endpoints: a pod with itself is loopback only here.
        if self.analysis.is_loopback(src, dst) {
            return Cow::Owned(PortSet::all());
        }
        match (self.vertex(src), self.vertex(dst)) {
            (Some(src), Some(dst)) => Cow::Borrowed(self.connectivity.allowed(src, dst)),
            // An address of a family no ipBlock mentions has no node: ask the pair itself.
            _ => Cow::Owned(self.analysis.allowed_ports(src, dst)),
        }
    }

    pub fn analysis(&self) -> &'a Analysis {
        self.analysis
    }

    pub fn connectivity(&self) -> &Connectivity {
        &self.connectivity
    }

    /// A class's key as the source or the destination of connections: classes with equal keys
    /// answer alike on that end (see [`Connectivity::source_key`]).
    pub fn end(&self, class: ClassId, as_source: bool) -> End {
        let vertex = Vertex::Class(class);
        if as_source {
            End::Source(self.connectivity.source_key(vertex))
        } else {
            End::Destination(self.connectivity.destination_key(vertex))
        }
    }

    /// What each side of a connection admits on its own, as in [`Connectivity::sides_between`];
    /// `None` for an address of a family no ipBlock mentions.
    pub fn sides(&self, src: Subject, dst: Subject) -> Option<(&PortSet, &PortSet)> {
        let (src, dst) = (self.vertex(src)?, self.vertex(dst)?);
        let c = &self.connectivity;
        let (egress, ingress) = c.sides_between(c.source_key(src), c.destination_key(dst));
        Some((c.port_set(egress), c.port_set(ingress)))
    }

    fn vertex(&self, subject: Subject) -> Option<Vertex> {
        match subject {
            Subject::Endpoint(e) => Some(Vertex::Class(self.analysis.class_of(e))),
            Subject::External(ip) => self.connectivity.external_vertex(ip),
        }
    }
}

/// A key from [`Allowed::end`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    Source(SourceKey),
    Destination(DestinationKey),
}

/// The coarsest split of outside address space that every given analysis treats range by range
/// alike. IPv4 is always covered (without ipBlocks all of it behaves as one range); IPv6 only
/// when some address or ipBlock is IPv6.
pub fn outside_ranges(analyses: &[&Analysis]) -> Vec<IpRange> {
    let per_analysis: Vec<Vec<IpRange>> = analyses.iter().map(|a| a.external_ranges()).collect();
    let any_v6_address = analyses.iter().any(|a| {
        a.cluster()
            .endpoints
            .iter()
            .flat_map(|e| &e.ips)
            .any(IpAddr::is_ipv6)
    });
    let mut out = Vec::new();
    for v4 in [true, false] {
        let mut starts: BTreeSet<u128> = per_analysis
            .iter()
            .flatten()
            .filter(|r| r.first.is_ipv4() == v4)
            .map(|r| ip_to_u128(r.first))
            .collect();
        if !v4 && starts.is_empty() && !any_v6_address {
            continue;
        }
        starts.insert(0);
        let starts: Vec<u128> = starts.into_iter().collect();
        out.extend(ranges_from_starts(&starts, v4));
    }
    out
}

/// Merges adjacent ranges (in the order `outside_ranges` returns them) whose key is equal, so
/// that a report names `0.0.0.0/0` rather than the pieces some unrelated ipBlock cut it into.
pub fn merge_adjacent<K: PartialEq>(items: Vec<(IpRange, K)>) -> Vec<(IpRange, K)> {
    let mut out: Vec<(IpRange, K)> = Vec::new();
    for (range, key) in items {
        match out.last_mut() {
            Some((prev, prev_key)) if *prev_key == key && prev.precedes(&range) => {
                prev.last = range.last;
            }
            _ => out.push((range, key)),
        }
    }
    out
}

/// Endpoint pairs that stand for every pair between the two classes: one pair for distinct
/// classes; within a class, a member with itself (loopback or another replica) and with another
/// member. An iterator, not a list: callers ask this for millions of class pairs.
pub fn representative_pairs(
    a: &[EndpointId],
    b: &[EndpointId],
) -> impl Iterator<Item = (EndpointId, EndpointId)> {
    let pairs = match (a.first(), b.first()) {
        (Some(&x), Some(&y)) if x != y => [Some((x, y)), None],
        (Some(&x), Some(_)) => [Some((x, x)), a.get(1).map(|&other| (x, other))],
        _ => [None, None],
    };
    pairs.into_iter().flatten()
}

/// `a` without the ports of `b`.
pub fn subtract(a: &PortSet, b: &PortSet) -> PortSet {
    let mut out = PortSet::empty();
    for proto in Protocol::ALL {
        let cuts = b.ranges(proto);
        for &(lo, hi) in a.ranges(proto) {
            let mut next = u32::from(lo);
            for &(clo, chi) in cuts {
                if u32::from(chi) < next || u32::from(clo) > u32::from(hi) {
                    continue;
                }
                if u32::from(clo) > next {
                    out.insert_range(proto, next as u16, clo - 1);
                }
                next = u32::from(chi) + 1;
            }
            if next <= u32::from(hi) {
                out.insert_range(proto, next as u16, hi);
            }
        }
    }
    out
}

/// `Pod ns/name` or `Deployment ns/name`: how findings and diffs name an endpoint.
pub fn endpoint_object(endpoint: &Endpoint) -> String {
    match &endpoint.kind {
        EndpointKind::Pod => format!("Pod {}/{}", endpoint.namespace, endpoint.name),
        EndpointKind::Workload { kind } => {
            format!("{kind} {}/{}", endpoint.namespace, endpoint.name)
        }
    }
}

/// Items grouped by a key, such as classes by their rows and columns in the engine's tables
/// (where every member of a group answers alike): the groups in order of first appearance,
/// each in the order given, and each item's group.
pub struct Groups<T> {
    pub members: Vec<Vec<T>>,
    pub of: FxHashMap<T, usize>,
}

impl<T: Copy + Eq + Hash> Groups<T> {
    pub fn by<K: Hash + Eq>(items: impl IntoIterator<Item = T>, key: impl Fn(T) -> K) -> Self {
        let mut index: FxHashMap<K, usize> = FxHashMap::default();
        let mut groups = Self {
            members: Vec::new(),
            of: FxHashMap::default(),
        };
        for item in items {
            let next = index.len();
            let group = *index.entry(key(item)).or_insert(next);
            if group == groups.members.len() {
                groups.members.push(Vec::new());
            }
            groups.members[group].push(item);
            groups.of.insert(item, group);
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::arb_cluster;
    use proptest::prelude::*;

    fn arb_set() -> impl Strategy<Value = PortSet> {
        proptest::collection::vec((0usize..3, 1u16..200, 0u16..20), 0..6).prop_map(|items| {
            let mut set = PortSet::empty();
            for (p, lo, len) in items {
                set.insert_range(Protocol::ALL[p], lo, lo + len);
            }
            set
        })
    }

    proptest! {
        /// The tables must answer every pair as the pairwise evaluation does: endpoints with
        /// themselves, with siblings, and with every outside range (including IPv6, which the
        /// generated ipBlocks never mention).
        #[test]
        fn tabulated_ports_agree_with_pairwise(cluster in arb_cluster()) {
            let analysis = Analysis::new(cluster);
            let allowed = Allowed::new(&analysis);
            let mut subjects: Vec<Subject> =
                analysis.cluster().endpoints.keys().map(Subject::Endpoint).collect();
            subjects.extend(outside_ranges(&[&analysis]).iter().map(|r| Subject::External(r.first)));
            subjects.push(Subject::External("2001:db8::1".parse().unwrap()));
            for &src in &subjects {
                for &dst in &subjects {
                    let tabulated = allowed.ports(src, dst).into_owned();
                    prop_assert_eq!(
                        tabulated,
                        analysis.allowed_ports(src, dst),
                        "{:?} -> {:?}", src, dst
                    );
                }
            }
        }

        #[test]
        fn subtract_agrees_with_membership(a in arb_set(), b in arb_set(), port in 1u16..230, p in 0usize..3) {
            let proto = Protocol::ALL[p];
            prop_assert_eq!(
                subtract(&a, &b).contains(proto, port),
                a.contains(proto, port) && !b.contains(proto, port)
            );
        }
    }

    #[test]
    fn subtract_handles_the_edges_of_the_port_space() {
        let all = PortSet::all_of(Protocol::Tcp);
        let hole = subtract(&all, &PortSet::range(Protocol::Tcp, 1, 1));
        assert_eq!(hole.ranges(Protocol::Tcp), &[(2, 65535)]);
        let top = subtract(&all, &PortSet::range(Protocol::Tcp, 65535, 65535));
        assert_eq!(top.ranges(Protocol::Tcp), &[(1, 65534)]);
    }

    #[test]
    fn merge_joins_only_adjacent_equal_ranges() {
        let r = |a: [u8; 4], b: [u8; 4]| IpRange {
            first: IpAddr::from(a),
            last: IpAddr::from(b),
        };
        let merged = merge_adjacent(vec![
            (r([0, 0, 0, 0], [9, 255, 255, 255]), 1),
            (r([10, 0, 0, 0], [10, 255, 255, 255]), 1),
            (r([11, 0, 0, 0], [255, 255, 255, 255]), 2),
        ]);
        let labels: Vec<(String, i32)> = merged.into_iter().map(|(r, k)| (r.label(), k)).collect();
        assert_eq!(
            labels,
            vec![
                ("0.0.0.0-10.255.255.255".to_string(), 1),
                ("11.0.0.0-255.255.255.255".to_string(), 2)
            ]
        );
    }
}
