//! The enforcement program of one node: what its packet filter must check for the pods it hosts,
//! derived from [`Analysis`] so that the enforcer and the analyzer cannot disagree.
//!
//! The program is keyed by addresses, as a packet filter sees them. Each local pod points, per
//! direction, at a chain (one per distinct set of isolating policies, its "isolation
//! signature"); a chain lists compiled policy rules, each an address set for the peer and a port
//! set for the destination. Its size grows with pods plus policy rules, never with pods²: a rule
//! is compiled once, whichever pods it isolates. [`NodeProgram::side`] interprets it, which is
//! what the tests hold against [`Analysis::decide`] and what revocation uses.

use crate::addresses::{IpRange, block_ranges, coalesce, merge};
use crate::analysis::Analysis;
use crate::ids::{ChainId, EndpointId, PolicyId, RuleId};
use crate::model::{Cluster, Direction, Peer};
use crate::ports::{PortSet, Protocol};
use crate::rules;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use typed_index_collections::TiVec;

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
    pub chains: TiVec<ChainId, Chain>,
    pub rules: TiVec<RuleId, RuleProgram>,
    local_by_ip: HashMap<IpAddr, usize>,
}

/// Every endpoint that has an address, as a pod of this node: the view of a node that hosts the
/// whole cluster (an agent without a pod inventory, benchmarks, tests).
pub fn every_pod_local(cluster: &Cluster) -> Vec<(EndpointId, Vec<IpAddr>)> {
    cluster
        .endpoints
        .iter_enumerated()
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
        let destination = rules::destination(direction, local, other);
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
        let chain = self.program.chains.push_and_get_key(Chain {
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
        let id = compiled.map(|rule| self.program.rules.push_and_get_key(rule));
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
                let namespace = rules::depends_on_policy_namespace(peer)
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
        } else if !rules::depends_on_destination(rule) {
            PortMatch::Uniform(rules::rule_ports(rule, None))
        } else {
            // The rule's destinations ([`Analysis::rule_destinations`]) on this node: the local
            // pods the policy isolates (ingress), or the peers matched above (egress).
            let destinations: Vec<EndpointId> = match direction {
                Direction::Ingress => self.isolated_locals(policy),
                Direction::Egress => peer_endpoints
                    .clone()
                    .unwrap_or_else(|| analysis.cluster().endpoints.keys().collect()),
            };
            let mut entries = Vec::new();
            // What the rule admits whatever the destination: its numeric entries.
            let numeric = rules::rule_ports(rule, None);
            if direction == Direction::Egress && !numeric.is_empty() {
                let everywhere = [IpRange::everything(true), IpRange::everything(false)];
                let ranges = peers.as_deref().unwrap_or(&everywhere);
                entries.extend(ranges.iter().map(|r| (*r, numeric.clone())));
            }
            for ep in destinations {
                let ports = rules::rule_ports(rule, Some(analysis.endpoint(ep)));
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
}

/// The addresses of each local pod (an endpoint may be listed more than once).
fn local_ips(local: &[(EndpointId, Vec<IpAddr>)]) -> HashMap<EndpointId, Vec<IpAddr>> {
    let mut by_endpoint: HashMap<EndpointId, Vec<IpAddr>> = HashMap::new();
    for (endpoint, ips) in local {
        by_endpoint.entry(*endpoint).or_default().extend(ips);
    }
    by_endpoint
}

#[cfg(test)]
mod tests;
