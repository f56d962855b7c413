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

use palisade_engine::{Analysis, Cluster};
use palisade_manifest::Loaded;
use std::io::{self, Write};
use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error("writing the report: {0}")]
    Write(#[from] io::Error),
    #[error("encoding the report: {0}")]
    Encode(#[from] serde_json::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LintFormat {
    Text,
    Json,
    Sarif,
}

/// How `lint` reports.
#[derive(Clone, Copy, Debug)]
pub struct LintConfig {
    pub format: LintFormat,
    /// The lowest severity that makes the exit status 1; `None`: always 0.
    pub fail_on: Option<Severity>,
    /// Colour the text report.
    pub color: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffFormat {
    Text,
    Json,
    Md,
}

/// How `diff` reports.
#[derive(Clone, Copy, Debug)]
pub struct DiffConfig {
    pub format: DiffFormat,
    /// Exit 1 when connectivity changes, like `git diff --exit-code`.
    pub exit_code: bool,
    /// Colour the text report.
    pub color: bool,
}

/// Lints what was loaded (from files or a cluster) and reports as `config` says. Exit status 1
/// when a finding reaches `config.fail_on`.
pub fn report_lint(
    config: &LintConfig,
    loaded: &Loaded,
    out: &mut dyn Write,
) -> Result<ExitCode, LintError> {
    let findings = lint(loaded);
    match config.format {
        LintFormat::Text => report::write_text(&findings, out, config.color)?,
        LintFormat::Json => write_json(out, &report::to_json(&findings))?,
        LintFormat::Sarif => write_json(out, &report::to_sarif(&findings))?,
    }
    let fails = config
        .fail_on
        .is_some_and(|t| findings.iter().any(|f| f.severity >= t));
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

/// Compares two clusters (from files or a live one) and reports as `config` says. With
/// `input_errors` (objects left out of either side) the report says so and the exit status
/// is 2, whatever changed: the comparison covers only what loaded.
pub fn report_diff(
    config: &DiffConfig,
    old: Cluster,
    new: Cluster,
    input_errors: bool,
    out: &mut dyn Write,
) -> Result<ExitCode, LintError> {
    let result = diff(&Analysis::new(old), &Analysis::new(new));
    match config.format {
        DiffFormat::Text => diff_report::write_text(&result, out, config.color)?,
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
    } else if config.exit_code && result.changes_connectivity() {
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

fn write_json(out: &mut dyn Write, value: &serde_json::Value) -> Result<(), LintError> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}
