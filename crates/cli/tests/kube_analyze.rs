//! The analysis commands on a real kube-apiserver (`scripts/kube-env`; one per test binary,
//! shared by the tests in turn): every conformance case read through the API answers as its
//! manifest does, a snapshot reads back the same, `diff` against the live state, finished pods
//! left out, one-line errors (server unreachable or untrusted, kubeconfig missing or not YAML,
//! unknown context, a missing RBAC verb, a snapshot directory that cannot be made), and the
//! shipped deploy/ and Helm chart accepted by the server. Without Go and a cached
//! kube-apiserver the tests that need one say SKIPPED and pass.

mod common;

use common::kube::{ClusterObjects, KubeEnv};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as net;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use palisade_conformance::{Case, World};
use palisade_engine::EndpointKind;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const PORTS: [&str; 4] = ["--port", "80,81", "--protocol", "TCP,UDP,SCTP"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the built `palisade` (never an ambient `KUBECONFIG`).
fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("PALISADE_LOG")
        .output()
        .expect("running palisade")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `palisade matrix -o tsv` on ports 80, 81 over TCP, UDP and SCTP of `source` (paths, or
/// `--kubeconfig K`): the header, then the rows sorted.
fn matrix(source: &[&str]) -> Vec<String> {
    let mut args = vec!["matrix", "-o", "tsv"];
    args.extend(PORTS);
    args.extend(source);
    let output = palisade(&args);
    assert!(
        output.status.success(),
        "palisade {}: {}\n{}",
        args.join(" "),
        output.status,
        text(&output.stderr)
    );
    let stdout = text(&output.stdout);
    let mut lines = stdout.lines().map(str::to_string);
    let header = lines.next().expect("a header");
    assert_eq!(header, "src\tdst\tport\tprotocol\tallowed");
    let mut rows: Vec<String> = lines.collect();
    rows.sort();
    rows.insert(0, header);
    rows
}

/// The first differences between two sorted row lists, for a failure message.
fn differences(file: &[String], api: &[String]) -> String {
    let (file_set, api_set): (BTreeSet<&String>, BTreeSet<&String>) =
        (file.iter().collect(), api.iter().collect());
    let only_file: Vec<_> = file_set.difference(&api_set).take(5).collect();
    let only_api: Vec<_> = api_set.difference(&file_set).take(5).collect();
    format!(
        "{} rows from the file, {} from the API; only in the file: {only_file:?}; only in the API: {only_api:?}",
        file.len(),
        api.len()
    )
}

// -----------------------------------------------------------------------------------------
// A case as the objects the API holds.

/// The objects the API would hold for a case's world: its Namespaces and NetworkPolicies as
/// the case's manifests write them, and its Pods with `status.phase: Running` and their
/// addresses. A workload (Deployment, StatefulSet) with N replicas becomes the N Pods
/// `<name>-0` … `<name>-<N-1>` (what its controller would create): the template's labels and
/// containers, and the workload's addresses each shifted by the replica's index (replica 0
/// keeps them; `10.0.1.10` with 3 replicas gives 10.0.1.10, .11 and .12), so that every pod
/// has addresses of its own, as in a cluster. Panics if that makes two pods share an address.
fn case_objects(world: &World) -> ClusterObjects {
    let cluster = world.cluster();
    let mut objects = ClusterObjects::default();
    for document in world.manifests().split("---\n") {
        let value: serde_json::Value = serde_json::from_str(document).expect("a JSON manifest");
        let decode = || value.clone();
        match value["kind"].as_str().expect("a kind") {
            "Namespace" => objects
                .namespaces
                .push(serde_json::from_value(decode()).expect("a Namespace")),
            "NetworkPolicy" => objects
                .policies
                .push(serde_json::from_value(decode()).expect("a NetworkPolicy")),
            "Pod" => {
                let mut pod: core::Pod = serde_json::from_value(decode()).expect("a Pod");
                pod.status.get_or_insert_default().phase = Some("Running".into());
                objects.pods.push(pod);
            }
            kind @ ("Deployment" | "StatefulSet") => {
                let namespace = value["metadata"]["namespace"].as_str().expect("namespace");
                let name = value["metadata"]["name"].as_str().expect("name");
                let endpoint = cluster
                    .endpoints
                    .iter()
                    .find(|e| {
                        e.namespace == namespace
                            && e.name == name
                            && matches!(&e.kind, EndpointKind::Workload { kind: k } if k == kind)
                    })
                    .unwrap_or_else(|| panic!("no endpoint for {kind} {namespace}/{name}"));
                let template: core::PodTemplateSpec =
                    serde_json::from_value(value["spec"]["template"].clone()).expect("template");
                for replica in 0..endpoint.replicas {
                    let ips: Vec<IpAddr> = endpoint
                        .ips
                        .iter()
                        .map(|ip| shifted(*ip, replica))
                        .collect();
                    objects.pods.push(pod(
                        namespace,
                        &format!("{name}-{replica}"),
                        template.metadata.clone().unwrap_or_default().labels,
                        template.spec.clone().expect("a pod spec"),
                        "Running",
                        &ips,
                    ));
                }
            }
            other => panic!("a case manifest with a {other}"),
        }
    }
    let mut seen = BTreeMap::new();
    for pod in &objects.pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        for ip in pod.status.iter().flat_map(|s| s.pod_ips.iter().flatten()) {
            if let Some(other) = seen.insert(ip.ip.clone(), name.clone()) {
                panic!("pods {other} and {name} would share the address {}", ip.ip);
            }
        }
    }
    objects
}

fn shifted(ip: IpAddr, by: u32) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) + by).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) + u128::from(by)).into()),
    }
}

