//! Lints decided over whole connections: PAL009 and PAL010 (policies and rules whose removal
//! changes no connection).

use super::{Ctx, name_some, rule_path};
use crate::finding::{Finding, LintId};
use crate::sample::{Allowed, Groups, outside_ranges, representative_pairs};
use palisade_engine::{
    Analysis, ClassId, Direction, EndpointId, IpRange, NetworkPolicy, Peer, PolicyId, PolicyTypes,
    PortSet, Rule, Subject, TiSlice, TiVec,
};
use rustc_hash::FxHashSet;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// The policy as if only `direction` were ever isolated: with such policies, `allowed_ports` is
/// what that one side admits.
pub(super) fn one_sided(policy: &NetworkPolicy, direction: Direction) -> NetworkPolicy {
    let mut policy = policy.clone();
    policy.policy_types = PolicyTypes {
        ingress: policy.policy_types.ingress && direction == Direction::Ingress,
        egress: policy.policy_types.egress && direction == Direction::Egress,
    };
    policy
}

/// PAL009 and PAL010. Policies that select no pod are PAL003's business.
pub(super) fn redundancy(ctx: &Ctx<'_>, findings: &mut Vec<Finding>) {
    let found = removable(ctx.tables());
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
pub(crate) fn removable(tables: &Allowed<'_>) -> Removable {
    removable_with(tables, |working| Before::LikeBase(working))
}

/// The policies the greedy search has left so far, and which of them it changed.
struct Working {
    policies: TiVec<PolicyId, NetworkPolicy>,
    changed: FxHashSet<PolicyId>,
}

/// [`removable`], comparing each trial with the working set as `before` presents it (tests
/// check that the base's tables and compiling the working set agree).
fn removable_with(tables: &Allowed<'_>, before: fn(&Working) -> Before<'_>) -> Removable {
    let base = tables.analysis();
    let cluster = base.cluster();
    let probe = Probe::new(tables);
    let mut found = Removable::default();
    let mut working = Working {
        policies: cluster.policies.clone(),
        changed: FxHashSet::default(),
    };
    let mut kept = Vec::new();
    for policy_id in cluster.policies.keys() {
        let selected = base.selected_endpoints(policy_id);
        let policy = base.policy(policy_id);
        if selected.is_empty() || is_default_deny(policy) {
            continue;
        }
        let mut inert = working.policies[policy_id].clone();
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
            working.policies[policy_id] = inert;
            working.changed.insert(policy_id);
        } else {
            kept.push(policy_id);
        }
    }
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
                let mut without = working.policies[policy_id].clone();
                rules_mut(&mut without, direction).remove(position);
                let scope = probe.scope(policy_id, std::slice::from_ref(rule));
                if probe.same(
                    before(&working),
                    (policy_id, &without),
                    &selected,
                    direction,
                    &scope,
                ) {
                    let change = RuleRemoval {
                        with: &working.policies,
                        without: &without,
                        policy: policy_id,
                        direction,
                        position,
                    };
                    found.rules.push(RemovableRule {
                        policy: policy_id,
                        direction,
                        index,
                        reason: change.reason(&probe, &selected, &scope),
                    });
                    working.policies[policy_id] = without;
                    working.changed.insert(policy_id);
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
    /// Tells the reasons apart by asking its own side alone (every policy one-sided, a
    /// narrowing the probe answers as well): whether the rule changes what that side admits at
    /// all, and whether it admits anything when it is the only rule there. `scope` is the
    /// rule's, as for the removal itself.
    fn reason(&self, probe: &Probe<'_>, selected: &[EndpointId], scope: &Scope) -> Reason {
        let direction = self.direction;
        let rule = self.with[self.policy].rules(direction)[self.position].clone();
        let with: TiVec<PolicyId, NetworkPolicy> =
            self.with.iter().map(|p| one_sided(p, direction)).collect();
        let without = one_sided(self.without, direction);
        if !probe.same(
            Before::Policies(&with),
            (self.policy, &without),
            selected,
            direction,
            scope,
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
        if probe.same(
            Before::Policies(&none),
            (self.policy, &alone),
            selected,
            direction,
            scope,
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
/// could touch. Both sets must narrow the cluster's own policies (the same selectors, at most
/// their directions and rules: the policies minus some, or one-sided versions of them), so the
/// cluster's classes, keys and outside ranges hold for them.
struct Probe<'a> {
    /// The base's whole-cluster tables, and through them the base.
    tables: &'a Allowed<'a>,
    outside: Vec<IpRange>,
}

/// The policy set a change is compared against.
#[derive(Clone, Copy)]
enum Before<'p> {
    /// Policies that allow exactly what the probe's base allows, so the base's tables answer
    /// for them, and for each side of a connection that no changed policy isolates. The greedy
    /// search keeps this true of its working set: every removal it accepts changes no
    /// connection.
    LikeBase(&'p Working),
    /// Any narrowing of the base's policies, answered pair by pair.
    Policies(&'p TiSlice<PolicyId, NetworkPolicy>),
}

impl<'a> Probe<'a> {
    fn new(tables: &'a Allowed<'a>) -> Self {
        Self {
            tables,
            outside: outside_ranges(&[tables.analysis()]),
        }
    }

    fn base(&self) -> &'a Analysis {
        self.tables.analysis()
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
                classes.extend(self.base().peer_classes(policy_id, peer));
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
            .map(|&e| self.base().class_of(e))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let other_classes: Vec<ClassId> = match &scope.classes {
            Some(classes) => classes.iter().copied().collect(),
            None => self.base().class_ids().collect(),
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

    /// [`Self::same`] on the pairs between `ends`. Both sets narrow the base's policies (same
    /// selectors, fewer directions or rules), so a pair answers in each as its source's and
    /// destination's keys in the base's tables say: the ends are grouped by key, and one pair of
    /// ends per pair of groups decides, answered pair by pair without compiling.
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
        let allowed = self.tables;
        let (policies, changed_before) = match a {
            Before::LikeBase(working) => (working.policies.as_slice(), Some(&working.changed)),
            Before::Policies(policies) => (policies, None),
        };
        let after = |id: PolicyId| {
            if id == changed.0 {
                changed.1
            } else {
                &policies[id]
            }
        };
        // A side that no changed policy isolates answers as the base's tables say (outside
        // addresses are never isolated).
        let unchanged_side = |subject: Subject, direction: Direction| match subject {
            Subject::Endpoint(e) => changed_before.is_some_and(|changed_before| {
                !(self
                    .tables
                    .analysis()
                    .isolating_policies(e, direction)
                    .iter())
                .any(|p| *p == changed.0 || changed_before.contains(p))
            }),
            Subject::External(_) => true,
        };
        let after_ports = |src: Subject, dst: Subject| -> PortSet {
            let cells = allowed.sides(src, dst);
            let side = |direction: Direction, subject: Subject, other: Subject| {
                let cell = cells.map(|(egress, ingress)| match direction {
                    Direction::Egress => egress,
                    Direction::Ingress => ingress,
                });
                match cell {
                    Some(cell) if unchanged_side(subject, direction) => Some(Cow::Borrowed(cell)),
                    _ => self
                        .tables
                        .analysis()
                        .side_ports_narrowed(direction, subject, other, after)
                        .map(Cow::Owned),
                }
            };
            match (
                side(Direction::Egress, src, dst),
                side(Direction::Ingress, dst, src),
            ) {
                (None, None) => PortSet::all(),
                (Some(one), None) | (None, Some(one)) => one.into_owned(),
                (Some(egress), Some(ingress)) => egress.intersection(&ingress),
            }
        };
        let same_ports = |mine: EndpointId, other: Subject| {
            let (src, dst) = match direction {
                Direction::Egress => (Subject::Endpoint(mine), other),
                Direction::Ingress => (other, Subject::Endpoint(mine)),
            };
            let after = after_ports(src, dst);
            match a {
                Before::LikeBase(_) => *allowed.ports(src, dst) == after,
                Before::Policies(_) => {
                    self.tables
                        .analysis()
                        .allowed_ports_narrowed(src, dst, |id| &policies[id])
                        == after
                }
            }
        };
        let own_is_source = direction == Direction::Egress;
        let own = Groups::by(ends.own_classes.iter().copied(), |c| {
            allowed.end(c, own_is_source)
        });
        let others = Groups::by(ends.other_classes.iter().copied(), |c| {
            allowed.end(c, !own_is_source)
        });
        own.members.iter().all(|mine| {
            let first = self.base().class_members(mine[0])[0];
            ends.outside
                .iter()
                .all(|range| same_ports(first, Subject::External(range.first)))
                && others.members.iter().all(|theirs| {
                    self.distinct_pair(mine, theirs)
                        .is_none_or(|(m, t)| same_ports(m, Subject::Endpoint(t)))
                })
        })
    }

    /// A pair of a class in `mine` and a class in `theirs` that is not a pod with itself; `None`
    /// when the only pair is loopback, which no policy governs.
    fn distinct_pair(
        &self,
        mine: &[ClassId],
        theirs: &[ClassId],
    ) -> Option<(EndpointId, EndpointId)> {
        mine.iter().find_map(|&a| {
            theirs.iter().find_map(|&b| {
                representative_pairs(self.base().class_members(a), self.base().class_members(b))
                    .find(|&(x, y)| {
                        !self
                            .base()
                            .is_loopback(Subject::Endpoint(x), Subject::Endpoint(y))
                    })
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
    use palisade_engine::Cluster;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn removing_everything_found_changes_no_connection(cluster in arb_cluster()) {
            let base = Analysis::new(cluster.clone());
            let found = removable(&Allowed::new(&base));
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

        /// The greedy search as written down: each trial compiled whole and compared by `diff`.
        #[test]
        fn found_as_by_compiling_every_trial(cluster in arb_cluster()) {
            let base = Analysis::new(cluster.clone());
            let found = removable(&Allowed::new(&base));
            let unchanged = |a: &Cluster, b: &Cluster| {
                !crate::diff::diff(&Analysis::new(a.clone()), &Analysis::new(b.clone()))
                    .changes_connectivity()
            };
            let mut working = cluster;
            let (mut policies, mut kept) = (Vec::new(), Vec::new());
            for id in base.cluster().policies.keys() {
                if base.selected_endpoints(id).is_empty() || is_default_deny(base.policy(id)) {
                    continue;
                }
                let mut trial = working.clone();
                make_inert(&mut trial.policies[id]);
                if unchanged(&working, &trial) {
                    policies.push(id);
                    working = trial;
                } else {
                    kept.push(id);
                }
            }
            let mut rules = Vec::new();
            for id in kept {
                for direction in [Direction::Ingress, Direction::Egress] {
                    if !base.policy(id).isolates(direction) {
                        continue;
                    }
                    let mut removed = 0;
                    for index in 0..base.policy(id).rules(direction).len() {
                        let mut trial = working.clone();
                        rules_mut(&mut trial.policies[id], direction).remove(index - removed);
                        if unchanged(&working, &trial) {
                            rules.push((id, direction, index));
                            working = trial;
                            removed += 1;
                        }
                    }
                }
            }
            prop_assert_eq!(found.policies, policies);
            let found_rules: Vec<_> = found.rules.iter().map(|r| (r.policy, r.direction, r.index)).collect();
            prop_assert_eq!(found_rules, rules);
        }

        /// The search compares trials with the base's tables, relying on the working set
        /// allowing what the base allows; compiling the working set instead must find the same.
        #[test]
        fn base_tables_stand_in_for_the_working_set(cluster in arb_cluster()) {
            let base = Analysis::new(cluster);
            let tables = Allowed::new(&base);
            prop_assert_eq!(
                removable_with(&tables, |working| Before::LikeBase(working)),
                removable_with(&tables, |working| Before::Policies(&working.policies))
            );
        }
    }
}
