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

use clap::{Args, Subcommand, ValueEnum};
use kube::KubeState;
use palisade_engine::{Analysis, Protocol};
use palisade_manifest::{LoadOptions, load_paths};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Default lab name, so that `lab up` / `lab down` work without `--name`.
pub const DEFAULT_NAME: &str = "lab";

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

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build a lab from manifests: node and pod network namespaces with probe servers.
    Up(UpArgs),
    /// Open a real connection for every ordered pair and port; print the measured matrix.
    Probe(ProbeArgs),
    /// Remove a lab: its processes, namespaces and state.
    Down(DownArgs),
    /// (internal) The probe server a lab pod runs.
    #[command(hide = true)]
    Serve(ServeArgs),
    /// (internal) Brings the lab's API server into a node's namespace.
    #[command(hide = true)]
    Relay(RelayArgs),
}

/// Options every lab command shares.
#[derive(Debug, Args)]
pub struct LabName {
    /// Lab name; parallel labs need different names.
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
    /// Where labs keep their state.
    #[arg(long, hide = true, default_value = DEFAULT_STATE_ROOT)]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Manifest files or directories (recursive).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Node namespaces; pods are spread over them.
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    #[command(flatten)]
    pub lab: LabName,
    /// Do not start the agent: an unprotected lab.
    #[arg(long)]
    pub no_agent: bool,
    /// The palisade binary to run in the lab (default: this one).
    #[arg(long, hide = true)]
    pub exe: Option<PathBuf>,
    /// Extra arguments for every agent.
    #[arg(long = "agent-arg", hide = true, allow_hyphen_values = true)]
    pub agent_args: Vec<String>,
    /// Register the lab in a real API server started for it (`scripts/kube-env`, or the script
    /// PALISADE_KUBE_ENV names): nodes and pods as a kubelet would, the manifests' policies;
    /// the agents watch the API with the shipped ClusterRole's token. `lab down` stops it.
    #[arg(long, conflicts_with = "kubeconfig")]
    pub kube: bool,
    /// Like --kube, with an API server already running (an admin kubeconfig).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RelayArgs {
    /// The lab the relay belongs to (identifies its process).
    #[arg(long)]
    pub name: String,
    /// The node namespace to listen in, at 127.0.0.1 and the target's port.
    #[arg(long)]
    pub netns: String,
    /// Where to forward, in the machine's own namespace.
    #[arg(long)]
    pub to: std::net::SocketAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProbeFormat {
    Tsv,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub lab: LabName,
    /// Ports to probe, e.g. `80,81` (default: each destination's declared container ports).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Vec<u16>,
    /// Protocols, e.g. `TCP,UDP,SCTP` (with --port the default is TCP; without, this filters the
    /// declared ports). SCTP is probed with raw INIT / INIT-ACK (the kernel has no SCTP
    /// sockets). Ports a destination does not serve are printed as `not-probed`.
    #[arg(long, value_delimiter = ',', value_parser = parse_protocol)]
    pub protocol: Vec<Protocol>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "tsv")]
    pub output: ProbeFormat,
    /// Print only the rows where measurement and analysis differ; exit 1 if any does.
    #[arg(long)]
    pub compare: bool,
    /// Milliseconds one connection attempt may take (a denied one takes this long).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub parallel: u64,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub lab: LabName,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The lab this server belongs to (identifies its process).
    #[arg(long)]
    pub name: String,
    /// The pod or host it serves, e.g. `p3`.
    #[arg(long)]
    pub role: String,
    #[arg(long, value_delimiter = ',')]
    pub tcp: Vec<u16>,
    #[arg(long, value_delimiter = ',')]
    pub udp: Vec<u16>,
    #[arg(long, value_delimiter = ',')]
    pub sctp: Vec<u16>,
}

fn parse_protocol(text: &str) -> Result<Protocol, String> {
    Protocol::parse(text).ok_or_else(|| format!("expected TCP, UDP or SCTP, got {text:?}"))
}

/// How long `probe --compare` waits for the agents to enforce the manifests as they are.
const AGENTS_CATCH_UP: Duration = Duration::from_secs(10);

/// The exit code of `probe --compare` when measurement and analysis differ.
pub const EXIT_DIFFERENT: u8 = 1;

