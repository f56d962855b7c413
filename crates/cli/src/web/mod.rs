//! `palisade serve`: the web face. One page (compiled into the binary) over a JSON API whose
//! answers come from the same functions as the command line's; docs/web.md describes both.

mod api;
mod flows;
mod view;

use crate::input::{self, ClusterArgs};
use crate::progress::Progress;
use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use clap::Args;
use palisade_engine::{Analysis, Connectivity};
use palisade_manifest::Loaded;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct ServeArgs {
    /// Manifest files or directories (recursive), or `-` for stdin; none: the live cluster.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Flow-record files written by `palisade agent --flow-log`, shown live. Repeatable.
    #[arg(long = "flows", value_name = "FILE")]
    pub flows: Vec<PathBuf>,
    /// Where to listen. The page has no login: keep it on localhost unless everyone who can
    /// reach the address may see the cluster's policies.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
}

/// What the handlers share: the input read once at start, indexed.
pub(crate) struct State {
    analysis: Analysis,
    connectivity: Connectivity,
    /// The input without its cluster (the analysis holds it): origins, diagnostics.
    loaded: Loaded,
    input_errors: bool,
    /// The namespace of objects that name none, for what-if manifests.
    namespace: String,
    flows: Vec<PathBuf>,
    lint: tokio::sync::OnceCell<serde_json::Value>,
    views: std::sync::Mutex<rustc_hash::FxHashMap<String, axum::body::Bytes>>,
}

pub fn run(args: &ServeArgs, namespace: &str) -> anyhow::Result<ExitCode> {
    let progress = Progress::new();
    let input = input::load(&args.paths, &args.cluster, namespace, &progress)?;
    progress.step("computing connectivity");
    let connectivity = input.analysis.connectivity();
    progress.finish();
    for path in &args.flows {
        // A file the agent has not written yet is followed from when it appears.
        if path.exists() {
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        }
    }
    let state = Arc::new(State {
        analysis: input.analysis,
        connectivity,
        loaded: input.loaded,
        input_errors: input.had_errors,
        namespace: namespace.to_string(),
        flows: args.flows.clone(),
        lint: tokio::sync::OnceCell::new(),
        views: Default::default(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        // Tests and scripts read the address (with port 0, the one the kernel chose).
        eprintln!("serving on http://{}/", listener.local_addr()?);
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown())
            .await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn router(state: Arc<State>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| asset("text/html", include_str!("../../web/index.html"))),
        )
        .route(
            "/app.js",
            get(|| asset("text/javascript", include_str!("../../web/app.js"))),
        )
        .route(
            "/style.css",
            get(|| asset("text/css", include_str!("../../web/style.css"))),
        )
        .route("/api/overview", get(api::overview))
        .route("/api/view", get(api::view))
        .route("/api/check", get(api::check))
        .route("/api/policies", get(api::policies))
        .route("/api/policy-source", get(api::policy_source))
        .route("/api/lint", get(api::lint))
        .route("/api/whatif", post(api::what_if))
        .route("/api/flows", get(flows::stream))
        .with_state(state)
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
