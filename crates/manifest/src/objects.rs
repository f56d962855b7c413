//! One YAML document into records: kind dispatch, apiVersion checks, deserialization into
//! k8s-openapi types, and what the engine needs from each kind.

use crate::collect::{Batch, EndpointInfo, Owner, Record};
use crate::de::De;
use crate::de::Strictness;
use crate::path::{FieldPath, Problems};
use crate::suggest::nearest;
use crate::yaml::{Node, Pos, Value};
use crate::{ClusterNode, Diagnostic, LoadOptions, Origin, Severity, names, policy};
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as net;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use palisade_engine::{ContainerPort, Endpoint, EndpointKind, Namespace, Protocol};
use serde::de::DeserializeOwned;
use std::net::IpAddr;

/// The kinds we read, with the only apiVersion the API server still serves for each.
const KINDS: &[(&str, &str)] = &[
    ("Namespace", "v1"),
    ("Node", "v1"),
    ("Pod", "v1"),
    ("ReplicationController", "v1"),
    ("NetworkPolicy", "networking.k8s.io/v1"),
    ("Deployment", "apps/v1"),
    ("ReplicaSet", "apps/v1"),
    ("StatefulSet", "apps/v1"),
    ("DaemonSet", "apps/v1"),
    ("Job", "batch/v1"),
    ("CronJob", "batch/v1"),
];

/// Where documents come from.
pub(crate) struct Source<'s> {
    pub file: &'s str,
    pub file_index: usize,
    pub options: &'s LoadOptions,
}

impl Source<'_> {
    pub fn origin(&self, pos: Pos) -> Origin {
        Origin {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.column,
        }
    }

    /// An error about the input rather than about one object.
    pub fn error(&self, batch: &mut Batch, pos: Pos, field: Option<&str>, message: &str) {
        let field = field.map(str::to_string);
        self.diagnose(
            batch,
            Severity::Error,
            pos,
            None,
            field,
            message.to_string(),
        );
    }

    pub fn diagnose(
        &self,
        batch: &mut Batch,
        severity: Severity,
        pos: Pos,
        object: Option<String>,
        field: Option<String>,
        message: String,
    ) {
        let origin = self.origin(pos);
        batch.diagnose(
            self.file_index,
            Diagnostic {
                severity,
                origin,
                object,
                field,
                message,
            },
        );
    }
}

pub(crate) fn load_document(root: &Node<'_>, src: &Source<'_>, batch: &mut Batch) {
    match root.resolved().value {
        Value::Map(_) => load_object(root, None, src, batch),
        _ => src.error(
            batch,
            root.pos,
            None,
            "expected a Kubernetes object (a mapping with apiVersion and kind)",
        ),
    }
}

/// One object, with the kind and apiVersion a typed list (`PodList`) implies for its items.
fn load_object(
    node: &Node<'_>,
    implied: Option<(&str, &str)>,
    src: &Source<'_>,
    batch: &mut Batch,
) {
    let text = |key: &str| node.get(key).and_then(Node::as_str);
    let kind = text("kind").or(implied.map(|i| i.0));
    let api_version = text("apiVersion").or(implied.map(|i| i.1));
    let Some(kind) = kind else {
        let message = match node.get("kind") {
            Some(_) => "`kind` must be a string",
            None => "missing `kind`: not a Kubernetes object",
        };
        let pos = FieldPath::new("kind").locate(node);
        return src.error(batch, pos, Some("kind"), message);
    };
    if let Some(implied) = list_items_kind(kind, api_version) {
        return load_items(node, implied, src, batch);
    }
    let known = KINDS.iter().find(|(k, _)| *k == kind);
    let Some(&(kind, expected)) = known.filter(|_| api_version.is_none_or(is_kubernetes_group))
    else {
        if let Some(meant) = misspelled_kind(kind, api_version) {
            let pos = FieldPath::new("kind").locate(node);
            let message = format!("unknown kind {kind:?}; did you mean {meant:?}?");
            return src.error(batch, pos, Some("kind"), &message);
        }
        // Same-named kinds of other API groups are other resources (Calico's NetworkPolicy in
        // projectcalico.org/v3): skipped, and told apart from ours.
        let name = match (known, api_version) {
            (Some(_), Some(v)) => format!("{kind} ({v})"),
            _ => kind.to_string(),
        };
        *batch.skipped_kinds.entry(name).or_default() += 1;
        return;
    };
    let ctx = Ctx::new(node, kind, src);
    if api_version != Some(expected) {
        let message = match api_version {
            Some(v) => format!("unsupported apiVersion {v:?} for {kind}; expected {expected:?}"),
            None => format!("missing apiVersion; expected {expected:?} for {kind}"),
        };
        let mut problems = Problems::default();
        problems.error(FieldPath::new("apiVersion"), message);
        ctx.report(problems, batch);
        return;
    }
    match kind {
        "Namespace" => ctx.decode(batch).map(|o| namespace(&ctx, o, batch)),
        "Node" => ctx.decode(batch).map(|o| cluster_node(&ctx, o, batch)),
        "Pod" => ctx.decode(batch).map(|o| pod(&ctx, o, batch)),
        "NetworkPolicy" => ctx.decode(batch).map(|o| policy(&ctx, o, batch)),
        _ => decode_workload(&ctx, batch).map(|o| workload(&ctx, o, batch)),
    };
}

