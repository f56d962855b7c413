//! `palisade matrix`: every ordered pair of endpoints, per port and protocol, streamed.

use crate::input;
use clap::{Args, ValueEnum};
use palisade_engine::{Analysis, ClassId, PortRef, PortSet, Protocol, Subject};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MatrixFormat {
    Table,
    Tsv,
    Json,
    Csv,
    Md,
    Dot,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExternalMode {
    /// One endpoint per stretch of outside addresses that the ipBlocks treat alike.
    Auto,
    /// Pods and workloads only.
    None,
}

#[derive(Args)]
pub struct MatrixArgs {
    /// Manifest files or directories (recursive), or `-` for stdin.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Ports to probe, e.g. `80,81` (default: each destination's declared container ports).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Vec<u16>,
    /// Protocols, e.g. `TCP,UDP,SCTP` (with --port the default is TCP; without, this filters the
    /// declared ports).
    #[arg(long, value_delimiter = ',', value_parser = crate::check::parse_protocol)]
    pub protocol: Vec<Protocol>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: MatrixFormat,
    #[arg(long, value_enum, default_value = "auto")]
    pub external: ExternalMode,
}

/// One row or column of the matrix.
struct Node {
    name: String,
    /// The namespace, or "outside the cluster".
    group: String,
    subject: Subject,
    /// What a class-level cache can key on: endpoints that share a class decide alike.
    key: NodeKey,
    ports: Vec<(u16, Protocol)>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum NodeKey {
    Class(ClassId),
    External(IpAddr),
}

struct Pair<'a> {
    src: &'a Node,
    dst: &'a Node,
    loopback: bool,
    /// (port, protocol, allowed), ports ascending.
    results: Vec<(u16, Protocol, bool)>,
}

pub fn run(args: &MatrixArgs, namespace: &str, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let input = input::load(&args.paths, namespace);
    let analysis = &input.analysis;
    let nodes = nodes(analysis, args);
    let mut writer = MatrixWriter::new(args.output, out, &nodes)?;
    let mut cache: HashMap<(NodeKey, NodeKey), PortSet> = HashMap::new();
    for src in &nodes {
        for dst in &nodes {
            if matches!(src.key, NodeKey::External(_)) && matches!(dst.key, NodeKey::External(_)) {
                continue;
            }
            let loopback = analysis.is_loopback(src.subject, dst.subject);
            let allowed = if loopback {
                PortSet::all()
            } else {
                cache
                    .entry((src.key, dst.key))
                    .or_insert_with(|| analysis.allowed_ports(src.subject, dst.subject))
                    .clone()
            };
            let results = dst
                .ports
                .iter()
                .map(|&(port, proto)| (port, proto, allowed.contains(proto, port)))
                .collect();
            writer.pair(&Pair {
                src,
                dst,
                loopback,
                results,
            })?;
        }
    }
    writer.finish()?;
    Ok(if input.had_errors {
        ExitCode::from(crate::EXIT_ERRORS)
    } else {
        ExitCode::SUCCESS
    })
}

fn nodes(analysis: &Analysis, args: &MatrixArgs) -> Vec<Node> {
    let cluster = analysis.cluster();
    let rule_ports = mentioned_ports(analysis, false);
    let external_ports = {
        let ports = mentioned_ports(analysis, true);
        if ports.is_empty() {
            rule_ports.clone()
        } else {
            ports
        }
    };
    let choose = |declared: Vec<(u16, Protocol)>| -> Vec<(u16, Protocol)> {
        let mut ports: Vec<(u16, Protocol)> = if !args.port.is_empty() {
            let protocols = if args.protocol.is_empty() {
                vec![Protocol::Tcp]
            } else {
                args.protocol.clone()
            };
            args.port
                .iter()
                .flat_map(|&p| protocols.iter().map(move |&proto| (p, proto)))
                .collect()
        } else {
            declared
                .into_iter()
                .filter(|(_, proto)| args.protocol.is_empty() || args.protocol.contains(proto))
                .collect()
        };
        ports.sort();
        ports.dedup();
        ports
    };
    let mut nodes: Vec<Node> = cluster
        .endpoints
        .iter()
        .enumerate()
        .map(|(id, ep)| {
            let declared: Vec<(u16, Protocol)> = if ep.ports.is_empty() {
                rule_ports.iter().copied().collect()
            } else {
                ep.ports.iter().map(|p| (p.port, p.protocol)).collect()
            };
            Node {
                name: format!("{}/{}", ep.namespace, ep.name),
                group: ep.namespace.clone(),
                subject: Subject::Endpoint(id),
                key: NodeKey::Class(analysis.class_of(id)),
                ports: choose(declared),
            }
        })
        .collect();
    if args.external == ExternalMode::Auto {
        for range in analysis.external_ranges() {
            nodes.push(Node {
                name: range.label(),
                group: "outside the cluster".to_string(),
                subject: Subject::External(range.first),
                key: NodeKey::External(range.first),
                ports: choose(external_ports.iter().copied().collect()),
            });
        }
    }
    nodes
}

/// Numeric ports that policy rules name (the first port of a range), for destinations that
/// declare none. With `ip_block_rules_only`, only rules that have an ipBlock peer count.
fn mentioned_ports(analysis: &Analysis, ip_block_rules_only: bool) -> BTreeSet<(u16, Protocol)> {
    analysis
        .cluster()
        .policies
        .iter()
        .flat_map(|p| p.ingress.iter().chain(&p.egress))
        .filter(|rule| {
            !ip_block_rules_only
                || rule
                    .peers
                    .iter()
                    .any(|peer| matches!(peer, palisade_engine::Peer::IpBlock(_)))
        })
        .flat_map(|rule| &rule.ports)
        .filter_map(|entry| match entry.port {
            Some(PortRef::Number(port)) => Some((port, entry.protocol)),
            _ => None,
        })
        .collect()
}

struct MatrixWriter<'w> {
    format: MatrixFormat,
    out: &'w mut dyn Write,
    rows_written: usize,
    name_width: usize,
    group: Option<String>,
}

