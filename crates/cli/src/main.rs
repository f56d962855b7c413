//! `palisade`: one policy engine, three faces (analyze, enforce, prove).

use clap::{Parser, Subcommand};
use palisade::{EXIT_ERRORS, agent, check, explain, generate, lab, matrix, review, snapshot, web};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "Analyze, enforce and prove Kubernetes NetworkPolicies"
)]
struct Cli {
    /// Namespace for objects that name none.
    #[arg(
        short = 'n',
        long = "namespace",
        global = true,
        default_value = "default"
    )]
    namespace: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// May SRC open a connection to DST on this port? Exit 0 allowed, 1 denied, 2 errors.
    Check(check::CheckArgs),
    /// Every ordered pair of endpoints, per port and protocol.
    Matrix(matrix::MatrixArgs),
    /// Each policy in plain words, and which pods no policy isolates.
    Explain(explain::ExplainArgs),
    /// Pitfalls in policies: DNS cut off, selectors that select nothing, redundant rules, …
    Lint(review::LintCommand),
    /// What a change of manifests does to connectivity, by meaning rather than text.
    Diff(review::DiffCommand),
    /// A local web page: the graph, the matrix, explanations, lint, what-if and live flows.
    Serve(web::ServeArgs),
    /// Write a live cluster's namespaces, nodes, pods and policies as manifests.
    Snapshot(snapshot::SnapshotArgs),
    /// Write a synthetic cluster (namespaces, pods, policies), deterministic by seed.
    Generate(generate::GenerateArgs),
    /// The node agent: enforces policies for this node's pods with nftables.
    Agent(agent::AgentArgs),
    /// Follow and filter the agent's flow records.
    Observe(agent::ObserveArgs),
    /// A lab of network namespaces that proves enforcement equals analysis (needs root).
    #[command(subcommand)]
    Lab(lab::LabCommand),
}

fn main() -> ExitCode {
    // The API client's own logs repeat, less clearly, the one-line errors palisade prints.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,kube_client=off,rustls_platform_verifier=off",
                )
            }),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Not `stdout.lock()`: the agent writes flow records to stdout from its own threads.
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let result = match &cli.command {
        Command::Check(args) => check::run(args, &cli.namespace, &mut out),
        Command::Matrix(args) => matrix::run(args, &cli.namespace, &mut out),
        Command::Explain(args) => explain::run(args, &cli.namespace, &mut out),
        Command::Lint(command) => review::run_lint(command, &cli.namespace, &mut out),
        Command::Diff(command) => review::run_diff(command, &cli.namespace, &mut out),
        Command::Serve(args) => web::run(args, &cli.namespace),
        Command::Snapshot(args) => snapshot::run(args, &mut out),
        Command::Generate(args) => generate::run(args).map(|()| ExitCode::SUCCESS),
        Command::Observe(args) => agent::run_observe(args, &mut out).map(|()| ExitCode::SUCCESS),
        Command::Lab(command) => lab::run(command, &cli.namespace, &mut out),
        Command::Agent(args) => {
            palisade_agent::run_agent(args.config()).map(|()| ExitCode::SUCCESS)
        }
    };
    let flushed = out.flush();
    match (result, flushed) {
        (Ok(code), Ok(())) => code,
        // A closed pipe (`palisade matrix … | head`) is not an error worth a message.
        (_, Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        (Err(e), _) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        (Err(e), _) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERRORS)
        }
        (Ok(_), Err(e)) => {
            eprintln!("error: writing output: {e}");
            ExitCode::from(EXIT_ERRORS)
        }
    }
}

/// Anywhere in the chain: `lint … | head` fails inside the lint crate's own error type.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
