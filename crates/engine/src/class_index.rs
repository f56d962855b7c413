//! Which classes a selector can match, looked up by label instead of asking every class: the
//! candidates for whole-cluster tables and for "which classes does this policy or peer name".
//! The index only narrows; whether a candidate matches is always what [`crate::rules`] says.

use crate::addresses::{ip_to_u128, net_numbers};
use crate::classes::Class;
use crate::ids::ClassId;
use crate::model::Cluster;
use crate::selector::{LabelSelector, Operator};
use ipnet::IpNet;
use rustc_hash::FxHashMap;
use typed_index_collections::TiSlice;

pub(crate) struct ClassIndex {
    /// Per namespace index: its classes of pods (not hostNetwork), and those by label.
    namespaces: Vec<NamespaceClasses>,
    /// Every address of every class's representative, as (IPv4?, number, class), sorted: what
    /// an ipBlock can match, found by its range.
    by_address: Vec<(bool, u128, ClassId)>,
}

/// The classes of one namespace's pods (not hostNetwork), each list ascending.
#[derive(Default)]
struct NamespaceClasses {
    all: Vec<ClassId>,
    /// label key → value → classes carrying it.
    by_label: FxHashMap<String, FxHashMap<String, Vec<ClassId>>>,
    /// label key → classes carrying the key.
    by_key: FxHashMap<String, Vec<ClassId>>,
}

impl ClassIndex {
    pub(crate) fn new(cluster: &Cluster, classes: &TiSlice<ClassId, Class>) -> Self {
        let mut index = Self {
            namespaces: (0..cluster.namespaces.len())
                .map(|_| NamespaceClasses::default())
                .collect(),
            by_address: Vec::new(),
        };
        for (id, class) in classes.iter_enumerated() {
            let representative = &cluster.endpoints[class.representative];
            index
                .by_address
                .extend((representative.ips.iter()).map(|&ip| (ip.is_ipv4(), ip_to_u128(ip), id)));
            if representative.host_network {
                continue;
            }
            let namespace = &mut index.namespaces[class.namespace];
            namespace.all.push(id);
            for (key, value) in &representative.labels {
                let values = namespace.by_label.entry(key.clone()).or_default();
                values.entry(value.clone()).or_default().push(id);
                namespace.by_key.entry(key.clone()).or_default().push(id);
            }
        }
        index.by_address.sort_unstable();
        index
    }

    /// A superset of the classes in `namespace` (an index into the cluster's namespaces) that
    /// a pod selector can match, ascending: from its most selective positive term, or every
    /// class of the namespace when it has none.
    pub(crate) fn candidates(&self, namespace: usize, selector: &LabelSelector) -> &[ClassId] {
        let namespace = &self.namespaces[namespace];
        let lookup = |key: &str, value: &str| -> &[ClassId] {
            (namespace.by_label.get(key))
                .and_then(|values| values.get(value))
                .map_or(&[], Vec::as_slice)
        };
        let mut best: &[ClassId] = &namespace.all;
        for (key, value) in &selector.match_labels {
            let list = lookup(key, value);
            if list.len() < best.len() {
                best = list;
            }
        }
        for requirement in &selector.match_expressions {
            let list = match requirement.operator {
                // One value: its list as it is; several: the key's, a superset of their union.
                Operator::In if requirement.values.len() == 1 => {
                    lookup(&requirement.key, &requirement.values[0])
                }
                Operator::In | Operator::Exists => {
                    (namespace.by_key.get(&requirement.key)).map_or(&[][..], Vec::as_slice)
                }
                Operator::NotIn | Operator::DoesNotExist => continue,
            };
            if list.len() < best.len() {
                best = list;
            }
        }
        best
    }

    /// The classes with an address in `net`, ascending.
    pub(crate) fn in_network(&self, net: &IpNet) -> Vec<ClassId> {
        let v4 = matches!(net, IpNet::V4(_));
        let (first, last) = net_numbers(net);
        let start = self
            .by_address
            .partition_point(|&(f, n, _)| (f, n) < (v4, first));
        let mut classes: Vec<ClassId> = self.by_address[start..]
            .iter()
            .take_while(|&&(f, n, _)| f == v4 && n <= last)
            .map(|&(_, _, class)| class)
            .collect();
        classes.sort_unstable();
        classes.dedup();
        classes
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::{Analysis, Subject};
    use crate::ids::{ClassId, EndpointId};
    use crate::model::{Cluster, NamespaceScope, Peer};
    use crate::rules;
    use crate::selector::{LabelSelector, Operator, Requirement};
    use crate::testing::{arb_cluster, arb_peer};
    use proptest::prelude::*;

    /// Selectors with every operator, so candidates come from each kind of term (or none).
    fn arb_expression_selector() -> impl Strategy<Value = LabelSelector> {
        let operator = prop_oneof![
            Just(Operator::In),
            Just(Operator::NotIn),
            Just(Operator::Exists),
            Just(Operator::DoesNotExist),
        ];
        let values = proptest::sample::subsequence(vec!["a", "b", "x"], 0..3);
        let key = prop_oneof![Just("app"), Just("tier")];
        proptest::collection::vec((key, operator, values), 0..3).prop_map(|terms| LabelSelector {
            match_labels: Default::default(),
            match_expressions: terms
                .into_iter()
                .map(|(key, operator, values)| Requirement {
                    key: key.to_string(),
                    values: match operator {
                        Operator::In | Operator::NotIn => {
                            values.into_iter().map(String::from).collect()
                        }
                        Operator::Exists | Operator::DoesNotExist => Vec::new(),
                    },
                    operator,
                })
                .collect(),
        })
    }

    fn arb_case() -> impl Strategy<Value = (Cluster, Vec<Peer>)> {
        (
            arb_cluster(),
            proptest::collection::vec(arb_peer(), 1..4),
            arb_expression_selector(),
            any::<bool>(),
        )
            .prop_map(|(mut cluster, mut peers, selector, host_network)| {
                // A hostNetwork pod is never selected nor matched by a pod peer, but an ipBlock
                // matches its address.
                cluster.endpoints[EndpointId::from(0)].host_network = host_network;
                peers.push(Peer::Pods {
                    namespaces: NamespaceScope::Selected(LabelSelector::default()),
                    pods: selector.clone(),
                });
                for policy in &mut cluster.policies {
                    policy.pod_selector = selector.clone();
                }
                (cluster, peers)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The index narrows only: what it answers is what asking every class answers.
        #[test]
        fn indexed_lookups_equal_asking_every_class((cluster, peers) in arb_case()) {
            let analysis = Analysis::new(cluster);
            let every_class = |keep: &dyn Fn(EndpointId) -> bool| -> Vec<ClassId> {
                analysis
                    .class_ids()
                    .filter(|&c| keep(analysis.class_members(c)[0]))
                    .collect()
            };
            for (policy_id, policy) in analysis.cluster().policies.iter_enumerated() {
                prop_assert_eq!(
                    analysis.selected_classes(policy_id),
                    every_class(&|e| rules::selects(policy, analysis.endpoint(e)))
                );
                for peer in &peers {
                    prop_assert_eq!(
                        analysis.peer_classes(policy_id, peer),
                        every_class(&|e| analysis.peer_matches(policy, peer, Subject::Endpoint(e)))
                    );
                }
            }
        }
    }
}
