//! The lab on a real API server (`lab up --kube`), as root: pods registered as a kubelet
//! would, agents watching the API with the shipped ClusterRole's token. Policies applied
//! through the API are enforced; 100 updates under load let no denied connection through; the
//! API server unreachable (or stopped) for 30 s leaves the rules in force, and what changed
//! meanwhile is enforced once it is back; an agent whose role lacks a verb fails naming it.
//! Without root, `ip`, `nft` or a kube-apiserver (Go, or the cached build) every test says
//! SKIPPED and passes.

mod common;

use common::netns::{assert_hammer_gets_through, in_netns, no_connection_through_during, pod_of};

use k8s_openapi::api::networking::v1 as net;
use k8s_openapi::api::rbac::v1 as rbac;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use palisade_dataplane::{Nft, RenderOptions, Runner};
use palisade_engine::Analysis;
use palisade_lab::kube::{KubeState, register, start_control_plane, stop_control_plane};
use palisade_lab::{
    AgentConfig, LabState, ProbeSpec, Relay, UpConfig, compare, down, lab_cluster, plan, probe, up,
    wait_for_agents,
};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The agents' watches back off up to half a minute while the API server is away.
const AGENT_SYNC: Duration = Duration::from_secs(90);
const OPTIONS: RenderOptions = RenderOptions {
    audit: false,
    log_group: 100,
};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kube-env")
}

fn can_run() -> bool {
    common::require_lab("the lab tests on the API server");
    let cached = Command::new(script())
        .arg("build")
        .env("PALISADE_KUBE_ONLY_CACHED", "1")
        .output()
        .is_ok_and(|o| o.status.success());
    let go = Command::new("go").arg("version").output().is_ok();
    if !(cached || go) {
        palisade_dataplane::say_skipped(
            "the lab tests on the API server need a kube-apiserver (no Go toolchain to build one)",
        );
    }
    cached || go
}

/// Pods x/a, x/b, x/c serving 80 and 81 over TCP, spread over two nodes (b alone on node 1).
const PODS: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\n\
    apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {pod: a}}\n\
    spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}, {containerPort: 81}]}]}\n---\n\
    apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x, labels: {pod: b}}\n\
    spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}, {containerPort: 81}]}]}\n---\n\
    apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: x, labels: {pod: c}}\n\
    spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}, {containerPort: 81}]}]}\n";

/// `x/b-from`: x/b admits the given (pod, TCP port) pairs, and nothing else.
fn b_admits(sources: &[(&str, u16)]) -> net::NetworkPolicy {
    let rules: String = sources
        .iter()
        .map(|(pod, port)| {
            format!("- from: [{{podSelector: {{matchLabels: {{pod: {pod}}}}}}}]\n  ports: [{{port: {port}}}]\n")
        })
        .collect();
    let text = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: b-from, namespace: x}}\n\
         spec:\n  podSelector: {{matchLabels: {{pod: b}}}}\n  policyTypes: [Ingress]\n  ingress:\n{}",
        rules
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    serde_saphyr::from_str(&text).unwrap()
}

/// A lab registered in its own API server; removed (API server included) on drop.
struct KubeLab {
    root: PathBuf,
    state: LabState,
    kube: KubeState,
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
}

