//! Translation of a [`NodeProgram`] into one nftables table ([`Table`]). Pure: no I/O.

use crate::table::{ChainDef, Element, Fnv1a, SetDef, SetKind, Stamp, Table};
use palisade_engine::{
    Analysis, ChainId, Direction, IpRange, Isolation, NodeProgram, PortMatch, PortSet, Protocol,
    RuleId, TiVec, ip_to_u128,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// Log what would be dropped as AUDIT and accept it.
    pub audit: bool,
    /// NFLOG group of the verdict records.
    pub log_group: u16,
}

/// What a chain's log prefixes carry and its name is made of: a hash of its direction and the
/// policies that isolate, unique in a table. Not its place in the program, nor what its rules
/// admit: a chain keeps its name, its rules and the pod map elements that jump to it while
/// other policies come and go, or while what its own rules admit changes (a set's elements).
pub type ChainKey = u64;

/// A rendered table, ready for [`crate::Nft::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    /// Identifies the table: equal digests, equal tables.
    pub digest: u64,
    /// Parallel to the program's chains.
    pub chain_keys: TiVec<ChainId, ChainKey>,
    /// Parallel to the program's chains: the index of each chain rendered as one set, to
    /// explain its records without building it again.
    pub chain_indexes: TiVec<ChainId, Option<ChainIndex>>,
    pub(crate) table: Table,
}

impl Ruleset {
    /// Rules in the table's chains.
    pub fn rules(&self) -> usize {
        self.table.rules()
    }

    /// Elements in the table's sets and maps (the stamp aside).
    pub fn set_elements(&self) -> usize {
        self.table.set_elements()
    }

    /// The table as a replace loads it, stamped with `generation`.
    pub fn text(&self, generation: u32) -> String {
        self.table.text(&self.stamp(generation))
    }

    pub(crate) fn stamp(&self, generation: u32) -> Stamp {
        Stamp {
            generation,
            digest: self.digest,
            content: None,
        }
    }

    /// The table with `interfaces` (the node's interfaces toward its pods, from
    /// [`crate::pod_interfaces`]) in the source check: packets arriving on them must come
    /// from an address the node routes back through the same interface.
    pub fn with_pod_interfaces(mut self, interfaces: impl IntoIterator<Item = String>) -> Self {
        let set = self
            .table
            .sets
            .iter_mut()
            .find(|s| s.name == POD_INTERFACES)
            .expect("render declares the pod interface set");
        set.elements = interfaces
            .into_iter()
            .map(|name| Element {
                key: format!("\"{name}\""),
                value: None,
            })
            .collect();
        self.digest = self.table.digest();
        self
    }

    /// The transaction that turns `in_force` into this table touching only what changed, or
    /// `None` when replacing the whole table is needed or no more work.
    pub fn delta(&self, in_force: &Ruleset, generation: u32) -> Option<String> {
        self.table.delta(&in_force.table, &self.stamp(generation))
    }
}

/// What an NFLOG prefix says about the verdict that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTag {
    /// The side is not isolated: every connection is admitted.
    Open(Direction),
    /// Admitted by the rule at this position of the chain's rules.
    Admitted(ChainKey, usize),
    /// Admitted by the set of a chain: the rule is the first of the chain that admits the
    /// packet ([`ChainIndex`] names it, kept with the program the set was rendered from).
    AdmittedIn(ChainKey),
    Denied(ChainKey),
    /// Would be denied, accepted because the agent audits.
    Audit(ChainKey),
}

impl LogTag {
    /// `pal <tag>`: short, as NFLOG prefixes are (at most 63 bytes in the kernel).
    pub fn prefix(self) -> String {
        match self {
            LogTag::Open(Direction::Egress) => "pal oe".to_string(),
            LogTag::Open(Direction::Ingress) => "pal oi".to_string(),
            LogTag::Admitted(chain, position) => format!("pal a{chain:016x}.{position}"),
            LogTag::AdmittedIn(chain) => format!("pal k{chain:016x}"),
            LogTag::Denied(chain) => format!("pal d{chain:016x}"),
            LogTag::Audit(chain) => format!("pal u{chain:016x}"),
        }
    }

