//! Loading: streams, lists, directories, every workload kind, owner-reference folding,
//! skipped kinds, namespaces and positions.

use palisade_engine::EndpointId;
use palisade_engine::PolicyId;
use palisade_engine::{
    ContainerPort, EndpointKind, LabelSelector, NAMESPACE_NAME_LABEL, NamespaceScope, Peer,
    PolicyTypes, PortRef, PortRule, Protocol, Rule,
};
use palisade_manifest::{LoadOptions, Loaded, Origin, Severity, load_paths, load_str};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn load(text: &str) -> Loaded {
    load_str("in.yaml", text, &LoadOptions::default())
}

fn testdata(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(path)
}

fn names(loaded: &Loaded) -> Vec<String> {
    loaded
        .cluster
        .endpoints
        .iter()
        .map(|e| e.qualified_name())
        .collect()
}

fn assert_clean(loaded: &Loaded) {
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
}

#[test]
fn kubectl_list_loads_items_and_counts_skipped_kinds() {
    let loaded = load_paths(&[testdata("list.yaml")], &LoadOptions::default());
    assert_clean(&loaded);
    let file = testdata("list.yaml").display().to_string();
    let pod = &loaded.cluster.endpoints[EndpointId::from(0)];
    assert_eq!(pod.qualified_name(), "shop/web-0");
    assert_eq!(pod.kind, EndpointKind::Pod);
    assert_eq!(
        pod.labels,
        BTreeMap::from([("app".to_string(), "web".to_string())])
    );
    let ips: Vec<String> = pod.ips.iter().map(|ip| ip.to_string()).collect();
    assert_eq!(ips, ["10.244.1.7", "fd00:10:244:1::7"]);
    assert_eq!(
        pod.ports,
        [ContainerPort {
            name: Some("http".into()),
            port: 8080,
            protocol: Protocol::Tcp
        }]
    );
    assert_eq!(
        loaded.endpoint_origins.raw,
        [Origin {
            file: file.clone(),
            line: 3,
            column: 3
        }]
    );
    assert_eq!(
        loaded.policy_origins.raw,
        [Origin {
            file,
            line: 41,
            column: 3
        }]
    );
    let policy = &loaded.cluster.policies[PolicyId::from(0)];
    assert_eq!(policy.qualified_name(), "shop/allow-web");
    assert_eq!(
        policy.ingress,
        [Rule {
            peers: vec![],
            ports: vec![PortRule {
                protocol: Protocol::Tcp,
                port: Some(PortRef::Named("http".into())),
                end_port: None
            }]
        }]
    );
    assert_eq!(
        loaded.skipped_kinds,
        BTreeMap::from([("Service".to_string(), 1)])
    );
    let ns = &loaded.cluster.namespaces;
    assert_eq!(ns.len(), 1, "shop exists implicitly");
    assert_eq!(
        ns[0].labels.get(NAMESPACE_NAME_LABEL).map(String::as_str),
        Some("shop")
    );
}

