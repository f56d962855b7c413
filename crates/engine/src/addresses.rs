//! Address ranges: the one range type of the engine ([`IpRange`]), its two spellings, and the
//! interval arithmetic over addresses-as-numbers that ipBlocks, outside ranges and node programs
//! share (an ipBlock as ranges, overlapping ranges made disjoint).

use crate::ports::PortSet;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An inclusive range of addresses of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpRange {
    pub first: IpAddr,
    pub last: IpAddr,
}

impl IpRange {
    pub fn single(ip: IpAddr) -> Self {
        Self {
            first: ip,
            last: ip,
        }
    }

    /// The range `[first, last]` of numbers (see [`ip_to_u128`]) of one family.
    pub fn from_numbers(first: u128, last: u128, v4: bool) -> Self {
        Self {
            first: u128_to_ip(first, v4),
            last: u128_to_ip(last, v4),
        }
    }

    /// Every address of a family.
    pub fn everything(v4: bool) -> Self {
        if v4 {
            Self {
                first: Ipv4Addr::UNSPECIFIED.into(),
                last: Ipv4Addr::BROADCAST.into(),
            }
        } else {
            Self {
                first: Ipv6Addr::UNSPECIFIED.into(),
                last: Ipv6Addr::from(u128::MAX).into(),
            }
        }
    }

    pub fn is_ipv4(&self) -> bool {
        self.first.is_ipv4()
    }

    /// `(first, last)` as numbers.
    pub fn numbers(&self) -> (u128, u128) {
        (ip_to_u128(self.first), ip_to_u128(self.last))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (first, last) = self.numbers();
        ip.is_ipv4() == self.is_ipv4() && (first..=last).contains(&ip_to_u128(ip))
    }

    /// True when `next` starts right after this range ends, in the same family.
    pub fn precedes(&self, next: &IpRange) -> bool {
        self.is_ipv4() == next.is_ipv4()
            && ip_to_u128(self.last).checked_add(1) == Some(ip_to_u128(next.first))
    }

    /// `a.b.c.d/n` when the range is exactly one prefix (a single address too), `first-last`
    /// otherwise: how reports name outside ranges.
    pub fn label(&self) -> String {
        match self.prefix_len() {
            Some(len) => format!("{}/{len}", self.first),
            None => format!("{}-{}", self.first, self.last),
        }
    }

    /// The prefix length when the range is exactly one prefix.
    fn prefix_len(&self) -> Option<u32> {
        let (first, last) = self.numbers();
        let bits: u32 = if self.is_ipv4() { 32 } else { 128 };
        match (last - first).checked_add(1) {
            None => Some(0),
            Some(size) if size.is_power_of_two() && first % size == 0 => {
                Some(bits - size.trailing_zeros())
            }
            Some(_) => None,
        }
    }
}

impl fmt::Display for IpRange {
    /// `a`, `a/n` when the range is one prefix, `first-last` otherwise (nft's spellings).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            return write!(f, "{}", self.first);
        }
        f.write_str(&self.label())
    }
}

/// An address as a number, for interval arithmetic over one family.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The inverse of [`ip_to_u128`]; with `v4`, only the low 32 bits are meaningful.
pub fn u128_to_ip(value: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(value as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(value))
    }
}

/// The highest address of a family, as a number.
pub fn family_max(v4: bool) -> u128 {
    if v4 { u128::from(u32::MAX) } else { u128::MAX }
}

/// A network as `(first, last)` numbers.
pub(crate) fn net_numbers(net: &ipnet::IpNet) -> (u128, u128) {
    (ip_to_u128(net.network()), ip_to_u128(net.broadcast()))
}

/// Ranges that cover a family from its first address, one starting at each of `starts`
/// (sorted, distinct, the first being 0) and ending where the next starts.
pub fn ranges_from_starts(starts: &[u128], v4: bool) -> Vec<IpRange> {
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let last = starts.get(i + 1).map_or(family_max(v4), |next| next - 1);
            IpRange::from_numbers(start, last, v4)
        })
        .collect()
}

/// `cidr` minus `except`, as disjoint ranges: an ipBlock's addresses.
pub(crate) fn block_ranges(cidr: ipnet::IpNet, except: &[ipnet::IpNet]) -> Vec<IpRange> {
    let v4 = cidr.addr().is_ipv4();
    let mut pieces = vec![net_numbers(&cidr)];
    for hole in except {
        let (lo, hi) = net_numbers(hole);
        pieces = pieces
            .into_iter()
            .flat_map(|(a, b)| {
                if hi < a || lo > b {
                    return vec![(a, b)];
                }
                let mut kept = Vec::new();
                if lo > a {
                    kept.push((a, lo - 1));
                }
                if hi < b {
                    kept.push((hi + 1, b));
                }
                kept
            })
            .collect();
    }
    pieces
        .into_iter()
        .map(|(a, b)| IpRange::from_numbers(a, b, v4))
        .collect()
}

