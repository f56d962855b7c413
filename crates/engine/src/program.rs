//! The enforcement program of one node: what its packet filter must check for the pods it hosts,
//! derived from [`Analysis`] so that the enforcer and the analyzer cannot disagree.
//!
//! The program is keyed by addresses, as a packet filter sees them. Each local pod points, per
//! direction, at a chain (one per distinct set of isolating policies, its "isolation
//! signature"); a chain lists compiled policy rules, each an address set for the peer and a port
//! set for the destination. Its size grows with pods plus policy rules, never with pods²: a rule
//! is compiled once, whichever pods it isolates. [`NodeProgram::side`] interprets it, which is
//! what the tests hold against [`Analysis::decide`] and what revocation uses.

use crate::analysis::{Analysis, EndpointId, PolicyId, ip_to_u128, u128_to_ip};
use crate::model::{Cluster, Direction, NamespaceScope, Peer, PortRef, Rule};
use crate::ports::{PortSet, Protocol};
use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub type ChainId = usize;
pub type RuleId = usize;

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

    pub fn is_ipv4(&self) -> bool {
        self.first.is_ipv4()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4()
            && (ip_to_u128(self.first)..=ip_to_u128(self.last)).contains(&ip_to_u128(ip))
    }
}

impl fmt::Display for IpRange {
    /// `a`, `a/n` when the range is one prefix, `first-last` otherwise (nft's spellings).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, last) = (ip_to_u128(self.first), ip_to_u128(self.last));
        if first == last {
            return write!(f, "{}", self.first);
        }
        let bits: u32 = if self.is_ipv4() { 32 } else { 128 };
        let prefix = match (last - first).checked_add(1) {
            None => Some(0),
            Some(size) if size.is_power_of_two() && first % size == 0 => {
                Some(bits - size.trailing_zeros())
            }
            Some(_) => None,
        };
        match prefix {
            Some(len) => write!(f, "{}/{len}", self.first),
            None => write!(f, "{}-{}", self.first, self.last),
        }
    }
}

/// Which destination ports a compiled rule admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortMatch {
    /// The rule lists no ports: every port of every protocol.
    Any,
    /// The same ports whatever the destination (numeric ports only).
    Uniform(PortSet),
    /// Named ports resolve on the destination pod, so the ports depend on the destination
    /// address: disjoint ranges, each with its ports. Addresses not listed admit nothing.
    PerDestination(Vec<(IpRange, PortSet)>),
}

/// One rule of one policy, compiled to addresses and ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleProgram {
    pub policy: PolicyId,
    pub direction: Direction,
    /// Index of the rule in the policy's `ingress` or `egress` list.
    pub index: usize,
    /// Addresses of the other side (source for ingress, destination for egress), disjoint and
    /// sorted; `None` when the rule admits every peer, outside addresses included.
    pub peers: Option<Vec<IpRange>>,
    pub ports: PortMatch,
}

/// The rules that admit a connection for pods isolated by exactly `policies` in `direction`.
/// A connection none of `rules` admits is denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub direction: Direction,
    pub policies: Vec<PolicyId>,
    /// In the order the engine reports admitting rules: policy order, then rule order. Rules
    /// that can admit nothing (no peer address, no port) are left out.
    pub rules: Vec<RuleId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// No policy isolates the pod in this direction: everything is admitted.
    Open,
    Isolated(ChainId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPod {
    pub endpoint: EndpointId,
    /// The addresses the pod has on this node.
    pub ips: Vec<IpAddr>,
    pub ingress: Isolation,
    pub egress: Isolation,
}

/// What one side of the node's filter says about a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SideOutcome {
    Open,
    /// The first rule (in chain order) that admits it.
    Admitted(RuleId),
    Denied(ChainId),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeProgram {
    pub locals: Vec<LocalPod>,
    pub chains: Vec<Chain>,
    pub rules: Vec<RuleProgram>,
    local_by_ip: HashMap<IpAddr, usize>,
}

/// Every endpoint that has an address, as a pod of this node: the view of a node that hosts the
/// whole cluster (an agent without a pod inventory, benchmarks, tests).
pub fn every_pod_local(cluster: &Cluster) -> Vec<(EndpointId, Vec<IpAddr>)> {
    cluster
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, ep)| !ep.ips.is_empty())
        .map(|(id, ep)| (id, ep.ips.clone()))
        .collect()
}

