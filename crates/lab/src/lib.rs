//! The lab: a manifest set run as real pods in network namespaces on this machine (nodes routed
//! Calico-style, a probe server in every pod, the agent in every node), and a prober that
//! measures the connectivity matrix so it can be compared with the engine's analysis.
//!
//! The lab is sealed: no link reaches the machine's own namespace, so its traffic can reach
//! nothing outside it.

pub mod kube;
mod lab;
mod net;
mod plan;
mod probe;
mod relay;
mod sctp;
mod serve;
mod sync;

pub use lab::{
    AgentConfig, DEFAULT_STATE_ROOT, DownReport, INVENTORY_FILE, LabState, UpConfig, down,
    is_lab_netns, load_state, netns_name, state_dir, up, validate_name,
};
pub use plan::{LabSubject, Plan, SubjectKind, plan};
pub use probe::{
    Difference, Measured, NotProbed, ProbeRow, ProbeSpec, compare, lab_cluster, probe, row_order,
    rows, write_tsv,
};
pub use relay::Relay;
pub use serve::serve;
pub use sync::{AGENT_METRICS, agent_metrics, agents_synced, metric, wait_for_agents};

use kube::KubeState;
use palisade_engine::Analysis;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{0}")]
    Invalid(String),
    #[error("`{command}` failed: {message}")]
    Tool { command: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("lab {0:?} already exists (remove it with `palisade lab down --name {0}`)")]
    Exists(String),
    #[error("no lab named {0:?} is running")]
    NoSuchLab(String),
    #[error("probe server in {netns} did not start: {log}")]
    ServerFailed { netns: String, log: String },
    #[error("agent in {netns} failed: {log}")]
    AgentFailed { netns: String, log: String },
    #[error("the agents of lab {lab} did not apply the current manifests within {waited:?}")]
    AgentsBehind { lab: String, waited: Duration },
    #[error("interrupted; everything the lab had created was removed")]
    Interrupted,
    #[error("the lab needs root (network namespaces); run it as root")]
    NotRoot,
}

/// `src dst port protocol measured expected` for every difference, then a summary line.
pub fn write_differences(
    out: &mut dyn Write,
    state: &LabState,
    rows: &[ProbeRow],
    differences: &[Difference],
) -> std::io::Result<()> {
    let compared = rows
        .iter()
        .filter(|r| r.measured.allowed().is_some())
        .count();
    if !differences.is_empty() {
        writeln!(out, "src\tdst\tport\tprotocol\tmeasured\texpected")?;
        for d in differences {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}",
                state.subjects[d.row.src].name,
                state.subjects[d.row.dst].name,
                d.row.port,
                d.row.protocol,
                d.row.measured.allowed() == Some(true),
                d.expected
            )?;
        }
    }
    writeln!(
        out,
        "{} of {compared} probed rows differ from the analysis ({} not probed)",
        differences.len(),
        rows.len() - compared
    )
}

/// The API server a lab is registered in.
#[derive(Clone, Debug)]
pub enum ApiServer {
    /// One started for the lab (`scripts/kube-env`, or the script PALISADE_KUBE_ENV names).
    Start,
    /// One already running, through this admin kubeconfig.
    Running(PathBuf),
}

/// Registers the lab `name` in `api` (started now for [`ApiServer::Start`]); `None` without an
/// API server.
pub fn on_api_server(
    api: Option<&ApiServer>,
    name: &str,
    state_root: &Path,
    plan: &mut Plan,
    analysis: &Analysis,
    manifests: &[PathBuf],
    namespace: &str,
) -> Result<Option<KubeState>, LabError> {
    let node_names: Vec<String> = (0..plan.nodes).map(|i| format!("node{i}")).collect();
    let (admin, started) = match api {
        Some(ApiServer::Running(admin)) => (admin.clone(), None),
        Some(ApiServer::Start) => {
            let script = std::env::var_os("PALISADE_KUBE_ENV")
                .map_or_else(|| PathBuf::from("scripts/kube-env"), PathBuf::from);
            let script = std::path::absolute(&script).unwrap_or(script);
            let dir = state_root.join(format!("{name}.kube"));
            let admin = kube::start_control_plane(&script, &dir)?;
            (admin, Some((script, dir)))
        }
        None => return Ok(None),
    };
    let agent_kubeconfig = lab::state_dir(state_root, name).join("agent.kubeconfig");
    let registered = kube::register(
        &admin,
        plan,
        analysis,
        manifests,
        namespace,
        &node_names,
        agent_kubeconfig,
    );
    match registered {
        Ok(mut state) => {
            state.started = started;
            Ok(Some(state))
        }
        Err(e) => {
            if let Some((script, dir)) = &started {
                kube::stop_control_plane(script, dir);
            }
            Err(e)
        }
    }
}

pub fn require_root() -> Result<(), LabError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// The relay of `lab relay`: listens in `netns`, forwards to `to`, says it is ready on `out`,
/// and runs until SIGINT or SIGTERM.
pub fn run_relay(
    netns: &str,
    to: std::net::SocketAddr,
    out: &mut dyn Write,
) -> Result<(), LabError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| LabError::Io {
            context: "installing signal handlers".into(),
            source: e,
        })?;
    }
    let relay = Relay::start(netns, to)?;
    let io = |e: std::io::Error| LabError::Io {
        context: "writing output".into(),
        source: e,
    };
    writeln!(out, "{}", serve::READY).map_err(io)?;
    out.flush().map_err(io)?;
    relay.wait(&stop);
    Ok(())
}
