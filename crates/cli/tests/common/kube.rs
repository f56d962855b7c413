//! A real kube-apiserver for tests (`scripts/kube-env`), and loading objects into it.
//!
//! [`KubeEnv::start`] starts one (etcd + kube-apiserver on loopback, RBAC on, real
//! certificates) in a directory of its own and stops it on drop. Whatever ends the test process
//! (a panic, `panic = "abort"`, a signal), a watcher started with it runs `kube-env down` once
//! the process is gone, so no API server outlives its tests. [`KubeEnv::shared`] is the test
//! binary's one server, started by the first test that asks and held by one test at a time.
//! Without Go and without cached binaries the tests say SKIPPED and pass.

// Each test binary that declares `mod common;` uses some of this, or none.
#![allow(dead_code)]

use ::kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use ::kube::config::{KubeConfigOptions, Kubeconfig};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as net;
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

/// A running API server: its admin kubeconfig and the kubectl of the same version.
pub struct KubeEnv {
    /// `PALISADE_KUBE_DIR`: certificates, data and logs.
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
}

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kube-env")
}

fn shown(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn last_line(output: &Output) -> PathBuf {
    let stdout = String::from_utf8_lossy(&output.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
}

/// The directory of the cached binaries, building them when Go is there; `None` when neither.
fn binaries() -> Option<PathBuf> {
    let cached = Command::new(script())
        .arg("build")
        .env("PALISADE_KUBE_ONLY_CACHED", "1")
        .stderr(Stdio::null())
        .output()
        .expect("running scripts/kube-env");
    if cached.status.success() {
        return Some(last_line(&cached));
    }
    if Command::new("go").arg("version").output().is_err() {
        return None;
    }
    eprintln!("building kube-apiserver (first time only: many minutes)");
    let built = Command::new(script())
        .arg("build")
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/kube-env build");
    assert!(
        built.status.success(),
        "scripts/kube-env build failed: {}",
        shown(&built)
    );
    Some(last_line(&built))
}

fn skipped(what: &str) {
    palisade_dataplane::say_skipped(&format!(
        "{what} needs a kube-apiserver (no Go toolchain to build one)"
    ));
}

impl KubeEnv {
    /// Starts an API server in `/tmp/palisade-kube-test-<name>-<pid>` (`name` unique in the
    /// process). `None`, having said SKIPPED on stderr, when there is no Go toolchain and no
    /// cached build; any other failure panics with the script's output.
    pub fn start(name: &str) -> Option<KubeEnv> {
        let started = Self::start_quietly(name);
        if started.is_none() {
            skipped(name);
        }
        started
    }

    fn start_quietly(name: &str) -> Option<KubeEnv> {
        let bin = binaries()?;
        let dir =
            std::env::temp_dir().join(format!("palisade-kube-test-{name}-{}", std::process::id()));
        reap_after_exit(&dir);
        let up = || {
            Command::new(script())
                .arg("up")
                .env("PALISADE_KUBE_DIR", &dir)
                .output()
                .expect("running scripts/kube-env up")
        };
        let mut output = up();
        // kube-env picks free ports before its servers bind them: another process can take
        // one meanwhile (it then cleans up after itself). Once more, with other ports.
        if !output.status.success()
            && String::from_utf8_lossy(&output.stderr).contains("address already in use")
        {
            eprintln!("kube-env up lost a port to another process; trying again");
            output = up();
        }
        let env = KubeEnv {
            kubeconfig: last_line(&output),
            kubectl: bin.join("kubectl"),
            dir,
        };
        assert!(
            output.status.success() && env.kubeconfig.is_file(),
            "scripts/kube-env up failed: {}",
            shown(&output)
        );
        Some(env)
    }

    /// The test binary's one API server, started by the first caller, and the right to use it
    /// until the returned guard is dropped: tests change the cluster, so they take turns.
    /// Stopped when the process exits. `None` (having said SKIPPED) as for [`KubeEnv::start`].
    pub fn shared(what: &str) -> Option<Shared> {
        static SERVER: OnceLock<Option<KubeEnv>> = OnceLock::new();
        static TURN: Mutex<()> = Mutex::new(());
        // A test that failed while holding its turn left the cluster to be reset, no worse.
        let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        match SERVER.get_or_init(|| KubeEnv::start_quietly(env!("CARGO_CRATE_NAME"))) {
            Some(env) => Some(Shared { env, _turn: turn }),
            None => {
                skipped(what);
                None
            }
        }
    }

    /// Runs kubectl as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(args, None)
    }

    /// Runs kubectl as the admin, `stdin` on its standard input.
    pub fn kubectl_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kubectl");
        if let Some(text) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("kubectl's stdin");
            pipe.write_all(text.as_bytes()).expect("writing to kubectl");
        }
        child.wait_with_output().expect("waiting for kubectl")
    }

    /// kubectl that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            output.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            shown(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The server's URL and CA file, from the admin kubeconfig.
    pub fn server_and_ca(&self) -> (String, String) {
        let config = Kubeconfig::read_from(&self.kubeconfig).expect("the admin kubeconfig");
        let cluster = config.clusters[0].cluster.clone().expect("a cluster");
        (
            cluster.server.expect("a server"),
            cluster.certificate_authority.expect("a CA file"),
        )
    }

    /// Makes `objects` the cluster's nodes, pods and policies: every Node, Pod (deleted at
    /// once, grace period 0) and NetworkPolicy goes, the namespaces are applied (their labels
    /// become exactly the given ones, plus the API's `kubernetes.io/metadata.name`; a namespace
    /// not given keeps its labels: namespaces cannot be deleted without a controller manager),
    /// then the nodes and pods are created with their status set as a kubelet would, and the
    /// policies are created.
    pub fn load(&self, objects: &ClusterObjects) {
        self.run(|client| async move {
            reset(&client).await;
            apply(&client, objects).await;
        });
    }

    /// Runs `work` with an admin client on a runtime of its own.
    pub fn run<'a, F: Future<Output = ()> + 'a>(
        &'a self,
        work: impl FnOnce(::kube::Client) -> F + 'a,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let config = Kubeconfig::read_from(&self.kubeconfig).expect("the admin kubeconfig");
            let config =
                ::kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
                    .await
                    .expect("the admin kubeconfig");
            let client = ::kube::Client::try_from(config).expect("a client");
            work(client).await;
        });
    }
}

