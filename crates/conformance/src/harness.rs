//! The upstream e2e fixture (namespaces x, y, z; pods a, b, c serving 80 and 81 over TCP, UDP
//! and SCTP), builders that keep each case short, and the truth-table machinery: expectations
//! are written with a Reachability DSL and compared cell by cell with what the engine decides.

use palisade_engine::{
    Analysis, ContainerPort, Endpoint, IpBlock, LabelSelector, Labels, NAMESPACE_NAME_LABEL,
    Namespace, NamespaceScope, NetworkPolicy, Operator, Peer, PolicyTypes, PortRef, PortRule,
    Protocol, Requirement, Rule, Subject, Vertex,
};
use std::fmt::Write as _;
use std::net::IpAddr;

pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];
pub const PODS: [&str; 3] = ["a", "b", "c"];
pub const PORTS: [u16; 2] = [80, 81];

pub use palisade_engine::Protocol::{Sctp, Tcp, Udp};

/// Every (protocol, port) a truth table has a column block for, as upstream probes them.
pub const PROBES: [(Protocol, u16); 6] = [
    (Protocol::Tcp, 80),
    (Protocol::Tcp, 81),
    (Protocol::Udp, 80),
    (Protocol::Udp, 81),
    (Protocol::Sctp, 80),
    (Protocol::Sctp, 81),
];

/// Where `allowed_ports` must agree with `decide`: the probed ports and the edges around them,
/// so an off-by-one in a range shows up even where no expectation is written.
const AGREEMENT_PORTS: [u16; 7] = [1, 53, 79, 80, 81, 82, 65535];

// ---------------------------------------------------------------------------------------------
// Selectors, peers, ports, rules, policies.

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn everything() -> LabelSelector {
    LabelSelector::everything()
}

/// `matchLabels` only.
pub fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector::with_labels(pairs.iter().copied())
}

/// The `pod=<name>` label every fixture pod carries.
pub fn pod(name: &str) -> LabelSelector {
    sel(&[("pod", name)])
}

/// `kubernetes.io/metadata.name=<name>`, the label the API server puts on every namespace.
pub fn ns_name(name: &str) -> LabelSelector {
    sel(&[(NAMESPACE_NAME_LABEL, name)])
}