    /// Parses what [`LogTag::prefix`] wrote.
    pub fn parse(prefix: &str) -> Option<LogTag> {
        let tag = prefix.trim_end_matches('\0').strip_prefix("pal ")?;
        let key = |hex: &str| {
            (hex.len() == 16)
                .then(|| ChainKey::from_str_radix(hex, 16).ok())
                .flatten()
        };
        let (kind, rest) = tag.split_at_checked(1)?;
        Some(match (kind, rest) {
            ("o", "e") => LogTag::Open(Direction::Egress),
            ("o", "i") => LogTag::Open(Direction::Ingress),
            ("a", rest) => {
                let (chain, position) = rest.split_once('.')?;
                LogTag::Admitted(key(chain)?, position.parse().ok()?)
            }
            ("k", hex) => LogTag::AdmittedIn(key(hex)?),
            ("d", hex) => LogTag::Denied(key(hex)?),
            ("u", hex) => LogTag::Audit(key(hex)?),
            _ => return None,
        })
    }
}

/// Renders the table for `program`. Names in comments come from `analysis`, which must be the
/// one the program was compiled from.
pub fn render(analysis: &Analysis, program: &NodeProgram, options: RenderOptions) -> Ruleset {
    let renderer = Renderer::new(analysis, program, options);
    let chain_keys = renderer.keys.clone();
    let (table, chain_indexes) = renderer.table();
    Ruleset {
        digest: table.digest(),
        chain_keys,
        chain_indexes,
        table,
    }
}