/// The kind we read that `kind` is a misspelling of, when it is in that kind's apiVersion (or
/// has none): skipping a `NetworkPolicyy` would silently drop a policy. Real kinds of the same
/// groups are never this close to ours.
fn misspelled_kind(kind: &str, api_version: Option<&str>) -> Option<&'static str> {
    let meant = nearest(kind, KINDS.iter().map(|(k, _)| *k))?;
    let expected = KINDS.iter().find(|(k, _)| *k == meant)?.1;
    api_version.is_none_or(|v| v == expected).then_some(meant)
}

/// Whether `api_version` belongs to an API group of Kubernetes itself (core, `apps`,
/// `batch`, `extensions`, `*.k8s.io`), where a kind we read means our resource.
fn is_kubernetes_group(api_version: &str) -> bool {
    match api_version.split_once('/') {
        None => true,
        Some((group, _)) => {
            matches!(group, "apps" | "batch" | "extensions") || group.ends_with(".k8s.io")
        }
    }
}

/// What a list kind implies for its items: nothing for `List` (its items name their kinds),
/// the kind and the list's apiVersion for a typed list like `PodList`. None: not a list.
pub(crate) fn list_items_kind<'v>(
    kind: &str,
    api_version: Option<&'v str>,
) -> Option<Option<(&'static str, &'v str)>> {
    if kind == "List" {
        return Some(None);
    }
    let item_kind = kind.strip_suffix("List")?;
    let &(known, _) = KINDS.iter().find(|(k, _)| *k == item_kind)?;
    Some(Some((known, api_version.unwrap_or_default())))
}

/// True when `node` is a mapping that names its own kind and apiVersion.
pub(crate) fn names_its_kind(node: &Node<'_>) -> bool {
    node.get("kind").and_then(Node::as_str).is_some()
        && node.get("apiVersion").and_then(Node::as_str).is_some()
}

fn load_items(list: &Node<'_>, implied: Option<(&str, &str)>, src: &Source<'_>, batch: &mut Batch) {
    let Some(items) = list.get("items") else {
        return;
    };
    match &items.resolved().value {
        Value::Null => {}
        Value::Seq(items) => {
            for item in items {
                load_item(item, implied, src, batch);
            }
        }
        _ => src.error(
            batch,
            items.pos,
            Some("items"),
            "expected a list of objects",
        ),
    }
}

/// One item of a list.
pub(crate) fn load_item(
    item: &Node<'_>,
    implied: Option<(&str, &str)>,
    src: &Source<'_>,
    batch: &mut Batch,
) {
    if let Value::Map(_) = item.resolved().value {
        load_object(item, implied, src, batch);
    } else {
        let message = "expected a Kubernetes object (a mapping)";
        src.error(batch, item.pos, Some("items"), message);
    }
}

/// One object being loaded: its tree, its name for diagnostics, its namespace.
struct Ctx<'c, 'a> {
    root: &'c Node<'a>,
    kind: &'static str,
    src: &'c Source<'c>,
    namespace: String,
    label: String,
}

impl<'c, 'a> Ctx<'c, 'a> {
    fn new(root: &'c Node<'a>, kind: &'static str, src: &'c Source<'c>) -> Self {
        let metadata = |key: &str| {
            root.get("metadata")
                .and_then(|m| m.get(key))
                .and_then(Node::as_str)
        };
        let name = metadata("name").unwrap_or("<unnamed>");
        // kubectl treats an empty namespace like a missing one.
        let namespace = metadata("namespace")
            .filter(|n| !n.is_empty())
            .unwrap_or(&src.options.default_namespace);
        let label = match kind {
            "Namespace" => format!("Namespace {name}"),
            _ => format!("{kind} {namespace}/{name}"),
        };
        Self {
            root,
            kind,
            src,
            namespace: namespace.to_string(),
            label,
        }
    }