#[test]
fn directories_are_walked_recursively_in_sorted_order() {
    let loaded = load_paths(&[testdata("tree")], &LoadOptions::default());
    assert_clean(&loaded);
    assert_eq!(names(&loaded), ["shop/db", "shop/deployment/web"]);
    let files: Vec<String> = loaded
        .endpoint_origins
        .iter()
        .map(|o| o.file.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(files, ["db.json", "web.yml"]);
    // JSON goes through the YAML parser, so it has positions too.
    assert_eq!(
        (
            loaded.endpoint_origins[EndpointId::from(0)].line,
            loaded.endpoint_origins[EndpointId::from(0)].column
        ),
        (1, 1)
    );
    assert_eq!(loaded.policy_origins[PolicyId::from(0)].line, 3);
    assert_eq!(
        loaded.skipped_kinds,
        BTreeMap::from([("ConfigMap".to_string(), 1)])
    );
    let shop = &loaded.cluster.namespaces[0];
    assert_eq!(loaded.cluster.namespaces.len(), 1);
    assert_eq!(shop.labels.get("team").map(String::as_str), Some("retail"));
    assert_eq!(
        shop.labels.get(NAMESPACE_NAME_LABEL).map(String::as_str),
        Some("shop")
    );
}

#[test]
fn overlapping_arguments_load_each_file_once() {
    let paths = [
        testdata("tree/20-apps/db.json"),
        testdata("tree"),
        testdata("tree/20-apps"),
    ];
    let loaded = load_paths(&paths, &LoadOptions::default());
    assert_clean(&loaded);
    assert_eq!(names(&loaded), ["shop/db", "shop/deployment/web"]);
}

#[test]
fn symlinks_in_directories_neither_loop_nor_load_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let pod = |name: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n");
    std::fs::create_dir(root.join("sub")).expect("mkdir");
    std::fs::write(root.join("a.yaml"), pod("a")).expect("write");
    std::fs::write(root.join("sub/b.yaml"), pod("b")).expect("write");
    let links = [
        ("a.yaml", "alias.yaml"),
        (".", "loop"),
        ("sub", "subalias"),
        ("sub/b.yaml", "z.yml"),
    ];
    for (target, link) in links {
        std::os::unix::fs::symlink(root.join(target), root.join(link)).expect("symlink");
    }
    let loaded = load_paths(&[root.to_path_buf()], &LoadOptions::default());
    assert_clean(&loaded);
    assert_eq!(names(&loaded), ["default/a", "default/b"]);
}

/// A FIFO would block every command until a writer came, `/dev/zero` would be read until
/// memory ran out, a huge file would take many times its size to parse: each is one error
/// naming the file, and the good file beside them loads.
#[test]
fn fifos_devices_and_huge_files_are_refused_without_reading_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(
        root.join("a.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
    )
    .expect("write");
    let fifo = root.join("fifo.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    std::os::unix::fs::symlink("/dev/zero", root.join("zero.yaml")).expect("symlink");
    let huge = std::fs::File::create(root.join("huge.yaml")).expect("create");
    huge.set_len((256 << 20) + 1).expect("a sparse file");
    let loaded = load_paths(&[root.to_path_buf()], &LoadOptions::default());
    let errors: Vec<(String, &str)> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            let file = std::path::Path::new(&d.origin.file).file_name().unwrap();
            (file.to_string_lossy().into_owned(), d.message.as_str())
        })
        .collect();
    assert_eq!(
        errors,
        [
            (
                "fifo.yaml".to_string(),
                "not a regular file (a FIFO); skipped"
            ),
            ("huge.yaml".to_string(), "larger than 256 MiB; skipped"),
            (
                "zero.yaml".to_string(),
                "not a regular file (a device); skipped"
            ),
        ]
    );
    assert_eq!(names(&loaded), ["default/a"]);
}

#[test]
fn two_pods_with_one_address_are_a_warning_naming_both() {
    let pod = |name: &str, ip: &str, host: bool| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{hostNetwork: {host}}}\nstatus: {{podIPs: [{{ip: {ip}}}]}}\n"
        )
    };
    let text = [
        pod("a", "10.0.0.1", false),
        pod("b", "10.0.0.1", false),
        pod("c", "10.0.0.2", false),
        // hostNetwork pods share their node's address by design.
        pod("h1", "192.168.0.1", true),
        pod("h2", "192.168.0.1", true),
    ]
    .concat();
    let loaded = load(&text);
    let warnings: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let warning = &loaded.diagnostics[0];
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(warning.object.as_deref(), Some("Pod default/b"));
    assert!(
        warning
            .message
            .starts_with("10.0.0.1 is also the address of Pod default/a (in.yaml:2"),
        "{}",
        warning.message
    );
    assert_eq!(names(&loaded).len(), 5);
}

/// 20 MB of scalars is the wrong file, not a manifest with problems in places: a thousand
/// problems are listed, the rest counted in one line; the good file beside it loads.
#[test]
fn a_file_of_nonsense_lists_a_thousand_problems_and_counts_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("b.yaml"), "x\n---\n".repeat(5000)).expect("write");
    let loaded = load_paths(&[dir.path().to_path_buf()], &LoadOptions::default());
    assert_eq!(loaded.diagnostics.len(), 1001);
    let last = loaded.diagnostics.last().expect("a summary");
    assert_eq!(last.severity, Severity::Error);
    assert_eq!(
        last.message,
        "4000 more problems in this file (4000 errors) are not listed; the first 1000 are"
    );
    assert!(last.origin.file.ends_with("b.yaml"));
    assert_eq!(names(&loaded), ["default/a"]);
}

