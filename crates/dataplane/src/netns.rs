//! Network namespaces made for tests and labs: created with a unique name, deleted on drop
//! (also when a test fails), and entered per thread.

use crate::nft::{Error, Runner};
use std::fs::File;
use std::sync::atomic::{AtomicU32, Ordering};

/// A network namespace under `/run/netns`, deleted again when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `PREFIX-<pid>-<n>`; the pid and a counter keep parallel runs apart.
    pub fn create(prefix: &str) -> Result<Self, Error> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        Runner::here().run("ip", &["netns", "add", &name], None)?;
        let ns = Self { name };
        // Loopback up: a namespace starts with it down.
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn runner(&self) -> Runner {
        Runner::in_netns(&self.name)
    }

    /// `ip ARGS…` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<String, Error> {
        self.runner().run("ip", args, None)
    }

    /// Runs `f` on a thread that has entered the namespace. Sockets it creates stay in the
    /// namespace wherever they are used afterwards.
    pub fn enter<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path)?;
        std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            Ok(f())
        })
        .join()
        .map_err(|_| std::io::Error::other("thread inside the namespace panicked"))?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = Runner::here().run("ip", &["netns", "del", &self.name], None) {
            eprintln!("cannot delete network namespace {}: {e}", self.name);
        }
    }
}

/// For a root-only test, which is `#[ignore]`d so that a plain `cargo test` lists it as ignored:
/// run on request (`--include-ignored`) without root or nft, it fails saying so instead of
/// passing without having run.
pub fn require_root_tests(what: &str) {
    let root = nix::unistd::Uid::effective().is_root();
    let nft = Runner::here().run("nft", &["--version"], None).is_ok();
    assert!(
        root && nft,
        "{what} needs root and nft (root: {root}, nft: {nft}); without them run plain \
         `cargo test`, which lists it as ignored"
    );
}

/// `SKIPPED: …` on the terminal. Written to stderr itself: the test harness captures only
/// `eprintln!`, and would show a skipped test as a bare `ok`.
pub fn say_skipped(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
}
