//! `palisade explain`: every policy in plain words and as a table, then isolation per namespace.

use crate::input::{self, ClusterArgs};
use clap::{Args, ValueEnum};
use palisade_engine::{Analysis, Direction, EndpointId, PolicyId, Rule};
use serde_json::{Value, json};
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
    peer_endpoints: Vec<String>,
    ports: String,
}

struct PolicyView {
    name: String,
    origin: Option<String>,
    selector: String,
    selected: Vec<String>,
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
    let policies: Vec<PolicyView> = (0..analysis.cluster().policies.len())
        .map(|id| {
            let origin = input.loaded.policy_origins.get(id).map(ToString::to_string);
            policy_view(analysis, id, origin)
        })
        .collect();
    let namespaces = namespace_views(analysis);
    match args.output {
        ExplainFormat::Text => write_text(out, &policies, &namespaces)?,
        ExplainFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &to_json(&policies, &namespaces))?;
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
        selected: endpoint_names(analysis, &analysis.selected_endpoints(id)),
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
        (0..analysis.cluster().endpoints.len()).collect()
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
        peer_endpoints: endpoint_names(analysis, &peer_endpoints),
        ports,
    }
}

fn namespace_views(analysis: &Analysis) -> Vec<NamespaceView> {
    let cluster = analysis.cluster();
    cluster
        .namespaces
        .iter()
        .map(|ns| {
            let members: Vec<EndpointId> = (0..cluster.endpoints.len())
                .filter(|&id| cluster.endpoints[id].namespace == ns.name)
                .collect();
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
    match names.len() {
        0 => "none".to_string(),
        n if n <= SHOWN_NAMES => names.join(", "),
        n => format!(
            "{} and {} more",
            names[..SHOWN_NAMES].join(", "),
            n - SHOWN_NAMES
        ),
    }
}

fn write_text(
    out: &mut dyn Write,
    policies: &[PolicyView],
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
            list_or_none(&policy.selected)
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
                    list_or_none(&rule.peer_endpoints)
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

fn to_json(policies: &[PolicyView], namespaces: &[NamespaceView]) -> Value {
    json!({
        "policies": policies.iter().map(|p| json!({
            "name": p.name,
            "origin": p.origin,
            "selects": p.selector,
            "selected": p.selected,
            "isolates": p.isolates.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "rules": p.rules.iter().map(|r| json!({
                "direction": r.direction.to_string(),
                "rule": r.number,
                "effective": r.effective,
                "peers": r.peers,
                "peer_endpoints": r.peer_endpoints,
                "ports": r.ports,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "namespaces": namespaces.iter().map(|ns| json!({
            "name": ns.name,
            "endpoints": ns.endpoints,
            "not_isolated_ingress": ns.not_isolated[0],
            "not_isolated_egress": ns.not_isolated[1],
        })).collect::<Vec<_>>(),
    })
}
