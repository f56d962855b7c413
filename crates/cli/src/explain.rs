//! `palisade explain`: every policy in plain words and as a table, then isolation per namespace.

use crate::input::{self, ClusterArgs};
use clap::{Args, ValueEnum};
use palisade_engine::{Analysis, Direction, EndpointId, PolicyId, Rule};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum ExplainFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// Manifest files or directories (recursive), or `-` for stdin; none: the live cluster.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: ExplainFormat,
}

struct RuleView {
    direction: Direction,
    number: usize,
    /// Whether the policy's policyTypes include this direction (otherwise the rule is ignored).
    effective: bool,
    peers: String,
    peer_endpoints: Vec<EndpointId>,
    ports: String,
}

struct PolicyView {
    name: String,
    origin: Option<String>,
    selector: String,
    selected: Vec<EndpointId>,
    isolates: Vec<Direction>,
    rules: Vec<RuleView>,
}

struct NamespaceView {
    name: String,
    endpoints: usize,
    not_isolated: [Vec<String>; 2],
}

pub fn run(args: &ExplainArgs, namespace: &str, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let input = input::load(
        &args.paths,
        &args.cluster,
        namespace,
        &crate::progress::Progress::new(),
    )?;
    let analysis = &input.analysis;
    // One policy at a time, written as it is described: a rule's peers may be every pod of
    // the cluster, and 10k policies of them do not fit in memory at once.
    let policies = analysis.cluster().policies.keys().map(|id| {
        let origin = input.loaded.policy_origins.get(id).map(ToString::to_string);
        policy_view(analysis, id, origin)
    });
    let namespaces = namespace_views(analysis);
    match args.output {
        ExplainFormat::Text => write_text(out, analysis, policies, &namespaces)?,
        ExplainFormat::Json => {
            let document = JsonDocument {
                policies: Lazy(RefCell::new(Some(
                    policies.map(|p| policy_json(analysis, &p, usize::MAX)),
                ))),
                namespaces: &namespaces,
            };
            document.serialize(&mut serde_json::Serializer::pretty(&mut *out))?;
            writeln!(out)?;
        }
    }
    Ok(if input.had_errors {
        ExitCode::from(crate::EXIT_ERRORS)
    } else {
        ExitCode::SUCCESS
    })
}

fn endpoint_names(analysis: &Analysis, ids: &[EndpointId]) -> Vec<String> {
    ids.iter()
        .map(|&id| analysis.endpoint(id).qualified_name())
        .collect()
}

fn policy_view(analysis: &Analysis, id: PolicyId, origin: Option<String>) -> PolicyView {
    let policy = analysis.policy(id);
    let selector = if policy.pod_selector.selects_everything() {
        format!("all pods in namespace {}", policy.namespace)
    } else {
        format!(
            "pods with {} in namespace {}",
            policy.pod_selector, policy.namespace
        )
    };
    let mut rules = Vec::new();
    for direction in [Direction::Ingress, Direction::Egress] {
        for (index, rule) in policy.rules(direction).iter().enumerate() {
            rules.push(rule_view(analysis, id, direction, index, rule));
        }
    }
    PolicyView {
        name: policy.qualified_name(),
        origin,
        selector,
        selected: analysis.selected_endpoints(id),
        isolates: [Direction::Ingress, Direction::Egress]
            .into_iter()
            .filter(|&d| policy.isolates(d))
            .collect(),
        rules,
    }
}