impl KubeLab {
    fn start(test: &str) -> KubeLab {
        let name = format!("k{test}{}", std::process::id());
        let root = std::env::temp_dir().join(format!("palisade-lab-kube-{name}"));
        let manifests = root.join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        std::fs::write(manifests.join("pods.yaml"), PODS).unwrap();
        let kube_dir = root.join("control-plane");
        let admin = start_control_plane(&script(), &kube_dir).unwrap();
        let loaded = palisade_manifest::load_paths(
            std::slice::from_ref(&manifests),
            &palisade_manifest::LoadOptions::default(),
        );
        let analysis = Analysis::new(loaded.cluster);
        let mut plan = plan(&analysis, 2).unwrap();
        let node_names = ["node0".to_string(), "node1".to_string()];
        let agent_kubeconfig = palisade_lab::state_dir(&root, &name).join("agent.kubeconfig");
        let registered = register(
            &admin,
            &mut plan,
            &analysis,
            std::slice::from_ref(&manifests),
            "default",
            &node_names,
            agent_kubeconfig,
        );
        let mut kube = match registered {
            Ok(kube) => kube,
            Err(e) => {
                stop_control_plane(&script(), &kube_dir);
                panic!("registering the lab: {e}");
            }
        };
        kube.started = Some((script(), kube_dir.clone()));
        let config = UpConfig {
            name: name.clone(),
            exe: PathBuf::from(env!("CARGO_BIN_EXE_palisade")),
            state_root: root.clone(),
            agent: Some(AgentConfig {
                manifests: vec![],
                extra_args: vec![],
            }),
            manifests: vec![manifests],
            default_namespace: "default".into(),
            kube: Some(kube.clone()),
        };
        let state = match up(&plan, &config) {
            Ok(state) => state,
            Err(e) => {
                stop_control_plane(&script(), &kube_dir);
                panic!("lab up: {e}");
            }
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let client = runtime.block_on(async {
            let config = kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(&kube.admin_kubeconfig).unwrap(),
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .unwrap();
            kube::Client::try_from(config).unwrap()
        });
        KubeLab {
            root,
            state,
            kube,
            runtime,
            client,
        }
    }

    /// Applies a policy through the API (as `kubectl apply` would) and waits until every agent
    /// enforces what the API server holds.
    fn apply(&self, policy: &net::NetworkPolicy) {
        self.apply_only(policy);
        self.synced();
    }

    fn apply_only(&self, policy: &net::NetworkPolicy) {
        let api: Api<net::NetworkPolicy> = Api::namespaced(self.client.clone(), "x");
        let name = policy.metadata.name.clone().unwrap();
        let params = PatchParams::apply("palisade-test").force();
        self.runtime
            .block_on(api.patch(&name, &params, &Patch::Apply(policy)))
            .unwrap();
    }

    fn delete(&self, name: &str) {
        let api: Api<net::NetworkPolicy> = Api::namespaced(self.client.clone(), "x");
        self.runtime
            .block_on(api.delete(name, &DeleteParams::default()))
            .unwrap();
    }

    fn synced(&self) {
        wait_for_agents(&self.root, &self.state, OPTIONS, AGENT_SYNC).unwrap();
    }

    /// Measured connectivity equals the API's analysis (what `matrix --kubeconfig` answers).
    fn enforced_equals_analysed(&self) {
        let rows = probe(&self.state, &ProbeSpec::default()).unwrap();
        let options = palisade_manifest::LoadOptions::default();
        let (loaded, _) = palisade_lab::kube::read(&self.kube, &options).unwrap();
        let analysis = Analysis::new(lab_cluster(loaded.cluster, &self.state));
        assert_eq!(compare(&self.state, &analysis, &rows), vec![]);
        assert!(rows.len() >= 6, "{} rows probed", rows.len());
    }

    fn pod(&self, name: &str) -> (String, SocketAddr) {
        pod_of(&self.state, name)
    }

    /// Whether `src` can open a TCP connection to `dst:port` now.
    fn reaches(&self, src: &str, dst: &str, port: u16) -> bool {
        let (netns, _) = self.pod(src);
        let (_, addr) = self.pod(dst);
        let target = SocketAddr::new(addr.ip(), port);
        in_netns(&netns, move || {
            TcpStream::connect_timeout(&target, Duration::from_millis(300)).is_ok()
        })
    }

    /// The relays that bring the API server into the node namespaces (pids of `lab relay`).
    fn relay_pids(&self) -> Vec<i32> {
        self.state
            .pids
            .iter()
            .copied()
            .filter(|&pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("relay"))
            })
            .collect()
    }
}

