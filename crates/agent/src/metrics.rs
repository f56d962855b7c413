//! Prometheus metrics of the agent, served as text on a local TCP port.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub direction: String,
    pub verdict: String,
    /// The deciding policies, comma-separated; empty when the pod is not isolated.
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `load`, `routes` (the node's routes to its pods), `apply`, `apply_changes` (the change
    /// failed, the table was replaced), `seal`, `revoke` or `flow_log`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    /// `pods`, `namespaces`, `nodes` or `networkpolicies`.
    pub resource: String,
    /// `apply`, `delete`, `relist` (a list started) or `listed` (it completed).
    pub event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabels {
    /// `changes` (only what changed was touched) or `replace` (the whole table).
    pub how: String,
}

pub struct Metrics {
    registry: Registry,
    pub verdicts: Family<VerdictLabels, Counter>,
    pub sync_seconds: Histogram,
    pub rules: Gauge,
    pub set_elements: Gauge,
    pub last_sync: Gauge<f64, AtomicU64>,
    pub errors: Family<ErrorLabels, Counter>,
    pub applies: Family<ApplyLabels, Counter>,
    pub revoked: Counter,
    pub table_repairs: Counter,
    pub generation: Gauge,
    pub flow_log_overruns: Counter,
    pub change_to_applied: Histogram,
    pub watch_events: Family<WatchLabels, Counter>,
    pub watch_errors: Family<ResourceLabels, Counter>,
    pub watch_last_event: Family<ResourceLabels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("palisade");
        let verdicts = Family::<VerdictLabels, Counter>::default();
        // From 1 ms to about 16 s.
        let sync_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let rules = Gauge::default();
        let set_elements = Gauge::default();
        let last_sync = Gauge::<f64, AtomicU64>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let applies = Family::<ApplyLabels, Counter>::default();
        let revoked = Counter::default();
        let table_repairs = Counter::default();
        let generation = Gauge::default();
        let flow_log_overruns = Counter::default();
        let change_to_applied = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let watch_events = Family::<WatchLabels, Counter>::default();
        let watch_errors = Family::<ResourceLabels, Counter>::default();
        let watch_last_event = Family::<ResourceLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "change_to_applied_seconds",
            "From a change of the inputs (an API event received, a manifest written) to the \
             rules that follow from it being in force: the watch lag",
            change_to_applied.clone(),
        );
        registry.register(
            "watch_events",
            "Events of the API server watches, by resource and kind of event",
            watch_events.clone(),
        );
        registry.register(
            "watch_errors",
            "Failed API server watches or lists (retried with backoff), by resource",
            watch_errors.clone(),
        );
        registry.register(
            "watch_last_event_timestamp_seconds",
            "When a watch last received an event (Unix time), by resource",
            watch_last_event.clone(),
        );
        registry.register(
            "policy_verdicts",
            "Verdicts on new connections, from the kernel's log",
            verdicts.clone(),
        );
        registry.register(
            "sync_duration_seconds",
            "Time to load, compile and apply the rules",
            sync_seconds.clone(),
        );
        registry.register("rules", "Rules in the node's nftables table", rules.clone());
        registry.register(
            "set_elements",
            "Set and map elements in the node's nftables table",
            set_elements.clone(),
        );
        registry.register(
            "last_successful_sync_timestamp_seconds",
            "When the rules were last applied (Unix time)",
            last_sync.clone(),
        );
        registry.register("errors", "Failures, by kind", errors.clone());
        registry.register(
            "applies",
            "Tables made the one in force, by how: changing only what changed, or replacing it",
            applies.clone(),
        );
        registry.register(
            "revoked_connections",
            "Established connections cut because a change denies them",
            revoked.clone(),
        );
        registry.register(
            "table_repairs",
            "Times the table in the kernel was found changed or gone (not by this agent) and \
             was replaced whole",
            table_repairs.clone(),
        );
        registry.register(
            "generation",
            "Generation of the rules in force, set once they are applied and the connections \
             they deny are revoked",
            generation.clone(),
        );
        registry.register(
            "flow_log_overruns",
            "Times the kernel dropped verdict records because its NFLOG buffer was full \
             (ENOBUFS); flow records were lost each time",
            flow_log_overruns.clone(),
        );
        Self {
            registry,
            verdicts,
            sync_seconds,
            rules,
            set_elements,
            last_sync,
            errors,
            applies,
            revoked,
            table_repairs,
            generation,
            flow_log_overruns,
            change_to_applied,
            watch_events,
            watch_errors,
            watch_last_event,
        }
    }
}

