//! Root tests: verdicts logged by the kernel become flow records naming the right policies.

#[path = "../../dataplane/tests/common/mod.rs"]
mod common;

use common::topology::{Node, Proto, probe};
use palisade_agent::flows::{NflogSocket, record};
use palisade_agent::state::Snapshot;
use palisade_agent::{FlowRecord, Verdict};
use palisade_dataplane::{Nft, RenderOptions, render};
use palisade_engine::{Analysis, NodeProgram};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

const GROUP: u16 = 100;

fn snapshot(audit: bool) -> Snapshot {
    let analysis = Analysis::new(common::shop());
    let local = palisade_engine::every_pod_local(analysis.cluster());
    let program = NodeProgram::compile(&analysis, &local);
    let ruleset = render(
        &analysis,
        &program,
        RenderOptions {
            audit,
            log_group: GROUP,
        },
    );
    Snapshot::new(&analysis, program, ruleset)
}

/// Loads the table, makes the connections, and returns the records of what the kernel logged.
fn logged(audit: bool, connections: &[(&str, &str, u16)]) -> (Vec<FlowRecord>, Vec<bool>) {
    let snapshot = Arc::new(snapshot(audit));
    let node = Node::hosting(&common::shop());
    node.serve(&[80, 5432], &[]);
    Nft::new(node.node.runner())
        .apply(&snapshot.ruleset, 3, None)
        .unwrap();
    let mut socket = node
        .node
        .enter(|| NflogSocket::bind(GROUP))
        .unwrap()
        .unwrap();
    let (send, receive) = mpsc::channel();
    let kept = vec![snapshot.clone()];
    std::thread::spawn(move || {
        while let Ok(packets) = socket.receive() {
            for packet in packets {
                if send.send(record(&packet, &kept, "node0")).is_err() {
                    return;
                }
            }
        }
    });
    let opened = connections
        .iter()
        .map(|(src, dst, port)| {
            probe(
                &node,
                src.parse().unwrap(),
                dst.parse().unwrap(),
                Proto::Tcp,
                *port,
            )
        })
        .collect();
    // Records arrive as the packets pass; the last probe has finished, so they are queued.
    let mut records = Vec::new();
    while let Ok(record) = receive.recv_timeout(Duration::from_millis(300)) {
        records.push(record.expect("every logged packet makes a record"));
    }
    (records, opened)
}

fn has(
    records: &[FlowRecord],
    dst: &str,
    port: u16,
    direction: &str,
    verdict: Verdict,
    decided_by: &str,
) -> bool {
    records.iter().any(|r| {
        r.dst.ip.to_string() == dst
            && r.dst.port == port
            && palisade_agent::direction_label(r.direction) == direction
            && r.verdict == verdict
            && r.decided_by == decided_by
    })
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn kernel_verdicts_become_records_with_policies() {
    palisade_dataplane::require_root_tests("kernel_verdicts_become_records_with_policies");
    // probe → web:80 allowed both sides; probe → db:5432 denied by probe's egress; web → db
    // allowed: web's egress is open, db admits web.
    let (records, opened) = logged(
        false,
        &[
            ("10.2.0.1", "10.1.0.1", 80),
            ("10.2.0.1", "10.1.0.2", 5432),
            ("10.1.0.1", "10.1.0.2", 5432),
        ],
    );
    assert_eq!(opened, [true, false, true]);
    for record in &records {
        eprintln!("{}", serde_json::to_string(record).unwrap());
    }
    assert!(has(
        &records,
        "10.1.0.1",
        80,
        "EGRESS",
        Verdict::Forwarded,
        "ops/probe egress rule 1"
    ));
    assert!(has(
        &records,
        "10.1.0.1",
        80,
        "INGRESS",
        Verdict::Forwarded,
        "shop/web ingress rule 1"
    ));
    assert!(has(
        &records,
        "10.1.0.2",
        5432,
        "EGRESS",
        Verdict::Dropped,
        "no rule of ops/probe admits it"
    ));
    assert!(has(
        &records,
        "10.1.0.2",
        5432,
        "EGRESS",
        Verdict::Forwarded,
        "not isolated"
    ));
    assert!(has(
        &records,
        "10.1.0.2",
        5432,
        "INGRESS",
        Verdict::Forwarded,
        "shop/db ingress rule 1"
    ));
    let probe_to_web = records.iter().find(|r| r.dst.port == 80).unwrap();
    assert_eq!(
        (
            probe_to_web.src.namespace.as_deref(),
            probe_to_web.src.pod.as_deref()
        ),
        (Some("ops"), Some("probe"))
    );
    assert_eq!(
        (
            probe_to_web.dst.namespace.as_deref(),
            probe_to_web.dst.pod.as_deref()
        ),
        (Some("shop"), Some("web"))
    );
    // A denied connection never gets further than the side that denied it.
    assert!(!has(
        &records,
        "10.1.0.2",
        5432,
        "INGRESS",
        Verdict::Dropped,
        "no rule of shop/db admits it"
    ));
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn audit_mode_accepts_and_records_what_it_would_drop() {
    palisade_dataplane::require_root_tests("audit_mode_accepts_and_records_what_it_would_drop");
    let (records, opened) = logged(true, &[("10.2.0.1", "10.1.0.2", 5432)]);
    assert_eq!(opened, [true]);
    assert!(has(
        &records,
        "10.1.0.2",
        5432,
        "EGRESS",
        Verdict::Audit,
        "no rule of ops/probe admits it"
    ));
    assert!(has(
        &records,
        "10.1.0.2",
        5432,
        "INGRESS",
        Verdict::Audit,
        "no rule of shop/db admits it"
    ));
    assert!(records.iter().all(|r| r.verdict != Verdict::Dropped));
}
