//! Endpoint classes: endpoints that no policy can tell apart (same namespace, labels, declared
//! ports, host networking and ipBlock membership of their addresses), each with the policies
//! that isolate it; and ipBlock membership itself, which also cuts outside address space into
//! the ranges every ipBlock treats alike.

use crate::addresses::{IpRange, family_max, ip_to_u128, net_numbers, u128_to_ip};
use crate::analysis::Analysis;
use crate::ids::{ClassId, EndpointId, PolicyId};
use crate::model::{Cluster, ContainerPort, Direction, IpBlock, NetworkPolicy, Peer};
use crate::rules;
use crate::selector::Labels;
use rustc_hash::FxHashMap;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use typed_index_collections::{TiSlice, TiVec};

/// Endpoints that share namespace, labels, ports, host networking and the set of ipBlocks their
/// addresses fall in: every policy decision about one holds for all.
#[derive(Debug)]
pub(crate) struct Class {
    pub(crate) representative: EndpointId,
    pub(crate) namespace: usize,
    /// Policies that select the class and isolate it, per direction (see [`direction_slot`]).
    pub(crate) isolating: [Vec<PolicyId>; 2],
}

/// The index of a direction in per-direction arrays.
pub(crate) fn direction_slot(direction: Direction) -> usize {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

#[derive(Hash, PartialEq, Eq)]
struct ClassKey<'a> {
    namespace: usize,
    labels: &'a Labels,
    ports: &'a [ContainerPort],
    host_network: bool,
    /// Per address, which ipBlocks contain it (as [`BlockMembership`] ids).
    ip_blocks: Vec<usize>,
}

/// The classes of a cluster's endpoints, with their isolating policies: `(classes, class of
/// each endpoint)`.
pub(crate) fn classify(
    cluster: &Cluster,
    namespace_index: &HashMap<String, usize>,
) -> (TiVec<ClassId, Class>, TiVec<EndpointId, ClassId>) {
    let mut membership = BlockMembership::new(&cluster.policies.raw);
    let mut class_of_key: FxHashMap<ClassKey<'_>, ClassId> = FxHashMap::default();
    let mut classes = TiVec::new();
    let mut endpoint_class = TiVec::with_capacity(cluster.endpoints.len());
    for (id, ep) in cluster.endpoints.iter_enumerated() {
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
            classes.push_and_get_key(Class {
                representative: id,
                namespace,
                isolating: [Vec::new(), Vec::new()],
            })
        });
        endpoint_class.push(class);
    }
    add_isolation(cluster, namespace_index, &mut classes);
    (classes, endpoint_class)
}

