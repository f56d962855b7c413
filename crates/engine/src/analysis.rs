//! The compiled form of a cluster: endpoints grouped into classes that no policy can tell apart,
//! each class indexed by the policies that isolate it, so that a decision never re-evaluates
//! every selector of the cluster.

use crate::model::{
    Cluster, Direction, Endpoint, EndpointKind, IpBlock, Namespace, NamespaceScope, NetworkPolicy,
    Peer, PortRef, PortRule, Rule,
};
use crate::ports::{PortSet, Protocol};
use crate::selector::Labels;
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

pub type PolicyId = usize;
pub type EndpointId = usize;
pub type ClassId = usize;

/// One side of a connection: an endpoint of the cluster, or an address outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    Endpoint(EndpointId),
    External(IpAddr),
}

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

/// A stretch of outside address space that every ipBlock treats alike, so one representative
/// address answers for all of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalRange {
    pub first: IpAddr,
    pub last: IpAddr,
}

impl ExternalRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.first.is_ipv4()
            && (ip_to_u128(self.first)..=ip_to_u128(self.last)).contains(&ip_to_u128(ip))
    }

    /// `a.b.c.d/n` when the range is exactly one prefix, `first-last` otherwise.
    pub fn label(&self) -> String {
        let (first, last) = (ip_to_u128(self.first), ip_to_u128(self.last));
        let bits: u32 = if self.first.is_ipv4() { 32 } else { 128 };
        let host_bits = match (last - first).checked_add(1) {
            None => Some(128),
            Some(size) if size.is_power_of_two() && first % size == 0 => {
                Some(size.trailing_zeros())
            }
            Some(_) => None,
        };
        match host_bits {
            Some(host_bits) => format!("{}/{}", self.first, bits - host_bits),
            None => format!("{}-{}", self.first, self.last),
        }
    }
}

/// Endpoints that share namespace, labels, ports, host networking and the set of ipBlocks their
/// addresses fall in: every policy decision about one holds for all.
#[derive(Debug)]
pub(crate) struct Class {
    pub(crate) representative: EndpointId,
    pub(crate) namespace: usize,
    /// Policies that select the class and isolate it, per direction (ingress, egress).
    pub(crate) isolating: [Vec<PolicyId>; 2],
}

#[derive(Hash, PartialEq, Eq)]
struct ClassKey<'a> {
    namespace: usize,
    labels: &'a Labels,
    ports: &'a [crate::model::ContainerPort],
    host_network: bool,
    /// Per address, which ipBlocks contain it (as [`BlockMembership`] ids).
    ip_blocks: Vec<usize>,
}

/// Which ipBlocks contain an address. Block boundaries cut the address space into stretches
/// whose addresses every block treats alike, so membership is computed once per stretch that
/// holds a pod, and pods are looked up by binary search instead of testing every block.
struct BlockMembership<'a> {
    blocks: Vec<&'a IpBlock>,
    /// Sorted stretch starts, per family (IPv4, IPv6).
    cuts: [Vec<u128>; 2],
    by_stretch: FxHashMap<(bool, usize), usize>,
    signatures: FxHashMap<Vec<usize>, usize>,
}

impl<'a> BlockMembership<'a> {
    fn new(policies: &'a [NetworkPolicy]) -> Self {
        let mut seen = HashSet::new();
        let blocks: Vec<&IpBlock> = all_ip_blocks(policies)
            .filter(|block| seen.insert(*block))
            .collect();
        let mut cuts = [vec![0u128], vec![0u128]];
        for net in blocks
            .iter()
            .flat_map(|b| std::iter::once(&b.cidr).chain(&b.except))
        {
            let family = &mut cuts[usize::from(!matches!(net, ipnet::IpNet::V4(_)))];
            family.push(ip_to_u128(net.network()));
            if let Some(next) = ip_to_u128(net.broadcast()).checked_add(1) {
                family.push(next);
            }
        }
        for family in &mut cuts {
            family.sort_unstable();
            family.dedup();
        }
        Self {
            blocks,
            cuts,
            by_stretch: FxHashMap::default(),
            signatures: FxHashMap::default(),
        }
    }

