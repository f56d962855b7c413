//! Palisade meets a real cluster: reads the Kubernetes API server (Namespaces, Nodes, Pods,
//! NetworkPolicies, with paginated lists) into the same [`Loaded`] that manifests give, writes
//! a cluster's objects as manifests ([`snapshot`]), and watches the API for the agent
//! ([`ClusterWatch`]).
//!
//! Objects are loaded by `palisade-manifest`'s own code ([`palisade_manifest::Objects`]), so
//! a cluster and its snapshot give the same answers. Errors are one line naming the server
//! and, for a refusal, the verb and resource the credentials lack.

mod connect;
mod objects;
mod protobuf;
mod read;
mod snapshot;
mod watch;

pub use connect::{Connection, Session};
pub use objects::{WatchedContainer, WatchedNode, WatchedPod, WatchedPodSpec, WatchedPodStatus};
pub use read::{ClusterObjects, read};
pub use snapshot::snapshot;
pub use watch::{ClusterWatch, WatchObserver};

use palisade_manifest::Loaded;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{0}")]
    Config(String),
    #[error("cannot reach the API server {server}: {message}")]
    Unreachable { server: String, message: String },
    #[error("the API server {server} refused to {verb} {resource}: {message}")]
    Refused {
        server: String,
        verb: &'static str,
        resource: String,
        message: String,
    },
    #[error("the API server {server} failed to {verb} {resource}: {message}")]
    Failed {
        server: String,
        verb: &'static str,
        resource: String,
        message: String,
    },
    // Not `source`: that field would be the error's cause too, and `{:#}` would print it twice.
    #[error("writing {path}: {error}")]
    Write { path: String, error: std::io::Error },
    #[error("starting the client runtime: {0}")]
    Runtime(std::io::Error),
}

/// Reads the cluster `connection` names into what manifests give: the same objects in the
/// same model, loaded by the same code. Blocking (a runtime of its own).
pub fn load_cluster(
    connection: &Connection,
    options: &palisade_manifest::LoadOptions,
) -> Result<Loaded, KubeError> {
    let started = std::time::Instant::now();
    let objects = run(async {
        let session = connection.connect().await?;
        read(&session).await
    })?;
    let listed = started.elapsed();
    let pods = objects.pods.len();
    let loaded = objects.into_loaded(options);
    tracing::debug!(
        pods,
        ?listed,
        loaded = ?started.elapsed() - listed,
        "read the cluster"
    );
    Ok(loaded)
}

/// Runs `future` on a runtime of its own (the CLI is synchronous).
pub fn block_on<T>(future: impl Future<Output = T>) -> Result<T, KubeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(KubeError::Runtime)?;
    Ok(runtime.block_on(future))
}

/// `block_on` for futures that fail with a [`KubeError`].
pub fn run<T>(future: impl Future<Output = Result<T, KubeError>>) -> Result<T, KubeError> {
    block_on(future)?
}