#[test]
fn explicit_files_and_missing_paths() {
    let paths = [
        testdata("tree/20-apps/notes.txt"),
        testdata("no-such-file.yaml"),
        testdata("tree/20-apps/db.json"),
    ];
    let loaded = load_paths(&paths, &LoadOptions::default());
    // notes.txt is read because it was named: its document has no apiVersion, and the
    // missing file is reported; db.json still loads.
    let messages: Vec<&str> = loaded
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(loaded.diagnostics.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains("YAML syntax error") || messages[0].contains("apiVersion"),
        "{messages:?}"
    );
    assert!(messages[1].starts_with("cannot read"), "{messages:?}");
    assert_eq!(names(&loaded), ["shop/db"]);
}

#[test]
fn multi_document_streams_survive_a_broken_document() {
    let text = "\
apiVersion: v1
kind: Pod
metadata: {name: a}
---
apiVersion: v1
kind: Pod
metadata: {name: b
---
apiVersion: v1
kind: Pod
metadata: {name: c}
...
---
";
    let loaded = load(text);
    assert_eq!(names(&loaded), ["default/a", "default/c"]);
    assert_eq!(loaded.diagnostics.len(), 1, "{:#?}", loaded.diagnostics);
    let d = &loaded.diagnostics[0];
    assert_eq!(d.severity, Severity::Error);
    assert!(d.message.starts_with("YAML syntax error"), "{d}");
    assert!((7..=8).contains(&d.origin.line), "{d}");
    assert_eq!(
        loaded
            .endpoint_origins
            .iter()
            .map(|o| o.line)
            .collect::<Vec<_>>(),
        [1, 9]
    );
}

#[test]
fn every_workload_kind_becomes_one_endpoint() {
    let template = "template:
      metadata:
        labels: {app: APP}
      spec:
        hostNetwork: HOST
        containers:
        - name: c
          ports:
          - {containerPort: 80, name: http}
          - {containerPort: 53, protocol: UDP}
        initContainers:
        - name: sidecar
          restartPolicy: Always
          ports: [{containerPort: 9090, name: metrics}]
        - name: setup
          ports: [{containerPort: 1}]";
    let doc = |kind: &str, api: &str, spec: &str| {
        format!(
            "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: w\n  namespace: n\nspec:\n{spec}\n---\n"
        )
    };
    let plain = |replicas: &str, app: &str, host: &str| {
        format!(
            "  {replicas}\n  {}",
            template.replace("APP", app).replace("HOST", host)
        )
    };
    let mut text = String::new();
    text += &doc("Deployment", "apps/v1", &plain("replicas: 3", "d", "false"));
    text += &doc(
        "ReplicaSet",
        "apps/v1",
        &plain("replicas: 0", "rs", "false"),
    );
    text += &doc(
        "StatefulSet",
        "apps/v1",
        &plain("serviceName: s", "sts", "false"),
    );
    text += &doc(
        "DaemonSet",
        "apps/v1",
        &plain("minReadySeconds: 1", "ds", "true"),
    );
    text += &doc("Job", "batch/v1", &plain("parallelism: 4", "job", "false"));
    text += &doc(
        "ReplicationController",
        "v1",
        &plain("replicas: 2", "rc", "false"),
    );
    let cron = format!(
        "  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n      {}",
        template
            .replace("APP", "cron")
            .replace("HOST", "false")
            .replace("\n", "\n    ")
    );
    text += &doc("CronJob", "batch/v1", &cron);
    let loaded = load(&text);
    assert_clean(&loaded);
    let got: Vec<(String, String, u32, bool)> = loaded
        .cluster
        .endpoints
        .iter()
        .map(|e| {
            let EndpointKind::Workload { kind } = &e.kind else {
                panic!("workload expected: {e:?}")
            };
            (
                kind.clone(),
                e.labels.get("app").cloned().unwrap_or_default(),
                e.replicas,
                e.host_network,
            )
        })
        .collect();
    let expected = [
        ("Deployment", "d", 3, false),
        ("ReplicaSet", "rs", 0, false),
        ("StatefulSet", "sts", 1, false),
        ("DaemonSet", "ds", 1, true),
        ("Job", "job", 1, false),
        ("ReplicationController", "rc", 2, false),
        ("CronJob", "cron", 1, false),
    ]
    .map(|(k, a, r, h)| (k.to_string(), a.to_string(), r, h));
    assert_eq!(got, expected);
    for e in &loaded.cluster.endpoints {
        let ports: Vec<(Option<&str>, u16, Protocol)> = e
            .ports
            .iter()
            .map(|p| (p.name.as_deref(), p.port, p.protocol))
            .collect();
        assert_eq!(
            ports,
            [
                (Some("http"), 80, Protocol::Tcp),
                (None, 53, Protocol::Udp),
                (Some("metrics"), 9090, Protocol::Tcp)
            ],
            "{}",
            e.qualified_name()
        );
        assert!(e.ips.is_empty());
    }
    assert_eq!(
        loaded.cluster.endpoints[EndpointId::from(6)].qualified_name(),
        "n/cronjob/w"
    );
}

/// Owners for the folding tests: a Deployment, its ReplicaSet and pods, by reference.
fn owned(kind: &str, name: &str, owner: Option<(&str, &str)>, labels: &str) -> String {
    let api = match kind {
        "Pod" => "v1",
        "Job" | "CronJob" => "batch/v1",
        _ => "apps/v1",
    };
    let owners = owner.map_or(String::new(), |(k, n)| {
        format!("  ownerReferences:\n  - {{apiVersion: apps/v1, kind: {k}, name: {n}, uid: u-{n}, controller: true}}\n")
    });
    let spec = match kind {
        "Pod" => {
            // Each pod its own address, as a cluster gives them.
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
            let host = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + host);
            format!("spec:\n  containers: [{{name: c}}]\nstatus:\n  podIP: {ip}\n")
        }
        "CronJob" => "spec:\n  schedule: x\n  jobTemplate: {spec: {template: {metadata: {labels: {a: b}}}}}\n".to_string(),
        _ => "spec:\n  template:\n    metadata: {labels: {a: b}}\n".to_string(),
    };
    format!(
        "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n  uid: u-{name}\n  labels: {{{labels}}}\n{owners}{spec}---\n"
    )
}

