//! The agent's loop: reconcile, watch, compile, apply atomically, revoke, record verdicts.

use crate::AgentConfig;
use crate::drift::TableWatch;
use crate::flowlog::FlowLog;
use crate::flows::{FlowRecord, NflogSocket, record};
use crate::fold::Folder;
use crate::inputs::Inputs;
use crate::metrics::{Health, Metrics, VerdictLabels};
use crate::state::Snapshot;
use palisade_dataplane::{Applied, Nft, Runner, conntrack};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Programs whose log records may still arrive: the current one and a few before it.
const KEPT_SNAPSHOTS: usize = 3;
/// First and longest wait before a failed sync is tried again.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// What a sync leaves to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Synced {
    /// The inputs' rules are in force, or the inputs are refused until they change (the same
    /// files fail the same way).
    Done,
    /// Applying or revoking failed (the kernel, not the inputs): try the same inputs again.
    Retry,
}

/// Waits between retries: doubling from `first` up to `max`, back to `first` after a success.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }

    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(self.max);
        wait
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }
}

type Snapshots = Arc<RwLock<Vec<Arc<Snapshot>>>>;

/// Gives the pages a sync freed back to the kernel. A sync builds and drops a cluster-sized
/// analysis; glibc keeps the freed pages between the live ones, and the agent's RSS grew by
/// about that much per change (190 MiB after 20 changes at 10k pods, 78 with this).
#[allow(unsafe_code)]
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it touches no live
    // allocation and may be called at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Time from a change (when known) to `at`.
fn lag(change: Option<SystemTime>, at: SystemTime) -> Option<Duration> {
    change.and_then(|c| at.duration_since(c).ok())
}

pub(crate) struct Agent {
    inputs: Inputs,
    config: AgentConfig,
    nft: Nft,
    runner: Runner,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    snapshots: Snapshots,
    /// Generation and digest of the table in the kernel, when it is ours.
    applied: Option<(u32, u64)>,
    /// The program whose table is in the kernel, when this agent knows it (it applied or
    /// adopted it): the next sync applies only the changes from it.
    in_force: Option<Arc<Snapshot>>,
    /// The rules in force were applied but the connections they deny were not all revoked.
    revoke_pending: bool,
    table_watch: TableWatch,
    /// The kernel's table is not what this agent applied: the next sync replaces it whole.
    replace_whole: bool,
}

