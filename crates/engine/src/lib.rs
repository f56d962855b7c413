//! Palisade's policy engine: the exact `networking.k8s.io/v1` NetworkPolicy semantics, pure
//! (no I/O, no async, no YAML, no nftables). Analyzer and enforcer both ask this crate, so they
//! cannot disagree.
//!
//! Where to look: `rules` defines each NetworkPolicy rule once (isolation, peer match, port
//! match, the destination of a side); `addresses` the address ranges; `classes` the endpoint
//! classes (`class_index` finds them by label and address); `decide` one connection's decision;
//! `connectivity` the whole cluster's; `program` a node's enforcement program; `ports` port
//! sets; `selector` label selectors; `model` the input.

mod addresses;
mod analysis;
mod class_index;
mod classes;
mod connectivity;
mod decide;
mod ids;
mod model;
mod ports;
mod program;
mod rules;
mod selector;
#[cfg(test)]
mod testing;

pub use addresses::{IpRange, family_max, ip_to_u128, ranges_from_starts, u128_to_ip};
pub use analysis::{Analysis, ProbePorts, Subject};
pub use connectivity::{Connectivity, DestinationKey, PortSetId, SourceKey, Vertex};
pub use decide::{Decision, RuleRef, SideVerdict};
pub use ids::{ChainId, ClassId, EndpointId, PolicyId, RuleId};
pub use model::{
    Cluster, ContainerPort, Direction, Endpoint, EndpointKind, IpBlock, NAMESPACE_NAME_LABEL,
    Namespace, NamespaceScope, NetworkPolicy, Peer, PolicyTypes, PortRef, PortRule, Rule,
};
pub use ports::{MAX_PORT, MIN_PORT, PortSet, Protocol};
pub use program::{
    Chain, Isolation, LocalPod, NodeProgram, PortMatch, RuleProgram, SideOutcome, every_pod_local,
};
pub use selector::{LabelSelector, Labels, Operator, Requirement};
pub use typed_index_collections::{TiSlice, TiVec};
