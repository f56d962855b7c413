//! The compiled form of a cluster: endpoints grouped into classes that no policy can tell apart,
//! each class indexed by the policies that isolate it, so that a decision never re-evaluates
//! every selector of the cluster. Lookups by name and address, and the questions lint and
//! explanations ask about one policy, live here; decisions in [`crate::decide`].

use crate::class_index::ClassIndex;
use crate::classes::{Class, classify, direction_slot};
use crate::ids::{ClassId, EndpointId, PolicyId};
use crate::model::{
    Cluster, Direction, Endpoint, EndpointKind, IpBlock, Namespace, NamespaceScope, NetworkPolicy,
    Peer, PortRef, Rule,
};
use crate::ports::Protocol;
use crate::rules;
use crate::selector::{LabelSelector, Labels};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::OnceLock;
use typed_index_collections::TiVec;

/// One side of a connection: an endpoint of the cluster, or an address outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    Endpoint(EndpointId),
    External(IpAddr),
}

pub struct Analysis {
    pub(crate) cluster: Cluster,
    pub(crate) namespace_index: HashMap<String, usize>,
    endpoint_class: TiVec<EndpointId, ClassId>,
    pub(crate) classes: TiVec<ClassId, Class>,
    class_members: TiVec<ClassId, Vec<EndpointId>>,
    endpoint_by_name: HashMap<String, EndpointId>,
    endpoint_by_ip: HashMap<IpAddr, EndpointId>,
    /// Built when a whole-cluster question first needs it; a single decision never does.
    class_index: OnceLock<ClassIndex>,
}

/// The ports to ask about, per destination ([`Analysis::ports_to_probe`]).
#[derive(Clone, Debug)]
pub struct ProbePorts {
    /// Numeric ports that any rule names.
    mentioned: BTreeSet<(u16, Protocol)>,
    /// Numeric ports of rules with an ipBlock peer, or `mentioned` when there are none.
    outside: BTreeSet<(u16, Protocol)>,
}

impl ProbePorts {
    /// For an endpoint: its declared container ports, or, when it declares none, the numeric
    /// ports the rules mention.
    pub fn for_endpoint(&self, endpoint: &Endpoint) -> BTreeSet<(u16, Protocol)> {
        if endpoint.ports.is_empty() {
            self.mentioned.clone()
        } else {
            endpoint
                .ports
                .iter()
                .map(|p| (p.port, p.protocol))
                .collect()
        }
    }

    /// For an outside range: the ports of rules with an ipBlock peer, or every mentioned port
    /// when no rule has one.
    pub fn for_outside(&self) -> &BTreeSet<(u16, Protocol)> {
        &self.outside
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
        let (classes, endpoint_class) = classify(&cluster, &namespace_index);
        let endpoint_by_name = cluster
            .endpoints
            .iter_enumerated()
            .map(|(id, ep)| (ep.qualified_name(), id))
            .collect();
        let mut endpoint_by_ip = HashMap::new();
        for (id, ep) in cluster.endpoints.iter_enumerated() {
            for ip in &ep.ips {
                endpoint_by_ip.entry(*ip).or_insert(id);
            }
        }
        let mut class_members: TiVec<ClassId, Vec<EndpointId>> =
            vec![Vec::new(); classes.len()].into();
        for (id, &class) in endpoint_class.iter_enumerated() {
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
            class_index: OnceLock::new(),
        }
    }

