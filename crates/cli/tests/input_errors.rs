//! Exit statuses on bad or empty input, for every command that reads manifests: 2 means "the
//! input had errors" (the answer covers only what loaded), above `lint`'s and `diff
//! --exit-code`'s 1; nothing at all to read is an error, not an empty answer.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const GOOD: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: prod}
spec: {podSelector: {}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
";

/// A policy whose `fromm` would admit every source if it were skipped.
const MISSPELLED: &str = "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow, namespace: prod}
spec:
  podSelector: {}
  ingress:
  - fromm: [{podSelector: {matchLabels: {app: web}}}]
";

const EXPENSE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/expense");

fn palisade(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run palisade");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

#[test]
fn exit_statuses_on_bad_and_empty_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(dir.path(), "good.yaml", GOOD);
    let bad = write(dir.path(), "bad.yaml", &format!("{GOOD}{MISSPELLED}"));
    let empty_dir = dir.path().join("empty");
    std::fs::create_dir(&empty_dir).expect("mkdir");
    let empty = empty_dir.display().to_string();
    // (arguments, stdin, exit status, part of stderr, part of stdout)
    let table: &[(&[&str], &str, i32, &str, &str)] = &[
        (&["lint", &good], "", 0, "", ""),
        // lint reports what could not be loaded as findings of its own, on stdout.
        (&["lint", &bad], "", 2, "", "did you mean \"from\"?"),
        (&["lint", &empty], "", 2, "no Kubernetes objects in", ""),
        (&["matrix", &empty], "", 2, "no Kubernetes objects in", ""),
        (&["matrix", "-"], "", 2, "no Kubernetes objects in -", ""),
        (
            &["check", "--port", "80", "prod/web", "prod/web", &bad],
            "",
            2,
            "unknown field",
            "",
        ),
        (
            &["check", "--port", "80", "999.1.1.1", "prod/web", &good],
            "",
            2,
            "\"999.1.1.1\" is not a valid IP address",
            "",
        ),
        // A workload by the `ns/name` the matrix shows for it.
        (
            &[
                "check",
                "--port",
                "42699",
                "expense/podc",
                "instana/instana-agent",
                EXPENSE,
            ],
            "",
            0,
            "",
            "ALLOWED",
        ),
        (
            &["check", "--port", "80", "fd00::zz", "prod/web", &good],
            "",
            2,
            "not a valid IP address",
            "",
        ),
        (
            &["diff", "-o", "json", &good, &good],
            "",
            0,
            "",
            "\"input_errors\": false",
        ),
        (
            &["diff", "-o", "json", &good, &bad],
            "",
            2,
            "NEW: ",
            "\"input_errors\": true",
        ),
        (&["diff", "--exit-code", &bad, &good], "", 2, "OLD: ", ""),
        (
            &["diff", "-o", "md", &good, &bad],
            "",
            2,
            "",
            "**Input errors**",
        ),
        // Comparing with nothing is a question diff answers; it says the side is empty.
        (
            &["diff", &empty, &good],
            "",
            0,
            "OLD: warning: no Kubernetes objects in",
            "",
        ),
    ];
    for (args, stdin, code, stderr, stdout) in table {
        let output = palisade(args, stdin);
        let (out, err) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        let shown = format!("palisade {args:?}\n--- stdout\n{out}--- stderr\n{err}");
        assert_eq!(output.status.code(), Some(*code), "{shown}");
        assert!(err.contains(stderr), "{shown}");
        assert!(out.contains(stdout), "{shown}");
    }
}

/// A reader that stops early (`palisade lint … | head`) is no error, whichever layer the
/// write fails in: every command exits 0 and says nothing. The outputs are larger than the
/// output buffer, so the failing write happens inside the command, not at the final flush.
#[test]
fn a_closed_pipe_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    let generated = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["generate", "--pods", "400", "--policies", "60", "--out"])
        .arg(&cluster)
        .output()
        .unwrap();
    assert!(generated.status.success());
    let cluster = cluster.to_str().unwrap();
    for args in [
        &["lint", "-o", "json", cluster][..],
        &["lint", cluster],
        &["explain", "-o", "json", cluster],
        &["explain", cluster],
        &["matrix", cluster],
        &["matrix", "-o", "summary", cluster],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before the command has loaded its input, so its first write fails.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
}
