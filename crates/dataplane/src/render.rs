//! Translation of a [`NodeProgram`] into the text of one nftables table. Pure: no I/O.

use palisade_engine::{
    Analysis, ChainId, Direction, IpRange, Isolation, NodeProgram, PortMatch, PortSet, Protocol,
    RuleId,
};
use std::collections::HashMap;
use std::fmt::Write;

/// The table every node agent owns; nothing else in it is anyone else's.
pub const TABLE: &str = "palisade";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// Changes with every applied program, so flow records map log ids to the right program.
    pub generation: u32,
    /// Log what would be dropped as AUDIT and accept it.
    pub audit: bool,
    /// NFLOG group of the verdict records.
    pub log_group: u16,
}

/// A rendered table, ready for [`crate::Nft::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    /// `table inet palisade { … }`, without the add/delete that make it replace the old one.
    pub text: String,
    pub generation: u32,
    /// Identifies the program and options whatever the generation: equal digests, equal tables.
    pub digest: u64,
    pub rules: usize,
    pub set_elements: usize,
}

/// What an NFLOG prefix says about the verdict that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTag {
    /// The side is not isolated: every connection is admitted.
    Open(Direction),
    Admitted(RuleId),
    Denied(ChainId),
    /// Would be denied, accepted because the agent audits.
    Audit(ChainId),
}

impl LogTag {
    /// `pal <generation> <tag>`: short, as NFLOG prefixes are (at most 63 bytes in the kernel).
    pub fn prefix(self, generation: u32) -> String {
        let tag = match self {
            LogTag::Open(Direction::Egress) => "oe".to_string(),
            LogTag::Open(Direction::Ingress) => "oi".to_string(),
            LogTag::Admitted(rule) => format!("a{rule}"),
            LogTag::Denied(chain) => format!("d{chain}"),
            LogTag::Audit(chain) => format!("u{chain}"),
        };
        format!("pal {generation} {tag}")
    }

    /// Parses what [`LogTag::prefix`] wrote: `(generation, tag)`.
    pub fn parse(prefix: &str) -> Option<(u32, LogTag)> {
        let mut words = prefix.trim_end_matches('\0').split(' ');
        if words.next()? != "pal" {
            return None;
        }
        let generation = words.next()?.parse().ok()?;
        let tag = words.next()?;
        let (kind, number) = tag.split_at_checked(1)?;
        let tag = match (kind, number) {
            ("o", "e") => LogTag::Open(Direction::Egress),
            ("o", "i") => LogTag::Open(Direction::Ingress),
            ("a", n) => LogTag::Admitted(n.parse().ok()?),
            ("d", n) => LogTag::Denied(n.parse().ok()?),
            ("u", n) => LogTag::Audit(n.parse().ok()?),
            _ => return None,
        };
        words.next().is_none().then_some((generation, tag))
    }
}

/// Renders the table for `program`. Names in comments come from `analysis`, which must be the
/// one the program was compiled from.
pub fn render(analysis: &Analysis, program: &NodeProgram, options: RenderOptions) -> Ruleset {
    let body = Renderer::new(analysis, program, options).table();
    let digest_body = if options.generation == 0 {
        body.clone()
    } else {
        Renderer::new(
            analysis,
            program,
            RenderOptions {
                generation: 0,
                ..options
            },
        )
        .table()
    };
    let digest = fnv1a(digest_body.as_bytes());
    let (rules, set_elements) = count(&body);
    // The comment lets a restarted agent recognise its own table (see `Nft::current`).
    let text = body.replacen(
        "{\n",
        &format!(
            "{{\n\tcomment \"{}\"\n",
            table_comment(options.generation, digest)
        ),
        1,
    );
    Ruleset {
        digest,
        text,
        generation: options.generation,
        rules,
        set_elements,
    }
}

struct Renderer<'a> {
    analysis: &'a Analysis,
    program: &'a NodeProgram,
    options: RenderOptions,
    sets: String,
    chains: String,
    declared: HashMap<(String, Vec<String>), String>,
}

#[derive(Clone, Copy)]
struct Family {
    keyword: &'static str,
    addr_type: &'static str,
    suffix: &'static str,
    v4: bool,
}

const FAMILIES: [Family; 2] = [
    Family {
        keyword: "ip",
        addr_type: "ipv4_addr",
        suffix: "4",
        v4: true,
    },
    Family {
        keyword: "ip6",
        addr_type: "ipv6_addr",
        suffix: "6",
        v4: false,
    },
];

impl<'a> Renderer<'a> {
    fn new(analysis: &'a Analysis, program: &'a NodeProgram, options: RenderOptions) -> Self {
        Self {
            analysis,
            program,
            options,
            sets: String::new(),
            chains: String::new(),
            declared: HashMap::new(),
        }
    }