#[test]
fn pods_replace_the_workloads_that_own_them() {
    let deployment = owned("Deployment", "web", None, "");
    let rs = owned(
        "ReplicaSet",
        "web-5d9f",
        Some(("Deployment", "web")),
        "pod-template-hash: 5d9f",
    );
    let pod = |name: &str| {
        owned(
            "Pod",
            name,
            Some(("ReplicaSet", "web-5d9f")),
            "pod-template-hash: 5d9f",
        )
    };
    let cron = owned("CronJob", "nightly", None, "");
    let job = owned("Job", "nightly-28000", Some(("CronJob", "nightly")), "");
    let job_pod = owned("Pod", "nightly-28000-x", Some(("Job", "nightly-28000")), "");
    let other_uid = owned("Pod", "stranger", Some(("ReplicaSet", "web-5d9f")), "")
        .replace("uid: u-web-5d9f", "uid: other");
    let standalone_rs = owned("ReplicaSet", "lonely", Some(("Deployment", "gone")), "");
    // (case, input, endpoints left)
    let table: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "deployment alone",
            deployment.clone(),
            vec!["default/deployment/web"],
        ),
        (
            "replicaset folds into its deployment",
            format!("{rs}{deployment}"),
            vec!["default/deployment/web"],
        ),
        (
            "pods through a replicaset replace both",
            format!("{deployment}{rs}{}{}", pod("web-5d9f-a"), pod("web-5d9f-b")),
            vec!["default/web-5d9f-a", "default/web-5d9f-b"],
        ),
        (
            "pods reach the deployment by pod-template-hash without the replicaset",
            format!("{deployment}{}", pod("web-5d9f-a")),
            vec!["default/web-5d9f-a"],
        ),
        (
            "pods and their replicaset",
            format!("{rs}{}", pod("web-5d9f-a")),
            vec!["default/web-5d9f-a"],
        ),
        (
            "a replicaset whose deployment is absent stays",
            standalone_rs.clone(),
            vec!["default/replicaset/lonely"],
        ),
        (
            "cronjob, job and pod",
            format!("{cron}{job}{job_pod}"),
            vec!["default/nightly-28000-x"],
        ),
        (
            "cronjob and job",
            format!("{cron}{job}"),
            vec!["default/cronjob/nightly"],
        ),
        (
            "an owner reference with another uid is someone else",
            format!("{rs}{other_uid}"),
            vec!["default/replicaset/web-5d9f", "default/stranger"],
        ),
    ];
    for (case, text, expected) in table {
        let loaded = load(&text);
        assert_clean(&loaded);
        assert_eq!(names(&loaded), expected, "{case}");
        assert_eq!(loaded.endpoint_origins.len(), expected.len(), "{case}");
    }
}