/// A Pod with its status as a kubelet would set it.
fn pod(
    namespace: &str,
    name: &str,
    labels: Option<BTreeMap<String, String>>,
    spec: core::PodSpec,
    phase: &str,
    ips: &[IpAddr],
) -> core::Pod {
    core::Pod {
        metadata: meta::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels,
            ..Default::default()
        },
        spec: Some(spec),
        status: Some(core::PodStatus {
            phase: Some(phase.into()),
            pod_ip: ips.first().map(ToString::to_string),
            pod_ips: Some(
                ips.iter()
                    .map(|ip| core::PodIP { ip: ip.to_string() })
                    .collect(),
            ),
            ..Default::default()
        }),
    }
}

/// Writes the objects to `file` and makes them the API's.
fn load(env: &KubeEnv, objects: &ClusterObjects, file: &Path) {
    std::fs::write(file, objects.manifest()).expect("writing the manifest");
    env.load(objects);
}

// -----------------------------------------------------------------------------------------
// a. Conformance through the API.

/// A pod-to-pod row of a matrix (not loopback, not an outside range) with this answer:
/// (src, dst, port, protocol).
fn pod_pair(rows: &[String], allowed: bool) -> Option<[String; 4]> {
    let answer = if allowed { "true" } else { "false" };
    rows.iter().skip(1).find_map(|row| {
        let fields: Vec<&str> = row.split('\t').collect();
        let [src, dst, port, protocol, this] = fields[..] else {
            return None;
        };
        // `ns/name`, not an outside range (`203.0.113.0/24`, `fd00::/8`, `a.b.c.d-e.f.g.h`).
        let pod = |s: &str| {
            let parts: Vec<&str> = s.split('/').collect();
            parts.len() == 2 && parts[0].parse::<IpAddr>().is_err()
        };
        (pod(src) && pod(dst) && src != dst && this == answer)
            .then(|| [src, dst, port, protocol].map(String::from))
    })
}

/// `palisade check` of a pair, from a manifest and from the API: the same exit status, the
/// expected one (0 allowed, 1 denied).
fn check_both(env: &KubeEnv, file: &Path, pair: &[String; 4], allowed: bool) -> Option<String> {
    let [src, dst, port, protocol] = pair;
    let kubeconfig = path(&env.kubeconfig);
    let args = ["check", src, dst, "--port", port, "--protocol", protocol];
    let status = |source: &[&str]| {
        let mut all = args.to_vec();
        all.extend(source);
        palisade(&all).status.code()
    };
    let from_file = status(&[path(file)]);
    let from_api = status(&["--kubeconfig", kubeconfig]);
    let expected = Some(if allowed { 0 } else { 1 });
    (from_file != expected || from_api != expected).then(|| {
        format!(
            "check {src} {dst} {port}/{protocol}: exit {from_file:?} from the file, {from_api:?} from the API, expected {expected:?}"
        )
    })
}