impl NodeProgram {
    /// Compiles the program for the pods this node hosts: `(endpoint, its addresses here)`.
    /// hostNetwork endpoints are left out: their traffic is node traffic, not governed.
    pub fn compile(analysis: &Analysis, local: &[(EndpointId, Vec<IpAddr>)]) -> Self {
        let mut compiler = Compiler {
            analysis,
            local,
            program: NodeProgram::default(),
            chain_of: HashMap::new(),
            rule_of: HashMap::new(),
            peer_cache: RefCell::default(),
            local_ips: local_ips(local),
            isolated_by: OnceCell::new(),
        };
        for (endpoint, ips) in local {
            if analysis.endpoint(*endpoint).host_network || ips.is_empty() {
                continue;
            }
            let ingress = compiler.isolation(*endpoint, Direction::Ingress);
            let egress = compiler.isolation(*endpoint, Direction::Egress);
            let index = compiler.program.locals.len();
            for ip in ips {
                compiler.program.local_by_ip.entry(*ip).or_insert(index);
            }
            compiler.program.locals.push(LocalPod {
                endpoint: *endpoint,
                ips: ips.clone(),
                ingress,
                egress,
            });
        }
        compiler.program
    }

    /// The local pod that has `ip` on this node.
    pub fn local(&self, ip: IpAddr) -> Option<&LocalPod> {
        self.local_by_ip.get(&ip).map(|&i| &self.locals[i])
    }

    /// What the filter decides for the `direction` side of a new connection whose local end is
    /// `local` and other end `other`; `None` when `local` is not a pod of this node.
    pub fn side(
        &self,
        direction: Direction,
        local: IpAddr,
        other: IpAddr,
        protocol: Protocol,
        port: u16,
    ) -> Option<SideOutcome> {
        let pod = self.local(local)?;
        let isolation = match direction {
            Direction::Ingress => pod.ingress,
            Direction::Egress => pod.egress,
        };
        let Isolation::Isolated(chain) = isolation else {
            return Some(SideOutcome::Open);
        };
        let destination = match direction {
            Direction::Ingress => local,
            Direction::Egress => other,
        };
        let admitting = self.chains[chain].rules.iter().copied().find(|&id| {
            let rule = &self.rules[id];
            rule.peers
                .as_ref()
                .is_none_or(|ranges| ranges.iter().any(|r| r.contains(other)))
                && match &rule.ports {
                    PortMatch::Any => true,
                    PortMatch::Uniform(ports) => ports.contains(protocol, port),
                    PortMatch::PerDestination(entries) => entries.iter().any(|(r, ports)| {
                        r.contains(destination) && ports.contains(protocol, port)
                    }),
                }
        });
        Some(admitting.map_or(SideOutcome::Denied(chain), SideOutcome::Admitted))
    }

    /// True when this node's filter drops a new connection from `src` to `dst`: the egress of a
    /// local source or the ingress of a local destination denies it.
    pub fn denies(&self, src: IpAddr, dst: IpAddr, protocol: Protocol, port: u16) -> bool {
        let denied = |outcome: Option<SideOutcome>| matches!(outcome, Some(SideOutcome::Denied(_)));
        denied(self.side(Direction::Egress, src, dst, protocol, port))
            || denied(self.side(Direction::Ingress, dst, src, protocol, port))
    }
}

/// A peer, with the namespace of its policy when the endpoints it matches depend on it.
type PeerKey = (Option<String>, Peer);

struct Compiler<'a> {
    analysis: &'a Analysis,
    local: &'a [(EndpointId, Vec<IpAddr>)],
    program: NodeProgram,
    chain_of: HashMap<(Direction, Vec<PolicyId>), ChainId>,
    rule_of: HashMap<(PolicyId, Direction, usize), Option<RuleId>>,
    /// Peers match the same endpoints in every policy (of a namespace, for peers scoped to the
    /// policy's namespace): match each once.
    peer_cache: RefCell<HashMap<PeerKey, Vec<EndpointId>>>,
    /// The addresses of each local pod on this node.
    local_ips: HashMap<EndpointId, Vec<IpAddr>>,
    /// Local pods by the policies that isolate their ingress (named ports resolve on them),
    /// made when a rule first needs it.
    isolated_by: OnceCell<HashMap<PolicyId, Vec<EndpointId>>>,
}

