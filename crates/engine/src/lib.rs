//! Palisade's policy engine: the exact `networking.k8s.io/v1` NetworkPolicy semantics, pure
//! (no I/O, no async, no YAML, no nftables). Analyzer and enforcer both ask this crate, so they
//! cannot disagree.

mod analysis;
mod connectivity;
mod model;
mod ports;
mod program;
mod selector;

pub use analysis::{
    Analysis, ClassId, Decision, EndpointId, ExternalRange, PolicyId, RuleRef, SideVerdict,
    Subject, ip_to_u128, u128_to_ip,
};
pub use connectivity::{Connectivity, DestinationKey, Node, PortSetId, SourceKey};
pub use model::{
    Cluster, ContainerPort, Direction, Endpoint, EndpointKind, IpBlock, NAMESPACE_NAME_LABEL,
    Namespace, NamespaceScope, NetworkPolicy, Peer, PolicyTypes, PortRef, PortRule, Rule,
};
pub use ports::{MAX_PORT, MIN_PORT, PortSet, Protocol};
pub use program::{
    Chain, ChainId, IpRange, Isolation, LocalPod, NodeProgram, PortMatch, RuleId, RuleProgram,
    SideOutcome, every_pod_local,
};
pub use selector::{LabelSelector, Labels, Operator, Requirement};