impl Drop for KubeLab {
    fn drop(&mut self) {
        // Runs on failure too: namespaces, processes and the API server must not outlive it.
        let _ = down(&self.root, &self.state.name);
        if let Some((script, dir)) = &self.kube.started {
            stop_control_plane(script, dir);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn policies_applied_through_the_api_are_enforced_as_analysed() {
    if !can_run() {
        return;
    }
    let lab = KubeLab::start("apply");
    lab.synced();
    lab.enforced_equals_analysed();
    assert!(lab.reaches("c", "b", 81), "no policy yet: open");
    lab.apply(&b_admits(&[("a", 80)]));
    lab.enforced_equals_analysed();
    assert!(lab.reaches("a", "b", 80));
    assert!(!lab.reaches("c", "b", 81));
    lab.delete("b-from");
    lab.synced();
    assert!(
        lab.reaches("c", "b", 81),
        "the policy was deleted: open again"
    );
    lab.enforced_equals_analysed();
}

/// A restarted agent recognises the table its predecessor compiled from the same API objects
/// (same objects, same table, whatever order the watches delivered them in) and keeps it: no
/// new generation, no moment without rules.
#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn a_restarted_agent_adopts_its_table() {
    if !can_run() {
        return;
    }
    let lab = KubeLab::start("restart");
    lab.apply(&b_admits(&[("a", 80)]));
    let node = lab.state.nodes[0].clone();
    let nft = Nft::new(Runner::in_netns(node.clone()));
    let table = || nft.current().unwrap().and_then(|t| t.written_by_agent);
    let before = table().expect("the agent's table");
    let agent = lab
        .state
        .pids
        .iter()
        .copied()
        .find(|&pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(" agent ") && cmdline.contains("node0")
        })
        .expect("node0's agent");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    while Path::new(&format!("/proc/{agent}")).exists()
        && !std::fs::read_to_string(format!("/proc/{agent}/stat")).is_ok_and(|s| s.contains(") Z "))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(table(), Some(before), "the rules stay while no agent runs");
    let mut restarted = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node,
            env!("CARGO_BIN_EXE_palisade"),
            "agent",
        ])
        .args(["--node", "node0", "--flow-log", "/dev/null", "--kubeconfig"])
        .arg(&lab.kube.agent_kubeconfig)
        .spawn()
        .unwrap();
    lab.synced();
    assert_eq!(table(), Some(before), "adopted, not applied again");
    // The restarted agent enforces changes: x/a (on its node) closed to everyone.
    let a_closed = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
        metadata: {name: a-closed, namespace: x}\n\
        spec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress]}\n";
    lab.apply(&serde_saphyr::from_str(a_closed).unwrap());
    assert_ne!(table(), Some(before));
    assert!(!lab.reaches("c", "a", 80));
    let _ = restarted.kill();
    let _ = restarted.wait();
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn policy_updates_through_the_api_under_load_leak_no_denied_connection() {
    if !can_run() {
        return;
    }
    const UPDATES: usize = 100;
    // Both versions deny c -> b:81 but differ elsewhere, so every update changes the table.
    let versions = [b_admits(&[("a", 80)]), b_admits(&[("a", 81), ("c", 80)])];
    let lab = KubeLab::start("upd");
    lab.apply(&versions[0]);
    let (c, _) = lab.pod("c");
    let (_, b) = lab.pod("b");
    no_connection_through_during(&c, SocketAddr::new(b.ip(), 81), UPDATES, |update| {
        lab.apply(&versions[update % 2])
    });
    // The detector works: the pair the last version admits is open.
    lab.apply(&b_admits(&[("c", 81)]));
    assert_hammer_gets_through(&c, SocketAddr::new(b.ip(), 81));
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn an_api_server_away_for_30_seconds_keeps_the_rules_and_what_changed_meanwhile_is_enforced() {
    if !can_run() {
        return;
    }
    let lab = KubeLab::start("away");
    lab.apply(&b_admits(&[("a", 80)]));
    assert!(lab.reaches("a", "b", 80));
    assert!(!lab.reaches("c", "b", 81));
    // The agents lose the API server: their relays stop (the server itself stays up, so the
    // change below can be made meanwhile).
    let relays = lab.relay_pids();
    assert_eq!(relays.len(), 2, "one relay per node");
    for pid in &relays {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
    }
    let away = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    lab.apply_only(&b_admits(&[("c", 81)]));
    // Rules stay in force while the server is away: the old verdicts hold.
    while away.elapsed() < Duration::from_secs(30) {
        assert!(lab.reaches("a", "b", 80), "the rules in force were dropped");
        assert!(
            !lab.reaches("c", "b", 81),
            "a change arrived without the API"
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    let back: Vec<Relay> = lab
        .state
        .nodes
        .iter()
        .map(|node| Relay::start(node, lab.kube.server).unwrap())
        .collect();
    let returned = Instant::now();
    lab.synced();
    eprintln!(
        "the agents caught up {:?} after the API server came back",
        returned.elapsed()
    );
    assert!(
        lab.reaches("c", "b", 81),
        "the change made meanwhile is enforced"
    );
    assert!(!lab.reaches("a", "b", 80));
    lab.enforced_equals_analysed();
    drop(back);
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn an_api_server_stopped_for_30_seconds_keeps_the_rules_and_the_agents_catch_up() {
    if !can_run() {
        return;
    }
    let lab = KubeLab::start("stop");
    lab.apply(&b_admits(&[("a", 80)]));
    let (script, dir) = lab.kube.started.clone().unwrap();
    let control = |verb: &str| {
        let status = Command::new(&script)
            .arg(verb)
            .env("PALISADE_KUBE_DIR", &dir)
            .status()
            .unwrap();
        assert!(status.success(), "kube-env {verb}");
    };
    control("stop-apiserver");
    let stopped = Instant::now();
    while stopped.elapsed() < Duration::from_secs(30) {
        assert!(lab.reaches("a", "b", 80), "the rules in force were dropped");
        assert!(
            !lab.reaches("c", "b", 81),
            "the rules in force were dropped"
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    control("start-apiserver");
    // Changed as soon as the server is back, while the agents still wait out their backoff.
    lab.apply_only(&b_admits(&[("c", 81)]));
    let back = Instant::now();
    lab.synced();
    eprintln!(
        "the agents caught up {:?} after the API server came back",
        back.elapsed()
    );
    assert!(lab.reaches("c", "b", 81), "the change is enforced");
    assert!(!lab.reaches("a", "b", 80));
    lab.enforced_equals_analysed();
}

#[test]
#[ignore = "needs root, iproute2 and nft: as root, cargo test -- --include-ignored"]
fn an_agent_whose_role_lacks_a_verb_fails_naming_it() {
    if !can_run() {
        return;
    }
    let lab = KubeLab::start("rbac");
    lab.synced();
    let roles: Api<rbac::ClusterRole> = Api::all(lab.client.clone());
    let mut role = lab.runtime.block_on(roles.get("palisade-agent")).unwrap();
    for rule in role.rules.iter_mut().flatten() {
        if rule.resources.iter().flatten().any(|r| r == "pods") {
            rule.verbs.retain(|v| v != "watch");
        }
    }
    role.metadata.managed_fields = None;
    lab.runtime
        .block_on(roles.replace("palisade-agent", &Default::default(), &role))
        .unwrap();
    let node = &lab.state.nodes[0];
    let output = Command::new("ip")
        .args([
            "netns",
            "exec",
            node,
            env!("CARGO_BIN_EXE_palisade"),
            "agent",
        ])
        .args(["--node", "node0", "--metrics-addr", "127.0.0.1:9470"])
        .arg("--kubeconfig")
        .arg(&lab.kube.agent_kubeconfig)
        .args(["--flow-log", "/dev/null", "--log-group", "101"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("refused to watch pods"),
        "the error names the verb and the resource: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