fn rule_view(
    analysis: &Analysis,
    policy_id: PolicyId,
    direction: Direction,
    index: usize,
    rule: &Rule,
) -> RuleView {
    let policy = analysis.policy(policy_id);
    let peers = if rule.peers.is_empty() {
        match direction {
            Direction::Ingress => "every source".to_string(),
            Direction::Egress => "every destination".to_string(),
        }
    } else {
        rule.peers
            .iter()
            .map(|p| p.describe(&policy.namespace))
            .collect::<Vec<_>>()
            .join("; or ")
    };
    let mut peer_endpoints: Vec<EndpointId> = if rule.peers.is_empty() {
        analysis.cluster().endpoints.keys().collect()
    } else {
        rule.peers
            .iter()
            .flat_map(|p| analysis.peer_endpoints(policy_id, p))
            .collect()
    };
    peer_endpoints.sort_unstable();
    peer_endpoints.dedup();
    let ports = if rule.ports.is_empty() {
        "every port".to_string()
    } else {
        rule.ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    RuleView {
        direction,
        number: index + 1,
        effective: policy.isolates(direction),
        peers,
        peer_endpoints,
        ports,
    }
}

fn namespace_views(analysis: &Analysis) -> Vec<NamespaceView> {
    let cluster = analysis.cluster();
    let mut members_of: HashMap<&str, Vec<EndpointId>> = HashMap::new();
    for (id, endpoint) in cluster.endpoints.iter_enumerated() {
        members_of
            .entry(endpoint.namespace.as_str())
            .or_default()
            .push(id);
    }
    cluster
        .namespaces
        .iter()
        .map(|ns| {
            let members = members_of.remove(ns.name.as_str()).unwrap_or_default();
            let not_isolated = [Direction::Ingress, Direction::Egress].map(|direction| {
                let ids: Vec<EndpointId> = members
                    .iter()
                    .copied()
                    .filter(|&id| {
                        !analysis.endpoint(id).host_network
                            && analysis.isolating_policies(id, direction).is_empty()
                    })
                    .collect();
                endpoint_names(analysis, &ids)
            });
            NamespaceView {
                name: ns.name.clone(),
                endpoints: members.len(),
                not_isolated,
            }
        })
        .collect()
}

/// Names shown in a text list before the rest is counted; `-o json` lists them all.
const SHOWN_NAMES: usize = 10;

fn list_or_none(names: &[String]) -> String {
    let shown = &names[..names.len().min(SHOWN_NAMES)];
    listed(shown.to_vec(), names.len())
}

/// The first endpoints by name and how many more: only those shown are named.
fn list_endpoints(analysis: &Analysis, ids: &[EndpointId]) -> String {
    let shown = &ids[..ids.len().min(SHOWN_NAMES)];
    listed(endpoint_names(analysis, shown), ids.len())
}

fn listed(shown: Vec<String>, total: usize) -> String {
    match total {
        0 => "none".to_string(),
        n if n <= SHOWN_NAMES => shown.join(", "),
        n => format!("{} and {} more", shown.join(", "), n - SHOWN_NAMES),
    }
}

fn write_text(
    out: &mut dyn Write,
    analysis: &Analysis,
    policies: impl Iterator<Item = PolicyView>,
    namespaces: &[NamespaceView],
) -> std::io::Result<()> {
    for policy in policies {
        match &policy.origin {
            Some(origin) => writeln!(out, "Policy {}  ({origin})", policy.name)?,
            None => writeln!(out, "Policy {}", policy.name)?,
        }
        writeln!(
            out,
            "  selects {}: {}",
            policy.selector,
            list_endpoints(analysis, &policy.selected)
        )?;
        for direction in [Direction::Ingress, Direction::Egress] {
            let rules: Vec<&RuleView> = policy
                .rules
                .iter()
                .filter(|r| r.direction == direction)
                .collect();
            let (verb, none) = match direction {
                Direction::Ingress => ("accept connections", "accept no connection"),
                Direction::Egress => ("open connections", "open no connection"),
            };
            if policy.isolates.contains(&direction) {
                if rules.is_empty() {
                    writeln!(
                        out,
                        "  {direction}: isolates them; by itself lets them {none}"
                    )?;
                } else {
                    writeln!(out, "  {direction}: isolates them; lets them {verb}:")?;
                }
            } else if !rules.is_empty() {
                writeln!(
                    out,
                    "  {direction}: NOT isolated by this policy (policyTypes omits it), so these rules are ignored:"
                )?;
            }
            for rule in rules {
                let prep = match direction {
                    Direction::Ingress => "from",
                    Direction::Egress => "to",
                };
                writeln!(
                    out,
                    "    rule {}: {prep} {}, on {}",
                    rule.number, rule.peers, rule.ports
                )?;
                writeln!(
                    out,
                    "      pods of this input it matches: {}",
                    list_endpoints(analysis, &rule.peer_endpoints)
                )?;
            }
        }
        writeln!(out)?;
        if policy.rules.is_empty() {
            continue;
        }
        writeln!(
            out,
            "  {:9}  {:4}  {:48}  PORTS",
            "DIRECTION", "RULE", "PEERS"
        )?;
        for rule in &policy.rules {
            let direction = if rule.effective {
                rule.direction.to_string()
            } else {
                format!("({})", rule.direction)
            };
            writeln!(
                out,
                "  {direction:9}  {:4}  {:48}  {}",
                rule.number, rule.peers, rule.ports
            )?;
        }
        writeln!(out)?;
    }
    writeln!(out, "Isolation per namespace")?;
    for ns in namespaces {
        writeln!(out, "  {} ({} endpoint(s))", ns.name, ns.endpoints)?;
        for (direction, names) in [Direction::Ingress, Direction::Egress]
            .iter()
            .zip(&ns.not_isolated)
        {
            writeln!(
                out,
                "    not isolated for {direction}: {}",
                list_or_none(names)
            )?;
        }
    }
    Ok(())
}

/// `-o json`: `{"namespaces": [...], "policies": [...]}` (keys in serde_json's order), the
/// policies serialized as they are described, one at a time.
struct JsonDocument<'n, I> {
    policies: Lazy<I>,
    namespaces: &'n [NamespaceView],
}

