//! Waking the agent's watch loop as soon as an input file may have changed, and knowing when a
//! file is still being written.

use crate::state::{Sources, has_manifest_extension};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Wakes the agent's watch loop as soon as an input may have changed, instead of at the next
/// poll (half a poll interval on average, on the path from a change to its enforcement).
/// Polling stays: a directory created later, or a filesystem without inotify, is still seen.
pub struct ChangeWaiter {
    inotify: Option<Inotify>,
    /// The directory each watch is on.
    watched: HashMap<WatchDescriptor, PathBuf>,
    /// Input files written to and not closed since: half-written until they are.
    writing: HashSet<PathBuf>,
}

impl ChangeWaiter {
    /// Watches the input directories and the directories of input files: editors and
    /// `kubectl`-style writers replace a file by renaming, which a watch on the file misses.
    /// Without inotify it only waits.
    pub fn new(sources: &Sources) -> Self {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok();
        let mut waiter = Self {
            inotify,
            watched: HashMap::new(),
            writing: HashSet::new(),
        };
        waiter.watch(sources);
        waiter
    }

    /// (Re)adds the watches: new subdirectories are picked up on every wake.
    pub fn watch(&mut self, sources: &Sources) {
        let Some(inotify) = &self.inotify else {
            return;
        };
        // A file is complete when closed after writing or renamed into place; a write
        // without a close since marks it as being written.
        let mask = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MODIFY
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
            if let Ok(wd) = inotify.add_watch(&dir, mask) {
                self.watched.insert(wd, dir);
            }
        }
    }

    /// Takes in the events that arrived: which input files are being written.
    fn absorb(&mut self, sources: &Sources) {
        let Some(inotify) = &self.inotify else {
            return;
        };
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for event in events {
                let (Some(dir), Some(name)) = (self.watched.get(&event.wd), &event.name) else {
                    continue;
                };
                let path = dir.join(name);
                let input = has_manifest_extension(&path)
                    || sources.manifests.contains(&path)
                    || sources.pods.as_ref() == Some(&path);
                if event.mask.contains(AddWatchFlags::IN_MODIFY) && input {
                    self.writing.insert(path);
                } else if event.mask.intersects(
                    AddWatchFlags::IN_CLOSE_WRITE
                        | AddWatchFlags::IN_MOVED_FROM
                        | AddWatchFlags::IN_DELETE,
                ) {
                    self.writing.remove(&path);
                }
            }
        }
    }

    /// True while an input file is open with writes not closed yet: reading it now could
    /// take half a file for the whole (a policy cut off opens what it closes).
    pub fn writing(&mut self, sources: &Sources) -> bool {
        self.absorb(sources);
        !self.writing.is_empty()
    }

    /// Returns after `timeout`, or sooner when an input directory reports a change: true
    /// then.
    pub fn wait(&mut self, sources: &Sources, timeout: Duration) -> bool {
        let Some(inotify) = &self.inotify else {
            std::thread::sleep(timeout);
            return false;
        };
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, timeout).unwrap_or(0) == 0 {
            return false;
        }
        self.absorb(sources);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A temporary directory of manifests and a waiter on it; `None` (said on stderr) where
    /// there is no inotify.
    fn watched_dir() -> Option<(tempfile::TempDir, Sources, ChangeWaiter)> {
        let dir = tempfile::tempdir().unwrap();
        let sources = Sources::of_dir(dir.path());
        let waiter = ChangeWaiter::new(&sources);
        if waiter.inotify.is_none() {
            eprintln!("skipping: no inotify here");
            return None;
        }
        Some((dir, sources, waiter))
    }

    /// A file renamed into a watched directory, as writers replace manifests, wakes the
    /// watch loop (without inotify, `wait` reports no change and the test says so).
    #[test]
    fn a_file_renamed_into_place_wakes_the_waiter() {
        let Some((dir, sources, mut waiter)) = watched_dir() else {
            return;
        };
        let path = dir.path().to_path_buf();
        let writer = std::thread::spawn(move || {
            std::fs::write(path.join("p.yaml.tmp"), "kind: List\n").unwrap();
            std::fs::rename(path.join("p.yaml.tmp"), path.join("p.yaml")).unwrap();
        });
        assert!(waiter.wait(&sources, Duration::from_secs(60)));
        writer.join().unwrap();
    }

    /// A manifest open with writes is being written until it is closed; other files do not
    /// count.
    #[test]
    fn a_manifest_is_being_written_until_it_is_closed() {
        let Some((dir, sources, mut waiter)) = watched_dir() else {
            return;
        };
        let mut notes = std::fs::File::create(dir.path().join("notes.txt")).unwrap();
        notes.write_all(b"draft").unwrap();
        assert!(!waiter.writing(&sources));
        let mut policy = std::fs::File::create(dir.path().join("policy.yaml")).unwrap();
        policy.write_all(b"kind: List\n").unwrap();
        assert!(waiter.writing(&sources));
        drop(policy);
        assert!(!waiter.writing(&sources));
    }
}
