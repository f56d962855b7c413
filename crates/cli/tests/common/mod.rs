//! What the root-only lab tests share, and a real API server for the tests that read one.

#[allow(dead_code)]
pub mod browser;
pub mod kube;
pub mod netns;
#[allow(dead_code)]
pub mod serve;

use std::process::Command;

/// For a root-only lab test (`#[ignore]`d, so a plain `cargo test` lists it as ignored): run on
/// request without root, iproute2 or nft, it fails saying which is missing rather than passing
/// without having run.
// Not every test binary that shares this module runs lab tests.
#[allow(dead_code)]
pub fn require_lab(what: &str) {
    let root = nix::unistd::geteuid().is_root();
    let ip = Command::new("ip").arg("-V").output().is_ok();
    let nft = Command::new("nft").arg("-v").output().is_ok();
    assert!(
        root && ip && nft,
        "{what} need root, iproute2 and nft (root: {root}, ip: {ip}, nft: {nft}); without them \
         run plain `cargo test`, which lists them as ignored"
    );
}
