//! The connectivity of a whole cluster at once, for matrices of large clusters.
//!
//! A connection needs the source's egress and the destination's ingress, so each direction is
//! computed as its own table and the two are intersected per pair:
//! - rows ("profiles") group the subjects of a direction that are isolated by the same policies
//!   (and, where named ports matter, declare the same ports): they have the same rules;
//! - columns ("groups") partition the other ends by membership in the rules' peer sets: no rule of
//!   this direction can tell two members of one group apart.
//!
//! Cells hold interned port sets, so a pair's answer is two table lookups and one memoised
//! intersection, and the work grows with profiles × groups rather than with pods².

use crate::addresses::IpRange;
use crate::analysis::{Analysis, Subject};
use crate::classes::direction_slot;
use crate::ids::{ClassId, PolicyId};
use crate::model::{ContainerPort, Direction, Peer, Rule};
use crate::ports::PortSet;
use crate::rules;
use fixedbitset::FixedBitSet;
use rustc_hash::FxHashMap;
use typed_index_collections::TiVec;

/// One end of a connection at the granularity of [`Connectivity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vertex {
    Class(ClassId),
    /// Index into [`Connectivity::externals`].
    External(usize),
}

pub type PortSetId = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey {
    egress_profile: u32,
    ingress_group: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestinationKey {
    ingress_profile: u32,
    egress_group: u32,
}

const EMPTY: PortSetId = 0;
const ALL: PortSetId = 1;

/// Densely tabulated intersections are kept up to this many cells; beyond, computed on demand.
const MAX_DENSE_INTERSECTIONS: usize = 1 << 24;

pub struct Connectivity {
    port_sets: Vec<PortSet>,
    externals: Vec<IpRange>,
    classes: usize,
    egress: SideTable,
    ingress: SideTable,
    intersections: Intersections,
}

/// Egress cell ∩ ingress cell, by id: a dense table over the distinct ids each side uses, or
/// (for pathological inputs with thousands of distinct port sets) a map of the pairs that occur.
enum Intersections {
    Dense {
        egress_local: Vec<u32>,
        ingress_local: Vec<u32>,
        ingress_distinct: usize,
        table: Vec<PortSetId>,
    },
    Sparse(FxHashMap<(PortSetId, PortSetId), PortSetId>),
}

struct SideTable {
    /// Per vertex: its row when it is this direction's subject.
    profile: Vec<u32>,
    /// Per vertex: its column when it is the other end.
    group: Vec<u32>,
    groups: usize,
    cells: Vec<PortSetId>,
}

impl SideTable {
    fn cell(&self, subject: usize, other: usize) -> PortSetId {
        self.cells[self.profile[subject] as usize * self.groups + self.group[other] as usize]
    }
}

impl Connectivity {
    pub fn externals(&self) -> &[IpRange] {
        &self.externals
    }

    /// The vertex an outside address falls in; `None` when no ipBlock mentions its family.
    pub fn external_vertex(&self, ip: std::net::IpAddr) -> Option<Vertex> {
        self.externals
            .iter()
            .position(|r| r.contains(ip))
            .map(Vertex::External)
    }

    /// Every (protocol, port) on which `src` may open a connection to `dst`. For two endpoints
    /// of one class this is pod-to-sibling traffic; a pod to itself is loopback, which
    /// [`Analysis::is_loopback`] tells.
    pub fn allowed(&self, src: Vertex, dst: Vertex) -> &PortSet {
        &self.port_sets[self.allowed_id(src, dst) as usize]
    }

    /// [`Self::allowed`] as an id: equal ids mean equal port sets, so callers can count by id.
    pub fn allowed_id(&self, src: Vertex, dst: Vertex) -> PortSetId {
        self.allowed_between(self.source_key(src), self.destination_key(dst))
    }

    /// Nodes with equal source keys reach every destination alike.
    pub fn source_key(&self, vertex: Vertex) -> SourceKey {
        let i = self.index(vertex);
        SourceKey {
            egress_profile: self.egress.profile[i],
            ingress_group: self.ingress.group[i],
        }
    }

    /// Nodes with equal destination keys are reached alike from every source.
    pub fn destination_key(&self, vertex: Vertex) -> DestinationKey {
        let i = self.index(vertex);
        DestinationKey {
            ingress_profile: self.ingress.profile[i],
            egress_group: self.egress.group[i],
        }
    }

    /// What any source of key `src` may open to any destination of key `dst`: iterating keys
    /// instead of vertices is how whole-cluster questions stay fast.
    pub fn allowed_between(&self, src: SourceKey, dst: DestinationKey) -> PortSetId {
        let (egress, ingress) = self.sides_between(src, dst);
        match &self.intersections {
            Intersections::Dense {
                egress_local,
                ingress_local,
                ingress_distinct,
                table,
            } => {
                let row = egress_local[egress as usize] as usize;
                table[row * ingress_distinct + ingress_local[ingress as usize] as usize]
            }
            Intersections::Sparse(map) => map[&(egress, ingress)],
        }
    }

    /// The two sides [`Self::allowed_between`] intersects: what the source's egress admits
    /// towards the destination and what the destination's ingress admits from the source, each
    /// every port when that side is not isolated.
    pub fn sides_between(&self, src: SourceKey, dst: DestinationKey) -> (PortSetId, PortSetId) {
        let egress = self.egress.cells
            [src.egress_profile as usize * self.egress.groups + dst.egress_group as usize];
        let ingress = self.ingress.cells
            [dst.ingress_profile as usize * self.ingress.groups + src.ingress_group as usize];
        (egress, ingress)
    }

    pub fn port_set_count(&self) -> usize {
        self.port_sets.len()
    }

    pub fn port_set(&self, id: PortSetId) -> &PortSet {
        &self.port_sets[id as usize]
    }

    /// How many distinct rows and columns the two directions' tables have: the size of the
    /// problem after compression, for benchmarks and progress.
    pub fn table_sizes(&self) -> [(usize, usize); 2] {
        let rows = |t: &SideTable| t.cells.len() / t.groups.max(1);
        [
            (rows(&self.egress), self.egress.groups),
            (rows(&self.ingress), self.ingress.groups),
        ]
    }

    fn index(&self, vertex: Vertex) -> usize {
        match vertex {
            Vertex::Class(c) => c.index(),
            Vertex::External(x) => self.classes + x,
        }
    }
}

/// Interns port sets and memoises unions of interned sets.
struct PortSets {
    sets: Vec<PortSet>,
    ids: FxHashMap<PortSet, PortSetId>,
    unions: FxHashMap<(PortSetId, PortSetId), PortSetId>,
}

impl PortSets {
    fn new() -> Self {
        let mut this = Self {
            sets: Vec::new(),
            ids: FxHashMap::default(),
            unions: FxHashMap::default(),
        };
        this.intern(PortSet::empty());
        this.intern(PortSet::all());
        this
    }

    fn intern(&mut self, set: PortSet) -> PortSetId {
        if let Some(&id) = self.ids.get(&set) {
            return id;
        }
        let id = self.sets.len() as PortSetId;
        self.sets.push(set.clone());
        self.ids.insert(set, id);
        id
    }

    fn union(&mut self, a: PortSetId, b: PortSetId) -> PortSetId {
        if a == b || b == EMPTY || a == ALL {
            return a;
        }
        if a == EMPTY || b == ALL {
            return b;
        }
        let key = (a.min(b), a.max(b));
        if let Some(&id) = self.unions.get(&key) {
            return id;
        }
        let mut set = self.sets[a as usize].clone();
        set.union_with(&self.sets[b as usize]);
        let id = self.intern(set);
        self.unions.insert(key, id);
        id
    }
}

/// A rule of one direction, compiled: its peer set and its ports.
struct CompiledRule<'a> {
    peer_set: usize,
    rule: &'a Rule,
    /// `None` when the ports depend on the destination (named ports).
    constant_ports: Option<PortSetId>,
}

