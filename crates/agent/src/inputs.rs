//! What the agent enforces comes from manifest files (`--manifests`, watched on disk) or from
//! the API server (watched with kube-runtime). Both give a [`Loaded`] and the node's pods;
//! from there the agent does the same.

use crate::inventory::PodInventory;
use crate::state::{Fingerprint, Snapshot, Sources, compile};
use crate::waiter::ChangeWaiter;
use palisade_dataplane::RenderOptions;
use palisade_kube::ClusterWatch;
use palisade_manifest::{LoadCache, LoadOptions};
use std::time::{Duration, Instant, SystemTime};

/// A burst of API events (a `kubectl apply` of many objects) or file events becomes one
/// sync (API events: the rest of a burst after its first, which is taken at once): the agent
/// waits until the events pause this long…
const SETTLE_QUIET: Duration = Duration::from_millis(10);
/// …but never longer than this after the first.
const SETTLE_MOST: Duration = Duration::from_millis(100);
/// The same when a manifest file is gone.
const DELETION_QUIET: Duration = Duration::from_millis(500);
const DELETION_MOST: Duration = Duration::from_secs(2);

pub(crate) enum Inputs {
    Files {
        sources: Sources,
        /// Parsed manifests, so a sync parses only the documents that changed.
        cache: LoadCache,
        waiter: ChangeWaiter,
        seen: Option<Fingerprint>,
    },
    Cluster {
        watch: ClusterWatch,
        node: String,
        load: LoadOptions,
        seen: Option<u64>,
        /// When the last change was taken: a change within `SETTLE_MOST` of it is part of a
        /// burst.
        last_change: Option<Instant>,
    },
}

impl Inputs {
    pub(crate) fn files(sources: Sources) -> Self {
        Self::Files {
            waiter: ChangeWaiter::new(&sources),
            sources,
            cache: LoadCache::default(),
            seen: None,
        }
    }

    /// Waits up to `timeout` for the inputs to change. `Some(when)` when they changed since
    /// the last call (always on the first), with the time of the change when known.
    pub(crate) fn next_change(&mut self, timeout: Duration) -> Option<Option<SystemTime>> {
        match self {
            Self::Files {
                sources,
                waiter,
                seen,
                ..
            } => {
                let first = sources.fingerprint();
                if seen.as_ref() != Some(&first) {
                    // A burst of file events (a directory being removed file by file, an
                    // archive unpacked) is read once it is over, not half way through. A
                    // file gone may be the first of a directory being removed: taken alone,
                    // it could open what the rest closes, so deletions wait longer.
                    let lost = seen.as_ref().is_some_and(|s| first.lost_files_since(s));
                    let (quiet, most) = if lost {
                        (DELETION_QUIET, DELETION_MOST)
                    } else {
                        (SETTLE_QUIET, SETTLE_MOST)
                    };
                    let started = Instant::now();
                    while started.elapsed() < most && waiter.wait(sources, quiet) {}
                    let now = sources.fingerprint();
                    let newest = now.newest();
                    *seen = Some(now);
                    // A directory made again since is watched again.
                    waiter.watch(sources);
                    return Some(newest);
                }
                waiter.wait(sources, timeout);
                None
            }
            Self::Cluster {
                watch,
                seen,
                last_change,
                ..
            } => {
                let latest = match *seen {
                    Some(generation) => watch.wait(generation, timeout),
                    None => watch.seen(),
                };
                if *seen == Some(latest.generation) {
                    return None;
                }
                // Every state the API server held is one the cluster declared, so a change after
                // a quiet spell (one `kubectl apply`) is taken at once; what follows it closely
                // settles into one sync.
                let in_burst = last_change.is_some_and(|at| at.elapsed() < SETTLE_MOST);
                let taken = match in_burst {
                    true => watch.settle(SETTLE_QUIET, SETTLE_MOST),
                    false => watch.seen(),
                };
                *seen = Some(taken.generation);
                *last_change = Some(Instant::now());
                Some(latest.at)
            }
        }
    }

    /// True when the inputs can be read completely (the API server's first lists are in; no
    /// input file is half-written): before that, nothing derived from them may replace the
    /// rules in force.
    pub(crate) fn complete(&mut self) -> bool {
        match self {
            Self::Files {
                sources, waiter, ..
            } => !waiter.writing(sources),
            Self::Cluster { watch, .. } => watch.complete(),
        }
    }

    pub(crate) fn compile(&mut self, options: RenderOptions) -> anyhow::Result<Snapshot> {
        match self {
            Self::Files { sources, cache, .. } => sources.compile(options, Some(cache)),
            Self::Cluster {
                watch, node, load, ..
            } => {
                let started = Instant::now();
                let (loaded, placements) = watch.load(load);
                let inventory = PodInventory::from_placements(placements);
                compile(loaded, Some(&inventory), node, options, started)
            }
        }
    }
}
