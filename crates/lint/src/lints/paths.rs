//! Lints decided over whole connections: PAL008 (a path opened on one side only), PAL009 and
//! PAL010 (policies and rules whose removal changes no connection).

use super::{Ctx, name_some, rule_path};
use crate::finding::{Finding, LintId};
use crate::sample::{Allowed, outside_ranges, representative_pairs};
use palisade_engine::{
    Analysis, ClassId, Cluster, Direction, EndpointId, IpRange, NetworkPolicy, Peer, PolicyId,
    PolicyTypes, PortSet, Rule, Subject, TiSlice, TiVec,
};
use rustc_hash::{FxHashMap, FxHashSet};
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};

/// The policies as if only `direction` were ever isolated: with them, `allowed_ports` is what
/// that one side admits.
fn one_side(
    policies: &TiSlice<PolicyId, NetworkPolicy>,
    direction: Direction,
) -> TiVec<PolicyId, NetworkPolicy> {
    let mut policies = policies.to_owned();
    for policy in &mut policies {
        policy.policy_types = PolicyTypes {
            ingress: policy.policy_types.ingress && direction == Direction::Ingress,
            egress: policy.policy_types.egress && direction == Direction::Egress,
        };
    }
    policies
}

fn with_policies(cluster: &Cluster, policies: TiVec<PolicyId, NetworkPolicy>) -> Analysis {
    Analysis::new(Cluster {
        namespaces: cluster.namespaces.clone(),
        endpoints: cluster.endpoints.clone(),
        policies,
    })
}

fn opposite(direction: Direction) -> Direction {
    match direction {
        Direction::Egress => Direction::Ingress,
        Direction::Ingress => Direction::Egress,
    }
}

/// A half-open path between two classes: representatives, how many endpoints each side stands
/// for, and the ports this side admits (an index into the refused port sets).
struct HalfOpen {
    src: EndpointId,
    dst: EndpointId,
    alike: (usize, usize),
    ports: usize,
}

/// Text of PAL008 details, built once per endpoint and port set: on large clusters the same
/// endpoints and ports recur in millions of paths.
#[derive(Default)]
struct PathText {
    /// `Pod ns/a` or `Pod ns/a (and 4 more like it)`, per endpoint and count.
    alike: FxHashMap<(EndpointId, usize), String>,
    /// Per far endpoint and far direction: why it refuses, and the policies isolating it.
    far: FxHashMap<(EndpointId, Direction), (String, Vec<PolicyId>)>,
    /// Refused port sets, written out.
    ports: Vec<String>,
}

impl PathText {
    fn remember_alike(&mut self, ctx: &Ctx<'_>, endpoint: EndpointId, count: usize) {
        self.alike.entry((endpoint, count)).or_insert_with(|| {
            let object = ctx.endpoint_object(endpoint);
            if count > 1 {
                format!("{object} (and {} more like it)", count - 1)
            } else {
                object
            }
        });
    }

    fn remember_far(&mut self, analysis: &Analysis, endpoint: EndpointId, far: Direction) {
        self.far.entry((endpoint, far)).or_insert_with(|| {
            let isolating = analysis.isolating_policies(endpoint, far).to_vec();
            let names: Vec<String> = isolating
                .iter()
                .map(|&id| analysis.policy(id).qualified_name())
                .collect();
            let text = format!(
                "{far} of {} is isolated by {} and admits none of it",
                analysis.endpoint(endpoint).qualified_name(),
                names.join(", ")
            );
            (text, isolating)
        });
    }
}

