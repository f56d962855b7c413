use super::*;
use crate::ids::EndpointId;
use crate::model::{Cluster, Namespace, PortRef};
use crate::ports::Protocol::{Tcp, Udp};
use crate::selector::Labels;
use crate::testing::{arb_cluster, block, pod, pods_peer, policy, port};
use proptest::prelude::*;

/// Every pair of endpoints and outside ranges (a representative address each): the table's
/// answer, dense and sparse, is what [`Analysis::allowed_ports`] says for the pair.
fn assert_tables_agree(cluster: Cluster) {
    let analysis = Analysis::new(cluster);
    let dense = analysis.connectivity();
    let sparse = analysis.connectivity_with_dense_limit(0);
    assert!(matches!(dense.intersections, Intersections::Dense { .. }));
    assert!(matches!(sparse.intersections, Intersections::Sparse(_)));
    let mut subjects: Vec<(Subject, Vertex)> = analysis
        .cluster()
        .endpoints
        .keys()
        .map(|e| (Subject::Endpoint(e), Vertex::Class(analysis.class_of(e))))
        .collect();
    for (i, range) in dense.externals().iter().enumerate() {
        subjects.push((Subject::External(range.first), Vertex::External(i)));
        subjects.push((Subject::External(range.last), Vertex::External(i)));
        assert_eq!(dense.external_vertex(range.last), Some(Vertex::External(i)));
    }
    for &(src, src_node) in &subjects {
        for &(dst, dst_node) in &subjects {
            if analysis.is_loopback(src, dst) {
                continue;
            }
            let expected = analysis.allowed_ports(src, dst);
            let context = format!("{src:?} -> {dst:?}");
            assert_eq!(
                *dense.allowed(src_node, dst_node),
                expected,
                "dense {context}"
            );
            assert_eq!(
                *sparse.allowed(src_node, dst_node),
                expected,
                "sparse {context}"
            );
        }
    }
}

#[test]
fn tables_agree_with_pairwise_decisions() {
    let pods = vec![
        pod(
            "a",
            "web",
            &[("app", "web")],
            &["10.0.0.1"],
            &[("http", 80, Tcp)],
        ),
        pod(
            "a",
            "web2",
            &[("app", "web")],
            &["10.0.0.2"],
            &[("http", 8080, Tcp)],
        ),
        pod(
            "b",
            "db",
            &[("app", "db")],
            &["10.1.0.1"],
            &[("dns", 53, Udp)],
        ),
        pod("b", "client", &[], &["10.2.0.1", "fd00::1"], &[]),
    ];
    let named = |n: &str| Some(PortRef::Named(n.to_string()));
    let cases: Vec<(&str, Vec<_>)> = vec![
        ("no policies", vec![]),
        (
            "deny all",
            vec![policy("a", "deny", &[], Some(vec![]), Some(vec![]))],
        ),
        (
            "named ports both ways",
            vec![
                policy(
                    "a",
                    "in",
                    &[("app", "web")],
                    Some(vec![Rule {
                        peers: vec![pods_peer(Some(&[]), &[])],
                        ports: vec![port(Tcp, named("http"), None)],
                    }]),
                    None,
                ),
                policy(
                    "b",
                    "out",
                    &[],
                    None,
                    Some(vec![Rule {
                        peers: vec![pods_peer(Some(&[]), &[("app", "web")])],
                        ports: vec![
                            port(Tcp, named("http"), None),
                            port(Udp, Some(PortRef::Number(53)), None),
                        ],
                    }]),
                ),
            ],
        ),
        (
            "ipBlocks with excepts",
            vec![policy(
                "b",
                "out",
                &[("app", "db")],
                None,
                Some(vec![Rule {
                    peers: vec![
                        block("10.0.0.0/8", &["10.1.0.0/16"]),
                        block("fd00::/64", &[]),
                    ],
                    ports: vec![port(Tcp, Some(PortRef::Number(80)), Some(90))],
                }]),
            )],
        ),
    ];
    for (name, policies) in cases {
        eprintln!("case: {name}");
        assert_tables_agree(Cluster {
            namespaces: vec![Namespace::new("a", Labels::new())],
            endpoints: pods.clone().into(),
            policies: policies.into(),
        });
    }
}

#[test]
fn classes_alike_share_keys() {
    let analysis = Analysis::new(Cluster {
        endpoints: (0..4u8)
            .map(|i| pod("a", &format!("p{i}"), &[], &[&format!("10.0.0.{i}")], &[]))
            .collect(),
        policies: vec![policy("a", "deny", &[], Some(vec![]), None)].into(),
        ..Cluster::default()
    });
    let connectivity = analysis.connectivity();
    let vertex = |e: usize| Vertex::Class(analysis.class_of(EndpointId::from(e)));
    assert_eq!(analysis.class_count(), 1);
    assert_eq!(
        connectivity.source_key(vertex(0)),
        connectivity.source_key(vertex(3))
    );
    assert!(connectivity.allowed(vertex(0), vertex(3)).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_clusters_agree_sparse_dense_and_pairwise(cluster in arb_cluster()) {
        assert_tables_agree(cluster);
    }
}
