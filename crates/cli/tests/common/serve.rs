//! `palisade serve` as a user starts it: the real binary on a port the kernel picks.

use palisade_agent::{FlowEnd, FlowRecord, Verdict};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `palisade serve`; stopped when dropped.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
}

impl Served {
    /// Serves `paths` (and follows `flows`, when given) until dropped.
    pub fn start(paths: &[&Path], flows: Option<&Path>) -> Served {
        let mut args: Vec<&OsStr> = paths.iter().map(|p| p.as_os_str()).collect();
        if let Some(flows) = flows {
            args.extend([OsStr::new("--flows"), flows.as_os_str()]);
        }
        Self::with_args(&args)
    }

    /// `palisade serve ARGS` (`--kubeconfig K`, say) on a port the kernel picks.
    pub fn with_args<A: AsRef<OsStr>>(args: &[A]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("palisade serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("palisade serve ended before it listened");
            };
            if let Some(address) = line.strip_prefix("serving on ") {
                break address.trim_end_matches('/').to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Served { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A flow record from expense/`src_pod` to `dst_namespace`/`dst_pod`, as an agent writes one.
pub fn flow_record(
    src_pod: &str,
    dst_namespace: &str,
    dst_pod: &str,
    port: u16,
    verdict: Verdict,
) -> FlowRecord {
    FlowRecord {
        time: "2026-12-05T10:00:00Z".into(),
        node: "node-1".into(),
        src: FlowEnd {
            namespace: Some("expense".into()),
            pod: Some(src_pod.into()),
            ip: "10.0.0.1".parse().unwrap(),
            port: 40000,
        },
        dst: FlowEnd {
            namespace: Some(dst_namespace.into()),
            pod: Some(dst_pod.into()),
            ip: "10.0.0.3".parse().unwrap(),
            port,
        },
        protocol: palisade_agent::FlowProtocol::Ported(palisade_engine::Protocol::Tcp),
        direction: palisade_engine::Direction::Ingress,
        verdict,
        policies: vec!["expense/default-deny-ingress".into()],
        more_policies: 0,
        decided_by: "no rule of expense/default-deny-ingress admits it".into(),
        folded: 0,
    }
}

/// Appends records to a flow file as the agent does: one JSON line each.
pub fn append_flows(path: &Path, records: &[FlowRecord]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for r in records {
        writeln!(file, "{}", serde_json::to_string(r).unwrap()).unwrap();
    }
}
