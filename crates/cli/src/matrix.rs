//! `palisade matrix`: every ordered pair of endpoints, per port and protocol, streamed.

use crate::input::{self, ClusterArgs};
use crate::progress::Progress;
use clap::{Args, ValueEnum};
use palisade_engine::{Analysis, Connectivity, Protocol, Subject, Vertex};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MatrixFormat {
    Table,
    Tsv,
    Json,
    /// One JSON object per line.
    Jsonl,
    Csv,
    Md,
    Dot,
    /// One row per ordered pair with its whole allowed port set: `src dst allowed`.
    Pairs,
    /// Counts per namespace pair and per class of identical pods; for clusters of any size.
    Summary,
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
    /// Manifest files or directories (recursive), or `-` for stdin; none: the live cluster.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
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
    /// Endpoints of one class decide alike.
    key: Vertex,
    ports: Vec<(u16, Protocol)>,
}

impl Node {
    fn is_external(&self) -> bool {
        matches!(self.key, Vertex::External(_))
    }
}

struct Pair<'a> {
    src: &'a Node,
    dst: &'a Node,
    loopback: bool,
    /// The whole allowed port set, as `PortSet` prints it.
    allowed: String,
    /// (port, protocol, allowed), ports ascending.
    results: Vec<(u16, Protocol, bool)>,
}

pub fn run(args: &MatrixArgs, namespace: &str, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let progress = Progress::new();
    let started = std::time::Instant::now();
    let input = input::load(&args.paths, &args.cluster, namespace, &progress)?;
    let analysis = &input.analysis;
    tracing::info!(elapsed = ?started.elapsed(), classes = analysis.class_count(), "loaded and indexed");
    progress.step("computing connectivity");
    let started = std::time::Instant::now();
    let connectivity = analysis.connectivity();
    tracing::info!(elapsed = ?started.elapsed(), tables = ?connectivity.table_sizes(), "connectivity");
    let nodes = nodes(analysis, &connectivity, args);
    if args.output == MatrixFormat::Summary {
        progress.step("summarising");
        let started = std::time::Instant::now();
        crate::summary::write(
            out,
            analysis,
            &connectivity,
            args.external == ExternalMode::Auto,
        )?;
        tracing::info!(elapsed = ?started.elapsed(), "summary");
        progress.finish();
        return Ok(exit_code(input.had_errors));
    }
    let mut writer = MatrixWriter::new(args.output, out, &nodes)?;
    let bar = progress.bar("writing pairs", nodes.len() as u64);
    let every_port = palisade_engine::PortSet::all();
    for src in &nodes {
        for dst in &nodes {
            if src.is_external() && dst.is_external() {
                continue;
            }
            let loopback = analysis.is_loopback(src.subject, dst.subject);
            let allowed = if loopback {
                &every_port
            } else {
                connectivity.allowed(src.key, dst.key)
            };
            writer.pair(&Pair {
                src,
                dst,
                loopback,
                allowed: allowed.to_string(),
                results: dst
                    .ports
                    .iter()
                    .map(|&(port, proto)| (port, proto, allowed.contains(proto, port)))
                    .collect(),
            })?;
        }
        bar.inc(1);
    }
    writer.finish()?;
    progress.finish();
    Ok(exit_code(input.had_errors))
}

fn exit_code(had_errors: bool) -> ExitCode {
    if had_errors {
        ExitCode::from(crate::EXIT_ERRORS)
    } else {
        ExitCode::SUCCESS
    }
}

fn nodes(analysis: &Analysis, connectivity: &Connectivity, args: &MatrixArgs) -> Vec<Node> {
    let cluster = analysis.cluster();
    let probe = analysis.ports_to_probe();
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
        .iter_enumerated()
        .map(|(id, ep)| {
            let declared: Vec<(u16, Protocol)> = probe.for_endpoint(ep).into_iter().collect();
            Node {
                name: format!("{}/{}", ep.namespace, ep.name),
                group: ep.namespace.clone(),
                subject: Subject::Endpoint(id),
                key: Vertex::Class(analysis.class_of(id)),
                ports: choose(declared),
            }
        })
        .collect();
    if args.external == ExternalMode::Auto {
        for (index, range) in connectivity.externals().iter().enumerate() {
            nodes.push(Node {
                name: range.label(),
                group: "outside the cluster".to_string(),
                subject: Subject::External(range.first),
                key: Vertex::External(index),
                ports: choose(probe.for_outside().iter().copied().collect()),
            });
        }
    }
    nodes
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
            MatrixFormat::Pairs => writeln!(writer.out, "src\tdst\tallowed")?,
            MatrixFormat::Jsonl | MatrixFormat::Summary => {}
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
                        let shape = if node.is_external() {
                            " [shape=ellipse]"
                        } else {
                            ""
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
            MatrixFormat::Pairs => writeln!(self.out, "{src}\t{dst}\t{}", pair.allowed)?,
            MatrixFormat::Summary => {}
            MatrixFormat::Json | MatrixFormat::Jsonl => {
                for &(port, proto, allowed) in &pair.results {
                    let row = serde_json::json!({
                        "src": src, "dst": dst, "port": port, "protocol": proto,
                        "allowed": allowed, "loopback": pair.loopback,
                    });
                    if self.format == MatrixFormat::Jsonl {
                        writeln!(self.out, "{row}")?;
                        continue;
                    }
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