impl Drop for KubeEnv {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("down")
            .env("PALISADE_KUBE_DIR", &self.dir)
            .stdout(Stdio::null())
            .status();
    }
}

/// Runs `kube-env down` for `dir` once this process has exited, however it ends (a static
/// [`KubeEnv`] is never dropped): a watcher in the background of a shell that returns at once
/// (so nothing is left to wait for), in a process group of its own (^C reaches the tests, not
/// the watcher), holding no terminal or pipe open.
fn reap_after_exit(dir: &Path) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"(while kill -0 "$0" 2>/dev/null; do sleep 1; done; exec "$1" down) &"#)
        .arg(std::process::id().to_string())
        .arg(script())
        .env("PALISADE_KUBE_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .status()
        .expect("starting the API server's watcher");
    assert!(
        status.success(),
        "starting the API server's watcher: {status}"
    );
}

/// [`KubeEnv::shared`]'s server, this test's to use until dropped.
pub struct Shared {
    env: &'static KubeEnv,
    _turn: MutexGuard<'static, ()>,
}

impl std::ops::Deref for Shared {
    type Target = KubeEnv;

    fn deref(&self) -> &KubeEnv {
        self.env
    }
}

/// What a test puts in the API: namespaces, nodes and pods (their `status` set after creation,
/// as a kubelet would) and NetworkPolicies.
#[derive(Clone, Debug, Default)]
pub struct ClusterObjects {
    pub namespaces: Vec<core::Namespace>,
    pub nodes: Vec<core::Node>,
    pub pods: Vec<core::Pod>,
    pub policies: Vec<net::NetworkPolicy>,
}

