//! What the agent reads (manifests and the pod inventory) and what it compiles from them.

use crate::inventory::{PodInventory, place};
use anyhow::{Context, bail};
use palisade_dataplane::{
    ChainIndex, ChainKey, RenderOptions, Ruleset, Runner, pod_interfaces, render,
};
use palisade_engine::{Analysis, ChainId, NodeProgram, PolicyId, TiVec};
use palisade_manifest::{LoadCache, LoadOptions, Loaded, Severity, load_paths};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// One compiled program with what is needed to explain its log records: the names of its
/// policies and pods, not the analysis they came from (a few of these are kept, and an
/// analysis holds the whole cluster).
pub struct Snapshot {
    pub program: NodeProgram,
    pub ruleset: Ruleset,
    chains_by_key: HashMap<ChainKey, ChainId>,
    /// `namespace/name` of each policy, by id.
    policy_names: Arc<TiVec<PolicyId, String>>,
    /// Namespace and name of the endpoint that has an address.
    endpoints_by_ip: Arc<HashMap<IpAddr, (String, String)>>,
}

impl Snapshot {
    pub fn new(analysis: &Analysis, program: NodeProgram, ruleset: Ruleset) -> Self {
        let chains_by_key = ruleset
            .chain_keys
            .iter_enumerated()
            .map(|(chain, &key)| (key, chain))
            .collect();
        let cluster = analysis.cluster();
        let mut endpoints_by_ip = HashMap::new();
        for endpoint in &cluster.endpoints {
            for ip in &endpoint.ips {
                // The first endpoint with an address is the one the analysis names for it.
                endpoints_by_ip
                    .entry(*ip)
                    .or_insert_with(|| (endpoint.namespace.clone(), endpoint.name.clone()));
            }
        }
        Self {
            program,
            ruleset,
            chains_by_key,
            policy_names: Arc::new(
                cluster
                    .policies
                    .iter()
                    .map(|p| p.qualified_name())
                    .collect(),
            ),
            endpoints_by_ip: Arc::new(endpoints_by_ip),
        }
    }

    /// Shares `earlier`'s names where they are the same as this one's: most changes rename
    /// nothing, and the agent keeps a few snapshots of a cluster's names.
    pub fn share_names_with(&mut self, earlier: &Snapshot) {
        if self.policy_names == earlier.policy_names {
            self.policy_names = earlier.policy_names.clone();
        }
        if self.endpoints_by_ip == earlier.endpoints_by_ip {
            self.endpoints_by_ip = earlier.endpoints_by_ip.clone();
        }
    }

    /// `namespace/name` of a policy of this program.
    pub fn policy_name(&self, policy: PolicyId) -> &str {
        &self.policy_names[policy]
    }

    /// Namespace and name of the endpoint that has `ip`; `None` for an outside address.
    pub fn endpoint_at(&self, ip: IpAddr) -> Option<(&str, &str)> {
        self.endpoints_by_ip
            .get(&ip)
            .map(|(namespace, name)| (namespace.as_str(), name.as_str()))
    }

    /// The snapshot with its table's source check filled in: the interfaces toward its local
    /// pods of the node `runner` runs in (from the node's routes, which are input too).
    pub fn with_node_interfaces(self, runner: &Runner) -> Result<Self, palisade_dataplane::Error> {
        let ips = self
            .program
            .locals
            .iter()
            .flat_map(|p| p.ips.iter().copied());
        let interfaces = pod_interfaces(runner, ips)?;
        Ok(Self {
            ruleset: self.ruleset.with_pod_interfaces(interfaces),
            ..self
        })
    }

    /// The chain whose log prefixes carry `key`, when this program has it.
    pub fn chain(&self, key: ChainKey) -> Option<ChainId> {
        self.chains_by_key.get(&key).copied()
    }

    /// Which rule of `chain` admits what, as its set was rendered; `None` for a chain of one
    /// rule after the other (its records name their rule).
    pub fn chain_index(&self, chain: ChainId) -> Option<&ChainIndex> {
        self.ruleset.chain_indexes.get(chain)?.as_ref()
    }
}

#[derive(Clone, Debug)]
pub struct Sources {
    pub manifests: Vec<PathBuf>,
    pub pods: Option<PathBuf>,
    pub node: String,
    pub load: LoadOptions,
}

