//! Snapshot tests of what a person reads: `check`, `matrix`, `explain` on the expense example.

use std::process::Command;

fn palisade(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("run palisade");
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn check_allowed_names_the_admitting_rules() {
    insta::assert_snapshot!(palisade(&[
        "check",
        "expense/poda",
        "expense/podc",
        "--port",
        "443",
        "-f",
        "examples/expense"
    ]));
}

#[test]
fn check_denied_names_the_isolating_policies() {
    insta::assert_snapshot!(palisade(&[
        "check",
        "expense/podb",
        "expense/podc",
        "--port",
        "80",
        "-f",
        "examples/expense"
    ]));
}

#[test]
fn check_json() {
    insta::assert_snapshot!(palisade(&[
        "check",
        "expense/poda",
        "192.168.1.10",
        "--port",
        "443",
        "-o",
        "json",
        "-f",
        "examples/expense"
    ]));
}

#[test]
fn check_unknown_endpoint_suggests_the_nearest() {
    insta::assert_snapshot!(palisade(&[
        "check",
        "expense/pod-a",
        "expense/podc",
        "--port",
        "80",
        "-f",
        "examples/expense"
    ]));
}

#[test]
fn matrix_table() {
    insta::assert_snapshot!(palisade(&["matrix", "examples/expense"]));
}

#[test]
fn matrix_markdown_and_dot() {
    insta::assert_snapshot!(palisade(&[
        "matrix",
        "examples/expense",
        "-o",
        "md",
        "--external",
        "none"
    ]));
    insta::assert_snapshot!(palisade(&[
        "matrix",
        "examples/expense",
        "-o",
        "dot",
        "--external",
        "none"
    ]));
}

#[test]
fn matrix_explicit_ports_and_protocols() {
    insta::assert_snapshot!(palisade(&[
        "matrix",
        "examples/expense",
        "-o",
        "csv",
        "--port",
        "53,80",
        "--protocol",
        "TCP,UDP",
        "--external",
        "none"
    ]));
}

#[test]
fn explain_text() {
    insta::assert_snapshot!(palisade(&["explain", "examples/expense"]));
}

#[test]
fn explain_json() {
    insta::assert_snapshot!(palisade(&["explain", "examples/expense", "-o", "json"]));
}

#[test]
fn matrix_summary_counts_pod_pairs() {
    insta::assert_snapshot!(palisade(&["matrix", "examples/expense", "-o", "summary"]));
}

#[test]
fn matrix_pairs_and_json_lines() {
    insta::assert_snapshot!(palisade(&["matrix", "examples/expense", "-o", "pairs"]));
    insta::assert_snapshot!(palisade(&[
        "matrix",
        "examples/expense",
        "-o",
        "jsonl",
        "--external",
        "none"
    ]));
}
