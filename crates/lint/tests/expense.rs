//! The expense example as written, and the two mistakes people make with it: the
//! `namespaceSelector: {}` "internet" rule and an egress lock-down without DNS.

use palisade_lint::{Finding, LintId, Severity, lint};
use palisade_manifest::{LoadOptions, load_paths, load_str};
use std::fs;
use std::path::{Path, PathBuf};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/expense")
}

fn read(file: &str) -> String {
    fs::read_to_string(example_dir().join(file)).unwrap()
}

/// Lints the example with `policies.yaml` replaced by `policies`.
fn lint_with_policies(policies: &str) -> Vec<Finding> {
    let text = [
        read("namespaces.yaml"),
        read("workloads.yaml"),
        policies.to_string(),
    ]
    .join("\n---\n");
    lint(&load_str("expense.yaml", &text, &LoadOptions::default()))
}

/// `text` with `from` replaced by `to`; `from` must occur exactly once, so that a change to the
/// example cannot silently turn a variant into the original.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "expected once in policies.yaml:\n{from}"
    );
    text.replace(from, to)
}

fn describe(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("{} {}: {}", f.lint, f.severity, f.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_has_nothing_worse_than_notes() {
    let loaded = load_paths(&[example_dir()], &LoadOptions::default());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let findings = lint(&loaded);
    assert!(
        findings.iter().all(|f| f.severity == Severity::Note),
        "{}",
        describe(&findings)
    );
    // Only the namespaces without default deny: expense denies ingress but not egress.
    let coverage: Vec<&str> = findings
        .iter()
        .map(|f| {
            assert_eq!(f.lint, LintId::NoDefaultDeny, "{}", describe(&findings));
            f.objects[0].as_str()
        })
        .collect();
    assert_eq!(
        coverage,
        [
            "Namespace expense",
            "Namespace instana",
            "Namespace kube-system"
        ]
    );
    let expense = &findings[0];
    assert!(
        expense.message.contains("for egress:"),
        "{}",
        expense.message
    );
    assert_eq!(
        expense.details,
        [
            "ingress: 3 of 3 pods isolated (100%)",
            "egress: 2 of 3 pods isolated (66%)"
        ]
    );
}

const EXTERNAL_API_RULE: &str = "    - to:
        - ipBlock:
            cidr: 192.168.1.10/32
";

#[test]
fn namespace_selector_everything_is_not_the_internet() {
    let policies = edit(
        &read("policies.yaml"),
        EXTERNAL_API_RULE,
        "    - to:\n        - namespaceSelector: {}\n",
    );
    let findings = lint_with_policies(&policies);
    let cluster_only: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.lint == LintId::EgressClusterOnly)
        .collect();
    assert_eq!(cluster_only.len(), 1, "{}", describe(&findings));
    let finding = cluster_only[0];
    assert!(
        finding.message.starts_with(
            "spec.egress[1] of NetworkPolicy expense/poda-egress allows cluster pods only"
        ),
        "{}",
        finding.message
    );
    assert_eq!(
        finding.objects,
        ["NetworkPolicy expense/poda-egress", "Pod expense/poda"]
    );
    assert_eq!(finding.severity, Severity::Warning);
    assert!(finding.location.as_ref().unwrap().line > 1);
}

#[test]
fn egress_deny_without_dns_breaks_name_resolution() {
    let original = read("policies.yaml");
    // podB's policy keeps isolating egress but loses its only rule, the DNS one.
    let start = original.find("name: podb-dns-only").unwrap();
    let egress = start + original[start..].find("  egress:\n").unwrap();
    let end = original[egress..]
        .find("\n---")
        .map_or(original.len(), |i| egress + i + 1);
    let policies = format!("{}  egress: []\n{}", &original[..egress], &original[end..]);
    let findings = lint_with_policies(&policies);
    let dns: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.lint == LintId::DnsBlocked)
        .collect();
    assert_eq!(dns.len(), 1, "{}", describe(&findings));
    assert_eq!(dns[0].severity, Severity::Error);
    assert_eq!(
        dns[0].objects,
        ["NetworkPolicy expense/podb-dns-only", "Pod expense/podb"]
    );
    assert!(
        dns[0]
            .message
            .contains("no egress rule admits UDP 53 and TCP 53 to the cluster DNS pods (kube-system/deployment/coredns)"),
        "{}",
        dns[0].message
    );
}
