//! Lint output: grouped text for people, JSON for scripts, SARIF 2.1.0 for code-scanning tools.

use crate::finding::{Finding, LintId, Severity};
use anstyle::{AnsiColor, Style};
use palisade_manifest::Origin;
use serde_json::{Value, json};
use std::io::{self, Write};

pub(crate) fn severity_style(severity: Severity) -> Style {
    let color = match severity {
        Severity::Error => AnsiColor::Red,
        Severity::Warning => AnsiColor::Yellow,
        Severity::Note => AnsiColor::Cyan,
    };
    Style::new().fg_color(Some(color.into())).bold()
}

/// Writes `text` in `style` when colour is on.
pub(crate) fn paint(out: &mut dyn Write, color: bool, style: Style, text: &str) -> io::Result<()> {
    if color {
        write!(out, "{}{text}{}", style.render(), style.render_reset())
    } else {
        out.write_all(text.as_bytes())
    }
}

/// Findings grouped by lint, in id order, then a one-line count.
pub fn write_text(findings: &[Finding], out: &mut dyn Write, color: bool) -> io::Result<()> {
    let bold = Style::new().bold();
    let dim = Style::new().dimmed();
    let mut lints: Vec<LintId> = findings.iter().map(|f| f.lint).collect();
    lints.dedup();
    for lint in lints {
        paint(
            out,
            color,
            bold,
            &format!("{} {}: {}", lint.code(), lint.name(), lint.summary()),
        )?;
        writeln!(out)?;
        for finding in findings.iter().filter(|f| f.lint == lint) {
            write!(out, "  ")?;
            paint(
                out,
                color,
                severity_style(finding.severity),
                finding.severity.as_str(),
            )?;
            match &finding.location {
                Some(origin) => writeln!(out, " at {origin}")?,
                None => writeln!(out)?,
            }
            writeln!(out, "    {}", finding.message)?;
            if !finding.objects.is_empty() {
                paint(out, color, dim, "    objects: ")?;
                writeln!(out, "{}", finding.objects.join(", "))?;
            }
            for detail in &finding.details {
                writeln!(out, "    - {detail}")?;
            }
            if !finding.fix.is_empty() {
                paint(out, color, bold, "    fix: ")?;
                writeln!(out, "{}", finding.fix.replace('\n', "\n         "))?;
            }
        }
        writeln!(out)?;
    }
    writeln!(out, "{}", summary_line(findings))
}

fn count(findings: &[Finding], severity: Severity) -> usize {
    findings.iter().filter(|f| f.severity == severity).count()
}

fn summary_line(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no findings".to_string();
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}, {}",
        plural(count(findings, Severity::Error), "error"),
        plural(count(findings, Severity::Warning), "warning"),
        plural(count(findings, Severity::Note), "note")
    )
}

fn location_json(origin: &Origin) -> Value {
    json!({ "file": origin.file, "line": origin.line, "column": origin.column })
}

pub fn to_json(findings: &[Finding]) -> Value {
    let list: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "id": f.lint.code(),
                "name": f.lint.name(),
                "severity": f.severity,
                "location": f.location.as_ref().map(location_json),
                "objects": f.objects,
                "message": f.message,
                "details": f.details,
                "fix": f.fix,
            })
        })
        .collect();
    json!({
        "findings": list,
        "summary": {
            "errors": count(findings, Severity::Error),
            "warnings": count(findings, Severity::Warning),
            "notes": count(findings, Severity::Note),
        }
    })
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// A SARIF 2.1.0 log with one run. Every lint is listed as a rule (so `ruleIndex` is the lint's
/// number); results carry the fix in their message and the objects in their properties.
pub fn to_sarif(findings: &[Finding]) -> Value {
    let rules: Vec<Value> = LintId::ALL
        .iter()
        .map(|lint| {
            json!({
                "id": lint.code(),
                "name": lint.name(),
                "shortDescription": { "text": lint.summary() },
                "defaultConfiguration": { "level": sarif_level(lint.severity()) },
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut text = f.message.clone();
            if !f.fix.is_empty() {
                text.push_str("\nFix: ");
                text.push_str(&f.fix);
            }
            let mut result = json!({
                "ruleId": f.lint.code(),
                "ruleIndex": f.lint as usize,
                "level": sarif_level(f.severity),
                "message": { "text": text },
                "properties": { "objects": f.objects, "details": f.details },
            });
            if let Some(origin) = &f.location {
                result["locations"] = json!([{
                    "physicalLocation": {
                        "artifactLocation": { "uri": file_uri(&origin.file) },
                        "region": { "startLine": origin.line.max(1), "startColumn": origin.column.max(1) },
                    }
                }]);
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "palisade",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "results": results,
        }]
    })
}

/// A relative URI reference for a relative path (what code-scanning tools resolve against the
/// checkout), a `file://` URI for an absolute one; reserved characters percent-encoded.
fn file_uri(path: &str) -> String {
    let mut out = String::new();
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_are_encoded_references() {
        let table = [
            ("policies/web.yaml", "policies/web.yaml"),
            ("my dir/a+b.yaml", "my%20dir/a%2Bb.yaml"),
            ("/abs/x.yaml", "file:///abs/x.yaml"),
            ("<stdin>", "%3Cstdin%3E"),
        ];
        for (path, uri) in table {
            assert_eq!(file_uri(path), uri);
        }
    }
}
