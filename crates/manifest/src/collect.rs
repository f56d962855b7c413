//! What documents yield, gathered across files, and the whole-input rules applied at the end:
//! duplicates, workloads whose pods are in the input, implicit namespaces.

use crate::{ClusterNode, Diagnostic, Loaded, Origin, Severity};
use palisade_engine::{Endpoint, EndpointKind, Labels, Namespace, NetworkPolicy};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// An object that made it through validation, with where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Record<T> {
    pub item: T,
    pub file_index: usize,
    /// The object's start.
    pub origin: Origin,
    /// Its `metadata.name`, where duplicates are reported.
    pub name_origin: Origin,
}

impl<T> Record<T> {
    fn relocate(&mut self, file_index: usize, shift: impl Fn(&mut Origin)) {
        self.file_index = file_index;
        shift(&mut self.origin);
        shift(&mut self.name_origin);
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Owner {
    pub kind: String,
    pub name: String,
    pub uid: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct EndpointInfo {
    pub endpoint: Endpoint,
    pub uid: Option<String>,
    /// `metadata.ownerReferences`, the controller first.
    pub owners: Vec<Owner>,
    /// The `pod-template-hash` label, which ties a Deployment's pods to it through a
    /// ReplicaSet that may be missing from the input.
    pub template_hash: Option<String>,
}

/// Results in input order; batches of consecutive pieces append to each other.
#[derive(Clone, Debug, Default)]
pub(crate) struct Batch {
    pub namespaces: Vec<Record<Namespace>>,
    pub endpoints: Vec<Record<EndpointInfo>>,
    pub policies: Vec<Record<NetworkPolicy>>,
    pub nodes: Vec<Record<ClusterNode>>,
    pub diagnostics: Vec<(usize, Diagnostic)>,
    pub skipped_kinds: BTreeMap<String, usize>,
}

/// Owner chains longer than this are cycles or nonsense (real ones: Pod→ReplicaSet→Deployment).
const MAX_OWNER_CHAIN: usize = 8;

impl Batch {
    pub fn append(&mut self, other: Batch) {
        self.namespaces.extend(other.namespaces);
        self.endpoints.extend(other.endpoints);
        self.policies.extend(other.policies);
        self.nodes.extend(other.nodes);
        self.diagnostics.extend(other.diagnostics);
        for (kind, count) in other.skipped_kinds {
            *self.skipped_kinds.entry(kind).or_default() += count;
        }
    }

    pub fn diagnose(&mut self, file_index: usize, diagnostic: Diagnostic) {
        self.diagnostics.push((file_index, diagnostic));
    }

    /// Moves what one document yielded to where that document is now: input file
    /// `file_index` (of the same name), starting after line `first_line` instead of
    /// `was_first_line`. Positions are the document's own plus its first line, and messages
    /// hold none, so this gives what loading the document there gives.
    pub fn relocate(&mut self, file_index: usize, was_first_line: usize, first_line: usize) {
        // Every line of a document is past `was_first_line`: nothing saturates.
        let shift = |origin: &mut Origin| {
            origin.line = (origin.line + first_line).saturating_sub(was_first_line);
        };
        for r in &mut self.namespaces {
            r.relocate(file_index, shift);
        }
        for r in &mut self.endpoints {
            r.relocate(file_index, shift);
        }
        for r in &mut self.policies {
            r.relocate(file_index, shift);
        }
        for r in &mut self.nodes {
            r.relocate(file_index, shift);
        }
        for (file, diagnostic) in &mut self.diagnostics {
            *file = file_index;
            shift(&mut diagnostic.origin);
        }
    }

    pub fn finish(mut self) -> Loaded {
        let namespaces = first_of_each(
            std::mem::take(&mut self.namespaces),
            |n| n.item.name.clone(),
            |n| format!("Namespace {}", n.item.name),
            &mut self.diagnostics,
        );
        let policies = first_of_each(
            std::mem::take(&mut self.policies),
            |p| (p.item.namespace.clone(), p.item.name.clone()),
            |p| format!("NetworkPolicy {}", p.item.qualified_name()),
            &mut self.diagnostics,
        );
        let endpoints = first_of_each(
            std::mem::take(&mut self.endpoints),
            |e| {
                let ep = &e.item.endpoint;
                (ep.namespace.clone(), ep.kind.clone(), ep.name.clone())
            },
            |e| object_label(&e.item.endpoint),
            &mut self.diagnostics,
        );
        let endpoints = fold_owned(endpoints);
        warn_shared_addresses(&endpoints, &mut self.diagnostics);
        let nodes = first_of_each(
            std::mem::take(&mut self.nodes),
            |n| n.item.name.clone(),
            |n| format!("Node {}", n.item.name),
            &mut self.diagnostics,
        );

        let mut loaded = Loaded {
            nodes: nodes.into_iter().map(|r| r.item).collect(),
            skipped_kinds: self.skipped_kinds,
            ..Loaded::default()
        };
        let declared: BTreeSet<&str> = namespaces.iter().map(|n| n.item.name.as_str()).collect();
        let implicit: BTreeSet<String> = endpoints
            .iter()
            .map(|e| &e.item.endpoint.namespace)
            .chain(policies.iter().map(|p| &p.item.namespace))
            .filter(|n| !declared.contains(n.as_str()))
            .cloned()
            .collect();
        let cluster = &mut loaded.cluster;
        for record in namespaces {
            cluster.namespaces.push(record.item);
            loaded.namespace_origins.push(Some(record.origin));
        }
        for name in implicit {
            cluster.namespaces.push(Namespace::new(name, Labels::new()));
            loaded.namespace_origins.push(None);
        }
        for record in endpoints {
            cluster.endpoints.push(record.item.endpoint);
            loaded.endpoint_origins.push(record.origin);
        }
        for record in policies {
            cluster.policies.push(record.item);
            loaded.policy_origins.push(record.origin);
        }
        self.diagnostics.sort_by(|(fa, a), (fb, b)| {
            (fa, a.origin.line, a.origin.column).cmp(&(fb, b.origin.line, b.origin.column))
        });
        loaded.diagnostics = listed_diagnostics(self.diagnostics);
        loaded
    }
}

/// Problems listed per file: past this, a file is not a manifest gone wrong in places but the
/// wrong file (20 MB of scalars would be millions of lines).
pub(crate) const MAX_DIAGNOSTICS_PER_FILE: usize = 1000;

/// The diagnostics (sorted by file) with at most [`MAX_DIAGNOSTICS_PER_FILE`] of each file,
/// the rest counted in one more.
fn listed_diagnostics(diagnostics: Vec<(usize, Diagnostic)>) -> Vec<Diagnostic> {
    let mut listed = Vec::with_capacity(diagnostics.len().min(MAX_DIAGNOSTICS_PER_FILE));
    let mut files = diagnostics.into_iter().peekable();
    while let Some((file, first)) = files.next() {
        let (mut count, mut errors) = (1, 0);
        let mut last_hidden = None;
        listed.push(first);
        while let Some((_, diagnostic)) = files.next_if(|(f, _)| *f == file) {
            count += 1;
            if count <= MAX_DIAGNOSTICS_PER_FILE {
                listed.push(diagnostic);
            } else {
                errors += usize::from(diagnostic.severity == Severity::Error);
                last_hidden = Some(diagnostic.origin);
            }
        }
        if let Some(origin) = last_hidden {
            let hidden = count - MAX_DIAGNOSTICS_PER_FILE;
            listed.push(Diagnostic {
                severity: if errors > 0 { Severity::Error } else { Severity::Warning },
                origin,
                object: None,
                field: None,
                message: format!(
                    "{hidden} more problems in this file ({errors} errors) are not listed; the first {MAX_DIAGNOSTICS_PER_FILE} are"
                ),
            });
        }
    }
    listed
}

/// `Pod ns/name`, `Deployment ns/name`.
pub(crate) fn object_label(endpoint: &Endpoint) -> String {
    let kind = match &endpoint.kind {
        EndpointKind::Pod => "Pod",
        EndpointKind::Workload { kind } => kind,
    };
    format!("{kind} {}/{}", endpoint.namespace, endpoint.name)
}

/// Two pods with one address (stale manifests, a copied status) make every answer about that
/// address depend on which came first: a warning at the later one. hostNetwork pods share
/// their node's address by design.
fn warn_shared_addresses(
    endpoints: &[Record<EndpointInfo>],
    diagnostics: &mut Vec<(usize, Diagnostic)>,
) {
    let mut first: HashMap<std::net::IpAddr, &Record<EndpointInfo>> = HashMap::new();
    for record in endpoints {
        let endpoint = &record.item.endpoint;
        if endpoint.host_network {
            continue;
        }
        for &ip in &endpoint.ips {
            let earlier = match first.entry(ip) {
                Entry::Vacant(slot) => {
                    slot.insert(record);
                    continue;
                }
                Entry::Occupied(earlier) => *earlier.get(),
            };
            let diagnostic = Diagnostic {
                severity: Severity::Warning,
                origin: record.origin.clone(),
                object: Some(object_label(endpoint)),
                field: Some("status.podIPs".to_string()),
                message: format!(
                    "{ip} is also the address of {} ({}): `check {ip}` answers for that one",
                    object_label(&earlier.item.endpoint),
                    earlier.origin
                ),
            };
            diagnostics.push((record.file_index, diagnostic));
        }
    }
}

/// Keeps the first object of each identity; later ones are errors, as creating them would be.
fn first_of_each<T, K: std::hash::Hash + Eq>(
    records: Vec<Record<T>>,
    key: impl Fn(&Record<T>) -> K,
    label: impl Fn(&Record<T>) -> String,
    diagnostics: &mut Vec<(usize, Diagnostic)>,
) -> Vec<Record<T>> {
    let mut first: HashMap<K, Origin> = HashMap::with_capacity(records.len());
    let mut kept = Vec::with_capacity(records.len());
    for record in records {
        match first.entry(key(&record)) {
            Entry::Occupied(seen) => {
                let diagnostic = Diagnostic {
                    severity: Severity::Error,
                    origin: record.name_origin.clone(),
                    object: Some(label(&record)),
                    field: Some("metadata.name".to_string()),
                    message: format!(
                        "duplicate name: already defined at {}; this one is left out",
                        seen.get()
                    ),
                };
                diagnostics.push((record.file_index, diagnostic));
            }
            Entry::Vacant(slot) => {
                slot.insert(record.origin.clone());
                kept.push(record);
            }
        }
    }
    kept
}

/// Counts every pod once. A Pod whose owner chain (`metadata.ownerReferences`, directly or
/// through a ReplicaSet, which may itself be absent when the pod's `pod-template-hash` label
/// names it) reaches a workload in the input stands for itself: the Pod is kept (it has real
/// IPs) and every workload on that chain is dropped. A workload owned by another workload in
/// the input (a Deployment's ReplicaSet, a CronJob's Job) is folded into its owner. Standalone
/// workloads stay as one endpoint each.
fn fold_owned(records: Vec<Record<EndpointInfo>>) -> Vec<Record<EndpointInfo>> {
    let workloads: HashMap<(&str, &str, &str), usize> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let ep = &r.item.endpoint;
            match &ep.kind {
                EndpointKind::Workload { kind } => {
                    Some(((ep.namespace.as_str(), kind.as_str(), ep.name.as_str()), i))
                }
                EndpointKind::Pod => None,
            }
        })
        .collect();
    let find = |namespace: &str, kind: &str, name: &str, uid: Option<&str>| {
        workloads
            .get(&(namespace, kind, name))
            .copied()
            .filter(|&j| match (uid, records[j].item.uid.as_deref()) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            })
    };
    let parent: Vec<Option<usize>> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let info = &r.item;
            let ns = info.endpoint.namespace.as_str();
            info.owners.iter().find_map(|owner| {
                find(ns, &owner.kind, &owner.name, owner.uid.as_deref())
                    .or_else(|| {
                        let hash = info.template_hash.as_deref()?;
                        let deployment = owner.name.strip_suffix(hash)?.strip_suffix('-')?;
                        (owner.kind == "ReplicaSet").then_some(())?;
                        find(ns, "Deployment", deployment, None)
                    })
                    .filter(|&j| j != i)
            })
        })
        .collect();
    let mut dropped = vec![false; records.len()];
    for (i, record) in records.iter().enumerate() {
        match record.item.endpoint.kind {
            EndpointKind::Workload { .. } => dropped[i] |= parent[i].is_some(),
            EndpointKind::Pod => {
                let mut next = parent[i];
                for _ in 0..MAX_OWNER_CHAIN {
                    let Some(j) = next else { break };
                    dropped[j] = true;
                    next = parent[j];
                }
            }
        }
    }
    records
        .into_iter()
        .zip(dropped)
        .filter_map(|(r, dropped)| (!dropped).then_some(r))
        .collect()
}