/// Splits possibly overlapping ranges, each carrying a value that unions (ports),
/// into disjoint sorted ranges, merging neighbours whose values are equal.
pub(crate) fn merge<T: Clone + PartialEq + Unite>(entries: Vec<(IpRange, T)>) -> Vec<(IpRange, T)> {
    let mut out = Vec::new();
    for v4 in [true, false] {
        let family: Vec<(u128, u128, &T)> = entries
            .iter()
            .filter(|(r, _)| r.is_ipv4() == v4)
            .map(|(r, t)| {
                let (first, last) = r.numbers();
                (first, last, t)
            })
            .collect();
        // Elementary intervals start at every range start and after every range end.
        let mut cuts: Vec<u128> = family
            .iter()
            .flat_map(|&(lo, hi, _)| [Some(lo), hi.checked_add(1)])
            .flatten()
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut values: BTreeMap<usize, T> = BTreeMap::new();
        for &(lo, hi, value) in &family {
            let start = cuts.partition_point(|&c| c < lo);
            for (i, &cut) in cuts.iter().enumerate().skip(start) {
                if cut > hi {
                    break;
                }
                values
                    .entry(i)
                    .and_modify(|v| v.unite(value))
                    .or_insert_with(|| value.clone());
            }
        }
        let mut current: Option<(u128, u128, T)> = None;
        for (i, value) in values {
            let lo = cuts[i];
            let hi = cuts.get(i + 1).map_or(u128::MAX, |next| next - 1);
            let hi = hi.min(family_max(v4));
            match &mut current {
                Some((_, end, v)) if *v == value && end.checked_add(1) == Some(lo) => *end = hi,
                _ => {
                    if let Some((a, b, v)) = current.replace((lo, hi, value)) {
                        out.push((IpRange::from_numbers(a, b, v4), v));
                    }
                }
            }
        }
        if let Some((a, b, v)) = current {
            out.push((IpRange::from_numbers(a, b, v4), v));
        }
    }
    out
}

/// Possibly overlapping ranges as disjoint sorted ones, neighbours joined: what [`merge`]
/// gives for ranges without values, in a sort instead of a cut per range end.
pub(crate) fn coalesce(ranges: Vec<IpRange>) -> Vec<IpRange> {
    let mut bounds: Vec<(bool, u128, u128)> = ranges
        .iter()
        .map(|r| {
            let (first, last) = r.numbers();
            (!r.is_ipv4(), first, last)
        })
        .collect();
    bounds.sort_unstable();
    let mut out: Vec<(bool, u128, u128)> = Vec::with_capacity(bounds.len());
    for (v6, first, last) in bounds {
        match out.last_mut() {
            Some((family, _, end)) if *family == v6 && end.saturating_add(1) >= first => {
                *end = (*end).max(last);
            }
            _ => out.push((v6, first, last)),
        }
    }
    out.into_iter()
        .map(|(v6, first, last)| IpRange::from_numbers(first, last, !v6))
        .collect()
}

/// A value that ranges carry through [`merge`]: overlapping ranges unite their values.
pub(crate) trait Unite {
    fn unite(&mut self, other: &Self);
}