impl Agent {
    pub(crate) fn new(
        config: AgentConfig,
        inputs: Inputs,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Self {
        let runner = Runner::here();
        let nft = Nft::new(runner.clone());
        Self {
            inputs,
            table_watch: TableWatch::start(&nft),
            replace_whole: false,
            nft,
            runner,
            metrics,
            health,
            snapshots: Arc::default(),
            applied: None,
            in_force: None,
            revoke_pending: false,
            config,
        }
    }

    /// Adopts a table a previous agent left: if it is the one we would write and nothing
    /// changed it since it was sealed, nothing is applied and enforcement never lapses.
    pub(crate) fn reconcile(&mut self) -> anyhow::Result<()> {
        match self.nft.current()? {
            Some(state) => {
                tracing::info!(rules = state.rules, set_elements = state.set_elements, agent = ?state.written_by_agent, intact = state.sealed_and_intact, "found an existing table");
                self.applied = state.written_by_agent;
                if state.written_by_agent.is_some() && !state.sealed_and_intact {
                    tracing::warn!(
                        "the table found was changed since an agent sealed it: replacing it"
                    );
                    self.replace_whole = true;
                }
            }
            None => tracing::info!("no table yet"),
        }
        Ok(())
    }

    /// Loads, compiles and applies when the result differs from what the kernel has.
    pub(crate) fn sync(&mut self, change: Option<SystemTime>) -> Synced {
        let started = Instant::now();
        let (generation, digest) = self.applied.unwrap_or((0, 0));
        let options = self.config.render;
        let snapshot = match self.inputs.compile(options) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                self.metrics.error("load");
                tracing::error!("{e:#}");
                return Synced::Done;
            }
        };
        // The routes are input too: without them the rules in force stay.
        let snapshot = match snapshot.with_node_interfaces(&self.runner) {
            Ok(mut snapshot) => {
                if let Some(in_force) = &self.in_force {
                    snapshot.share_names_with(in_force);
                }
                Arc::new(snapshot)
            }
            Err(e) => {
                self.metrics.error("routes");
                tracing::error!(
                    "cannot read the node's routes to its pods, keeping the rules in force: {e}"
                );
                return Synced::Retry;
            }
        };
        // Published before it is applied: the kernel logs with its chains at once. The
        // snapshot it pushes out is dropped when the sync returns.
        let _evicted = self.publish(snapshot.clone());
        if !self.replace_whole && self.applied.is_some() && snapshot.ruleset.digest == digest {
            // Same rules as in force: keep them.
            let change_to_enforced = lag(change, SystemTime::now());
            tracing::info!(
                generation,
                change_to_enforced_ms = change_to_enforced.map(|d| d.as_secs_f64() * 1e3),
                "rules in force are up to date"
            );
            self.table_watch.adopted(&self.nft);
            self.in_force = Some(snapshot.clone());
            if self.revoke_pending {
                let revoked = self.revoke(&snapshot);
                tracing::info!(generation, revoked, "retried revoking denied connections");
            }
            if self.revoke_pending {
                return Synced::Retry;
            }
            self.metrics.generation.set(i64::from(generation));
            self.health.set_ready(true);
            return Synced::Done;
        }
        let generation = generation.wrapping_add(1);
        let apply_started = Instant::now();
        let in_force = self.in_force.as_ref().map(|s| &s.ruleset);
        let how = match self.nft.apply(&snapshot.ruleset, generation, in_force) {
            Ok(Applied::Changed) => "changes",
            Ok(Applied::Replaced) => "replace",
            Ok(Applied::ReplacedAfterFailedChange(e)) => {
                self.metrics.error("apply_changes");
                tracing::warn!("applying only the changes failed, replaced the table: {e}");
                "replace"
            }
            Err(e) => {
                self.metrics.error("apply");
                tracing::error!(
                    "applying generation {generation} failed, the previous rules stay (will retry): {e}"
                );
                return Synced::Retry;
            }
        };
        // Enforced from the commit on; the seal below only records what was committed.
        let applied_at = SystemTime::now();
        let apply_took = apply_started.elapsed();
        self.metrics.applied(how);
        let seal_started = Instant::now();
        let seal = match self.nft.seal(generation, snapshot.ruleset.digest) {
            Ok(seal) => Some(seal),
            Err(e) => {
                // Enforced all the same; a restarted agent will replace the table.
                self.metrics.error("seal");
                tracing::warn!("cannot seal generation {generation}: {e}");
                None
            }
        };
        let seal_took = seal_started.elapsed();
        self.table_watch.applied(seal);
        self.replace_whole = false;
        self.health.set_ready(true);
        self.applied = Some((generation, snapshot.ruleset.digest));
        self.in_force = Some(snapshot.clone());
        self.revoke_pending = !self.config.render.audit;
        let revoke_started = Instant::now();
        let revoked = self.revoke(&snapshot);
        let revoke_took = revoke_started.elapsed();
        let took = started.elapsed();
        self.metrics.sync_seconds.observe(took.as_secs_f64());
        self.metrics.rules.set(snapshot.ruleset.rules() as i64);
        self.metrics
            .set_elements
            .set(snapshot.ruleset.set_elements() as i64);
        let now = applied_at.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.metrics.last_sync.set(now.as_secs_f64());
        self.metrics.generation.set(i64::from(generation));
        let change_to_applied = lag(change, applied_at);
        if let Some(lag) = change_to_applied {
            self.metrics.change_to_applied.observe(lag.as_secs_f64());
        }
        tracing::info!(
            generation,
            how,
            rules = snapshot.ruleset.rules(),
            set_elements = snapshot.ruleset.set_elements(),
            sync_ms = took.as_secs_f64() * 1e3,
            apply_ms = apply_took.as_secs_f64() * 1e3,
            seal_ms = seal_took.as_secs_f64() * 1e3,
            revoke_ms = revoke_took.as_secs_f64() * 1e3,
            change_to_applied_ms = change_to_applied.map(|d| d.as_secs_f64() * 1e3),
            revoked,
            "applied"
        );
        if self.revoke_pending {
            Synced::Retry
        } else {
            Synced::Done
        }
    }

    /// Deletes the conntrack entries of established connections `snapshot` denies, when a
    /// revocation is pending; it stays pending if that fails.
    fn revoke(&mut self, snapshot: &Snapshot) -> usize {
        if !self.revoke_pending {
            return 0;
        }
        match conntrack::revoke(&self.runner, &snapshot.program) {
            Ok(n) => {
                self.revoke_pending = false;
                self.metrics.revoked.inc_by(n as u64);
                n
            }
            Err(e) => {
                self.metrics.error("revoke");
                tracing::error!("revoking denied connections failed (will retry): {e}");
                0
            }
        }
    }

    /// Makes `snapshot` the first to explain records; returns the one it pushes out, for the
    /// caller to drop once the rules are applied (freeing a program of 10k policies takes
    /// milliseconds a change should not wait for).
    #[must_use]
    fn publish(&self, snapshot: Arc<Snapshot>) -> Option<Arc<Snapshot>> {
        let mut kept = self.snapshots.write().unwrap_or_else(|e| e.into_inner());
        kept.insert(0, snapshot);
        (kept.len() > KEPT_SNAPSHOTS).then(|| kept.pop()).flatten()
    }

    /// Waits for the inputs to change and syncs until `stop` is set; a sync the kernel
    /// failed is tried again, sooner on a change of the inputs. Until the inputs were read
    /// completely once (the API server's first lists), the rules in force stay.
    pub(crate) fn watch(&mut self, stop: &AtomicBool) {
        let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
        let mut retry_at: Option<Instant> = None;
        let mut pending: Option<Option<SystemTime>> = None;
        let mut told_incomplete = false;
        let poll = self.config.poll_interval;
        while !stop.load(Ordering::Relaxed) {
            self.health.beat();
            if let Some(change) = self.inputs.next_change(poll) {
                // The first change of a burst is when the wait for enforcement started.
                pending = Some(pending.flatten().or(change));
            }
            if self.table_watch.drifted(&self.nft) {
                self.metrics.table_repairs.inc();
                self.replace_whole = true;
                self.in_force = None;
                pending.get_or_insert(None);
            }
            let retry_due = retry_at.is_some_and(|at| Instant::now() >= at);
            if pending.is_none() && !retry_due {
                continue;
            }
            if !self.inputs.complete() {
                if !told_incomplete {
                    tracing::info!(
                        "waiting for a complete read of the inputs; the rules in force stay"
                    );
                    told_incomplete = true;
                }
                continue;
            }
            let synced = self.sync(pending.take().flatten());
            release_freed_memory();
            match synced {
                Synced::Done => {
                    backoff.reset();
                    retry_at = None;
                }
                Synced::Retry => retry_at = Some(Instant::now() + backoff.next_wait()),
            }
        }
    }

    pub(crate) fn shutdown(&self) -> anyhow::Result<()> {
        if self.config.cleanup_on_exit {
            self.nft.remove()?;
            tracing::info!("removed the rules (--cleanup-on-exit)");
        } else {
            tracing::info!("leaving the rules in force");
        }
        Ok(())
    }

    /// Reads the kernel's verdict log on a thread, writing one JSON line per verdict, until
    /// `done` is set (the thread then closes the NFLOG socket, freeing the group).
    pub(crate) fn record_flows(
        &self,
        mut sink: FlowLog,
        done: Arc<AtomicBool>,
    ) -> anyhow::Result<std::thread::JoinHandle<()>> {
        let group = self.config.render.log_group;
        let mut socket = NflogSocket::bind(group)
            .and_then(|s| s.set_non_blocking(true).map(|()| s))
            .map_err(|e| anyhow::anyhow!("cannot read NFLOG group {group}: {e}"))?;
        let snapshots = self.snapshots.clone();
        let metrics = self.metrics.clone();
        let node = self.config.node.clone();
        let mut folder = Folder::default();
        Ok(std::thread::spawn(move || {
            // Records are written in batches and flushed whenever the kernel has no more: one
            // write per record cost connection rate under bursts.
            let write = |sink: &mut FlowLog, flow: &FlowRecord| {
                if let Ok(line) = serde_json::to_string(flow)
                    && sink.write_line(&line).is_err()
                {
                    metrics.error("flow_log");
                }
            };
            while !done.load(Ordering::Relaxed) {
                for flow in folder.flush(false) {
                    write(&mut sink, &flow);
                }
                let packets = match socket.receive() {
                    Ok(packets) if packets.is_empty() => {
                        if sink.flush().is_err() {
                            metrics.error("flow_log");
                        }
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                    Ok(packets) => packets,
                    Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32) => {
                        // The kernel dropped records faster than we read them; reading goes on.
                        metrics.flow_log_overruns.inc();
                        tracing::warn!("NFLOG buffer overrun: some flow records were lost");
                        continue;
                    }
                    Err(e) => {
                        metrics.error("flow_log");
                        tracing::warn!("reading NFLOG: {e}");
                        continue;
                    }
                };
                let kept: Vec<Arc<Snapshot>> =
                    snapshots.read().unwrap_or_else(|e| e.into_inner()).clone();
                for packet in packets {
                    let Some(flow) = record(&packet, &kept, &node) else {
                        continue;
                    };
                    count(&metrics, &flow);
                    if let Some(flow) = folder.fold(flow) {
                        write(&mut sink, &flow);
                    }
                }
            }
            for flow in folder.flush(true) {
                write(&mut sink, &flow);
            }
            let _ = sink.flush();
        }))
    }
}

fn count(metrics: &Metrics, flow: &FlowRecord) {
    metrics
        .verdicts
        .get_or_create(&VerdictLabels {
            direction: crate::flows::direction_label(flow.direction).to_string(),
            verdict: flow.verdict.as_str().to_string(),
            policy: match flow.more_policies {
                0 => flow.policies.join(","),
                more => format!("{},+{more} more", flow.policies.join(",")),
            },
        })
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_the_cap_and_start_over_after_a_success() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(1000));
        let waits: Vec<Duration> = (0..6).map(|_| backoff.next_wait()).collect();
        assert_eq!(
            waits,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        backoff.reset();
        assert_eq!(backoff.next_wait(), ms(100));
    }
}