/// Every conformance case, loaded into the API server as Namespaces, Pods and NetworkPolicies:
/// `palisade matrix` of its manifest equals `palisade matrix --kubeconfig` on 80/81 over TCP,
/// UDP and SCTP, row for row; for every tenth case `palisade check` of an allowed and of a
/// denied pair exits the same (0, 1) from both.
#[test]
fn every_conformance_case_answers_the_same_from_the_api_as_from_its_manifest() {
    let Some(env) = KubeEnv::shared("checking the conformance cases through the API") else {
        return;
    };
    let kubeconfig = path(&env.kubeconfig);
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Case> = palisade_conformance::cases();
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut checks = 0;
    for (i, case) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case-{i:03}.yaml"));
        let objects = case_objects(&case.world);
        load(&env, &objects, &file);
        let from_file = matrix(&[path(&file)]);
        let from_api = matrix(&["--kubeconfig", kubeconfig]);
        assert!(
            from_file.len() > 1,
            "{}: an empty matrix from its manifest",
            case.name
        );
        if from_file != from_api {
            failures.push(format!(
                "{}: {}",
                case.name,
                differences(&from_file, &from_api)
            ));
            continue;
        }
        if i % 10 == 0 {
            for allowed in [true, false] {
                if let Some(pair) = pod_pair(&from_file, allowed) {
                    checks += 1;
                    if let Some(wrong) = check_both(&env, &file, &pair, allowed) {
                        failures.push(format!("{}: {wrong}", case.name));
                    }
                }
            }
        }
    }
    eprintln!(
        "compared {} conformance cases through the API ({checks} checks) in {:.1?}",
        cases.len(),
        started.elapsed()
    );
    assert!(checks >= 6, "only {checks} pairs checked");
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// -----------------------------------------------------------------------------------------
// b. Snapshot round trip.

fn case_named(name: &str) -> Case {
    palisade_conformance::cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no conformance case {name}"))
}

