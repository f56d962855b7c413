//! Building and removing a lab: node and pod namespaces, routed Calico-style, with a probe
//! server in every pod and optionally the agent in every node. Whatever `up` created is removed
//! again when it fails or is interrupted; `down` removes a lab by its names alone.

use crate::LabError;
use crate::kube::KubeState;
use crate::net;
use crate::plan::{
    GATEWAY, LabSubject, NODE_SIDE_MAC, Plan, SubjectKind, node_link_mac, subject_mac,
};
use palisade_agent::{PodInventory, PodPlacement};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Every lab namespace is named `palisade-<lab>-<role>`.
pub const PREFIX: &str = "palisade-";
/// Default state root; each lab keeps `<root>/<name>/state.json` and its logs there.
pub const DEFAULT_STATE_ROOT: &str = "/run/palisade";
const STATE_FILE: &str = "state.json";
/// Written for the agents when they run: which pods each node hosts, with their addresses.
pub const INVENTORY_FILE: &str = "pods.json";
/// How long an agent may take to install its first ruleset.
const AGENT_START: Duration = Duration::from_secs(10);
/// How long stopping processes may take before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How to start the agent in each node.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Manifest paths the agent reads (and watches).
    pub manifests: Vec<PathBuf>,
    /// Extra arguments after `agent --node NAME --manifests …`.
    pub extra_args: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct UpConfig {
    pub name: String,
    /// The `palisade` binary: runs `lab serve` in pods and `agent` in nodes.
    pub exe: PathBuf,
    pub state_root: PathBuf,
    /// `None`: an unprotected lab (`--no-agent`).
    pub agent: Option<AgentConfig>,
    /// Manifests the lab was built from, kept for `probe --compare`.
    pub manifests: Vec<PathBuf>,
    pub default_namespace: String,
    /// The lab is registered in an API server, and its agents watch it.
    pub kube: Option<KubeState>,
}

/// What `lab up` leaves for `probe` and `down`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    /// Node namespace names, by node index.
    pub nodes: Vec<String>,
    /// Node names the agents were given, by node index.
    pub node_names: Vec<String>,
    /// Pods in cluster order, then outside hosts.
    pub subjects: Vec<LabSubject>,
    /// Namespace of each subject, parallel to `subjects`.
    pub subject_netns: Vec<String>,
    pub manifests: Vec<PathBuf>,
    pub default_namespace: String,
    pub agent: bool,
    /// The agents' arguments besides their node and inputs (`--audit`, `--log-group`, …):
    /// how they render their tables, which a check that they are in sync must do alike.
    #[serde(default)]
    pub agent_args: Vec<String>,
    /// Probe servers, agents and relays started by `up`.
    pub pids: Vec<i32>,
    /// When the lab lives in an API server: how to reach it, and whether `up` started it.
    #[serde(default)]
    pub kube: Option<KubeState>,
}

/// Checks a lab name: it goes into namespace names and a directory name.
pub fn validate_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(LabError::Invalid(format!(
            "lab name {name:?}: use 1 to 32 lowercase letters, digits and inner dashes"
        )))
    }
}

pub fn netns_name(lab: &str, role: &str) -> String {
    format!("{PREFIX}{lab}-{role}")
}

/// True for namespaces of lab `lab` exactly: `palisade-<lab>-` followed by a role (`n3`, `p12`,
/// `h0`), so lab `a` never claims lab `a-b`'s `palisade-a-b-n0`.
pub fn is_lab_netns(lab: &str, netns: &str) -> bool {
    netns
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix(lab))
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|role| {
            let mut chars = role.chars();
            matches!(chars.next(), Some('n' | 'p' | 'h'))
                && !chars.as_str().is_empty()
                && chars.all(|c| c.is_ascii_digit())
        })
}

pub fn state_dir(state_root: &Path, lab: &str) -> PathBuf {
    state_root.join(lab)
}

