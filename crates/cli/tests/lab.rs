//! End to end: `palisade lab up/probe/down` with the real binary, as root. Skips with a message
//! when not root or when `ip` is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

fn require_lab() {
    common::require_lab("the lab CLI tests");
}

fn state_dir() -> PathBuf {
    std::env::temp_dir().join(format!("palisade-cli-lab-{}", std::process::id()))
}

fn palisade(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn lab(command: &str, name: &str, args: &[&str]) -> Output {
    let state = state_dir();
    let mut all = vec![
        "lab",
        command,
        "--name",
        name,
        "--state-dir",
        state.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    palisade(&all)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Namespaces of lab `name` (`palisade-<name>-<role>`), read from /run/netns.
fn lab_namespaces(name: &str) -> Vec<String> {
    let prefix = format!("palisade-{name}-");
    std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|ns| {
                    ns.strip_prefix(&prefix)
                        .is_some_and(|role| !role.contains('-'))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the lab when the test ends, also when it fails, and checks nothing is left.
struct Lab(&'static str);

impl Lab {
    fn new(name: &'static str) -> Self {
        // Leftovers of an interrupted earlier run; nothing to remove is the normal case.
        let _ = lab("down", name, &[]);
        Self(name)
    }

    fn down(self) {
        let out = lab("down", self.0, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(lab_namespaces(self.0), Vec::<String>::new());
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = lab("down", self.0, &[]);
    }
}

fn pod(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    pod: {name}\n\
         spec:\n  containers:\n    - name: c\n      image: busybox\n      ports:\n\
         \x20       - containerPort: 80\n        - containerPort: 80\n          protocol: UDP\n\
         \x20       - containerPort: 81\n---\n"
    )
}

const DENY_X_INGRESS: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
metadata:\n  name: deny\n  namespace: x\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n";

/// A manifest directory holding `text`, removed when dropped.
struct Manifests(PathBuf);

impl Manifests {
    fn new(test: &str, text: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("palisade-cli-lab-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cluster.yaml"), text).unwrap();
        Self(dir)
    }

    /// Pods x/a, x/b, y/c (80 TCP+UDP, 81 TCP), plus `extra`.
    fn abc(test: &str, extra: &str) -> Self {
        Self::new(
            test,
            &(pod("x", "a") + &pod("x", "b") + &pod("y", "c") + extra),
        )
    }
}

impl Drop for Manifests {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn unprotected_lab_measures_exactly_the_matrix_of_a_cluster_without_policies() {
    require_lab();
    let manifests = Manifests::abc("open", "");
    let dir = &manifests.0;
    let guard = Lab::new("cli-open");
    let up = lab("up", "cli-open", &[path(dir), "--no-agent"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let measured = lab("probe", "cli-open", &["-o", "tsv"]);
    assert!(measured.status.success());
    let expected = palisade(&["matrix", path(dir), "-o", "tsv"]);
    assert!(expected.status.success());
    assert_eq!(stdout(&measured), stdout(&expected));
    // 3 × 3 pairs × 3 ports.
    assert_eq!(stdout(&measured).lines().count(), 1 + 27);
    let compare = lab("probe", "cli-open", &["--compare"]);
    assert!(compare.status.success(), "{}", stdout(&compare));
    guard.down();
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn compare_reports_each_difference_and_fails_when_nothing_enforces_a_policy() {
    require_lab();
    let manifests = Manifests::abc("deny", DENY_X_INGRESS);
    let dir = &manifests.0;
    let guard = Lab::new("cli-deny");
    let up = lab("up", "cli-deny", &[path(dir), "--no-agent"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let compare = lab("probe", "cli-deny", &["--compare", "--port", "80"]);
    assert_eq!(compare.status.code(), Some(1), "{}", stdout(&compare));
    let text = stdout(&compare);
    // Every pair into x except a pod to itself: x/a, x/b from the two others each.
    let differences: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with("\ttrue\tfalse"))
        .collect();
    assert_eq!(differences.len(), 4, "{text}");
    assert!(
        differences.contains(&"y/c\tx/a\t80\tTCP\ttrue\tfalse"),
        "{text}"
    );
    assert!(text.contains("4 of 9 probed rows differ"), "{text}");
    guard.down();
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn interrupting_up_leaves_a_complete_lab_or_nothing() {
    require_lab();
    let mut text = String::new();
    for i in 0..12 {
        text += &pod("x", &format!("p{i}"));
    }
    let manifests = Manifests::new("int", &text);
    let dir = &manifests.0;
    let guard = Lab::new("cli-int");
    let state = state_dir();
    let mut child = Command::new(BIN)
        .args(["lab", "up", path(dir), "--no-agent", "--name", "cli-int"])
        .args(["--state-dir", path(&state)])
        .spawn()
        .unwrap();
    // Interrupt as soon as the first namespace exists, i.e. in the middle of `up`.
    while lab_namespaces("cli-int").is_empty() && child.try_wait().unwrap().is_none() {
        std::thread::yield_now();
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let left = lab_namespaces("cli-int");
    if status.success() {
        // `up` finished before the signal arrived: the lab must be whole.
        assert_eq!(left.len(), 2 + 12);
        guard.down();
    } else {
        assert_eq!(left, Vec::<String>::new());
        assert!(!state.join("cli-int").exists());
    }
}

/// With the agent enforcing, measurement equals analysis for the expense example (DNS pod,
/// outside API host).
#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn agent_enforced_lab_matches_the_analysis_of_the_expense_example() {
    require_lab();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/expense");
    let guard = Lab::new("cli-agent");
    let up = lab("up", "cli-agent", &[path(&example)]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let compare = lab("probe", "cli-agent", &["--compare"]);
    assert!(compare.status.success(), "{}", stdout(&compare));
    assert!(
        stdout(&compare).starts_with("0 of "),
        "{}",
        stdout(&compare)
    );
    guard.down();
}
