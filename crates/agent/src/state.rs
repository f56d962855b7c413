//! What the agent reads (manifests and the pod inventory) and what it compiles from them.

use crate::inventory::{PodInventory, place};
use anyhow::{Context, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use palisade_dataplane::{
    ChainIndex, ChainKey, RenderOptions, Ruleset, Runner, pod_interfaces, render,
};
use palisade_engine::{Analysis, ChainId, NodeProgram};
use palisade_manifest::{LoadCache, LoadOptions, Loaded, Severity, load_paths};
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One compiled program with what is needed to explain its log records.
pub struct Snapshot {
    pub analysis: Analysis,
    pub program: NodeProgram,
    pub ruleset: Ruleset,
    chains_by_key: HashMap<ChainKey, ChainId>,
}

impl Snapshot {
    pub fn new(analysis: Analysis, program: NodeProgram, ruleset: Ruleset) -> Self {
        let chains_by_key = ruleset
            .chain_keys
            .iter()
            .enumerate()
            .map(|(chain, &key)| (key, chain))
            .collect();
        Self {
            analysis,
            program,
            ruleset,
            chains_by_key,
        }
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

    /// Loads and compiles; with a `cache`, only documents that changed since its last load
    /// are parsed again. Manifests with errors are refused as a whole: leaving out a broken
    /// policy could open what it closes, so the last good program stays in force.
    pub fn compile(
        &self,
        options: RenderOptions,
        cache: Option<&mut LoadCache>,
    ) -> anyhow::Result<Snapshot> {
        let started = std::time::Instant::now();
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
    Ok(Snapshot::new(analysis, program, ruleset))
}

/// Wakes the agent's watch loop as soon as an input may have changed, instead of at the next
/// poll (half a poll interval on average, on the path from a change to its enforcement).
/// Polling stays: a directory created later, or a filesystem without inotify, is still seen.
pub struct ChangeWaiter {
    inotify: Option<Inotify>,
}

impl ChangeWaiter {
    /// Watches the input directories and the directories of input files: editors and
    /// `kubectl`-style writers replace a file by renaming, which a watch on the file misses.
    /// Without inotify it only waits.
    pub fn new(sources: &Sources) -> Self {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok();
        let waiter = Self { inotify };
        waiter.watch(sources);
        waiter
    }

    /// (Re)adds the watches: new subdirectories are picked up on every wake.
    fn watch(&self, sources: &Sources) {
        let Some(inotify) = &self.inotify else {
            return;
        };
        // A file is complete when closed after writing or renamed into place: waking on
        // every write would read it half-written.
        let mask = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_ATTRIB;
        let mut dirs = Vec::new();
        for path in sources.manifests.iter().chain(&sources.pods) {
            if path.is_dir() {
                directories(path, &mut dirs);
            } else if let Some(parent) = path.parent() {
                dirs.push(if parent.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    parent.to_path_buf()
                });
            }
        }
        for dir in dirs {
            // A directory that cannot be watched is still polled.
            let _ = inotify.add_watch(&dir, mask);
        }
    }

    /// Returns after `timeout`, or sooner when an input directory reports a change: true
    /// then.
    pub fn wait(&self, sources: &Sources, timeout: Duration) -> bool {
        let Some(inotify) = &self.inotify else {
            std::thread::sleep(timeout);
            return false;
        };
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, timeout).unwrap_or(0) == 0 {
            return false;
        }
        // Drained: the caller compares fingerprints, one wake is enough.
        while inotify.read_events().is_ok_and(|events| !events.is_empty()) {}
        self.watch(sources);
        true
    }
}

fn directories(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                directories(&entry.path(), out);
            }
        }
    }
}

/// Extensions of the files the manifest loader reads in a directory (files named explicitly
/// are read whatever theirs): a writer's temporary file next to them is no change.
const MANIFEST_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

fn collect(path: &Path, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
    let Ok(meta) = std::fs::metadata(path) else {
        // A missing file is a state too: its appearance is a change.
        return;
    };
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                let path = entry.path();
                let read = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e));
                if read || path.is_dir() {
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

    fn sources(dir: &Path) -> Sources {
        Sources {
            manifests: vec![dir.to_path_buf()],
            pods: None,
            node: "n0".to_string(),
            load: LoadOptions::default(),
        }
    }

    /// What the loader reads changes the fingerprint; a writer's temporary file does not.
    #[test]
    fn fingerprints_follow_the_files_the_loader_reads() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources(dir.path());
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

    /// A file renamed into a watched directory, as writers replace manifests, wakes the
    /// watch loop (without inotify, `wait` reports no change and the test says so).
    #[test]
    fn a_file_renamed_into_place_wakes_the_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources(dir.path());
        let waiter = ChangeWaiter::new(&sources);
        if waiter.inotify.is_none() {
            eprintln!("skipping: no inotify here");
            return;
        }
        let path = dir.path().to_path_buf();
        let writer = std::thread::spawn(move || {
            std::fs::write(path.join("p.yaml.tmp"), "kind: List\n").unwrap();
            std::fs::rename(path.join("p.yaml.tmp"), path.join("p.yaml")).unwrap();
        });
        assert!(waiter.wait(&sources, Duration::from_secs(60)));
        writer.join().unwrap();
    }
}
