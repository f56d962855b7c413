//! PAL008: a path a rule opens on one side that the other side of the connection never admits.
//!
//! Decided on the engine's whole-cluster tables, not per pair of classes: a pair's answer
//! depends only on the source's and the destination's keys (their rows and columns in the
//! tables), so a rule's own classes and peer classes are grouped by key and each pair of groups
//! is asked once. On large clusters a rule names thousands of classes on each side.

use super::{Ctx, rule_path};
use crate::finding::{Finding, LintId};
use crate::sample::{Groups, representative_pairs};
use palisade_engine::{
    Analysis, ClassId, Connectivity, Direction, EndpointId, Peer, PolicyId, PortSetId, Vertex,
};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeSet;

/// Paths listed per finding; a big namespace can have millions, which no reader wants.
const LISTED_PATHS: usize = 25;

/// PAL008: for each rule that names specific peers, the connections its side admits that the
/// other side never admits on any of those ports.
pub(super) fn half_open(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    let analysis = ctx.analysis;
    let tables = ctx.tables().connectivity();
    let mut text = PathText::default();
    for (policy_id, policy) in analysis.cluster().policies.iter_enumerated() {
        let own = analysis.selected_classes(policy_id);
        if own.is_empty() {
            continue;
        }
        for direction in [Direction::Ingress, Direction::Egress] {
            if !policy.isolates(direction) {
                continue;
            }
            for (rule_index, rule) in policy.rules(direction).iter().enumerate() {
                let peers: Vec<ClassId> = rule
                    .peers
                    .iter()
                    .filter(|p| names_specific_pods(p))
                    .flat_map(|p| analysis.peer_classes(policy_id, p))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let paths = RulePaths::find(analysis, tables, direction, &own, &peers);
                if paths.count > 0 {
                    let rule = RuleAt {
                        policy: policy_id,
                        direction,
                        index: rule_index,
                    };
                    findings.push(half_open_finding(ctx, tables, &mut text, rule, &paths));
                }
            }
        }
    }
}

/// Peers that name pods by label: a path someone meant. A peer with an empty podSelector ("any
/// pod there") is a broad grant, and ipBlocks are about outside addresses: a closed far side is
/// expected for them.
fn names_specific_pods(peer: &Peer) -> bool {
    matches!(peer, Peer::Pods { pods, .. } if !pods.selects_everything())
}

/// A half-open path between two classes: representatives, how many endpoints each side stands
/// for, and the ports this side admits.
struct HalfOpen {
    src: EndpointId,
    dst: EndpointId,
    alike: (usize, usize),
    ports: PortSetId,
}

/// The half-open paths of one rule between its own classes and its peer classes.
struct RulePaths {
    /// The first [`LISTED_PATHS`], by own class and then peer class.
    listed: Vec<HalfOpen>,
    /// Every pair of distinct endpoints' classes (a lone endpoint with itself is loopback).
    count: usize,
    /// A far-end class of each group of paths: a group's far ends share their isolation.
    far_classes: Vec<ClassId>,
}

