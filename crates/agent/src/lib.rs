//! `palisade agent`: enforces the engine's decisions on one node with one nftables table,
//! records every verdict the kernel takes as a JSON line, and serves Prometheus metrics.
//! `palisade observe`: follows and filters those records.
//!
//! Its inputs are the API server (`--kubeconfig`, `KUBECONFIG` or in-cluster; kube-runtime
//! watches on Pods, Namespaces, NetworkPolicies and Nodes; local pods are those with
//! `spec.nodeName` = `--node`), or manifest files (`--manifests`, with a pod inventory, see
//! [`inventory`], for the lab and offline use). Nothing replaces the rules in force before the
//! inputs were read completely once. On a change the agent compiles the engine's [`palisade_engine::NodeProgram`],
//! replaces the table in one transaction when it changed, then deletes the conntrack entries
//! of established connections the new rules deny; what the kernel refuses is retried with
//! backoff (100 ms doubling to 10 s). On start it adopts the table a previous
//! agent left when it is the same; on exit it leaves the rules in force unless
//! `--cleanup-on-exit`. Traffic of the node itself to and from its pods is never filtered.

mod agent;
mod drift;
mod flowlog;
pub mod flows;
mod fold;
mod inputs;
pub mod inventory;
pub mod metrics;
mod observe;
pub mod state;
mod waiter;

pub use flows::{FlowEnd, FlowProtocol, FlowRecord, Verdict, direction_label};
pub use inventory::{PodInventory, PodPlacement};
pub use observe::{FlowFile, NotARecord, ObserveFilter, OutputFormat, run_observe};

use palisade_dataplane::RenderOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// How an agent runs (what `palisade agent`'s flags say).
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// This node's name: pods with this `spec.nodeName` (or so placed by the pod inventory)
    /// are enforced here.
    pub node: String,
    /// Manifest files or directories (watched) instead of the API server.
    pub manifests: Vec<PathBuf>,
    /// The API server to watch when there are no manifests.
    pub cluster: palisade_kube::Connection,
    /// The pod inventory that places the manifests' pods on nodes.
    pub pods: Option<PathBuf>,
    /// Where metrics and health are served.
    pub metrics_addr: SocketAddr,
    /// How the table is rendered: audit mode and the NFLOG group.
    pub render: RenderOptions,
    /// Remove the rules on exit.
    pub cleanup_on_exit: bool,
    /// Flow records, one JSON line per verdict; `-` is standard output.
    pub flow_log: PathBuf,
    /// A flow log file this large is rotated.
    pub flow_log_max_bytes: u64,
    /// How often the inputs are checked for changes.
    pub poll_interval: Duration,
}

/// Runs the agent until SIGINT or SIGTERM.
pub fn run_agent(config: AgentConfig) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    run_agent_until(config, &stop)
}

/// Runs the agent in the calling thread's network namespace until `stop` is set.
pub fn run_agent_until(config: AgentConfig, stop: &AtomicBool) -> anyhow::Result<()> {
    let metrics = Arc::new(metrics::Metrics::default());
    let health = Arc::new(metrics::Health::default());
    let listener = metrics::bind(config.metrics_addr)?;
    // The API client and the HTTP server run on this runtime; the agent's loop stays on the
    // calling thread (its threads inherit the network namespace).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("palisade-agent-io")
        .enable_all()
        .build()?;
    let done = Arc::new(AtomicBool::new(false));
    let server = {
        let _entered = runtime.enter();
        metrics::serve(metrics.clone(), health.clone(), listener, done.clone())?
    };
    let inputs = match open_inputs(&config, &runtime, &metrics) {
        Ok(inputs) => inputs,
        Err(e) => {
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = runtime.block_on(server);
            return Err(e);
        }
    };
    let sink =
        flowlog::FlowLog::open(&config.flow_log, config.flow_log_max_bytes).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the flow log {}: {e}",
                config.flow_log.display()
            )
        })?;
    let mut agent = agent::Agent::new(config, inputs, metrics, health);
    let flows = match agent.record_flows(sink, done.clone()) {
        Ok(flows) => flows,
        Err(e) => {
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = runtime.block_on(server);
            return Err(e);
        }
    };
    let outcome = agent.reconcile().map(|()| agent.watch(stop));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = runtime.block_on(server);
    let _ = flows.join();
    outcome?;
    let shutdown = agent.shutdown();
    // Watches end with the runtime, without waiting for their next event.
    drop(agent);
    runtime.shutdown_background();
    shutdown
}

/// The manifests, or a watch of the API server once the credentials were checked.
fn open_inputs(
    config: &AgentConfig,
    runtime: &tokio::runtime::Runtime,
    metrics: &Arc<metrics::Metrics>,
) -> anyhow::Result<inputs::Inputs> {
    let load = palisade_manifest::LoadOptions::default();
    if !config.manifests.is_empty() {
        return Ok(inputs::Inputs::files(state::Sources {
            manifests: config.manifests.clone(),
            pods: config.pods.clone(),
            node: config.node.clone(),
            load,
        }));
    }
    let connection = config.cluster.clone();
    let observer: Arc<dyn palisade_kube::WatchObserver> = metrics.clone();
    let watch = runtime.block_on(async {
        let session = connection.connect().await?;
        tracing::info!(server = session.server, "watching the API server");
        palisade_kube::ClusterWatch::start(&session, observer).await
    })?;
    Ok(inputs::Inputs::Cluster {
        watch,
        node: config.node.clone(),
        load,
        seen: None,
        last_change: None,
    })
}
