//! Root test of the whole agent in a namespaced node: manifests on disk, watched; enforcement
//! equal to the engine; a policy change applied and revoking what it denies; flow records and
//! metrics naming the policies; a restart that keeps the rules in force.

#[path = "../../dataplane/tests/common/mod.rs"]
mod common;

use common::topology::{Node, Proto, probe};
use palisade_agent::{
    AgentConfig, FlowRecord, PodInventory, PodPlacement, Verdict, run_agent_until,
};
use palisade_dataplane::Nft;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PODS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ops, labels: {team: ops}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  containers: [{name: c, image: x, ports: [{name: http, containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec:
  containers: [{name: c, image: x, ports: [{name: pg, containerPort: 5432}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: ops, labels: {app: probe}}
spec:
  containers: [{name: c, image: x}]
"#;

/// db admits `from` (a pod selector in `namespace`) on its named port.
fn db_policy(namespace: &str, app: &str) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: db, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: db}}}}
  ingress:
  - from:
    - namespaceSelector: {{matchLabels: {{team: {namespace}}}}}
      podSelector: {{matchLabels: {{app: {app}}}}}
    ports: [{{port: pg}}]
"#
    )
}

const WEB: &str = "10.1.0.1";
const DB: &str = "10.1.0.2";
const PROBE: &str = "10.2.0.1";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Replaces a file at once (write + rename), as editors and `kubectl` tooling do.
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

struct RunningAgent {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

fn start(node: &Node, args: AgentConfig) -> RunningAgent {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // The agent runs in the node's namespace, as the lab starts it.
    let thread = node
        .node
        .enter(move || std::thread::spawn(move || run_agent_until(args, &flag)))
        .unwrap();
    RunningAgent { stop, thread }
}

impl RunningAgent {
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap().unwrap();
    }
}

