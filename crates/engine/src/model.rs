//! The cluster as the engine sees it: namespaces, endpoints and NetworkPolicies, already
//! validated and defaulted. Loaders (YAML, the API server) build these; the engine never parses.

use crate::ids::{EndpointId, PolicyId};
use crate::ports::Protocol;
use crate::selector::{LabelSelector, Labels};
use ipnet::IpNet;
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;
use typed_index_collections::TiVec;

/// The label every namespace carries, set by the API server since Kubernetes 1.21.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub labels: Labels,
}

impl Namespace {
    /// Builds a namespace with the `kubernetes.io/metadata.name` label the API server guarantees.
    pub fn new(name: impl Into<String>, mut labels: Labels) -> Self {
        let name = name.into();
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.clone());
        Self { name, labels }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

/// What an endpoint stands for: one pod, or the pods of a workload (all alike to policies).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum EndpointKind {
    Pod,
    Workload { kind: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub namespace: String,
    pub name: String,
    pub kind: EndpointKind,
    pub labels: Labels,
    pub ips: Vec<IpAddr>,
    pub ports: Vec<ContainerPort>,
    /// hostNetwork pods share the node's network: no pod selector selects them.
    pub host_network: bool,
    /// How many pods this endpoint stands for (a workload's replicas).
    pub replicas: u32,
}

impl Endpoint {
    pub fn pod(namespace: impl Into<String>, name: impl Into<String>, labels: Labels) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            kind: EndpointKind::Pod,
            labels,
            ips: Vec::new(),
            ports: Vec::new(),
            host_network: false,
            replicas: 1,
        }
    }

    /// `ns/name` for pods, `ns/kind/name` for workloads: the names `check` accepts.
    pub fn qualified_name(&self) -> String {
        match &self.kind {
            EndpointKind::Pod => format!("{}/{}", self.namespace, self.name),
            EndpointKind::Workload { kind } => {
                format!("{}/{}/{}", self.namespace, kind.to_lowercase(), self.name)
            }
        }
    }

    /// Resolves a named port against this (destination) pod's container ports.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.protocol == protocol && p.name.as_deref() == Some(name))
            .map(|p| p.port)
    }
}

/// Which directions a policy isolates, after API-server defaulting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct PolicyTypes {
    pub ingress: bool,
    pub egress: bool,
}

impl PolicyTypes {
    /// The API server's defaulting: without `policyTypes`, Ingress always, and Egress only when
    /// the policy has at least one egress rule (`egress: []` does not count, as upstream's
    /// `len(spec.Egress) != 0`).
    pub fn defaulted(declared: Option<PolicyTypes>, has_egress_rules: bool) -> Self {
        declared.unwrap_or(PolicyTypes {
            ingress: true,
            egress: has_egress_rules,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Direction {
    Ingress,
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct IpBlock {
    pub cidr: IpNet,
    pub except: Vec<IpNet>,
}

impl IpBlock {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidr.contains(&ip) && !self.except.iter().any(|e| e.contains(&ip))
    }
}

/// Which namespaces a pod peer looks in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum NamespaceScope {
    /// No `namespaceSelector`: only the policy's own namespace.
    PolicyNamespace,
    /// `namespaceSelector` given; `{}` means every namespace.
    Selected(LabelSelector),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Peer {
    /// podSelector and/or namespaceSelector (ANDed when both are set). A missing podSelector is
    /// the empty selector.
    Pods {
        namespaces: NamespaceScope,
        pods: LabelSelector,
    },
    IpBlock(IpBlock),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum PortRef {
    Number(u16),
    Named(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct PortRule {
    pub protocol: Protocol,
    /// `None`: every port of the protocol.
    pub port: Option<PortRef>,
    /// Inclusive end of a range; only with a numeric port.
    pub end_port: Option<u16>,
}

/// One ingress (`from`) or egress (`to`) rule. Empty `peers` admits every peer and empty `ports`
/// every port and protocol, exactly as omitted fields do upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Rule {
    pub peers: Vec<Peer>,
    pub ports: Vec<PortRule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPolicy {
    pub namespace: String,
    pub name: String,
    pub pod_selector: LabelSelector,
    pub policy_types: PolicyTypes,
    /// Kept even when `policy_types` omits the direction (the API keeps them too; they are
    /// ignored for enforcement, and lint reports them).
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
}

impl NetworkPolicy {
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn isolates(&self, direction: Direction) -> bool {
        match direction {
            Direction::Ingress => self.policy_types.ingress,
            Direction::Egress => self.policy_types.egress,
        }
    }

    pub fn rules(&self, direction: Direction) -> &[Rule] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// Everything the engine needs. Namespaces referenced by endpoints or policies but not listed
/// are added implicitly by [`crate::Analysis::new`].
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub namespaces: Vec<Namespace>,
    pub endpoints: TiVec<EndpointId, Endpoint>,
    pub policies: TiVec<PolicyId, NetworkPolicy>,
}

impl fmt::Display for PortRule {
    /// `TCP 80`, `TCP 8000-8100`, `TCP port "http"`, `every TCP port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.port, self.end_port) {
            (None, _) => write!(f, "every {} port", self.protocol),
            (Some(PortRef::Number(p)), Some(end)) => write!(f, "{} {p}-{end}", self.protocol),
            (Some(PortRef::Number(p)), None) => write!(f, "{} {p}", self.protocol),
            (Some(PortRef::Named(name)), _) => write!(f, "{} port \"{name}\"", self.protocol),
        }
    }
}

impl fmt::Display for IpBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cidr)?;
        if !self.except.is_empty() {
            let except: Vec<String> = self.except.iter().map(ToString::to_string).collect();
            write!(f, " except {}", except.join(", "))?;
        }
        Ok(())
    }
}

impl Peer {
    /// Plain words for a peer of a policy in `policy_namespace`.
    pub fn describe(&self, policy_namespace: &str) -> String {
        match self {
            Peer::IpBlock(block) => format!("addresses in {block}"),
            Peer::Pods { namespaces, pods } => {
                let which_pods = if pods.selects_everything() {
                    "all pods".to_string()
                } else {
                    format!("pods with {pods}")
                };
                match namespaces {
                    NamespaceScope::PolicyNamespace => {
                        format!("{which_pods} in namespace {policy_namespace}")
                    }
                    NamespaceScope::Selected(sel) if sel.selects_everything() => {
                        format!(
                            "{which_pods} in every namespace (cluster only, no outside address)"
                        )
                    }
                    NamespaceScope::Selected(sel) => {
                        format!("{which_pods} in namespaces with {sel}")
                    }
                }
            }
        }
    }
}