    fn origin(&self, path: &FieldPath) -> Origin {
        self.src.origin(path.locate(self.root))
    }

    /// Deserializes the whole object; a type error anywhere, or a field its type does not have
    /// (anywhere in a NetworkPolicy, in the metadata of other kinds), leaves it out, as the API
    /// server's strict validation does.
    fn decode<T: DeserializeOwned>(&self, batch: &mut Batch) -> Option<T> {
        let strictness = match self.kind {
            "NetworkPolicy" => Strictness::All,
            _ => Strictness::Metadata,
        };
        let root = De::new(self.root, strictness);
        if let Ok(value) = T::deserialize(root) {
            return Some(value);
        }
        // Rare, so only now pay for tracking the path.
        match serde_path_to_error::deserialize::<_, T>(root) {
            Ok(value) => Some(value),
            Err(err) => {
                let mut problems = Problems::default();
                let mut path = FieldPath::from_serde(err.path());
                let err = err.into_inner();
                if let Some(field) = err.unknown_field() {
                    path = path.child(field);
                }
                problems.error(path, err.to_string());
                self.report(problems, batch);
                None
            }
        }
    }
}

impl Place for Ctx<'_, '_> {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn report(&self, problems: Problems, batch: &mut Batch) -> bool {
        let ok = !problems.has_errors();
        for (severity, path, message) in problems.0 {
            let pos = path.locate(self.root);
            let field = Some(path.to_string()).filter(|f| !f.is_empty());
            self.src.diagnose(
                batch,
                severity,
                pos,
                Some(self.label.clone()),
                field,
                message,
            );
        }
        ok
    }

    fn record<T>(&self, item: T) -> Record<T> {
        Record {
            item,
            file_index: self.src.file_index,
            origin: self.src.origin(self.root.pos),
            name_origin: self.origin(&FieldPath::new("metadata").child("name")),
        }
    }
}

/// Where an object came from, for its diagnostics and its record: a YAML document, or the API
/// server. What is read from an object does not depend on it.
pub(crate) trait Place {
    fn kind(&self) -> &'static str;
    /// The object's namespace, defaulted.
    fn namespace(&self) -> &str;
    /// Reports `problems`; true when none of them is an error.
    fn report(&self, problems: Problems, batch: &mut Batch) -> bool;
    fn record<T>(&self, item: T) -> Record<T>;

    /// `metadata.name`, required of every object we keep.
    fn name(&self, meta: &ObjectMeta, problems: &mut Problems) -> String {
        let name = meta.name.clone().unwrap_or_default();
        if name.is_empty() {
            let what = self.kind();
            problems.error(
                FieldPath::new("metadata").child("name"),
                format!("required: a {what} needs a name"),
            );
        }
        name
    }
}

pub(crate) fn namespace(ctx: &impl Place, ns: core::Namespace, batch: &mut Batch) {
    let mut problems = Problems::default();
    let name = ctx.name(&ns.metadata, &mut problems);
    if !name.is_empty() {
        problems.invalid(
            &FieldPath::new("metadata").child("name"),
            &name,
            names::dns1123_label(&name),
        );
    }
    let labels = ns.metadata.labels.unwrap_or_default();
    policy::check_labels(&labels, &metadata_labels(), &mut problems);
    if ctx.report(problems, batch) {
        let namespace = Namespace::new(name, labels);
        batch.namespaces.push(ctx.record(namespace));
    }
}

/// A node: its name and addresses (`status.addresses` that are IPs; hostnames are skipped).
pub(crate) fn cluster_node(ctx: &impl Place, node: core::Node, batch: &mut Batch) {
    let mut problems = Problems::default();
    let name = ctx.name(&node.metadata, &mut problems);
    let listed = node
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten());
    let mut addresses = Vec::new();
    for (i, address) in listed.enumerate() {
        if address.type_ == "Hostname" {
            continue;
        }
        match address.address.parse::<IpAddr>() {
            Ok(ip) if !addresses.contains(&ip) => addresses.push(ip),
            Ok(_) => {}
            Err(_) => problems.error(
                FieldPath::new("status")
                    .child("addresses")
                    .index(i)
                    .child("address"),
                format!(
                    "invalid value {:?}: a {} address must be an IP address",
                    address.address, address.type_
                ),
            ),
        }
    }
    if ctx.report(problems, batch) {
        batch
            .nodes
            .push(ctx.record(ClusterNode { name, addresses }));
    }
}

