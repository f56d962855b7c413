//! One consistent read of what policy depends on: every Namespace, Node, Pod and
//! NetworkPolicy, listed in pages so that 100k pods never sit in one response.

use crate::KubeError;
use crate::connect::{Session, request_error};
use crate::objects::{WatchedNode, WatchedPod};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as net;
use kube::Resource;
use kube::api::{Api, ListParams};
use palisade_manifest::{LoadOptions, Loaded, Objects};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Objects per list request: kubectl's chunk size.
const PAGE_SIZE: u32 = 500;
/// A paginated list whose continue token expired (410 Gone, after etcd compaction) starts
/// over this many times before giving up.
const LIST_RESTARTS: usize = 3;

/// The objects of a cluster that policy depends on.
#[derive(Clone, Debug, Default)]
pub struct ClusterObjects {
    pub namespaces: Vec<core::Namespace>,
    pub nodes: Vec<WatchedNode>,
    pub pods: Vec<WatchedPod>,
    pub policies: Vec<net::NetworkPolicy>,
}

impl ClusterObjects {
    /// Loads the objects as manifests holding them would be loaded.
    pub fn load(&self, options: &LoadOptions) -> Loaded {
        load_objects(
            &self.namespaces,
            &self.nodes,
            &self.pods,
            &self.policies,
            options,
        )
    }
}

impl ClusterObjects {
    /// Every scheduled pod's node: (`ns/name`, node).
    pub fn placements(&self, options: &LoadOptions) -> Vec<(String, String)> {
        placements(&self.pods, options)
    }
}

/// (`ns/name`, `spec.nodeName`) of every pod that has a node.
pub(crate) fn placements<'p>(
    pods: impl IntoIterator<Item = &'p WatchedPod>,
    options: &LoadOptions,
) -> Vec<(String, String)> {
    pods.into_iter()
        .filter_map(|pod| {
            let node = pod.node_name()?.to_string();
            let meta = &pod.metadata;
            let namespace = meta
                .namespace
                .as_deref()
                .unwrap_or(&options.default_namespace);
            Some((format!("{namespace}/{}", meta.name.as_deref()?), node))
        })
        .collect()
}

/// Objects into what manifests give, by the manifest loader's own code.
pub(crate) fn load_objects<'o>(
    namespaces: impl IntoIterator<Item = &'o core::Namespace>,
    nodes: impl IntoIterator<Item = &'o WatchedNode>,
    pods: impl IntoIterator<Item = &'o WatchedPod>,
    policies: impl IntoIterator<Item = &'o net::NetworkPolicy>,
    options: &LoadOptions,
) -> Loaded {
    let mut objects = Objects::new(options);
    for namespace in namespaces {
        objects.namespace(namespace.clone());
    }
    for node in nodes {
        objects.node(node.to_node());
    }
    for pod in pods {
        objects.pod(pod.to_pod());
    }
    for policy in policies {
        objects.policy(policy.clone());
    }
    objects.finish()
}

/// Lists the four kinds at once.
pub async fn read(session: &Session) -> Result<ClusterObjects, KubeError> {
    let client = &session.client;
    let (namespaces, nodes, pods, policies) = tokio::try_join!(
        list_all(session, Api::<core::Namespace>::all(client.clone())),
        list_all(session, Api::<WatchedNode>::all(client.clone())),
        list_all(session, Api::<WatchedPod>::all(client.clone())),
        list_all(session, Api::<net::NetworkPolicy>::all(client.clone())),
    )?;
    Ok(ClusterObjects {
        namespaces,
        nodes,
        pods,
        policies,
    })
}

/// Every object of one kind, page by page.
pub(crate) async fn list_all<K>(session: &Session, api: Api<K>) -> Result<Vec<K>, KubeError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let resource = K::plural(&()).to_string();
    let mut restarts = 0;
    'list: loop {
        let mut items = Vec::new();
        let mut params = ListParams::default().limit(PAGE_SIZE);
        loop {
            match api.list(&params).await {
                Ok(page) => {
                    items.extend(page.items);
                    match page.metadata.continue_.filter(|c| !c.is_empty()) {
                        Some(token) => params = params.continue_token(&token),
                        None => return Ok(items),
                    }
                }
                Err(kube::Error::Api(status))
                    if status.code == 410
                        && params.continue_token.is_some()
                        && restarts < LIST_RESTARTS =>
                {
                    restarts += 1;
                    tracing::warn!(%resource, "the list's continue token expired; listing again");
                    continue 'list;
                }
                Err(e) => return Err(request_error(&session.server, "list", &resource, e)),
            }
        }
    }
}