impl Metrics {
    pub fn error(&self, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn applied(&self, how: &str) {
        self.applies
            .get_or_create(&ApplyLabels {
                how: how.to_string(),
            })
            .inc();
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Whether the agent is alive (its loop turns) and ready (rules from a complete read of its
/// inputs are in force), for `/healthz` and `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    /// When the agent's loop last turned (Unix seconds).
    heartbeat: AtomicU64,
}

/// A loop that has not turned for this long is stuck: `/healthz` fails, the kubelet restarts
/// the agent.
const STUCK_AFTER_SECONDS: u64 = 60;

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn beat(&self) {
        self.heartbeat.store(unix_seconds(), Ordering::Relaxed);
    }

    fn alive(&self) -> bool {
        let last = self.heartbeat.load(Ordering::Relaxed);
        last == 0 || unix_seconds().saturating_sub(last) < STUCK_AFTER_SECONDS
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One slow or idle client must never hold up another, nor a request run for ever.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` (each connection on its own task)
/// until `done` is set; await the returned task to free the port. Call inside a runtime.
pub fn serve(
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    listener: TcpListener,
    done: Arc<AtomicBool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let text = {
        let metrics = metrics.clone();
        move || async move {
            (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                metrics.text(),
            )
        }
    };
    let alive = health.clone();
    let router = axum::Router::new()
        .route("/metrics", get(text.clone()))
        .route("/", get(text))
        .route(
            "/healthz",
            get(move || async move {
                if alive.alive() {
                    (StatusCode::OK, "ok\n")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the agent's loop is stuck\n",
                    )
                }
            }),
        )
        .route(
            "/readyz",
            get(move || async move {
                if health.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok\n")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no rules from a complete read of the inputs are in force yet\n",
                    )
                }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: try /metrics\n") })
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    let shutdown = async move {
        while !done.load(Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!("the metrics server stopped: {e}");
        }
    }))
}

impl palisade_kube::WatchObserver for Metrics {
    fn event(&self, resource: &'static str, event: &'static str) {
        self.watch_events
            .get_or_create(&WatchLabels {
                resource: resource.to_string(),
                event: event.to_string(),
            })
            .inc();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.watch_last_event
            .get_or_create(&ResourceLabels {
                resource: resource.to_string(),
            })
            .set(now);
    }

    fn error(&self, resource: &'static str, _message: &str) {
        self.watch_errors
            .get_or_create(&ResourceLabels {
                resource: resource.to_string(),
            })
            .inc();
    }
}

/// Binds the metrics port, naming the address when it cannot.
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    /// Metrics, liveness and readiness are served, to several clients at once: a client that
    /// connects and says nothing blocks no scrape.
    #[test]
    fn serves_metrics_and_health_while_a_client_idles() {
        let metrics = Arc::new(Metrics::default());
        metrics
            .verdicts
            .get_or_create(&VerdictLabels {
                direction: "INGRESS".into(),
                verdict: "DROPPED".into(),
                policy: "shop/web".into(),
            })
            .inc();
        metrics.error("apply");
        palisade_kube::WatchObserver::event(&*metrics, "pods", "apply");
        let health = Arc::new(Health::default());
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = {
            let _entered = runtime.enter();
            serve(metrics.clone(), health.clone(), listener, done.clone()).unwrap()
        };
        let _idle = TcpStream::connect(addr).unwrap();
        let response = get(addr, "/metrics");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.contains(r#"palisade_policy_verdicts_total{direction="INGRESS",verdict="DROPPED",policy="shop/web"} 1"#), "{response}");
        assert!(
            response.contains(r#"palisade_errors_total{kind="apply"} 1"#),
            "{response}"
        );
        assert!(
            response.contains(r#"palisade_watch_events_total{resource="pods",event="apply"} 1"#),
            "{response}"
        );
        assert!(
            response.contains("palisade_sync_duration_seconds_bucket"),
            "{response}"
        );
        assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200"));
        let unready = get(addr, "/readyz");
        assert!(unready.starts_with("HTTP/1.1 503"), "{unready}");
        health.set_ready(true);
        assert!(get(addr, "/readyz").starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/nothing").starts_with("HTTP/1.1 404"));
        done.store(true, Ordering::Relaxed);
        runtime.block_on(server).unwrap();
        // Once the server stopped, the port is free again.
        bind(addr).unwrap();
    }
}