/// One `matchExpressions` requirement.
pub fn expr(key: &str, operator: Operator, values: &[&str]) -> LabelSelector {
    LabelSelector {
        match_labels: Labels::new(),
        match_expressions: vec![Requirement {
            key: key.to_string(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }],
    }
}

/// A peer with only a `podSelector`: pods of the policy's own namespace.
pub fn pods(selector: LabelSelector) -> Peer {
    Peer::Pods {
        namespaces: NamespaceScope::PolicyNamespace,
        pods: selector,
    }
}

/// A peer with only a `namespaceSelector`: every pod of the selected namespaces.
pub fn namespaces(selector: LabelSelector) -> Peer {
    pods_in(selector, LabelSelector::everything())
}

/// A peer with both selectors in one entry (ANDed).
pub fn pods_in(namespace_selector: LabelSelector, pod_selector: LabelSelector) -> Peer {
    Peer::Pods {
        namespaces: NamespaceScope::Selected(namespace_selector),
        pods: pod_selector,
    }
}

pub fn ip_block(cidr: &str, except: &[&str]) -> Peer {
    Peer::IpBlock(IpBlock {
        cidr: cidr.parse().expect("test CIDR"),
        except: except
            .iter()
            .map(|e| e.parse().expect("test CIDR"))
            .collect(),
    })
}

pub fn port(protocol: Protocol, number: u16) -> PortRule {
    PortRule {
        protocol,
        port: Some(PortRef::Number(number)),
        end_port: None,
    }
}

pub fn port_range(protocol: Protocol, first: u16, last: u16) -> PortRule {
    PortRule {
        end_port: Some(last),
        ..port(protocol, first)
    }
}

pub fn named_port(protocol: Protocol, name: &str) -> PortRule {
    PortRule {
        protocol,
        port: Some(PortRef::Named(name.to_string())),
        end_port: None,
    }
}

/// `protocol` given, `port` omitted: every port of that protocol.
pub fn every_port(protocol: Protocol) -> PortRule {
    PortRule {
        protocol,
        port: None,
        end_port: None,
    }
}

pub fn rule(
    peers: impl IntoIterator<Item = Peer>,
    ports: impl IntoIterator<Item = PortRule>,
) -> Rule {
    Rule {
        peers: peers.into_iter().collect(),
        ports: ports.into_iter().collect(),
    }
}

enum Types {
    /// Like upstream's `SetSpecIngressRules`/`SetSpecEgressRules`: each section given adds its
    /// type; a policy given neither gets the API server's default.
    FromSections {
        ingress: bool,
        egress: bool,
    },
    Explicit(PolicyTypes),
    /// `policyTypes` omitted: the API server's defaulting decides.
    Undeclared,
}

pub struct PolicyBuilder {
    policy: NetworkPolicy,
    types: Types,
}

/// A policy selecting every pod of `namespace` until [`PolicyBuilder::select`] says otherwise.
pub fn np(namespace: &str, name: &str) -> PolicyBuilder {
    PolicyBuilder {
        policy: NetworkPolicy {
            namespace: namespace.to_string(),
            name: name.to_string(),
            pod_selector: LabelSelector::everything(),
            policy_types: PolicyTypes {
                ingress: false,
                egress: false,
            },
            ingress: Vec::new(),
            egress: Vec::new(),
        },
        types: Types::FromSections {
            ingress: false,
            egress: false,
        },
    }
}

impl PolicyBuilder {
    pub fn select(mut self, selector: LabelSelector) -> Self {
        self.policy.pod_selector = selector;
        self
    }

    /// Adds an ingress section (possibly with no rules: deny) and, unless types are given
    /// explicitly, the Ingress policy type.
    pub fn ingress(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.policy.ingress.extend(rules);
        if let Types::FromSections { ingress, .. } = &mut self.types {
            *ingress = true;
        }
        self
    }

    pub fn egress(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.policy.egress.extend(rules);
        if let Types::FromSections { egress, .. } = &mut self.types {
            *egress = true;
        }
        self
    }

    /// `policyTypes` exactly as written, whatever sections the policy has.
    pub fn types(mut self, ingress: bool, egress: bool) -> Self {
        self.types = Types::Explicit(PolicyTypes { ingress, egress });
        self
    }

    pub fn undeclared_types(mut self) -> Self {
        self.types = Types::Undeclared;
        self
    }
}

impl From<PolicyBuilder> for NetworkPolicy {
    fn from(builder: PolicyBuilder) -> Self {
        let mut policy = builder.policy;
        // Upstream defaulting adds Egress only for a non-empty egress list.
        let defaulted = PolicyTypes::defaulted(None, !policy.egress.is_empty());
        policy.policy_types = match builder.types {
            Types::FromSections {
                ingress: false,
                egress: false,
            }
            | Types::Undeclared => defaulted,
            Types::FromSections { ingress, egress } => PolicyTypes { ingress, egress },
            Types::Explicit(types) => types,
        };
        policy
    }
}

// ---------------------------------------------------------------------------------------------
// The world: cluster plus outside addresses, and who is who in a truth table.

/// A fixture pod: labels `pod=<name>`, the given address, and upstream's container ports
/// `serve-80-tcp`, `serve-81-udp`, … (80 and 81 over every protocol).
pub fn standard_pod(namespace: &str, name: &str, ip: &str) -> Endpoint {
    let mut endpoint = Endpoint::pod(namespace, name, labels(&[("pod", name)]));
    endpoint.ips = vec![ip.parse().expect("test address")];
    endpoint.ports = PORTS
        .iter()
        .flat_map(|&port| {
            Protocol::ALL.map(|protocol| ContainerPort {
                name: Some(format!("serve-{port}-{}", protocol.as_str().to_lowercase())),
                port,
                protocol,
            })
        })
        .collect();
    endpoint
}

#[derive(Clone, Debug)]
struct SubjectInfo {
    /// `x/a`, `x/deployment/web`, or `@203.0.113.9` for an outside address.
    label: String,
    namespace: Option<String>,
    short_name: String,
    subject: Subject,
    /// A single pod's connection to itself never leaves its network namespace.
    single_pod: bool,
}

impl SubjectInfo {
    /// `*`, `*/*` (every endpoint), `@*` (every outside address), `ns/*`, `*/name`, or an
    /// exact label.
    fn matches(&self, pattern: &str) -> bool {
        match pattern {
            "*" => true,
            "*/*" => self.namespace.is_some(),
            "@*" => self.namespace.is_none(),
            _ => match pattern.split_once('/') {
                Some((ns, "*")) => self.namespace.as_deref() == Some(ns),
                Some(("*", name)) => self.namespace.is_some() && self.short_name == name,
                _ => self.label == pattern,
            },
        }
    }
}

#[derive(Clone, Debug)]
pub struct World {
    cluster: palisade_engine::Cluster,
    externals: Vec<IpAddr>,
}

impl World {
    /// Upstream's topology: x/a = 10.0.1.1 … z/c = 10.0.3.3 (one /24 per namespace).
    pub fn xyz() -> Self {
        let mut cluster = palisade_engine::Cluster::default();
        for (i, ns) in NAMESPACES.iter().enumerate() {
            cluster
                .namespaces
                .push(Namespace::new(*ns, labels(&[("ns", ns)])));
            for (j, name) in PODS.iter().enumerate() {
                let ip = format!("10.0.{}.{}", i + 1, j + 1);
                cluster.endpoints.push(standard_pod(ns, name, &ip));
            }
        }
        Self {
            cluster,
            externals: Vec::new(),
        }
    }

    /// Gives the nine fixture pods an IPv6 address too: x/a = fd00::1:1 … z/c = fd00::3:3.
    pub fn dual_stack(mut self) -> Self {
        for (i, ns) in NAMESPACES.iter().enumerate() {
            for (j, name) in PODS.iter().enumerate() {
                let ip = format!("fd00::{}:{}", i + 1, j + 1)
                    .parse()
                    .expect("address");
                self.endpoint_mut(&format!("{ns}/{name}")).ips.push(ip);
            }
        }
        self
    }

    pub fn ns_label(mut self, namespace: &str, key: &str, value: &str) -> Self {
        let ns = self
            .cluster
            .namespaces
            .iter_mut()
            .find(|n| n.name == namespace)
            .unwrap_or_else(|| panic!("no namespace {namespace} in the fixture"));
        ns.labels.insert(key.to_string(), value.to_string());
        self
    }

    pub fn pod_label(mut self, endpoint: &str, key: &str, value: &str) -> Self {
        let labels = &mut self.endpoint_mut(endpoint).labels;
        labels.insert(key.to_string(), value.to_string());
        self
    }

    pub fn container_port(
        mut self,
        endpoint: &str,
        name: &str,
        port: u16,
        protocol: Protocol,
    ) -> Self {
        self.endpoint_mut(endpoint).ports.push(ContainerPort {
            name: Some(name.to_string()),
            port,
            protocol,
        });
        self
    }

    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.cluster.endpoints.push(endpoint);
        self
    }

    pub fn external(mut self, ip: &str) -> Self {
        self.externals.push(ip.parse().expect("test address"));
        self
    }

    pub fn policy(mut self, policy: impl Into<NetworkPolicy>) -> Self {
        self.cluster.policies.push(policy.into());
        self
    }

    fn endpoint_mut(&mut self, qualified: &str) -> &mut Endpoint {
        self.cluster
            .endpoints
            .iter_mut()
            .find(|e| e.qualified_name() == qualified)
            .unwrap_or_else(|| panic!("no endpoint {qualified} in the fixture"))
    }

    pub fn cluster(&self) -> &palisade_engine::Cluster {
        &self.cluster
    }

    /// The outside addresses the truth table has rows and columns for (`@<ip>`).
    pub fn externals(&self) -> &[IpAddr] {
        &self.externals
    }

    pub fn analysis(&self) -> Analysis {
        Analysis::new(self.cluster.clone())
    }

    /// Endpoints in cluster order (an `EndpointId` is the index), then outside addresses.
    fn subjects(&self) -> Vec<SubjectInfo> {
        let endpoints = self
            .cluster
            .endpoints
            .iter_enumerated()
            .map(|(id, e)| SubjectInfo {
                label: e.qualified_name(),
                namespace: Some(e.namespace.clone()),
                short_name: e.name.clone(),
                subject: Subject::Endpoint(id),
                single_pod: e.replicas <= 1,
            });
        let externals = self.externals.iter().map(|ip| SubjectInfo {
            label: format!("@{ip}"),
            namespace: None,
            short_name: ip.to_string(),
            subject: Subject::External(*ip),
            single_pod: false,
        });
        endpoints.chain(externals).collect()
    }

    /// The subject a truth-table label stands for.
    pub fn subject(&self, label: &str) -> Subject {
        self.subjects()
            .into_iter()
            .find(|s| s.label == label)
            .unwrap_or_else(|| panic!("no subject {label} in the world"))
            .subject
    }

    /// A truth table with every connection set to `default`.
    pub fn reachability(&self, default: bool) -> Reachability {
        Reachability {
            grid: Grid::new(self.subjects(), default),
            scope: PROBES.to_vec(),
        }
    }

    /// What the engine decides for every cell, plus every place where its two answers
    /// (`decide` and `allowed_ports`) or a decision and its own reasons disagree.
    pub fn observe(&self) -> Observation {
        let analysis = self.analysis();
        let connectivity = analysis.connectivity();
        let node = |subject: Subject| match subject {
            Subject::Endpoint(id) => Some(Vertex::Class(analysis.class_of(id))),
            Subject::External(ip) => connectivity.external_vertex(ip),
        };
        let mut grid = Grid::new(self.subjects(), false);
        let mut inconsistencies = Vec::new();
        let subjects = grid.subjects.clone();
        for (i, src) in subjects.iter().enumerate() {
            if let Subject::Endpoint(id) = src.subject {
                assert_eq!(
                    analysis.endpoint(id).qualified_name(),
                    src.label,
                    "the engine must keep endpoint order"
                );
            }
            for (j, dst) in subjects.iter().enumerate() {
                if grid.get(i, j, 0).is_none() {
                    continue;
                }
                let ports = analysis.allowed_ports(src.subject, dst.subject);
                if let (Some(s), Some(d)) = (node(src.subject), node(dst.subject))
                    && !analysis.is_loopback(src.subject, dst.subject)
                    && *connectivity.allowed(s, d) != ports
                {
                    inconsistencies.push(format!(
                        "{} -> {}: allowed_ports says {ports}, connectivity says {}",
                        src.label,
                        dst.label,
                        connectivity.allowed(s, d)
                    ));
                }
                for protocol in Protocol::ALL {
                    for port in AGREEMENT_PORTS {
                        let decision = analysis.decide(src.subject, dst.subject, protocol, port);
                        let cell = format!("{protocol}/{port} {} -> {}", src.label, dst.label);
                        if decision.allowed != ports.contains(protocol, port) {
                            inconsistencies.push(format!(
                                "{cell}: decide says allowed={}, allowed_ports ({ports}) says {}",
                                decision.allowed,
                                ports.contains(protocol, port)
                            ));
                        }
                        if decision.allowed
                            != (decision.egress.allows() && decision.ingress.allows())
                        {
                            inconsistencies.push(format!(
                                "{cell}: allowed={} contradicts its reasons {decision:?}",
                                decision.allowed
                            ));
                        }
                        if let Some(probe) = probe_index(protocol, port) {
                            grid.set(i, j, probe, decision.allowed);
                        }
                    }
                }
            }
        }
        Observation {
            grid,
            inconsistencies,
        }
    }

    /// Compares the engine with `expected` over the whole truth table (every ordered pair of
    /// subjects, ports 80/81, TCP/UDP/SCTP); on any mismatch, explains it with upstream-style
    /// grids. `expected` must have had [`Reachability::allow_loopback`] applied (cases have).
    pub fn check(&self, expected: &Reachability) -> Result<(), String> {
        let observed = self.observe();
        let wrong = expected.grid.differences(&observed.grid);
        if wrong.is_empty() && observed.inconsistencies.is_empty() {
            return Ok(());
        }
        let analysis = self.analysis();
        let mut report = String::from("policies:");
        for (id, policy) in self.cluster.policies.iter_enumerated() {
            let _ = write!(report, " #{id} {}", policy.qualified_name());
        }
        report.push('\n');
        for (probe, &(protocol, port)) in PROBES.iter().enumerate() {
            let cells: Vec<&(usize, usize, usize)> =
                wrong.iter().filter(|(_, _, p)| *p == probe).collect();
            if cells.is_empty() {
                continue;
            }
            let g = &expected.grid;
            let _ = writeln!(
                report,
                "\n{protocol}/{port}: {} wrong (. allowed, X denied, - not a connection)",
                cells.len()
            );
            let _ = writeln!(
                report,
                "expected:\n{}",
                g.render(probe, |v| mark(v, '.', 'X'))
            );
            let _ = writeln!(
                report,
                "observed:\n{}",
                observed.grid.render(probe, |v| mark(v, '.', 'X'))
            );
            let comparison = g.zip(&observed.grid, |e, o| e == o);
            let _ = writeln!(
                report,
                "comparison (X = wrong):\n{}",
                comparison.render(probe, |v| mark(v, '.', 'X'))
            );
            for &&(i, j, _) in &cells {
                let (src, dst) = (&g.subjects[i], &g.subjects[j]);
                let decision = analysis.decide(src.subject, dst.subject, protocol, port);
                let _ = writeln!(
                    report,
                    "  {} -> {}: expected {}, engine says {} (egress: {:?}; ingress: {:?})",
                    src.label,
                    dst.label,
                    word(g.get(i, j, probe) == Some(true)),
                    word(decision.allowed),
                    decision.egress,
                    decision.ingress
                );
            }
        }
        if !observed.inconsistencies.is_empty() {
            let _ = writeln!(report, "\nthe engine contradicts itself:");
            for line in &observed.inconsistencies {
                let _ = writeln!(report, "  {line}");
            }
        }
        Err(format!("truth table mismatch\n{report}"))
    }
}