struct Renderer<'a> {
    analysis: &'a Analysis,
    program: &'a NodeProgram,
    options: RenderOptions,
    /// Per chain of the program: its name in the table, and its [`ChainKey`].
    names: TiVec<ChainId, String>,
    keys: TiVec<ChainId, ChainKey>,
    sets: Vec<SetDef>,
    chains: Vec<ChainDef>,
    declared: HashMap<(String, Vec<Element>), String>,
    /// Peer sets by their ranges: rules share peers (every rule of "all pods in the cluster"),
    /// and formatting 10k addresses per rule to find the set declared was most of a render.
    peer_sets: HashMap<Vec<IpRange>, String>,
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
        let mut keys = TiVec::with_capacity(program.chains.len());
        let mut taken = HashSet::new();
        for chain in &program.chains {
            let mut identity = Fnv1a::default();
            chain.direction.hash(&mut identity);
            for &policy in &chain.policies {
                let policy = analysis.policy(policy);
                (&policy.namespace, &policy.name).hash(&mut identity);
            }
            let mut key = identity.finish();
            // Two policy sets of one hash (as unlikely as it is) still get two chains.
            while !taken.insert(key) {
                key = key.wrapping_add(1);
            }
            keys.push(key);
        }
        let names = keys.iter().map(|key| format!("c{key:016x}")).collect();
        Self {
            analysis,
            program,
            options,
            names,
            keys,
            sets: Vec::new(),
            chains: Vec::new(),
            declared: HashMap::new(),
            peer_sets: HashMap::new(),
        }
    }

    fn table(mut self) -> (Table, TiVec<ChainId, Option<ChainIndex>>) {
        self.pod_maps();
        self.sets.push(SetDef {
            name: POD_INTERFACES.to_string(),
            kind: SetKind::Set,
            head: vec!["type ifname".to_string()],
            elements: Vec::new(),
        });
        self.chains.push(self.source_check_chain());
        self.chains.push(self.forward_chain());
        self.chains.push(self.input_chain());
        for direction in [Direction::Egress, Direction::Ingress] {
            let rule = self.log(LogTag::Open(direction));
            self.chains.push(ChainDef {
                name: open_chain(direction).to_string(),
                head: Vec::new(),
                rules: vec![rule],
            });
        }
        let indexes = self
            .program
            .chains
            .keys()
            .map(|chain| self.chain(chain))
            .collect();
        let table = Table {
            sets: self.sets,
            chains: self.chains,
        };
        (table, indexes)
    }

    /// Per direction and family: local pod address → the chain that decides its side.
    fn pod_maps(&mut self) {
        for direction in [Direction::Egress, Direction::Ingress] {
            for family in FAMILIES {
                let mut elements = Vec::new();
                for pod in &self.program.locals {
                    let target = match side_isolation(pod, direction) {
                        Isolation::Open => open_chain(direction),
                        Isolation::Isolated(chain) => self.names[chain].as_str(),
                    };
                    for ip in pod.ips.iter().filter(|ip| ip.is_ipv4() == family.v4) {
                        elements.push(Element {
                            key: ip.to_string(),
                            value: Some(format!("jump {target}")),
                        });
                    }
                }
                let mut head = vec![format!("type {} : verdict", family.addr_type)];
                // With its size known the kernel allocates the hash once (a fixed-size one):
                // growing it while 10k elements go in was a tenth of the load time. A power
                // of two, so that pods coming and going rarely change it (which takes a
                // replace of the table instead of a change of elements).
                if !elements.is_empty() {
                    head.push(format!(
                        "size {}",
                        elements.len().next_power_of_two().max(64)
                    ));
                }
                self.sets.push(SetDef {
                    name: pod_map(direction, family),
                    kind: SetKind::Map,
                    head,
                    elements,
                });
            }
        }
    }

    /// Pods are known by their source address, so a pod must not send from one not its own
    /// (a raw socket needs only NET_RAW, which containers get by default): what arrives on an
    /// interface toward pods must come from an address routed back through that interface
    /// (strict reverse-path filtering, on those interfaces only). Before conntrack: a spoofed
    /// packet leaves no entry behind. An audit drops nothing.
    fn source_check_chain(&self) -> ChainDef {
        let mut rules = Vec::new();
        if !self.options.audit {
            rules.push(format!(
                "iifname @{POD_INTERFACES} fib saddr . iif oif missing drop"
            ));
        }
        ChainDef {
            name: "source_check".to_string(),
            head: vec!["type filter hook prerouting priority raw; policy accept;".to_string()],
            rules,
        }
    }

    /// Local pods' egress and ingress, whatever the protocol: an isolated side admits only
    /// the TCP, UDP and SCTP its rules name, and drops every other IP protocol (ICMP errors of
    /// admitted connections are `related`, accepted first).
    fn forward_chain(&self) -> ChainDef {
        let mut rules = vec!["ct state established,related accept".to_string()];
        if !self.options.audit {
            rules.push("ct state invalid drop".to_string());
            // A TCP connection starts with a SYN: a mid-stream packet without conntrack state
            // (its entry was revoked) must not be picked up as a new connection.
            rules.push("tcp flags & (fin | syn | rst | ack) != syn ct state new drop".to_string());
        }
        for (direction, addr) in [(Direction::Egress, "saddr"), (Direction::Ingress, "daddr")] {
            for family in FAMILIES {
                rules.push(format!(
                    "{} {addr} vmap @{}",
                    family.keyword,
                    pod_map(direction, family)
                ));
            }
        }
        ChainDef {
            name: "forward".to_string(),
            head: vec!["type filter hook forward priority filter; policy accept;".to_string()],
            rules,
        }
    }

    /// A local pod's packets to the node itself (its addresses, and the services it runs) are
    /// egress like any other: decided by the pod's egress chain. What the node sends to its
    /// pods is not filtered (upstream: a node always reaches its pods). Nothing here drops
    /// by connection state: this hook sees all of the node's own traffic too.
    fn input_chain(&self) -> ChainDef {
        let mut rules = vec![
            "ct state established,related accept".to_string(),
            // Neighbour discovery between a pod and its node's interface: IPv6 needs it to
            // reach anything at all.
            "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept"
                .to_string(),
        ];
        for family in FAMILIES {
            rules.push(format!(
                "{} saddr vmap @{}",
                family.keyword,
                pod_map(Direction::Egress, family)
            ));
        }
        ChainDef {
            name: "input".to_string(),
            head: vec!["type filter hook input priority filter; policy accept;".to_string()],
            rules,
        }
    }

    /// Renders chain `id`; returns its index when it is one set lookup.
    fn chain(&mut self, id: ChainId) -> Option<ChainIndex> {
        let chain = &self.program.chains[id];
        let key = self.keys[id];
        // Names only until the comment is cut: a chain may have 10k policies, every sync.
        let mut listing = format!("{} isolated by", chain.direction);
        for (i, &policy) in chain.policies.iter().enumerate() {
            if listing.len() > COMMENT_MAX {
                break;
            }
            listing.push_str(if i == 0 { " " } else { ", " });
            listing.push_str(&self.analysis.policy(policy).qualified_name());
        }
        let per_destination = chain
            .rules
            .iter()
            .any(|&r| matches!(self.program.rules[r].ports, PortMatch::PerDestination(_)));
        let (mut rules, index) = if per_destination {
            // Named ports resolve per destination address: one rule after the other.
            let rules = (0..chain.rules.len())
                .flat_map(|position| self.rule(id, position))
                .collect();
            (rules, None)
        } else {
            let (rules, index) = self.chain_maps(id);
            (rules, Some(index))
        };
        // The verdict is its own rule: a log over its limit must not skip the drop.
        if self.options.audit {
            rules.push(self.log(LogTag::Audit(key)));
            // `return`, not `accept`: the other side must still be evaluated and logged.
            rules.push("return".to_string());
        } else {
            rules.push(self.log(LogTag::Denied(key)));
            rules.push("drop".to_string());
        }
        self.chains.push(ChainDef {
            name: self.names[id].clone(),
            head: vec![format!("comment {}", quote(&listing))],
            rules,
        });
        index
    }

    /// A chain's rules as one lookup per family instead of a walk: a set of the peer address
    /// . protocol . port the chain's rules admit. A new connection then costs one lookup
    /// however many rules the chain has (walking 10k rules of two set lookups each cut the
    /// connection rate 50-fold). The admission is logged as the chain's ([`LogTag::AdmittedIn`]);
    /// which rule admitted is named when the record is read, so the set needs no rule per
    /// element and neighbouring ports or addresses of different rules are one element (and no
    /// chain per rule: 10k rules on 10k ports loaded 10k chains and 10k elements).
    fn chain_maps(&mut self, id: ChainId) -> (Vec<String>, ChainIndex) {
        let chain = &self.program.chains[id];
        let peer_addr = match chain.direction {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        };
        let verdict = self.admit(LogTag::AdmittedIn(self.keys[id]));
        let index = ChainIndex::new(self.program, id);
        let mut lines = Vec::new();
        for (family, table) in FAMILIES.into_iter().zip(&index.tables) {
            let table = admitted(table);
            let mut entries = Vec::new();
            let mut port_pieces = BTreeSet::new();
            for (first, last, ports) in &table {
                let addr = IpRange::from_numbers(*first, *last, family.v4);
                for &(lo, hi) in ports {
                    port_pieces.insert((lo, hi));
                    for (protocol, port) in port_key_elements(lo, hi) {
                        entries.push((addr, protocol, port));
                    }
                }
            }
            if entries.is_empty() {
                continue;
            }
            // The kernel's lookup (pipapo) costs about one step per element that matches the
            // leading field: lead with the field that tells more elements apart (10k rules
            // for one peer on 10k ports: the port; many peers on one port: the address).
            let ports_first = port_pieces.len() > table.len();
            let elements: Vec<String> = entries
                .iter()
                .map(|(addr, protocol, port)| {
                    if ports_first {
                        format!("{port} . {protocol} . {addr}")
                    } else {
                        format!("{addr} . {protocol} . {port}")
                    }
                })
                .collect();
            let (kind, key) = if ports_first {
                (
                    format!("inet_service . inet_proto . {}", family.addr_type),
                    format!("th dport . meta l4proto . {} {peer_addr}", family.keyword),
                )
            } else {
                (
                    format!("{} . inet_proto . inet_service", family.addr_type),
                    format!("{} {peer_addr} . meta l4proto . th dport", family.keyword),
                )
            };
            let name = self.set(
                format!("{}_{}", self.names[id], family.suffix),
                &kind,
                elements,
            );
            lines.push(format!("{key} @{name} {verdict}"));
        }
        (lines, index)
    }

    /// The nft rules of the rule at `position` of chain `id`: one per address family it has
    /// addresses in.
    fn rule(&mut self, id: ChainId, position: usize) -> Vec<String> {
        let rule = &self.program.rules[self.program.chains[id].rules[position]];
        let policy = self.analysis.policy(rule.policy);
        // Numbered from 1, as `check` and flow records number them.
        let comment = quote(&format!(
            "{} {} rule {}",
            policy.qualified_name(),
            rule.direction,
            rule.index + 1
        ));
        let peer_addr = match rule.direction {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        };
        let verdict = self.admit(LogTag::Admitted(self.keys[id], position));
        let prefix = format!("{}_r{position}", self.names[id]);
        let port_match = match &rule.ports {
            PortMatch::Uniform(ports) => {
                let name = self.set(
                    format!("{prefix}_ports"),
                    "inet_proto . inet_service",
                    port_elements(ports),
                );
                Some(format!("meta l4proto . th dport @{name}"))
            }
            // Every port of the protocols NetworkPolicy governs, not every IP protocol.
            PortMatch::Any => Some(GOVERNED_PROTOCOLS.to_string()),
            PortMatch::PerDestination(_) => None,
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
                // Ranges are of one family: the ranges alone name the set.
                let ranges: Vec<IpRange> = in_family(peers.iter(), family).copied().collect();
                if ranges.is_empty() {
                    continue;
                }
                let name = match self.peer_sets.get(&ranges) {
                    Some(name) => name.clone(),
                    None => {
                        let elements = ranges.iter().map(ToString::to_string).collect();
                        let name = self.set(
                            format!("{prefix}_peers{}", family.suffix),
                            family.addr_type,
                            elements,
                        );
                        self.peer_sets.insert(ranges, name.clone());
                        name
                    }
                };
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
                let name = self.set(format!("{prefix}_dst{}", family.suffix), &kind, elements);
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
        let elements: Vec<Element> = elements
            .into_iter()
            .map(|key| Element { key, value: None })
            .collect();
        let key = (kind.to_string(), elements);
        if let Some(existing) = self.declared.get(&key) {
            return existing.clone();
        }
        self.sets.push(SetDef {
            name: name.clone(),
            kind: SetKind::Set,
            head: vec![format!("type {kind}"), "flags interval".to_string()],
            elements: key.1.clone(),
        });
        self.declared.insert(key, name.clone());
        name
    }

    /// A log statement that logs at most [`LOG_RATE`] packets a second (a flood of denied
    /// packets must not cost the agent a core and the node its disk); over the limit the rule
    /// does nothing, so it never carries a verdict.
    fn log(&self, tag: LogTag) -> String {
        format!(
            "limit rate {LOG_RATE}/second burst {LOG_RATE} packets log prefix \"{}\" group {}",
            tag.prefix(),
            self.options.log_group
        )
    }

    /// The verdict of an admission: `goto` a chain that logs it, named after its log prefix.
    /// The chain ends without a verdict, which returns to the hook's chain as `return` would,
    /// logged or over the limit. Each tag admits in one place (a chain's set, or one rule).
    fn admit(&mut self, tag: LogTag) -> String {
        let name = format!("l{}", &tag.prefix()["pal ".len()..]).replace('.', "_");
        let rule = self.log(tag);
        self.chains.push(ChainDef {
            name: name.clone(),
            head: Vec::new(),
            rules: vec![rule],
        });
        format!("goto {name}")
    }
}

