//! The analyzer at cluster scale: `cargo bench -p palisade --bench scale [-- 1000x100 …]`.
//!
//! For each size (pods x policies) a synthetic cluster (seed 1) is written to a temporary
//! directory, then measured in a child process of its own so that peak RSS belongs to that size
//! alone: loading the YAML, indexing (`Analysis::new`), the connectivity tables, one full pass
//! over every ordered pod pair (what `matrix -o summary` prints), and single `check` decisions.
//! The baseline, measured in the same run, is the naive way: `allowed_ports` for each pod pair,
//! timed on a random sample and extrapolated to every pair.

use palisade_engine::{Analysis, Protocol, Subject};
use palisade_manifest::{LoadOptions, load_paths};
use palisade_synth::{Mode, Params, generate};
use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

/// 1k, 10k and 100k pods, each with 100, 1k and 10k policies.
const DEFAULT_SIZES: [&str; 9] = [
    "1000x100",
    "1000x1000",
    "1000x10000",
    "10000x100",
    "10000x1000",
    "10000x10000",
    "100000x100",
    "100000x1000",
    "100000x10000",
];
const CHECKS: usize = 2_000;
const NAIVE_SAMPLE: usize = 2_000;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let [flag, size] = args.as_slice()
        && flag == "--one"
    {
        measure(size);
        return;
    }
    let sizes: Vec<String> = if args.is_empty() {
        DEFAULT_SIZES.iter().map(ToString::to_string).collect()
    } else {
        args
    };
    println!(
        "| pods | policies | classes | load YAML | index | connectivity | full pass | engine total | one check | peak RSS | naive pairwise (est.) | engine speed-up |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe().expect("own path");
    for size in sizes {
        let output = std::process::Command::new(&exe)
            .args(["--one", &size])
            .output()
            .expect("run one size");
        if !output.status.success() {
            eprintln!(
                "{size}: failed\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::process::exit(1);
        }
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
}

fn parse_size(size: &str) -> (usize, usize) {
    let parsed = size
        .split_once('x')
        .and_then(|(p, q)| Some((p.parse().ok()?, q.parse().ok()?)));
    parsed.unwrap_or_else(|| panic!("size {size:?}: expected PODSxPOLICIES, e.g. 10000x1000"))
}

fn measure(size: &str) {
    let (pods, policies) = parse_size(size);
    let generated = generate(&Params {
        seed: 1,
        pods,
        policies,
        namespaces: None,
        mode: Mode::Pods,
    })
    .expect("generate");
    let dir = tempfile::tempdir().expect("temporary directory");
    generated.write_dir(dir.path()).expect("write manifests");
    drop(generated);

    let started = Instant::now();
    let mut loaded = load_paths(&[dir.path().to_path_buf()], &LoadOptions::default());
    let load = started.elapsed();
    assert!(
        !loaded.has_errors(),
        "generated manifests must load cleanly"
    );
    let cluster = std::mem::take(&mut loaded.cluster);
    drop(loaded);

    let started = Instant::now();
    let analysis = Analysis::new(cluster);
    let index = started.elapsed();
    let started = Instant::now();
    let connectivity = analysis.connectivity();
    let tables = started.elapsed();
    let started = Instant::now();
    palisade::summary::write(&mut std::io::sink(), &analysis, &connectivity, true)
        .expect("summary to a sink");
    let full = started.elapsed();

    let endpoints = analysis.cluster().endpoints.len();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut pick = || Subject::Endpoint(rng.random_range(0..endpoints).into());
    let pairs: Vec<(Subject, Subject)> = (0..CHECKS.max(NAIVE_SAMPLE))
        .map(|_| (pick(), pick()))
        .collect();
    let started = Instant::now();
    for &(src, dst) in &pairs[..CHECKS] {
        std::hint::black_box(analysis.decide(src, dst, Protocol::Tcp, 8080));
    }
    let check = started.elapsed() / CHECKS as u32;
    let started = Instant::now();
    for &(src, dst) in &pairs[..NAIVE_SAMPLE] {
        std::hint::black_box(analysis.allowed_ports(src, dst));
    }
    let naive = started.elapsed().as_secs_f64() / NAIVE_SAMPLE as f64 * (endpoints as f64).powi(2);

    let engine = index + tables + full;
    println!(
        "| {pods} | {policies} | {} | {} | {} | {} | {} | **{}** | {} | {} MiB | {} | {:.0}× |",
        analysis.class_count(),
        human(load),
        human(index),
        human(tables),
        human(full),
        human(engine),
        human(check),
        peak_rss_mib(),
        human(Duration::from_secs_f64(naive)),
        naive / engine.as_secs_f64()
    );
}

fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 100.0 {
        format!("{:.0} s", s)
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// VmHWM: the most resident memory this process ever had.
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