#[test]
fn default_namespace_and_implicit_namespaces() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: other}\n";
    let options = LoadOptions {
        default_namespace: "team-a".into(),
    };
    let loaded = load_str("x.yaml", text, &options);
    assert_clean(&loaded);
    assert_eq!(names(&loaded), ["team-a/a"]);
    let namespaces: Vec<(&str, Option<&str>)> = loaded
        .cluster
        .namespaces
        .iter()
        .map(|n| {
            (
                n.name.as_str(),
                n.labels.get(NAMESPACE_NAME_LABEL).map(String::as_str),
            )
        })
        .collect();
    assert_eq!(
        namespaces,
        [("other", Some("other")), ("team-a", Some("team-a"))]
    );
}

#[test]
fn json_streams_and_typed_lists() {
    let text = r#"{"apiVersion": "v1", "kind": "PodList", "items": [
  {"metadata": {"name": "a", "labels": {"app": "x"}}, "status": {"podIPs": [{"ip": "10.1.2.3"}]}},
  {"metadata": {"name": "b"}, "status": {"podIP": "10.1.2.300"}}
]}"#;
    let loaded = load_str("pods.json", text, &LoadOptions::default());
    assert_eq!(names(&loaded), ["default/a"]);
    assert_eq!(loaded.endpoint_origins[EndpointId::from(0)].line, 2);
    let d = &loaded.diagnostics[0];
    assert_eq!(
        (d.origin.line, d.field.as_deref()),
        (3, Some("status.podIP"))
    );
    assert_eq!(d.object.as_deref(), Some("Pod default/b"));
    assert!(d.message.contains("must be an IP address"), "{d}");
}

#[test]
fn policies_convert_to_the_engine_model() {
    let text = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: n}