/// Which rule of a chain admits a connection, as the chain's set is rendered: the first rule,
/// in chain order, whose peers and ports hold it. Flow records of [`LogTag::AdmittedIn`] are
/// explained with it in a binary search, not a walk of the chain's rules (10k rules walked
/// per record took the agent's CPU from the connections it logs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainIndex {
    /// Per family (IPv4, IPv6, as [`FAMILIES`]): disjoint, sorted address ranges with their
    /// port pieces.
    tables: [Vec<(u128, u128, PortPieces)>; 2],
}

impl ChainIndex {
    /// Only rules with uniform ports take part (a chain with a per-destination rule is
    /// rendered rule by rule, each logging under its own id).
    pub fn new(program: &NodeProgram, chain: ChainId) -> Self {
        let tables = FAMILIES.map(|family| {
            let whole = IpRange::everything(family.v4).numbers();
            let rules: Vec<(RuleId, Vec<(u128, u128)>)> = program.chains[chain]
                .rules
                .iter()
                .map(|&r| {
                    let ranges = match &program.rules[r].peers {
                        None => vec![whole],
                        Some(peers) => in_family(peers.iter(), family)
                            .map(IpRange::numbers)
                            .collect(),
                    };
                    (r, ranges)
                })
                .filter(|(_, ranges)| !ranges.is_empty())
                .collect();
            first_rules(&rules, |r| port_keys(&program.rules[r].ports))
        });
        Self { tables }
    }

