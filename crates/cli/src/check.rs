//! `palisade check SRC DST --port P`: one connection, decided with reasons on both sides.

use crate::describe::{side_json, side_text, subject_name};
use crate::input::{self, ClusterArgs};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use palisade_engine::{Analysis, Decision, Protocol, Subject};
use serde_json::{Value, json};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Source: `namespace/pod`, `namespace/kind/name` for a workload, or an IP address.
    pub src: String,
    /// Destination, in the same forms as the source.
    pub dst: String,
    /// Destination port (1-65535).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    #[arg(long, default_value = "TCP", value_parser = parse_protocol)]
    pub protocol: Protocol,
    /// Manifest files or directories (recursive), or `-` for stdin; none: the live cluster.
    pub paths: Vec<PathBuf>,
    /// The same as the trailing paths, kubectl style. Repeatable.
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: CheckFormat,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub fn parse_protocol(text: &str) -> Result<Protocol, String> {
    Protocol::parse(&text.to_ascii_uppercase())
        .ok_or_else(|| format!("expected TCP, UDP or SCTP, got {text:?}"))
}

pub fn run(args: &CheckArgs, namespace: &str, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let paths: Vec<PathBuf> = args.paths.iter().chain(&args.files).cloned().collect();
    let input = input::load(
        &paths,
        &args.cluster,
        namespace,
        &crate::progress::Progress::new(),
    )?;
    let analysis = &input.analysis;
    let answer = Answer::new(analysis, &args.src, &args.dst, args.protocol, args.port)?;
    let allowed = answer.decision.allowed;
    match args.output {
        CheckFormat::Text => {
            let (src_name, dst_name) = (&answer.src_name, &answer.dst_name);
            writeln!(
                out,
                "{}  {src_name} -> {dst_name}  {}/{}",
                answer.verdict(),
                args.port,
                args.protocol
            )?;
            writeln!(out, "  egress of {src_name}:")?;
            for line in side_text(analysis, &answer.decision.egress) {
                writeln!(out, "    {line}")?;
            }
            writeln!(out, "  ingress of {dst_name}:")?;
            for line in side_text(analysis, &answer.decision.ingress) {
                writeln!(out, "    {line}")?;
            }
        }
        CheckFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &answer.json(analysis, input.had_errors))?;
            writeln!(out)?;
        }
    }
    Ok(if input.had_errors {
        ExitCode::from(crate::EXIT_ERRORS)
    } else if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One connection decided: what `check` prints, and what the web page shows.
pub struct Answer {
    pub decision: Decision,
    pub src_name: String,
    pub dst_name: String,
    pub protocol: Protocol,
    pub port: u16,
}

impl Answer {
    /// Decides `src` → `dst` (names as `check` takes them) on one port.
    pub fn new(
        analysis: &Analysis,
        src: &str,
        dst: &str,
        protocol: Protocol,
        port: u16,
    ) -> anyhow::Result<Self> {
        let src = resolve(analysis, src).context("source")?;
        let dst = resolve(analysis, dst).context("destination")?;
        if matches!((src, dst), (Subject::External(_), Subject::External(_))) {
            bail!("both ends are outside the cluster: NetworkPolicy has nothing to say");
        }
        Ok(Self {
            decision: analysis.decide(src, dst, protocol, port),
            src_name: subject_name(analysis, src),
            dst_name: subject_name(analysis, dst),
            protocol,
            port,
        })
    }

    pub fn verdict(&self) -> &'static str {
        if self.decision.allowed {
            "ALLOWED"
        } else {
            "DENIED"
        }
    }

    /// The `-o json` document.
    pub fn json(&self, analysis: &Analysis, input_errors: bool) -> Value {
        json!({
            "allowed": self.decision.allowed,
            "src": self.src_name,
            "dst": self.dst_name,
            "port": self.port,
            "protocol": self.protocol,
            "egress": side_json(analysis, &self.decision.egress),
            "ingress": side_json(analysis, &self.decision.ingress),
            "input_errors": input_errors,
        })
    }
}

fn resolve(analysis: &Analysis, text: &str) -> anyhow::Result<Subject> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(analysis.subject_for_ip(ip));
    }
    if let Some(id) = analysis.find_endpoint(text) {
        return Ok(Subject::Endpoint(id));
    }
    // Names have a `/` and letters; digits and dots (or colons) alone were meant as an address.
    let address_like = |c: char| c.is_ascii_digit() || c == '.';
    if (text.contains('.') && text.chars().all(address_like))
        || (text.contains(':') && !text.contains('/'))
    {
        bail!("{text:?} is not a valid IP address");
    }
    let known: Vec<String> = analysis
        .cluster()
        .endpoints
        .iter()
        .map(|e| e.qualified_name())
        .collect();
    let hint = palisade_manifest::nearest(text, known.iter().map(String::as_str))
        .map(|k| format!("; did you mean {k}?"))
        .unwrap_or_default();
    bail!(
        "no endpoint named {text:?} (expected namespace/pod, namespace/kind/name or an IP address){hint}"
    )
}