/// Peer sets over vertices (classes, then external ranges), memoised by value.
struct PeerSets<'a> {
    analysis: &'a Analysis,
    externals: &'a [IpRange],
    vertices: usize,
    sets: Vec<FixedBitSet>,
    by_rule_peers: FxHashMap<(Option<usize>, &'a [Peer]), usize>,
    by_peer: FxHashMap<(Option<usize>, &'a Peer), FixedBitSet>,
}

impl<'a> PeerSets<'a> {
    fn new(analysis: &'a Analysis, externals: &'a [IpRange]) -> Self {
        Self {
            analysis,
            externals,
            vertices: analysis.classes.len() + externals.len(),
            sets: Vec::new(),
            by_rule_peers: FxHashMap::default(),
            by_peer: FxHashMap::default(),
        }
    }

    /// The set of vertices a rule's peers match; `policy_namespace` matters only for peers without a
    /// namespaceSelector, so it is part of the key only then.
    fn rule_set(&mut self, policy_namespace: usize, peers: &'a [Peer]) -> usize {
        let scoped = peers.iter().any(rules::depends_on_policy_namespace);
        let key = (scoped.then_some(policy_namespace), peers);
        if let Some(&id) = self.by_rule_peers.get(&key) {
            return id;
        }
        let mut set = FixedBitSet::with_capacity(self.vertices);
        if peers.is_empty() {
            set.insert_range(..);
        }
        for peer in peers {
            set.union_with(self.peer_set(policy_namespace, peer));
        }
        self.sets.push(set);
        let id = self.sets.len() - 1;
        self.by_rule_peers.insert(key, id);
        id
    }

    fn peer_set(&mut self, policy_namespace: usize, peer: &'a Peer) -> &FixedBitSet {
        let scoped = rules::depends_on_policy_namespace(peer);
        let key = (scoped.then_some(policy_namespace), peer);
        if !self.by_peer.contains_key(&key) {
            let set = self.compute_peer_set(policy_namespace, peer);
            self.by_peer.insert(key, set);
        }
        &self.by_peer[&key]
    }

    /// Classes as the analysis finds them for a peer ([`Analysis::block_classes`],
    /// [`Analysis::pod_peer_classes`]), then the outside ranges an ipBlock matches.
    fn compute_peer_set(&self, policy_namespace: usize, peer: &Peer) -> FixedBitSet {
        let mut set = FixedBitSet::with_capacity(self.vertices);
        let analysis = self.analysis;
        let policy_namespace_name = &analysis.cluster.namespaces[policy_namespace].name;
        match peer {
            Peer::IpBlock(block) => {
                for class in analysis.block_classes(block) {
                    set.insert(class.index());
                }
                let offset = analysis.classes.len();
                for (i, range) in self.externals.iter().enumerate() {
                    if rules::peer_matches_outside(peer, range.first) {
                        set.insert(offset + i);
                    }
                }
            }
            Peer::Pods { namespaces, pods } => {
                for class in analysis.pod_peer_classes(policy_namespace_name, namespaces, pods) {
                    set.insert(class.index());
                }
            }
        }
        set
    }
}

impl Analysis {
    /// The connectivity of every pair of classes and outside ranges (see [`Connectivity`]).
    pub fn connectivity(&self) -> Connectivity {
        self.connectivity_with_dense_limit(MAX_DENSE_INTERSECTIONS)
    }

    /// [`Self::connectivity`], tabulating intersections densely up to `dense_limit` cells (a
    /// parameter so that tests can force the sparse path).
    pub(crate) fn connectivity_with_dense_limit(&self, dense_limit: usize) -> Connectivity {
        let externals = self.external_ranges();
        let mut port_sets = PortSets::new();
        let (egress, ingress) = {
            let mut peers = PeerSets::new(self, &externals);
            let egress = self.side_table(Direction::Egress, &mut peers, &mut port_sets);
            let ingress = self.side_table(Direction::Ingress, &mut peers, &mut port_sets);
            (egress, ingress)
        };
        let intersections = intersections(&egress, &ingress, &mut port_sets, dense_limit);
        Connectivity {
            port_sets: port_sets.sets,
            classes: self.classes.len(),
            externals,
            egress,
            ingress,
            intersections,
        }
    }

    fn side_table<'a>(
        &'a self,
        direction: Direction,
        peers: &mut PeerSets<'a>,
        port_sets: &mut PortSets,
    ) -> SideTable {
        let slot = direction_slot(direction);
        let vertices = peers.vertices;
        let classes = self.classes.len();

        // Compile every rule of every policy that isolates in this direction, once.
        let mut compiled: TiVec<PolicyId, Vec<usize>> =
            vec![Vec::new(); self.cluster.policies.len()].into();
        let mut rules: Vec<CompiledRule<'a>> = Vec::new();
        // Per policy: whether a rule of this direction names a port (so ports depend on the
        // destination pod).
        let mut names_ports: TiVec<PolicyId, bool> =
            vec![false; self.cluster.policies.len()].into();
        for (policy_id, policy) in self.cluster.policies.iter_enumerated() {
            if !policy.isolates(direction) {
                continue;
            }
            let ns = self.namespace_index[&policy.namespace];
            for rule in policy.rules(direction) {
                let depends_on_destination = rules::depends_on_destination(rule);
                names_ports[policy_id] |= depends_on_destination;
                let constant_ports = (!depends_on_destination)
                    .then(|| port_sets.intern(rules::rule_ports(rule, None)));
                compiled[policy_id].push(rules.len());
                rules.push(CompiledRule {
                    peer_set: peers.rule_set(ns, &rule.peers),
                    rule,
                    constant_ports,
                });
            }
        }

        // Columns: partition the other ends by membership in every peer set used here.
        let mut group: Vec<u32> = vec![0; vertices];
        let mut used_sets: Vec<usize> = rules.iter().map(|r| r.peer_set).collect();
        used_sets.sort_unstable();
        used_sets.dedup();
        let mut group_count = 1;
        let mut split_into: Vec<u32> = Vec::new();
        for &set in &used_sets {
            // Every group that has members inside the set gets a fresh id for those members.
            split_into.clear();
            split_into.resize(group_count, u32::MAX);
            for vertex in peers.sets[set].ones() {
                let old = group[vertex] as usize;
                if split_into[old] == u32::MAX {
                    split_into[old] = group_count as u32;
                    group_count += 1;
                }
                group[vertex] = split_into[old];
            }
        }
        // Egress named ports resolve on the other end: inside the peer sets of such rules,
        // members declaring different ports must not share a column.
        if direction == Direction::Egress {
            let mut named_sets: Vec<usize> = rules
                .iter()
                .filter(|r| r.constant_ports.is_none())
                .map(|r| r.peer_set)
                .collect();
            named_sets.sort_unstable();
            named_sets.dedup();
            for set in named_sets {
                let mut split: FxHashMap<(u32, &[ContainerPort]), u32> = FxHashMap::default();
                for vertex in peers.sets[set].ones() {
                    let declared: &[ContainerPort] = match vertex.checked_sub(classes) {
                        None => {
                            let class = &self.classes[ClassId::from(vertex)];
                            &self.cluster.endpoints[class.representative].ports
                        }
                        Some(_) => &[],
                    };
                    group[vertex] = *split.entry((group[vertex], declared)).or_insert_with(|| {
                        group_count += 1;
                        group_count as u32 - 1
                    });
                }
            }
        }
        let (group, groups, representative) = compact(group);

        // Groups inside each used set: where a rule's ports land.
        let mut groups_in: FxHashMap<usize, Vec<u32>> = FxHashMap::default();
        let mut seen = vec![usize::MAX; groups];
        for &set in &used_sets {
            let mut list = Vec::new();
            for vertex in peers.sets[set].ones() {
                let g = group[vertex] as usize;
                if seen[g] != set {
                    seen[g] = set;
                    list.push(g as u32);
                }
            }
            groups_in.insert(set, list);
        }

        // Rows: subjects with the same isolating policies (and, for ingress with named ports,
        // the same declared ports) share a row. Row 0 is "not isolated": every port.
        let mut profile = vec![0u32; vertices];
        let mut rows: FxHashMap<(&[PolicyId], &[ContainerPort]), u32> = FxHashMap::default();
        let mut row_subjects: Vec<ClassId> = Vec::new();
        for (class_id, class) in self.classes.iter_enumerated() {
            let isolating = &class.isolating[slot][..];
            if isolating.is_empty() {
                continue;
            }
            let ports: &[ContainerPort] =
                if direction == Direction::Ingress && isolating.iter().any(|&p| names_ports[p]) {
                    &self.cluster.endpoints[class.representative].ports
                } else {
                    &[]
                };
            let next = rows.len() as u32 + 1;
            profile[class_id.index()] = *rows.entry((isolating, ports)).or_insert_with(|| {
                row_subjects.push(class_id);
                next
            });
        }

        let mut named_rule_ports: FxHashMap<(usize, &[ContainerPort]), PortSetId> =
            FxHashMap::default();
        let mut cells = vec![ALL; groups];
        for &subject in &row_subjects {
            let start = cells.len();
            cells.resize(start + groups, EMPTY);
            let row = &mut cells[start..];
            for &policy_id in &self.classes[subject].isolating[slot] {
                for &rule_index in &compiled[policy_id] {
                    let rule = &rules[rule_index];
                    for &g in &groups_in[&rule.peer_set] {
                        let ports = rule.constant_ports.unwrap_or_else(|| {
                            let vertex = rules::destination(
                                direction,
                                subject.index(),
                                representative[g as usize],
                            );
                            let destination =
                                self.endpoint_of(self.vertex_subject(vertex, peers.externals));
                            // Named ports resolve alike on destinations declaring alike.
                            let declared: &[ContainerPort] =
                                destination.map_or(&[], |ep| &ep.ports);
                            *named_rule_ports
                                .entry((rule_index, declared))
                                .or_insert_with(|| {
                                    port_sets.intern(rules::rule_ports(rule.rule, destination))
                                })
                        });
                        row[g as usize] = port_sets.union(row[g as usize], ports);
                    }
                }
            }
        }
        SideTable {
            profile,
            group,
            groups,
            cells,
        }
    }

    fn vertex_subject(&self, vertex: usize, externals: &[IpRange]) -> Subject {
        match vertex.checked_sub(self.classes.len()) {
            None => Subject::Endpoint(self.classes[ClassId::from(vertex)].representative),
            Some(x) => Subject::External(externals[x].first),
        }
    }
}