    /// The rule that admits a connection from (ingress) or to (egress) `peer`.
    pub fn rule(&self, peer: IpAddr, protocol: Protocol, port: u16) -> Option<RuleId> {
        let table = &self.tables[usize::from(!peer.is_ipv4())];
        let addr = ip_to_u128(peer);
        let at = table.partition_point(|(_, last, _)| *last < addr);
        let (first, _, pieces) = table.get(at)?;
        if *first > addr {
            return None;
        }
        let i = Protocol::ALL.iter().position(|&p| p == protocol)?;
        let key = (i as u128) << 16 | u128::from(port);
        let at = pieces.partition_point(|(_, hi, _)| *hi < key);
        pieces
            .get(at)
            .filter(|(lo, _, _)| *lo <= key)
            .map(|&(_, _, rule)| rule)
    }
}

/// `(protocol, port)` keys a rule's ports admit: protocol index × 65536 + port.
fn port_keys(ports: &PortMatch) -> Vec<(u128, u128)> {
    let key = |i: usize, port: u16| (i as u128) << 16 | u128::from(port);
    Protocol::ALL
        .iter()
        .enumerate()
        .flat_map(|(i, &protocol)| match ports {
            // Any port, port 0 included, as a rule without a port match admits.
            PortMatch::Any => vec![(key(i, 0), key(i, u16::MAX))],
            PortMatch::Uniform(ports) => ports
                .ranges(protocol)
                .iter()
                .map(|&(lo, hi)| (key(i, lo), key(i, hi)))
                .collect(),
            PortMatch::PerDestination(_) => Vec::new(),
        })
        .collect()
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

/// Verdict records each log rule may send a second (and at once).
const LOG_RATE: u32 = 100;

/// The set of the node's interfaces toward its pods ([`Ruleset::with_pod_interfaces`]).
const POD_INTERFACES: &str = "pod_interfaces";

/// The protocols a NetworkPolicy rule can admit: a rule without ports admits every port of
/// these, and no other IP protocol.
const GOVERNED_PROTOCOLS: &str = "meta l4proto { tcp, udp, sctp }";

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

/// Splits `[first, last]` of a value line into the stretches where the set of covering items
/// is constant and not empty: `(first, last, covering items in order)`. Items' own ranges are
/// disjoint (they are merged sets).
fn sweep<T: Ord + Copy>(items: &[(T, Vec<(u128, u128)>)]) -> Vec<(u128, u128, Vec<T>)> {
    let mut starts: BTreeMap<u128, Vec<T>> = BTreeMap::new();
    let mut ends: BTreeMap<u128, Vec<T>> = BTreeMap::new();
    for (item, ranges) in items {
        for &(lo, hi) in ranges {
            starts.entry(lo).or_default().push(*item);
            // Past the end of the value space nothing ends.
            if let Some(after) = hi.checked_add(1) {
                ends.entry(after).or_default().push(*item);
            }
        }
    }
    let points: BTreeSet<u128> = starts.keys().chain(ends.keys()).copied().collect();
    let points: Vec<u128> = points.into_iter().collect();
    let mut active: BTreeSet<T> = BTreeSet::new();
    let mut out = Vec::new();
    for (i, &point) in points.iter().enumerate() {
        for item in ends.get(&point).into_iter().flatten() {
            active.remove(item);
        }
        active.extend(starts.get(&point).into_iter().flatten().copied());
        if active.is_empty() {
            continue;
        }
        let last = points.get(i + 1).map_or(u128::MAX, |next| next - 1);
        out.push((point, last, active.iter().copied().collect()));
    }
    out
}

/// `(first port key, last port key, rule)`, disjoint and sorted.
type PortPieces = Vec<(u128, u128, RuleId)>;

/// Disjoint `(first address, last address, port pieces)`: for
/// every address and port, the first of `rules` (in chain order) whose peers and ports hold
/// it. Neighbouring addresses with the same port pieces are one entry.
fn first_rules(
    rules: &[(RuleId, Vec<(u128, u128)>)],
    ports: impl Fn(RuleId) -> Vec<(u128, u128)>,
) -> Vec<(u128, u128, PortPieces)> {
    // Sweep by chain position, so "first" is the smallest covering item.
    let by_order: Vec<(usize, Vec<(u128, u128)>)> = rules
        .iter()
        .enumerate()
        .map(|(order, (_, ranges))| (order, ranges.clone()))
        .collect();
    let port_keys: Vec<Vec<(u128, u128)>> = rules.iter().map(|(r, _)| ports(*r)).collect();
    let mut pieces_of: HashMap<Vec<usize>, PortPieces> = HashMap::new();
    let mut out: Vec<(u128, u128, PortPieces)> = Vec::new();
    for (first, last, active) in sweep(&by_order) {
        let pieces = pieces_of
            .entry(active.clone())
            .or_insert_with(|| {
                let covering: Vec<(usize, Vec<(u128, u128)>)> = active
                    .iter()
                    .map(|&order| (order, port_keys[order].clone()))
                    .collect();
                let mut pieces = PortPieces::new();
                for (lo, hi, orders) in sweep(&covering) {
                    let rule = rules[orders[0]].0;
                    match pieces.last_mut() {
                        Some(prev) if prev.1 + 1 == lo && prev.2 == rule => prev.1 = hi,
                        _ => pieces.push((lo, hi, rule)),
                    }
                }
                pieces
            })
            .clone();
        if pieces.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(prev) if prev.1.checked_add(1) == Some(first) && prev.2 == pieces => {
                prev.1 = last;
            }
            _ => out.push((first, last, pieces)),
        }
    }
    out
}

