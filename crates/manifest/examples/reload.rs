//! Loading again after one edit: `LoadCache::load_paths` against a fresh `load_paths`, on a
//! synthetic cluster laid out as one file and as one file per document.
//!
//! `cargo run --release -p palisade-manifest --example reload -- [POLICIES] [PODS] [RUNS]`
//! (defaults 10000 1000 9). Prints medians in ms and as a share of the fresh load of the same
//! run; checks every cached result against a fresh load, outside the timings.

use palisade_manifest::{LoadCache, LoadOptions, Loaded, load_paths};
use palisade_synth::{Mode, Params, generate};
use std::path::Path;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let policies = args.next().transpose()?.unwrap_or(10_000);
    let pods = args.next().transpose()?.unwrap_or(1_000);
    let runs = args.next().transpose()?.unwrap_or(9).max(1);
    let generated = generate(&Params {
        seed: 1,
        pods,
        policies,
        namespaces: None,
        mode: Mode::Workloads,
    })?;
    let mut stream = Vec::new();
    generated.write_stream(&mut stream)?;
    let stream = String::from_utf8(stream)?;
    let documents = split(&stream);
    // The policy to edit: one in the middle.
    let policies_at: Vec<usize> = (0..documents.len())
        .filter(|&i| documents[i].contains("\nkind: NetworkPolicy\n"))
        .collect();
    let target = policies_at[policies_at.len() / 2];
    println!(
        "{} documents ({} policies), {:.1} MB; {runs} runs, medians",
        documents.len(),
        policies_at.len(),
        stream.len() as f64 / 1e6,
    );

    let dir = tempfile::tempdir()?;
    for layout in [Layout::OneFile, Layout::FilePerDocument] {
        let root = dir.path().join(layout.name());
        std::fs::create_dir(&root)?;
        let write = |documents: &[String]| layout.write(&root, documents);
        write(&documents)?;
        let paths = [root.clone()];
        let options = LoadOptions::default();

        let fresh = median(runs, || time(|| load_paths(&paths, &options)).0);
        // The cache is dropped outside the timing, as the loaded result is.
        let cold = median(runs, || {
            let mut cache = LoadCache::default();
            time(|| cache.load_paths(&paths, &options)).0
        });
        let mut cache = LoadCache::default();
        cache.load_paths(&paths, &options);
        let mut edited = documents.clone();
        let mut warm =
            |edit: fn(&str, usize) -> String| -> Result<Duration, Box<dyn std::error::Error>> {
                let mut times = Vec::new();
                for run in 0..runs {
                    edited[target] = edit(&documents[target], run);
                    write(&edited)?;
                    let (took, loaded) = time(|| cache.load_paths(&paths, &options));
                    assert_eq!(cache.last_parsed_documents(), 1);
                    same(&loaded, &load_paths(&paths, &options));
                    times.push(took);
                }
                Ok(middle(times))
            };
        let renamed = warm(rename)?;
        let shifted = warm(add_lines)?;
        println!("{}:", layout.name());
        let ratio = |d: Duration| d.as_secs_f64() / fresh.as_secs_f64();
        for (what, took) in [
            ("load_paths (fresh)", fresh),
            ("LoadCache, cold", cold),
            ("LoadCache, one policy renamed", renamed),
            ("LoadCache, one policy grows a line", shifted),
        ] {
            println!("  {what:36} {:8.1} ms  {:5.3}×", ms(took), ratio(took));
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Layout {
    OneFile,
    FilePerDocument,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::OneFile => "one-file",
            Layout::FilePerDocument => "file-per-document",
        }
    }

    /// Writes only what changed, as an editor would.
    fn write(self, root: &Path, documents: &[String]) -> std::io::Result<()> {
        match self {
            Layout::OneFile => std::fs::write(root.join("all.yaml"), documents.concat()),
            Layout::FilePerDocument => {
                for (i, document) in documents.iter().enumerate() {
                    let path = root.join(format!("{i:06}.yaml"));
                    if std::fs::read_to_string(&path).ok().as_deref() != Some(document) {
                        std::fs::write(path, document)?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// The stream's documents, each starting with its `---` line.
fn split(stream: &str) -> Vec<String> {
    let mut documents: Vec<String> = Vec::new();
    for line in stream.split_inclusive('\n') {
        match documents.last_mut() {
            Some(document) if line != "---\n" => document.push_str(line),
            _ => documents.push(line.to_string()),
        }
    }
    documents
}

/// A different name each run: same number of lines.
fn rename(document: &str, run: usize) -> String {
    document.replacen("\n  name: ", &format!("\n  name: r{run}-"), 1)
}

/// A comment line more each run: every later line of its file moves down.
fn add_lines(document: &str, run: usize) -> String {
    let comments = "# edited\n".repeat(run + 1);
    document.replacen("---\n", &format!("---\n{comments}"), 1)
}

fn same(cached: &Loaded, fresh: &Loaded) {
    assert_eq!(format!("{cached:?}"), format!("{fresh:?}"));
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let value = f();
    (start.elapsed(), value)
}

fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    middle((0..runs).map(|_| f()).collect())
}

fn middle(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
