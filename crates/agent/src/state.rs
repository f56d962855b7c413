//! What the agent reads (manifests and the pod inventory) and what it compiles from them.

use crate::inventory::{PodInventory, place};
use anyhow::{Context, bail};
use palisade_dataplane::{RenderOptions, Ruleset, render};
use palisade_engine::{Analysis, NodeProgram};
use palisade_manifest::{LoadOptions, Severity, load_paths};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One compiled program with what is needed to explain its log records.
pub struct Snapshot {
    pub analysis: Analysis,
    pub program: NodeProgram,
    pub ruleset: Ruleset,
}

#[derive(Clone, Debug)]
pub struct Sources {
    pub manifests: Vec<PathBuf>,
    pub pods: Option<PathBuf>,
    pub node: String,
    pub load: LoadOptions,
}

/// Size and modification time of every input file: when it changes, the agent re-reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    files: Vec<(PathBuf, u64, Option<SystemTime>)>,
}

impl Fingerprint {
    /// The latest modification: when the change the agent reacts to was made.
    pub fn newest(&self) -> Option<SystemTime> {
        self.files.iter().filter_map(|(_, _, t)| *t).max()
    }
}

impl Sources {
    pub fn fingerprint(&self) -> Fingerprint {
        let mut files = Vec::new();
        for path in self.manifests.iter().chain(&self.pods) {
            collect(path, &mut files);
        }
        files.sort();
        Fingerprint { files }
    }

    /// Loads and compiles. Manifests with errors are refused as a whole: leaving out a broken
    /// policy could open what it closes, so the last good program stays in force.
    pub fn compile(&self, options: RenderOptions) -> anyhow::Result<Snapshot> {
        let loaded = load_paths(&self.manifests, &self.load);
        let errors: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        if !errors.is_empty() {
            bail!(
                "the manifests have errors, keeping the rules in force:\n{}",
                errors.join("\n")
            );
        }
        let inventory = match &self.pods {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the pod inventory {}", path.display()))?;
                let inventory: PodInventory = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a pod inventory", path.display()))?;
                Some(inventory)
            }
            None => None,
        };
        let mut cluster = loaded.cluster;
        let (local, unknown) = place(&mut cluster, inventory.as_ref(), &self.node);
        if !unknown.is_empty() {
            tracing::warn!(pods = ?unknown, "the pod inventory names pods the manifests do not have");
        }
        let analysis = Analysis::new(cluster);
        let program = NodeProgram::compile(&analysis, &local);
        let ruleset = render(&analysis, &program, options);
        Ok(Snapshot {
            analysis,
            program,
            ruleset,
        })
    }
}

fn collect(path: &Path, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
    let Ok(meta) = std::fs::metadata(path) else {
        // A missing file is a state too: its appearance is a change.
        return;
    };
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                collect(&entry.path(), out);
            }
        }
    } else {
        out.push((path.to_path_buf(), meta.len(), meta.modified().ok()));
    }
}