impl RulePaths {
    fn find(
        analysis: &Analysis,
        tables: &Connectivity,
        direction: Direction,
        own: &[ClassId],
        peers: &[ClassId],
    ) -> Self {
        let source = |c: ClassId| tables.source_key(Vertex::Class(c));
        let destination = |c: ClassId| tables.destination_key(Vertex::Class(c));
        let (own_groups, peer_groups) = match direction {
            Direction::Egress => (
                Groups::by(own.iter().copied(), source),
                Groups::by(peers.iter().copied(), destination),
            ),
            Direction::Ingress => (
                Groups::by(own.iter().copied(), destination),
                Groups::by(peers.iter().copied(), source),
            ),
        };
        // Per own group: the peer groups it has half-open paths with, and the ports this side
        // admits there.
        let half_open: Vec<Vec<(usize, PortSetId)>> = own_groups
            .members
            .iter()
            .map(|mine| {
                (peer_groups.members.iter().enumerate())
                    .filter_map(|(group, theirs)| {
                        let (src, dst) = match direction {
                            Direction::Egress => (mine[0], theirs[0]),
                            Direction::Ingress => (theirs[0], mine[0]),
                        };
                        let (src, dst) = (source(src), destination(dst));
                        let (egress, ingress) = tables.sides_between(src, dst);
                        let here = match direction {
                            Direction::Egress => egress,
                            Direction::Ingress => ingress,
                        };
                        let refused = !tables.port_set(here).is_empty()
                            && tables.port_set(tables.allowed_between(src, dst)).is_empty();
                        refused.then_some((group, here))
                    })
                    .collect()
            })
            .collect();
        // A class of one endpoint that is both an own class and a peer is no path with itself.
        let mut lone: FxHashMap<(usize, usize), usize> = FxHashMap::default();
        for class in own {
            if analysis.class_members(*class).len() == 1
                && let Some(&peer_group) = peer_groups.of.get(class)
            {
                *lone.entry((own_groups.of[class], peer_group)).or_default() += 1;
            }
        }
        let mut count = 0;
        let mut far_classes = Vec::new();
        for (group, found) in half_open.iter().enumerate() {
            for &(peer_group, _) in found {
                let pairs = own_groups.members[group].len() * peer_groups.members[peer_group].len()
                    - lone.get(&(group, peer_group)).copied().unwrap_or(0);
                if pairs > 0 {
                    count += pairs;
                    far_classes.push(peer_groups.members[peer_group][0]);
                }
            }
        }
        let mut listed = Vec::new();
        for &mine in own {
            if listed.len() == LISTED_PATHS {
                break;
            }
            let mut theirs: Vec<(ClassId, PortSetId)> = half_open[own_groups.of[&mine]]
                .iter()
                .flat_map(|&(group, ports)| {
                    peer_groups.members[group]
                        .iter()
                        .map(move |&class| (class, ports))
                })
                .collect();
            theirs.sort_unstable();
            for (peer, ports) in theirs {
                if listed.len() == LISTED_PATHS {
                    break;
                }
                let Some((a, b)) = representative_pairs(
                    analysis.class_members(mine),
                    analysis.class_members(peer),
                )
                .find(|(a, b)| a != b) else {
                    continue;
                };
                let counts = (
                    analysis.class_members(mine).len(),
                    analysis.class_members(peer).len(),
                );
                let (src, dst, alike) = match direction {
                    Direction::Egress => (a, b, counts),
                    Direction::Ingress => (b, a, (counts.1, counts.0)),
                };
                listed.push(HalfOpen {
                    src,
                    dst,
                    alike,
                    ports,
                });
            }
        }
        Self {
            listed,
            count,
            far_classes,
        }
    }
}

/// Text of PAL008 details, built once per endpoint and port set: on large clusters the same
/// endpoints and ports recur in many findings.
#[derive(Default)]
struct PathText {
    /// `Pod ns/a` or `Pod ns/a (and 4 more like it)`, per endpoint and count.
    alike: FxHashMap<(EndpointId, usize), String>,
    /// Per far endpoint and far direction: why it refuses.
    far: FxHashMap<(EndpointId, Direction), String>,
    /// Refused port sets, written out.
    ports: FxHashMap<PortSetId, String>,
}

impl PathText {
    fn alike(&mut self, ctx: &Ctx<'_>, endpoint: EndpointId, count: usize) -> &str {
        self.alike.entry((endpoint, count)).or_insert_with(|| {
            let object = ctx.endpoint_object(endpoint);
            if count > 1 {
                format!("{object} (and {} more like it)", count - 1)
            } else {
                object
            }
        })
    }

    fn far(&mut self, analysis: &Analysis, endpoint: EndpointId, far: Direction) -> &str {
        self.far.entry((endpoint, far)).or_insert_with(|| {
            let names: Vec<String> = (analysis.isolating_policies(endpoint, far).iter())
                .map(|&id| analysis.policy(id).qualified_name())
                .collect();
            format!(
                "{far} of {} is isolated by {} and admits none of it",
                analysis.endpoint(endpoint).qualified_name(),
                names.join(", ")
            )
        })
    }

    fn ports(&mut self, tables: &Connectivity, ports: PortSetId) -> &str {
        self.ports
            .entry(ports)
            .or_insert_with(|| tables.port_set(ports).to_string())
    }
}

/// Where a rule sits: its policy, side and index there.
#[derive(Clone, Copy)]
struct RuleAt {
    policy: PolicyId,
    direction: Direction,
    index: usize,
}