impl<I: Iterator<Item = Value>> Serialize for JsonDocument<'_, I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let namespaces: Vec<Value> = self
            .namespaces
            .iter()
            .map(|ns| {
                json!({
                    "name": ns.name,
                    "endpoints": ns.endpoints,
                    "not_isolated_ingress": ns.not_isolated[0],
                    "not_isolated_egress": ns.not_isolated[1],
                })
            })
            .collect();
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("namespaces", &namespaces)?;
        map.serialize_entry("policies", &self.policies)?;
        map.end()
    }
}

/// A sequence serialized from an iterator, each item made only when it is written.
struct Lazy<I>(RefCell<Option<I>>);

impl<I: Iterator<Item = Value>> Serialize for Lazy<I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.borrow_mut().take().into_iter().flatten())
    }
}

/// One policy as `-o json` describes it, its endpoint lists cut to `names` names (then
/// `"… and N more"`): what the web page lists.
pub fn policy_document(
    analysis: &Analysis,
    id: PolicyId,
    origin: Option<String>,
    names: usize,
) -> Value {
    policy_json(analysis, &policy_view(analysis, id, origin), names)
}

fn policy_json(analysis: &Analysis, p: &PolicyView, names: usize) -> Value {
    let cut = |ids: &[EndpointId]| {
        let mut listed = endpoint_names(analysis, &ids[..ids.len().min(names)]);
        if ids.len() > names {
            listed.push(format!("… and {} more", ids.len() - names));
        }
        listed
    };
    json!({
        "name": p.name,
        "origin": p.origin,
        "selects": p.selector,
        "selected": cut(&p.selected),
        "isolates": p.isolates.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "rules": p.rules.iter().map(|r| json!({
            "direction": r.direction.to_string(),
            "rule": r.number,
            "effective": r.effective,
            "peers": r.peers,
            "peer_endpoints": cut(&r.peer_endpoints),
            "ports": r.ports,
        })).collect::<Vec<_>>(),
    })
}
