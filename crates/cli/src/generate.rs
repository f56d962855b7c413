//! `palisade generate`: the flags of `palisade-synth`'s synthetic clusters.

use clap::Args;
use palisade_synth::{Mode, Params};
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct GenerateArgs {
    /// Seed: the same seed and sizes give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Total pods, kube-system's DNS pods included.
    #[arg(long, default_value_t = 1000)]
    pub pods: usize,
    /// Total NetworkPolicies.
    #[arg(long, default_value_t = 100)]
    pub policies: usize,
    /// Application namespaces, kube-system not counted [default: pods/1000, at least 3].
    #[arg(long)]
    pub namespaces: Option<usize>,
    /// Emit one Deployment (with spec.replicas) per workload instead of one Pod per replica.
    #[arg(long)]
    pub workloads: bool,
    /// Directory for one file per namespace (created if missing, must be empty), or `-` for
    /// one multi-document stream on stdout.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let params = Params {
        seed: args.seed,
        pods: args.pods,
        policies: args.policies,
        namespaces: args.namespaces,
        mode: if args.workloads {
            Mode::Workloads
        } else {
            Mode::Pods
        },
    };
    Ok(palisade_synth::run_generate(&params, &args.out)?)
}
