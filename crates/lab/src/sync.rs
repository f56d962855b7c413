//! Whether the agents enforce what the lab's manifests say now: after the manifests change on
//! disk, a measurement means something only once every agent has applied them.

use crate::LabError;
use crate::lab::{INVENTORY_FILE, LabState, state_dir};
use palisade_agent::state::{Sources, compile};
use palisade_dataplane::{Nft, RenderOptions, Runner};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Where the lab's agents serve metrics, inside their node's namespace (the agent's default).
pub const AGENT_METRICS: &str = "127.0.0.1:9464";

/// True when every node's table is the one its agent compiles from the lab's manifests and pod
/// inventory as they are now (equal digests). `options` must be the agents' (`--audit`,
/// `--log-group`); the generation does not matter.
pub fn agents_synced(
    state_root: &Path,
    state: &LabState,
    options: RenderOptions,
) -> Result<bool, LabError> {
    if !state.agent {
        return Err(LabError::Invalid(format!(
            "lab {} runs no agent (it was built with --no-agent)",
            state.name
        )));
    }
    let inventory = state_dir(state_root, &state.name).join(INVENTORY_FILE);
    let load = palisade_manifest::LoadOptions {
        default_namespace: state.default_namespace.clone(),
    };
    // On the API server: what the agents watch, read once for every node.
    let cluster = match &state.kube {
        Some(kube) => Some(crate::kube::read(kube, &load)?),
        None => None,
    };
    for (netns, node) in state.nodes.iter().zip(&state.node_names) {
        let started = Instant::now();
        let compiled = match &cluster {
            Some((loaded, inventory)) => {
                compile(loaded.clone(), Some(inventory), node, options, started)
            }
            None => Sources {
                manifests: state.manifests.clone(),
                pods: Some(inventory.clone()),
                node: node.clone(),
                load: load.clone(),
            }
            .compile(options, None),
        };
        let tool = |command: &'static str| {
            move |e: palisade_dataplane::Error| LabError::Tool {
                command: format!("{command} (in {netns})"),
                message: e.to_string(),
            }
        };
        let runner = Runner::in_netns(netns.clone());
        let wanted = compiled
            .map_err(|e| LabError::Invalid(format!("{e:#}")))?
            .with_node_interfaces(&runner)
            .map_err(tool("ip route show"))?
            .ruleset
            .digest;
        let current = Nft::new(runner).current().map_err(tool("nft list table"))?;
        let Some((generation, digest)) = current.and_then(|t| t.written_by_agent) else {
            return Ok(false);
        };
        // The table is replaced first, then established connections it denies are revoked;
        // the agent publishes the generation once both are done.
        let finished = metric(&agent_metrics(state, netns)?, "palisade_generation");
        if digest != wanted || finished != Some(f64::from(generation)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The Prometheus text the agent of node namespace `netns` serves.
pub fn agent_metrics(state: &LabState, netns: &str) -> Result<String, LabError> {
    if !state.nodes.iter().any(|n| n == netns) {
        return Err(LabError::Invalid(format!(
            "{netns} is not a node of lab {}",
            state.name
        )));
    }
    let io = |e: std::io::Error| LabError::Io {
        context: format!("reading the agent's metrics in {netns}"),
        source: e,
    };
    crate::net::in_netns(netns, || {
        let addr: SocketAddr = AGENT_METRICS.parse().expect("a socket address");
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(io)?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .map_err(io)?;
        let mut response = String::new();
        stream.read_to_string(&mut response).map_err(io)?;
        match response.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.0 200") || head.contains(" 200 ") => {
                Ok(body.to_string())
            }
            _ => Err(LabError::Invalid(format!(
                "the agent in {netns} answered: {response}"
            ))),
        }
    })
}

/// The value of an unlabelled sample `name` in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
}

/// Waits until [`agents_synced`], checking every few milliseconds, for at most `timeout`.
pub fn wait_for_agents(
    state_root: &Path,
    state: &LabState,
    options: RenderOptions,
    timeout: Duration,
) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    while !agents_synced(state_root, state, options)? {
        if Instant::now() >= deadline {
            return Err(LabError::AgentsBehind {
                lab: state.name.clone(),
                waited: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
