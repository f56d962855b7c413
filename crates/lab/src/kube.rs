//! The lab as a cluster of a real API server (`lab up --kube`): its namespaces, nodes and pods
//! are registered as a kubelet would (pods created with `spec.nodeName`, their status patched
//! with the lab's addresses), its NetworkPolicies created, and every node's agent watches the
//! API with the shipped ClusterRole's ServiceAccount token (not the admin's credentials).

use crate::LabError;
use crate::plan::{Plan, SubjectKind};
use k8s_openapi::api::authentication::v1 as authn;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as net;
use k8s_openapi::api::rbac::v1 as rbac;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use palisade_engine::Analysis;
use palisade_kube::{Connection, KubeError, Session};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The shipped RBAC (ServiceAccount, least-privilege ClusterRole, binding) and its namespace:
/// the lab's agents run with exactly what a DaemonSet gets.
const NAMESPACE_MANIFEST: &str = include_str!("../../../deploy/00-namespace.yaml");
const RBAC_MANIFEST: &str = include_str!("../../../deploy/10-rbac.yaml");
const AGENT_NAMESPACE: &str = "palisade-system";
const AGENT_ACCOUNT: &str = "palisade-agent";
const FIELD_MANAGER: &str = "palisade-lab";
/// How long the agents' token lasts: a lab lives for hours at most.
const TOKEN_SECONDS: i64 = 24 * 3600;

/// What a lab on the API server keeps in its state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KubeState {
    /// Admin credentials: registration, and the analysis `probe --compare` reads.
    pub admin_kubeconfig: PathBuf,
    /// The agents' credentials (the ServiceAccount's token), in the lab's state directory.
    pub agent_kubeconfig: PathBuf,
    /// What `up` writes there once the directory exists.
    #[serde(skip)]
    pub agent_kubeconfig_text: String,
    /// The API server, relayed into every node's namespace at 127.0.0.1 and the same port.
    pub server: SocketAddr,
    /// When the lab started the API server itself: the script and its state directory, for
    /// `down`.
    pub started: Option<(PathBuf, PathBuf)>,
}

