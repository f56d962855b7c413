//! `palisade snapshot -o DIR`: the live cluster's objects that policy depends on, as manifests
//! every other command reads offline.

use crate::input::ClusterArgs;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct SnapshotArgs {
    /// Directory to write (created if missing): namespaces.yaml, nodes.yaml, pods.yaml,
    /// networkpolicies.yaml.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub fn run(args: &SnapshotArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let connection = args.cluster.connection();
    let (objects, server) = palisade_kube::run(async {
        let session = connection.connect().await?;
        let objects = palisade_kube::read(&session).await?;
        Ok((objects, session.server))
    })?;
    let written = palisade_kube::snapshot(&objects, &args.output)?;
    writeln!(
        out,
        "wrote {written} objects of {server} to {} ({} namespaces, {} nodes, {} pods, {} NetworkPolicies)",
        args.output.display(),
        objects.namespaces.len(),
        objects.nodes.len(),
        objects.pods.len(),
        objects.policies.len()
    )?;
    Ok(ExitCode::SUCCESS)
}