pub(crate) fn policy(ctx: &impl Place, np: net::NetworkPolicy, batch: &mut Batch) {
    let mut problems = Problems::default();
    let policy = policy::convert(&np, ctx.namespace(), &mut problems);
    if ctx.report(problems, batch) {
        batch.policies.push(ctx.record(policy));
    }
}

/// Pods that have finished (`status.phase` Succeeded or Failed) hold no address and serve
/// nothing: they are left out, counted as skipped.
pub(crate) const FINISHED_POD: &str = "Pod (Succeeded or Failed)";

pub(crate) fn pod(ctx: &impl Place, pod: core::Pod, batch: &mut Batch) {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        *batch
            .skipped_kinds
            .entry(FINISHED_POD.to_string())
            .or_default() += 1;
        return;
    }
    let mut problems = Problems::default();
    let name = ctx.name(&pod.metadata, &mut problems);
    let mut endpoint = Endpoint::pod(ctx.namespace().to_string(), name, Default::default());
    if let Some(spec) = &pod.spec {
        endpoint.host_network = spec.host_network.unwrap_or(false);
        endpoint.ports = container_ports(spec, &FieldPath::new("spec"), &mut problems);
    }
    if let Some(status) = &pod.status {
        endpoint.ips = pod_ips(status, &mut problems);
    }
    finish_endpoint(ctx, endpoint, pod.metadata, problems, batch);
}

/// What a workload contributes: its metadata, pod template and replica count.
pub(crate) struct Workload {
    metadata: ObjectMeta,
    template: Option<core::PodTemplateSpec>,
    template_path: FieldPath,
    replicas: Option<i32>,
}

fn decode_workload(ctx: &Ctx<'_, '_>, batch: &mut Batch) -> Option<Workload> {
    let template_path = FieldPath::new("spec").child("template");
    let workload = |metadata, template, replicas| Workload {
        metadata,
        template,
        template_path: template_path.clone(),
        replicas,
    };
    Some(match ctx.kind {
        "Deployment" => {
            let d: apps::Deployment = ctx.decode(batch)?;
            let spec = d.spec.unwrap_or_default();
            workload(d.metadata, Some(spec.template), spec.replicas)
        }
        "ReplicaSet" => {
            let r: apps::ReplicaSet = ctx.decode(batch)?;
            let spec = r.spec.unwrap_or_default();
            workload(r.metadata, spec.template, spec.replicas)
        }
        "StatefulSet" => {
            let s: apps::StatefulSet = ctx.decode(batch)?;
            let spec = s.spec.unwrap_or_default();
            workload(s.metadata, Some(spec.template), spec.replicas)
        }
        "ReplicationController" => {
            let r: core::ReplicationController = ctx.decode(batch)?;
            let spec = r.spec.unwrap_or_default();
            workload(r.metadata, spec.template, spec.replicas)
        }
        // One endpoint stands for a DaemonSet's pods on every node, and for a Job's.
        "DaemonSet" => {
            let d: apps::DaemonSet = ctx.decode(batch)?;
            workload(d.metadata, d.spec.map(|s| s.template), None)
        }
        "Job" => {
            let j: batch::Job = ctx.decode(batch)?;
            workload(j.metadata, j.spec.map(|s| s.template), None)
        }
        "CronJob" => {
            let c: batch::CronJob = ctx.decode(batch)?;
            let template = c.spec.and_then(|s| s.job_template.spec).map(|s| s.template);
            Workload {
                metadata: c.metadata,
                template,
                template_path: FieldPath::new("spec")
                    .child("jobTemplate")
                    .child("spec")
                    .child("template"),
                replicas: None,
            }
        }
        _ => return None,
    })
}

fn workload(ctx: &Ctx<'_, '_>, workload: Workload, batch: &mut Batch) {
    let mut problems = Problems::default();
    let name = ctx.name(&workload.metadata, &mut problems);
    let replicas = match workload.replicas {
        None => 1,
        Some(n) => u32::try_from(n).unwrap_or_else(|_| {
            let path = FieldPath::new("spec").child("replicas");
            problems.error(
                path,
                format!("invalid value {n}: must be greater than or equal to 0"),
            );
            0
        }),
    };
    let template = workload.template.unwrap_or_default();
    let labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
    let template_labels = workload.template_path.child("metadata").child("labels");
    policy::check_labels(&labels, &template_labels, &mut problems);
    let mut endpoint = Endpoint::pod(ctx.namespace().to_string(), name, labels);
    endpoint.kind = EndpointKind::Workload {
        kind: ctx.kind.to_string(),
    };
    endpoint.replicas = replicas;
    if let Some(spec) = &template.spec {
        endpoint.host_network = spec.host_network.unwrap_or(false);
        endpoint.ports =
            container_ports(spec, &workload.template_path.child("spec"), &mut problems);
    }
    finish_endpoint(ctx, endpoint, workload.metadata, problems, batch);
}

