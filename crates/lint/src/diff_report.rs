//! Diff output: text for terminals, JSON for scripts, Markdown for pull-request comments. Both
//! human formats group changes by the source's namespace, then by the source.

use crate::diff::{Cause, ConnectionChange, ConnectivityDiff, Party};
use crate::report::paint;
use anstyle::{AnsiColor, Style};
use std::collections::BTreeMap;
use std::io::{self, Write};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sign {
    Added,
    Removed,
}

/// Added and removed changes grouped as namespace -> source -> entries (sorted); the key
/// `(false, ns)` orders namespaces before `(true, "")`, the outside.
type Grouped<'a> =
    BTreeMap<(bool, &'a str), BTreeMap<&'a Party, Vec<(Sign, &'a ConnectionChange)>>>;

fn grouped(diff: &ConnectivityDiff) -> Grouped<'_> {
    let mut out: Grouped<'_> = BTreeMap::new();
    let signed = diff
        .added
        .iter()
        .map(|c| (Sign::Added, c))
        .chain(diff.removed.iter().map(|c| (Sign::Removed, c)));
    for (sign, change) in signed {
        let namespace = change.from.namespace();
        out.entry((namespace.is_none(), namespace.unwrap_or_default()))
            .or_default()
            .entry(&change.from)
            .or_default()
            .push((sign, change));
    }
    for sources in out.values_mut() {
        for entries in sources.values_mut() {
            entries.sort_by(|a, b| {
                (&a.1.to, a.0 == Sign::Removed).cmp(&(&b.1.to, b.0 == Sign::Removed))
            });
        }
    }
    out
}

fn headline(diff: &ConnectivityDiff) -> String {
    let connections = if diff.changes_connectivity() {
        format!(
            "connections: {} added, {} removed",
            diff.added.len(),
            diff.removed.len()
        )
    } else {
        "no connectivity change".to_string()
    };
    if diff.policy_changes.is_empty() {
        return format!("{connections}; no policy changed");
    }
    let policies: Vec<String> = diff
        .policy_changes
        .iter()
        .map(|p| format!("{} ({})", p.object, p.change.as_str()))
        .collect();
    format!("{connections}; policies: {}", policies.join(", "))
}

fn cause_text(cause: &Cause) -> String {
    format!(
        "{} {} ({})",
        cause.change.object,
        cause.change.change.as_str(),
        cause.role.as_str()
    )
}

fn namespace_heading((outside, namespace): (bool, &str)) -> String {
    if outside {
        "outside the cluster".to_string()
    } else {
        format!("namespace {namespace}")
    }
}

fn source_heading(party: &Party) -> &str {
    match party {
        Party::Endpoint { object, .. } => object,
        Party::Outside { range } => range,
    }
}

pub fn write_text(diff: &ConnectivityDiff, out: &mut dyn Write, color: bool) -> io::Result<()> {
    let bold = Style::new().bold();
    writeln!(out, "{}", headline(diff))?;
    for (namespace, sources) in grouped(diff) {
        writeln!(out)?;
        paint(out, color, bold, &namespace_heading(namespace))?;
        writeln!(out)?;
        for (source, entries) in sources {
            writeln!(out, "  {}", source_heading(source))?;
            for (sign, change) in entries {
                let (mark, colour) = match sign {
                    Sign::Added => ("+", AnsiColor::Green),
                    Sign::Removed => ("-", AnsiColor::Red),
                };
                write!(out, "    ")?;
                paint(
                    out,
                    color,
                    Style::new().fg_color(Some(colour.into())).bold(),
                    mark,
                )?;
                writeln!(out, " to {}: {}", change.to.label(), change.ports)?;
                for cause in &change.causes {
                    writeln!(out, "        because {}", cause_text(cause))?;
                }
            }
        }
    }
    write_unmatched(diff, out, "")
}

fn write_unmatched(diff: &ConnectivityDiff, out: &mut dyn Write, bullet: &str) -> io::Result<()> {
    for (list, which) in [
        (&diff.endpoints_added, "only in NEW"),
        (&diff.endpoints_removed, "only in OLD"),
    ] {
        if !list.is_empty() {
            writeln!(out)?;
            writeln!(out, "{bullet}not compared ({which}): {}", list.join(", "))?;
        }
    }
    Ok(())
}

pub fn write_markdown(diff: &ConnectivityDiff, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "### Palisade: connectivity diff")?;
    writeln!(out)?;
    writeln!(out, "**{}**", markdown_escape(&headline(diff)))?;
    for (namespace, sources) in grouped(diff) {
        writeln!(out)?;
        writeln!(
            out,
            "#### {}",
            markdown_escape(&namespace_heading(namespace))
        )?;
        writeln!(out)?;
        writeln!(out, "| | From | To | Ports | Caused by |")?;
        writeln!(out, "|---|---|---|---|---|")?;
        for (source, entries) in sources {
            for (sign, change) in entries {
                let mark = match sign {
                    Sign::Added => "**+** added",
                    Sign::Removed => "**−** removed",
                };
                let causes: Vec<String> = change.causes.iter().map(cause_text).collect();
                writeln!(
                    out,
                    "| {mark} | `{}` | `{}` | {} | {} |",
                    source.label(),
                    change.to.label(),
                    change.ports,
                    markdown_escape(&causes.join("; "))
                )?;
            }
        }
    }
    write_unmatched(diff, out, "- ")
}

/// Keeps table cells intact: `|` would end the cell.
fn markdown_escape(text: &str) -> String {
    text.replace('|', "\\|")
}