#[cfg(test)]
impl Sources {
    /// Manifests in `dir`, no pod inventory.
    pub(crate) fn of_dir(dir: &Path) -> Self {
        Self {
            manifests: vec![dir.to_path_buf()],
            pods: None,
            node: "n0".to_string(),
            load: LoadOptions::default(),
        }
    }
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

    /// Whether a file of `earlier` is gone.
    pub fn lost_files_since(&self, earlier: &Fingerprint) -> bool {
        earlier
            .files
            .iter()
            .any(|(path, _, _)| !self.files.iter().any(|(p, _, _)| p == path))
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

    /// Loads and compiles; with a `cache`, only documents that changed since its last load
    /// are parsed again. Manifests with errors are refused as a whole: leaving out a broken
    /// policy could open what it closes, so the last good program stays in force.
    pub fn compile(
        &self,
        options: RenderOptions,
        cache: Option<&mut LoadCache>,
    ) -> anyhow::Result<Snapshot> {
        let started = std::time::Instant::now();
        // A directory being removed (or replaced) is empty for a moment: taken as "no
        // policies", it would open everything.
        for path in &self.manifests {
            let mut files = Vec::new();
            collect(path, &mut files);
            if files.is_empty() {
                bail!(
                    "{} holds no manifests (gone, or being replaced?); keeping the rules in force",
                    path.display()
                );
            }
        }
        let (loaded, parsed_documents) = match cache {
            Some(cache) => {
                let loaded = cache.load_paths(&self.manifests, &self.load);
                (loaded, Some(cache.last_parsed_documents()))
            }
            None => (load_paths(&self.manifests, &self.load), None),
        };
        tracing::debug!(parsed_documents, "loaded manifests");
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
        compile(loaded, inventory.as_ref(), &self.node, options, started)
    }
}

/// Compiles what was loaded (from files or the API server) into this node's program and
/// table. Input with errors is refused as a whole: leaving out a broken policy could open
/// what it closes, so the last good program stays in force.
pub fn compile(
    loaded: Loaded,
    inventory: Option<&PodInventory>,
    node: &str,
    options: RenderOptions,
    started: std::time::Instant,
) -> anyhow::Result<Snapshot> {
    let loaded_at = started.elapsed();
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        bail!(
            "the input has errors, keeping the rules in force:\n{}",
            errors.join("\n")
        );
    }
    let mut cluster = loaded.cluster;
    let (local, unknown) = place(&mut cluster, inventory, node);
    if !unknown.is_empty() {
        tracing::warn!(pods = ?unknown, "the pod inventory names pods the input does not have");
    }
    let analysis = Analysis::new(cluster);
    let analysed_at = started.elapsed();
    let program = NodeProgram::compile(&analysis, &local);
    let compiled_at = started.elapsed();
    let ruleset = render(&analysis, &program, options);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    tracing::info!(
        load_ms = ms(loaded_at),
        analysis_ms = ms(analysed_at - loaded_at),
        program_ms = ms(compiled_at - analysed_at),
        render_ms = ms(started.elapsed() - compiled_at),
        "compiled"
    );
    Ok(Snapshot::new(&analysis, program, ruleset))
}

/// Extensions of the files the manifest loader reads in a directory (files named explicitly
/// are read whatever theirs): a writer's temporary file next to them is no change.
const MANIFEST_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

pub(crate) fn has_manifest_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e))
}

fn collect(path: &Path, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
    let Ok(meta) = std::fs::metadata(path) else {
        // A missing file is a state too: its appearance is a change.
        return;
    };
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                let path = entry.path();
                if has_manifest_extension(&path) || path.is_dir() {
                    collect(&path, out);
                }
            }
        }
    } else {
        out.push((path.to_path_buf(), meta.len(), meta.modified().ok()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the loader reads changes the fingerprint; a writer's temporary file does not.
    #[test]
    fn fingerprints_follow_the_files_the_loader_reads() {
        let dir = tempfile::tempdir().unwrap();
        let sources = Sources::of_dir(dir.path());
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let empty = sources.fingerprint();
        for (name, changes) in [
            ("policy.yaml.tmp", false),
            ("notes.txt", false),
            ("policy.yaml", true),
            ("sub/more.yml", true),
            ("sub/inventory.json", true),
        ] {
            let before = sources.fingerprint();
            std::fs::write(dir.path().join(name), "kind: List\n").unwrap();
            assert_eq!(sources.fingerprint() != before, changes, "{name}");
        }
        assert_ne!(sources.fingerprint(), empty);
    }
}