fn intersections(
    egress: &SideTable,
    ingress: &SideTable,
    port_sets: &mut PortSets,
    dense_limit: usize,
) -> Intersections {
    let local_ids = |cells: &[PortSetId]| {
        let mut local = vec![u32::MAX; port_sets.sets.len()];
        let mut distinct = Vec::new();
        for &id in cells {
            if local[id as usize] == u32::MAX {
                local[id as usize] = distinct.len() as u32;
                distinct.push(id);
            }
        }
        (local, distinct)
    };
    let (egress_local, egress_ids) = local_ids(&egress.cells);
    let (ingress_local, ingress_ids) = local_ids(&ingress.cells);
    let mut intersect = |e: PortSetId, i: PortSetId| {
        let set = port_sets.sets[e as usize].intersection(&port_sets.sets[i as usize]);
        port_sets.intern(set)
    };
    if egress_ids.len() * ingress_ids.len() <= dense_limit {
        let mut table = Vec::with_capacity(egress_ids.len() * ingress_ids.len());
        for &e in &egress_ids {
            for &i in &ingress_ids {
                table.push(intersect(e, i));
            }
        }
        return Intersections::Dense {
            egress_local,
            ingress_local,
            ingress_distinct: ingress_ids.len(),
            table,
        };
    }
    let vertices = egress.profile.len();
    let mut map = FxHashMap::default();
    for s in 0..vertices {
        for d in 0..vertices {
            let key = (egress.cell(s, d), ingress.cell(d, s));
            map.entry(key).or_insert_with(|| intersect(key.0, key.1));
        }
    }
    Intersections::Sparse(map)
}

/// Renumbers group ids densely; returns (group per vertex, group count, a vertex of each group).
fn compact(mut group: Vec<u32>) -> (Vec<u32>, usize, Vec<usize>) {
    let mut renumber: FxHashMap<u32, u32> = FxHashMap::default();
    let mut representative = Vec::new();
    for (vertex, g) in group.iter_mut().enumerate() {
        let next = renumber.len() as u32;
        let new = *renumber.entry(*g).or_insert_with(|| {
            representative.push(vertex);
            next
        });
        *g = new;
    }
    let groups = representative.len().max(1);
    (group, groups, representative)
}

#[cfg(test)]
mod tests;
