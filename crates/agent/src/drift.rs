//! Noticing that the table in the kernel is no longer the one the agent applied: deleted,
//! flushed by another tool, a rule or an element added or removed by hand. `nft monitor`
//! reports every change to the namespace's tables at once; a listing every
//! [`CHECK_EVERY`] catches what a dead monitor would miss.

use palisade_dataplane::{Nft, Stamp};
use std::io::BufRead;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest time between two comparisons of the kernel's table with the one applied.
const CHECK_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct TableWatch {
    /// The seal of the table this agent applied (or adopted).
    expected: Option<Stamp>,
    /// Set by the monitor on any change to any table.
    changed: Arc<AtomicBool>,
    monitor: Option<Child>,
    next_check: Instant,
}

impl TableWatch {
    /// Starts `nft monitor`; without it, the table is still compared every [`CHECK_EVERY`].
    pub(crate) fn start(nft: &Nft) -> Self {
        let changed = Arc::new(AtomicBool::new(false));
        let monitor = match nft.monitor() {
            Ok(mut child) => {
                let stdout = child.stdout.take();
                let flag = changed.clone();
                // Ends when the monitor does (its pipe closes).
                std::thread::spawn(move || {
                    for _ in std::io::BufReader::new(stdout?)
                        .lines()
                        .map_while(Result::ok)
                    {
                        flag.store(true, Ordering::Relaxed);
                    }
                    Some(())
                });
                Some(child)
            }
            Err(e) => {
                tracing::warn!(
                    "cannot watch the table for changes ({e}); comparing it every {CHECK_EVERY:?}"
                );
                None
            }
        };
        Self {
            expected: None,
            changed,
            monitor,
            next_check: Instant::now() + CHECK_EVERY,
        }
    }

    /// Remembers the table in force as this agent applied and sealed it (`None`: it could
    /// not be sealed, so nothing is compared until the next apply).
    pub(crate) fn applied(&mut self, seal: Option<Stamp>) {
        self.expected = seal;
        // The monitor saw this agent's own transactions.
        self.changed.store(false, Ordering::Relaxed);
    }

    /// Remembers the table found in force, when nothing is remembered yet.
    pub(crate) fn adopted(&mut self, nft: &Nft) {
        if self.expected.is_none() {
            self.applied(nft.intact_seal().ok().flatten());
        }
    }

    /// Whether the table changed since it was applied, checked when the monitor reported a
    /// change or [`CHECK_EVERY`] has passed: it must still be as sealed. A table that cannot
    /// be read counts as changed: replacing it again is always safe.
    pub(crate) fn drifted(&mut self, nft: &Nft) -> bool {
        let due = Instant::now() >= self.next_check;
        if !(self.changed.swap(false, Ordering::Relaxed) || due) {
            return false;
        }
        self.next_check = Instant::now() + CHECK_EVERY;
        let Some(expected) = self.expected else {
            return false;
        };
        let found = nft.intact_seal();
        if matches!(found, Ok(Some(seal)) if seal == expected) {
            return false;
        }
        let what = match found {
            Ok(Some(_)) => "sealed by another generation".to_string(),
            Ok(None) => "gone or changed".to_string(),
            Err(e) => format!("unreadable ({e})"),
        };
        tracing::warn!("the table in the kernel is {what}, not as applied: replacing it");
        self.expected = None;
        true
    }
}

impl Drop for TableWatch {
    fn drop(&mut self) {
        if let Some(mut child) = self.monitor.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
