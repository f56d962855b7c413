//! `lint` and `diff` on manifests or a live cluster: the CLI reads the input, `palisade-lint`
//! answers.

use crate::input::{self, ClusterArgs};
use anyhow::bail;
use clap::Args;
use palisade_manifest::LoadOptions;
use std::io::Write;
use std::process::ExitCode;

#[derive(Args)]
pub struct LintCommand {
    #[command(flatten)]
    pub args: palisade_lint::LintArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args)]
pub struct DiffCommand {
    #[command(flatten)]
    pub args: palisade_lint::DiffArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub fn run_lint(
    command: &LintCommand,
    namespace: &str,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    // The loader's diagnostics are findings of their own: not printed twice.
    let loaded = input::read(&command.args.paths, &command.cluster, namespace)?;
    input::refuse_empty(&loaded, &command.args.paths)?;
    Ok(palisade_lint::report_lint(&command.args, &loaded, out)?)
}

/// `diff OLD NEW`, or with a cluster, the live state against the live state with the
/// manifests applied to it ("what would `kubectl apply -f PATH…` change?").
pub fn run_diff(
    command: &DiffCommand,
    namespace: &str,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let paths = &command.args.paths;
    let mut input_errors = false;
    let (old, new) = if command.cluster.named() {
        let live = input::read(&[], &command.cluster, namespace)?;
        input::report(&live, "OLD (the cluster): ");
        let options = LoadOptions {
            default_namespace: namespace.to_string(),
        };
        let manifests = input::read_files(paths, &options)?;
        input::report(&manifests, "NEW (applied): ");
        input_errors = live.has_errors() || manifests.has_errors();
        let mut applied = live.clone();
        applied.apply(manifests);
        (live.cluster, applied.cluster)
    } else {
        let [old, new] = paths.as_slice() else {
            bail!("diff takes OLD and NEW, or --kubeconfig/--context and the manifests to apply");
        };
        let mut sides = Vec::new();
        for (side, path) in [("OLD: ", old), ("NEW: ", new)] {
            let loaded = input::read(std::slice::from_ref(path), &command.cluster, namespace)?;
            input::report(&loaded, side);
            if loaded.is_empty() {
                eprintln!("{side}warning: no Kubernetes objects in {}", path.display());
            }
            input_errors |= loaded.has_errors();
            sides.push(loaded.cluster);
        }
        let new = sides.pop().unwrap_or_default();
        (sides.pop().unwrap_or_default(), new)
    };
    Ok(palisade_lint::report_diff(
        &command.args,
        old,
        new,
        input_errors,
        out,
    )?)
}