    fn table(mut self) -> String {
        self.pod_maps();
        for direction in [Direction::Egress, Direction::Ingress] {
            let tag = LogTag::Open(direction);
            let _ = writeln!(
                self.chains,
                "\tchain {} {{\n\t\t{}\n\t}}",
                open_chain(direction),
                self.log(tag)
            );
        }
        for chain in 0..self.program.chains.len() {
            self.chain(chain);
        }
        let mut out = String::new();
        let _ = writeln!(out, "table inet {TABLE} {{");
        out.push_str(&self.sets);
        out.push_str(&self.forward_chain());
        out.push_str(&self.chains);
        out.push_str("}\n");
        out
    }

    /// Per direction and family: local pod address → the chain that decides its side.
    fn pod_maps(&mut self) {
        for direction in [Direction::Egress, Direction::Ingress] {
            for family in FAMILIES {
                let mut elements = Vec::new();
                for pod in &self.program.locals {
                    let target = match side_isolation(pod, direction) {
                        Isolation::Open => open_chain(direction).to_string(),
                        Isolation::Isolated(chain) => format!("c{chain}"),
                    };
                    for ip in pod.ips.iter().filter(|ip| ip.is_ipv4() == family.v4) {
                        elements.push(format!("{ip} : jump {target}"));
                    }
                }
                let name = pod_map(direction, family);
                let _ = writeln!(
                    self.sets,
                    "\tmap {name} {{\n\t\ttype {} : verdict\n{}\t}}",
                    family.addr_type,
                    elements_line(&elements)
                );
            }
        }
    }

    fn forward_chain(&self) -> String {
        let mut out = String::from(
            "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\
             \t\tct state established,related accept\n",
        );
        if !self.options.audit {
            // A TCP connection starts with a SYN: a mid-stream packet without conntrack state
            // (its entry was revoked) must not be picked up as a new connection.
            out.push_str("\t\ttcp flags & (fin | syn | rst | ack) != syn ct state new drop\n");
        }
        // NetworkPolicy governs TCP, UDP and SCTP only (ICMP, neighbour discovery pass).
        out.push_str("\t\tmeta l4proto != { tcp, udp, sctp } accept\n");
        for (direction, addr) in [(Direction::Egress, "saddr"), (Direction::Ingress, "daddr")] {
            for family in FAMILIES {
                let _ = writeln!(
                    out,
                    "\t\t{} {addr} vmap @{}",
                    family.keyword,
                    pod_map(direction, family)
                );
            }
        }
        out.push_str("\t}\n");
        out
    }

    fn chain(&mut self, id: ChainId) {
        let chain = &self.program.chains[id];
        let names: Vec<String> = chain
            .policies
            .iter()
            .map(|&p| self.analysis.policy(p).qualified_name())
            .collect();
        let mut body = String::new();
        for &rule in &chain.rules {
            for line in self.rule(rule) {
                let _ = writeln!(body, "\t\t{line}");
            }
        }
        let verdict = if self.options.audit {
            // `return`, not `accept`: the other side must still be evaluated and logged.
            format!("{} return", self.log(LogTag::Audit(id)))
        } else {
            format!("{} drop", self.log(LogTag::Denied(id)))
        };
        let _ = writeln!(
            self.chains,
            "\tchain c{id} {{\n\t\tcomment {}\n{body}\t\t{verdict}\n\t}}",
            quote(&format!(
                "{} isolated by {}",
                chain.direction,
                names.join(", ")
            ))
        );
    }

    /// The nft rules of one compiled policy rule: one per address family it has addresses in.
    fn rule(&mut self, id: RuleId) -> Vec<String> {
        let rule = &self.program.rules[id];
        let policy = self.analysis.policy(rule.policy);
        let comment = quote(&format!(
            "{} {} rule {}",
            policy.qualified_name(),
            rule.direction,
            rule.index
        ));
        let peer_addr = match rule.direction {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        };
        let verdict = format!("{} return", self.log(LogTag::Admitted(id)));
        let port_match = match &rule.ports {
            PortMatch::Uniform(ports) => {
                let name = self.set(
                    format!("r{id}_ports"),
                    "inet_proto . inet_service",
                    port_elements(ports),
                );
                Some(format!("meta l4proto . th dport @{name}"))
            }
            PortMatch::Any | PortMatch::PerDestination(_) => None,
        };
        let family_specific =
            rule.peers.is_some() || matches!(rule.ports, PortMatch::PerDestination(_));
        if !family_specific {
            let matches = port_match.iter().cloned().collect::<Vec<_>>().join(" ");
            return vec![join_rule(&matches, &verdict, &comment)];
        }
        let mut lines = Vec::new();
        for family in FAMILIES {
            let mut matches = Vec::new();
            // Egress per-destination ports list only peer addresses: no separate peer set.
            let peers_in_ports = rule.direction == Direction::Egress
                && matches!(rule.ports, PortMatch::PerDestination(_));
            if let Some(peers) = rule.peers.as_ref().filter(|_| !peers_in_ports) {
                let elements: Vec<String> = in_family(peers.iter(), family)
                    .map(ToString::to_string)
                    .collect();
                if elements.is_empty() {
                    continue;
                }
                let name = self.set(
                    format!("r{id}_peers{}", family.suffix),
                    family.addr_type,
                    elements,
                );
                matches.push(format!("{} {peer_addr} @{name}", family.keyword));
            }
            if let PortMatch::PerDestination(entries) = &rule.ports {
                let elements: Vec<String> = entries
                    .iter()
                    .filter(|(range, _)| range.is_ipv4() == family.v4)
                    .flat_map(|(range, ports)| {
                        port_elements(ports)
                            .into_iter()
                            .map(move |p| format!("{range} . {p}"))
                    })
                    .collect();
                if elements.is_empty() {
                    continue;
                }
                let kind = format!("{} . inet_proto . inet_service", family.addr_type);
                let name = self.set(format!("r{id}_dst{}", family.suffix), &kind, elements);
                matches.push(format!(
                    "{} daddr . meta l4proto . th dport @{name}",
                    family.keyword
                ));
            }
            matches.extend(port_match.clone());
            lines.push(join_rule(&matches.join(" "), &verdict, &comment));
        }
        lines
    }