/// Starts a control plane with `scripts/kube-env up` in `dir`; returns its admin kubeconfig.
pub fn start_control_plane(script: &Path, dir: &Path) -> Result<PathBuf, LabError> {
    let output = std::process::Command::new(script)
        .arg("up")
        .env("PALISADE_KUBE_DIR", dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| LabError::Tool {
            command: format!("{} up", script.display()),
            message: e.to_string(),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last() {
        Some(path) if output.status.success() => Ok(PathBuf::from(path.trim())),
        _ => Err(LabError::Tool {
            command: format!("{} up", script.display()),
            message: format!("exited with {}", output.status),
        }),
    }
}

/// Stops a control plane [`start_control_plane`] started.
pub fn stop_control_plane(script: &Path, dir: &Path) {
    let _ = std::process::Command::new(script)
        .arg("down")
        .env("PALISADE_KUBE_DIR", dir)
        .status();
}

/// Registers the lab in the API server `admin` points at: namespaces, one Node per lab node,
/// one Pod per lab pod (named after its endpoint: a workload's lab pod is a Pod of the
/// workload's name), the manifests' NetworkPolicies, and the agents' ServiceAccount. Renames
/// the plan's pod subjects to the Pods' names. The agents' kubeconfig, to be written at
/// `agent_kubeconfig`, comes back as text.
pub fn register(
    admin: &Path,
    plan: &mut Plan,
    analysis: &Analysis,
    manifests: &[PathBuf],
    default_namespace: &str,
    node_names: &[String],
    agent_kubeconfig: PathBuf,
) -> Result<KubeState, LabError> {
    let connection = Connection {
        kubeconfig: Some(admin.to_path_buf()),
        context: None,
    };
    let token = palisade_kube::run(async {
        let session = connection.connect().await?;
        create(
            &session,
            plan,
            analysis,
            manifests,
            default_namespace,
            node_names,
        )
        .await?;
        agent_token(&session).await
    })
    .map_err(kube_error)?;
    let (server, ca) = server_and_ca(admin)?;
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: https://{server}\n    certificate-authority: {}\nusers:\n- name: {AGENT_ACCOUNT}\n  user:\n    token: {token}\ncontexts:\n- name: lab\n  context: {{cluster: lab, user: {AGENT_ACCOUNT}}}\ncurrent-context: lab\n",
        ca.display()
    );
    Ok(KubeState {
        admin_kubeconfig: admin.to_path_buf(),
        agent_kubeconfig,
        agent_kubeconfig_text: text,
        server,
        started: None,
    })
}

/// What the agents watch, read once with the admin's credentials: the cluster as loaded, and
/// where its pods run.
pub fn read(
    state: &KubeState,
    options: &palisade_manifest::LoadOptions,
) -> Result<(palisade_manifest::Loaded, palisade_agent::PodInventory), LabError> {
    let connection = Connection {
        kubeconfig: Some(state.admin_kubeconfig.clone()),
        context: None,
    };
    let objects = palisade_kube::run(async {
        let session = connection.connect().await?;
        palisade_kube::read(&session).await
    })
    .map_err(kube_error)?;
    let inventory = palisade_agent::PodInventory::from_placements(objects.placements(options));
    Ok((objects.into_loaded(options), inventory))
}

fn kube_error(e: KubeError) -> LabError {
    LabError::Invalid(e.to_string())
}

async fn create(
    session: &Session,
    plan: &mut Plan,
    analysis: &Analysis,
    manifests: &[PathBuf],
    default_namespace: &str,
    node_names: &[String],
) -> Result<(), KubeError> {
    let client = &session.client;
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let failed = |verb: &'static str, what: String| {
        move |e: kube::Error| KubeError::Failed {
            server: session.server.clone(),
            verb,
            resource: what,
            message: e.to_string(),
        }
    };
    let namespaces: Api<core::Namespace> = Api::all(client.clone());
    for namespace in &analysis.cluster().namespaces {
        let object = core::Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.name.clone()),
                labels: Some(namespace.labels.clone()),
                ..ObjectMeta::default()
            },
            ..core::Namespace::default()
        };
        namespaces
            .patch(&namespace.name, &apply, &Patch::Apply(&object))
            .await
            .map_err(failed("apply", format!("namespace {}", namespace.name)))?;
    }
    let nodes: Api<core::Node> = Api::all(client.clone());
    for name in node_names {
        let object = core::Node {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..core::Node::default()
        };
        nodes
            .patch(name, &apply, &Patch::Apply(&object))
            .await
            .map_err(failed("apply", format!("node {name}")))?;
    }
    for subject in &mut plan.subjects {
        let SubjectKind::Pod { endpoint } = &mut subject.kind else {
            continue;
        };
        let Some(id) = analysis.find_endpoint(endpoint) else {
            continue;
        };
        let ep = analysis.endpoint(id);
        let pods: Api<core::Pod> = Api::namespaced(client.clone(), &ep.namespace);
        let ports = ep
            .ports
            .iter()
            .map(|p| core::ContainerPort {
                name: p.name.clone(),
                container_port: i32::from(p.port),
                protocol: Some(p.protocol.to_string()),
                ..core::ContainerPort::default()
            })
            .collect();
        let pod = core::Pod {
            metadata: ObjectMeta {
                name: Some(ep.name.clone()),
                namespace: Some(ep.namespace.clone()),
                labels: Some(ep.labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(core::PodSpec {
                node_name: Some(node_names[subject.node].clone()),
                containers: vec![core::Container {
                    name: "probe".to_string(),
                    image: Some("palisade-lab-probe".to_string()),
                    ports: Some(ports),
                    ..core::Container::default()
                }],
                ..core::PodSpec::default()
            }),
            status: None,
        };
        pods.patch(&ep.name, &apply, &Patch::Apply(&pod))
            .await
            .map_err(failed("apply", format!("pod {}/{}", ep.namespace, ep.name)))?;
        let ip = subject.ip.to_string();
        let status = serde_json::json!({
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
        });
        pods.patch_status(&ep.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(failed(
                "patch",
                format!("pods/{}/{} status", ep.namespace, ep.name),
            ))?;
        *endpoint = format!("{}/{}", ep.namespace, ep.name);
    }
    for policy in manifest_objects::<net::NetworkPolicy>(manifests, "NetworkPolicy") {
        let mut policy = policy;
        let namespace = policy
            .metadata
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_namespace.to_string());
        policy.metadata.namespace = Some(namespace.clone());
        let name = policy.metadata.name.clone().unwrap_or_default();
        let api: Api<net::NetworkPolicy> = Api::namespaced(client.clone(), &namespace);
        api.patch(&name, &apply, &Patch::Apply(&policy))
            .await
            .map_err(failed("apply", format!("networkpolicy {namespace}/{name}")))?;
    }
    apply_documents(session, NAMESPACE_MANIFEST).await?;
    apply_documents(session, RBAC_MANIFEST).await
}

/// Applies the shipped manifests' objects (Namespace, ServiceAccount, ClusterRole,
/// ClusterRoleBinding) as they are.
async fn apply_documents(session: &Session, text: &str) -> Result<(), KubeError> {
    let client = &session.client;
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| KubeError::Config(format!("the shipped manifests: {e}")))?;
    for document in documents {
        let kind = document["kind"].as_str().unwrap_or_default().to_string();
        let object: DynamicObject = serde_json::from_value(document)
            .map_err(|e| KubeError::Config(format!("the shipped {kind}: {e}")))?;
        let name = object.metadata.name.clone().unwrap_or_default();
        let result = match kind.as_str() {
            "Namespace" => {
                let api: Api<core::Namespace> = Api::all(client.clone());
                api.patch(&name, &apply, &Patch::Apply(&object))
                    .await
                    .map(drop)
            }
            "ServiceAccount" => {
                let api: Api<core::ServiceAccount> =
                    Api::namespaced(client.clone(), AGENT_NAMESPACE);
                api.patch(&name, &apply, &Patch::Apply(&object))
                    .await
                    .map(drop)
            }
            "ClusterRole" => {
                let api: Api<rbac::ClusterRole> = Api::all(client.clone());
                api.patch(&name, &apply, &Patch::Apply(&object))
                    .await
                    .map(drop)
            }
            "ClusterRoleBinding" => {
                let api: Api<rbac::ClusterRoleBinding> = Api::all(client.clone());
                api.patch(&name, &apply, &Patch::Apply(&object))
                    .await
                    .map(drop)
            }
            other => {
                return Err(KubeError::Config(format!(
                    "the shipped manifests hold a {other}, which the lab does not apply"
                )));
            }
        };
        result.map_err(|e| KubeError::Failed {
            server: session.server.clone(),
            verb: "apply",
            resource: format!("{kind} {name}"),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// A token of the agents' ServiceAccount (TokenRequest), as the kubelet mounts one.
async fn agent_token(session: &Session) -> Result<String, KubeError> {
    let api: Api<core::ServiceAccount> = Api::namespaced(session.client.clone(), AGENT_NAMESPACE);
    let request = authn::TokenRequest {
        spec: authn::TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(TOKEN_SECONDS),
            ..authn::TokenRequestSpec::default()
        },
        ..authn::TokenRequest::default()
    };
    let answer: authn::TokenRequest = api
        .create_subresource("token", AGENT_ACCOUNT, &PostParams::default(), &request)
        .await
        .map_err(|e| KubeError::Failed {
            server: session.server.clone(),
            verb: "create",
            resource: format!("serviceaccounts/{AGENT_ACCOUNT}/token"),
            message: e.to_string(),
        })?;
    answer
        .status
        .map(|s| s.token)
        .ok_or_else(|| KubeError::Config("the TokenRequest returned no token".to_string()))
}

/// Objects of `kind` in the manifests, as typed objects (items of lists included).
fn manifest_objects<T: DeserializeOwned>(manifests: &[PathBuf], kind: &str) -> Vec<T> {
    let mut found = Vec::new();
    for (_, text) in palisade_manifest::read_texts(manifests) {
        let Ok(documents) = serde_saphyr::from_multiple::<serde_json::Value>(&text) else {
            continue;
        };
        for document in documents {
            let items = match document["items"].as_array() {
                Some(items)
                    if document["kind"]
                        .as_str()
                        .is_some_and(|k| k.ends_with("List")) =>
                {
                    items.clone()
                }
                _ => vec![document],
            };
            for item in items {
                if item["kind"].as_str() == Some(kind)
                    && let Ok(object) = serde_json::from_value(item)
                {
                    found.push(object);
                }
            }
        }
    }
    found
}

/// The API server's address and CA file, from the admin kubeconfig `kube-env` wrote.
fn server_and_ca(admin: &Path) -> Result<(SocketAddr, PathBuf), LabError> {
    let invalid = |why: &str| LabError::Invalid(format!("{}: {why}", admin.display()));
    let text = std::fs::read_to_string(admin).map_err(|e| LabError::Io {
        context: format!("reading {}", admin.display()),
        source: e,
    })?;
    let config: kube::config::Kubeconfig =
        serde_saphyr::from_str(&text).map_err(|e| invalid(&e.to_string()))?;
    let cluster = config
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| invalid("no cluster"))?;
    let server = cluster
        .server
        .as_deref()
        .ok_or_else(|| invalid("no server"))?;
    let address = server
        .strip_prefix("https://")
        .ok_or_else(|| invalid("the server is not https"))?
        .trim_end_matches('/');
    let server: SocketAddr = address
        .parse()
        .map_err(|_| invalid("the lab needs a server at IP:port (kube-env's)"))?;
    let ca = cluster
        .certificate_authority
        .as_deref()
        .ok_or_else(|| invalid("no certificate-authority file"))?;
    Ok((server, PathBuf::from(ca)))
}