fn half_open_finding(
    ctx: &Ctx<'_>,
    tables: &Connectivity,
    text: &mut PathText,
    rule: RuleAt,
    paths: &RulePaths,
) -> Finding {
    let analysis = ctx.analysis;
    let policy = analysis.policy(rule.policy);
    let path = rule_path(rule.direction, rule.index);
    let far = match rule.direction {
        Direction::Egress => Direction::Ingress,
        Direction::Ingress => Direction::Egress,
    };
    let mut blockers = BTreeSet::new();
    let mut seen_far = FxHashSet::default();
    for &class in &paths.far_classes {
        if seen_far.insert(class) {
            let endpoint = analysis.class_members(class)[0];
            blockers.extend(analysis.isolating_policies(endpoint, far).iter().copied());
        }
    }
    let mut details: Vec<String> = paths
        .listed
        .iter()
        .map(|p| {
            let far_endpoint = match rule.direction {
                Direction::Egress => p.dst,
                Direction::Ingress => p.src,
            };
            let mut line = text.alike(ctx, p.src, p.alike.0).to_owned();
            line.push_str(" -> ");
            line.push_str(text.alike(ctx, p.dst, p.alike.1));
            line.push_str(" on ");
            line.push_str(text.ports(tables, p.ports));
            line.push_str(": ");
            line.push_str(text.far(analysis, far_endpoint, far));
            line
        })
        .collect();
    if paths.count > LISTED_PATHS {
        details.push(format!(
            "… and {} more paths of this rule",
            paths.count - LISTED_PATHS
        ));
    }
    let (message, fix) = match rule.direction {
        Direction::Egress => (
            format!(
                "{path} of NetworkPolicy {} lets its pods open connections that the destinations' ingress never admits, so they stay blocked (a connection needs both sides).",
                policy.qualified_name(),
            ),
            "Add an ingress rule admitting these sources and ports to a policy that selects the destination, or drop the peer from this egress rule if the connections are not wanted.",
        ),
        Direction::Ingress => (
            format!(
                "{path} of NetworkPolicy {} admits connections that the sources' egress never allows, so they stay blocked (a connection needs both sides).",
                policy.qualified_name(),
            ),
            "Add an egress rule allowing these destinations and ports to a policy that selects the source, or drop the peer from this ingress rule if the connections are not wanted.",
        ),
    };
    let mut objects = vec![ctx.policy_object(rule.policy)];
    objects.extend(blockers.into_iter().map(|p| ctx.policy_object(p)));
    Finding::new(
        LintId::HalfOpenPath,
        ctx.policy_location(rule.policy),
        message,
    )
    .objects(objects)
    .details(details)
    .fix(fix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lints::paths::one_sided;
    use crate::testgen::arb_cluster;
    use palisade_engine::Cluster;
    use palisade_engine::Subject;
    use proptest::prelude::*;

    /// PAL008 as first written: every pair of a rule's own and peer classes asked through two
    /// one-sided clusters, each with `allowed_ports`.
    fn pairwise(analysis: &Analysis, rule: RuleAt, peers: &[ClassId]) -> (usize, Vec<String>) {
        let cluster = analysis.cluster();
        let sides = [Direction::Egress, Direction::Ingress].map(|d| {
            Analysis::new(Cluster {
                namespaces: cluster.namespaces.clone(),
                endpoints: cluster.endpoints.clone(),
                policies: cluster.policies.iter().map(|p| one_sided(p, d)).collect(),
            })
        });
        let (here, there) = match rule.direction {
            Direction::Egress => (&sides[0], &sides[1]),
            Direction::Ingress => (&sides[1], &sides[0]),
        };
        let mut count = 0;
        let mut listed = Vec::new();
        for own in analysis.selected_classes(rule.policy) {
            for &peer in peers {
                let Some((mine, theirs)) =
                    representative_pairs(analysis.class_members(own), analysis.class_members(peer))
                        .find(|(a, b)| a != b)
                else {
                    continue;
                };
                let (src, dst) = match rule.direction {
                    Direction::Egress => (mine, theirs),
                    Direction::Ingress => (theirs, mine),
                };
                let (s, d) = (Subject::Endpoint(src), Subject::Endpoint(dst));
                let admitted = here.allowed_ports(s, d);
                if !admitted.is_empty()
                    && admitted.intersection(&there.allowed_ports(s, d)).is_empty()
                {
                    count += 1;
                    if listed.len() < LISTED_PATHS {
                        listed.push(format!("{src:?} {dst:?} {admitted}"));
                    }
                }
            }
        }
        (count, listed)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn grouped_by_table_keys_equals_asking_every_pair(cluster in arb_cluster()) {
            let analysis = Analysis::new(cluster);
            let tables = analysis.connectivity();
            for (policy, p) in analysis.cluster().policies.iter_enumerated() {
                let own = analysis.selected_classes(policy);
                for direction in [Direction::Ingress, Direction::Egress] {
                    if !p.isolates(direction) {
                        continue;
                    }
                    for (index, rule) in p.rules(direction).iter().enumerate() {
                        let peers: Vec<ClassId> = (rule.peers.iter())
                            .flat_map(|peer| analysis.peer_classes(policy, peer))
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect();
                        let found = RulePaths::find(&analysis, &tables, direction, &own, &peers);
                        let listed: Vec<String> = (found.listed.iter())
                            .map(|p| format!("{:?} {:?} {}", p.src, p.dst, tables.port_set(p.ports)))
                            .collect();
                        let at = RuleAt { policy, direction, index };
                        prop_assert_eq!((found.count, listed), pairwise(&analysis, at, &peers));
                    }
                }
            }
        }
    }
}