spec:
  podSelector:
    matchExpressions: [{key: tier, operator: NotIn, values: [db]}]
  ingress:
  - {}
  - from:
    - namespaceSelector: {}
    - namespaceSelector: {matchLabels: {team: a}}
      podSelector: {matchLabels: {app: web}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports:
    - {protocol: UDP, port: 53}
    - {port: 8000, endPort: 8100}
    - protocol: SCTP
  egress: []
";
    let loaded = load(text);
    assert_clean(&loaded);
    let p = &loaded.cluster.policies[PolicyId::from(0)];
    assert_eq!(
        p.policy_types,
        PolicyTypes {
            ingress: true,
            egress: false
        }
    );
    assert_eq!(p.pod_selector.to_string(), "tier notin (db)");
    assert_eq!(p.ingress[0], Rule::default());
    let rule = &p.ingress[1];
    assert_eq!(
        rule.peers[..2],
        [
            Peer::Pods {
                namespaces: NamespaceScope::Selected(LabelSelector::everything()),
                pods: LabelSelector::everything()
            },
            Peer::Pods {
                namespaces: NamespaceScope::Selected(LabelSelector::with_labels([("team", "a")])),
                pods: LabelSelector::with_labels([("app", "web")])
            },
        ]
    );
    let Peer::IpBlock(block) = &rule.peers[2] else {
        panic!("ipBlock expected")
    };
    assert_eq!(
        (block.cidr.to_string(), block.except[0].to_string()),
        ("10.0.0.0/8".into(), "10.1.0.0/16".into())
    );
    assert_eq!(
        rule.ports,
        [
            PortRule {
                protocol: Protocol::Udp,
                port: Some(PortRef::Number(53)),
                end_port: None
            },
            PortRule {
                protocol: Protocol::Tcp,
                port: Some(PortRef::Number(8000)),
                end_port: Some(8100)
            },
            PortRule {
                protocol: Protocol::Sctp,
                port: None,
                end_port: None
            },
        ]
    );
    assert!(p.egress.is_empty());

    // policyTypes given, and defaulting with a non-empty egress section.
    let egress_only = text.replace("  egress: []\n", "  egress: [{}]\n");
    assert_eq!(
        load(&egress_only).cluster.policies[PolicyId::from(0)].policy_types,
        PolicyTypes {
            ingress: true,
            egress: true
        }
    );
    let declared = text.replace(
        "  egress: []\n",
        "  egress: [{}]\n  policyTypes: [Egress]\n",
    );
    assert_eq!(
        load(&declared).cluster.policies[PolicyId::from(0)].policy_types,
        PolicyTypes {
            ingress: false,
            egress: true
        }
    );
    let pod_only = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: q}\nspec:\n  ingress:\n  - from: [{podSelector: {}}]\n";
    let q = &load(pod_only).cluster.policies[PolicyId::from(0)];
    assert_eq!(
        q.ingress[0].peers,
        [Peer::Pods {
            namespaces: NamespaceScope::PolicyNamespace,
            pods: LabelSelector::everything()
        }]
    );
}

#[test]
fn documents_that_are_not_objects() {
    // (case, input, field, message part)
    let table: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "no kind",
            "apiVersion: v1\nmetadata: {name: a}\n",
            Some("kind"),
            "missing `kind`",
        ),
        (
            "kind not a string",
            "kind: [Pod]\n",
            Some("kind"),
            "must be a string",
        ),
        (
            "a scalar",
            "just text\n",
            None,
            "expected a Kubernetes object",
        ),
        (
            "a list item that is not an object",
            "kind: List\nitems: [3]\n",
            Some("items"),
            "expected a Kubernetes object",
        ),
        (
            "duplicate keys",
            "kind: Pod\nkind: Pod\n",
            None,
            "duplicate mapping key `kind`",
        ),
        (
            "a pod field of the wrong type",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {hostNetwork: sure}\n",
            Some("spec.hostNetwork"),
            "expected a boolean",
        ),
        (
            "a bad container port",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, ports: [{containerPort: 0}]}]}\n",
            Some("spec.containers[0].ports[0].containerPort"),
            "between 1 and 65535",
        ),
        (
            "negative replicas",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: -1}\n",
            Some("spec.replicas"),
            "greater than or equal to 0",
        ),
        (
            "a workload needs a name",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {}\n",
            Some("metadata.name"),
            "required",
        ),
    ];
    for (case, text, field, message) in table {
        let loaded = load(text);
        assert_eq!(
            loaded.diagnostics.len(),
            1,
            "{case}: {:#?}",
            loaded.diagnostics
        );
        let d = &loaded.diagnostics[0];
        assert_eq!(d.field.as_deref(), *field, "{case}");
        assert!(d.message.contains(message), "{case}: {d}");
        assert!(loaded.cluster.endpoints.is_empty(), "{case}");
    }
}

#[test]
fn duplicate_objects_and_empty_inputs() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n";
    let loaded = load(&format!("{pod}{pod}"));
    assert_eq!(names(&loaded), ["default/a"]);
    assert_eq!(loaded.diagnostics.len(), 1);
    assert_eq!(loaded.diagnostics[0].origin.line, 7);
    for empty in ["", "\n", "---\n", "# nothing\n", "---\n...\n", "\u{feff}"] {
        let loaded = load(empty);
        assert_clean(&loaded);
        assert!(loaded.cluster.endpoints.is_empty() && loaded.cluster.namespaces.is_empty());
    }
}

