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

pub use flows::{FlowEnd, FlowRecord, Verdict};
pub use inventory::{PodInventory, PodPlacement};
pub use observe::{FlowFile, NotARecord, ObserveArgs, OutputFormat, run_observe};

use palisade_dataplane::RenderOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

#[derive(Clone, Debug, clap::Args)]
pub struct AgentArgs {
    /// This node's name: pods with this `spec.nodeName` (or so placed by the pod inventory)
    /// are enforced here.
    #[arg(long, env = "NODE_NAME")]
    pub node: String,
    /// Manifest files or directories (watched; re-read on change) instead of the API server.
    #[arg(long, num_args = 1.., conflicts_with_all = ["kubeconfig", "context"])]
    pub manifests: Vec<PathBuf>,
    /// Watch the API server through this kubeconfig (default: KUBECONFIG, ~/.kube/config,
    /// then the in-cluster service account).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Pod inventory (JSON: {"pods": [{"name": "ns/pod", "node": "NAME", "ips": [...]}]}):
    /// which pods run on which node, with their addresses. Without it every pod with an
    /// address in the manifests is on this node.
    #[arg(long, value_name = "FILE")]
    pub pods: Option<PathBuf>,
    /// Where Prometheus metrics (`/metrics`) and health (`/healthz`, `/readyz`) are served.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    /// Enforce nothing new: record AUDIT for what would be dropped, and accept it.
    #[arg(long)]
    pub audit: bool,
    /// Remove the rules on exit (by default they stay in force across restarts).
    #[arg(long)]
    pub cleanup_on_exit: bool,
    /// Flow records, one JSON line per verdict; `-` is standard output.
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub flow_log: PathBuf,
    /// A flow log file this large is renamed to FILE.1 and started again.
    #[arg(long, value_name = "BYTES", default_value_t = 100 << 20)]
    pub flow_log_max_bytes: u64,
    /// NFLOG group the rules log verdicts to.
    #[arg(long, default_value_t = 100)]
    pub log_group: u16,
    /// How often the inputs are checked for changes.
    #[arg(long, default_value_t = 50)]
    pub poll_interval_ms: u64,
}

impl AgentArgs {
    /// How the agent renders its table.
    pub fn render_options(&self) -> RenderOptions {
        RenderOptions {
            audit: self.audit,
            log_group: self.log_group,
        }
    }

    /// The render options of an agent started with `args` besides its node and inputs (as
    /// the lab starts its agents), by the agent's own parser.
    pub fn render_options_of(args: &[String]) -> Result<RenderOptions, clap::Error> {
        #[derive(clap::Parser)]
        struct Agent {
            #[command(flatten)]
            args: AgentArgs,
        }
        let argv = ["agent", "--node", "-"].into_iter().map(String::from);
        let agent = <Agent as clap::Parser>::try_parse_from(argv.chain(args.iter().cloned()))?;
        Ok(agent.args.render_options())
    }
}

/// Runs the agent until SIGINT or SIGTERM.
pub fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    run_agent_until(args, &stop)
}

/// Runs the agent in the calling thread's network namespace until `stop` is set.
pub fn run_agent_until(args: AgentArgs, stop: &AtomicBool) -> anyhow::Result<()> {
    let metrics = Arc::new(metrics::Metrics::default());
    let health = Arc::new(metrics::Health::default());
    let listener = metrics::bind(args.metrics_addr)?;
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
    let inputs = match open_inputs(&args, &runtime, &metrics) {
        Ok(inputs) => inputs,
        Err(e) => {
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = runtime.block_on(server);
            return Err(e);
        }
    };
    let sink = flowlog::FlowLog::open(&args.flow_log, args.flow_log_max_bytes).map_err(|e| {
        anyhow::anyhow!("cannot open the flow log {}: {e}", args.flow_log.display())
    })?;
    let mut agent = agent::Agent::new(args, inputs, metrics, health);
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
    args: &AgentArgs,
    runtime: &tokio::runtime::Runtime,
    metrics: &Arc<metrics::Metrics>,
) -> anyhow::Result<inputs::Inputs> {
    let load = palisade_manifest::LoadOptions::default();
    if !args.manifests.is_empty() {
        return Ok(inputs::Inputs::files(state::Sources {
            manifests: args.manifests.clone(),
            pods: args.pods.clone(),
            node: args.node.clone(),
            load,
        }));
    }
    let connection = palisade_kube::Connection {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    };
    let observer: Arc<dyn palisade_kube::WatchObserver> = metrics.clone();
    let watch = runtime.block_on(async {
        let session = connection.connect().await?;
        tracing::info!(server = session.server, "watching the API server");
        palisade_kube::ClusterWatch::start(&session, observer).await
    })?;
    Ok(inputs::Inputs::Cluster {
        watch,
        node: args.node.clone(),
        load,
        seen: None,
        last_change: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lab learns how its agents render from their arguments, parsed as the agent does.
    #[test]
    fn render_options_come_from_the_agents_own_parser() {
        let of = |args: &[&str]| {
            AgentArgs::render_options_of(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
        };
        let options = |audit, log_group| RenderOptions { audit, log_group };
        assert_eq!(of(&[]).unwrap(), options(false, 100));
        assert_eq!(of(&["--audit", "--log-group=7"]).unwrap(), options(true, 7));
        assert_eq!(
            of(&["--log-group", "9", "--poll-interval-ms", "20"]).unwrap(),
            options(false, 9)
        );
        assert!(of(&["--log-group", "many"]).is_err());
    }
}
