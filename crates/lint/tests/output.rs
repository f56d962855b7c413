//! The three lint output formats: text (snapshots, one per lint over its triggering manifests),
//! JSON, and SARIF 2.1.0 checked against the fields the schema requires.

use palisade_lint::{
    Finding, LintConfig, LintFormat, LintId, Severity, lint, lint_json, lint_sarif, report_lint,
    write_lint_text,
};
use palisade_manifest::{LoadOptions, load_paths, load_str};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn lint_dir(lint: LintId) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/lints")
        .join(lint.code())
}

fn bad_files(lint: LintId) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(lint_dir(lint))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("bad-"))
        .collect();
    files.sort();
    files
}

fn lint_file(path: &Path) -> Vec<Finding> {
    let text = fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    lint(&load_str(&name, &text, &LoadOptions::default()))
}

fn text(findings: &[Finding], color: bool) -> String {
    let mut out = Vec::new();
    write_lint_text(findings, &mut out, color).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn text_reports_of_every_triggering_manifest() {
    for lint in LintId::ALL {
        let mut report = String::new();
        for path in bad_files(lint) {
            report.push_str(&format!(
                "=== {}\n",
                path.file_name().unwrap().to_string_lossy()
            ));
            report.push_str(&text(&lint_file(&path), false));
        }
        insta::assert_snapshot!(format!("{}-{}", lint.code(), lint.name()), report);
    }
}

#[test]
fn colour_only_when_asked() {
    let findings = lint_file(&bad_files(LintId::DnsBlocked)[0]);
    assert!(!text(&findings, false).contains('\x1b'));
    let coloured = text(&findings, true);
    assert!(
        coloured.contains("\x1b[1m\x1b[31merror") || coloured.contains("\x1b[1;31merror"),
        "{coloured:?}"
    );
}

#[test]
fn json_carries_every_finding_with_its_location() {
    let findings = lint_file(&bad_files(LintId::PeerSelectsNothing)[1]);
    let json = lint_json(&findings);
    let list = json["findings"].as_array().unwrap();
    assert_eq!(list.len(), findings.len());
    let peer = list
        .iter()
        .find(|f| f["id"] == "PAL004")
        .expect("PAL004 in the JSON");
    assert_eq!(peer["name"], "peer-selects-nothing");
    assert_eq!(peer["severity"], "warning");
    assert_eq!(peer["location"]["file"], "bad-pod-typo.yaml");
    assert!(peer["location"]["line"].as_u64().unwrap() > 1);
    assert_eq!(
        json["summary"]["warnings"].as_u64().unwrap() as usize,
        findings
            .iter()
            .filter(|f| f.severity == palisade_lint::Severity::Warning)
            .count()
    );
}

/// The fields SARIF 2.1.0 requires (and code-scanning services read), checked on a report with
/// findings of every lint.
#[test]
fn sarif_has_the_required_structure() {
    let findings: Vec<Finding> = LintId::ALL
        .iter()
        .flat_map(|&l| bad_files(l))
        .flat_map(|p| lint_file(&p))
        .collect();
    let sarif = lint_sarif(&findings);
    assert_eq!(sarif["version"], "2.1.0");
    let runs = sarif["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "palisade");
    let rules = driver["rules"].as_array().unwrap();
    assert_eq!(rules.len(), LintId::ALL.len());
    for rule in rules {
        assert!(rule["id"].as_str().unwrap().starts_with("PAL"));
        assert!(
            !rule["shortDescription"]["text"]
                .as_str()
                .unwrap()
                .is_empty()
        );
    }
    let results = runs[0]["results"].as_array().unwrap();
    assert_eq!(results.len(), findings.len());
    for result in results {
        let rule_id = result["ruleId"].as_str().unwrap();
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], rule_id, "ruleIndex points at the rule");
        assert!(["note", "warning", "error"].contains(&result["level"].as_str().unwrap()));
        assert!(!result["message"]["text"].as_str().unwrap().is_empty());
        let location = &result["locations"][0]["physicalLocation"];
        assert!(
            location["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .ends_with(".yaml"),
            "{result}"
        );
        assert!(location["region"]["startLine"].as_u64().unwrap() >= 1);
    }
}

fn run(path: PathBuf, format: LintFormat, fail_on: Option<Severity>) -> (ExitCode, String) {
    let config = LintConfig {
        format,
        fail_on,
        color: false,
    };
    let loaded = load_paths(&[path], &LoadOptions::default());
    let mut out = Vec::new();
    let code = report_lint(&config, &loaded, &mut out).unwrap();
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn fail_on_sets_the_exit_status() {
    // PAL004's manifests have warnings and notes but no error; PAL001's have errors.
    let warnings_only = lint_dir(LintId::PeerSelectsNothing).join("bad-pod-typo.yaml");
    let with_error = lint_dir(LintId::DnsBlocked).join("bad-egress-deny.yaml");
    let table = [
        (&warnings_only, Some(Severity::Warning), ExitCode::FAILURE),
        (&warnings_only, Some(Severity::Error), ExitCode::SUCCESS),
        (&with_error, Some(Severity::Error), ExitCode::FAILURE),
        (&with_error, None, ExitCode::SUCCESS),
    ];
    for (path, fail_on, expected) in table {
        let (code, _) = run(path.clone(), LintFormat::Text, fail_on);
        assert_eq!(code, expected, "{} with {fail_on:?}", path.display());
    }
}

#[test]
fn report_lint_writes_the_chosen_format() {
    let path = lint_dir(LintId::DnsBlocked).join("bad-egress-deny.yaml");
    let (_, sarif) = run(path.clone(), LintFormat::Sarif, None);
    let sarif: Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(sarif["runs"][0]["results"][0]["ruleId"], "PAL001");
    let (_, json) = run(path.clone(), LintFormat::Json, None);
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["findings"][0]["id"], "PAL001");
    let (_, text) = run(path, LintFormat::Text, None);
    assert!(text.starts_with("PAL001 dns-blocked:"), "{text}");
}
