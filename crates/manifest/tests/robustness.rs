//! No input panics or hangs: random bytes, mutated manifests, trees of real field names with
//! values of every type, and the classic YAML traps. Invariants checked on every run: origins
//! stay parallel to the cluster, and every diagnostic points inside the input.

use palisade_engine::EndpointId;
use palisade_manifest::{LoadOptions, Loaded, load_str};
use proptest::prelude::*;

const SEED: &str = include_str!("../testdata/list.yaml");

fn check(text: &str) -> Loaded {
    let loaded = load_str("fuzz.yaml", text, &LoadOptions::default());
    assert_eq!(loaded.policy_origins.len(), loaded.cluster.policies.len());
    assert_eq!(
        loaded.endpoint_origins.len(),
        loaded.cluster.endpoints.len()
    );
    // YAML breaks lines at \r\n, \n and a lone \r.
    let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
    for d in &loaded.diagnostics {
        assert!(
            d.origin.line >= 1 && d.origin.line <= lines,
            "{d} outside {lines} lines"
        );
        assert!(d.origin.column >= 1, "{d}");
    }
    loaded
}

/// Field names the loader looks at, so random trees reach deep into the conversion code.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "ownerReferences",
    "uid",
    "controller",
    "spec",
    "status",
    "podIP",
    "podIPs",
    "ip",
    "containers",
    "initContainers",
    "restartPolicy",
    "ports",
    "containerPort",
    "protocol",
    "hostNetwork",
    "replicas",
    "template",
    "jobTemplate",
    "podSelector",
    "namespaceSelector",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "ingress",
    "egress",
    "from",
    "to",
    "ipBlock",
    "cidr",
    "except",
    "port",
    "endPort",
    "policyTypes",
    "items",
];
const KINDS: &[(&str, &str)] = &[
    ("Pod", "v1"),
    ("Namespace", "v1"),
    ("NetworkPolicy", "networking.k8s.io/v1"),
    ("Deployment", "apps/v1"),
    ("CronJob", "batch/v1"),
    ("List", "v1"),
    ("ReplicaSet", "apps/v1"),
    ("Service", "v1"),
];

fn scalar() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        (-1e300f64..1e300).prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "",
            "TCP",
            "In",
            "Exists",
            "10.0.0.0/8",
            "fd00::/8",
            "web",
            "http",
            "Always",
            "-",
            "a/b"
        ])
        .prop_map(serde_json::Value::from),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
    ]
}

fn tree() -> impl Strategy<Value = serde_json::Value> {
    scalar().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|entries| {
                serde_json::Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                )
            }),
        ]
    })
}

fn object() -> impl Strategy<Value = serde_json::Value> {
    (prop::sample::select(KINDS), tree(), tree()).prop_map(|((kind, api), metadata, spec)| {
        serde_json::json!({"apiVersion": api, "kind": kind, "metadata": metadata, "spec": spec, "items": [spec]})
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_manifests(edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..8)) {
        let mut text: Vec<char> = SEED.chars().collect();
        for (at, op, c) in edits {
            let i = at.index(text.len() + 1);
            match op {
                0 => text.insert(i, c),
                1 if i < text.len() => { text.remove(i); }
                _ if i < text.len() => text[i] = c,
                _ => {}
            }
        }
        check(&text.into_iter().collect::<String>());
    }

    #[test]
    fn objects_with_wrong_types_everywhere(objects in prop::collection::vec(object(), 1..4), json in any::<bool>()) {
        let docs: Vec<String> = objects
            .iter()
            .map(|o| if json { serde_json::to_string_pretty(o) } else { serde_json::to_string(o) }.unwrap_or_default())
            .collect();
        check(&docs.join("\n---\n"));
    }
}

#[test]
fn yaml_traps_are_reported_not_fatal() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb += &format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        );
    }
    let traps = [
        ("alias bomb", bomb),
        ("deep flow nesting", "[".repeat(100_000)),
        ("deep block nesting", (0..2000).map(|i| format!("{}a:\n", " ".repeat(i))).collect()),
        ("huge numbers", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: 1e999999}\n".into()),
        ("huge integer", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, ports: [{containerPort: 99999999999999999999999999}]}]}\n".into()),
        ("NUL and control bytes", "kind: \u{0}Pod\u{7}\n".into()),
        ("unterminated quote", "kind: \"Pod\n".into()),
        ("tabs", "kind:\tPod\n\tmetadata: x\n".into()),
        ("self-referencing merge", "a: &a\n  <<: *a\n".into()),
    ];
    for (name, text) in traps {
        let loaded = check(&text);
        assert!(loaded.has_errors(), "{name} should be reported");
        assert!(loaded.cluster.endpoints.is_empty(), "{name}");
    }
}

/// Wide inputs must not hit quadratic paths (duplicate-key checks, merges, lookups).
#[test]
fn wide_mappings_load() {
    let n = 50_000;
    let labels: String = (0..n).map(|i| format!("    k{i}: v\n")).collect();
    let pod = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels:\n{labels}");
    let loaded = check(&pod);
    assert!(
        loaded.diagnostics.is_empty(),
        "{:?}",
        loaded.diagnostics.first()
    );
    assert_eq!(
        loaded.cluster.endpoints[EndpointId::from(0)].labels.len(),
        n
    );

    let duplicated = format!("{pod}    k7: again\n");
    let loaded = check(&duplicated);
    assert_eq!(loaded.diagnostics.len(), 1);
    assert!(
        loaded.diagnostics[0]
            .message
            .contains("duplicate mapping key `k7`")
    );
    assert_eq!(loaded.diagnostics[0].origin.line, n + 6);

    let merged = format!(
        "base: &b\n{}apiVersion: v1\nkind: Pod\nmetadata:\n  name: m\n  labels:\n    <<: *b\n    k0: mine\n",
        labels.replace("    ", "  ")
    );
    let loaded = check(&merged);
    assert!(
        loaded.diagnostics.is_empty(),
        "{:?}",
        loaded.diagnostics.first()
    );
    let labels = &loaded.cluster.endpoints[EndpointId::from(0)].labels;
    assert_eq!((labels.len(), labels["k0"].as_str()), (n, "mine"));
}