fn word(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "denied" }
}

fn mark(value: Option<bool>, yes: char, no: char) -> char {
    match value {
        Some(true) => yes,
        Some(false) => no,
        None => '-',
    }
}

fn probe_index(protocol: Protocol, port: u16) -> Option<usize> {
    PROBES.iter().position(|&p| p == (protocol, port))
}

pub struct Observation {
    pub grid: Grid,
    pub inconsistencies: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Truth tables.

/// One boolean per (source, destination, probe); `None` where both sides are outside addresses
/// (not a connection NetworkPolicy could see).
#[derive(Clone, Debug)]
pub struct Grid {
    subjects: Vec<SubjectInfo>,
    cells: Vec<Option<bool>>,
}

impl Grid {
    fn new(subjects: Vec<SubjectInfo>, default: bool) -> Self {
        let mut cells = Vec::with_capacity(subjects.len() * subjects.len() * PROBES.len());
        for src in &subjects {
            for dst in &subjects {
                let connection = src.namespace.is_some() || dst.namespace.is_some();
                cells.extend([connection.then_some(default); PROBES.len()]);
            }
        }
        Self { subjects, cells }
    }

    fn index(&self, src: usize, dst: usize, probe: usize) -> usize {
        (src * self.subjects.len() + dst) * PROBES.len() + probe
    }