pub fn load_state(state_root: &Path, lab: &str) -> Result<LabState, LabError> {
    let path = state_dir(state_root, lab).join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LabError::NoSuchLab(lab.to_string()),
        _ => LabError::Io {
            context: format!("reading {}", path.display()),
            source: e,
        },
    })?;
    serde_json::from_str(&text).map_err(|e| LabError::Invalid(format!("{}: {e}", path.display())))
}

/// Builds the lab of `plan`. On any failure or SIGINT/SIGTERM, removes what it created.
pub fn up(plan: &Plan, config: &UpConfig) -> Result<LabState, LabError> {
    validate_name(&config.name)?;
    let existing: Vec<String> = net::list_netns()?
        .into_iter()
        .filter(|ns| is_lab_netns(&config.name, ns))
        .collect();
    let dir = state_dir(&config.state_root, &config.name);
    if !existing.is_empty() || dir.exists() {
        return Err(LabError::Exists(config.name.clone()));
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    let signal_ids = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]
        .into_iter()
        .map(|sig| signal_hook::flag::register(sig, Arc::clone(&interrupted)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LabError::Io {
            context: "installing the Ctrl-C handler".into(),
            source: e,
        })?;
    let mut build = Build {
        interrupted,
        netns: Vec::new(),
        children: Vec::new(),
        dir,
    };
    let result = build.run(plan, config);
    if result.is_err() {
        build.teardown();
    }
    for id in signal_ids {
        signal_hook::low_level::unregister(id);
    }
    result
}

/// What a running `up` has created so far, so that a failure removes exactly that.
struct Build {
    interrupted: Arc<AtomicBool>,
    netns: Vec<String>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Build {
    fn check(&self) -> Result<(), LabError> {
        if self.interrupted.load(Ordering::SeqCst) {
            Err(LabError::Interrupted)
        } else {
            Ok(())
        }
    }

    fn add_netns(&mut self, name: String) -> Result<(), LabError> {
        self.check()?;
        net::ip(&["netns", "add", &name])?;
        self.netns.push(name);
        Ok(())
    }

    fn run(&mut self, plan: &Plan, config: &UpConfig) -> Result<LabState, LabError> {
        let lab = &config.name;
        std::fs::create_dir_all(&self.dir).map_err(|e| LabError::Io {
            context: format!("creating {}", self.dir.display()),
            source: e,
        })?;
        let nodes: Vec<String> = (0..plan.nodes)
            .map(|i| netns_name(lab, &format!("n{i}")))
            .collect();
        let subject_netns: Vec<String> = plan
            .subjects
            .iter()
            .enumerate()
            .map(|(k, s)| netns_name(lab, &s.role(k)))
            .collect();
        for ns in nodes.iter().chain(&subject_netns) {
            self.add_netns(ns.clone())?;
        }
        // Nodes: forwarding on, one veth per subject, full mesh of node links.
        for (i, node) in nodes.iter().enumerate() {
            self.check()?;
            net::in_netns(node, || net::write_sysctl("net.ipv4.ip_forward", "1"))?;
            let mut commands = vec!["link set lo up".to_string()];
            for (k, subject) in plan
                .subjects
                .iter()
                .enumerate()
                .filter(|(_, s)| s.node == i)
            {
                let dev = subject.role(k);
                commands.extend([
                    format!(
                        "link add {dev} address {NODE_SIDE_MAC} type veth peer name eth0 \
                         address {} netns {}",
                        subject_mac(k),
                        subject_netns[k]
                    ),
                    format!("link set {dev} up"),
                    format!("route add {}/32 dev {dev}", subject.ip),
                    format!(
                        "neigh replace {} lladdr {} dev {dev} nud permanent",
                        subject.ip,
                        subject_mac(k)
                    ),
                ]);
            }
            for (j, peer) in nodes.iter().enumerate().skip(i + 1) {
                commands.push(format!(
                    "link add n{j} address {} type veth peer name n{i} address {} netns {peer}",
                    node_link_mac(i, j),
                    node_link_mac(j, i),
                ));
            }
            net::ip_batch(node, &commands)?;
        }
        // Routes between nodes: each node sends a remote subject's /32 over the link to the
        // subject's node, with the neighbour pinned to that node's link MAC.
        for (i, node) in nodes.iter().enumerate() {
            self.check()?;
            let mut commands = Vec::new();
            for j in (0..plan.nodes).filter(|&j| j != i) {
                commands.push(format!("link set n{j} up"));
                for subject in plan.subjects.iter().filter(|s| s.node == j) {
                    commands.push(format!("route add {}/32 dev n{j}", subject.ip));
                    commands.push(format!(
                        "neigh replace {} lladdr {} dev n{j} nud permanent",
                        subject.ip,
                        node_link_mac(j, i)
                    ));
                }
            }
            if !commands.is_empty() {
                net::ip_batch(node, &commands)?;
            }
        }
        for (subject, ns) in plan.subjects.iter().zip(&subject_netns) {
            self.check()?;
            net::ip_batch(
                ns,
                &[
                    "link set lo up".to_string(),
                    format!("addr add {}/32 dev eth0", subject.ip),
                    "link set eth0 up".to_string(),
                    format!("route add {GATEWAY} dev eth0 scope link"),
                    format!("route add default via {GATEWAY} dev eth0"),
                    format!(
                        "neigh replace {GATEWAY} lladdr {NODE_SIDE_MAC} dev eth0 nud permanent"
                    ),
                ],
            )?;
        }
        let node_names: Vec<String> = (0..plan.nodes).map(|i| format!("node{i}")).collect();
        if let Some(agent) = &config.agent {
            let inventory = self.dir.join(INVENTORY_FILE);
            if config.kube.is_none() {
                write_json(&inventory, &inventory_of(plan, &node_names))?;
            }
            for (node, node_name) in nodes.iter().zip(&node_names) {
                self.check()?;
                let mut args: Vec<String> =
                    vec!["agent".into(), "--node".into(), node_name.clone()];
                match &config.kube {
                    Some(kube) => {
                        std::fs::write(&kube.agent_kubeconfig, &kube.agent_kubeconfig_text)
                            .map_err(|e| LabError::Io {
                                context: format!("writing {}", kube.agent_kubeconfig.display()),
                                source: e,
                            })?;
                        self.relay(lab, node, kube, &config.exe)?;
                        args.extend([
                            "--kubeconfig".into(),
                            kube.agent_kubeconfig.display().to_string(),
                        ]);
                    }
                    None => {
                        for path in &agent.manifests {
                            args.extend(["--manifests".into(), path.display().to_string()]);
                        }
                        args.extend(["--pods".into(), inventory.display().to_string()]);
                    }
                }
                let flow_log = self.dir.join(format!("{node}.flows.jsonl"));
                args.extend(["--flow-log".into(), flow_log.display().to_string()]);
                args.extend(agent.extra_args.iter().cloned());
                let child = self.spawn_in(node, &config.exe, &args, "agent", Stdio::null())?;
                self.children.push(child);
            }
        }
        // Start all servers, then wait for each to report readiness.
        let first_server = self.children.len();
        for (k, (subject, ns)) in plan.subjects.iter().zip(&subject_netns).enumerate() {
            self.check()?;
            let args = serve_args(lab, &subject.role(k), subject);
            let child = self.spawn_in(ns, &config.exe, &args, "serve", Stdio::piped())?;
            self.children.push(child);
        }
        for (index, ns) in (first_server..).zip(&subject_netns) {
            self.check()?;
            self.wait_ready(index, ns, "serve")?;
        }
        if config.agent.is_some() {
            for (index, node) in nodes.iter().enumerate() {
                self.wait_agent(index, node)?;
            }
        }
        let state = LabState {
            name: lab.clone(),
            nodes,
            node_names,
            subjects: plan.subjects.clone(),
            subject_netns,
            manifests: config.manifests.clone(),
            default_namespace: config.default_namespace.clone(),
            agent: config.agent.is_some(),
            agent_args: config
                .agent
                .as_ref()
                .map(|a| a.extra_args.clone())
                .unwrap_or_default(),
            pids: self.children.iter().map(|c| c.id() as i32).collect(),
            kube: config.kube.clone(),
        };
        write_json(&self.dir.join(STATE_FILE), &state)?;
        Ok(state)
    }

    /// Starts `exe ARGS` inside `netns` in its own process group (so a Ctrl-C at the terminal
    /// reaches `up`, which cleans up, and not the lab's processes), logging to the state dir.
    fn spawn_in(
        &self,
        netns: &str,
        exe: &Path,
        args: &[String],
        what: &str,
        stdout: Stdio,
    ) -> Result<Child, LabError> {
        use std::os::unix::process::CommandExt;
        let log_path = self.dir.join(format!("{netns}.{what}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| LabError::Io {
            context: format!("creating {}", log_path.display()),
            source: e,
        })?;
        Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| LabError::Tool {
                command: format!("ip netns exec {netns} {} {}", exe.display(), args.join(" ")),
                message: e.to_string(),
            })
    }

    /// Starts `lab relay` (in the machine's namespace) bringing the API server into `node`,
    /// and waits until it listens there.
    fn relay(
        &mut self,
        lab: &str,
        node: &str,
        kube: &KubeState,
        exe: &Path,
    ) -> Result<(), LabError> {
        let log_path = self.dir.join(format!("{node}.relay.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| LabError::Io {
            context: format!("creating {}", log_path.display()),
            source: e,
        })?;
        let args = [
            "lab".to_string(),
            "relay".into(),
            "--name".into(),
            lab.to_string(),
            "--netns".into(),
            node.to_string(),
            "--to".into(),
            kube.server.to_string(),
        ];
        use std::os::unix::process::CommandExt;
        let child = Command::new(exe)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| LabError::Tool {
                command: format!("{} {}", exe.display(), args.join(" ")),
                message: e.to_string(),
            })?;
        self.children.push(child);
        let index = self.children.len() - 1;
        self.wait_ready(index, node, "relay")
    }

    fn wait_ready(&mut self, index: usize, netns: &str, what: &str) -> Result<(), LabError> {
        let child = &mut self.children[index];
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            // EOF (empty line) means the server exited; its log says why.
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        if line.trim() == crate::serve::READY {
            return Ok(());
        }
        let log_path = self.dir.join(format!("{netns}.{what}.log"));
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        Err(LabError::ServerFailed {
            netns: netns.to_string(),
            log: log.trim().to_string(),
        })
    }

    /// Waits until the agent of node `index` has installed its table (its first sync), or
    /// fails with its log if it exits or takes longer than [`AGENT_START`].
    fn wait_agent(&mut self, index: usize, netns: &str) -> Result<(), LabError> {
        let deadline = std::time::Instant::now() + AGENT_START;
        let failed = |dir: &Path, why: String| {
            let log =
                std::fs::read_to_string(dir.join(format!("{netns}.agent.log"))).unwrap_or_default();
            LabError::AgentFailed {
                netns: netns.to_string(),
                log: format!("{why}\n{}", log.trim()),
            }
        };
        loop {
            self.check()?;
            if let Ok(Some(status)) = self.children[index].try_wait() {
                return Err(failed(&self.dir, format!("exited with {status}")));
            }
            let table = net::in_netns(netns, || {
                Ok(Command::new("nft")
                    .args(["list", "table", "inet", palisade_dataplane::TABLE])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()))
            })?;
            if table {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(failed(
                    &self.dir,
                    format!("no nftables table after {} s", AGENT_START.as_secs()),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn teardown(&mut self) {
        for child in &mut self.children {
            // Already exited is fine.
            let _ = child.kill();
            let _ = child.wait();
        }
        let pids: Vec<i32> = self
            .netns
            .iter()
            .filter_map(|ns| net::netns_pids(ns).ok())
            .flatten()
            .collect();
        net::stop_processes(&pids, STOP_GRACE);
        for ns in self.netns.drain(..).rev() {
            // Best effort: `lab down` reports what could not be removed.
            let _ = net::ip(&["netns", "delete", &ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn serve_args(lab: &str, role: &str, subject: &LabSubject) -> Vec<String> {
    let list = |ports: &[u16]| {
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut args = vec![
        "lab".into(),
        "serve".into(),
        "--name".into(),
        lab.into(),
        "--role".into(),
        role.into(),
    ];
    if !subject.tcp.is_empty() {
        args.extend(["--tcp".into(), list(&subject.tcp)]);
    }
    if !subject.udp.is_empty() {
        args.extend(["--udp".into(), list(&subject.udp)]);
    }
    if !subject.sctp.is_empty() {
        args.extend(["--sctp".into(), list(&subject.sctp)]);
    }
    args
}

/// The agents' pod inventory: every lab pod with its node and address (outside hosts are no
/// pods and are left out).
fn inventory_of(plan: &Plan, node_names: &[String]) -> PodInventory {
    PodInventory {
        pods: plan
            .subjects
            .iter()
            .filter_map(|subject| match &subject.kind {
                SubjectKind::Pod { endpoint } => Some(PodPlacement {
                    name: endpoint.clone(),
                    node: node_names[subject.node].clone(),
                    ips: vec![subject.ip.into()],
                }),
                SubjectKind::Host => None,
            })
            .collect(),
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), LabError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| LabError::Invalid(format!("serialising {}: {e}", path.display())))?;
    std::fs::write(path, text).map_err(|e| LabError::Io {
        context: format!("writing {}", path.display()),
        source: e,
    })
}

/// What `down` removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DownReport {
    pub namespaces: usize,
    pub processes: usize,
}

/// Removes lab `name`: stops every process in its namespaces (and those its state recorded),
/// deletes the namespaces and the state directory. Works without a state file too.
pub fn down(state_root: &Path, name: &str) -> Result<DownReport, LabError> {
    validate_name(name)?;
    let namespaces: Vec<String> = net::list_netns()?
        .into_iter()
        .filter(|ns| is_lab_netns(name, ns))
        .collect();
    let mut pids: Vec<i32> = Vec::new();
    for ns in &namespaces {
        pids.extend(net::netns_pids(ns)?);
    }
    // Processes recorded by `up` whose namespace is already gone: only if they still carry
    // this lab's name on their command line (pids are reused).
    if let Ok(state) = load_state(state_root, name) {
        let marker = format!("--name {name} ");
        pids.extend(state.pids.iter().copied().filter(|&pid| {
            net::running(pid) && net::cmdline(pid).is_some_and(|cmd| cmd.contains(&marker))
        }));
    }
    pids.sort_unstable();
    pids.dedup();
    net::stop_processes(&pids, STOP_GRACE);
    for ns in &namespaces {
        net::ip(&["netns", "delete", ns])?;
    }
    if let Ok(LabState {
        kube:
            Some(KubeState {
                started: Some((script, kube_dir)),
                ..
            }),
        ..
    }) = load_state(state_root, name)
    {
        crate::kube::stop_control_plane(&script, &kube_dir);
    }
    let dir = state_dir(state_root, name);
    let had_state = dir.exists();
    if had_state {
        std::fs::remove_dir_all(&dir).map_err(|e| LabError::Io {
            context: format!("removing {}", dir.display()),
            source: e,
        })?;
    }
    // The root itself stays: removed when empty, it could vanish under a lab another process
    // is creating in it at that moment.
    if namespaces.is_empty() && !had_state {
        return Err(LabError::NoSuchLab(name.to_string()));
    }
    Ok(DownReport {
        namespaces: namespaces.len(),
        processes: pids.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_namespaces_are_recognised_by_exact_lab_name() {
        let cases = [
            ("a", "palisade-a-n0", true),
            ("a", "palisade-a-p12", true),
            ("a", "palisade-a-h3", true),
            ("a", "palisade-a-b-n0", false),
            ("a-b", "palisade-a-b-n0", true),
            ("a", "palisade-a-n", false),
            ("a", "palisade-a-x1", false),
            ("a", "palisade-ab-n0", false),
            ("a", "other-a-n0", false),
        ];
        for (lab, ns, expected) in cases {
            assert_eq!(is_lab_netns(lab, ns), expected, "{lab} {ns}");
        }
    }

    #[test]
    fn lab_names_are_checked() {
        for good in ["lab", "a-1", "x"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a/b", &"x".repeat(33)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
