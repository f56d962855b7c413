//! Page load of `palisade serve` in Debian's Chromium: seconds from asking for the page to its
//! first drawn graph, five loads per input (`PALISADE_WEB_INPUTS`, colon-separated; default the
//! bundled example). `scripts/bench-web.sh` runs it on generated clusters and prints ratios.

#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;

use common::browser::{Browser, wait_for};
use common::serve::Served;
use fantoccini::Locator;
use std::path::Path;
use std::time::Instant;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/expense");

#[tokio::main]
async fn main() {
    let Some(browser) = Browser::start("page load figures") else {
        return;
    };
    let inputs: Vec<String> = std::env::var("PALISADE_WEB_INPUTS")
        .map(|v| v.split(':').map(str::to_string).collect())
        .unwrap_or_else(|_| vec![EXAMPLE.to_string()]);
    let client = browser.open().await;
    for input in inputs {
        let served = Served::start(&[Path::new(&input)], None);
        let mut times = Vec::new();
        for _ in 0..5 {
            client.goto("about:blank").await.unwrap();
            let started = Instant::now();
            client.goto(&served.url("/")).await.unwrap();
            wait_for(&client, "body[data-ready='1']").await;
            times.push(started.elapsed().as_secs_f64());
        }
        let first = times[0];
        times.sort_by(f64::total_cmp);
        let nodes = client.find_all(Locator::Css("g.node")).await.unwrap().len();
        println!(
            "{input}: median {:.3} s, best {:.3} s, worst {:.3} s, first {first:.3} s (the server builds the view then), {nodes} nodes drawn",
            times[2], times[0], times[4]
        );
    }
    client.close().await.unwrap();
}