#[test]
fn diagnostics_render_file_line_column_object_field() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: n}\nspec:\n  ingress:\n  - ports: [{port: 0}]\n";
    let loaded = load(text);
    assert_eq!(
        loaded.diagnostics[0].to_string(),
        "in.yaml:6:20: error: NetworkPolicy n/p: spec.ingress[0].ports[0].port: invalid value 0: must be between 1 and 65535, inclusive"
    );
}

/// List items are loaded while the list is still being read; what they yield only counts once
/// the document turns out to be a list, so the outcome is that of reading it whole.
#[test]
fn list_items_count_only_when_the_document_is_a_list() {
    let pod = |name: &str| format!("- {{apiVersion: v1, kind: Pod, metadata: {{name: {name}}}}}\n");
    let bare = |name: &str| format!("- {{metadata: {{name: {name}}}}}\n");
    // (case, input, endpoints, skipped kinds, errors)
    type Case = (
        &'static str,
        String,
        Vec<&'static str>,
        Vec<&'static str>,
        usize,
    );
    let table: Vec<Case> = vec![
        (
            "kind after items",
            format!(
                "apiVersion: v1\nitems:\n{}{}kind: List\n",
                pod("a"),
                pod("b")
            ),
            vec!["default/a", "default/b"],
            vec![],
            0,
        ),
        (
            "kind before items",
            format!("kind: List\nitems:\n{}", pod("a")),
            vec!["default/a"],
            vec![],
            0,
        ),
        (
            "not a list after all",
            format!("apiVersion: v1\nitems:\n{}kind: ConfigMap\n", pod("a")),
            vec![],
            vec!["ConfigMap"],
            0,
        ),
        (
            "no kind at all",
            format!("items:\n{}", pod("a")),
            vec![],
            vec![],
            1,
        ),
        (
            "broken after the items",
            format!("items:\n{}kind: List\nmetadata: {{\n", pod("a")),
            vec![],
            vec![],
            1,
        ),
        (
            "typed list, kind last",
            format!(
                "apiVersion: v1\nitems:\n{}{}kind: PodList\n",
                bare("a"),
                pod("b")
            ),
            vec!["default/b", "default/a"],
            vec![],
            0,
        ),
        (
            "typed list, kind first",
            format!("kind: PodList\napiVersion: v1\nitems:\n{}", bare("a")),
            vec!["default/a"],
            vec![],
            0,
        ),
    ];
    for (case, text, endpoints, skipped, errors) in table {
        let loaded = load(&text);
        assert_eq!(
            names(&loaded),
            endpoints,
            "{case}: {:#?}",
            loaded.diagnostics
        );
        assert_eq!(
            loaded
                .skipped_kinds
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            skipped,
            "{case}"
        );
        assert_eq!(
            loaded.diagnostics.len(),
            errors,
            "{case}: {:#?}",
            loaded.diagnostics
        );
    }
}

/// Inputs over a megabyte are loaded on several threads; the result keeps input order.
#[test]
fn large_inputs_keep_input_order() {
    let mut text = String::new();
    let (mut expected, mut bad_lines, mut line) = (Vec::new(), Vec::new(), 1);
    let padding = "x".repeat(200);
    for i in 0..4000 {
        let doc = if i % 500 == 7 {
            bad_lines.push(line + 2);
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, labels: [oops]}}\n---\n")
        } else {
            expected.push(format!("ns{}/p{i}", i % 3));
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\n  namespace: ns{}\n  \
                 annotations: {{note: {padding}}}\nstatus:\n  podIP: 10.0.{}.{}\n---\n",
                i % 3,
                i / 256,
                i % 256
            )
        };
        line += doc.matches('\n').count();
        text += &doc;
    }
    assert!(text.len() > 1 << 20, "must take the parallel path");
    let loaded = load(&text);
    assert_eq!(names(&loaded), expected);
    let lines: Vec<usize> = loaded.diagnostics.iter().map(|d| d.origin.line).collect();
    assert_eq!(lines, bad_lines);
    let origins: Vec<usize> = loaded.endpoint_origins.iter().map(|o| o.line).collect();
    assert!(origins.windows(2).all(|w| w[0] < w[1]));
    let namespaces: Vec<&str> = loaded
        .cluster
        .namespaces
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(namespaces, ["ns0", "ns1", "ns2"]);
}