    /// Declares a set, or returns the name of an equal one: policies that select alike peers
    /// share their sets, so elements grow with distinct peer groups, not with rules.
    fn set(&mut self, name: String, kind: &str, elements: Vec<String>) -> String {
        let key = (kind.to_string(), elements);
        if let Some(existing) = self.declared.get(&key) {
            return existing.clone();
        }
        let _ = writeln!(
            self.sets,
            "\tset {name} {{\n\t\ttype {kind}\n\t\tflags interval\n{}\t}}",
            elements_line(&key.1)
        );
        self.declared.insert(key, name.clone());
        name
    }

    fn log(&self, tag: LogTag) -> String {
        format!(
            "log prefix \"{}\" group {}",
            tag.prefix(self.options.generation),
            self.options.log_group
        )
    }
}

pub(crate) fn table_comment(generation: u32, digest: u64) -> String {
    format!("palisade generation={generation} digest={digest:016x}")
}

/// Reads what [`table_comment`] wrote: `(generation, digest)`.
pub(crate) fn parse_table_comment(comment: &str) -> Option<(u32, u64)> {
    let rest = comment.strip_prefix("palisade generation=")?;
    let (generation, digest) = rest.split_once(" digest=")?;
    Some((
        generation.parse().ok()?,
        u64::from_str_radix(digest, 16).ok()?,
    ))
}

fn side_isolation(pod: &palisade_engine::LocalPod, direction: Direction) -> Isolation {
    match direction {
        Direction::Ingress => pod.ingress,
        Direction::Egress => pod.egress,
    }
}

fn open_chain(direction: Direction) -> &'static str {
    match direction {
        Direction::Egress => "open_egress",
        Direction::Ingress => "open_ingress",
    }
}

fn pod_map(direction: Direction, family: Family) -> String {
    format!("{direction}_pods{}", family.suffix)
}

fn in_family<'r>(
    ranges: impl Iterator<Item = &'r IpRange>,
    family: Family,
) -> impl Iterator<Item = &'r IpRange> {
    ranges.filter(move |r| r.is_ipv4() == family.v4)
}

fn join_rule(matches: &str, verdict: &str, comment: &str) -> String {
    if matches.is_empty() {
        format!("{verdict} comment {comment}")
    } else {
        format!("{matches} {verdict} comment {comment}")
    }
}

fn port_elements(ports: &PortSet) -> Vec<String> {
    Protocol::ALL
        .iter()
        .flat_map(|&protocol| {
            ports.ranges(protocol).iter().map(move |&(lo, hi)| {
                let name = protocol.as_str().to_lowercase();
                if lo == hi {
                    format!("{name} . {lo}")
                } else {
                    format!("{name} . {lo}-{hi}")
                }
            })
        })
        .collect()
}

fn elements_line(elements: &[String]) -> String {
    if elements.is_empty() {
        String::new()
    } else {
        format!("\t\telements = {{ {} }}\n", elements.join(", "))
    }
}

/// Kubernetes names are DNS labels, but quoting stays safe whatever they hold.
fn quote(text: &str) -> String {
    let clean: String = text.chars().filter(|c| *c != '"' && *c != '\\').collect();
    format!("\"{clean}\"")
}

/// (rules, set elements) in a rendered table; statements inside chains are rules.
fn count(text: &str) -> (usize, usize) {
    let mut rules = 0;
    let mut elements = 0;
    let mut in_chain = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("chain ") {
            in_chain = true;
        } else if line == "}" {
            in_chain = false;
        } else if let Some(list) = line.strip_prefix("elements = {") {
            elements += list.trim_end_matches('}').split(',').count();
        } else if in_chain && !line.starts_with("type ") && !line.starts_with("comment ") {
            rules += 1;
        }
    }
    (rules, elements)
}

/// A stable hash (std's hasher may change between releases; digests are stored in the table).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