impl ClusterObjects {
    /// The objects as one manifest: a JSON document each (YAML reads JSON), status included.
    pub fn manifest(&self) -> String {
        let json = |object: serde_json::Result<String>| object.expect("objects serialize") + "\n";
        let documents: Vec<String> = (self.namespaces.iter().map(serde_json::to_string))
            .chain(self.nodes.iter().map(serde_json::to_string))
            .chain(self.pods.iter().map(serde_json::to_string))
            .chain(self.policies.iter().map(serde_json::to_string))
            .map(json)
            .collect();
        documents.join("---\n")
    }
}

const MANAGER: &str = "palisade-test";

/// Deletes every Node, Pod and NetworkPolicy.
async fn reset(client: &::kube::Client) {
    let now = DeleteParams::default().grace_period(0);
    Api::<core::Node>::all(client.clone())
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("deleting nodes");
    let pods = Api::<core::Pod>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .expect("listing pods");
    let policies = Api::<net::NetworkPolicy>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .expect("listing policies");
    let namespaces =
        |items: Vec<Option<String>>| -> BTreeSet<String> { items.into_iter().flatten().collect() };
    let pods = namespaces(
        pods.items
            .into_iter()
            .map(|p| p.metadata.namespace)
            .collect(),
    );
    let policies = namespaces(
        (policies.items.into_iter())
            .map(|p| p.metadata.namespace)
            .collect(),
    );
    for ns in pods {
        Api::<core::Pod>::namespaced(client.clone(), &ns)
            .delete_collection(&now, &ListParams::default())
            .await
            .expect("deleting pods");
    }
    for ns in policies {
        Api::<net::NetworkPolicy>::namespaced(client.clone(), &ns)
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .expect("deleting policies");
    }
}

async fn apply(client: &::kube::Client, objects: &ClusterObjects) {
    let apply = PatchParams::apply(MANAGER).force();
    for namespace in &objects.namespaces {
        let name = namespace
            .metadata
            .name
            .as_deref()
            .expect("a namespace name");
        Api::<core::Namespace>::all(client.clone())
            .patch(name, &apply, &Patch::Apply(namespace))
            .await
            .unwrap_or_else(|e| panic!("applying namespace {name}: {e}"));
    }
    for node in &objects.nodes {
        let name = node.metadata.name.as_deref().expect("a node name");
        let api = Api::<core::Node>::all(client.clone());
        let created = core::Node {
            status: None,
            ..node.clone()
        };
        api.create(&PostParams::default(), &created)
            .await
            .unwrap_or_else(|e| panic!("creating node {name}: {e}"));
        if let Some(status) = &node.status {
            let patch = serde_json::json!({ "status": status });
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap_or_else(|e| panic!("setting the status of node {name}: {e}"));
        }
    }
    for pod in &objects.pods {
        let (namespace, name) = names(&pod.metadata);
        let api = Api::<core::Pod>::namespaced(client.clone(), namespace);
        let created = core::Pod {
            status: None,
            ..pod.clone()
        };
        api.create(&PostParams::default(), &created)
            .await
            .unwrap_or_else(|e| panic!("creating pod {namespace}/{name}: {e}"));
        if let Some(status) = &pod.status {
            let patch = serde_json::json!({ "status": status });
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap_or_else(|e| panic!("setting the status of pod {namespace}/{name}: {e}"));
        }
    }
    for policy in &objects.policies {
        let (namespace, name) = names(&policy.metadata);
        Api::<net::NetworkPolicy>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), policy)
            .await
            .unwrap_or_else(|e| panic!("creating policy {namespace}/{name}: {e}"));
    }
}

fn names(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().expect("a namespaced object"),
        meta.name.as_deref().expect("a name"),
    )
}