/// `palisade snapshot` of a cluster with a hostNetwork pod, a replicated workload's pods,
/// dual-stack pods and policies reads back (`palisade matrix DIR`) as the cluster does.
#[test]
fn a_snapshot_reads_back_as_the_cluster() {
    let Some(env) = KubeEnv::shared("the snapshot round trip") else {
        return;
    };
    let kubeconfig = path(&env.kubeconfig);
    let dir = tempfile::tempdir().unwrap();
    // The nine fixture pods, a hostNetwork pod and a Deployment's three replicas, all with an
    // IPv6 address too.
    let mut objects =
        case_objects(&case_named("host_network_pod_is_matched_only_by_ip_blocks").world);
    let workload =
        case_objects(&case_named("replicated_workload_admitted_by_its_own_selector").world);
    objects.pods.extend(workload.pods.into_iter().filter(|p| {
        p.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("web-"))
    }));
    objects.policies.extend(workload.policies);
    for pod in &mut objects.pods {
        let status = pod.status.as_mut().unwrap();
        let ips = status.pod_ips.as_mut().unwrap();
        if let Ok(IpAddr::V4(v4)) = ips[0].ip.parse::<IpAddr>() {
            let [_, _, a, b] = v4.octets();
            ips.push(core::PodIP {
                ip: format!("fd00::{a}:{b}"),
            });
        }
    }
    // The node the hostNetwork pod runs on.
    objects.nodes.push(
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
            "status": {"addresses": [
                {"type": "InternalIP", "address": "192.168.0.10"},
                {"type": "InternalIP", "address": "fd00::192:168:0:10"},
                {"type": "Hostname", "address": "node-1"}
            ]}
        }))
        .unwrap(),
    );
    load(&env, &objects, &dir.path().join("cluster.yaml"));
    let snapshot = dir.path().join("snapshot");
    let output = palisade(&[
        "snapshot",
        "--kubeconfig",
        kubeconfig,
        "-o",
        path(&snapshot),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let said = text(&output.stdout);
    assert!(
        said.contains(&format!("{} pods", objects.pods.len())),
        "{said}"
    );
    assert!(said.contains(", 1 nodes,"), "{said}");
    for file in [
        "namespaces.yaml",
        "nodes.yaml",
        "pods.yaml",
        "networkpolicies.yaml",
    ] {
        assert!(snapshot.join(file).is_file(), "no {file}");
    }
    let nodes = std::fs::read_to_string(snapshot.join("nodes.yaml")).unwrap();
    assert!(nodes.contains("fd00::192:168:0:10"), "{nodes}");
    // Where a directory cannot be made: one line.
    let file = dir.path().join("cluster.yaml");
    let line = one_line_error(
        &palisade(&["snapshot", "--kubeconfig", kubeconfig, "-o", path(&file)]),
        "snapshot into a file",
    );
    assert_eq!(
        line,
        format!(
            "error: writing {}: File exists (os error 17)",
            file.display()
        )
    );
    // Both load without a diagnostic.
    for source in [&[path(&snapshot)][..], &["--kubeconfig", kubeconfig]] {
        let output = palisade(&[&["matrix", "-o", "summary"][..], source].concat());
        assert!(
            output.status.success() && output.stderr.is_empty(),
            "{source:?}: {}",
            text(&output.stderr)
        );
    }
    let from_api = matrix(&["--kubeconfig", kubeconfig]);
    let from_snapshot = matrix(&[path(&snapshot)]);
    assert!(
        from_api.iter().any(|r| r.starts_with("y/node\t")),
        "no hostNetwork pod"
    );
    assert!(
        from_api.iter().any(|r| r.starts_with("x/web-2\t")),
        "no replica"
    );
    assert_eq!(
        from_snapshot,
        from_api,
        "{}",
        differences(&from_snapshot, &from_api)
    );
    let from_file = matrix(&[path(&dir.path().join("cluster.yaml"))]);
    assert_eq!(
        from_file,
        from_api,
        "{}",
        differences(&from_file, &from_api)
    );
}

// -----------------------------------------------------------------------------------------
// c. diff against the live state.

const DENY_X: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
  namespace: x
spec:
  podSelector: {}
  policyTypes: [Ingress]
";

/// `palisade diff --kubeconfig K CHANGE`: a default-deny in x removes connections and adds
/// none; `--exit-code` exits 1 for it and 0 for a change that changes nothing.
#[test]
fn diff_against_the_cluster_shows_what_applying_would_remove() {
    let Some(env) = KubeEnv::shared("diff against the API") else {
        return;
    };
    let kubeconfig = path(&env.kubeconfig);
    let dir = tempfile::tempdir().unwrap();
    load(
        &env,
        &case_objects(&World::xyz()),
        &dir.path().join("cluster.yaml"),
    );
    let change = dir.path().join("change.yaml");
    std::fs::write(&change, DENY_X).unwrap();

    let output = palisade(&[
        "diff",
        "--kubeconfig",
        kubeconfig,
        "-o",
        "json",
        path(&change),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let diff: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let removed = diff["removed"].as_array().expect("a removed list");
    let added = diff["added"].as_array().expect("an added list");
    assert!(!removed.is_empty(), "{diff:#}");
    assert!(added.is_empty(), "{diff:#}");
    let text_of = serde_json::to_string(removed).unwrap();
    assert!(text_of.contains("x/"), "{text_of}");

    let output = palisade(&[
        "diff",
        "--kubeconfig",
        kubeconfig,
        "--exit-code",
        path(&change),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));

    // The namespaces as they are: nothing changes.
    let same = dir.path().join("same.yaml");
    let namespaces = ClusterObjects {
        namespaces: case_objects(&World::xyz()).namespaces,
        ..Default::default()
    };
    std::fs::write(&same, namespaces.manifest()).unwrap();
    let output = palisade(&[
        "diff",
        "--kubeconfig",
        kubeconfig,
        "--exit-code",
        path(&same),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// `palisade serve --kubeconfig K`: the page's answers come from the live cluster, as
/// `check --kubeconfig K` answers.
#[test]
fn the_web_page_serves_the_live_cluster() {
    let Some(env) = KubeEnv::shared("the web page on the API") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    load(
        &env,
        &case_objects(&World::xyz()),
        &dir.path().join("cluster.yaml"),
    );
    let kubeconfig = path(&env.kubeconfig);
    let served = common::serve::Served::with_args(&["--kubeconfig", kubeconfig]);
    let get = |path: &str| -> serde_json::Value {
        ureq::get(&served.url(path))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    };
    let view = get("/api/view");
    let names: BTreeSet<&str> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    for pod in ["x/a", "y/b", "z/c"] {
        assert!(names.contains(pod), "{pod} missing from {names:?}");
    }
    let (src, dst) = ("x/a", "y/b");
    let answer = get(&format!("/api/check?src={src}&dst={dst}&port=80"));
    let output = palisade(&[
        "check",
        src,
        dst,
        "--port",
        "80",
        "-o",
        "json",
        "--kubeconfig",
        kubeconfig,
    ]);
    let command: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer, command);
}

// -----------------------------------------------------------------------------------------
// d. Finished pods.

/// Pods whose phase is Succeeded or Failed (addresses still in their status, labels a policy
/// selects) change no answer: the matrix from the API and from a manifest holding them both
/// equal the matrix without them.
#[test]
fn finished_pods_are_left_out_from_the_api_and_from_files() {
    let Some(env) = KubeEnv::shared("checking finished pods through the API") else {
        return;
    };
    let kubeconfig = path(&env.kubeconfig);
    let dir = tempfile::tempdir().unwrap();
    let world = World::xyz();
    let mut objects = case_objects(&world);
    objects
        .policies
        .push(serde_saphyr::from_str::<net::NetworkPolicy>(DENY_X).unwrap());
    let without = dir.path().join("without.yaml");
    std::fs::write(&without, objects.manifest()).unwrap();
    let spec = objects.pods[0].spec.clone().unwrap();
    for (name, phase, ip) in [
        ("done", "Succeeded", "10.0.1.50"),
        ("crashed", "Failed", "10.0.1.51"),
    ] {
        let labels = BTreeMap::from([("pod".to_string(), "a".to_string())]);
        let ips = [ip.parse().unwrap()];
        objects
            .pods
            .push(pod("x", name, Some(labels), spec.clone(), phase, &ips));
    }
    let with = dir.path().join("with.yaml");
    load(&env, &objects, &with);

    let expected = matrix(&[path(&without)]);
    let from_api = matrix(&["--kubeconfig", kubeconfig]);
    let from_file = matrix(&[path(&with)]);
    for rows in [&from_api, &from_file] {
        assert!(
            !rows
                .iter()
                .any(|r| r.contains("x/done") || r.contains("x/crashed")),
            "a finished pod in the matrix"
        );
    }
    assert_eq!(from_api, expected, "{}", differences(&expected, &from_api));
    assert_eq!(
        from_file,
        expected,
        "{}",
        differences(&expected, &from_file)
    );
}

// -----------------------------------------------------------------------------------------
// e. Errors: one line, exit status 2.

/// Exit status 2 and exactly one line on stderr, `error: …`, no panic or backtrace; the line.
fn one_line_error(output: &Output, what: &str) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{what}: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{what}: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{what}: {stderr}");
    lines[0].to_string()
}

/// A kubeconfig with one context `test` for `server`, authenticating with `token`.
fn kubeconfig(server: &str, ca: Option<&str>, token: &str) -> String {
    let trust = match ca {
        Some(ca) => format!("certificate-authority: {ca}"),
        None => "insecure-skip-tls-verify: true".to_string(),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    {trust}
users:
- name: test
  user:
    token: {token}
contexts:
- name: test
  context: {{cluster: test, user: test}}
current-context: test
"
    )
}

/// Every command that reads the cluster, on an API server nobody listens at.
#[test]
fn an_unreachable_api_server_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    std::fs::write(&config, kubeconfig("https://127.0.0.1:1", None, "t")).unwrap();
    let change = dir.path().join("change.yaml");
    std::fs::write(&change, DENY_X).unwrap();
    let out = dir.path().join("snapshot");
    let k = path(&config);
    let commands: [&[&str]; 7] = [
        &["matrix", "--kubeconfig", k],
        &["check", "x/a", "x/b", "--port", "80", "--kubeconfig", k],
        &["explain", "--kubeconfig", k],
        &["lint", "--kubeconfig", k],
        &["diff", "--kubeconfig", k, path(&change)],
        &["snapshot", "--kubeconfig", k, "-o", path(&out)],
        &["matrix", "--kubeconfig", k, "--context", "test"],
    ];
    for args in commands {
        let started = Instant::now();
        let line = one_line_error(&palisade(args), &args.join(" "));
        assert_eq!(
            line,
            "error: cannot reach the API server https://127.0.0.1:1: Connection refused (os error 111)",
            "{}",
            args.join(" ")
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

#[test]
fn a_missing_kubeconfig_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-kubeconfig");
    let line = one_line_error(
        &palisade(&["matrix", "--kubeconfig", path(&missing)]),
        "missing kubeconfig",
    );
    assert_eq!(
        line,
        format!(
            "error: kubeconfig {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[test]
fn an_unknown_context_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    std::fs::write(&config, kubeconfig("https://127.0.0.1:1", None, "t")).unwrap();
    let line = one_line_error(
        &palisade(&[
            "matrix",
            "--kubeconfig",
            path(&config),
            "--context",
            "nowhere",
        ]),
        "unknown context",
    );
    assert!(line.contains("nowhere"), "{line}");
    assert!(line.contains(&config.display().to_string()), "{line}");
}

#[test]
fn a_kubeconfig_that_is_not_yaml_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    std::fs::write(&config, "clusters: [\n  - name: x\n").unwrap();
    let line = one_line_error(
        &palisade(&["matrix", "--kubeconfig", path(&config)]),
        "a kubeconfig that is not YAML",
    );
    let prefix = format!("error: kubeconfig {}: ", config.display());
    assert!(line.starts_with(&prefix), "{line}");
}

/// The real server with a CA that did not sign its certificate: given in the kubeconfig, and
/// none at all (the platform's roots).
fn untrusted(env: &KubeEnv, ca: Option<&Path>) {
    let (server, _) = env.server_and_ca();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    let trust = match ca {
        Some(ca) => kubeconfig(&server, Some(path(ca)), "t"),
        None => kubeconfig(&server, None, "t").replace("    insecure-skip-tls-verify: true\n", ""),
    };
    std::fs::write(&config, trust).unwrap();
    let line = one_line_error(
        &palisade(&["matrix", "--kubeconfig", path(&config)]),
        "an untrusted server",
    );
    assert_eq!(
        line,
        format!(
            "error: cannot reach the API server {server}: invalid peer certificate: UnknownIssuer"
        )
    );
}

#[test]
fn a_server_certificate_the_kubeconfig_ca_did_not_sign_is_one_line() {
    let Some(env) = KubeEnv::shared("an untrusted server certificate") else {
        return;
    };
    // A certificate, but not the one that signed the server's.
    untrusted(&env, Some(&env.dir.join("pki/admin.crt")));
}

#[test]
fn a_server_certificate_no_platform_root_trusts_is_one_line() {
    let Some(env) = KubeEnv::shared("an untrusted server certificate") else {
        return;
    };
    untrusted(&env, None);
}

/// Everything palisade reads but pods, cluster-wide.
const NO_PODS_ROLE: &str = "apiVersion: v1
kind: ServiceAccount
metadata: {name: no-pods, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: palisade-test-no-pods}
rules:
- apiGroups: ['']
  resources: [namespaces, nodes]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: palisade-test-no-pods}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: palisade-test-no-pods}
subjects:
- {kind: ServiceAccount, name: no-pods, namespace: default}
";

/// A ServiceAccount whose ClusterRole lists everything but pods: `palisade matrix` fails in
/// one line naming the verb and the resource.
#[test]
fn a_user_who_may_not_list_pods_is_told_so_in_one_line() {
    let Some(env) = KubeEnv::shared("a missing RBAC verb") else {
        return;
    };
    let output = env.kubectl_with(&["apply", "-f", "-"], Some(NO_PODS_ROLE));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let token = env.kubectl_ok(&["create", "token", "no-pods", "-n", "default"]);
    let (server, ca) = env.server_and_ca();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    std::fs::write(&config, kubeconfig(&server, Some(&ca), token.trim())).unwrap();
    // The binding is in force once the account can list namespaces.
    let deadline = Instant::now() + Duration::from_secs(20);
    let can_list = || {
        Command::new(&env.kubectl)
            .args(["--kubeconfig", path(&config), "get", "namespaces"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    while !can_list() {
        assert!(
            Instant::now() < deadline,
            "the ClusterRoleBinding never took effect"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let line = one_line_error(
        &palisade(&["matrix", "--kubeconfig", path(&config)]),
        "no list on pods",
    );
    assert!(
        line.starts_with(&format!(
            "error: the API server {server} refused to list pods: "
        )),
        "{line}"
    );
    assert!(line.contains("cannot list resource \"pods\""), "{line}");
}

// -----------------------------------------------------------------------------------------
// f. The shipped manifests and chart.

/// `kubectl apply --dry-run=server -f DIR` (its namespace created for real first: a dry run
/// creates nothing that later objects could live in).
fn server_accepts(env: &KubeEnv, dir: &Path) {
    let exists = env.kubectl(&["get", "namespace", "palisade-system"]);
    if !exists.status.success() {
        env.kubectl_ok(&["create", "namespace", "palisade-system"]);
    }
    let applied = env.kubectl_ok(&["apply", "--dry-run=server", "-f", path(dir)]);
    for object in [
        "namespace/palisade-system",
        "serviceaccount/palisade-agent",
        "clusterrole.rbac.authorization.k8s.io/palisade-agent",
        "clusterrolebinding.rbac.authorization.k8s.io/palisade-agent",
        "daemonset.apps/palisade-agent",
    ] {
        assert!(
            applied
                .lines()
                .any(|l| l.starts_with(object) && l.ends_with("(server dry run)")),
            "{object} not in:\n{applied}"
        );
    }
}

#[test]
fn deploy_passes_a_server_side_dry_run() {
    let Some(env) = KubeEnv::shared("deploy/ against the API") else {
        return;
    };
    server_accepts(&env, &repo().join("deploy"));
}

/// `{{ .Values.a.b }}` replaced by `a.b` of values.yaml; nothing else is a template.
fn render(template: &str, values: &serde_json::Value, file: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .unwrap_or_else(|| panic!("{file}: an unclosed {{{{"))
            + start;
        let expression = rest[start + 2..end].trim();
        let key = expression
            .strip_prefix(".Values.")
            .unwrap_or_else(|| panic!("{file}: {expression:?} is not a .Values reference"));
        let value = key.split('.').fold(values, |v, part| &v[part]);
        match value {
            serde_json::Value::String(s) => out.push_str(s),
            serde_json::Value::Number(n) => out.push_str(&n.to_string()),
            serde_json::Value::Bool(b) => out.push_str(&b.to_string()),
            other => panic!("{file}: .Values.{key} is {other}, not a scalar"),
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The chart with its default values renders exactly deploy/, file by file; the server accepts
/// the rendering (when there is a server).
#[test]
fn chart_with_default_values_renders_deploy() {
    let chart = repo().join("charts/palisade");
    let values: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap())
            .expect("values.yaml");
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let templates = chart.join("templates");
    let deploy = repo().join("deploy");
    assert_eq!(names(&templates), names(&deploy));
    let rendered = tempfile::tempdir().unwrap();
    for name in names(&templates) {
        let template = std::fs::read_to_string(templates.join(&name)).unwrap();
        let text = render(&template, &values, &name);
        let shipped = std::fs::read_to_string(deploy.join(&name)).unwrap();
        assert_eq!(
            text, shipped,
            "charts/palisade/templates/{name} rendered != deploy/{name}"
        );
        std::fs::write(rendered.path().join(&name), text).unwrap();
    }
    if let Some(env) = KubeEnv::shared("the rendered chart against the API") {
        server_accepts(&env, rendered.path());
    }
}
