//! The nftables table as data: written whole (an atomic replace) or as the difference from the
//! table in force (one transaction that touches only what changed). Pure: no I/O.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::hash::Hasher;

/// The table every node agent owns; nothing else in it is anyone else's.
pub const TABLE: &str = "palisade";

/// Holds one element whose comment says which generation and digest are in force: table
/// comments cannot change once the table exists, and a delta keeps the table.
pub(crate) const STATE_SET: &str = "state";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Element {
    pub key: String,
    /// For maps: what the key maps to.
    pub value: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SetKind {
    Set,
    Map,
}

impl SetKind {
    fn keyword(self) -> &'static str {
        match self {
            SetKind::Set => "set",
            SetKind::Map => "map",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SetDef {
    pub name: String,
    pub kind: SetKind,
    /// `type …`, `flags …`, `size …`: what cannot change without recreating the set.
    pub head: Vec<String>,
    pub elements: Vec<Element>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ChainDef {
    pub name: String,
    /// `comment …`, `type filter hook …`: what cannot change without recreating the chain.
    pub head: Vec<String>,
    pub rules: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Table {
    pub sets: Vec<SetDef>,
    pub chains: Vec<ChainDef>,
}

impl Table {
    pub fn rules(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    pub fn set_elements(&self) -> usize {
        self.sets.iter().map(|s| s.elements.len()).sum()
    }

    /// A stable hash of the whole table (std's hasher may change between releases, and
    /// digests are stored in the kernel for the next agent to compare).
    pub fn digest(&self) -> u64 {
        let mut hasher = Fnv1a::default();
        std::hash::Hash::hash(self, &mut hasher);
        hasher.finish()
    }

    /// `table inet palisade { … }` with the state element of `stamp`.
    pub fn text(&self, stamp: &Stamp) -> String {
        let mut out = format!("table inet {TABLE} {{\n");
        let _ = writeln!(
            out,
            "\tset {STATE_SET} {{\n\t\ttype inet_service\n\t\telements = {{ {} }}\n\t}}",
            stamp.element()
        );
        for set in &self.sets {
            let _ = writeln!(out, "\t{} {} {{", set.kind.keyword(), set.name);
            write_set_body(&mut out, set);
            out.push_str("\t}\n");
        }
        for chain in &self.chains {
            let _ = writeln!(out, "\tchain {} {{", chain.name);
            for line in chain.head.iter().chain(&chain.rules) {
                let _ = writeln!(out, "\t\t{line}");
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }

    /// The transaction that replaces the table whatever exists: `add` makes `delete` safe when
    /// there is none, and the kernel applies all of it or nothing, so no packet ever sees a
    /// node without rules or with half of them.
    pub fn replace(&self, stamp: &Stamp) -> String {
        format!(
            "add table inet {TABLE}\ndelete table inet {TABLE}\n{}",
            self.text(stamp)
        )
    }

    /// One transaction that turns `old` (the table in force) into this one, touching only what
    /// differs; `None` when a set or chain changed in a way only a replace can apply (its type,
    /// size or comment), or when the difference is no smaller than the table.
    pub fn delta(&self, old: &Table, stamp: &Stamp) -> Option<String> {
        let old_sets: HashMap<&str, &SetDef> =
            old.sets.iter().map(|s| (s.name.as_str(), s)).collect();
        let old_chains: HashMap<&str, &ChainDef> =
            old.chains.iter().map(|c| (c.name.as_str(), c)).collect();
        let new_sets: HashSet<&str> = self.sets.iter().map(|s| s.name.as_str()).collect();
        let new_chains: HashSet<&str> = self.chains.iter().map(|c| c.name.as_str()).collect();
        let mut out = String::new();
        // Work in elements and rules, to compare with loading the whole table.
        let mut work = 0;
        // Chains first: map elements of the new sets and elements below may jump to them.
        for chain in self.chains.iter() {
            match old_chains.get(chain.name.as_str()) {
                None => {
                    let _ = write!(out, "add chain inet {TABLE} {}", chain.name);
                    if !chain.head.is_empty() {
                        let _ = write!(out, " {{ {}; }}", chain.head.join("; "));
                    }
                    out.push('\n');
                }
                Some(old) if old.head != chain.head => return None,
                Some(_) => {}
            }
        }
        for set in &self.sets {
            let Some(old) = old_sets.get(set.name.as_str()) else {
                let _ = writeln!(
                    out,
                    "add {} inet {TABLE} {} {{",
                    set.kind.keyword(),
                    set.name
                );
                write_set_body(&mut out, set);
                out.push_str("}\n");
                work += set.elements.len();
                continue;
            };
            if old.kind != set.kind || old.head != set.head {
                return None;
            }
            let kept: HashSet<&Element> = set.elements.iter().collect();
            let before: HashSet<&Element> = old.elements.iter().collect();
            let gone: Vec<&Element> = old.elements.iter().filter(|e| !kept.contains(e)).collect();
            let added: Vec<&Element> = set
                .elements
                .iter()
                .filter(|e| !before.contains(e))
                .collect();
            // Removed before added: a changed map value is the same key, and intervals of
            // the new elements may overlap ones of the old.
            if !gone.is_empty() {
                let _ = write!(out, "delete element inet {TABLE} {} {{ ", set.name);
                write_list(&mut out, gone.iter().map(|e| e.key.as_str()));
                out.push_str(" }\n");
            }
            if !added.is_empty() {
                let _ = write!(out, "add element inet {TABLE} {} {{ ", set.name);
                write_elements(&mut out, added.iter().copied());
                out.push_str(" }\n");
            }
            work += gone.len() + added.len();
        }
        for chain in &self.chains {
            let changed = old_chains
                .get(chain.name.as_str())
                .is_none_or(|old| old.rules != chain.rules);
            if !changed {
                continue;
            }
            if old_chains.contains_key(chain.name.as_str()) {
                let _ = writeln!(out, "flush chain inet {TABLE} {}", chain.name);
            }
            for rule in &chain.rules {
                let _ = writeln!(out, "add rule inet {TABLE} {} {rule}", chain.name);
            }
            work += chain.rules.len();
        }
        // Nothing refers to what is deleted any more: map elements that jumped to a chain
        // and rules that looked up a set were removed or replaced above. A chain comes after
        // the chains it jumps to: deleted last first, none is deleted while one still refers
        // to it.
        for chain in old
            .chains
            .iter()
            .rev()
            .filter(|c| !new_chains.contains(c.name.as_str()))
        {
            let _ = writeln!(out, "delete chain inet {TABLE} {}", chain.name);
        }
        for set in old
            .sets
            .iter()
            .filter(|s| !new_sets.contains(s.name.as_str()))
        {
            let _ = writeln!(
                out,
                "delete {} inet {TABLE} {}",
                set.kind.keyword(),
                set.name
            );
        }
        if work >= self.set_elements() + self.rules() {
            return None;
        }
        out.push_str(&stamp.restamp());
        Some(out)
    }
}

/// Which generation a table is, and its digest: written into the table so that a restarted
/// agent recognises a table it would write itself and keeps it. Once applied, the agent seals
/// it with a hash of the kernel's listing ([`content_hash`]): a table changed since (by hand,
/// by another tool) no longer matches its seal, and is not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub generation: u32,
    pub digest: u64,
    pub content: Option<u64>,
}

impl Stamp {
    const KEY: u16 = 1;

    fn element(&self) -> String {
        let content = self
            .content
            .map(|c| format!(" content={c:016x}"))
            .unwrap_or_default();
        format!(
            "{} comment \"palisade generation={} digest={:016x}{content}\"",
            Self::KEY,
            self.generation,
            self.digest
        )
    }

    /// The transaction that replaces the table's stamp with this one.
    pub(crate) fn restamp(&self) -> String {
        format!(
            "delete element inet {TABLE} {STATE_SET} {{ {} }}\nadd element inet {TABLE} {STATE_SET} {{ {} }}\n",
            Self::KEY,
            self.element()
        )
    }

    /// Whether this stamp's seal is the hash of `listing` (the table as the kernel lists it):
    /// the table is as it was sealed.
    pub fn seals(&self, listing: &str) -> bool {
        self.content == Some(content_hash(listing))
    }

    /// Reads the state set's element as `nft list table` prints it.
    pub(crate) fn parse_listing(listing: &str) -> Option<Stamp> {
        let (_, rest) = listing.split_once("comment \"palisade generation=")?;
        let (generation, rest) = rest.split_once(" digest=")?;
        let digest = rest.get(..16)?;
        let content = rest[16..]
            .strip_prefix(" content=")
            .and_then(|c| u64::from_str_radix(c.get(..16)?, 16).ok());
        Some(Stamp {
            generation: generation.parse().ok()?,
            digest: u64::from_str_radix(digest, 16).ok()?,
            content,
        })
    }
}

/// A hash of the table as `nft list table` prints it, the stamp's set left out (it holds the
/// hash).
pub(crate) fn content_hash(listing: &str) -> u64 {
    let start = format!("\tset {STATE_SET} {{\n");
    let (before, after) = match listing.split_once(&start) {
        Some((before, rest)) => (before, rest.split_once("\n\t}\n").map_or("", |(_, a)| a)),
        None => (listing, ""),
    };
    let mut hasher = Fnv1a::default();
    hasher.write(before.as_bytes());
    hasher.write(after.as_bytes());
    hasher.finish()
}

/// A set's declaration and elements, one statement a line, as a table block and an
/// `add set` command both take them.
fn write_set_body(out: &mut String, set: &SetDef) {
    for line in &set.head {
        let _ = writeln!(out, "\t\t{line}");
    }
    if !set.elements.is_empty() {
        out.push_str("\t\telements = { ");
        write_elements(out, set.elements.iter());
        out.push_str(" }\n");
    }
}

fn write_elements<'e>(out: &mut String, elements: impl Iterator<Item = &'e Element>) {
    for (i, element) in elements.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&element.key);
        if let Some(value) = &element.value {
            out.push_str(" : ");
            out.push_str(value);
        }
    }
}

fn write_list<'s>(out: &mut String, items: impl Iterator<Item = &'s str>) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(item);
    }
}

/// FNV-1a: stable across Rust releases, unlike std's default hasher.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
