//! Flow records of a flood folded into a few: the first verdict of a source, destination,
//! port, direction and verdict is written at once, and the ones after it within the same
//! second become one record that counts them.

use crate::flows::{FlowProtocol, FlowRecord, Verdict};
use palisade_engine::Direction;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long verdicts alike are folded into one record.
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Alike {
    src: IpAddr,
    dst: IpAddr,
    port: u16,
    protocol: FlowProtocol,
    direction: Direction,
    verdict: Verdict,
}

pub(crate) struct Folder {
    /// The records alike seen in this window: the latest, and how many came after the first.
    seen: HashMap<Alike, (FlowRecord, usize)>,
    window_start: Instant,
}

impl Default for Folder {
    fn default() -> Self {
        Self {
            seen: HashMap::new(),
            window_start: Instant::now(),
        }
    }
}

impl Folder {
    /// The record to write now, if it is the first of its kind in this window.
    pub(crate) fn fold(&mut self, record: FlowRecord) -> Option<FlowRecord> {
        let alike = Alike {
            src: record.src.ip,
            dst: record.dst.ip,
            port: record.dst.port,
            protocol: record.protocol,
            direction: record.direction,
            verdict: record.verdict,
        };
        match self.seen.get_mut(&alike) {
            Some((latest, after_first)) => {
                *latest = record;
                *after_first += 1;
                None
            }
            None => {
                self.seen.insert(alike, (record.clone(), 0));
                Some(record)
            }
        }
    }

    /// Once the window is over (or with `now`, at once): one record for each kind that came
    /// more than once, the latest with the count of those folded; a new window starts.
    pub(crate) fn flush(&mut self, now: bool) -> Vec<FlowRecord> {
        if !now && self.window_start.elapsed() < WINDOW {
            return Vec::new();
        }
        self.window_start = Instant::now();
        self.seen
            .drain()
            .filter(|(_, (_, after_first))| *after_first > 0)
            .map(|(_, (latest, after_first))| FlowRecord {
                folded: after_first,
                ..latest
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::FlowEnd;
    use palisade_engine::Protocol;

    fn record(src: &str, port: u16, verdict: Verdict) -> FlowRecord {
        let end = |ip: &str, port| FlowEnd {
            namespace: None,
            pod: None,
            ip: ip.parse().unwrap(),
            port,
        };
        FlowRecord {
            time: "t".into(),
            node: "n".into(),
            src: end(src, 40000),
            dst: end("10.1.0.1", port),
            protocol: FlowProtocol::Ported(Protocol::Udp),
            direction: Direction::Ingress,
            verdict,
            policies: Vec::new(),
            more_policies: 0,
            decided_by: String::new(),
            folded: 0,
        }
    }

    #[test]
    fn a_flood_is_its_first_record_and_one_that_counts_the_rest() {
        let mut folder = Folder::default();
        let flood = record("10.2.0.1", 80, Verdict::Dropped);
        assert_eq!(folder.fold(flood.clone()), Some(flood.clone()));
        for _ in 0..999 {
            assert_eq!(folder.fold(flood.clone()), None);
        }
        // Another source, port or verdict is a record of its own.
        for other in [
            record("10.2.0.2", 80, Verdict::Dropped),
            record("10.2.0.1", 81, Verdict::Dropped),
            record("10.2.0.1", 80, Verdict::Forwarded),
        ] {
            assert_eq!(folder.fold(other.clone()), Some(other));
        }
        assert_eq!(folder.flush(false), vec![], "the window is not over");
        let folded = folder.flush(true);
        assert_eq!(folded.len(), 1);
        assert_eq!(folded[0].folded, 999);
        assert_eq!(folded[0].src.ip, flood.src.ip);
        // A new window: the flood's next record is written at once again.
        assert_eq!(folder.fold(flood.clone()), Some(flood));
    }
}
