//! The generator's output, read back by the manifest loader.

use palisade_engine::{
    Analysis, Cluster, Direction, EndpointId, NAMESPACE_NAME_LABEL, NamespaceScope, NetworkPolicy,
    Operator, Peer, PortRef, PortRule, Protocol, Subject,
};
use palisade_manifest::{LoadOptions, Loaded, load_paths, load_str};
use palisade_synth::{Generated, Mode, Params, SynthError, generate};
use proptest::prelude::*;
use std::collections::HashSet;

fn params(seed: u64, pods: usize, policies: usize) -> Params {
    Params {
        seed,
        pods,
        policies,
        namespaces: None,
        mode: Mode::Pods,
    }
}

fn stream(generated: &Generated) -> String {
    let mut out = Vec::new();
    generated.write_stream(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn load(generated: &Generated) -> Loaded {
    load_str("synth.yaml", &stream(generated), &LoadOptions::default())
}

fn assert_clean(loaded: &Loaded) {
    let shown: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert!(shown.is_empty(), "diagnostics:\n{}", shown.join("\n"));
}

/// What was generated is exactly what the loader reads back, object for object.
fn assert_round_trip(generated: &Generated, cluster: &Cluster) {
    let namespaces: Vec<_> = generated.namespaces.iter().map(|n| &n.namespace).collect();
    assert_eq!(cluster.namespaces.iter().collect::<Vec<_>>(), namespaces);
    assert_eq!(cluster.endpoints.raw, generated.endpoints());
    let policies: Vec<&NetworkPolicy> = generated
        .namespaces
        .iter()
        .flat_map(|n| &n.policies)
        .collect();
    assert_eq!(cluster.policies.iter().collect::<Vec<_>>(), policies);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = stream(&generate(&params(7, 500, 120)).unwrap());
    let b = stream(&generate(&params(7, 500, 120)).unwrap());
    let c = stream(&generate(&params(8, 500, 120)).unwrap());
    assert_eq!(a, b);
    assert_ne!(a, c);
    let workloads = Params {
        mode: Mode::Workloads,
        ..params(7, 500, 120)
    };
    assert_eq!(
        stream(&generate(&workloads).unwrap()),
        stream(&generate(&workloads).unwrap())
    );
}

#[test]
fn output_loads_cleanly_with_the_requested_counts() {
    // (pods, policies, namespaces, mode)
    let table = [
        (0, 0, None, Mode::Pods),
        (1, 1, None, Mode::Pods),
        (2, 5, Some(1), Mode::Pods),
        (50, 25, None, Mode::Pods),
        (400, 200, None, Mode::Pods),
        (3000, 300, None, Mode::Pods),
        (1000, 40, Some(40), Mode::Pods),
        (400, 200, None, Mode::Workloads),
        (3000, 300, Some(7), Mode::Workloads),
    ];
    for (pods, policies, namespaces, mode) in table {
        let params = Params {
            namespaces,
            mode,
            ..params(3, pods, policies)
        };
        let generated = generate(&params).unwrap();
        let loaded = load(&generated);
        assert_clean(&loaded);
        let cluster = &loaded.cluster;
        let loaded_pods: u64 = cluster
            .endpoints
            .iter()
            .map(|e| u64::from(e.replicas))
            .sum();
        assert_eq!(loaded_pods, pods as u64, "{params:?}");
        assert_eq!(cluster.policies.len(), policies, "{params:?}");
        assert_eq!(
            cluster.namespaces.len(),
            1 + params.namespace_count(),
            "{params:?}"
        );
        if mode == Mode::Pods {
            assert_eq!(
                cluster.endpoints.len(),
                pods,
                "one Pod per replica: {params:?}"
            );
        }
        assert_round_trip(&generated, cluster);
    }
}

#[test]
fn pod_ips_are_unique_and_in_the_pod_network() {
    let generated = generate(&params(11, 5000, 10)).unwrap();
    let mut seen = HashSet::new();
    for w in generated.workloads() {
        for pod in &w.pods {
            assert_eq!(pod.ip.octets()[0], 10, "{}", pod.ip);
            assert!(seen.insert(pod.ip), "{} given twice", pod.ip);
        }
    }
    assert_eq!(seen.len(), 5000);
}

#[test]
fn workloads_have_replicas_sharing_their_template_labels() {
    let generated = generate(&params(5, 3000, 0)).unwrap();
    let sizes: Vec<usize> = generated.workloads().map(|w| w.pods.len()).collect();
    assert!(sizes.iter().all(|&n| (1..=20).contains(&n)), "{sizes:?}");
    assert!(sizes.iter().any(|&n| n > 1), "no workload has replicas");
    let loaded = load(&generated);
    let by_name: std::collections::HashMap<&str, _> = loaded
        .cluster
        .endpoints
        .iter()
        .map(|e| (e.name.as_str(), e))
        .collect();
    for w in generated.workloads() {
        for pod in &w.pods {
            let labels = &by_name[pod.name.as_str()].labels;
            for (k, v) in &w.labels {
                assert_eq!(labels.get(k), Some(v), "{} lacks {k}={v}", pod.name);
            }
        }
    }
    for key in ["app", "tier", "team", "env", "version"] {
        assert!(
            generated.workloads().any(|w| w.labels.contains_key(key)),
            "no workload has label {key}"
        );
    }
    let namespaced = &generated.namespaces[1].namespace.labels;
    assert!(namespaced.contains_key("team") && namespaced.contains_key("env"));
}

/// Every shape of the mix, recognised from the loaded policies rather than from the generator's
/// own bookkeeping.
#[test]
fn every_policy_shape_of_the_mix_appears() {
    let generated = generate(&params(1, 1000, 120)).unwrap();
    let loaded = load(&generated);
    assert_clean(&loaded);
    let policies = &loaded.cluster.policies;
    let all_rules = || {
        policies
            .iter()
            .flat_map(|p| p.ingress.iter().chain(&p.egress))
    };
    let any_port = |f: &dyn Fn(&PortRule) -> bool| all_rules().any(|r| r.ports.iter().any(f));
    let any_peer = |f: &dyn Fn(&Peer) -> bool| all_rules().any(|r| r.peers.iter().any(f));
    let deny = |ingress: bool, egress: bool| {
        policies.iter().any(|p| {
            p.pod_selector.selects_everything()
                && p.ingress.is_empty()
                && p.egress.is_empty()
                && p.policy_types.ingress == ingress
                && p.policy_types.egress == egress
        })
    };
    let operators: HashSet<Operator> = policies
        .iter()
        .flat_map(|p| {
            let mut selectors = vec![p.pod_selector.clone()];
            for peer in p.ingress.iter().chain(&p.egress).flat_map(|r| &r.peers) {
                if let Peer::Pods { namespaces, pods } = peer {
                    selectors.push(pods.clone());
                    if let NamespaceScope::Selected(ns) = namespaces {
                        selectors.push(ns.clone());
                    }
                }
            }
            selectors
        })
        .flat_map(|s| s.match_expressions)
        .map(|r| r.operator)
        .collect();
    let checks: [(&str, bool); 14] = [
        ("default deny ingress", deny(true, false)),
        ("default deny egress", deny(false, true)),
        ("default deny both", deny(true, true)),
        (
            "allow from same app",
            policies.iter().any(|p| {
                p.ingress.iter().any(|r| {
                    r.peers.iter().any(|peer| {
                        matches!(peer, Peer::Pods { namespaces: NamespaceScope::PolicyNamespace, pods }
                            if *pods == p.pod_selector && pods.match_labels.contains_key("app"))
                    })
                })
            }),
        ),
        (
            "allow from namespaces by label",
            any_peer(&|peer| {
                matches!(peer, Peer::Pods { namespaces: NamespaceScope::Selected(ns), .. }
                    if ns.match_labels.contains_key("team"))
            }),
        ),
        (
            "namespaceSelector {} (every namespace)",
            any_peer(&|peer| {
                matches!(peer, Peer::Pods { namespaces: NamespaceScope::Selected(ns), .. }
                    if ns.selects_everything())
            }),
        ),
        (
            "matchExpressions with In, NotIn, Exists, DoesNotExist",
            operators.len() == 4,
        ),
        (
            "ipBlock with except",
            any_peer(&|peer| matches!(peer, Peer::IpBlock(b) if !b.except.is_empty())),
        ),
        (
            "ipBlock egress",
            policies.iter().any(|p| {
                p.egress
                    .iter()
                    .any(|r| r.peers.iter().any(|peer| matches!(peer, Peer::IpBlock(_))))
            }),
        ),
        (
            "named port",
            any_port(&|p| matches!(p.port, Some(PortRef::Named(_)))),
        ),
        ("endPort range", any_port(&|p| p.end_port.is_some())),
        ("UDP rule", any_port(&|p| p.protocol == Protocol::Udp)),
        ("SCTP rule", any_port(&|p| p.protocol == Protocol::Sctp)),
        (
            "DNS allowance to kube-system",
            any_peer(&|peer| {
                matches!(peer, Peer::Pods { namespaces: NamespaceScope::Selected(ns), pods }
                    if ns.match_labels.get(NAMESPACE_NAME_LABEL).map(String::as_str) == Some("kube-system")
                        && pods.match_labels.get("k8s-app").map(String::as_str) == Some("kube-dns"))
            }),
        ),
    ];
    let missing: Vec<&str> = checks
        .iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| *name)
        .collect();
    assert!(missing.is_empty(), "missing from the mix: {missing:?}");
}

/// The DNS allowance reaches real CoreDNS pods: from a pod of an egress-isolated namespace,
/// DNS to kube-dns is allowed and nothing else is.
#[test]
fn dns_allowance_reaches_coredns_pods() {
    let generated = generate(&params(2, 300, 6)).unwrap();
    let loaded = load(&generated);
    assert_clean(&loaded);
    let analysis = Analysis::new(loaded.cluster);
    let cluster = analysis.cluster();
    let coredns: Vec<EndpointId> = cluster
        .endpoints
        .keys()
        .filter(|&i| cluster.endpoints[i].namespace == "kube-system")
        .collect();
    assert_eq!(coredns.len(), 2);
    let isolated = cluster
        .endpoints
        .keys()
        .find(|&i| {
            cluster.endpoints[i].namespace != "kube-system"
                && !analysis.isolating_policies(i, Direction::Egress).is_empty()
        })
        .expect("some pod is egress-isolated");
    for &dns in &coredns {
        let allowed = analysis.allowed_ports(Subject::Endpoint(isolated), Subject::Endpoint(dns));
        assert!(allowed.contains(Protocol::Udp, 53), "{allowed}");
        assert!(allowed.contains(Protocol::Tcp, 53), "{allowed}");
        assert!(!allowed.contains(Protocol::Tcp, 9153), "{allowed}");
    }
}

#[test]
fn directory_holds_one_file_per_namespace_and_loads_like_the_stream() {
    let generated = generate(&params(4, 800, 90)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cluster");
    generated.write_dir(&out).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut expected: Vec<String> = generated
        .namespaces
        .iter()
        .map(|n| format!("{}.yaml", n.namespace.name))
        .collect();
    expected.sort();
    assert_eq!(files, expected);
    let loaded = load_paths(std::slice::from_ref(&out), &LoadOptions::default());
    assert_clean(&loaded);
    assert_eq!(loaded.cluster.endpoints.len(), 800);
    assert_eq!(loaded.cluster.policies.len(), 90);
    // A second run must not mix its files with the first one's.
    match generated.write_dir(&out) {
        Err(SynthError::OutDirNotEmpty(path)) => assert_eq!(path, out),
        other => panic!("expected OutDirNotEmpty, got {other:?}"),
    }
}

#[test]
fn impossible_sizes_are_refused() {
    let none = Params {
        namespaces: Some(0),
        ..params(1, 10, 1)
    };
    assert!(matches!(generate(&none), Err(SynthError::NoNamespaces)));
    match generate(&params(1, 1 << 24, 1)) {
        Err(e @ SynthError::TooManyPods { .. }) => {
            assert!(e.to_string().contains("10.0.0.0/8"), "{e}")
        }
        other => panic!("expected TooManyPods, got {:?}", other.map(|_| ())),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_size_loads_cleanly_and_round_trips(
        seed in any::<u64>(),
        pods in 0usize..400,
        policies in 0usize..150,
        namespaces in proptest::option::of(1usize..10),
        workloads in any::<bool>(),
    ) {
        let params = Params {
            seed,
            pods,
            policies,
            namespaces,
            mode: if workloads { Mode::Workloads } else { Mode::Pods },
        };
        let generated = generate(&params).unwrap();
        prop_assert_eq!(generated.pod_count(), pods);
        prop_assert_eq!(generated.policy_count(), policies);
        let loaded = load(&generated);
        assert_clean(&loaded);
        assert_round_trip(&generated, &loaded.cluster);
    }
}
