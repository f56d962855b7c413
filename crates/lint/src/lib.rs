//! `palisade lint` and `palisade diff`: find the NetworkPolicy mistakes people make, and show
//! what a change of manifests does to connectivity before it is applied. Every decision comes
//! from the engine; this crate chooses the questions and explains the answers.

mod diff;
mod diff_report;
mod finding;
mod lints;
mod report;
mod sample;
#[cfg(test)]
mod testgen;

pub use diff::{
    Cause, ChangeKind, ConnectionChange, ConnectivityDiff, ObjectChange, Party, Role, diff,
};
pub use finding::{Finding, LintId, Severity};
pub use lints::{lint, lint_analysis};

use clap::{ColorChoice, ValueEnum};
use palisade_engine::{Analysis, Cluster};
use palisade_manifest::{LoadOptions, Loaded, load_paths};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error("{}: no such file or directory", .0.display())]
    MissingPath(PathBuf),
    #[error("{0}")]
    Usage(String),
    #[error("writing the report: {0}")]
    Write(#[from] io::Error),
    #[error("encoding the report: {0}")]
    Encode(#[from] serde_json::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
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

#[derive(Clone, Debug, clap::Args)]
pub struct LintArgs {
    /// Manifest files or directories (.yaml, .yml, .json, searched recursively); `-` for stdin;
    /// none: the live cluster.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = LintFormat::Text)]
    pub output: LintFormat,
    /// Lowest severity that makes the exit status 1.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Colour for text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
    /// Markdown, ready for a pull-request comment.
    Md,
}

#[derive(Clone, Debug, clap::Args)]
pub struct DiffArgs {
    /// `OLD NEW`: the manifests before and after the change (files or directories). With a
    /// live cluster (`--kubeconfig`/`--context`): the manifests that would be applied to it.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,
    /// Exit 1 when connectivity changes, like `git diff --exit-code`.
    #[arg(long)]
    pub exit_code: bool,
    /// Colour for text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// Loads, lints and reports. Exit status 1 when a finding reaches `--fail-on`. `namespace` is
/// the namespace of objects that name none (the CLI's global `-n`).
pub fn run_lint(
    args: &LintArgs,
    namespace: &str,
    out: &mut dyn Write,
) -> Result<ExitCode, LintError> {
    let loaded = load(&args.paths, namespace)?;
    report_lint(args, &loaded, out)
}

/// Lints what was loaded (from files or a cluster) and reports as `args` say.
pub fn report_lint(
    args: &LintArgs,
    loaded: &Loaded,
    out: &mut dyn Write,
) -> Result<ExitCode, LintError> {
    let findings = lint(loaded);
    match args.output {
        LintFormat::Text => report::write_text(&findings, out, use_color(args.color))?,
        LintFormat::Json => write_json(out, &report::to_json(&findings))?,
        LintFormat::Sarif => write_json(out, &report::to_sarif(&findings))?,
    }
    let threshold = match args.fail_on {
        FailOn::Warning => Some(Severity::Warning),
        FailOn::Error => Some(Severity::Error),
        FailOn::Never => None,
    };
    let fails = threshold.is_some_and(|t| findings.iter().any(|f| f.severity >= t));
    Ok(if loaded.has_errors() {
        ExitCode::from(EXIT_INPUT_ERRORS)
    } else if fails {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The exit status when the input had errors (as every command of the CLI): above 1, which
/// means findings (`lint`) or changes (`diff --exit-code`).
pub const EXIT_INPUT_ERRORS: u8 = 2;

/// Loads both sides, compares them and reports. Loader diagnostics go to stderr, as for every
/// command; the comparison covers what loaded.
pub fn run_diff(
    args: &DiffArgs,
    namespace: &str,
    out: &mut dyn Write,
) -> Result<ExitCode, LintError> {
    let [old, new] = args.paths.as_slice() else {
        return Err(LintError::Usage(
            "diff takes two paths, OLD and NEW".to_string(),
        ));
    };
    let mut sides = Vec::new();
    let mut input_errors = false;
    for (side, path) in [("OLD", old), ("NEW", new)] {
        let loaded = load(std::slice::from_ref(path), namespace)?;
        for diagnostic in &loaded.diagnostics {
            eprintln!("{side}: {diagnostic}");
        }
        input_errors |= loaded.has_errors();
        sides.push(loaded.cluster);
    }
    let new = sides.pop().unwrap_or_default();
    let old = sides.pop().unwrap_or_default();
    report_diff(args, old, new, input_errors, out)
}

/// Compares two clusters (from files or a live one) and reports as `args` say. With
/// `input_errors` (objects left out of either side) the report says so and the exit status
/// is 2, whatever changed: the comparison covers only what loaded.
pub fn report_diff(
    args: &DiffArgs,
    old: Cluster,
    new: Cluster,
    input_errors: bool,
    out: &mut dyn Write,
) -> Result<ExitCode, LintError> {
    let result = diff(&Analysis::new(old), &Analysis::new(new));
    match args.output {
        DiffFormat::Text => diff_report::write_text(&result, out, use_color(args.color))?,
        DiffFormat::Json => {
            let mut json = serde_json::to_value(&result)?;
            json["input_errors"] = input_errors.into();
            write_json(out, &json)?
        }
        DiffFormat::Md => {
            if input_errors {
                writeln!(
                    out,
                    "> **Input errors**: some objects could not be read and are left out of this comparison.\n"
                )?;
            }
            diff_report::write_markdown(&result, out)?
        }
    }
    Ok(if input_errors {
        ExitCode::from(EXIT_INPUT_ERRORS)
    } else if args.exit_code && result.changes_connectivity() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes the text report of `findings` (what `-o text` prints).
pub fn write_lint_text(findings: &[Finding], out: &mut dyn Write, color: bool) -> io::Result<()> {
    report::write_text(findings, out, color)
}

/// The `-o json` document for `findings`.
pub fn lint_json(findings: &[Finding]) -> serde_json::Value {
    report::to_json(findings)
}

/// The `-o sarif` document for `findings`.
pub fn lint_sarif(findings: &[Finding]) -> serde_json::Value {
    report::to_sarif(findings)
}

/// Writes the text report of a diff (what `-o text` prints).
pub fn write_diff_text(
    diff: &ConnectivityDiff,
    out: &mut dyn Write,
    color: bool,
) -> io::Result<()> {
    diff_report::write_text(diff, out, color)
}

/// Writes the Markdown report of a diff (what `-o md` prints).
pub fn write_diff_markdown(diff: &ConnectivityDiff, out: &mut dyn Write) -> io::Result<()> {
    diff_report::write_markdown(diff, out)
}

fn load(paths: &[PathBuf], namespace: &str) -> Result<Loaded, LintError> {
    if let Some(missing) = paths
        .iter()
        .find(|p| p.as_path() != Path::new("-") && !p.exists())
    {
        return Err(LintError::MissingPath(missing.clone()));
    }
    let options = LoadOptions {
        default_namespace: namespace.to_string(),
    };
    Ok(load_paths(paths, &options))
}

fn write_json(out: &mut dyn Write, value: &serde_json::Value) -> Result<(), LintError> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// `auto` colours only a terminal, and respects NO_COLOR / CLICOLOR_FORCE.
fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            anstream::AutoStream::choice(&io::stdout()) != anstream::ColorChoice::Never
        }
    }
}