/// Records on each class the policies that isolate it: a policy is asked only about the classes
/// of its own namespace, the only ones it can select.
fn add_isolation(
    cluster: &Cluster,
    namespace_index: &HashMap<String, usize>,
    classes: &mut TiSlice<ClassId, Class>,
) {
    let mut classes_by_namespace: Vec<Vec<ClassId>> = vec![Vec::new(); namespace_index.len()];
    for (id, class) in classes.iter_enumerated() {
        classes_by_namespace[class.namespace].push(id);
    }
    for (policy_id, policy) in cluster.policies.iter_enumerated() {
        for &class_id in &classes_by_namespace[namespace_index[&policy.namespace]] {
            let class = &mut classes[class_id];
            let rep = &cluster.endpoints[class.representative];
            for direction in [Direction::Ingress, Direction::Egress] {
                if rules::isolates(policy, rep, direction) {
                    class.isolating[direction_slot(direction)].push(policy_id);
                }
            }
        }
    }
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
            let (first, last) = net_numbers(net);
            family.push(first);
            if let Some(next) = last.checked_add(1) {
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

impl Analysis {
    /// Outside address ranges that every ipBlock of the cluster treats alike, for the families
    /// the policies mention. One representative address of each decides for the whole range.
    pub fn external_ranges(&self) -> Vec<IpRange> {
        let mut membership = BlockMembership::new(&self.cluster.policies.raw);
        let mut out = Vec::new();
        for v4 in [true, false] {
            let max = family_max(v4);
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
                        out.push(IpRange::from_numbers(first, start - 1, v4));
                        current = Some((start, signature));
                    }
                    None => current = Some((start, signature)),
                }
            }
            if let Some((first, _)) = current {
                out.push(IpRange::from_numbers(first, max, v4));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::Analysis;
    use crate::ids::{EndpointId, PolicyId};
    use crate::model::{Cluster, Direction, Namespace, Rule};
    use crate::ports::Protocol::Tcp;
    use crate::selector::Labels;
    use crate::testing::{block, pod, policy};

    /// Pods named by their class: pods with equal letters must share a class, others not.
    #[test]
    fn endpoints_share_a_class_exactly_when_no_policy_can_tell_them_apart() {
        let mut host = pod("a", "h", &[("app", "x")], &["10.0.0.9"], &[]);
        host.host_network = true;
        let endpoints = vec![
            (pod("a", "1", &[("app", "x")], &["10.0.0.1"], &[]), 'A'),
            (pod("a", "2", &[("app", "x")], &["10.0.0.2"], &[]), 'A'),
            // Another namespace, other labels, declared ports, host networking: each apart.
            (pod("b", "3", &[("app", "x")], &["10.0.0.3"], &[]), 'B'),
            (pod("a", "4", &[("app", "y")], &["10.0.0.4"], &[]), 'C'),
            (
                pod(
                    "a",
                    "5",
                    &[("app", "x")],
                    &["10.0.0.5"],
                    &[("http", 80, Tcp)],
                ),
                'D',
            ),
            (host, 'E'),
            // Inside the ipBlock (10.1.0.0/16 minus 10.1.9.0/24): apart from the A pods.
            (pod("a", "6", &[("app", "x")], &["10.1.0.6"], &[]), 'F'),
            (pod("a", "7", &[("app", "x")], &["10.1.200.7"], &[]), 'F'),
            // In the block's except: as outside it as the A pods are.
            (pod("a", "8", &[("app", "x")], &["10.1.9.8"], &[]), 'A'),
            // One address inside the block is enough to differ; no address at all is alike.
            (
                pod("a", "9", &[("app", "x")], &["10.0.0.10", "10.1.0.9"], &[]),
                'G',
            ),
            (pod("a", "10", &[("app", "x")], &[], &[]), 'H'),
        ];
        let cluster = Cluster {
            namespaces: vec![Namespace::new("a", Labels::new())],
            endpoints: endpoints.iter().map(|(ep, _)| ep.clone()).collect(),
            policies: vec![policy(
                "b",
                "p",
                &[],
                Some(vec![Rule {
                    peers: vec![block("10.1.0.0/16", &["10.1.9.0/24"])],
                    ports: vec![],
                }]),
                None,
            )]
            .into(),
        };
        let analysis = Analysis::new(cluster);
        for (i, (_, a)) in endpoints.iter().enumerate() {
            for (j, (_, b)) in endpoints.iter().enumerate() {
                assert_eq!(
                    analysis.class_of(i.into()) == analysis.class_of(j.into()),
                    a == b,
                    "endpoints {i} ({a}) and {j} ({b})"
                );
            }
        }
        // The policy isolates the ingress of every class of its namespace but hostNetwork's.
        let in_namespace_a = EndpointId::from(0);
        let in_namespace_b = EndpointId::from(2);
        assert_eq!(
            analysis.isolating_policies(in_namespace_b, Direction::Ingress),
            [PolicyId::from(0)]
        );
        assert!(
            analysis
                .isolating_policies(in_namespace_b, Direction::Egress)
                .is_empty()
        );
        assert!(
            analysis
                .isolating_policies(in_namespace_a, Direction::Ingress)
                .is_empty()
        );
    }

    #[test]
    fn external_ranges_are_the_stretches_every_ipblock_treats_alike() {
        let labels_of = |peers| {
            let cluster = Cluster {
                policies: vec![policy(
                    "a",
                    "p",
                    &[],
                    Some(vec![Rule {
                        peers,
                        ports: vec![],
                    }]),
                    None,
                )]
                .into(),
                ..Cluster::default()
            };
            Analysis::new(cluster)
                .external_ranges()
                .iter()
                .map(|r| r.label())
                .collect::<Vec<_>>()
        };
        assert_eq!(labels_of(vec![]), Vec::<String>::new());
        assert_eq!(
            labels_of(vec![block("10.0.0.0/8", &["10.1.0.0/16"])]),
            [
                "0.0.0.0-9.255.255.255",
                "10.0.0.0/16",
                "10.1.0.0/16",
                "10.2.0.0-10.255.255.255",
                "11.0.0.0-255.255.255.255",
            ]
        );
        // Overlapping blocks: stretches contained by the same blocks join.
        assert_eq!(
            labels_of(vec![
                block("10.0.0.0/8", &[]),
                block("10.0.0.0/9", &[]),
                block("fd00::/8", &[]),
            ]),
            [
                "0.0.0.0-9.255.255.255",
                "10.0.0.0/9",
                "10.128.0.0/9",
                "11.0.0.0-255.255.255.255",
                "::-fcff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "fd00::/8",
                "fe00::/7",
            ]
        );
    }
}
