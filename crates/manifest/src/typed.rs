//! Objects that arrive typed (from the API server) rather than as text: loaded by the very
//! code that loads them from manifests, so both give the same answers. They have no lines;
//! their origins name the object (`kube:pods/ns/name`).

use crate::collect::{Batch, Record};
use crate::objects::{self, Place};
use crate::path::Problems;
use crate::{Diagnostic, LoadOptions, Loaded, Origin};
use k8s_openapi::Metadata;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as net;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Collects typed objects, then [`Objects::finish`] applies the whole-input rules
/// (duplicates, implicit namespaces) as loading manifests does.
#[derive(Debug, Default)]
pub struct Objects {
    batch: Batch,
    options: LoadOptions,
}

impl Objects {
    pub fn new(options: &LoadOptions) -> Self {
        Self {
            batch: Batch::default(),
            options: options.clone(),
        }
    }

    pub fn namespace(&mut self, namespace: core::Namespace) {
        let place = self.place(&namespace, "Namespace", "namespaces");
        objects::namespace(&place, namespace, &mut self.batch);
    }

    pub fn node(&mut self, node: core::Node) {
        let place = self.place(&node, "Node", "nodes");
        objects::cluster_node(&place, node, &mut self.batch);
    }

    pub fn pod(&mut self, pod: core::Pod) {
        let place = self.place(&pod, "Pod", "pods");
        objects::pod(&place, pod, &mut self.batch);
    }

    pub fn policy(&mut self, policy: net::NetworkPolicy) {
        let place = self.place(&policy, "NetworkPolicy", "networkpolicies");
        objects::policy(&place, policy, &mut self.batch);
    }

    pub fn finish(self) -> Loaded {
        self.batch.finish()
    }

    fn place(
        &self,
        object: &impl Metadata<Ty = ObjectMeta>,
        kind: &'static str,
        resource: &str,
    ) -> ObjectPlace {
        let meta = object.metadata();
        let name = meta.name.as_deref().unwrap_or("<unnamed>");
        let namespaced = kind != "Namespace" && kind != "Node";
        let namespace = meta
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.options.default_namespace);
        let (origin, label) = if namespaced {
            (
                Origin::object(resource, Some(namespace), name),
                format!("{kind} {namespace}/{name}"),
            )
        } else {
            (
                Origin::object(resource, None, name),
                format!("{kind} {name}"),
            )
        };
        ObjectPlace {
            kind,
            namespace: namespace.to_string(),
            label,
            origin,
        }
    }
}

struct ObjectPlace {
    kind: &'static str,
    namespace: String,
    label: String,
    origin: Origin,
}

impl Place for ObjectPlace {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn report(&self, problems: Problems, batch: &mut Batch) -> bool {
        let ok = !problems.has_errors();
        for (severity, path, message) in problems.0 {
            let field = Some(path.to_string()).filter(|f| !f.is_empty());
            let diagnostic = Diagnostic {
                severity,
                origin: self.origin.clone(),
                object: Some(self.label.clone()),
                field,
                message,
            };
            batch.diagnose(0, diagnostic);
        }
        ok
    }

    fn record<T>(&self, item: T) -> Record<T> {
        Record {
            item,
            file_index: 0,
            origin: self.origin.clone(),
            name_origin: self.origin.clone(),
        }
    }
}
