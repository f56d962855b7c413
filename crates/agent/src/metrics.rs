//! Prometheus metrics of the agent, served as text on a local TCP port.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub direction: String,
    pub verdict: String,
    /// The deciding policies, comma-separated; empty when the pod is not isolated.
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `load`, `apply`, `apply_changes` (the change failed, the table was replaced), `revoke`
    /// or `flow_log`.
    pub kind: String,
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
    pub generation: Gauge,
    pub flow_log_overruns: Counter,
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
        let generation = Gauge::default();
        let flow_log_overruns = Counter::default();
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
            generation,
            flow_log_overruns,
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

    /// Serves `GET /metrics` on `listener` until `done` is set; join the returned thread to
    /// free the port.
    pub fn serve(
        self: std::sync::Arc<Self>,
        listener: TcpListener,
        done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        // Non-blocking accept, so the thread notices `done` (a blocked accept would not).
        listener.set_nonblocking(true)?;
        Ok(std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let answered = stream
                            .set_nonblocking(false)
                            .and_then(|()| self.answer(stream));
                        if let Err(e) = answered {
                            tracing::debug!("metrics request failed: {e}");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => tracing::debug!("metrics accept failed: {e}"),
                }
            }
        }))
    }

    fn answer(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        // Skip the headers up to the blank line.
        let mut line = String::new();
        while reader.read_line(&mut line)? > 2 {
            line.clear();
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("");
        let (status, body) = if path == "/metrics" || path == "/" {
            ("200 OK", self.text())
        } else {
            ("404 Not Found", "not found: try /metrics\n".to_string())
        };
        let mut stream = reader.into_inner();
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }
}

/// Binds the metrics port, naming the address when it cannot.
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn serves_the_registered_metrics() {
        let metrics = std::sync::Arc::new(Metrics::default());
        metrics
            .verdicts
            .get_or_create(&VerdictLabels {
                direction: "INGRESS".into(),
                verdict: "DROPPED".into(),
                policy: "shop/web".into(),
            })
            .inc();
        metrics.error("apply");
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let server = metrics.clone().serve(listener, done.clone()).unwrap();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.contains(r#"palisade_policy_verdicts_total{direction="INGRESS",verdict="DROPPED",policy="shop/web"} 1"#), "{response}");
        assert!(
            response.contains(r#"palisade_errors_total{kind="apply"} 1"#),
            "{response}"
        );
        assert!(
            response.contains("palisade_sync_duration_seconds_bucket"),
            "{response}"
        );
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        server.join().unwrap();
        // Once the server stopped, the port is free again.
        bind(addr).unwrap();
    }
}
