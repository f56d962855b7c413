//! Loads Kubernetes manifests into [`palisade_engine::Cluster`], validating NetworkPolicies the
//! way the API server does. One bad object is reported and left out; the rest still loads.
//!
//! - Input: YAML streams (several documents), JSON (read as YAML, so it has positions too),
//!   `kind: List` as `kubectl get -o yaml` prints it and typed lists such as `PodList`. A YAML
//!   error discards its document only. Aliases, merge keys (`<<`) and nesting are bounded.
//! - Kinds: Namespace, Pod, NetworkPolicy, and the workloads Deployment, ReplicaSet,
//!   StatefulSet, DaemonSet, Job, CronJob and ReplicationController, each in the one apiVersion
//!   the API server serves (any other is an error). Other kinds are counted in
//!   [`Loaded::skipped_kinds`].
//! - A workload is one endpoint standing for its pods: the pod template's labels and ports,
//!   `hostNetwork`, and `spec.replicas` (default 1; 1 for DaemonSet, Job and CronJob).
//! - Pods that are in the input stand for themselves: a workload that owns an input Pod
//!   (through `metadata.ownerReferences`, directly or via a ReplicaSet) is dropped, and a
//!   workload owned by another input workload (a Deployment's ReplicaSet, a CronJob's Job) is
//!   folded into it, so no pod is counted twice.
//! - Objects without `metadata.namespace` go to [`LoadOptions::default_namespace`]; namespaces
//!   that are used but not declared are added, all labelled `kubernetes.io/metadata.name`.
//! - A second object of the same kind, namespace and name is an error and left out.

mod cache;
mod collect;
mod de;
mod files;
mod load;
mod names;
mod objects;
mod path;
mod policy;
mod suggest;
mod typed;
mod yaml;

pub use cache::LoadCache;
use collect::Batch;
use palisade_engine::{Cluster, EndpointId, PolicyId, TiVec};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
pub use suggest::nearest;
pub use typed::Objects;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Namespace for objects that name none (`-n`); `default` unless told otherwise.
    pub default_namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            default_namespace: "default".to_string(),
        }
    }
}

/// Where an object or a field was written. Line and column are 1-based.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Origin {
    /// An object read from the API server, which has no lines: `kube:pods/ns/name`.
    pub fn object(resource: &str, namespace: Option<&str>, name: &str) -> Self {
        let file = match namespace {
            Some(ns) => format!("kube:{resource}/{ns}/{name}"),
            None => format!("kube:{resource}/{name}"),
        };
        Self {
            file,
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return f.write_str(&self.file);
        }
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A node of the cluster (`kind: Node`): its addresses are outside every pod selector, but
/// naming them tells a user which outside address is a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    pub name: String,
    pub addresses: Vec<std::net::IpAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub origin: Origin,
    /// `NetworkPolicy expense/allow-web`, when the problem belongs to one object.
    pub object: Option<String>,
    /// Field path in the object, e.g. `spec.ingress[0].from[1].ipBlock.except[0]`.
    pub field: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{}: {severity}: ", self.origin)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub cluster: Cluster,
    /// Parallel to `cluster.policies`: where each policy was written.
    pub policy_origins: TiVec<PolicyId, Origin>,
    /// Parallel to `cluster.endpoints`.
    pub endpoint_origins: TiVec<EndpointId, Origin>,
    /// Parallel to `cluster.namespaces`; `None` for namespaces that exist only because
    /// something refers to them.
    pub namespace_origins: Vec<Option<Origin>>,
    pub diagnostics: Vec<Diagnostic>,
    /// The nodes of the input (`kind: Node`), in input order.
    pub nodes: Vec<ClusterNode>,
    /// Kinds that are not about network policy, with how many objects of each were skipped.
    pub skipped_kinds: BTreeMap<String, usize>,
}