    fn get(&self, src: usize, dst: usize, probe: usize) -> Option<bool> {
        self.cells[self.index(src, dst, probe)]
    }

    fn set(&mut self, src: usize, dst: usize, probe: usize, value: bool) {
        let index = self.index(src, dst, probe);
        if let Some(cell) = &mut self.cells[index] {
            *cell = value;
        }
    }

    fn select(&self, pattern: &str) -> Vec<usize> {
        let found: Vec<usize> = (0..self.subjects.len())
            .filter(|&i| self.subjects[i].matches(pattern))
            .collect();
        assert!(!found.is_empty(), "pattern {pattern:?} matches no subject");
        found
    }

    fn zip(&self, other: &Grid, f: impl Fn(bool, bool) -> bool) -> Grid {
        let cells = self
            .cells
            .iter()
            .zip(&other.cells)
            .map(|(a, b)| a.zip(*b).map(|(a, b)| f(a, b)))
            .collect();
        Grid {
            subjects: self.subjects.clone(),
            cells,
        }
    }

    /// (source, destination, probe) of every cell where the two tables differ.
    fn differences(&self, other: &Grid) -> Vec<(usize, usize, usize)> {
        self.cells_where(other, |a, b| a == b)
    }

    fn cells_where(
        &self,
        other: &Grid,
        fine: impl Fn(bool, bool) -> bool,
    ) -> Vec<(usize, usize, usize)> {
        assert_eq!(
            self.cells.len(),
            other.cells.len(),
            "tables of different worlds"
        );
        let n = self.subjects.len();
        let mut out = Vec::new();
        for src in 0..n {
            for dst in 0..n {
                for probe in 0..PROBES.len() {
                    if let (Some(a), Some(b)) =
                        (self.get(src, dst, probe), other.get(src, dst, probe))
                        && !fine(a, b)
                    {
                        out.push((src, dst, probe));
                    }
                }
            }
        }
        out
    }