/// PAL008: for each rule that names specific peers, the connections its side admits that the
/// other side never admits on any of those ports. Decided per pair of endpoint classes.
pub(super) fn half_open(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    let analysis = ctx.analysis;
    let cluster = analysis.cluster();
    let egress_only = with_policies(cluster, one_side(&cluster.policies, Direction::Egress));
    let ingress_only = with_policies(cluster, one_side(&cluster.policies, Direction::Ingress));
    let (egress_only, ingress_only) = (Allowed::new(&egress_only), Allowed::new(&ingress_only));
    let mut memo: FxHashMap<(bool, ClassId, ClassId), Option<usize>> = FxHashMap::default();
    // Distinct refused port sets, each once: pairs by the million share a few.
    let mut refused_ports: Vec<PortSet> = Vec::new();
    let mut port_ids: FxHashMap<PortSet, usize> = FxHashMap::default();
    let mut text = PathText::default();
    // Per class, how many of its endpoints it stands for: all of them, since they answer alike.
    let by_class = |found: Vec<ClassId>| -> BTreeMap<ClassId, usize> {
        found
            .into_iter()
            .map(|c| (c, analysis.class_members(c).len()))
            .collect()
    };
    for (policy_id, policy) in cluster.policies.iter_enumerated() {
        let own = by_class(analysis.selected_classes(policy_id));
        for direction in [Direction::Ingress, Direction::Egress] {
            if !policy.isolates(direction) {
                continue;
            }
            let (this_side, other_side) = match direction {
                Direction::Egress => (&egress_only, &ingress_only),
                Direction::Ingress => (&ingress_only, &egress_only),
            };
            for (rule_index, rule) in policy.rules(direction).iter().enumerate() {
                let peers = by_class(
                    rule.peers
                        .iter()
                        .filter(|p| names_specific_pods(p))
                        .flat_map(|p| analysis.peer_classes(policy_id, p))
                        .collect(),
                );
                let mut paths = Vec::new();
                for (&own_class, &own_count) in &own {
                    for (&peer_class, &peer_count) in &peers {
                        // Distinct endpoints of the two classes; a lone endpoint with itself is
                        // loopback, never a path.
                        let Some((mine, other)) = representative_pairs(
                            analysis.class_members(own_class),
                            analysis.class_members(peer_class),
                        )
                        .find(|(a, b)| a != b) else {
                            continue;
                        };
                        let (src, dst, alike) = match direction {
                            Direction::Egress => (mine, other, (own_count, peer_count)),
                            Direction::Ingress => (other, mine, (peer_count, own_count)),
                        };
                        // Rules of many policies name the same classes: ask once per pair.
                        let key = (direction == Direction::Egress, own_class, peer_class);
                        if memo.len() >= MEMO_LIMIT {
                            memo.clear();
                        }
                        let refused = *memo.entry(key).or_insert_with(|| {
                            let (s, d) = (Subject::Endpoint(src), Subject::Endpoint(dst));
                            let here = this_side.ports(s, d);
                            let there = other_side.ports(s, d);
                            (!here.is_empty() && here.intersection(&there).is_empty()).then(|| {
                                *port_ids
                                    .entry(here.into_owned())
                                    .or_insert_with_key(|ports| {
                                        refused_ports.push(ports.clone());
                                        refused_ports.len() - 1
                                    })
                            })
                        });
                        if let Some(ports) = refused {
                            paths.push(HalfOpen {
                                src,
                                dst,
                                alike,
                                ports,
                            });
                        }
                    }
                }
                if !paths.is_empty() {
                    text.ports.extend(
                        refused_ports[text.ports.len()..]
                            .iter()
                            .map(ToString::to_string),
                    );
                    findings.push(half_open_finding(
                        ctx, &mut text, policy_id, direction, rule_index, &paths,
                    ));
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

/// Class pairs whose answer is remembered at once; past this the memory starts over, so a
/// cluster whose rules name millions of class pairs costs time, not unbounded memory.
const MEMO_LIMIT: usize = 1 << 22;

/// Paths listed per finding; a big namespace can have millions, which no reader wants.
const LISTED_PATHS: usize = 25;

fn half_open_finding(
    ctx: &Ctx<'_>,
    text: &mut PathText,
    policy_id: PolicyId,
    direction: Direction,
    rule_index: usize,
    paths: &[HalfOpen],
) -> Finding {
    let analysis = ctx.analysis;
    let policy = analysis.policy(policy_id);
    let path = rule_path(direction, rule_index);
    let far = opposite(direction);
    let mut blockers = BTreeSet::new();
    let mut seen_far = FxHashSet::default();
    let mut details: Vec<String> = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let far_endpoint = match direction {
            Direction::Egress => p.dst,
            Direction::Ingress => p.src,
        };
        text.remember_far(analysis, far_endpoint, far);
        if seen_far.insert(far_endpoint) {
            blockers.extend(text.far[&(far_endpoint, far)].1.iter().copied());
        }
        if i >= LISTED_PATHS {
            continue;
        }
        text.remember_alike(ctx, p.src, p.alike.0);
        text.remember_alike(ctx, p.dst, p.alike.1);
        let why = &text.far[&(far_endpoint, far)].0;
        details.push(
            [
                text.alike[&(p.src, p.alike.0)].as_str(),
                " -> ",
                &text.alike[&(p.dst, p.alike.1)],
                " on ",
                &text.ports[p.ports],
                ": ",
                why,
            ]
            .concat(),
        );
    }
    if paths.len() > LISTED_PATHS {
        details.push(format!(
            "… and {} more paths of this rule",
            paths.len() - LISTED_PATHS
        ));
    }
    let (message, fix) = match direction {
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
    let mut objects = vec![ctx.policy_object(policy_id)];
    objects.extend(blockers.into_iter().map(|p| ctx.policy_object(p)));
    Finding::new(
        LintId::HalfOpenPath,
        ctx.policy_location(policy_id),
        message,
    )
    .objects(objects)
    .details(details)
    .fix(fix)
}

/// PAL009 and PAL010. Policies that select no pod are PAL003's business.
pub(super) fn redundancy(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    let found = removable(ctx.analysis);
    for policy_id in found.policies {
        let selected = ctx.analysis.selected_endpoints(policy_id);
        findings.push(redundant_policy_finding(ctx, policy_id, &selected));
    }
    for rule in found.rules {
        findings.push(shadowed_rule_finding(ctx, &rule));
    }
}

/// Policies and rules whose removal changes no connection.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Removable {
    pub policies: Vec<PolicyId>,
    pub rules: Vec<RemovableRule>,
}

#[derive(Debug, PartialEq)]
pub(crate) struct RemovableRule {
    pub policy: PolicyId,
    pub direction: Direction,
    /// Index in the policy as written.
    pub index: usize,
    pub reason: Reason,
}

/// Why a rule's removal changes nothing; each calls for a different fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// On its own it admits no connection between the pods and addresses of the inputs.
    AdmitsNothing,
    /// Other rules on the same side admit everything it admits.
    Covered,
    /// What it admits on its side, the other side of each connection refuses.
    RefusedByOtherSide,
}

/// Found greedily: a policy (then a rule) counts when removing it from what is left after the
/// earlier removals changes no connection, so removing everything found at once is safe too.
pub(crate) fn removable(base: &Analysis) -> Removable {
    removable_with(base, |working| Before::LikeBase(working))
}

/// [`removable`], comparing each trial with the working set as `before` presents it (tests
/// check that the base's tables and compiling the working set agree).
fn removable_with(
    base: &Analysis,
    before: fn(&TiSlice<PolicyId, NetworkPolicy>) -> Before<'_>,
) -> Removable {
    let cluster = base.cluster();
    let probe = Probe::new(base);
    let mut found = Removable::default();
    let mut working = cluster.policies.clone();
    let mut kept = Vec::new();
    for policy_id in cluster.policies.keys() {
        let selected = base.selected_endpoints(policy_id);
        let policy = base.policy(policy_id);
        if selected.is_empty() || is_default_deny(policy) {
            continue;
        }
        let mut inert = working[policy_id].clone();
        make_inert(&mut inert);
        let unchanged = [Direction::Ingress, Direction::Egress]
            .into_iter()
            .filter(|&d| policy.isolates(d))
            .all(|direction| {
                // Where no other remaining policy isolates a selected pod, removing this one
                // opens the pod to everyone; elsewhere only what its own rules admitted can go.
                let sole = selected.iter().any(|&e| {
                    base.isolating_policies(e, direction)
                        .iter()
                        .all(|&p| p == policy_id || found.policies.contains(&p))
                });
                let scope = if sole {
                    Scope::everything()
                } else {
                    probe.scope(policy_id, policy.rules(direction))
                };
                probe.same(
                    before(&working),
                    (policy_id, &inert),
                    &selected,
                    direction,
                    &scope,
                )
            });
        if unchanged {
            found.policies.push(policy_id);
            working[policy_id] = inert;
        } else {
            kept.push(policy_id);
        }
    }
    let one_sided = [Direction::Ingress, Direction::Egress]
        .map(|d| with_policies(cluster, one_side(&cluster.policies, d)));
    let sides = one_sided.each_ref().map(Probe::new);
    for policy_id in kept {
        let selected = base.selected_endpoints(policy_id);
        let policy = base.policy(policy_id);
        for direction in [Direction::Ingress, Direction::Egress] {
            if !policy.isolates(direction) {
                continue;
            }
            let mut removed = 0;
            for (index, rule) in policy.rules(direction).iter().enumerate() {
                let position = index - removed;
                let mut without = working[policy_id].clone();
                rules_mut(&mut without, direction).remove(position);
                let scope = probe.scope(policy_id, std::slice::from_ref(rule));
                if probe.same(
                    before(&working),
                    (policy_id, &without),
                    &selected,
                    direction,
                    &scope,
                ) {
                    let side = &sides[usize::from(direction == Direction::Egress)];
                    let change = RuleRemoval {
                        with: &working,
                        without: &without,
                        policy: policy_id,
                        direction,
                        position,
                    };
                    found.rules.push(RemovableRule {
                        policy: policy_id,
                        direction,
                        index,
                        reason: change.reason(side, &selected),
                    });
                    working[policy_id] = without;
                    removed += 1;
                }
            }
        }
    }
    found
}

/// One rule taken out of a policy set.
struct RuleRemoval<'a> {
    with: &'a TiSlice<PolicyId, NetworkPolicy>,
    /// The policy without the rule.
    without: &'a NetworkPolicy,
    policy: PolicyId,
    direction: Direction,
    position: usize,
}

impl RuleRemoval<'_> {
    /// Tells the reasons apart by asking its own side alone (`side` probes a one-sided
    /// cluster): whether the rule changes what that side admits at all, and whether it admits
    /// anything when it is the only rule there.
    fn reason(&self, side: &Probe<'_>, selected: &[EndpointId]) -> Reason {
        let direction = self.direction;
        let rule = self.with[self.policy].rules(direction)[self.position].clone();
        let scope = side.scope(self.policy, std::slice::from_ref(&rule));
        let with = one_side(self.with, direction);
        let without = one_side(
            TiSlice::from_ref(std::slice::from_ref(self.without)),
            direction,
        );
        if !side.same(
            Before::Policies(&with),
            (self.policy, &without[PolicyId::from(0)]),
            selected,
            direction,
            &scope,
        ) {
            return Reason::RefusedByOtherSide;
        }
        let mut none = with;
        for (id, policy) in none.iter_mut_enumerated() {
            if id != self.policy {
                make_inert(policy);
            }
        }
        rules_mut(&mut none[self.policy], direction).clear();
        let mut alone = none[self.policy].clone();
        rules_mut(&mut alone, direction).push(rule);
        if side.same(
            Before::Policies(&none),
            (self.policy, &alone),
            selected,
            direction,
            &scope,
        ) {
            Reason::AdmitsNothing
        } else {
            Reason::Covered
        }
    }
}

/// A stand-in that isolates nothing and admits nothing: removal that keeps policy ids stable.
pub(crate) fn make_inert(policy: &mut NetworkPolicy) {
    policy.policy_types = PolicyTypes {
        ingress: false,
        egress: false,
    };
    policy.ingress.clear();
    policy.egress.clear();
}

pub(crate) fn rules_mut(policy: &mut NetworkPolicy, direction: Direction) -> &mut Vec<Rule> {
    match direction {
        Direction::Ingress => &mut policy.ingress,
        Direction::Egress => &mut policy.egress,
    }
}

/// A rule-less policy over the whole namespace: it isolates pods that do not exist yet, so
/// "changes no connection today" is no reason to remove it.
fn is_default_deny(policy: &NetworkPolicy) -> bool {
    policy.pod_selector.selects_everything()
        && [Direction::Ingress, Direction::Egress]
            .into_iter()
            .all(|d| !policy.isolates(d) || policy.rules(d).is_empty())
}

/// The other ends of connections a removal can change: some classes (`None`: all) and maybe
/// outside addresses.
struct Scope {
    classes: Option<BTreeSet<ClassId>>,
    outside: bool,
}

impl Scope {
    fn everything() -> Self {
        Self {
            classes: None,
            outside: true,
        }
    }
}

/// Compares two policy sets over the endpoints of one cluster on every connection a change
/// could touch. The cluster's classes and outside ranges must refine those of both sets (they
/// do when the sets are the cluster's policies minus some, or one-sided versions of them).
struct Probe<'a> {
    base: &'a Analysis,
    outside: Vec<IpRange>,
    /// The base's whole-cluster tables, built when a question first needs them.
    tables: OnceCell<Allowed<'a>>,
}