/// `(first address, last address, port key ranges)`.
type AdmittedRange = (u128, u128, Vec<(u128, u128)>);

/// What a [`first_rules`] table admits, whichever rule: neighbouring port pieces and then
/// neighbouring addresses with the same pieces become one.
fn admitted(table: &[(u128, u128, PortPieces)]) -> Vec<AdmittedRange> {
    let mut out: Vec<AdmittedRange> = Vec::new();
    for &(first, last, ref pieces) in table {
        let mut ports: Vec<(u128, u128)> = Vec::new();
        for &(lo, hi, _) in pieces {
            match ports.last_mut() {
                Some(prev) if prev.1 + 1 == lo => prev.1 = hi,
                _ => ports.push((lo, hi)),
            }
        }
        match out.last_mut() {
            Some(prev) if prev.1.checked_add(1) == Some(first) && prev.2 == ports => {
                prev.1 = last;
            }
            _ => out.push((first, last, ports)),
        }
    }
    out
}

/// `(tcp, 80)`, `(udp, 1-65535)`: port keys `lo..=hi` as nft writes them, split by protocol.
fn port_key_elements(lo: u128, hi: u128) -> Vec<(String, String)> {
    (lo >> 16..=hi >> 16)
        .filter_map(|i| {
            let protocol = Protocol::ALL.get(usize::try_from(i).ok()?)?;
            let from = if i == lo >> 16 { lo as u16 } else { 0 };
            let to = if i == hi >> 16 { hi as u16 } else { u16::MAX };
            let name = protocol.as_str().to_lowercase();
            Some(if from == to {
                (name, from.to_string())
            } else {
                (name, format!("{from}-{to}"))
            })
        })
        .collect()
}