impl Compiler<'_> {
    fn isolation(&mut self, endpoint: EndpointId, direction: Direction) -> Isolation {
        let policies = self.analysis.isolating_policies(endpoint, direction);
        if policies.is_empty() {
            return Isolation::Open;
        }
        let key = (direction, policies.to_vec());
        if let Some(&chain) = self.chain_of.get(&key) {
            return Isolation::Isolated(chain);
        }
        let mut rules = Vec::new();
        for &policy in policies {
            for index in 0..self.analysis.policy(policy).rules(direction).len() {
                rules.extend(self.rule(policy, direction, index));
            }
        }
        let chain = self.program.chains.len();
        self.program.chains.push(Chain {
            direction,
            policies: key.1.clone(),
            rules,
        });
        self.chain_of.insert(key, chain);
        Isolation::Isolated(chain)
    }

    fn rule(&mut self, policy: PolicyId, direction: Direction, index: usize) -> Option<RuleId> {
        if let Some(&known) = self.rule_of.get(&(policy, direction, index)) {
            return known;
        }
        let compiled = self.compile_rule(policy, direction, index);
        let id = compiled.map(|rule| {
            self.program.rules.push(rule);
            self.program.rules.len() - 1
        });
        self.rule_of.insert((policy, direction, index), id);
        id
    }

    fn compile_rule(
        &self,
        policy: PolicyId,
        direction: Direction,
        index: usize,
    ) -> Option<RuleProgram> {
        let analysis = self.analysis;
        let rule = &analysis.policy(policy).rules(direction)[index];
        // Endpoints the peers match, and the ranges of addresses they cover.
        let (peers, peer_endpoints) = if rule.peers.is_empty() {
            (None, None)
        } else {
            let mut ranges = Vec::new();
            let mut endpoints = Vec::new();
            for peer in &rule.peers {
                if let Peer::IpBlock(block) = peer {
                    ranges.extend(block_ranges(block.cidr, &block.except));
                }
                // Only a pod peer without a namespace selector depends on the policy's
                // namespace; ipBlocks and namespace selectors match the same endpoints from
                // every namespace.
                let namespace = matches!(
                    peer,
                    Peer::Pods {
                        namespaces: NamespaceScope::PolicyNamespace,
                        ..
                    }
                )
                .then(|| analysis.policy(policy).namespace.clone());
                let matched = self
                    .peer_cache
                    .borrow_mut()
                    .entry((namespace, peer.clone()))
                    .or_insert_with(|| analysis.peer_endpoints(policy, peer))
                    .clone();
                endpoints.extend(matched);
            }
            endpoints.sort_unstable();
            endpoints.dedup();
            // The engine matches an ipBlock against a pod by any of its addresses, so every
            // address of a matched pod is a peer address.
            for &ep in &endpoints {
                ranges.extend(
                    analysis
                        .endpoint(ep)
                        .ips
                        .iter()
                        .map(|ip| IpRange::single(*ip)),
                );
            }
            (Some(coalesce(ranges)), Some(endpoints))
        };
        if peers.as_ref().is_some_and(Vec::is_empty) {
            return None;
        }
        let ports = if rule.ports.is_empty() {
            PortMatch::Any
        } else if !has_named_port(rule) {
            PortMatch::Uniform(numeric_ports(rule))
        } else {
            // Destinations: the local pods the policy isolates (ingress), or the peers (egress).
            let destinations: Vec<EndpointId> = match direction {
                Direction::Ingress => self.isolated_locals(policy),
                Direction::Egress => peer_endpoints
                    .clone()
                    .unwrap_or_else(|| (0..analysis.cluster().endpoints.len()).collect()),
            };
            let mut entries = Vec::new();
            let numeric = numeric_ports(rule);
            if direction == Direction::Egress && !numeric.is_empty() {
                let everywhere = [IpRange::everything(true), IpRange::everything(false)];
                let ranges = peers.as_deref().unwrap_or(&everywhere);
                entries.extend(ranges.iter().map(|r| (*r, numeric.clone())));
            }
            for ep in destinations {
                let ports = self.destination_ports(rule, ep);
                entries.extend(
                    self.ips_of(direction, ep)
                        .into_iter()
                        .map(|ip| (IpRange::single(ip), ports.clone())),
                );
            }
            PortMatch::PerDestination(
                merge(entries)
                    .into_iter()
                    .filter(|(_, p)| !p.is_empty())
                    .collect(),
            )
        };
        let admits_nothing = match &ports {
            PortMatch::Any => false,
            PortMatch::Uniform(set) => set.is_empty(),
            PortMatch::PerDestination(entries) => entries.is_empty(),
        };
        (!admits_nothing).then_some(RuleProgram {
            policy,
            direction,
            index,
            peers,
            ports,
        })
    }

    /// The local pods whose ingress `policy` isolates.
    fn isolated_locals(&self, policy: PolicyId) -> Vec<EndpointId> {
        self.isolated_by
            .get_or_init(|| {
                let mut by_policy: HashMap<PolicyId, Vec<EndpointId>> = HashMap::new();
                for (endpoint, _) in self.local {
                    for &p in self
                        .analysis
                        .isolating_policies(*endpoint, Direction::Ingress)
                    {
                        by_policy.entry(p).or_default().push(*endpoint);
                    }
                }
                by_policy
            })
            .get(&policy)
            .cloned()
            .unwrap_or_default()
    }

    /// Addresses of a destination: for ingress only those on this node.
    fn ips_of(&self, direction: Direction, endpoint: EndpointId) -> Vec<IpAddr> {
        match direction {
            Direction::Ingress => self.local_ips.get(&endpoint).cloned().unwrap_or_default(),
            Direction::Egress => self.analysis.endpoint(endpoint).ips.clone(),
        }
    }

    /// Every port a rule admits on one destination pod: numeric ports and named ports resolved
    /// on it.
    fn destination_ports(&self, rule: &Rule, endpoint: EndpointId) -> PortSet {
        let mut ports = numeric_ports(rule);
        for entry in &rule.ports {
            if let Some(PortRef::Named(name)) = &entry.port
                && let Some(port) = self
                    .analysis
                    .endpoint(endpoint)
                    .named_port(name, entry.protocol)
            {
                ports.insert_range(entry.protocol, port, port);
            }
        }
        ports
    }
}