/// The policy set a change is compared against.
#[derive(Clone, Copy)]
enum Before<'p> {
    /// Policies that allow exactly what the probe's base allows, so the base's tables answer
    /// for them. The greedy search keeps this true of its working set: every removal it accepts
    /// changes no connection.
    LikeBase(&'p TiSlice<PolicyId, NetworkPolicy>),
    /// Any policy set, compiled for each question.
    Policies(&'p TiSlice<PolicyId, NetworkPolicy>),
}

impl<'a> Probe<'a> {
    fn new(base: &'a Analysis) -> Self {
        Self {
            base,
            outside: outside_ranges(&[base]),
            tables: OnceCell::new(),
        }
    }

    /// While isolation stays as it is, dropping rules changes a side's answer only for the other
    /// ends their peers match (every end for a rule without peers).
    fn scope(&self, policy_id: PolicyId, rules: &[Rule]) -> Scope {
        let mut classes = BTreeSet::new();
        let mut outside = false;
        for rule in rules {
            if rule.peers.is_empty() {
                return Scope::everything();
            }
            for peer in &rule.peers {
                outside |= matches!(peer, Peer::IpBlock(_));
                classes.extend(self.base.peer_classes(policy_id, peer));
            }
        }
        Scope {
            classes: Some(classes),
            outside,
        }
    }

    /// Whether policy set `a` and `a` with one policy replaced (`changed`) allow the same on
    /// `direction`'s side of the `selected` endpoints, towards the ends in `scope`. Outside
    /// addresses go first, on their own: removing a pod's last isolating policy shows there at
    /// once, and cheaply.
    fn same(
        &self,
        a: Before<'_>,
        changed: (PolicyId, &NetworkPolicy),
        selected: &[EndpointId],
        direction: Direction,
        scope: &Scope,
    ) -> bool {
        let own_classes: Vec<ClassId> = selected
            .iter()
            .map(|&e| self.base.class_of(e))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let other_classes: Vec<ClassId> = match &scope.classes {
            Some(classes) => classes.iter().copied().collect(),
            None => self.base.class_ids().collect(),
        };
        let outside: &[IpRange] = if scope.outside { &self.outside } else { &[] };
        let ends = |outside, other_classes| Ends {
            own_classes: &own_classes,
            outside,
            other_classes,
        };
        self.same_towards(a, changed, direction, &ends(outside, &[]))
            && self.same_towards(a, changed, direction, &ends(&[], &other_classes))
    }

    /// [`Self::same`] on the pairs between `ends`. One representative pair per pair of classes
    /// decides, and a decision involves only its two endpoints and the policies selecting them:
    /// so both sets are compiled over just the representatives and their namespaces'
    /// policies, which keeps this cheap on large clusters.
    fn same_towards(
        &self,
        a: Before<'_>,
        changed: (PolicyId, &NetworkPolicy),
        direction: Direction,
        ends: &Ends<'_>,
    ) -> bool {
        if ends.own_classes.is_empty() || (ends.outside.is_empty() && ends.other_classes.is_empty())
        {
            return true;
        }
        // A member of every class, and a second one of own classes that are also the other end
        // (pairs of siblings).
        let mut involved: BTreeSet<EndpointId> = BTreeSet::new();
        for &own in ends.own_classes {
            let sibling = ends.other_classes.binary_search(&own).is_ok();
            involved.extend(
                self.base
                    .class_members(own)
                    .iter()
                    .take(1 + usize::from(sibling)),
            );
        }
        involved.extend(
            ends.other_classes
                .iter()
                .map(|&other| self.base.class_members(other)[0]),
        );
        let involved: Vec<EndpointId> = involved.into_iter().collect();
        let local = |e: EndpointId| EndpointId::from(involved.partition_point(|&i| i < e));
        let namespaces: BTreeSet<&str> = involved
            .iter()
            .map(|&e| self.base.endpoint(e).namespace.as_str())
            .collect();
        let (Before::LikeBase(policies) | Before::Policies(policies)) = a;
        let compile = |replace: Option<(PolicyId, &NetworkPolicy)>| {
            Analysis::new(Cluster {
                namespaces: self.base.cluster().namespaces.clone(),
                endpoints: involved
                    .iter()
                    .map(|&e| self.base.endpoint(e).clone())
                    .collect(),
                // A policy selects pods of its own namespace only, and a decision depends on
                // the policies selecting its two endpoints: the others cannot change it.
                policies: policies
                    .iter_enumerated()
                    .map(|(id, policy)| match replace {
                        Some((replaced, by)) if replaced == id => by,
                        _ => policy,
                    })
                    .filter(|p| namespaces.contains(p.namespace.as_str()))
                    .cloned()
                    .collect(),
            })
        };
        let (compiled_before, compiled_allowed);
        // `in_base` says which endpoint ids the tables of `before` take.
        let (before, in_base) = match a {
            Before::LikeBase(_) => (self.tables.get_or_init(|| Allowed::new(self.base)), true),
            Before::Policies(_) => {
                compiled_before = compile(None);
                compiled_allowed = Allowed::new(&compiled_before);
                (&compiled_allowed, false)
            }
        };
        let after = compile(Some(changed));
        let after = Allowed::new(&after);
        let oriented = |mine: EndpointId, other: Subject| match direction {
            Direction::Egress => (Subject::Endpoint(mine), other),
            Direction::Ingress => (other, Subject::Endpoint(mine)),
        };
        // Takes base endpoint ids.
        let same_ports = |mine: EndpointId, other: Subject| {
            let local_other = match other {
                Subject::Endpoint(e) => Subject::Endpoint(local(e)),
                outside => outside,
            };
            let (src, dst) = oriented(local(mine), local_other);
            let before = if in_base {
                let (src, dst) = oriented(mine, other);
                before.ports(src, dst)
            } else {
                before.ports(src, dst)
            };
            before == after.ports(src, dst)
        };
        ends.own_classes.iter().all(|&own| {
            let mine = self.base.class_members(own)[0];
            ends.outside
                .iter()
                .all(|range| same_ports(mine, Subject::External(range.first)))
                && ends.other_classes.iter().all(|&other| {
                    representative_pairs(
                        self.base.class_members(own),
                        self.base.class_members(other),
                    )
                    .all(|(mine, theirs)| same_ports(mine, Subject::Endpoint(theirs)))
                })
        })
    }
}

/// The pairs [`Probe::same_towards`] compares: each own class (sorted) with each outside range
/// and each other class (sorted).
struct Ends<'a> {
    own_classes: &'a [ClassId],
    outside: &'a [IpRange],
    other_classes: &'a [ClassId],
}

