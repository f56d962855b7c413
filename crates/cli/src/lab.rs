//! `palisade lab`: its flags and the order of its steps; the lab itself is `palisade-lab`.

use crate::check::parse_protocol;
use crate::input::{self, ClusterArgs};
use crate::progress::Progress;
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use palisade_engine::{Analysis, Protocol};
use palisade_lab::kube::{self, KubeState};
use palisade_lab::{
    AgentConfig, ApiServer, DEFAULT_STATE_ROOT, Measured, NotProbed, ProbeSpec, UpConfig,
};
use palisade_manifest::LoadOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Default lab name, so that `lab up` / `lab down` work without `--name`.
const DEFAULT_NAME: &str = "lab";

/// How long `probe --compare` waits for the agents to enforce the manifests as they are.
const AGENTS_CATCH_UP: Duration = Duration::from_secs(10);

/// The exit code of `probe --compare` when measurement and analysis differ.
const EXIT_DIFFERENT: u8 = 1;

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

/// Runs a lab command. `namespace` is the default namespace for manifests that name none.
/// Notes and diagnostics go to stderr; results to `out`.
pub fn run(cmd: &LabCommand, namespace: &str, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCommand::Up(args) => up(args, namespace, out),
        LabCommand::Probe(args) => probe(args, out),
        LabCommand::Down(args) => {
            palisade_lab::require_root()?;
            let report = palisade_lab::down(&args.lab.state_dir, &args.lab.name)?;
            writeln!(
                out,
                "lab {} removed: {} namespaces, {} processes",
                args.lab.name, report.namespaces, report.processes
            )
            .context("writing output")?;
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Serve(args) => {
            palisade_lab::serve(&args.tcp, &args.udp, &args.sctp, out)?;
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Relay(args) => {
            palisade_lab::run_relay(&args.netns, args.to, out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn up(args: &UpArgs, namespace: &str, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    palisade_lab::require_root()?;
    let progress = Progress::new();
    let input = input::load(&args.paths, &ClusterArgs::default(), namespace, &progress)?;
    progress.finish();
    let analysis = input.analysis;
    let mut plan = palisade_lab::plan(&analysis, args.nodes)?;
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    let exe = match &args.exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().context("finding the palisade binary")?,
    };
    let manifests = args
        .paths
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect::<Vec<_>>();
    let api = match (&args.kubeconfig, args.kube) {
        (Some(admin), _) => Some(ApiServer::Running(admin.clone())),
        (None, true) => Some(ApiServer::Start),
        (None, false) => None,
    };
    let kube = palisade_lab::on_api_server(
        api.as_ref(),
        &args.lab.name,
        &args.lab.state_dir,
        &mut plan,
        &analysis,
        &manifests,
        namespace,
    )?;
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
    let state = palisade_lab::up(&plan, &config).inspect_err(|_| {
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
    .context("writing output")?;
    Ok(ExitCode::SUCCESS)
}

fn probe(args: &ProbeArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    palisade_lab::require_root()?;
    let state = palisade_lab::load_state(&args.lab.state_dir, &args.lab.name)?;
    // Right after a change the agents may not enforce it yet: a comparison then would
    // report differences that are only late.
    if args.compare && state.agent {
        let options = crate::agent::render_options_of(&state.agent_args)
            .map_err(|e| anyhow::anyhow!("the lab's agent arguments: {e}"))?;
        if let Err(e) =
            palisade_lab::wait_for_agents(&args.lab.state_dir, &state, options, AGENTS_CATCH_UP)
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
    let rows = palisade_lab::probe(&state, &spec)?;
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
        palisade_lab::write_tsv(out, &state, &rows).context("writing output")?;
        return Ok(ExitCode::SUCCESS);
    }
    let options = LoadOptions {
        default_namespace: state.default_namespace.clone(),
    };
    // On the API server, the analysis is what `palisade matrix --kubeconfig` answers.
    let cluster = match &state.kube {
        Some(kube) => kube::read(kube, &options)?.0.cluster,
        None => {
            let loaded = input::read_files(&state.manifests, &options)?;
            input::report(&loaded, "");
            loaded.cluster
        }
    };
    let analysis = Analysis::new(palisade_lab::lab_cluster(cluster, &state));
    let differences = palisade_lab::compare(&state, &analysis, &rows);
    palisade_lab::write_differences(out, &state, &rows, &differences).context("writing output")?;
    Ok(if differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DIFFERENT)
    })
}
