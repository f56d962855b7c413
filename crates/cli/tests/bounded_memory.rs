//! The analyzer faces keep memory to what their input needs: `matrix -o summary` on 10k
//! namespaces once held a tally for each of the 100M namespace pairs (4.7 GB).
//! One test in this binary: the peak RSS read is that of its only child.

use nix::sys::resource::{UsageWho, getrusage};
use std::process::Command;

#[test]
fn summary_memory_grows_with_namespaces_not_their_square() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("namespaces.yaml");
    let text: String = (0..10_000)
        .map(|i| format!("---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{i}}}\n"))
        .collect();
    std::fs::write(&manifest, text).expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["matrix", "-o", "summary"])
        .arg(&manifest)
        .output()
        .expect("run palisade");
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("0 pods (0 endpoints"),
        "{output:?}"
    );
    // ru_maxrss is in KiB on Linux; tens of MiB are what 10k namespaces need.
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss();
    assert!(peak_kib < 256 * 1024, "peak RSS {peak_kib} KiB");
}