impl<'w> MatrixWriter<'w> {
    fn new(format: MatrixFormat, out: &'w mut dyn Write, nodes: &[Node]) -> std::io::Result<Self> {
        let name_width =
            nodes.iter().map(|n| n.name.len()).max().unwrap_or(0) + " (loopback)".len();
        let writer = Self {
            format,
            out,
            rows_written: 0,
            name_width,
            group: None,
        };
        match format {
            MatrixFormat::Tsv => writeln!(writer.out, "src\tdst\tport\tprotocol\tallowed")?,
            MatrixFormat::Csv => writeln!(writer.out, "src,dst,port,protocol,allowed")?,
            MatrixFormat::Json => write!(writer.out, "[")?,
            MatrixFormat::Md => {
                writeln!(writer.out, "| source | destination | allowed | denied |")?;
                writeln!(writer.out, "| --- | --- | --- | --- |")?;
            }
            MatrixFormat::Table => writeln!(
                writer.out,
                "{:w$}  {:w$}  {:24}  DENIED",
                "SOURCE",
                "DESTINATION",
                "ALLOWED",
                w = name_width
            )?,
            MatrixFormat::Dot => {
                writeln!(writer.out, "digraph palisade {{")?;
                writeln!(writer.out, "  rankdir=LR;")?;
                writeln!(writer.out, "  node [shape=box];")?;
                let mut groups: Vec<&str> = nodes.iter().map(|n| n.group.as_str()).collect();
                groups.dedup();
                for (i, group) in groups.iter().enumerate() {
                    writeln!(writer.out, "  subgraph cluster_{i} {{")?;
                    writeln!(writer.out, "    label={};", dot_quote(group))?;
                    for node in nodes.iter().filter(|n| n.group == *group) {
                        let shape = match node.key {
                            NodeKey::External(_) => " [shape=ellipse]",
                            NodeKey::Class(_) => "",
                        };
                        writeln!(writer.out, "    {}{shape};", dot_quote(&node.name))?;
                    }
                    writeln!(writer.out, "  }}")?;
                }
            }
        }
        Ok(writer)
    }

    fn pair(&mut self, pair: &Pair<'_>) -> std::io::Result<()> {
        let (src, dst) = (&pair.src.name, &pair.dst.name);
        match self.format {
            MatrixFormat::Tsv | MatrixFormat::Csv => {
                let sep = if self.format == MatrixFormat::Tsv {
                    '\t'
                } else {
                    ','
                };
                for &(port, proto, allowed) in &pair.results {
                    writeln!(
                        self.out,
                        "{src}{sep}{dst}{sep}{port}{sep}{proto}{sep}{allowed}"
                    )?;
                }
            }
            MatrixFormat::Json => {
                for &(port, proto, allowed) in &pair.results {
                    let row = serde_json::json!({
                        "src": src, "dst": dst, "port": port, "protocol": proto,
                        "allowed": allowed, "loopback": pair.loopback,
                    });
                    let sep = if self.rows_written == 0 {
                        "\n  "
                    } else {
                        ",\n  "
                    };
                    write!(self.out, "{sep}{row}")?;
                    self.rows_written += 1;
                }
            }
            MatrixFormat::Table | MatrixFormat::Md => {
                if pair.results.is_empty() {
                    return Ok(());
                }
                let (allowed, denied) = split_ports(&pair.results);
                let dst_label = if pair.loopback {
                    format!("{dst} (loopback)")
                } else {
                    dst.clone()
                };
                if self.format == MatrixFormat::Md {
                    writeln!(self.out, "| {src} | {dst_label} | {allowed} | {denied} |")?;
                } else {
                    if self.group.as_deref() != Some(&pair.src.group) {
                        writeln!(self.out, "# from {}", pair.src.group)?;
                        self.group = Some(pair.src.group.clone());
                    }
                    let allowed = if allowed.is_empty() {
                        "-".to_string()
                    } else {
                        allowed
                    };
                    let denied = if denied.is_empty() {
                        "-".to_string()
                    } else {
                        denied
                    };
                    writeln!(
                        self.out,
                        "{src:w$}  {dst_label:w$}  {allowed:24}  {denied}",
                        w = self.name_width
                    )?;
                }
            }
            MatrixFormat::Dot => {
                let (allowed, _) = split_ports(&pair.results);
                if !pair.loopback && !allowed.is_empty() {
                    writeln!(
                        self.out,
                        "  {} -> {} [label={}];",
                        dot_quote(src),
                        dot_quote(dst),
                        dot_quote(&allowed)
                    )?;
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> std::io::Result<()> {
        match self.format {
            MatrixFormat::Json => writeln!(self.out, "\n]"),
            MatrixFormat::Dot => writeln!(self.out, "}}"),
            _ => Ok(()),
        }
    }
}

/// ("80/TCP,443/TCP", "8080/TCP"): allowed and denied ports of one pair.
fn split_ports(results: &[(u16, Protocol, bool)]) -> (String, String) {
    let render = |want: bool| {
        results
            .iter()
            .filter(|r| r.2 == want)
            .map(|(port, proto, _)| format!("{port}/{proto}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    (render(true), render(false))
}

fn dot_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
