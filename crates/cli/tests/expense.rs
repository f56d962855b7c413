//! The expense scenario (examples/expense): the matrix `palisade` prints must equal the one
//! worked out by hand from the four requirements in examples/expense/README.md.

use std::collections::BTreeMap;
use std::process::Command;

const T: bool = true;
const F: bool = false;

/// Sources, in the order of the columns below.
const SOURCES: [&str; 8] = [
    "expense/poda",
    "expense/podb",
    "expense/podc",
    "instana/instana-agent",
    "kube-system/coredns",
    "0.0.0.0-192.168.1.9",
    "192.168.1.10/32",
    "192.168.1.11-255.255.255.255",
];

/// Who may open a connection to each destination port, by hand:
/// - poda/podb (8080) accept only expense pods; podb's egress is DNS only, poda's egress does not
///   include them; podc's egress is unrestricted. Loopback is always allowed.
/// - podc (80, 443) accepts podA only.
/// - instana and coredns are not isolated; only poda and podb are egress-restricted, and both
///   may reach DNS (53 UDP/TCP) but not coredns' metrics port.
/// - outside: poda reaches only 192.168.1.10:443; podb nothing; the rest is unrestricted.
///   Outside-to-outside pairs are not NetworkPolicy's business and are not listed.
#[rustfmt::skip]
fn expected() -> Vec<(&'static str, &'static str, [Option<bool>; 8])> {
    let all = |row: [bool; 8]| row.map(Some);
    let pods_only = |row: [bool; 5]| [Some(row[0]), Some(row[1]), Some(row[2]), Some(row[3]), Some(row[4]), None, None, None];
    vec![
        //  destination                     port        poda podb podc inst dns  low  api  high
        ("expense/poda",                   "8080/TCP",  all([T,   F,   T,   F,   F,   F,   F,   F])),
        ("expense/podb",                   "8080/TCP",  all([F,   T,   T,   F,   F,   F,   F,   F])),
        ("expense/podc",                   "80/TCP",    all([T,   F,   T,   F,   F,   F,   F,   F])),
        ("expense/podc",                   "443/TCP",   all([T,   F,   T,   F,   F,   F,   F,   F])),
        ("instana/instana-agent",          "42699/TCP", all([F,   F,   T,   T,   T,   T,   T,   T])),
        ("kube-system/coredns",            "53/TCP",    all([T,   T,   T,   T,   T,   T,   T,   T])),
        ("kube-system/coredns",            "53/UDP",    all([T,   T,   T,   T,   T,   T,   T,   T])),
        ("kube-system/coredns",            "9153/TCP",  all([F,   F,   T,   T,   T,   T,   T,   T])),
        ("0.0.0.0-192.168.1.9",            "443/TCP",   pods_only([F, F, T, T, T])),
        ("192.168.1.10/32",                "443/TCP",   pods_only([T, F, T, T, T])),
        ("192.168.1.11-255.255.255.255",   "443/TCP",   pods_only([F, F, T, T, T])),
    ]
}

fn palisade(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("run palisade")
}

#[test]
fn matrix_equals_the_hand_worked_expectation() {
    let output = palisade(&["matrix", "examples/expense", "-o", "tsv"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("src\tdst\tport\tprotocol\tallowed"));
    let mut observed = BTreeMap::new();
    for line in lines {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "row {line:?}");
        let key = (
            cols[0].to_string(),
            cols[1].to_string(),
            format!("{}/{}", cols[2], cols[3]),
        );
        let allowed = match cols[4] {
            "true" => true,
            "false" => false,
            other => panic!("allowed column must be true/false, got {other:?}"),
        };
        assert!(
            observed.insert(key, allowed).is_none(),
            "duplicate row {line:?}"
        );
    }
    let mut expected_rows = BTreeMap::new();
    for (dst, port, row) in expected() {
        for (src, allowed) in SOURCES.iter().zip(row) {
            if let Some(allowed) = allowed {
                expected_rows.insert(
                    (src.to_string(), dst.to_string(), port.to_string()),
                    allowed,
                );
            }
        }
    }
    let mismatches: Vec<String> = expected_rows
        .iter()
        .filter(|(k, v)| observed.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{} -> {} {}: expected {v}, got {:?}",
                k.0,
                k.1,
                k.2,
                observed.get(k)
            )
        })
        .chain(
            observed
                .keys()
                .filter(|k| !expected_rows.contains_key(*k))
                .map(|k| format!("unexpected row {} -> {} {}", k.0, k.1, k.2)),
        )
        .collect();
    assert!(
        mismatches.is_empty(),
        "matrix differs:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn check_exit_status_follows_the_verdict() {
    // (src, dst, port, protocol, expected exit status)
    let table = [
        ("expense/poda", "expense/podc", "80", "TCP", 0),
        ("expense/poda", "expense/podc", "8080", "TCP", 1),
        ("expense/podb", "expense/podc", "443", "TCP", 1),
        ("expense/poda", "192.168.1.10", "443", "TCP", 0),
        ("expense/poda", "192.168.1.11", "443", "TCP", 1),
        (
            "expense/podb",
            "kube-system/deployment/coredns",
            "53",
            "UDP",
            0,
        ),
        (
            "expense/podb",
            "kube-system/deployment/coredns",
            "9153",
            "TCP",
            1,
        ),
        (
            "instana/daemonset/instana-agent",
            "expense/poda",
            "8080",
            "TCP",
            1,
        ),
        (
            "10.244.2.12",
            "instana/daemonset/instana-agent",
            "42699",
            "TCP",
            0,
        ),
    ];
    for (src, dst, port, proto, status) in table {
        let output = palisade(&[
            "check",
            src,
            dst,
            "--port",
            port,
            "--protocol",
            proto,
            "-f",
            "examples/expense",
        ]);
        assert_eq!(
            output.status.code(),
            Some(status),
            "check {src} {dst} {port}/{proto}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
