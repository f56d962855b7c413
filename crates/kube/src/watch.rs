//! The agent's view of the cluster: one watch per kind (kube-runtime watchers feeding
//! reflector stores, with bookmarks, relists on 410 Gone and backoff while the server is away),
//! and a change signal the agent's loop waits on.
//!
//! A store only ever shows a complete list: a relist is buffered and swapped in whole
//! (kube-runtime's `InitDone`), so the agent never compiles from half a list. Until every kind
//! has been listed once, [`ClusterWatch::complete`] is false and the agent keeps the rules in
//! force.

use crate::KubeError;
use crate::connect::{Session, request_error};
use crate::objects::{WatchedNode, WatchedPod};
use crate::read::{load_objects, placements};
use futures::StreamExt;
use k8s_openapi::api::authorization::v1 as authz;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as net;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::{WatchStreamExt, watcher};
use palisade_manifest::{LoadOptions, Loaded};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

/// What the agent is told about its watches, for metrics and logs.
pub trait WatchObserver: Send + Sync + 'static {
    /// `event` is `apply`, `delete`, `relist` (a list started) or `listed` (it completed).
    fn event(&self, resource: &'static str, event: &'static str);
    /// The watch failed; it is retried with backoff.
    fn error(&self, resource: &'static str, message: &str);
}

/// What every watch reads: (group, resource), and the verbs it needs on it.
const WATCHED: [(&str, &str); 4] = [
    ("", "namespaces"),
    ("", "nodes"),
    ("", "pods"),
    ("networking.k8s.io", "networkpolicies"),
];
const VERBS: [&str; 2] = ["list", "watch"];

#[derive(Debug, Default)]
struct ChangeState {
    /// Bumped whenever a store changed.
    generation: u64,
    /// When the latest change arrived.
    last: Option<SystemTime>,
    /// Which kinds have been listed completely at least once, in `WATCHED` order.
    listed: [bool; 4],
}

#[derive(Debug, Default)]
struct Changes {
    state: Mutex<ChangeState>,
    signal: Condvar,
}

impl Changes {
    fn changed(&self, kind: usize, listed: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.generation += 1;
        state.last = Some(SystemTime::now());
        state.listed[kind] |= listed;
        self.signal.notify_all();
    }
}

/// A change the agent saw: its generation and when it arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub generation: u64,
    pub at: Option<SystemTime>,
}

pub struct ClusterWatch {
    namespaces: Store<core::Namespace>,
    nodes: Store<WatchedNode>,
    pods: Store<WatchedPod>,
    policies: Store<net::NetworkPolicy>,
    changes: Arc<Changes>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ClusterWatch {
    /// Checks that the credentials may list and watch every kind (a missing verb is an error
    /// naming it), then starts the watches on `runtime`.
    pub async fn start(
        session: &Session,
        observer: Arc<dyn WatchObserver>,
    ) -> Result<Self, KubeError> {
        check_access(session).await?;
        let changes = Arc::new(Changes::default());
        let client = &session.client;
        let mut tasks = Vec::new();
        let namespaces = spawn(
            Api::all(client.clone()),
            0,
            |n: &mut core::Namespace| forget_managed_fields(&mut n.metadata),
            &changes,
            &observer,
            &mut tasks,
        );
        let nodes = spawn(
            Api::all(client.clone()),
            1,
            |_: &mut WatchedNode| {},
            &changes,
            &observer,
            &mut tasks,
        );
        let pods = spawn(
            Api::all(client.clone()),
            2,
            |_: &mut WatchedPod| {},
            &changes,
            &observer,
            &mut tasks,
        );
        let policies = spawn(
            Api::all(client.clone()),
            3,
            |p: &mut net::NetworkPolicy| forget_managed_fields(&mut p.metadata),
            &changes,
            &observer,
            &mut tasks,
        );
        Ok(Self {
            namespaces,
            nodes,
            pods,
            policies,
            changes,
            tasks,
        })
    }

    /// True once every kind has been listed completely.
    pub fn complete(&self) -> bool {
        let state = self.changes.state.lock().unwrap_or_else(|e| e.into_inner());
        state.listed.iter().all(|&l| l)
    }

    /// The latest change.
    pub fn seen(&self) -> Seen {
        let state = self.changes.state.lock().unwrap_or_else(|e| e.into_inner());
        Seen {
            generation: state.generation,
            at: state.last,
        }
    }

    /// Waits up to `timeout` for a change after `generation`; returns the latest.
    pub fn wait(&self, generation: u64, timeout: Duration) -> Seen {
        let state = self.changes.state.lock().unwrap_or_else(|e| e.into_inner());
        let (state, _) = self
            .changes
            .signal
            .wait_timeout_while(state, timeout, |s| s.generation == generation)
            .unwrap_or_else(|e| e.into_inner());
        Seen {
            generation: state.generation,
            at: state.last,
        }
    }

    /// Waits until no change arrived for `quiet`, or `most` passed: a burst (a `kubectl apply`
    /// of many objects) becomes one sync.
    pub fn settle(&self, quiet: Duration, most: Duration) -> Seen {
        let deadline = std::time::Instant::now() + most;
        let mut seen = self.seen();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return seen;
            }
            let next = self.wait(seen.generation, quiet.min(left));
            if next.generation == seen.generation {
                return seen;
            }
            seen = next;
        }
    }

    /// What the stores hold now, loaded as manifests holding it would be; and every pod's
    /// node (`ns/name`, node), for the agent to pick its own.
    pub fn load(&self, options: &LoadOptions) -> (Loaded, Vec<(String, String)>) {
        let pods = in_list_order(self.pods.state());
        let loaded = load_objects(
            in_list_order(self.namespaces.state())
                .iter()
                .map(|o| (**o).clone()),
            in_list_order(self.nodes.state())
                .iter()
                .map(|o| o.to_node()),
            pods.iter().map(|o| o.to_pod()),
            in_list_order(self.policies.state())
                .iter()
                .map(|o| (**o).clone()),
            options,
        );
        let placements = placements(pods.iter().map(|o| &**o), options);
        (loaded, placements)
    }
}