    fn signature(&mut self, ip: IpAddr) -> usize {
        let v4 = ip.is_ipv4();
        let cuts = &self.cuts[usize::from(!v4)];
        let stretch = cuts.partition_point(|&c| c <= ip_to_u128(ip));
        if let Some(&id) = self.by_stretch.get(&(v4, stretch)) {
            return id;
        }
        let members: Vec<usize> = (0..self.blocks.len())
            .filter(|&b| self.blocks[b].contains(ip))
            .collect();
        let next = self.signatures.len();
        let id = *self.signatures.entry(members).or_insert(next);
        self.by_stretch.insert((v4, stretch), id);
        id
    }
}

pub struct Analysis {
    pub(crate) cluster: Cluster,
    pub(crate) namespace_index: HashMap<String, usize>,
    endpoint_class: Vec<ClassId>,
    pub(crate) classes: Vec<Class>,
    class_members: Vec<Vec<EndpointId>>,
    endpoint_by_name: HashMap<String, EndpointId>,
    endpoint_by_ip: HashMap<IpAddr, EndpointId>,
}

pub(crate) fn direction_slot(direction: Direction) -> usize {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl Analysis {
    pub fn new(mut cluster: Cluster) -> Self {
        add_implicit_namespaces(&mut cluster);
        let namespace_index: HashMap<String, usize> = cluster
            .namespaces
            .iter()
            .enumerate()
            .map(|(i, ns)| (ns.name.clone(), i))
            .collect();

        let mut membership = BlockMembership::new(&cluster.policies);

        let mut class_of_key: FxHashMap<ClassKey<'_>, ClassId> = FxHashMap::default();
        let mut classes = Vec::new();
        let mut endpoint_class = Vec::with_capacity(cluster.endpoints.len());
        for (id, ep) in cluster.endpoints.iter().enumerate() {
            let key = ClassKey {
                namespace: namespace_index[&ep.namespace],
                labels: &ep.labels,
                ports: &ep.ports,
                host_network: ep.host_network,
                ip_blocks: {
                    let mut ids: Vec<usize> =
                        ep.ips.iter().map(|ip| membership.signature(*ip)).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    ids
                },
            };
            let namespace = key.namespace;
            let class = *class_of_key.entry(key).or_insert_with(|| {
                classes.push(Class {
                    representative: id,
                    namespace,
                    isolating: [Vec::new(), Vec::new()],
                });
                classes.len() - 1
            });
            endpoint_class.push(class);
        }
        drop(class_of_key);

        let mut classes_by_namespace: Vec<Vec<ClassId>> = vec![Vec::new(); namespace_index.len()];
        for (id, class) in classes.iter().enumerate() {
            classes_by_namespace[class.namespace].push(id);
        }
        for (policy_id, policy) in cluster.policies.iter().enumerate() {
            let ns = namespace_index[&policy.namespace];
            for &class_id in &classes_by_namespace[ns] {
                let class = &mut classes[class_id];
                let rep = &cluster.endpoints[class.representative];
                if rep.host_network || !policy.pod_selector.matches(&rep.labels) {
                    continue;
                }
                for direction in [Direction::Ingress, Direction::Egress] {
                    if policy.isolates(direction) {
                        class.isolating[direction_slot(direction)].push(policy_id);
                    }
                }
            }
        }

        let endpoint_by_name = cluster
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, ep)| (ep.qualified_name(), i))
            .collect();
        let mut endpoint_by_ip = HashMap::new();
        for (i, ep) in cluster.endpoints.iter().enumerate() {
            for ip in &ep.ips {
                endpoint_by_ip.entry(*ip).or_insert(i);
            }
        }
        let mut class_members = vec![Vec::new(); classes.len()];
        for (id, &class) in endpoint_class.iter().enumerate() {
            class_members[class].push(id);
        }
        Self {
            cluster,
            namespace_index,
            endpoint_class,
            classes,
            class_members,
            endpoint_by_name,
            endpoint_by_ip,
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn endpoint(&self, id: EndpointId) -> &Endpoint {
        &self.cluster.endpoints[id]
    }

    pub fn policy(&self, id: PolicyId) -> &NetworkPolicy {
        &self.cluster.policies[id]
    }

    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespace_index
            .get(name)
            .map(|&i| &self.cluster.namespaces[i])
    }

    /// Finds an endpoint by `ns/pod`, `ns/kind/name`, or `ns/name` of a workload.
    pub fn find_endpoint(&self, name: &str) -> Option<EndpointId> {
        if let Some(&id) = self.endpoint_by_name.get(name) {
            return Some(id);
        }
        let (ns, rest) = name.split_once('/')?;
        if let Some((kind, workload)) = rest.split_once('/') {
            return self
                .endpoint_by_name
                .get(&format!("{ns}/{}/{workload}", kind.to_lowercase()))
                .copied();
        }
        // `ns/name` of a workload, as the matrix shows it, when no other workload there has it.
        let mut workloads = self.cluster.endpoints.iter().enumerate().filter(|(_, e)| {
            matches!(e.kind, EndpointKind::Workload { .. }) && e.namespace == ns && e.name == rest
        });
        match (workloads.next(), workloads.next()) {
            (Some((id, _)), None) => Some(id),
            _ => None,
        }
    }

    /// An address that belongs to an endpoint is that endpoint; any other is outside.
    pub fn subject_for_ip(&self, ip: IpAddr) -> Subject {
        match self.endpoint_by_ip.get(&ip) {
            Some(&id) => Subject::Endpoint(id),
            None => Subject::External(ip),
        }
    }

    pub fn class_of(&self, endpoint: EndpointId) -> ClassId {
        self.endpoint_class[endpoint]
    }

    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// Policies that select the endpoint and isolate it in `direction`; empty: not isolated.
    pub fn isolating_policies(&self, endpoint: EndpointId, direction: Direction) -> &[PolicyId] {
        &self.classes[self.endpoint_class[endpoint]].isolating[direction_slot(direction)]
    }

    /// Endpoints whose pods the policy's podSelector selects.
    pub fn selected_endpoints(&self, policy: PolicyId) -> Vec<EndpointId> {
        let p = &self.cluster.policies[policy];
        let namespace = self.namespace_index[&p.namespace];
        self.endpoints_of_classes(|class| {
            let rep = &self.cluster.endpoints[class.representative];
            class.namespace == namespace && !rep.host_network && p.pod_selector.matches(&rep.labels)
        })
    }

    /// Endpoints a peer of `policy` matches (for explanations; ipBlocks match by address).
    pub fn peer_endpoints(&self, policy: PolicyId, peer: &Peer) -> Vec<EndpointId> {
        let p = &self.cluster.policies[policy];
        self.endpoints_of_classes(|class| {
            self.peer_matches(p, peer, Subject::Endpoint(class.representative))
        })
    }

    /// Members of the classes `keep` accepts, ascending: a class decides for all its members,
    /// so each question is asked once per class, not per endpoint.
    fn endpoints_of_classes(&self, keep: impl Fn(&Class) -> bool) -> Vec<EndpointId> {
        let mut ids: Vec<EndpointId> = self
            .classes
            .iter()
            .zip(&self.class_members)
            .filter(|(class, _)| keep(class))
            .flat_map(|(_, members)| members.iter().copied())
            .collect();
        ids.sort_unstable();
        ids
    }

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
        if self.is_loopback(src, dst) {
            return PortSet::all();
        }
        let egress = self.side_ports(Direction::Egress, src, dst);
        let ingress = self.side_ports(Direction::Ingress, dst, src);
        match (egress, ingress) {
            (None, None) => PortSet::all(),
            (Some(e), None) => e,
            (None, Some(i)) => i,
            (Some(e), Some(i)) => e.intersection(&i),
        }
    }

    /// Outside address ranges that every ipBlock of the cluster treats alike, for the families
    /// the policies mention. One representative address of each decides for the whole range.
    pub fn external_ranges(&self) -> Vec<ExternalRange> {
        let mut membership = BlockMembership::new(&self.cluster.policies);
        let mut out = Vec::new();
        for v4 in [true, false] {
            let max = if v4 { u128::from(u32::MAX) } else { u128::MAX };
            let cuts: Vec<u128> = membership.cuts[usize::from(!v4)]
                .iter()
                .copied()
                .filter(|&c| c <= max)
                .collect();
            // Only the start (0) means no ipBlock of this family: nothing to tell apart.
            if cuts.len() < 2 {
                continue;
            }
            // Adjacent stretches that the same blocks contain are one range.
            let mut current: Option<(u128, usize)> = None;
            for &start in &cuts {
                let signature = membership.signature(u128_to_ip(start, v4));
                match current {
                    Some((_, known)) if known == signature => {}
                    Some((first, _)) => {
                        out.push(range(first, start - 1, v4));
                        current = Some((start, signature));
                    }
                    None => current = Some((start, signature)),
                }
            }
            if let Some((first, _)) = current {
                out.push(range(first, max, v4));
            }
        }
        out
    }

    /// Numeric ports that policy rules name (the first port of a range): what to ask about
    /// destinations that declare no ports. With `ip_block_rules_only`, only rules that have an
    /// ipBlock peer count. `matrix` and the lab both use it, so they list the same rows.
    pub fn mentioned_ports(&self, ip_block_rules_only: bool) -> BTreeSet<(u16, Protocol)> {
        self.cluster
            .policies
            .iter()
            .flat_map(|p| p.ingress.iter().chain(&p.egress))
            .filter(|rule| {
                !ip_block_rules_only
                    || rule
                        .peers
                        .iter()
                        .any(|peer| matches!(peer, Peer::IpBlock(_)))
            })
            .flat_map(|rule| &rule.ports)
            .filter_map(|entry| match entry.port {
                Some(PortRef::Number(port)) => Some((port, entry.protocol)),
                _ => None,
            })
            .collect()
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
        let destination = match direction {
            Direction::Ingress => subject,
            Direction::Egress => other,
        };
        let mut by = Vec::new();
        for &policy_id in isolating {
            let policy = &self.cluster.policies[policy_id];
            for (rule_index, rule) in policy.rules(direction).iter().enumerate() {
                let Some(peer) = self.matching_peer(policy, rule, other) else {
                    continue;
                };
                let Some(port_entry) = self.matching_port(rule, destination, protocol, port) else {
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

    /// `None` when not isolated in this direction; otherwise the ports its rules admit.
    fn side_ports(
        &self,
        direction: Direction,
        subject: Subject,
        other: Subject,
    ) -> Option<PortSet> {
        let isolating = self.isolation(subject, direction)?;
        if isolating.is_empty() {
            return None;
        }
        let destination = match direction {
            Direction::Ingress => subject,
            Direction::Egress => other,
        };
        let mut ports = PortSet::empty();
        for &policy_id in isolating {
            let policy = &self.cluster.policies[policy_id];
            for rule in policy.rules(direction) {
                if self.matching_peer(policy, rule, other).is_some() {
                    ports.union_with(&self.rule_ports(rule, destination));
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

    fn peer_matches(&self, policy: &NetworkPolicy, peer: &Peer, other: Subject) -> bool {
        match (peer, other) {
            (Peer::IpBlock(block), Subject::External(ip)) => block.contains(ip),
            (Peer::IpBlock(block), Subject::Endpoint(id)) => {
                // As the upstream e2e suite expects: an ipBlock matches a pod by its address.
                self.cluster.endpoints[id]
                    .ips
                    .iter()
                    .any(|ip| block.contains(*ip))
            }
            (Peer::Pods { .. }, Subject::External(_)) => false,
            (Peer::Pods { namespaces, pods }, Subject::Endpoint(id)) => {
                let ep = &self.cluster.endpoints[id];
                if ep.host_network {
                    return false;
                }
                let namespace_ok = match namespaces {
                    NamespaceScope::PolicyNamespace => ep.namespace == policy.namespace,
                    NamespaceScope::Selected(selector) => {
                        selector.selects_everything()
                            || selector.matches(
                                &self.cluster.namespaces[self.namespace_index[&ep.namespace]]
                                    .labels,
                            )
                    }
                };
                namespace_ok && pods.matches(&ep.labels)
            }
        }
    }

    /// `Some(None)`: the rule admits every port; `Some(Some(i))`: port entry `i` matches.
    fn matching_port(
        &self,
        rule: &Rule,
        destination: Subject,
        protocol: Protocol,
        port: u16,
    ) -> Option<Option<usize>> {
        if rule.ports.is_empty() {
            return Some(None);
        }
        rule.ports
            .iter()
            .position(|entry| {
                self.port_entry_set(entry, destination)
                    .contains(protocol, port)
            })
            .map(Some)
    }

    pub(crate) fn rule_ports(&self, rule: &Rule, destination: Subject) -> PortSet {
        if rule.ports.is_empty() {
            return PortSet::all();
        }
        let mut set = PortSet::empty();
        for entry in &rule.ports {
            set.union_with(&self.port_entry_set(entry, destination));
        }
        set
    }

    pub(crate) fn port_entry_set(&self, entry: &PortRule, destination: Subject) -> PortSet {
        match &entry.port {
            None => PortSet::all_of(entry.protocol),
            Some(PortRef::Number(first)) => {
                PortSet::range(entry.protocol, *first, entry.end_port.unwrap_or(*first))
            }
            Some(PortRef::Named(name)) => match destination {
                // Named ports resolve on the destination pod; outside addresses declare none.
                Subject::External(_) => PortSet::empty(),
                Subject::Endpoint(id) => self.cluster.endpoints[id]
                    .named_port(name, entry.protocol)
                    .map_or_else(PortSet::empty, |p| PortSet::range(entry.protocol, p, p)),
            },
        }
    }
}

fn add_implicit_namespaces(cluster: &mut Cluster) {
    let mut known: BTreeSet<String> = cluster.namespaces.iter().map(|n| n.name.clone()).collect();
    let referenced: Vec<String> = cluster
        .endpoints
        .iter()
        .map(|e| e.namespace.clone())
        .chain(cluster.policies.iter().map(|p| p.namespace.clone()))
        .collect();
    for name in referenced {
        if known.insert(name.clone()) {
            cluster.namespaces.push(Namespace::new(name, Labels::new()));
        }
    }
}

fn all_ip_blocks(policies: &[NetworkPolicy]) -> impl Iterator<Item = &IpBlock> {
    policies
        .iter()
        .flat_map(|p| p.ingress.iter().chain(&p.egress))
        .flat_map(|r| &r.peers)
        .filter_map(|peer| match peer {
            Peer::IpBlock(block) => Some(block),
            Peer::Pods { .. } => None,
        })
}

/// An address as a number, for interval arithmetic over one family.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The inverse of [`ip_to_u128`]; with `v4`, only the low 32 bits are meaningful.
pub fn u128_to_ip(value: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(std::net::Ipv4Addr::from(value as u32))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(value))
    }
}

fn range(first: u128, last: u128, v4: bool) -> ExternalRange {
    ExternalRange {
        first: u128_to_ip(first, v4),
        last: u128_to_ip(last, v4),
    }
}