/// Probes until the outcome is `expected` (bounded); returns how long it took.
fn until(node: &Node, src: &str, dst: &str, port: u16, expected: bool) -> Duration {
    let started = Instant::now();
    for _ in 0..100 {
        if probe(node, ip(src), ip(dst), Proto::Tcp, port) == expected {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{src} -> {dst}:{port} never became {expected}");
}

/// The value of `name` (with its labels) in a Prometheus text; 0 when it is not there.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn metrics(node: &Node, addr: SocketAddr) -> String {
    node.node
        .enter(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            // HTTP/1.0: the server closes after one answer, so reading to the end returns.
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).unwrap();
            text
        })
        .unwrap()
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn agent_enforces_watches_revokes_records_and_survives_a_restart() {
    palisade_dataplane::require_root_tests(
        "agent_enforces_watches_revokes_records_and_survives_a_restart",
    );
    let node = Node::new(&[vec![ip(WEB)], vec![ip(DB)], vec![ip(PROBE)]]);
    node.serve(&[80, 5432], &[]);
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("pods.yaml"), PODS).unwrap();
    let policy_file = manifests.join("db.yaml");
    write(&policy_file, &db_policy("shop", "web"));
    let inventory = PodInventory {
        pods: [("shop/web", WEB), ("shop/db", DB), ("ops/probe", PROBE)]
            .iter()
            .map(|(name, ip)| PodPlacement {
                name: name.to_string(),
                node: "node0".into(),
                ips: vec![self::ip(ip)],
            })
            .collect(),
    };
    let pods = dir.path().join("pods.json");
    std::fs::write(&pods, serde_json::to_string(&inventory).unwrap()).unwrap();
    let flow_log = dir.path().join("flows.jsonl");
    let metrics_addr: SocketAddr = "127.0.0.1:9464".parse().unwrap();
    let args = AgentConfig {
        node: "node0".into(),
        manifests: vec![manifests.clone()],
        cluster: Default::default(),
        pods: Some(pods),
        metrics_addr,
        render: palisade_dataplane::RenderOptions {
            audit: false,
            log_group: 100,
        },
        cleanup_on_exit: false,
        flow_log: flow_log.clone(),
        flow_log_max_bytes: 100 << 20,
        poll_interval: Duration::from_millis(20),
    };
    let agent = start(&node, args.clone());
    let nft = Nft::new(node.node.runner());
    let generation = |nft: &Nft| {
        nft.current()
            .unwrap()
            .and_then(|t| t.written_by_agent)
            .map(|(g, _)| g)
    };
    // Without a table everything is open: wait (bounded) for the first one.
    for _ in 0..500 {
        if generation(&nft).is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(generation(&nft), Some(1), "the agent applied no table");

    // db admits web only.
    until(&node, WEB, DB, 5432, true);
    assert!(!probe(&node, ip(PROBE), ip(DB), Proto::Tcp, 5432));
    assert!(probe(&node, ip(PROBE), ip(WEB), Proto::Tcp, 80));
    let mut web_db = node.pods[0]
        .ns
        .enter(|| TcpStream::connect(SocketAddr::new(ip(DB), 5432)).unwrap())
        .unwrap();
    web_db
        .set_read_timeout(Some(common::topology::PROBE_WAIT))
        .unwrap();
    let exchange = |stream: &mut TcpStream| {
        let mut buf = [0u8; 4];
        stream.write_all(b"ping").is_ok() && stream.read_exact(&mut buf).is_ok()
    };
    assert!(exchange(&mut web_db));

    // Now db admits probe only: the change is picked up, and web's open connection is cut.
    let old = generation(&nft);
    let changed = Instant::now();
    write(&policy_file, &db_policy("ops", "probe"));
    let mut polls = 0;
    while generation(&nft) == old && polls < 1000 {
        polls += 1;
    }
    eprintln!(
        "change on disk to the new table in the kernel: {:?}",
        changed.elapsed()
    );
    until(&node, PROBE, DB, 5432, true);
    eprintln!(
        "change on disk to the new verdict observed by a probe: {:?}",
        changed.elapsed()
    );
    // Revocation follows the apply: wait (bounded) until the agent reports it.
    let revoked = |text: &str| sample(text, "palisade_revoked_connections_total");
    for _ in 0..200 {
        if revoked(&metrics(&node, metrics_addr)) >= 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "change on disk to established connection revoked: {:?}",
        changed.elapsed()
    );
    assert!(
        !exchange(&mut web_db),
        "web's established connection to db survived the revocation"
    );
    assert!(!probe(&node, ip(WEB), ip(DB), Proto::Tcp, 5432));

    let text = metrics(&node, metrics_addr);
    assert!(text.contains(r#"palisade_policy_verdicts_total{direction="INGRESS",verdict="DROPPED",policy="shop/db"}"#), "{text}");
    // The first table was loaded whole, the change applied as a change.
    for line in [
        r#"palisade_applies_total{how="replace"} 1"#,
        r#"palisade_applies_total{how="changes"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    assert!(text.contains(r#"palisade_policy_verdicts_total{direction="INGRESS",verdict="FORWARDED",policy="shop/db"}"#), "{text}");
    assert!(revoked(&text) >= 1.0, "{text}");
    assert!(
        !text.contains("palisade_last_successful_sync_timestamp_seconds 0.0"),
        "{text}"
    );

    // The table is changed behind the agent's back: an element deleted, an accept rule put
    // first, the whole table deleted. Each time the agent notices at once (nft monitor) and
    // replaces the whole table; what it denied stays denied.
    let wait_for_new_table = |old: Option<u32>| {
        for _ in 0..500 {
            if generation(&nft).is_some_and(|g| Some(g) != old) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no new table after {old:?}");
    };
    let tampering = [
        "delete element inet palisade state { 1 }",
        "insert rule inet palisade forward accept",
        "delete table inet palisade",
    ];
    for command in tampering {
        let old = generation(&nft);
        let tampered = Instant::now();
        node.node.runner().run("nft", &[command], None).unwrap();
        wait_for_new_table(old);
        eprintln!("`nft {command}` repaired in {:?}", tampered.elapsed());
        assert!(
            !probe(&node, ip(WEB), ip(DB), Proto::Tcp, 5432),
            "after `nft {command}` web reached db"
        );
    }
    // Changes after the repairs are applied as changes again.
    let old = generation(&nft);
    write(&policy_file, &db_policy("shop", "web"));
    wait_for_new_table(old);
    until(&node, WEB, DB, 5432, true);
    let old = generation(&nft);
    write(&policy_file, &db_policy("ops", "probe"));
    wait_for_new_table(old);
    until(&node, PROBE, DB, 5432, true);
    let text = metrics(&node, metrics_addr);
    for line in [
        "palisade_table_repairs_total 3",
        r#"palisade_applies_total{how="replace"} 4"#,
        r#"palisade_applies_total{how="changes"} 3"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }

    // Input that cannot be read whole keeps the rules in force: the policy file rewritten in
    // place (truncated, still open), then the whole directory gone. db admits probe only now.
    let load_errors = |text: &str| sample(text, r#"palisade_errors_total{kind="load"}"#);
    // The rules in force stay: the same generation, and `src` still cannot reach db.
    let kept = |in_force: Option<u32>, src: &str, what: &str| {
        assert_eq!(generation(&nft), in_force, "{what}");
        assert!(!probe(&node, ip(src), ip(DB), Proto::Tcp, 5432), "{what}");
    };
    let in_force = generation(&nft);
    let mut rewriting = std::fs::File::create(&policy_file).unwrap();
    rewriting.write_all(b"# being rewritten\n").unwrap();
    // Many polls of the agent: an empty policy file taken for the whole would open db.
    std::thread::sleep(Duration::from_millis(300));
    kept(in_force, WEB, "a half-written file was applied");
    rewriting
        .write_all(db_policy("shop", "web").as_bytes())
        .unwrap();
    drop(rewriting);
    wait_for_new_table(in_force);
    until(&node, WEB, DB, 5432, true);
    assert!(!probe(&node, ip(PROBE), ip(DB), Proto::Tcp, 5432));
    let in_force = generation(&nft);
    let errors_before = load_errors(&metrics(&node, metrics_addr));
    std::fs::remove_dir_all(&manifests).unwrap();
    // The agent reads the inputs again once the deletions are over, and refuses them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while load_errors(&metrics(&node, metrics_addr)) <= errors_before {
        assert!(
            Instant::now() < deadline,
            "no load error for a vanished directory"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kept(in_force, PROBE, "the agent applied a vanished directory");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("pods.yaml"), PODS).unwrap();
    write(&policy_file, &db_policy("ops", "probe"));
    until(&node, PROBE, DB, 5432, true);
    until(&node, WEB, DB, 5432, false);

    let table = || Nft::new(node.node.runner()).current().unwrap();
    let before = table().expect("table in force");
    assert!(before.sealed_and_intact, "{before:?}");
    agent.stop();
    // Exited without --cleanup-on-exit: the rules stay, and still deny.
    assert_eq!(table(), Some(before.clone()));
    assert!(!probe(&node, ip(WEB), ip(DB), Proto::Tcp, 5432));
    // A new agent adopts the same table instead of replacing it.
    let agent = start(&node, args.clone());
    until(&node, PROBE, DB, 5432, true);
    assert_eq!(table(), Some(before.clone()));
    agent.stop();
    // Changed while no agent runs: the next agent replaces it instead of adopting it.
    node.node
        .runner()
        .run("nft", &["insert rule inet palisade forward accept"], None)
        .unwrap();
    until(&node, WEB, DB, 5432, true);
    let tampered = table().expect("table in force");
    assert!(!tampered.sealed_and_intact, "{tampered:?}");
    let agent = start(
        &node,
        AgentConfig {
            cleanup_on_exit: true,
            ..args
        },
    );
    until(&node, WEB, DB, 5432, false);
    let replaced = table().expect("table in force");
    let generation = |t: &palisade_dataplane::TableState| t.written_by_agent.map(|(g, _)| g);
    assert_eq!(generation(&replaced), generation(&before).map(|g| g + 1));
    assert!(replaced.sealed_and_intact);
    agent.stop();
    assert_eq!(table(), None);

    let records: Vec<FlowRecord> = std::fs::read_to_string(&flow_log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let denied_probe = records
        .iter()
        .find(|r| r.src.ip == ip(PROBE) && r.dst.port == 5432 && r.verdict == Verdict::Dropped);
    assert_eq!(
        denied_probe.map(|r| r.decided_by.as_str()),
        Some("no rule of shop/db admits it")
    );
    assert!(records.iter().any(|r| r.src.ip == ip(PROBE)
        && r.dst.port == 5432
        && r.verdict == Verdict::Forwarded
        && r.decided_by == "shop/db ingress rule 1"));
}