/// A store's objects in the order the API server lists them (namespace, then name), not the
/// store's hash order: the same objects always compile to the same table, so a restarted
/// agent recognises its own, and a watch answers as a list does.
fn in_list_order<K: Resource>(mut objects: Vec<Arc<K>>) -> Vec<Arc<K>> {
    fn key<K: Resource>(object: &K) -> (Option<&str>, Option<&str>) {
        let meta = object.meta();
        (meta.namespace.as_deref(), meta.name.as_deref())
    }
    objects.sort_unstable_by(|a, b| key(&**a).cmp(&key(&**b)));
    objects
}

impl Drop for ClusterWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Retries of a failed watch or list: from 0.5 s doubling to 10 s, jittered, starting over
/// after two quiet minutes. kube-runtime's default (client-go's) goes up to 30 s, which after
/// an outage of the API server leaves a node enforcing stale rules for half a minute more;
/// 10 s with jitter still spreads a fleet's retries.
fn retry_backoff() -> ResetTimerBackoff<watcher::ExponentialBackoff> {
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    ResetTimerBackoff::new(exponential.into(), Duration::from_secs(120))
}

/// Managed fields are most of a small object's bytes, and nothing policy reads.
fn forget_managed_fields(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
}

fn spawn<K>(
    api: Api<K>,
    kind: usize,
    trim: impl FnMut(&mut K) + Send + 'static,
    changes: &Arc<Changes>,
    observer: &Arc<dyn WatchObserver>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let resource = WATCHED[kind].1;
    let changes = changes.clone();
    let observer = observer.clone();
    let stream = watcher(api, watcher::Config::default())
        .backoff(retry_backoff())
        .modify(trim)
        .reflect(writer);
    tasks.push(tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(_)) => {
                    observer.event(resource, "apply");
                    changes.changed(kind, false);
                }
                Ok(watcher::Event::Delete(_)) => {
                    observer.event(resource, "delete");
                    changes.changed(kind, false);
                }
                Ok(watcher::Event::Init) => observer.event(resource, "relist"),
                Ok(watcher::Event::InitApply(_)) => {}
                Ok(watcher::Event::InitDone) => {
                    observer.event(resource, "listed");
                    changes.changed(kind, true);
                }
                Err(e) => {
                    let message = crate::connect::innermost(&e);
                    tracing::warn!(resource, "watch failed, retrying: {message}");
                    observer.error(resource, &message);
                }
            }
        }
    }));
    store
}

/// Asks the API server whether these credentials may list and watch every watched kind
/// (SelfSubjectAccessReview): a missing verb is named before anything is watched.
pub async fn check_access(session: &Session) -> Result<(), KubeError> {
    let api: Api<authz::SelfSubjectAccessReview> = Api::all(session.client.clone());
    for (group, resource) in WATCHED {
        for verb in VERBS {
            let review = authz::SelfSubjectAccessReview {
                spec: authz::SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(authz::ResourceAttributes {
                        group: Some(group.to_string()),
                        resource: Some(resource.to_string()),
                        verb: Some(verb.to_string()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| request_error(&session.server, "review access to", resource, e))?;
            let allowed = answer.status.as_ref().is_some_and(|s| s.allowed);
            if !allowed {
                let why = answer
                    .status
                    .and_then(|s| s.reason)
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "RBAC grants these credentials no such verb".to_string());
                let qualified = match group {
                    "" => resource.to_string(),
                    group => format!("{resource}.{group}"),
                };
                return Err(KubeError::Refused {
                    server: session.server.clone(),
                    verb,
                    resource: qualified,
                    message: why,
                });
            }
        }
    }
    Ok(())
}
