//! Real labs (network namespaces, probe servers) built from engine clusters, as root. Without
//! root or `ip`, every test says so on stderr and passes without running.

mod common;

use palisade_engine::{
    Analysis, Cluster, ContainerPort, Endpoint, IpBlock, LabelSelector, Labels, NetworkPolicy,
    Peer, PolicyTypes, PortRef, PortRule, Protocol, Rule,
};
use palisade_lab::{
    AgentConfig, LabError, LabState, Measured, NotProbed, ProbeSpec, UpConfig, compare, down,
    is_lab_netns, lab_cluster, plan, probe, up,
};
use std::path::PathBuf;
use std::process::Command;

fn require_lab() {
    common::require_lab("the lab library tests");
}

fn state_root() -> PathBuf {
    std::env::temp_dir().join(format!("palisade-lab-tests-{}", std::process::id()))
}

fn config(name: &str) -> UpConfig {
    UpConfig {
        name: name.to_string(),
        exe: PathBuf::from(env!("CARGO_BIN_EXE_palisade")),
        state_root: state_root(),
        agent: None,
        manifests: Vec::new(),
        default_namespace: "default".into(),
        kube: None,
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Pods serving 80 on TCP, UDP and SCTP (as the upstream e2e pods do) and 81 on TCP.
fn pod(ns: &str, name: &str, ip: Option<&str>) -> Endpoint {
    let mut ep = Endpoint::pod(ns, name, labels(&[("pod", name)]));
    ep.ips = ip.into_iter().map(|s| s.parse().unwrap()).collect();
    ep.ports = [
        (80, Protocol::Tcp),
        (80, Protocol::Udp),
        (80, Protocol::Sctp),
        (81, Protocol::Tcp),
    ]
    .into_iter()
    .map(|(port, protocol)| ContainerPort {
        name: None,
        port,
        protocol,
    })
    .collect();
    ep
}

fn cluster(policies: Vec<NetworkPolicy>) -> Cluster {
    Cluster {
        namespaces: vec![],
        endpoints: vec![
            pod("x", "a", None),
            pod("x", "b", Some("10.244.7.7")),
            pod("y", "c", None),
        ]
        .into(),
        policies: policies.into(),
    }
}

/// x/b admits only x/a on TCP 80; every x pod may send to 203.0.113.0/24 only.
fn policies() -> Vec<NetworkPolicy> {
    let ingress_b = NetworkPolicy {
        namespace: "x".into(),
        name: "b-from-a".into(),
        pod_selector: LabelSelector {
            match_labels: labels(&[("pod", "b")]),
            ..Default::default()
        },
        policy_types: PolicyTypes {
            ingress: true,
            egress: false,
        },
        ingress: vec![Rule {
            peers: vec![Peer::Pods {
                namespaces: palisade_engine::NamespaceScope::PolicyNamespace,
                pods: LabelSelector {
                    match_labels: labels(&[("pod", "a")]),
                    ..Default::default()
                },
            }],
            ports: vec![PortRule {
                protocol: Protocol::Tcp,
                port: Some(PortRef::Number(80)),
                end_port: None,
            }],
        }],
        egress: vec![],
    };
    let egress_out = NetworkPolicy {
        namespace: "y".into(),
        name: "c-to-outside".into(),
        pod_selector: LabelSelector::default(),
        policy_types: PolicyTypes {
            ingress: false,
            egress: true,
        },
        ingress: vec![],
        egress: vec![Rule {
            peers: vec![Peer::IpBlock(IpBlock {
                cidr: "203.0.113.0/24".parse().unwrap(),
                except: vec![],
            })],
            ports: vec![PortRule {
                protocol: Protocol::Tcp,
                port: Some(PortRef::Number(443)),
                end_port: None,
            }],
        }],
    };
    vec![ingress_b, egress_out]
}

fn lab_netns(name: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|ns| is_lab_netns(name, ns))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Clears leftovers of an earlier interrupted run on creation and removes the lab on drop, so
/// that a failing assertion leaves nothing behind either.
struct Guard(&'static str);

impl Guard {
    fn new(name: &'static str) -> Self {
        // Nothing to remove is the normal case.
        let _ = down(&state_root(), name);
        Self(name)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = down(&state_root(), self.0);
    }
}

/// Removes the lab and asserts that nothing of it is left.
fn down_and_check(name: &str, state: &LabState) {
    let report = down(&state_root(), name).unwrap();
    assert_eq!(report.namespaces, state.nodes.len() + state.subjects.len());
    assert_eq!(lab_netns(name), Vec::<String>::new());
    assert!(!state_root().join(name).exists());
    for pid in &state.pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Our own children linger as zombies until the test process exits; none may run.
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "process {pid} survived down: {stat}"
        );
    }
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn lab_without_policies_connects_every_pair_and_matches_analysis() {
    require_lab();
    let name = "t-open";
    let _guard = Guard::new(name);
    let cluster = cluster(vec![]);
    let plan = plan(&Analysis::new(cluster.clone()), 2).unwrap();
    let state = up(&plan, &config(name)).unwrap();
    assert_eq!(state.nodes.len(), 2);
    let rows = probe(&state, &ProbeSpec::default()).unwrap();
    // 3 × 3 pairs × (80/TCP, 80/UDP, 80/SCTP, 81/TCP).
    assert_eq!(rows.len(), 36);
    for row in &rows {
        assert_eq!(row.measured, Measured::Allowed, "{row:?}");
    }
    let analysis = Analysis::new(lab_cluster(cluster, &state));
    assert_eq!(compare(&state, &analysis, &rows), vec![]);
    down_and_check(name, &state);
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn unprotected_lab_measures_the_no_policy_matrix_including_outside_hosts() {
    require_lab();
    let name = "t-noagent";
    let _guard = Guard::new(name);
    let with_policies = cluster(policies());
    let plan = plan(&Analysis::new(with_policies.clone()), 3).unwrap();
    let state = up(&plan, &config(name)).unwrap();
    let hosts: Vec<&str> = state
        .subjects
        .iter()
        .filter(|s| s.is_host())
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        hosts,
        [
            "0.0.0.0-203.0.112.255",
            "203.0.113.0/24",
            "203.0.114.0-255.255.255.255"
        ]
    );
    let rows = probe(
        &state,
        &ProbeSpec {
            ports: vec![80, 443],
            protocols: vec![Protocol::Tcp, Protocol::Udp],
            ..Default::default()
        },
    )
    .unwrap();
    let measured: Vec<_> = rows
        .iter()
        .filter(|r| r.measured.allowed().is_some())
        .collect();
    assert!(measured.iter().all(|r| r.measured == Measured::Allowed));
    // Pods do not serve 443: those rows are visibly not probed, not reported as denied.
    let unserved = |r: &&palisade_lab::ProbeRow| {
        state.subjects[r.dst].name == "x/a" && r.port == 443 && r.protocol == Protocol::Tcp
    };
    assert_eq!(rows.iter().filter(unserved).count(), state.subjects.len());
    assert!(
        rows.iter()
            .filter(unserved)
            .all(|r| r.measured == Measured::NotProbed(NotProbed::NotServed))
    );
    // Outside hosts serve 443/TCP (the port their ipBlock rule names) and are reached.
    assert!(
        measured
            .iter()
            .any(|r| state.subjects[r.dst].is_host() && r.port == 443)
    );
    // Nothing enforces: the measurement is the analysis without policies, and not the one
    // with them.
    let no_policies = Analysis::new(lab_cluster(cluster(vec![]), &state));
    assert_eq!(compare(&state, &no_policies, &rows), vec![]);
    let enforced = Analysis::new(lab_cluster(with_policies, &state));
    let differences = compare(&state, &enforced, &rows);
    assert!(
        differences
            .iter()
            .any(|d| state.subjects[d.row.dst].name == "x/b" && d.row.port == 80),
        "{differences:?}"
    );
    down_and_check(name, &state);
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn parallel_labs_with_the_same_addresses_do_not_collide() {
    require_lab();
    let _guards = [Guard::new("t-par1"), Guard::new("t-par2")];
    let cluster = cluster(vec![]);
    let plan = plan(&Analysis::new(cluster), 2).unwrap();
    let states: Vec<LabState> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["t-par1", "t-par2"]
            .into_iter()
            .map(|name| {
                let plan = &plan;
                scope.spawn(move || up(plan, &config(name)).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for state in &states {
        let rows = probe(&state.clone(), &ProbeSpec::default()).unwrap();
        assert!(
            rows.iter().all(|r| r.measured != Measured::Denied),
            "{rows:?}"
        );
    }
    // Removing one leaves the other working.
    down_and_check("t-par1", &states[0]);
    let rows = probe(&states[1], &ProbeSpec::default()).unwrap();
    assert!(rows.iter().all(|r| r.measured != Measured::Denied));
    down_and_check("t-par2", &states[1]);
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn failure_during_up_removes_everything_it_created() {
    require_lab();
    let name = "t-fail";
    let _guard = Guard::new(name);
    let plan = plan(&Analysis::new(cluster(vec![])), 2).unwrap();
    let server_fails = UpConfig {
        // Exits at once: namespaces and links exist by then.
        exe: PathBuf::from("/bin/false"),
        ..config(name)
    };
    let agent_fails = UpConfig {
        // An option the agent does not know: it exits with a usage error after the servers
        // are up.
        agent: Some(AgentConfig {
            manifests: vec![PathBuf::from("/nonexistent")],
            extra_args: vec!["--no-such-option".into()],
        }),
        ..config(name)
    };
    for (config, expected) in [(server_fails, "ServerFailed"), (agent_fails, "AgentFailed")] {
        let err = up(&plan, &config).unwrap_err();
        assert!(format!("{err:?}").starts_with(expected), "{err:?}");
        assert_eq!(lab_netns(name), Vec::<String>::new());
        assert!(!state_root().join(name).exists());
        assert!(matches!(
            down(&state_root(), name),
            Err(LabError::NoSuchLab(_))
        ));
    }
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn a_second_lab_with_the_same_name_is_refused_and_the_first_survives() {
    require_lab();
    let name = "t-twice";
    let _guard = Guard::new(name);
    let plan = plan(&Analysis::new(cluster(vec![])), 2).unwrap();
    let state = up(&plan, &config(name)).unwrap();
    let err = up(&plan, &config(name)).unwrap_err();
    assert!(matches!(err, LabError::Exists(_)), "{err}");
    let rows = probe(&state, &ProbeSpec::default()).unwrap();
    assert!(rows.iter().all(|r| r.measured != Measured::Denied));
    down_and_check(name, &state);
}

/// Every veth of every lab namespace has its peer in a namespace of the same lab: nothing
/// links the lab to the machine's own namespace.
fn assert_sealed(name: &str) {
    let namespaces = lab_netns(name);
    assert!(!namespaces.is_empty());
    for ns in &namespaces {
        let out = Command::new("ip")
            .args(["-n", ns, "-o", "link", "show", "type", "veth"])
            .output()
            .unwrap();
        let links = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!links.is_empty(), "{ns} has no veth");
        for link in links.lines() {
            let peer_ns = link
                .split_whitespace()
                .skip_while(|w| *w != "link-netns")
                .nth(1)
                .unwrap_or("<root>");
            assert!(namespaces.iter().any(|n| n == peer_ns), "{ns}: {link}");
        }
    }
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn prober_sees_what_a_node_drops_and_the_lab_is_sealed() {
    require_lab();
    let name = "t-drop";
    let _guard = Guard::new(name);
    let mut cluster = cluster(vec![]);
    cluster.endpoints.push(pod("y", "d", None));
    // Pods on nodes 0, 1, 2, 0.
    let plan = plan(&Analysis::new(cluster), 3).unwrap();
    let state = up(&plan, &config(name)).unwrap();
    assert_sealed(name);
    for nft in [
        "add table inet t",
        "add chain inet t f { type filter hook forward priority 0; policy drop; }",
    ] {
        let status = Command::new("ip")
            .args(["netns", "exec", &state.nodes[0], "nft", nft])
            .status()
            .unwrap();
        assert!(status.success(), "nft {nft}");
    }
    let rows = probe(
        &state,
        &ProbeSpec {
            ports: vec![80],
            protocols: vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp],
            timeout: std::time::Duration::from_millis(300),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(rows.len(), 4 * 4 * 3);
    for row in &rows {
        let (src, dst) = (&state.subjects[row.src], &state.subjects[row.dst]);
        let expected = row.src == row.dst || (src.node != 0 && dst.node != 0);
        assert_eq!(
            row.measured.allowed(),
            Some(expected),
            "{} -> {} {row:?}",
            src.name,
            dst.name
        );
    }
    down_and_check(name, &state);
}

/// Pods serving 80 on TCP, UDP and SCTP and 81 on SCTP; x/b admits only x/a, on SCTP 80.
const SCTP_CLUSTER: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-sctp-from-a, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
    - from: [{podSelector: {matchLabels: {pod: a}}}]
      ports: [{protocol: SCTP, port: 80}]
"#;

fn sctp_pod(ns: &str, name: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{pod: {name}}}}}\n\
         spec:\n  containers:\n    - name: c\n      image: busybox\n      ports:\n\
         \x20       - {{containerPort: 80}}\n        - {{containerPort: 80, protocol: UDP}}\n\
         \x20       - {{containerPort: 80, protocol: SCTP}}\n        - {{containerPort: 81, protocol: SCTP}}\n"
    )
}

/// The agents enforce a manifest set: every measured pair equals the analysis, and the
/// policies deny some of them. The expense example has a DNS pod and an outside API host; the
/// SCTP set is probed with raw INIT / INIT-ACK through the agents' conntrack rules.
#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn agents_enforce_exactly_the_analysis() {
    require_lab();
    let sctp_dir = std::env::temp_dir().join(format!("palisade-lab-sctp-{}", std::process::id()));
    std::fs::create_dir_all(&sctp_dir).unwrap();
    let text = SCTP_CLUSTER.to_string()
        + &sctp_pod("x", "a")
        + &sctp_pod("x", "b")
        + &sctp_pod("y", "c")
        + &sctp_pod("y", "d");
    std::fs::write(sctp_dir.join("cluster.yaml"), text).unwrap();
    let expense = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/expense");
    for (name, manifests, nodes) in [("t-agent", expense, 2), ("t-sctp", sctp_dir.clone(), 3)] {
        let _guard = Guard::new(name);
        let loaded = palisade_manifest::load_paths(
            std::slice::from_ref(&manifests),
            &palisade_manifest::LoadOptions::default(),
        );
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let plan = plan(&Analysis::new(loaded.cluster.clone()), nodes).unwrap();
        let config = UpConfig {
            agent: Some(AgentConfig {
                manifests: vec![manifests],
                extra_args: vec![],
            }),
            ..config(name)
        };
        let state = up(&plan, &config).unwrap();
        let rows = probe(&state, &ProbeSpec::default()).unwrap();
        let analysis = Analysis::new(lab_cluster(loaded.cluster, &state));
        assert_eq!(compare(&state, &analysis, &rows), vec![], "{name}");
        assert!(
            rows.iter().any(|r| r.measured == Measured::Denied),
            "{name}"
        );
        assert!(
            rows.iter().any(|r| r.measured == Measured::Allowed),
            "{name}"
        );
        if name == "t-agent" {
            assert!(state.subjects.iter().any(|s| s.is_host()));
        } else {
            let sctp = |allowed| {
                rows.iter()
                    .any(|r| r.protocol == Protocol::Sctp && r.measured.allowed() == Some(allowed))
            };
            assert!(sctp(true) && sctp(false));
        }
        down_and_check(name, &state);
    }
    std::fs::remove_dir_all(&sctp_dir).unwrap();
}