    /// Cells where `fine(self, other)` fails, named `TCP/80 x/a -> y/b (true -> false)`.
    pub fn violations(&self, other: &Grid, fine: impl Fn(bool, bool) -> bool) -> Vec<String> {
        self.cells_where(other, &fine)
            .into_iter()
            .map(|(src, dst, probe)| {
                let (protocol, port) = PROBES[probe];
                format!(
                    "{protocol}/{port} {} -> {} ({:?} -> {:?})",
                    self.subjects[src].label,
                    self.subjects[dst].label,
                    self.get(src, dst, probe),
                    other.get(src, dst, probe)
                )
            })
            .collect()
    }

    /// Upstream's truth-table layout: sources down, destinations across.
    fn render(&self, probe: usize, glyph: impl Fn(Option<bool>) -> char) -> String {
        let width = self
            .subjects
            .iter()
            .map(|s| s.label.len())
            .max()
            .unwrap_or(1);
        let mut out = format!("{:width$}", "");
        for dst in &self.subjects {
            let _ = write!(out, " {}", dst.label);
        }
        for (src_index, src) in self.subjects.iter().enumerate() {
            let mut line = format!("{:width$}", src.label);
            for (dst_index, dst) in self.subjects.iter().enumerate() {
                let g = glyph(self.get(src_index, dst_index, probe));
                let _ = write!(line, " {g:<w$}", w = dst.label.len());
            }
            let _ = write!(out, "\n{}", line.trim_end());
        }
        out
    }
}

/// Probes an expectation applies to.
pub fn at(protocol: Protocol, port: u16) -> Vec<(Protocol, u16)> {
    vec![(protocol, port)]
}

pub fn at_protocol(protocol: Protocol) -> Vec<(Protocol, u16)> {
    PORTS.iter().map(|&port| (protocol, port)).collect()
}

/// Expected connectivity, built like upstream's `Reachability`: start from a default and
/// override with later calls. Each call applies to every probe unless scoped with [`Self::on`].
#[derive(Clone, Debug)]
pub struct Reachability {
    grid: Grid,
    scope: Vec<(Protocol, u16)>,
}

impl Reachability {
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The expectation for one cell: `src` and `dst` are subject labels (`x/a`,
    /// `x/deployment/web`, `@203.0.113.9`). `None` for a label the table does not have, a
    /// port it does not cover, or two outside addresses (not a connection).
    pub fn get(&self, src: &str, dst: &str, protocol: Protocol, port: u16) -> Option<bool> {
        let index = |label: &str| self.grid.subjects.iter().position(|s| s.label == label);
        self.grid
            .get(index(src)?, index(dst)?, probe_index(protocol, port)?)
    }

    /// Applies the expectations set inside `expectations` only to `probes`.
    pub fn on(
        &mut self,
        probes: Vec<(Protocol, u16)>,
        expectations: impl FnOnce(&mut Self),
    ) -> &mut Self {
        let outer = std::mem::replace(&mut self.scope, probes);
        expectations(self);
        self.scope = outer;
        self
    }

    /// Every connection from a subject matching `from` to one matching `to` (patterns: `*`,
    /// `*/*`, `@*`, `ns/*`, `*/name`, or an exact label like `x/a` or `@203.0.113.9`).
    pub fn expect_peer(&mut self, from: &str, to: &str, allowed: bool) -> &mut Self {
        let probes: Vec<usize> = self
            .scope
            .iter()
            .map(|&(protocol, port)| {
                probe_index(protocol, port)
                    .unwrap_or_else(|| panic!("{protocol}/{port} is not a probed port"))
            })
            .collect();
        for src in self.grid.select(from) {
            for dst in self.grid.select(to) {
                for &probe in &probes {
                    self.grid.set(src, dst, probe, allowed);
                }
            }
        }
        self
    }

    /// One connection, both sides named exactly.
    pub fn expect(&mut self, from: &str, to: &str, allowed: bool) -> &mut Self {
        for name in [from, to] {
            assert!(
                self.grid.subjects.iter().any(|s| s.label == name),
                "{name:?} is not a subject label"
            );
        }
        self.expect_peer(from, to, allowed)
    }

    pub fn expect_all_ingress(&mut self, to: &str, allowed: bool) -> &mut Self {
        self.expect_peer("*", to, allowed)
    }

    pub fn expect_all_egress(&mut self, from: &str, allowed: bool) -> &mut Self {
        self.expect_peer(from, "*", allowed)
    }

    /// A single pod reaches itself on every probe whatever the policies say; a workload of
    /// several replicas does not (its pods are distinct). Every case has this applied last.
    pub fn allow_loopback(&mut self) -> &mut Self {
        for i in 0..self.grid.subjects.len() {
            if self.grid.subjects[i].single_pod {
                for probe in 0..PROBES.len() {
                    self.grid.set(i, i, probe, true);
                }
            }
        }
        self
    }
}
