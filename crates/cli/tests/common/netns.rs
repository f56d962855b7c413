//! Running code inside a lab's network namespaces.

// Each test binary that declares `mod common;` uses some of this, or none.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Pod `x/{name}` of a lab: its namespace, and its address (port 0).
pub fn pod_of(state: &palisade_lab::LabState, name: &str) -> (String, SocketAddr) {
    let k = state
        .subjects
        .iter()
        .position(|s| s.name == format!("x/{name}"))
        .unwrap();
    let addr = SocketAddr::new(state.subjects[k].ip.into(), 0);
    (state.subject_netns[k].clone(), addr)
}

/// Runs `f` on a thread inside network namespace `netns`.
pub fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(format!("/run/netns/{netns}")).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Clients in `netns` opening TCP connections to `dst` as fast as they can, until stopped;
/// counts attempts and connections that got through. A denied SYN is dropped, so each attempt
/// waits a short timeout; several clients keep SYNs flowing meanwhile.
pub struct Hammer {
    stop: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
    through: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Hammer {
    const CLIENTS: usize = 8;

    pub fn start(netns: &str, dst: SocketAddr) -> Hammer {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicUsize::new(0));
        let through = Arc::new(AtomicUsize::new(0));
        let threads = (0..Self::CLIENTS)
            .map(|_| {
                let file = std::fs::File::open(format!("/run/netns/{netns}")).unwrap();
                let (stop, attempts, through) = (stop.clone(), attempts.clone(), through.clone());
                std::thread::spawn(move || {
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        if TcpStream::connect_timeout(&dst, Duration::from_millis(50)).is_ok() {
                            through.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Hammer {
            stop,
            attempts,
            through,
            threads,
        }
    }

    /// Stops the clients; returns (attempts, connections that got through).
    pub fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        (
            self.attempts.load(Ordering::Relaxed),
            self.through.load(Ordering::Relaxed),
        )
    }
}

/// Asserts that a hammer on `dst`, an admitted pair, gets a connection through within 10 s:
/// the leak detector of the tests sees a connection the moment the rules let one through.
pub fn assert_hammer_gets_through(netns: &str, dst: SocketAddr) {
    let hammer = Hammer::start(netns, dst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while hammer.through.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (_, through) = hammer.finish();
    assert!(
        through > 0,
        "the detector saw no connection on an allowed pair"
    );
}

/// Hammers `dst`, which must stay denied, from `netns` while `update` runs `updates` times
/// (with 1, 2, …); asserts that the clients ran and that no connection got through.
pub fn no_connection_through_during(
    netns: &str,
    dst: SocketAddr,
    updates: usize,
    mut update: impl FnMut(usize),
) {
    let hammer = Hammer::start(netns, dst);
    let started = Instant::now();
    for n in 1..=updates {
        update(n);
    }
    let took = started.elapsed();
    let (attempts, through) = hammer.finish();
    eprintln!(
        "{updates} updates in {took:?}; {attempts} denied connection attempts during them, {through} got through"
    );
    assert!(
        attempts >= updates,
        "the clients barely ran: {attempts} attempts"
    );
    assert_eq!(through, 0, "denied connections got through during updates");
}
