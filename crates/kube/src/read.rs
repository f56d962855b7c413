//! One consistent read of what policy depends on: every Namespace, Node, Pod and
//! NetworkPolicy, listed in pages so that 100k pods never sit in one response.

use crate::KubeError;
use crate::connect::{Session, request_error};
use crate::objects::{WatchedNode, WatchedPod};
use crate::protobuf::list_pod_page;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as net;
use kube::Resource;
use kube::api::{Api, ListParams};
use palisade_manifest::{LoadOptions, Loaded, Objects};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Objects per list request: kubectl's chunk size.
const PAGE_SIZE: u32 = 500;
/// Pods per list request: a page of 5000 protobuf pods is about 6 MB, and the API server
/// serves 100k pods in 20 pages a third faster than in 200 (3.6 s against 5.2 s here).
const POD_PAGE_SIZE: u32 = 5000;
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
    pub fn into_loaded(self, options: &LoadOptions) -> Loaded {
        load_objects(
            self.namespaces,
            self.nodes.into_iter().map(WatchedNode::into_node),
            self.pods.into_iter().map(WatchedPod::into_pod),
            self.policies,
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
pub(crate) fn load_objects(
    namespaces: impl IntoIterator<Item = core::Namespace>,
    nodes: impl IntoIterator<Item = core::Node>,
    pods: impl IntoIterator<Item = core::Pod>,
    policies: impl IntoIterator<Item = net::NetworkPolicy>,
    options: &LoadOptions,
) -> Loaded {
    let mut objects = Objects::new(options);
    for namespace in namespaces {
        objects.namespace(namespace);
    }
    for node in nodes {
        objects.node(node);
    }
    for pod in pods {
        objects.pod(pod);
    }
    for policy in policies {
        objects.policy(policy);
    }
    objects.finish()
}

/// Lists the four kinds at once; pods, nearly all of the bytes, as protobuf.
pub async fn read(session: &Session) -> Result<ClusterObjects, KubeError> {
    let client = &session.client;
    let (namespaces, nodes, pods, policies) = tokio::try_join!(
        list_all(session, Api::<core::Namespace>::all(client.clone())),
        list_all(session, Api::<WatchedNode>::all(client.clone())),
        list_pages(session, "pods", |token| async move {
            list_pod_page(client, &page_params(POD_PAGE_SIZE, token)).await
        }),
        list_all(session, Api::<net::NetworkPolicy>::all(client.clone())),
    )?;
    Ok(ClusterObjects {
        namespaces,
        nodes,
        pods,
        policies,
    })
}

/// One page of a list and the continue token of the next, if any.
pub(crate) struct Page<I> {
    pub items: I,
    pub continue_token: Option<String>,
}

/// A page's items, or what they are decoded from: a page is decoded while the next one is on
/// its way.
pub(crate) trait PageItems {
    type Item;
    fn decode(self) -> Result<Vec<Self::Item>, kube::Error>;
}

impl<T> PageItems for Vec<T> {
    type Item = T;
    fn decode(self) -> Result<Vec<T>, kube::Error> {
        Ok(self)
    }
}

/// Every object of one kind, page by page, as JSON.
pub(crate) async fn list_all<K>(session: &Session, api: Api<K>) -> Result<Vec<K>, KubeError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let resource = K::plural(&()).to_string();
    list_pages(session, &resource, |token| {
        let api = &api;
        async move {
            let page = api.list(&page_params(PAGE_SIZE, token)).await?;
            Ok(Page {
                items: page.items,
                continue_token: page.metadata.continue_,
            })
        }
    })
    .await
}

/// A page of `limit` objects, after the one `token` ended.
fn page_params(limit: u32, token: Option<String>) -> ListParams {
    let params = ListParams::default().limit(limit);
    match token {
        Some(token) => params.continue_token(&token),
        None => params,
    }
}

/// Every object `fetch` lists, following continue tokens; starts over when a token expired.
async fn list_pages<I, F, Fut>(
    session: &Session,
    resource: &str,
    mut fetch: F,
) -> Result<Vec<I::Item>, KubeError>
where
    I: PageItems,
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<I>, kube::Error>>,
{
    let failed = |e| request_error(&session.server, "list", resource, e);
    let mut restarts = 0;
    let mut items = Vec::new();
    let mut undecoded: Option<I> = None;
    let mut token: Option<String> = None;
    loop {
        // The next page is requested before this one is decoded: the connection reads it while
        // this task decodes (pages are decoded one at a time, in order, on this task).
        let (fetched, decoded) = tokio::join!(fetch(token.clone()), async {
            undecoded.take().map(PageItems::decode).transpose()
        });
        items.extend(decoded.map_err(failed)?.into_iter().flatten());
        match fetched {
            Ok(page) => {
                undecoded = Some(page.items);
                token = page.continue_token.filter(|c| !c.is_empty());
                if token.is_none() {
                    break;
                }
            }
            Err(kube::Error::Api(status))
                if status.code == 410 && token.is_some() && restarts < LIST_RESTARTS =>
            {
                restarts += 1;
                tracing::warn!(%resource, "the list's continue token expired; listing again");
                items.clear();
                token = None;
            }
            Err(e) => return Err(failed(e)),
        }
    }
    if let Some(last) = undecoded {
        items.extend(last.decode().map_err(failed)?);
    }
    Ok(items)
}
