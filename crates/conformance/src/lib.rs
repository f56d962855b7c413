//! Palisade's conformance suite, in the style of the upstream Kubernetes e2e netpol suite
//! (`test/e2e/network/netpol/network_policy.go`), as data: every [`Case`] is a world (namespaces
//! x, y, z with pods a, b, c serving 80 and 81 over TCP, UDP and SCTP, plus whatever the case
//! adds) and the truth table written by hand from the documented semantics. The engine's tests
//! check every case against `Analysis`; the lab's tests run every case on real namespaces with
//! the agent enforcing, and check the measurement against both.

mod cases;
mod harness;
mod manifests;

pub use harness::*;

/// One truth-table case.
#[derive(Clone, Debug)]
pub struct Case {
    /// The function that writes it, with `#n` when it writes several (e.g. before and after an
    /// update).
    pub name: String,
    pub world: World,
    /// Expected connectivity for every ordered pair of the world's subjects on ports 80/81 over
    /// TCP, UDP and SCTP, loopback included.
    pub expected: Reachability,
}

/// Every case of the suite, in a stable order.
pub fn cases() -> Vec<Case> {
    let mut c = Cases::default();
    cases::register(&mut c);
    c.list
}

/// Collects cases while the case functions run.
#[derive(Default)]
pub(crate) struct Cases {
    list: Vec<Case>,
    current: &'static str,
}

impl Cases {
    /// Runs one case function; the cases it adds are named after it.
    pub(crate) fn case(&mut self, name: &'static str, write: fn(&mut Cases)) {
        let first = self.list.len();
        self.current = name;
        write(self);
        let added = &mut self.list[first..];
        assert!(!added.is_empty(), "case function {name} adds no case");
        if added.len() > 1 {
            for (i, case) in added.iter_mut().enumerate() {
                case.name = format!("{name}#{}", i + 1);
            }
        }
    }

    pub(crate) fn add(&mut self, world: &World, mut expected: Reachability) {
        expected.allow_loopback();
        self.list.push(Case {
            name: self.current.to_string(),
            world: world.clone(),
            expected,
        });
    }
}