fn redundant_policy_finding(
    ctx: &Ctx<'_>,
    policy_id: PolicyId,
    selected: &[EndpointId],
) -> Finding {
    let policy = ctx.analysis.policy(policy_id);
    let names: Vec<String> = selected.iter().map(|&e| ctx.endpoint_object(e)).collect();
    Finding::new(
        LintId::RedundantPolicy,
        ctx.policy_location(policy_id),
        format!(
            "Removing NetworkPolicy {} changes no connection: the other policies already isolate and admit exactly the same for {}.",
            policy.qualified_name(),
            name_some(&names, 5)
        ),
    )
    .objects([ctx.policy_object(policy_id)])
    .fix("Delete the policy, or change it if it was meant to allow or isolate something more.")
}

fn shadowed_rule_finding(ctx: &Ctx<'_>, rule: &RemovableRule) -> Finding {
    let policy = ctx.analysis.policy(rule.policy);
    let path = rule_path(rule.direction, rule.index);
    let (why, fix) = match rule.reason {
        Reason::Covered => (
            "other rules already admit everything it admits",
            format!(
                "Delete {path}, or narrow the broader rule that covers it if this one states the intent."
            ),
        ),
        Reason::AdmitsNothing => (
            "its peers and ports match no connection between the pods and addresses of the inputs",
            format!(
                "Correct the peers or ports of {path} (other findings may say which), or delete it."
            ),
        ),
        Reason::RefusedByOtherSide => (
            "the other side of every connection it admits refuses that connection",
            format!("Open the other side too (see half-open-path findings), or delete {path}."),
        ),
    };
    Finding::new(
        LintId::ShadowedRule,
        ctx.policy_location(rule.policy),
        format!(
            "Removing {path} of NetworkPolicy {} changes no connection: {why}.",
            policy.qualified_name()
        ),
    )
    .objects([ctx.policy_object(rule.policy)])
    .fix(fix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::arb_cluster;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn removing_everything_found_changes_no_connection(cluster in arb_cluster()) {
            let base = Analysis::new(cluster.clone());
            let found = removable(&base);
            let mut pruned = cluster;
            for &policy in &found.policies {
                make_inert(&mut pruned.policies[policy]);
            }
            // Highest index first, so earlier indices stay valid.
            for rule in found.rules.iter().rev() {
                rules_mut(&mut pruned.policies[rule.policy], rule.direction).remove(rule.index);
            }
            let change = crate::diff::diff(&base, &Analysis::new(pruned));
            prop_assert!(!change.changes_connectivity(), "{:?}", change);
        }

        /// The search compares trials with the base's tables, relying on the working set
        /// allowing what the base allows; compiling the working set instead must find the same.
        #[test]
        fn base_tables_stand_in_for_the_working_set(cluster in arb_cluster()) {
            let base = Analysis::new(cluster);
            prop_assert_eq!(
                removable_with(&base, |working| Before::LikeBase(working)),
                removable_with(&base, |working| Before::Policies(working))
            );
        }
    }
}