/// Runs a lab command. `namespace` is the default namespace for manifests that name none.
/// Notes and diagnostics go to stderr; results to `out`.
pub fn run_lab(
    cmd: &LabCommand,
    namespace: &str,
    out: &mut dyn Write,
) -> Result<ExitCode, LabError> {
    let io = |e: std::io::Error| LabError::Io {
        context: "writing output".into(),
        source: e,
    };
    match cmd {
        LabCommand::Up(args) => {
            require_root()?;
            let analysis = load(&args.paths, namespace);
            let plan = plan(&analysis, args.nodes)?;
            for note in &plan.notes {
                eprintln!("note: {note}");
            }
            let exe = match &args.exe {
                Some(exe) => exe.clone(),
                None => std::env::current_exe().map_err(|e| LabError::Io {
                    context: "finding the palisade binary".into(),
                    source: e,
                })?,
            };
            let manifests = args
                .paths
                .iter()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
                .collect::<Vec<_>>();
            let mut plan = plan;
            let kube = on_api_server(args, &mut plan, &analysis, &manifests, namespace)?;
            let config = UpConfig {
                name: args.lab.name.clone(),
                exe,
                state_root: args.lab.state_dir.clone(),
                agent: (!args.no_agent).then(|| AgentConfig {
                    manifests: manifests.clone(),
                    extra_args: args.agent_args.clone(),
                }),
                manifests,
                default_namespace: namespace.to_string(),
                kube: kube.clone(),
            };
            let state = up(&plan, &config).inspect_err(|_| {
                if let Some(KubeState {
                    started: Some((script, dir)),
                    ..
                }) = &kube
                {
                    kube::stop_control_plane(script, dir);
                }
            })?;
            let pods = state.subjects.iter().filter(|s| !s.is_host()).count();
            writeln!(
                out,
                "lab {} is up: {} nodes, {pods} pods, {} outside hosts{}",
                state.name,
                state.nodes.len(),
                state.subjects.len() - pods,
                if state.agent {
                    ", agents running"
                } else {
                    ", no agent"
                }
            )
            .map_err(io)?;
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Probe(args) => {
            require_root()?;
            let state = load_state(&args.lab.state_dir, &args.lab.name)?;
            // Right after a change the agents may not enforce it yet: a comparison then would
            // report differences that are only late.
            if args.compare && state.agent {
                let options = state.agent_render_options()?;
                if let Err(e) =
                    wait_for_agents(&args.lab.state_dir, &state, options, AGENTS_CATCH_UP)
                {
                    eprintln!("note: {e}; comparing what is enforced now");
                }
            }
            let spec = ProbeSpec {
                ports: args.port.clone(),
                protocols: args.protocol.clone(),
                timeout: Duration::from_millis(args.timeout_ms),
                parallel: usize::try_from(args.parallel).unwrap_or(usize::MAX),
            };
            let rows = probe(&state, &spec)?;
            let unserved = rows
                .iter()
                .filter(|r| r.measured == Measured::NotProbed(NotProbed::NotServed))
                .count();
            if unserved > 0 {
                eprintln!(
                    "note: {unserved} row(s) not probed: no probe server listens on that port \
                     (the lab serves each pod's declared ports)"
                );
            }
            if !args.compare {
                write_tsv(out, &state, &rows).map_err(io)?;
                return Ok(ExitCode::SUCCESS);
            }
            // On the API server, the analysis is what `palisade matrix --kubeconfig` answers.
            let cluster = match &state.kube {
                Some(kube) => {
                    let options = LoadOptions {
                        default_namespace: state.default_namespace.clone(),
                    };
                    kube::read(kube, &options)?.0.cluster
                }
                None => load(&state.manifests, &state.default_namespace)
                    .cluster()
                    .clone(),
            };
            let analysis = Analysis::new(lab_cluster(cluster, &state));
            let differences = compare(&state, &analysis, &rows);
            write_differences(out, &state, &rows, &differences).map_err(io)?;
            Ok(if differences.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_DIFFERENT)
            })
        }
        LabCommand::Down(args) => {
            require_root()?;
            let report = down(&args.lab.state_dir, &args.lab.name)?;
            writeln!(
                out,
                "lab {} removed: {} namespaces, {} processes",
                args.lab.name, report.namespaces, report.processes
            )
            .map_err(io)?;
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Serve(args) => {
            serve(&args.tcp, &args.udp, &args.sctp, out)?;
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Relay(args) => {
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(signal, stop.clone()).map_err(|e| LabError::Io {
                    context: "installing signal handlers".into(),
                    source: e,
                })?;
            }
            let relay = Relay::start(&args.netns, args.to)?;
            writeln!(out, "{}", serve::READY).map_err(io)?;
            out.flush().map_err(io)?;
            relay.wait(&stop);
            Ok(ExitCode::SUCCESS)
        }
    }
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

/// With `--kube` or `--kubeconfig`: the API server (started now for `--kube`), with the lab
/// registered in it.
fn on_api_server(
    args: &UpArgs,
    plan: &mut Plan,
    analysis: &Analysis,
    manifests: &[PathBuf],
    namespace: &str,
) -> Result<Option<KubeState>, LabError> {
    let node_names: Vec<String> = (0..plan.nodes).map(|i| format!("node{i}")).collect();
    let (admin, started) = match (&args.kubeconfig, args.kube) {
        (Some(admin), _) => (admin.clone(), None),
        (None, true) => {
            let script = std::env::var_os("PALISADE_KUBE_ENV")
                .map_or_else(|| PathBuf::from("scripts/kube-env"), PathBuf::from);
            let script = std::path::absolute(&script).unwrap_or(script);
            let dir = args.lab.state_dir.join(format!("{}.kube", args.lab.name));
            let admin = kube::start_control_plane(&script, &dir)?;
            (admin, Some((script, dir)))
        }
        (None, false) => return Ok(None),
    };
    let agent_kubeconfig =
        lab::state_dir(&args.lab.state_dir, &args.lab.name).join("agent.kubeconfig");
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

fn require_root() -> Result<(), LabError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// Loads manifests, printing diagnostics to stderr and keeping whatever is valid (as every
/// palisade command does).
fn load(paths: &[PathBuf], namespace: &str) -> Analysis {
    let loaded = load_paths(
        paths,
        &LoadOptions {
            default_namespace: namespace.to_string(),
        },
    );
    for diagnostic in &loaded.diagnostics {
        eprintln!("{diagnostic}");
    }
    Analysis::new(loaded.cluster)
}