impl Unite for PortSet {
    fn unite(&mut self, other: &Self) {
        self.union_with(other);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Protocol;

    fn r(first: &str, last: &str) -> IpRange {
        IpRange {
            first: first.parse().unwrap(),
            last: last.parse().unwrap(),
        }
    }

    #[test]
    fn label_and_display_spell_ranges_as_their_outputs_do() {
        // (range, label, Display)
        let cases = [
            (r("10.0.0.0", "10.0.0.255"), "10.0.0.0/24", "10.0.0.0/24"),
            (r("10.0.0.1", "10.0.0.1"), "10.0.0.1/32", "10.0.0.1"),
            (
                r("10.0.0.1", "10.0.0.6"),
                "10.0.0.1-10.0.0.6",
                "10.0.0.1-10.0.0.6",
            ),
            (
                r("10.0.0.2", "10.0.0.5"),
                "10.0.0.2-10.0.0.5",
                "10.0.0.2-10.0.0.5",
            ),
            (r("0.0.0.0", "255.255.255.255"), "0.0.0.0/0", "0.0.0.0/0"),
            (IpRange::everything(false), "::/0", "::/0"),
            (r("fd00::", "fd00::ffff"), "fd00::/112", "fd00::/112"),
            (r("fd00::1", "fd00::1"), "fd00::1/128", "fd00::1"),
            (r("::", "::1"), "::/127", "::/127"),
        ];
        for (range, label, display) in cases {
            assert_eq!(range.label(), label, "{range:?}");
            assert_eq!(range.to_string(), display, "{range:?}");
        }
    }

    #[test]
    fn contains_keeps_to_one_family() {
        let v4 = r("0.0.0.0", "0.0.0.255");
        // ::1 is the number 1, inside the IPv4 range's numbers: still not contained.
        let cases = [
            (v4, "0.0.0.1", true),
            (v4, "::1", false),
            (v4, "0.0.1.0", false),
            (IpRange::everything(false), "10.0.0.1", false),
            (IpRange::everything(false), "fd00::1", true),
            (IpRange::everything(true), "255.255.255.255", true),
        ];
        for (range, ip, expected) in cases {
            assert_eq!(
                range.contains(ip.parse().unwrap()),
                expected,
                "{range} {ip}"
            );
        }
    }

    #[test]
    fn a_block_is_its_cidr_minus_its_excepts() {
        let ranges = |cidr: &str, except: &[&str]| -> Vec<String> {
            let except: Vec<ipnet::IpNet> = except.iter().map(|e| e.parse().unwrap()).collect();
            block_ranges(cidr.parse().unwrap(), &except)
                .iter()
                .map(IpRange::label)
                .collect()
        };
        assert_eq!(ranges("10.0.0.0/24", &[]), ["10.0.0.0/24"]);
        assert_eq!(
            ranges("10.0.0.0/24", &["10.0.0.0/26", "10.0.0.192/26"]),
            ["10.0.0.64-10.0.0.191"]
        );
        assert_eq!(
            ranges("10.0.0.0/24", &["10.0.0.64/26"]),
            ["10.0.0.0/26", "10.0.0.128/25"]
        );
        assert_eq!(
            ranges("10.0.0.0/24", &["10.0.0.0/16"]),
            Vec::<String>::new()
        );
        assert_eq!(ranges("10.0.0.0/24", &["10.1.0.0/16"]), ["10.0.0.0/24"]);
        assert_eq!(ranges("0.0.0.0/0", &["0.0.0.0/1"]), ["128.0.0.0/1"]);
        assert_eq!(ranges("::/0", &["::/1"]), ["8000::/1"]);
    }

    #[test]
    fn coalesce_joins_overlaps_and_neighbours_per_family() {
        let out = coalesce(vec![
            r("10.0.0.5", "10.0.0.9"),
            IpRange::single("fd00::1".parse().unwrap()),
            r("10.0.0.0", "10.0.0.4"),
            r("10.0.0.8", "10.0.0.20"),
            r("10.0.1.0", "10.0.1.0"),
            // The IPv6 address ::a is the number 10: it must not join the IPv4 ranges.
            IpRange::single("::a".parse().unwrap()),
        ]);
        assert_eq!(
            out,
            [
                r("10.0.0.0", "10.0.0.20"),
                r("10.0.1.0", "10.0.1.0"),
                r("::a", "::a"),
                r("fd00::1", "fd00::1"),
            ]
        );
        assert_eq!(
            coalesce(vec![IpRange::everything(false), IpRange::everything(false)]),
            [IpRange::everything(false)]
        );
    }

    #[test]
    fn merge_splits_overlaps_and_unites_their_values() {
        let tcp = |lo, hi| PortSet::range(Protocol::Tcp, lo, hi);
        let both = {
            let mut set = tcp(80, 80);
            set.union_with(&tcp(443, 443));
            set
        };
        let out = merge(vec![
            (r("10.0.0.0", "10.0.0.9"), tcp(80, 80)),
            (r("10.0.0.5", "10.0.0.20"), tcp(443, 443)),
            (r("10.0.0.21", "10.0.0.30"), tcp(443, 443)),
            (IpRange::everything(false), tcp(80, 80)),
        ]);
        assert_eq!(
            out,
            [
                (r("10.0.0.0", "10.0.0.4"), tcp(80, 80)),
                (r("10.0.0.5", "10.0.0.9"), both),
                // Neighbours with equal values are one range.
                (r("10.0.0.10", "10.0.0.30"), tcp(443, 443)),
                (IpRange::everything(false), tcp(80, 80)),
            ]
        );
        assert_eq!(
            merge(vec![(IpRange::everything(true), tcp(1, 1))]),
            [(IpRange::everything(true), tcp(1, 1))]
        );
    }

    #[test]
    fn ranges_from_starts_cover_the_family_and_precede_each_other() {
        let ranges = ranges_from_starts(&[0, 10, 20], true);
        assert_eq!(
            ranges,
            [
                r("0.0.0.0", "0.0.0.9"),
                r("0.0.0.10", "0.0.0.19"),
                r("0.0.0.20", "255.255.255.255"),
            ]
        );
        assert!(ranges[0].precedes(&ranges[1]) && ranges[1].precedes(&ranges[2]));
        assert!(!ranges[0].precedes(&ranges[2]));
        assert!(!r("::", "::9").precedes(&ranges[1]));
        assert_eq!(
            ranges_from_starts(&[0], false),
            [IpRange::everything(false)]
        );
    }
}