/// Kubernetes names are DNS labels, but quoting stays safe whatever they hold.
/// Longest comment nft accepts, in bytes ("comment too long, 128 characters maximum").
const COMMENT_MAX: usize = 128;

/// A comment as nft accepts it: no quotes or backslashes, cut with `...` at [`COMMENT_MAX`]
/// (a pod isolated by many policies would otherwise make the whole table fail to load).
fn quote(text: &str) -> String {
    let mut clean: String = text.chars().filter(|c| *c != '"' && *c != '\\').collect();
    if clean.len() > COMMENT_MAX {
        let mut end = COMMENT_MAX - 3;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
        clean.push_str("...");
    }
    format!("\"{clean}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (address, port) of a small grid finds, in the pieces, exactly the first rule
    /// whose ranges hold it, and pieces never overlap.
    #[test]
    fn chain_maps_pick_the_first_rule_that_admits() {
        type Ranges = Vec<(u128, u128)>;
        let cases: Vec<Vec<(Ranges, Ranges)>> = vec![
            vec![(vec![(0, 9)], vec![(80, 80)])],
            // Nested addresses, overlapping ports: the earlier rule wins where both admit.
            vec![
                (vec![(2, 3)], vec![(80, 81)]),
                (vec![(0, 9)], vec![(81, 90)]),
                (vec![(3, 5), (8, 8)], vec![(0, 200)]),
            ],
            // Same peers and ports twice: the second rule is never chosen.
            vec![(vec![(4, 4)], vec![(5, 5)]), (vec![(4, 4)], vec![(5, 5)])],
            // Up to the end of the value space.
            vec![
                (vec![(0, u128::MAX)], vec![(1, 1)]),
                (vec![(u128::MAX, u128::MAX)], vec![(0, 3)]),
            ],
        ];
        for rules in cases {
            let items: Vec<(RuleId, Ranges)> = rules
                .iter()
                .enumerate()
                .map(|(i, (addrs, _))| (RuleId::from(10 + i), addrs.clone()))
                .collect();
            let map = first_rules(&items, |r| rules[r.index() - 10].1.clone());
            let mut addrs: Vec<u128> = (0..12).chain([u128::MAX - 1, u128::MAX]).collect();
            addrs.sort_unstable();
            for &addr in &addrs {
                for port in 0..=210 {
                    let expected = rules
                        .iter()
                        .position(|(a, p)| {
                            a.iter().any(|&(lo, hi)| (lo..=hi).contains(&addr))
                                && p.iter().any(|&(lo, hi)| (lo..=hi).contains(&port))
                        })
                        .map(|i| RuleId::from(10 + i));
                    let found: Vec<RuleId> = map
                        .iter()
                        .filter(|(first, last, _)| (*first..=*last).contains(&addr))
                        .flat_map(|(_, _, pieces)| pieces)
                        .filter(|(lo, hi, _)| (*lo..=*hi).contains(&port))
                        .map(|&(_, _, rule)| rule)
                        .collect();
                    assert_eq!(
                        found,
                        Vec::from_iter(expected),
                        "{rules:?} at {addr}/{port}"
                    );
                }
            }
        }
    }

    #[test]
    fn port_keys_split_by_protocol() {
        let key = |i: u128, port: u128| i << 16 | port;
        for (lo, hi, expected) in [
            (key(0, 80), key(0, 80), vec![("tcp", "80")]),
            (
                key(0, 80),
                key(1, 53),
                vec![("tcp", "80-65535"), ("udp", "0-53")],
            ),
            (
                key(0, 0),
                key(2, 65535),
                vec![("tcp", "0-65535"), ("udp", "0-65535"), ("sctp", "0-65535")],
            ),
        ] {
            let expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(p, n)| (p.to_string(), n.to_string()))
                .collect();
            assert_eq!(port_key_elements(lo, hi), expected);
        }
    }

    #[test]
    fn comments_are_cut_to_what_nft_accepts() {
        let many: Vec<String> = (0..100).map(|i| format!("x/p{i:05}")).collect();
        for (text, expected_len) in [
            ("shop/web ingress rule 0".to_string(), 23),
            ("a\"b\\c".to_string(), 3),
            ("é".repeat(100), 125 / 2 * 2 + 3),
            (many.join(", "), COMMENT_MAX),
        ] {
            let quoted = quote(&text);
            let inner = &quoted[1..quoted.len() - 1];
            assert_eq!(inner.len(), expected_len, "{text}");
            assert!(!inner.contains('"') && !inner.contains('\\'), "{inner}");
            if text.len() > COMMENT_MAX {
                assert!(inner.ends_with("..."), "{inner}");
            }
        }
    }
}
