//! `palisade agent` and `palisade observe`: their flags, turned into `palisade-agent`'s
//! configuration.

use clap::{Args, Parser, ValueEnum};
use palisade_agent::{AgentConfig, ObserveFilter, OutputFormat};
use palisade_dataplane::RenderOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, Args)]
pub struct AgentArgs {
    /// This node's name: pods with this `spec.nodeName` (or so placed by the pod inventory)
    /// are enforced here.
    #[arg(long, env = "NODE_NAME")]
    pub node: String,
    /// Manifest files or directories (watched; re-read on change) instead of the API server.
    #[arg(long, num_args = 1.., conflicts_with_all = ["kubeconfig", "context"])]
    pub manifests: Vec<PathBuf>,
    /// Watch the API server through this kubeconfig (default: KUBECONFIG, ~/.kube/config,
    /// then the in-cluster service account).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Pod inventory (JSON: {"pods": [{"name": "ns/pod", "node": "NAME", "ips": [...]}]}):
    /// which pods run on which node, with their addresses. Without it every pod with an
    /// address in the manifests is on this node.
    #[arg(long, value_name = "FILE")]
    pub pods: Option<PathBuf>,
    /// Where Prometheus metrics (`/metrics`) and health (`/healthz`, `/readyz`) are served.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    /// Enforce nothing new: record AUDIT for what would be dropped, and accept it.
    #[arg(long)]
    pub audit: bool,
    /// Remove the rules on exit (by default they stay in force across restarts).
    #[arg(long)]
    pub cleanup_on_exit: bool,
    /// Flow records, one JSON line per verdict; `-` is standard output.
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub flow_log: PathBuf,
    /// A flow log file this large is renamed to FILE.1 and started again.
    #[arg(long, value_name = "BYTES", default_value_t = 100 << 20)]
    pub flow_log_max_bytes: u64,
    /// NFLOG group the rules log verdicts to.
    #[arg(long, default_value_t = 100)]
    pub log_group: u16,
    /// How often the inputs are checked for changes.
    #[arg(long, default_value_t = 50)]
    pub poll_interval_ms: u64,
}

impl AgentArgs {
    fn render(&self) -> RenderOptions {
        RenderOptions {
            audit: self.audit,
            log_group: self.log_group,
        }
    }

    pub fn config(&self) -> AgentConfig {
        AgentConfig {
            node: self.node.clone(),
            manifests: self.manifests.clone(),
            cluster: palisade_kube::Connection {
                kubeconfig: self.kubeconfig.clone(),
                context: self.context.clone(),
            },
            pods: self.pods.clone(),
            metrics_addr: self.metrics_addr,
            render: self.render(),
            cleanup_on_exit: self.cleanup_on_exit,
            flow_log: self.flow_log.clone(),
            flow_log_max_bytes: self.flow_log_max_bytes,
            poll_interval: Duration::from_millis(self.poll_interval_ms),
        }
    }
}

/// The render options of an agent started with `args` besides its node and inputs (as the
/// lab starts its agents), by the agent's own parser.
pub fn render_options_of(args: &[String]) -> Result<RenderOptions, clap::Error> {
    #[derive(Parser)]
    struct Agent {
        #[command(flatten)]
        args: AgentArgs,
    }
    let argv = ["agent", "--node", "-"].into_iter().map(String::from);
    let agent = Agent::try_parse_from(argv.chain(args.iter().cloned()))?;
    Ok(agent.args.render())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ObserveOutput {
    Json,
    Table,
}

#[derive(Clone, Debug, Args)]
pub struct ObserveArgs {
    /// Flow-record files written by `palisade agent --flow-log`.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Keep reading what is appended.
    #[arg(long, short)]
    pub follow: bool,
    /// Only flows from or to this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only flows from or to this pod (`name` or `namespace/name`).
    #[arg(long)]
    pub pod: Option<String>,
    /// Only this verdict: FORWARDED, DROPPED or AUDIT.
    #[arg(long)]
    pub verdict: Option<String>,
    /// Only flows to this destination port.
    #[arg(long)]
    pub port: Option<u16>,
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: ObserveOutput,
}

pub fn run_observe(args: &ObserveArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let filter = ObserveFilter {
        namespace: args.namespace.clone(),
        pod: args.pod.clone(),
        verdict: args.verdict.clone(),
        port: args.port,
    };
    let format = match args.output {
        ObserveOutput::Json => OutputFormat::Json,
        ObserveOutput::Table => OutputFormat::Table,
    };
    palisade_agent::run_observe(&args.files, &filter, args.follow, format, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lab learns how its agents render from their arguments, parsed as the agent does.
    #[test]
    fn render_options_come_from_the_agents_own_parser() {
        let of = |args: &[&str]| {
            render_options_of(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
        };
        let options = |audit, log_group| RenderOptions { audit, log_group };
        assert_eq!(of(&[]).unwrap(), options(false, 100));
        assert_eq!(of(&["--audit", "--log-group=7"]).unwrap(), options(true, 7));
        assert_eq!(
            of(&["--log-group", "9", "--poll-interval-ms", "20"]).unwrap(),
            options(false, 9)
        );
        assert!(of(&["--log-group", "many"]).is_err());
    }
}
