//! Protocols and sets of ports, kept as sorted disjoint inclusive ranges per protocol.

use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// Accepts exactly the API's spelling (`TCP`, `UDP`, `SCTP`); the API server is case-sensitive.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Port 0 is never a valid destination port, so full coverage is 1..=65535.
pub const MIN_PORT: u16 = 1;
pub const MAX_PORT: u16 = 65535;

/// A set of (protocol, port) pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSet {
    ranges: [Vec<(u16, u16)>; 3],
}

impl PortSet {
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn all() -> Self {
        let mut set = Self::empty();
        for proto in Protocol::ALL {
            set.insert_range(proto, MIN_PORT, MAX_PORT);
        }
        set
    }

    pub fn all_of(protocol: Protocol) -> Self {
        Self::range(protocol, MIN_PORT, MAX_PORT)
    }

    pub fn range(protocol: Protocol, from: u16, to: u16) -> Self {
        let mut set = Self::empty();
        set.insert_range(protocol, from, to);
        set
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.iter().all(Vec::is_empty)
    }

    pub fn is_all(&self) -> bool {
        *self == Self::all()
    }

    pub fn contains(&self, protocol: Protocol, port: u16) -> bool {
        let ranges = &self.ranges[protocol.index()];
        // Ranges are sorted and disjoint: find the last range starting at or before `port`.
        let idx = ranges.partition_point(|&(lo, _)| lo <= port);
        idx > 0 && ranges[idx - 1].1 >= port
    }

    pub fn ranges(&self, protocol: Protocol) -> &[(u16, u16)] {
        &self.ranges[protocol.index()]
    }

    pub fn insert_range(&mut self, protocol: Protocol, from: u16, to: u16) {
        if from > to {
            return;
        }
        let ranges = &mut self.ranges[protocol.index()];
        ranges.push((from, to));
        normalize(ranges);
    }

    pub fn union_with(&mut self, other: &PortSet) {
        for proto in Protocol::ALL {
            let theirs = other.ranges(proto);
            if theirs.is_empty() {
                continue;
            }
            let ours = &mut self.ranges[proto.index()];
            ours.extend_from_slice(theirs);
            normalize(ours);
        }
    }

    pub fn intersection(&self, other: &PortSet) -> PortSet {
        let mut out = PortSet::empty();
        for proto in Protocol::ALL {
            let (a, b) = (self.ranges(proto), other.ranges(proto));
            let (mut i, mut j) = (0, 0);
            let dst = &mut out.ranges[proto.index()];
            while i < a.len() && j < b.len() {
                let lo = a[i].0.max(b[j].0);
                let hi = a[i].1.min(b[j].1);
                if lo <= hi {
                    dst.push((lo, hi));
                }
                if a[i].1 < b[j].1 {
                    i += 1;
                } else {
                    j += 1;
                }
            }
        }
        out
    }
}

fn normalize(ranges: &mut Vec<(u16, u16)>) {
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    *ranges = merged;
}

impl fmt::Display for PortSet {
    /// `TCP:80,443,8000-8100 UDP:53`; `all` when every port of every protocol is in.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("all ports");
        }
        if self.is_empty() {
            return f.write_str("no ports");
        }
        let mut first = true;
        for proto in Protocol::ALL {
            let ranges = self.ranges(proto);
            if ranges.is_empty() {
                continue;
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if ranges == [(MIN_PORT, MAX_PORT)] {
                write!(f, "{proto}:all")?;
                continue;
            }
            let parts: Vec<String> = ranges
                .iter()
                .map(|&(lo, hi)| {
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}-{hi}")
                    }
                })
                .collect();
            write!(f, "{proto}:{}", parts.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn adjacent_ranges_merge_and_bounds_are_inclusive() {
        let mut set = PortSet::range(Protocol::Tcp, 80, 81);
        set.insert_range(Protocol::Tcp, 82, 90);
        set.insert_range(Protocol::Udp, 53, 53);
        assert_eq!(set.ranges(Protocol::Tcp), &[(80, 90)]);
        assert!(set.contains(Protocol::Tcp, 80) && set.contains(Protocol::Tcp, 90));
        assert!(!set.contains(Protocol::Tcp, 91) && !set.contains(Protocol::Tcp, 79));
        assert!(!set.contains(Protocol::Sctp, 85));
        assert_eq!(set.to_string(), "TCP:80-90 UDP:53");
    }

    #[test]
    fn display_of_whole_protocol_and_everything() {
        assert_eq!(PortSet::all().to_string(), "all ports");
        assert_eq!(PortSet::all_of(Protocol::Udp).to_string(), "UDP:all");
        assert_eq!(PortSet::empty().to_string(), "no ports");
    }

    fn arb_set() -> impl Strategy<Value = PortSet> {
        proptest::collection::vec((0usize..3, 1u16..200, 0u16..20), 0..6).prop_map(|items| {
            let mut set = PortSet::empty();
            for (p, lo, len) in items {
                set.insert_range(Protocol::ALL[p], lo, lo.saturating_add(len));
            }
            set
        })
    }

    proptest! {
        #[test]
        fn set_operations_agree_with_membership(a in arb_set(), b in arb_set(), port in 1u16..230, p in 0usize..3) {
            let proto = Protocol::ALL[p];
            let inter = a.intersection(&b);
            let mut uni = a.clone();
            uni.union_with(&b);
            prop_assert_eq!(inter.contains(proto, port), a.contains(proto, port) && b.contains(proto, port));
            prop_assert_eq!(uni.contains(proto, port), a.contains(proto, port) || b.contains(proto, port));
        }
    }
}
