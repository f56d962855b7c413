//! `LoadCache::load_paths` gives exactly what a fresh `load_paths` gives after any edit, and
//! parses only the documents that changed.

use palisade_manifest::{LoadCache, LoadOptions, Loaded, load_paths};
use proptest::prelude::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Documents to build files from. Each starts with `---`, so a file's documents are exactly
/// these texts (plus whatever precedes the first).
const POOL: &[&str] = &[
    // 0, 1: the same policy twice (a duplicate when both are loaded).
    "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-web\n  namespace: shop\nspec:\n  podSelector:\n    matchLabels: {app: web}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {app: api}}\n    ports:\n    - port: 80\n",
    "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-web\n  namespace: shop\nspec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - port: 8080\n",
    // 2: in the default namespace, so the options matter.
    "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny-all\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n",
    // 3: invalid.
    "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: bad-port\n  namespace: shop\nspec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - port: 70000\n",
    // 4: a YAML error.
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: broken\n",
    // 5
    "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {team: a}\n",
    // 6, 7, 8: a Deployment, its ReplicaSet and its Pod: folded into the Pod.
    "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  uid: d1\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: nginx}]}\n",
    "---\napiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-abc\n  namespace: shop\n  uid: r1\n  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: d1, controller: true}]\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web, pod-template-hash: abc}}\n    spec: {containers: [{name: c, image: nginx}]}\n",
    "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-abc-1\n  namespace: shop\n  labels: {app: web, pod-template-hash: abc}\n  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-abc, uid: r1, controller: true}]\nspec: {containers: [{name: c, image: nginx}]}\nstatus: {podIP: 10.0.0.7}\n",
    // 9: a list with a skipped kind in it.
    "---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: db-0, namespace: data}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: cfg}\n",
    // 10
    "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n",
    // 11: in the default namespace, with an error.
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: lone}\nstatus: {podIP: 10.0.0.300}\n",
    // 12: nothing in it.
    "---\n# nothing here yet\n",
];

const FILES: &[&str] = &["a.yaml", "b.yaml", "c/d.yaml", "e.yml"];

/// One file: a comment before its first document (shifting the rest down) and pool indexes.
type FileSpec = Option<(bool, Vec<usize>)>;

const PREFIX: &str = "# generated\n\n";

fn contents(prefix: bool, documents: &[usize]) -> String {
    let mut text = if prefix { PREFIX } else { "" }.to_string();
    for &d in documents {
        text.push_str(POOL[d]);
    }
    text
}

/// Writes the files of `spec` under `dir`, removing the absent ones.
fn write(dir: &Path, spec: &[FileSpec]) {
    for (name, file) in FILES.iter().zip(spec) {
        let path = dir.join(name);
        match file {
            Some((prefix, documents)) => {
                std::fs::create_dir_all(path.parent().expect("in dir")).expect("mkdir");
                std::fs::write(&path, contents(*prefix, documents)).expect("write");
            }
            None => {
                if path.exists() {
                    std::fs::remove_file(&path).expect("remove");
                }
            }
        }
    }
}

/// (file, document text) of every document `spec` holds, as the loader splits them.
fn documents(spec: &[FileSpec]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (name, file) in FILES.iter().zip(spec) {
        if let Some((prefix, documents)) = file {
            let mut texts: Vec<String> = documents.iter().map(|&d| POOL[d].to_string()).collect();
            // The comment belongs to the first document, or is one on its own.
            match texts.first_mut() {
                Some(first) if *prefix => first.insert_str(0, PREFIX),
                None if *prefix => texts.push(PREFIX.to_string()),
                _ => {}
            }
            out.extend(texts.into_iter().map(|text| (*name, text)));
        }
    }
    out
}

/// Loads `paths` with the cache and fresh, requires the same result, returns it.
fn load_both(cache: &mut LoadCache, paths: &[PathBuf], options: &LoadOptions) -> Loaded {
    let cached = cache.load_paths(paths, options);
    let fresh = load_paths(paths, options);
    // Every field, the cluster's included (`Cluster` has no `PartialEq`).
    assert_eq!(format!("{cached:#?}"), format!("{fresh:#?}"));
    cached
}

fn options(namespace: &str) -> LoadOptions {
    LoadOptions {
        default_namespace: namespace.to_string(),
    }
}

fn has_message(loaded: &Loaded, part: &str) -> bool {
    loaded.diagnostics.iter().any(|d| d.message.contains(part))
}

fn endpoint_names(loaded: &Loaded) -> Vec<String> {
    let endpoints = &loaded.cluster.endpoints;
    endpoints.iter().map(|e| e.qualified_name()).collect()
}

