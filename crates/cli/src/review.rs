//! `lint` and `diff` on manifests or a live cluster: the CLI reads the input, `palisade-lint`
//! answers.

use crate::input::{self, ClusterArgs};
use anyhow::bail;
use clap::{Args, ColorChoice, ValueEnum};
use palisade_lint::{DiffConfig, DiffFormat, LintConfig, LintFormat, Severity};
use palisade_manifest::LoadOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LintOutput {
    Text,
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Exit 1 when any finding is a warning or an error.
    Warning,
    /// Exit 1 when any finding is an error.
    Error,
    /// Always exit 0.
    Never,
}

#[derive(Args)]
pub struct LintCommand {
    /// Manifest files or directories (.yaml, .yml, .json, searched recursively); `-` for stdin;
    /// none: the live cluster.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = LintOutput::Text)]
    pub output: LintOutput,
    /// Lowest severity that makes the exit status 1.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Colour for text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl LintCommand {
    fn config(&self) -> LintConfig {
        LintConfig {
            format: match self.output {
                LintOutput::Text => LintFormat::Text,
                LintOutput::Json => LintFormat::Json,
                LintOutput::Sarif => LintFormat::Sarif,
            },
            fail_on: match self.fail_on {
                FailOn::Warning => Some(Severity::Warning),
                FailOn::Error => Some(Severity::Error),
                FailOn::Never => None,
            },
            color: use_color(self.color),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffOutput {
    Text,
    Json,
    /// Markdown, ready for a pull-request comment.
    Md,
}

#[derive(Args)]
pub struct DiffCommand {
    /// `OLD NEW`: the manifests before and after the change (files or directories). With a
    /// live cluster (`--kubeconfig`/`--context`): the manifests that would be applied to it.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = DiffOutput::Text)]
    pub output: DiffOutput,
    /// Exit 1 when connectivity changes, like `git diff --exit-code`.
    #[arg(long)]
    pub exit_code: bool,
    /// Colour for text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl DiffCommand {
    fn config(&self) -> DiffConfig {
        DiffConfig {
            format: match self.output {
                DiffOutput::Text => DiffFormat::Text,
                DiffOutput::Json => DiffFormat::Json,
                DiffOutput::Md => DiffFormat::Md,
            },
            exit_code: self.exit_code,
            color: use_color(self.color),
        }
    }
}

/// `auto` colours only a terminal, and respects NO_COLOR / CLICOLOR_FORCE.
fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
        }
    }
}

pub fn run_lint(
    command: &LintCommand,
    namespace: &str,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    // The loader's diagnostics are findings of their own: not printed twice.
    let loaded = input::read(&command.paths, &command.cluster, namespace)?;
    input::refuse_empty(&loaded, &command.paths)?;
    Ok(palisade_lint::report_lint(&command.config(), &loaded, out)?)
}

/// `diff OLD NEW`, or with a cluster, the live state against the live state with the
/// manifests applied to it ("what would `kubectl apply -f PATH…` change?").
pub fn run_diff(
    command: &DiffCommand,
    namespace: &str,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let paths = &command.paths;
    let mut input_errors = false;
    let (old, new) = if command.cluster.named() {
        let live = input::read(&[], &command.cluster, namespace)?;
        input::report(&live, "OLD (the cluster): ");
        let options = LoadOptions {
            default_namespace: namespace.to_string(),
        };
        let manifests = input::read_files(paths, &options)?;
        input::report(&manifests, "NEW (applied): ");
        input_errors = live.has_errors() || manifests.has_errors();
        let mut applied = live.clone();
        applied.apply(manifests);
        (live.cluster, applied.cluster)
    } else {
        let [old, new] = paths.as_slice() else {
            bail!("diff takes OLD and NEW, or --kubeconfig/--context and the manifests to apply");
        };
        let mut sides = Vec::new();
        for (side, path) in [("OLD: ", old), ("NEW: ", new)] {
            let loaded = input::read(std::slice::from_ref(path), &command.cluster, namespace)?;
            input::report(&loaded, side);
            if loaded.is_empty() {
                eprintln!("{side}warning: no Kubernetes objects in {}", path.display());
            }
            input_errors |= loaded.has_errors();
            sides.push(loaded.cluster);
        }
        let new = sides.pop().unwrap_or_default();
        (sides.pop().unwrap_or_default(), new)
    };
    Ok(palisade_lint::report_diff(
        &command.config(),
        old,
        new,
        input_errors,
        out,
    )?)
}