/// `metadata.labels`: invalid ones are refused as the API server refuses them (a selector could
/// never match them as written).
fn metadata_labels() -> FieldPath {
    FieldPath::new("metadata").child("labels")
}

fn finish_endpoint(
    ctx: &impl Place,
    mut endpoint: Endpoint,
    metadata: ObjectMeta,
    mut problems: Problems,
    batch: &mut Batch,
) {
    if let Some(labels) = &metadata.labels {
        policy::check_labels(labels, &metadata_labels(), &mut problems);
    }
    if !ctx.report(problems, batch) {
        return;
    }
    let mut owners: Vec<(bool, Owner)> = metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let owner = Owner {
                kind: r.kind,
                name: r.name,
                uid: Some(r.uid).filter(|u| !u.is_empty()),
            };
            (r.controller != Some(true), owner)
        })
        .collect();
    // The controller reference first; the rest keep their order.
    owners.sort_by_key(|(not_controller, _)| *not_controller);
    let labels = metadata.labels.unwrap_or_default();
    let template_hash = labels.get("pod-template-hash").cloned();
    if endpoint.kind == EndpointKind::Pod {
        endpoint.labels = labels;
    }
    let info = EndpointInfo {
        endpoint,
        uid: metadata.uid.filter(|u| !u.is_empty()),
        owners: owners.into_iter().map(|(_, o)| o).collect(),
        template_hash,
    };
    batch.endpoints.push(ctx.record(info));
}

/// Ports of the containers and of sidecars (init containers with `restartPolicy: Always`, which
/// keep running and serving).
fn container_ports(
    spec: &core::PodSpec,
    path: &FieldPath,
    problems: &mut Problems,
) -> Vec<ContainerPort> {
    let containers = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (path.child("containers").index(i), c));
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| c.restart_policy.as_deref() == Some("Always"))
        .map(|(i, c)| (path.child("initContainers").index(i), c));
    let mut ports = Vec::new();
    for (container_path, container) in containers.chain(sidecars) {
        for (j, port) in container.ports.iter().flatten().enumerate() {
            let port_path = container_path.child("ports").index(j);
            let number = names::port_number(port.container_port).map_err(|m| {
                let value = port.container_port;
                problems.error(
                    port_path.child("containerPort"),
                    format!("invalid value {value}: {m}"),
                );
            });
            let protocol = match port.protocol.as_deref() {
                None => Ok(Protocol::Tcp),
                Some(text) => Protocol::parse(text).ok_or_else(|| {
                    let message = format!(
                        "unsupported value {text:?}: supported values: \"TCP\", \"UDP\", \"SCTP\""
                    );
                    problems.error(port_path.child("protocol"), message);
                }),
            };
            if let Some(name) = &port.name {
                problems.invalid(&port_path.child("name"), name, names::port_name(name));
            }
            if let (Ok(port_number), Ok(protocol)) = (number, protocol) {
                ports.push(ContainerPort {
                    name: port.name.clone(),
                    port: port_number,
                    protocol,
                });
            }
        }
    }
    ports
}

/// `status.podIPs`, and `status.podIP` (the first of them, also set alone by older clusters).
fn pod_ips(status: &core::PodStatus, problems: &mut Problems) -> Vec<IpAddr> {
    let status_path = FieldPath::new("status");
    let listed = status.pod_ips.iter().flatten().enumerate().map(|(i, p)| {
        (
            status_path.child("podIPs").index(i).child("ip"),
            p.ip.as_str(),
        )
    });
    let single = status
        .pod_ip
        .as_deref()
        .map(|ip| (status_path.child("podIP"), ip));
    let mut ips = Vec::new();
    for (path, text) in single.into_iter().chain(listed) {
        if text.is_empty() {
            continue;
        }
        match text.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) => problems.error(
                path,
                format!("invalid value {text:?}: must be an IP address"),
            ),
        }
    }
    ips
}
