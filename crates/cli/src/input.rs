//! Where a command's objects come from (manifest files, or a live cluster through its API
//! server) and reporting what went wrong on stderr.

use crate::progress::Progress;
use anyhow::bail;
use clap::Args;
use palisade_engine::Analysis;
use palisade_kube::Connection;
use palisade_manifest::{LoadOptions, Loaded, load_paths};
use std::path::{Path, PathBuf};

/// Options that point a command at a live cluster instead of manifest files.
#[derive(Args, Clone, Debug, Default)]
pub struct ClusterArgs {
    /// Read the live cluster through this kubeconfig. Without manifest paths the cluster is
    /// read anyway, through KUBECONFIG, ~/.kube/config or the in-cluster service account.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl ClusterArgs {
    /// True when the flags name a cluster.
    pub fn named(&self) -> bool {
        self.kubeconfig.is_some() || self.context.is_some()
    }

    pub fn connection(&self) -> Connection {
        Connection {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}

pub struct Input {
    pub analysis: Analysis,
    pub loaded: Loaded,
    pub had_errors: bool,
}

/// The objects of `paths`, or of the live cluster when the flags name one or no path is given.
/// Diagnostics are left for the caller to [`report`].
pub fn read(paths: &[PathBuf], cluster: &ClusterArgs, namespace: &str) -> anyhow::Result<Loaded> {
    let options = LoadOptions {
        default_namespace: namespace.to_string(),
    };
    let loaded = if cluster.named() || paths.is_empty() {
        if !paths.is_empty() {
            bail!("give manifest paths or a cluster (--kubeconfig/--context), not both");
        }
        palisade_kube::load_cluster(&cluster.connection(), &options)?
    } else {
        read_files(paths, &options)?
    };
    Ok(loaded)
}

/// Manifests that hold nothing at all (an empty directory, empty stdin) are an error, as for
/// `kubectl apply`: an empty answer would look like a cluster where nothing is isolated.
pub fn refuse_empty(loaded: &Loaded, paths: &[PathBuf]) -> anyhow::Result<()> {
    if !paths.is_empty() && loaded.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        bail!("no Kubernetes objects in {}", shown.join(", "));
    }
    Ok(())
}

/// Loads manifest files; a path that does not exist is an error, not an empty input.
pub fn read_files(paths: &[PathBuf], options: &LoadOptions) -> anyhow::Result<Loaded> {
    if let Some(missing) = paths
        .iter()
        .find(|p| p.as_path() != Path::new("-") && !p.exists())
    {
        bail!("{}: no such file or directory", missing.display());
    }
    Ok(load_paths(paths, options))
}

/// Prints each diagnostic (prefixed, e.g. `OLD: `) and one line of skipped kinds to stderr.
pub fn report(loaded: &Loaded, prefix: &str) {
    for diagnostic in &loaded.diagnostics {
        eprintln!("{prefix}{diagnostic}");
    }
    if !loaded.skipped_kinds.is_empty() {
        let total: usize = loaded.skipped_kinds.values().sum();
        let kinds: Vec<String> = loaded
            .skipped_kinds
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        eprintln!(
            "note: {prefix}skipped {total} object(s) that do not affect network policy: {}",
            kinds.join(", ")
        );
    }
}

/// Reads the input as [`read`] does, keeping going with whatever was valid, and indexes it.
pub fn load(
    paths: &[PathBuf],
    cluster: &ClusterArgs,
    namespace: &str,
    progress: &Progress,
) -> anyhow::Result<Input> {
    progress.step(if cluster.named() || paths.is_empty() {
        "reading the cluster"
    } else {
        "loading manifests"
    });
    let started = std::time::Instant::now();
    let mut loaded = read(paths, cluster, namespace)?;
    report(&loaded, "");
    refuse_empty(&loaded, paths)?;
    tracing::info!(elapsed = ?started.elapsed(), endpoints = loaded.cluster.endpoints.len(), "loaded");
    progress.step("indexing policies");
    let had_errors = loaded.has_errors();
    let cluster = std::mem::take(&mut loaded.cluster);
    Ok(Input {
        analysis: Analysis::new(cluster),
        loaded,
        had_errors,
    })
}
