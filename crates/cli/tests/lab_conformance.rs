//! The whole conformance suite on a real lab, as root: every case of `palisade-conformance` runs
//! with the agent enforcing it in every node, every ordered pair is probed on ports 80 and 81
//! over TCP, UDP and SCTP, and the measurement must equal both the engine's analysis and the
//! case's hand-written truth table. Cases with the same pods and outside hosts share one lab:
//! only the manifests the agents watch are swapped, so this also exercises live updates.
//!
//! What the lab cannot build is left out visibly: hostNetwork pods (node traffic), IPv6
//! addresses (the lab is IPv4), and a replicated workload's pods talking to each other (the lab
//! runs one pod per workload). Without root, `ip` or `nft` the test says so and passes.

mod common;

use palisade_conformance::{Case, PORTS};
use palisade_dataplane::RenderOptions;
use palisade_engine::{Analysis, EndpointKind, Protocol};
use palisade_lab::{
    AgentConfig, LabState, LabSubject, Plan, ProbeRow, ProbeSpec, SubjectKind, UpConfig, compare,
    down, lab_cluster, probe, up, wait_for_agents,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NODES: usize = 2;
/// How long the agents may take to apply a case (they poll every 50 ms and take milliseconds).
const AGENT_SYNC: Duration = Duration::from_secs(10);

fn require_lab() {
    common::require_lab("the lab conformance run");
}

/// What the lab can build of a case: one pod per non-hostNetwork endpoint at its IPv4 address,
/// one outside host per IPv4 outside address (named `@<ip>` like the truth table), everything
/// serving 80 and 81 on every protocol the endpoint declares (hosts: all).
fn plan_of(case: &Case) -> Plan {
    let cluster = case.world.cluster();
    let ports = |declared: &mut dyn Iterator<Item = (u16, Protocol)>| {
        let mut by_protocol: [Vec<u16>; 3] = Default::default();
        for (port, protocol) in declared {
            let list = &mut by_protocol[Protocol::ALL.iter().position(|&p| p == protocol).unwrap()];
            if !list.contains(&port) {
                list.push(port);
            }
        }
        by_protocol.iter_mut().for_each(|l| l.sort_unstable());
        by_protocol
    };
    let mut subjects = Vec::new();
    for ep in cluster.endpoints.iter().filter(|ep| !ep.host_network) {
        let Some(IpAddr::V4(ip)) = ep.ips.iter().copied().find(IpAddr::is_ipv4) else {
            panic!(
                "{}: every fixture endpoint has an IPv4 address",
                ep.qualified_name()
            );
        };
        let [tcp, udp, sctp] = ports(&mut ep.ports.iter().map(|p| (p.port, p.protocol)));
        subjects.push(LabSubject {
            name: format!("{}/{}", ep.namespace, ep.name),
            kind: SubjectKind::Pod {
                endpoint: ep.qualified_name(),
            },
            ip,
            node: subjects.len() % NODES,
            tcp,
            udp,
            sctp,
        });
    }
    for ip in case.world.externals() {
        let IpAddr::V4(ip) = *ip else { continue };
        let all = PORTS
            .iter()
            .flat_map(|&port| Protocol::ALL.map(|protocol| (port, protocol)));
        let [tcp, udp, sctp] = ports(&mut all.into_iter());
        subjects.push(LabSubject {
            name: format!("@{ip}"),
            kind: SubjectKind::Host,
            ip,
            node: 0,
            tcp,
            udp,
            sctp,
        });
    }
    Plan {
        nodes: NODES,
        subjects,
        notes: Vec::new(),
    }
}

/// The truth-table label of a lab subject.
fn label(subject: &LabSubject) -> &str {
    match &subject.kind {
        SubjectKind::Pod { endpoint } => endpoint,
        SubjectKind::Host => &subject.name,
    }
}

/// Writes the case's manifests where the agents watch, in one rename so that no agent reads
/// half a file.
fn write_manifests(dir: &Path, case: &Case) {
    let staging = dir.with_extension("staging");
    std::fs::write(&staging, case.world.manifests()).unwrap();
    std::fs::rename(&staging, dir.join("cluster.yaml")).unwrap();
}

struct Outcome {
    probed: usize,
    /// Cells compared with the hand-written table.
    compared_with_table: usize,
    failures: Vec<String>,
}

/// Probes the lab, which must enforce `case` now, and compares with analysis and the table.
fn check_case(state: &LabState, case: &Case, spec: &ProbeSpec) -> Outcome {
    let rows = probe(state, spec).unwrap();
    let analysis = Analysis::new(lab_cluster(case.world.cluster().clone(), state));
    let mut failures: Vec<String> = compare(state, &analysis, &rows)
        .iter()
        .map(|d| {
            format!(
                "{}: {} measured {}, analysis says {}",
                case.name,
                describe(state, &d.row),
                d.row.measured.allowed() == Some(true),
                d.expected
            )
        })
        .collect();
    // The lab is IPv4-only: with IPv6 pod addresses the table may rely on what it cannot build.
    let ipv6 = case
        .world
        .cluster()
        .endpoints
        .iter()
        .any(|ep| ep.ips.iter().any(IpAddr::is_ipv6));
    let replicated = |subject: &LabSubject| {
        case.world.cluster().endpoints.iter().any(|ep| {
            ep.qualified_name() == label(subject)
                && matches!(ep.kind, EndpointKind::Workload { .. })
                && ep.replicas > 1
        })
    };
    let mut compared_with_table = 0;
    for row in &rows {
        let (src, dst) = (&state.subjects[row.src], &state.subjects[row.dst]);
        let Some(measured) = row.measured.allowed() else {
            failures.push(format!(
                "{}: {} not probed",
                case.name,
                describe(state, row)
            ));
            continue;
        };
        if ipv6 || (row.src == row.dst && replicated(src)) {
            continue;
        }
        let expected = case
            .expected
            .get(label(src), label(dst), row.protocol, row.port)
            .unwrap_or_else(|| panic!("{}: no cell for {}", case.name, describe(state, row)));
        compared_with_table += 1;
        if measured != expected {
            failures.push(format!(
                "{}: {} measured {measured}, the truth table says {expected}",
                case.name,
                describe(state, row)
            ));
        }
    }
    Outcome {
        probed: rows.len(),
        compared_with_table,
        failures,
    }
}

fn describe(state: &LabState, row: &ProbeRow) -> String {
    format!(
        "{} -> {} {}/{}",
        label(&state.subjects[row.src]),
        label(&state.subjects[row.dst]),
        row.protocol,
        row.port
    )
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn every_conformance_case_enforced_by_the_agents_measures_as_analysed_and_as_written() {
    require_lab();
    let started = Instant::now();
    // PALISADE_CASES=a,b runs only the cases whose names contain a or b (for debugging).
    let only = std::env::var("PALISADE_CASES").unwrap_or_default();
    let cases: Vec<Case> = palisade_conformance::cases()
        .into_iter()
        .filter(|c| only.split(',').any(|part| c.name.contains(part)))
        .collect();
    // Cases with the same lab subjects share a lab; within a lab, cases run in suite order.
    let mut groups: BTreeMap<String, (Plan, Vec<&Case>)> = BTreeMap::new();
    for case in &cases {
        let plan = plan_of(case);
        let key = format!("{:?}", plan.subjects);
        groups
            .entry(key)
            .or_insert_with(|| (plan, Vec::new()))
            .1
            .push(case);
    }
    let state_root =
        std::env::temp_dir().join(format!("palisade-lab-conformance-{}", std::process::id()));
    let spec = ProbeSpec {
        ports: PORTS.to_vec(),
        protocols: Protocol::ALL.to_vec(),
        timeout: Duration::from_millis(1000),
        parallel: 256,
    };
    let options = RenderOptions {
        audit: false,
        log_group: 100,
    };
    let (mut failures, mut probed, mut compared, mut run) = (Vec::new(), 0, 0, 0);
    for (index, (plan, group)) in groups.values().enumerate() {
        // Unique per process: another test run may be running this very test.
        let name = format!("c{}-{index}", std::process::id());
        let _guard = Guard {
            root: state_root.clone(),
            name: name.clone(),
        };
        let manifests: PathBuf = state_root.join(format!("{name}-manifests"));
        std::fs::create_dir_all(&manifests).unwrap();
        write_manifests(&manifests, group[0]);
        let config = UpConfig {
            name: name.clone(),
            exe: PathBuf::from(env!("CARGO_BIN_EXE_palisade")),
            state_root: state_root.clone(),
            agent: Some(AgentConfig {
                manifests: vec![manifests.clone()],
                extra_args: vec![],
            }),
            manifests: vec![manifests.clone()],
            default_namespace: "default".into(),
            kube: None,
        };
        let lab_started = Instant::now();
        let state = up(plan, &config).unwrap();
        eprintln!(
            "lab {name}: {} subjects up in {:?}; {} cases",
            state.subjects.len(),
            lab_started.elapsed(),
            group.len()
        );
        for case in group {
            let case_started = Instant::now();
            write_manifests(&manifests, case);
            if let Err(e) = wait_for_agents(&state_root, &state, options, AGENT_SYNC) {
                panic!("{}: {e}\n{}", case.name, agent_logs(&state_root, &state));
            }
            let outcome = check_case(&state, case, &spec);
            eprintln!(
                "  {}: {} probes, {} checked against the table, {} wrong, {:?}",
                case.name,
                outcome.probed,
                outcome.compared_with_table,
                outcome.failures.len(),
                case_started.elapsed()
            );
            probed += outcome.probed;
            compared += outcome.compared_with_table;
            for failure in outcome.failures.iter().take(8) {
                eprintln!("    {failure}");
            }
            failures.extend(outcome.failures);
            run += 1;
        }
        down(&state_root, &name).unwrap();
    }
    let _ = std::fs::remove_dir_all(&state_root);
    eprintln!(
        "{run} cases in {} labs: {probed} probes, {compared} compared with the truth tables, {} wrong, {:?}",
        groups.len(),
        failures.len(),
        started.elapsed()
    );
    assert_eq!(run, cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The agents' logs, for a failure message.
fn agent_logs(state_root: &Path, state: &LabState) -> String {
    state
        .nodes
        .iter()
        .map(|node| {
            let path = state_root
                .join(&state.name)
                .join(format!("{node}.agent.log"));
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("--- {}:\n{}", path.display(), tail.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Removes the lab and its manifests when the test ends, also when it fails.
struct Guard {
    root: PathBuf,
    name: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Already removed on success; nothing to remove is fine.
        let _ = down(&self.root, &self.name);
        let _ = std::fs::remove_dir_all(self.root.join(format!("{}-manifests", self.name)));
        // The root is left empty by a failing test: remove it too (fails while not empty).
        let _ = std::fs::remove_dir(&self.root);
    }
}