impl Loaded {
    /// Nothing was read: no object, nothing skipped, no problem (an empty directory or stdin).
    pub fn is_empty(&self) -> bool {
        let cluster = &self.cluster;
        cluster.namespaces.is_empty()
            && cluster.endpoints.is_empty()
            && cluster.policies.is_empty()
            && self.nodes.is_empty()
            && self.skipped_kinds.is_empty()
            && self.diagnostics.is_empty()
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// What `kubectl apply` of `manifests` would make of this cluster: each of their objects
    /// replaces the one of the same kind, namespace and name, or is added. Namespaces that
    /// exist in `manifests` only because something refers to them change nothing.
    pub fn apply(&mut self, manifests: Loaded) {
        let cluster = &mut self.cluster;
        let declared = manifests.cluster.namespaces.into_iter();
        for (namespace, origin) in declared.zip(manifests.namespace_origins) {
            let Some(origin) = origin else {
                if !cluster.namespaces.iter().any(|n| n.name == namespace.name) {
                    cluster.namespaces.push(namespace);
                    self.namespace_origins.push(None);
                }
                continue;
            };
            match cluster
                .namespaces
                .iter()
                .position(|n| n.name == namespace.name)
            {
                Some(i) => {
                    cluster.namespaces[i] = namespace;
                    self.namespace_origins[i] = Some(origin);
                }
                None => {
                    cluster.namespaces.push(namespace);
                    self.namespace_origins.push(Some(origin));
                }
            }
        }
        let endpoints = manifests.cluster.endpoints.into_iter();
        for (endpoint, origin) in endpoints.zip(manifests.endpoint_origins) {
            let same = |e: &&palisade_engine::Endpoint| {
                (&e.namespace, &e.kind, &e.name)
                    == (&endpoint.namespace, &endpoint.kind, &endpoint.name)
            };
            match cluster.endpoints.position(|e| same(&e)) {
                Some(i) => {
                    cluster.endpoints[i] = endpoint;
                    self.endpoint_origins[i] = origin;
                }
                None => {
                    cluster.endpoints.push(endpoint);
                    self.endpoint_origins.push(origin);
                }
            }
        }
        let policies = manifests.cluster.policies.into_iter();
        for (policy, origin) in policies.zip(manifests.policy_origins) {
            let same = |p: &palisade_engine::NetworkPolicy| {
                (&p.namespace, &p.name) == (&policy.namespace, &policy.name)
            };
            match cluster.policies.position(same) {
                Some(i) => {
                    cluster.policies[i] = policy;
                    self.policy_origins[i] = origin;
                }
                None => {
                    cluster.policies.push(policy);
                    self.policy_origins.push(origin);
                }
            }
        }
        for node in manifests.nodes {
            match self.nodes.iter().position(|n| n.name == node.name) {
                Some(i) => self.nodes[i] = node,
                None => self.nodes.push(node),
            }
        }
        self.diagnostics.extend(manifests.diagnostics);
        for (kind, n) in manifests.skipped_kinds {
            *self.skipped_kinds.entry(kind).or_default() += n;
        }
    }
}

/// Loads files, directories (recursively: .yaml, .yml, .json, in sorted order) and `-` (stdin).
/// Files named explicitly are read whatever their extension. To load the same inputs again
/// after edits, [`LoadCache::load_paths`] gives the same result faster.
pub fn load_paths(paths: &[PathBuf], options: &LoadOptions) -> Loaded {
    let mut batch = Batch::default();
    let texts = files::read_all(paths, &mut batch);
    load::texts(&files::pairs(&texts), options, batch).finish()
}

/// The texts `load_paths` would read from `paths` (files, directories walked as it walks them),
/// as `(name, text)`, for tools that hand the same manifests to something else (the lab's API
/// server). Unreadable inputs are left out.
pub fn read_texts(paths: &[PathBuf]) -> Vec<(String, String)> {
    let mut batch = Batch::default();
    files::read_all(paths, &mut batch)
        .into_iter()
        .map(|t| (t.name, t.text))
        .collect()
}

/// Loads one document stream; `name` is used as the file name in origins and diagnostics.
pub fn load_str(name: &str, text: &str, options: &LoadOptions) -> Loaded {
    load::texts(&[(name, text)], options, Batch::default()).finish()
}