#[test]
fn edits_reparse_only_changed_documents_and_match_a_fresh_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = || -> Vec<FileSpec> {
        vec![
            Some((false, vec![5, 0, 2, 10])),
            Some((false, vec![6, 7])),
            Some((false, vec![8, 9])),
            None,
        ]
    };
    type Check = fn(&Loaded) -> bool;
    // (what changes, the files after it, options namespace, documents parsed, outcome)
    let steps: Vec<(&str, Vec<FileSpec>, &str, usize, Check)> = vec![
        ("cold", base(), "default", 8, |l| {
            endpoint_names(l) == ["shop/web-abc-1", "data/db-0"] && !l.has_errors()
        }),
        ("nothing", base(), "default", 0, |l| !l.has_errors()),
        (
            "one document changed",
            {
                let mut s = base();
                s[0] = Some((false, vec![5, 1, 2, 10]));
                s
            },
            "default",
            1,
            |l| l.cluster.policies.iter().any(|p| p.name == "allow-web"),
        ),
        (
            "lines added before everything",
            {
                let mut s = base();
                s[0] = Some((true, vec![5, 1, 2, 10]));
                s
            },
            "default",
            1,
            |l| l.policy_origins.iter().any(|o| o.line > 20),
        ),
        (
            "documents reordered",
            {
                let mut s = base();
                s[0] = Some((true, vec![5, 10, 2, 1]));
                s
            },
            "default",
            0,
            |l| !l.has_errors(),
        ),
        (
            "a file added before others, with a duplicate",
            {
                let mut s = base();
                s[0] = Some((true, vec![5, 10, 2, 1]));
                s[3] = Some((false, vec![0]));
                s
            },
            "default",
            1,
            |l| has_message(l, "duplicate name"),
        ),
        (
            "a document made invalid",
            {
                let mut s = base();
                s[0] = Some((true, vec![5, 10, 2, 3]));
                s[3] = Some((false, vec![0, 4]));
                s
            },
            "default",
            2,
            |l| has_message(l, "70000") && has_message(l, "YAML syntax error"),
        ),
        (
            "valid again, a file removed: its pod no longer folds the deployment",
            {
                let mut s = base();
                s[0] = Some((true, vec![5, 10, 2, 1]));
                s[2] = None;
                s
            },
            "default",
            1,
            |l| endpoint_names(l) == ["shop/deployment/web"] && !l.has_errors(),
        ),
        ("options changed", base(), "prod", 8, |l| {
            l.cluster.policies.iter().any(|p| p.namespace == "prod")
        }),
    ];
    let mut cache = LoadCache::default();
    for (what, spec, namespace, parsed, outcome) in steps {
        write(dir.path(), &spec);
        let paths = [dir.path().to_path_buf()];
        let loaded = load_both(&mut cache, &paths, &options(namespace));
        assert_eq!(cache.last_parsed_documents(), parsed, "{what}");
        assert!(outcome(&loaded), "{what}: {loaded:#?}");
    }
}

#[test]
fn one_changed_document_of_many_is_the_only_one_parsed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = |i: usize, port: u16| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p{i}\n  namespace: shop\nspec:\n  podSelector: {{}}\n  ingress:\n  - ports:\n    - port: {port}\n"
        )
    };
    let stream = |changed: usize| -> String {
        (0..200)
            .map(|i| policy(i, if i == changed { 443 } else { 80 }))
            .collect()
    };
    let file = dir.path().join("policies.yaml");
    let mut cache = LoadCache::default();
    for (changed, parsed) in [(usize::MAX, 200), (57, 1), (57, 0), (120, 2)] {
        std::fs::write(&file, stream(changed)).expect("write");
        let paths = [dir.path().to_path_buf()];
        let loaded = load_both(&mut cache, &paths, &LoadOptions::default());
        assert_eq!(loaded.cluster.policies.len(), 200);
        assert_eq!(cache.last_parsed_documents(), parsed, "changed p{changed}");
    }
}

fn file_spec() -> impl Strategy<Value = FileSpec> {
    prop::option::of((any::<bool>(), prop::collection::vec(0..POOL.len(), 0..6)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any sequence of directory states and options, loaded as a directory or as its files in
    /// reverse order (so a file's index changes): the cache agrees with a fresh load and parses
    /// exactly the documents it has not seen in the previous state.
    #[test]
    fn any_edit_sequence_matches_a_fresh_load(
        steps in prop::collection::vec(
            (prop::collection::vec(file_spec(), FILES.len()), any::<bool>(), any::<bool>()),
            1..6,
        )
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cache = LoadCache::default();
        let mut seen: Option<(bool, HashSet<(&str, String)>)> = None;
        for (spec, other_namespace, reversed) in steps {
            write(dir.path(), &spec);
            let namespace = if other_namespace { "other" } else { "default" };
            let paths: Vec<PathBuf> = match reversed {
                false => vec![dir.path().to_path_buf()],
                true => FILES.iter().rev().map(|f| dir.path().join(f)).collect(),
            };
            load_both(&mut cache, &paths, &options(namespace));
            let now = documents(&spec);
            let expected = match &seen {
                Some((ns, known)) if *ns == other_namespace => {
                    now.iter().filter(|d| !known.contains(d)).count()
                }
                _ => now.len(),
            };
            prop_assert_eq!(cache.last_parsed_documents(), expected);
            seen = Some((other_namespace, now.into_iter().collect()));
        }
    }
}

#[test]
fn paths_given_as_files_in_another_order_reuse_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = vec![
        Some((false, vec![0, 5, 11])),
        Some((false, vec![2, 3, 1])),
        None,
        None,
    ];
    write(dir.path(), &spec);
    let file = |name: &str| -> PathBuf { dir.path().join(name) };
    let mut cache = LoadCache::default();
    let options = LoadOptions::default();
    // (paths, documents parsed, a duplicate reported)
    for (paths, parsed, duplicate) in [
        (vec![file("a.yaml"), file("b.yaml")], 6, true),
        (vec![file("b.yaml"), file("a.yaml")], 0, true),
        (vec![file("b.yaml")], 0, false),
    ] {
        let loaded = load_both(&mut cache, &paths, &options);
        assert_eq!(cache.last_parsed_documents(), parsed, "{paths:?}");
        assert_eq!(
            has_message(&loaded, "duplicate name"),
            duplicate,
            "{paths:?}"
        );
    }
}