/// The addresses of each local pod (an endpoint may be listed more than once).
fn local_ips(local: &[(EndpointId, Vec<IpAddr>)]) -> HashMap<EndpointId, Vec<IpAddr>> {
    let mut by_endpoint: HashMap<EndpointId, Vec<IpAddr>> = HashMap::new();
    for (endpoint, ips) in local {
        by_endpoint.entry(*endpoint).or_default().extend(ips);
    }
    by_endpoint
}

impl IpRange {
    fn everything(v4: bool) -> Self {
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
}

fn has_named_port(rule: &Rule) -> bool {
    rule.ports
        .iter()
        .any(|p| matches!(p.port, Some(PortRef::Named(_))))
}

/// The ports of a rule's entries that do not depend on the destination.
fn numeric_ports(rule: &Rule) -> PortSet {
    let mut ports = PortSet::empty();
    for entry in &rule.ports {
        match &entry.port {
            None => ports.union_with(&PortSet::all_of(entry.protocol)),
            Some(PortRef::Number(first)) => {
                ports.insert_range(entry.protocol, *first, entry.end_port.unwrap_or(*first));
            }
            Some(PortRef::Named(_)) => {}
        }
    }
    ports
}

/// `cidr` minus `except`, as disjoint ranges.
fn block_ranges(cidr: ipnet::IpNet, except: &[ipnet::IpNet]) -> Vec<IpRange> {
    let v4 = cidr.addr().is_ipv4();
    let mut pieces = vec![(ip_to_u128(cidr.network()), ip_to_u128(cidr.broadcast()))];
    for hole in except {
        let (lo, hi) = (ip_to_u128(hole.network()), ip_to_u128(hole.broadcast()));
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
        .map(|(a, b)| IpRange {
            first: u128_to_ip(a, v4),
            last: u128_to_ip(b, v4),
        })
        .collect()
}

/// Splits possibly overlapping ranges, each carrying a value that unions (ports),
/// into disjoint sorted ranges, merging neighbours whose values are equal.
fn merge<T: Clone + PartialEq + Unite>(entries: Vec<(IpRange, T)>) -> Vec<(IpRange, T)> {
    let mut out = Vec::new();
    for v4 in [true, false] {
        let family: Vec<(u128, u128, &T)> = entries
            .iter()
            .filter(|(r, _)| r.is_ipv4() == v4)
            .map(|(r, t)| (ip_to_u128(r.first), ip_to_u128(r.last), t))
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
            let hi = if v4 { hi.min(u128::from(u32::MAX)) } else { hi };
            match &mut current {
                Some((_, end, v)) if *v == value && end.checked_add(1) == Some(lo) => *end = hi,
                _ => {
                    if let Some((a, b, v)) = current.replace((lo, hi, value)) {
                        out.push((range_of(a, b, v4), v));
                    }
                }
            }
        }
        if let Some((a, b, v)) = current {
            out.push((range_of(a, b, v4), v));
        }
    }
    out
}

/// Possibly overlapping ranges as disjoint sorted ones, neighbours joined: what [`merge`]
/// gives for ranges without values, in a sort instead of a cut per range end.
fn coalesce(ranges: Vec<IpRange>) -> Vec<IpRange> {
    let mut bounds: Vec<(bool, u128, u128)> = ranges
        .iter()
        .map(|r| (!r.is_ipv4(), ip_to_u128(r.first), ip_to_u128(r.last)))
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
        .map(|(v6, first, last)| range_of(first, last, !v6))
        .collect()
}

trait Unite {
    fn unite(&mut self, other: &Self);
}

impl Unite for PortSet {
    fn unite(&mut self, other: &Self) {
        self.union_with(other);
    }
}

fn range_of(first: u128, last: u128, v4: bool) -> IpRange {
    IpRange {
        first: u128_to_ip(first, v4),
        last: u128_to_ip(last, v4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{SideVerdict, Subject};
    use crate::model::{
        Cluster, ContainerPort, Endpoint, IpBlock, Namespace, NamespaceScope, NetworkPolicy,
        PolicyTypes, PortRule,
    };
    use crate::selector::{LabelSelector, Labels};
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pod(
        ns: &str,
        name: &str,
        pairs: &[(&str, &str)],
        ips: &[&str],
        ports: &[(&str, u16, Protocol)],
    ) -> Endpoint {
        let mut ep = Endpoint::pod(ns, name, labels(pairs));
        ep.ips = ips.iter().map(|ip| ip.parse().unwrap()).collect();
        ep.ports = ports
            .iter()
            .map(|(n, port, protocol)| ContainerPort {
                name: Some(n.to_string()),
                port: *port,
                protocol: *protocol,
            })
            .collect();
        ep
    }

    fn policy(
        ns: &str,
        name: &str,
        selector: &[(&str, &str)],
        ingress: Option<Vec<Rule>>,
        egress: Option<Vec<Rule>>,
    ) -> NetworkPolicy {
        NetworkPolicy {
            namespace: ns.into(),
            name: name.into(),
            pod_selector: LabelSelector::with_labels(selector.iter().copied()),
            policy_types: PolicyTypes {
                ingress: ingress.is_some(),
                egress: egress.is_some(),
            },
            ingress: ingress.unwrap_or_default(),
            egress: egress.unwrap_or_default(),
        }
    }

    fn pods_peer(ns: Option<&[(&str, &str)]>, pods: &[(&str, &str)]) -> Peer {
        Peer::Pods {
            namespaces: ns.map_or(NamespaceScope::PolicyNamespace, |sel| {
                NamespaceScope::Selected(LabelSelector::with_labels(sel.iter().copied()))
            }),
            pods: LabelSelector::with_labels(pods.iter().copied()),
        }
    }

    fn block(cidr: &str, except: &[&str]) -> Peer {
        Peer::IpBlock(IpBlock {
            cidr: cidr.parse().unwrap(),
            except: except.iter().map(|e| e.parse().unwrap()).collect(),
        })
    }

    fn port(protocol: Protocol, port: Option<PortRef>, end_port: Option<u16>) -> PortRule {
        PortRule {
            protocol,
            port,
            end_port,
        }
    }

    /// Every endpoint local, every address pair, every protocol and interesting port: each side
    /// of the program must say what the engine says, naming the same first admitting rule.
    fn assert_agrees(cluster: Cluster, extra_addresses: &[&str]) {
        let analysis = Analysis::new(cluster);
        let local = every_pod_local(analysis.cluster());
        let program = NodeProgram::compile(&analysis, &local);
        let mut addresses: Vec<IpAddr> = local.iter().flat_map(|(_, ips)| ips.clone()).collect();
        addresses.extend(extra_addresses.iter().map(|a| a.parse::<IpAddr>().unwrap()));
        addresses.extend(
            analysis
                .external_ranges()
                .iter()
                .flat_map(|r| [r.first, r.last]),
        );
        for &src in &addresses {
            for &dst in &addresses {
                let (s, d) = (analysis.subject_for_ip(src), analysis.subject_for_ip(dst));
                if matches!((s, d), (Subject::Endpoint(a), Subject::Endpoint(b)) if a == b) {
                    continue; // a pod's traffic to itself never reaches the node
                }
                for protocol in Protocol::ALL {
                    for port in [1, 53, 80, 81, 82, 443, 5432, 8080, 65535] {
                        let decision = analysis.decide(s, d, protocol, port);
                        let context = format!("{src} -> {dst} {protocol}/{port}");
                        check_side(
                            &program,
                            program.side(Direction::Egress, src, dst, protocol, port),
                            &decision.egress,
                            &context,
                        );
                        check_side(
                            &program,
                            program.side(Direction::Ingress, dst, src, protocol, port),
                            &decision.ingress,
                            &context,
                        );
                        assert_eq!(
                            program.denies(src, dst, protocol, port),
                            !decision.allowed,
                            "{context}"
                        );
                    }
                }
            }
        }
    }

    fn check_side(
        program: &NodeProgram,
        outcome: Option<SideOutcome>,
        verdict: &SideVerdict,
        context: &str,
    ) {
        let agrees = match (outcome, verdict) {
            (None, SideVerdict::NotGoverned) => true,
            (Some(SideOutcome::Open), SideVerdict::NotIsolated) => true,
            (Some(SideOutcome::Admitted(rule)), SideVerdict::Admitted { by, .. }) => {
                let rule = &program.rules[rule];
                (rule.policy, rule.direction, rule.index)
                    == (by[0].policy, by[0].direction, by[0].rule)
            }
            (Some(SideOutcome::Denied(chain)), SideVerdict::NoRuleAdmits { isolating }) => {
                program.chains[chain].policies == *isolating
            }
            _ => false,
        };
        assert!(
            agrees,
            "{context}: program says {outcome:?}, engine says {verdict:?}"
        );
    }

    fn web_cluster() -> Cluster {
        let web_ports: &[(&str, u16, Protocol)] =
            &[("http", 80, Protocol::Tcp), ("dns", 53, Protocol::Udp)];
        Cluster {
            namespaces: vec![
                Namespace::new("prod", labels(&[("env", "prod")])),
                Namespace::new("dev", Labels::new()),
            ],
            endpoints: vec![
                pod(
                    "prod",
                    "web",
                    &[("app", "web")],
                    &["10.0.0.1", "fd00::1"],
                    web_ports,
                ),
                pod(
                    "prod",
                    "web2",
                    &[("app", "web")],
                    &["10.0.0.2"],
                    &[("http", 8080, Protocol::Tcp)],
                ),
                pod(
                    "prod",
                    "db",
                    &[("app", "db")],
                    &["10.0.0.3"],
                    &[("pg", 5432, Protocol::Tcp)],
                ),
                pod(
                    "dev",
                    "client",
                    &[("app", "client")],
                    &["10.0.1.1", "fd00::11"],
                    &[],
                ),
            ],
            policies: Vec::new(),
        }
    }

    #[test]
    fn program_sides_agree_with_the_engine() {
        let named = |n: &str| Some(PortRef::Named(n.to_string()));
        let cases: Vec<(&str, Vec<NetworkPolicy>)> = vec![
            ("no policies", vec![]),
            (
                "deny all ingress",
                vec![policy("prod", "deny", &[], Some(vec![]), None)],
            ),
            (
                "named port ingress from another namespace",
                vec![policy(
                    "prod",
                    "web",
                    &[("app", "web")],
                    Some(vec![Rule {
                        peers: vec![pods_peer(Some(&[]), &[("app", "client")])],
                        ports: vec![port(Protocol::Tcp, named("http"), None)],
                    }]),
                    None,
                )],
            ),
            (
                "ipBlock with except, port range",
                vec![policy(
                    "prod",
                    "db",
                    &[("app", "db")],
                    Some(vec![Rule {
                        peers: vec![
                            block("10.0.0.0/16", &["10.0.1.0/24"]),
                            pods_peer(None, &[("app", "web")]),
                        ],
                        ports: vec![port(Protocol::Tcp, Some(PortRef::Number(5000)), Some(5500))],
                    }]),
                    None,
                )],
            ),
            (
                "egress named port to any peer plus DNS",
                vec![policy(
                    "dev",
                    "client",
                    &[],
                    None,
                    Some(vec![
                        Rule {
                            peers: vec![],
                            ports: vec![
                                port(Protocol::Tcp, named("http"), None),
                                port(Protocol::Tcp, Some(PortRef::Number(443)), None),
                            ],
                        },
                        Rule {
                            peers: vec![pods_peer(Some(&[("env", "prod")]), &[])],
                            ports: vec![port(Protocol::Udp, Some(PortRef::Number(53)), None)],
                        },
                    ]),
                )],
            ),
            (
                "egress ipBlock matches pods by any address",
                vec![policy(
                    "prod",
                    "out",
                    &[("app", "web")],
                    None,
                    Some(vec![Rule {
                        peers: vec![
                            block("10.0.1.0/24", &[]),
                            block("192.168.0.0/16", &["192.168.5.0/24"]),
                        ],
                        ports: vec![],
                    }]),
                )],
            ),
            (
                "two policies, both directions, overlapping rules",
                vec![
                    policy(
                        "prod",
                        "a",
                        &[("app", "web")],
                        Some(vec![Rule {
                            peers: vec![pods_peer(Some(&[]), &[])],
                            ports: vec![port(Protocol::Udp, None, None)],
                        }]),
                        Some(vec![]),
                    ),
                    policy(
                        "prod",
                        "b",
                        &[],
                        Some(vec![Rule::default()]),
                        Some(vec![Rule {
                            peers: vec![pods_peer(None, &[("app", "db")])],
                            ports: vec![port(Protocol::Tcp, named("pg"), None)],
                        }]),
                    ),
                ],
            ),
        ];
        for (name, policies) in cases {
            eprintln!("case: {name}");
            let mut cluster = web_cluster();
            cluster.policies = policies;
            assert_agrees(
                cluster,
                &[
                    "10.0.1.7",
                    "192.168.5.5",
                    "192.168.9.9",
                    "8.8.8.8",
                    "2001:db8::1",
                ],
            );
        }
    }

    #[test]
    fn pods_alike_share_one_chain_and_rules_compile_once() {
        let mut cluster = web_cluster();
        for i in 0..50u8 {
            cluster.endpoints.push(pod(
                "prod",
                &format!("w{i}"),
                &[("app", "web")],
                &[&format!("10.0.2.{i}")],
                &[],
            ));
        }
        cluster.policies = vec![
            policy(
                "prod",
                "web",
                &[("app", "web")],
                Some(vec![Rule::default(), Rule::default()]),
                None,
            ),
            policy("prod", "all", &[], Some(vec![Rule::default()]), None),
        ];
        let analysis = Analysis::new(cluster);
        let local = every_pod_local(analysis.cluster());
        let program = NodeProgram::compile(&analysis, &local);
        // Signatures: {web, all} for web pods, {all} for db and the other namespace is open.
        assert_eq!(program.chains.len(), 2);
        assert_eq!(program.rules.len(), 3);
        assert_eq!(program.locals.len(), 54);
    }

    #[test]
    fn ranges_print_as_nft_spells_them() {
        let r = |a: &str, b: &str| IpRange {
            first: a.parse().unwrap(),
            last: b.parse().unwrap(),
        };
        assert_eq!(r("10.0.0.0", "10.0.0.255").to_string(), "10.0.0.0/24");
        assert_eq!(r("10.0.0.1", "10.0.0.1").to_string(), "10.0.0.1");
        assert_eq!(r("10.0.0.1", "10.0.0.6").to_string(), "10.0.0.1-10.0.0.6");
        assert_eq!(r("0.0.0.0", "255.255.255.255").to_string(), "0.0.0.0/0");
        assert_eq!(IpRange::everything(false).to_string(), "::/0");
    }

    fn arb_selector() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
        proptest::collection::vec(
            prop_oneof![Just(("app", "a")), Just(("app", "b")), Just(("tier", "x"))],
            0..2,
        )
    }

    fn arb_peer() -> impl Strategy<Value = Peer> {
        prop_oneof![
            (proptest::option::of(arb_selector()), arb_selector()).prop_map(|(ns, pods)| {
                let ns: Option<Vec<(&str, &str)>> =
                    ns.map(|s| s.into_iter().map(|(_, v)| ("team", v)).collect());
                pods_peer(ns.as_deref(), &pods)
            }),
            (0u8..4, any::<bool>()).prop_map(|(net, except)| {
                let cidr = format!("10.{net}.0.0/16");
                let hole = format!("10.{net}.0.0/30");
                let holes = [hole.as_str()];
                block(&cidr, if except { &holes[..] } else { &[] })
            }),
        ]
    }

    fn arb_port() -> impl Strategy<Value = PortRule> {
        (
            0usize..3,
            prop_oneof![
                Just((None, None)),
                Just((Some(PortRef::Number(80)), None)),
                Just((Some(PortRef::Number(53)), Some(81))),
                Just((Some(PortRef::Named("http".to_string())), None)),
                Just((Some(PortRef::Named("alt".to_string())), None)),
            ],
        )
            .prop_map(|(p, (number, end))| port(Protocol::ALL[p], number, end))
    }

    fn arb_rule() -> impl Strategy<Value = Rule> {
        (
            proptest::collection::vec(arb_peer(), 0..3),
            proptest::collection::vec(arb_port(), 0..3),
        )
            .prop_map(|(peers, ports)| Rule { peers, ports })
    }

    fn arb_cluster() -> impl Strategy<Value = Cluster> {
        let endpoint = (0usize..2, arb_selector(), 0u16..3, any::<bool>());
        let rules = || proptest::option::of(proptest::collection::vec(arb_rule(), 0..3));
        let pol = (0usize..2, arb_selector(), rules(), rules());
        (
            proptest::collection::vec(endpoint, 1..6),
            proptest::collection::vec(pol, 0..4),
        )
            .prop_map(|(endpoints, policies)| {
                let namespaces = ["a", "b"];
                Cluster {
                    namespaces: vec![
                        Namespace::new("a", labels(&[("team", "a")])),
                        Namespace::new("b", labels(&[("team", "b")])),
                    ],
                    endpoints: endpoints
                        .into_iter()
                        .enumerate()
                        .map(|(i, (ns, sel, alt, v6))| {
                            let v4 = format!("10.{}.0.{}", i % 4, i + 1);
                            let v6a = format!("fd00::{}", i + 1);
                            let ips: Vec<&str> = if v6 { vec![&v4, &v6a] } else { vec![&v4] };
                            pod(
                                namespaces[ns],
                                &format!("p{i}"),
                                &sel,
                                &ips,
                                &[
                                    ("http", 80, Protocol::Tcp),
                                    ("alt", 80 + alt, Protocol::Udp),
                                ],
                            )
                        })
                        .collect(),
                    policies: policies
                        .into_iter()
                        .enumerate()
                        .map(|(i, (ns, sel, ingress, egress))| {
                            policy(namespaces[ns], &format!("np{i}"), &sel, ingress, egress)
                        })
                        .collect(),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_clusters_agree_with_the_engine(cluster in arb_cluster()) {
            assert_agrees(cluster, &["10.1.0.2", "10.3.9.9", "8.8.8.8", "fd00::99"]);
        }
    }
}