    pub(crate) fn class_index(&self) -> &ClassIndex {
        self.class_index
            .get_or_init(|| ClassIndex::new(&self.cluster, &self.classes))
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
        let mut workloads = self.cluster.endpoints.iter_enumerated().filter(|(_, e)| {
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

    /// Every class, ascending.
    pub fn class_ids(&self) -> impl Iterator<Item = ClassId> + use<> {
        self.classes.keys()
    }

    /// The endpoint a subject is, `None` for an outside address: how the rules see a
    /// destination.
    pub(crate) fn endpoint_of(&self, subject: Subject) -> Option<&Endpoint> {
        match subject {
            Subject::Endpoint(id) => Some(&self.cluster.endpoints[id]),
            Subject::External(_) => None,
        }
    }

    /// The labels of an endpoint's namespace (by its class: no name lookup on hot paths).
    pub(crate) fn namespace_labels(&self, endpoint: EndpointId) -> &Labels {
        let class = &self.classes[self.endpoint_class[endpoint]];
        &self.cluster.namespaces[class.namespace].labels
    }

    /// Policies that select the endpoint and isolate it in `direction`; empty: not isolated.
    pub fn isolating_policies(&self, endpoint: EndpointId, direction: Direction) -> &[PolicyId] {
        &self.classes[self.endpoint_class[endpoint]].isolating[direction_slot(direction)]
    }

    /// Endpoints whose pods the policy's podSelector selects.
    pub fn selected_endpoints(&self, policy: PolicyId) -> Vec<EndpointId> {
        self.endpoints_of(&self.selected_classes(policy))
    }

    /// Endpoints a peer of `policy` matches (for explanations; ipBlocks match by address).
    pub fn peer_endpoints(&self, policy: PolicyId, peer: &Peer) -> Vec<EndpointId> {
        self.endpoints_of(&self.peer_classes(policy, peer))
    }

    /// The endpoints a rule's ports resolve on ([`rules::destination`]): the selected pods for
    /// ingress; for egress the pods its peers match, every endpoint when it has no peers.
    pub fn rule_destinations(
        &self,
        policy: PolicyId,
        direction: Direction,
        rule: &Rule,
    ) -> Vec<EndpointId> {
        let classes = match direction {
            Direction::Ingress => self.selected_classes(policy),
            Direction::Egress if rule.peers.is_empty() => self.class_ids().collect(),
            Direction::Egress => {
                let mut classes: Vec<ClassId> = rule
                    .peers
                    .iter()
                    .flat_map(|peer| self.peer_classes(policy, peer))
                    .collect();
                classes.sort_unstable();
                classes.dedup();
                classes
            }
        };
        self.endpoints_of(&classes)
    }

    /// The classes whose members the policy's podSelector selects: a class decides for all its
    /// members, so each question is asked once per class, not per endpoint.
    pub fn selected_classes(&self, policy: PolicyId) -> Vec<ClassId> {
        let p = &self.cluster.policies[policy];
        let namespace = self.namespace_index[&p.namespace];
        let candidates = self.class_index().candidates(namespace, &p.pod_selector);
        self.matching(candidates, |rep| {
            rules::selects(p, &self.cluster.endpoints[rep])
        })
    }

    /// The classes whose members a peer of `policy` matches.
    pub fn peer_classes(&self, policy: PolicyId, peer: &Peer) -> Vec<ClassId> {
        let p = &self.cluster.policies[policy];
        match peer {
            Peer::IpBlock(block) => self.block_classes(block),
            Peer::Pods { namespaces, pods } => {
                self.pod_peer_classes(&p.namespace, namespaces, pods)
            }
        }
    }

    /// The classes with an address an ipBlock matches, ascending.
    pub(crate) fn block_classes(&self, block: &IpBlock) -> Vec<ClassId> {
        self.matching(&self.class_index().in_network(&block.cidr), |rep| {
            rules::block_matches_endpoint(block, &self.cluster.endpoints[rep])
        })
    }

    /// The classes a pod peer of a policy in `policy_namespace` matches, ascending: the
    /// namespace half asked once per namespace, the pod half per candidate class of the
    /// admitted namespaces (found by label).
    pub(crate) fn pod_peer_classes(
        &self,
        policy_namespace: &str,
        scope: &NamespaceScope,
        pods: &LabelSelector,
    ) -> Vec<ClassId> {
        let index = self.class_index();
        let mut classes: Vec<ClassId> = (self.cluster.namespaces.iter().enumerate())
            .filter(|(_, ns)| {
                rules::namespace_matches(scope, policy_namespace, &ns.name, &ns.labels)
            })
            .flat_map(|(namespace, _)| {
                self.matching(index.candidates(namespace, pods), |rep| {
                    rules::pod_matches(pods, &self.cluster.endpoints[rep])
                })
            })
            .collect();
        classes.sort_unstable();
        classes
    }

    /// The candidates (ascending) whose representative satisfies `keep`.
    fn matching(&self, candidates: &[ClassId], keep: impl Fn(EndpointId) -> bool) -> Vec<ClassId> {
        candidates
            .iter()
            .copied()
            .filter(|&class| keep(self.classes[class].representative))
            .collect()
    }

    /// The endpoints of a class, ascending; any one of them answers for all.
    pub fn class_members(&self, class: ClassId) -> &[EndpointId] {
        &self.class_members[class]
    }

    /// The members of `classes`, ascending.
    pub fn endpoints_of(&self, classes: &[ClassId]) -> Vec<EndpointId> {
        let mut ids: Vec<EndpointId> = classes
            .iter()
            .flat_map(|&class| self.class_members[class].iter().copied())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Whether `peer` of `policy` matches `other` ([`rules::peer_matches_endpoint`],
    /// [`rules::peer_matches_outside`]).
    pub(crate) fn peer_matches(&self, policy: &NetworkPolicy, peer: &Peer, other: Subject) -> bool {
        match other {
            Subject::External(ip) => rules::peer_matches_outside(peer, ip),
            Subject::Endpoint(id) => {
                let ep = &self.cluster.endpoints[id];
                rules::peer_matches_endpoint(peer, &policy.namespace, ep, self.namespace_labels(id))
            }
        }
    }

    /// Numeric ports that policy rules name (the first port of a range). With
    /// `ip_block_rules_only`, only rules that have an ipBlock peer count.
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

    /// The ports to ask about per destination, so that `matrix` and the lab list the same rows
    /// (the lab's comparison relies on it).
    pub fn ports_to_probe(&self) -> ProbePorts {
        let mentioned = self.mentioned_ports(false);
        let outside = self.mentioned_ports(true);
        let outside = if outside.is_empty() {
            mentioned.clone()
        } else {
            outside
        };
        ProbePorts { mentioned, outside }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Rule;
    use crate::ports::Protocol::{Tcp, Udp};
    use crate::testing::{block, pod, pods_peer, policy, port};

    fn numbered(protocol: Protocol, first: u16) -> crate::model::PortRule {
        port(protocol, Some(PortRef::Number(first)), None)
    }

    #[test]
    fn ports_to_probe_are_declared_ports_else_the_rules_ports() {
        let declared = pod("a", "web", &[], &["10.0.0.1"], &[("http", 8080, Tcp)]);
        let bare = pod("a", "bare", &[], &["10.0.0.2"], &[]);
        let pod_rule = Rule {
            peers: vec![pods_peer(None, &[])],
            ports: vec![
                numbered(Tcp, 80),
                port(Tcp, Some(PortRef::Named("http".into())), None),
            ],
        };
        let block_rule = Rule {
            peers: vec![block("10.9.0.0/16", &[])],
            ports: vec![numbered(Udp, 53)],
        };
        let probe = |rules: Vec<Rule>| {
            Analysis::new(Cluster {
                endpoints: vec![declared.clone(), bare.clone()].into(),
                policies: vec![policy("a", "p", &[], Some(rules), None)].into(),
                ..Cluster::default()
            })
            .ports_to_probe()
        };
        let set = |ports: &[(u16, Protocol)]| ports.iter().copied().collect::<BTreeSet<_>>();

        let both = probe(vec![pod_rule.clone(), block_rule]);
        assert_eq!(both.for_endpoint(&declared), set(&[(8080, Tcp)]));
        // Named ports are left out: they only mean something on a pod that declares them.
        assert_eq!(both.for_endpoint(&bare), set(&[(53, Udp), (80, Tcp)]));
        assert_eq!(*both.for_outside(), set(&[(53, Udp)]));

        // Without ipBlock rules, outside ranges are asked about every mentioned port.
        let pods_only = probe(vec![pod_rule]);
        assert_eq!(*pods_only.for_outside(), set(&[(80, Tcp)]));
        assert_eq!(pods_only.for_endpoint(&bare), set(&[(80, Tcp)]));
    }
}
