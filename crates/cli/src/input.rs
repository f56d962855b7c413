//! Loading manifests for a command and reporting what went wrong on stderr.

use crate::progress::Progress;
use palisade_engine::Analysis;
use palisade_manifest::{LoadOptions, Loaded, load_paths};
use std::path::PathBuf;

pub struct Input {
    pub analysis: Analysis,
    pub loaded: Loaded,
    pub had_errors: bool,
}

/// Loads every path, prints each diagnostic and one summary line of skipped kinds to stderr, and
/// keeps going with whatever was valid.
pub fn load(paths: &[PathBuf], namespace: &str, progress: &Progress) -> Input {
    let options = LoadOptions {
        default_namespace: namespace.to_string(),
    };
    progress.step("loading manifests");
    let started = std::time::Instant::now();
    let mut loaded = load_paths(paths, &options);
    tracing::info!(elapsed = ?started.elapsed(), endpoints = loaded.cluster.endpoints.len(), "loaded manifests");
    progress.step("indexing policies");
    for diagnostic in &loaded.diagnostics {
        eprintln!("{diagnostic}");
    }
    if !loaded.skipped_kinds.is_empty() {
        let total: usize = loaded.skipped_kinds.values().sum();
        let kinds: Vec<String> = loaded
            .skipped_kinds
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        eprintln!(
            "note: skipped {total} object(s) of kinds that do not affect network policy: {}",
            kinds.join(", ")
        );
    }
    let had_errors = loaded.has_errors();
    let cluster = std::mem::take(&mut loaded.cluster);
    Input {
        analysis: Analysis::new(cluster),
        loaded,
        had_errors,
    }
}
