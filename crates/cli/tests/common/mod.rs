//! What the root-only lab tests share, and a real API server for the tests that read one.

#[allow(dead_code)]
pub mod browser;
pub mod kube;
pub mod netns;
#[allow(dead_code)]
pub mod serve;

use std::process::Command;

/// Whether this machine can run lab tests: root, iproute2 and nft. When not, says so on stderr
/// (the tests then pass without running, visibly).
// Not every test binary that shares this module runs lab tests.
#[allow(dead_code)]
pub fn can_run_lab(what: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    let ip = Command::new("ip").arg("-V").output().is_ok();
    let nft = Command::new("nft").arg("-v").output().is_ok();
    if !(root && ip && nft) {
        palisade_dataplane::say_skipped(&format!(
            "{what} need root, iproute2 and nft (root: {root}, ip: {ip}, nft: {nft})"
        ));
    }
    root && ip && nft
}
