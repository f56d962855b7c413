//! Every case's world written as manifests loads back, through the same loader the agent
//! uses, as exactly the case's cluster: so a lab enforcing the manifests enforces the case.

use palisade_engine::{Cluster, EndpointKind};
use palisade_manifest::{LoadOptions, load_str};

/// Workloads have no addresses in manifests (their pods do); the lab gives them theirs.
fn comparable(mut cluster: Cluster) -> Cluster {
    for ep in &mut cluster.endpoints {
        if matches!(ep.kind, EndpointKind::Workload { .. }) {
            ep.ips.clear();
        }
    }
    cluster.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    cluster
}

#[test]
fn every_world_round_trips_through_its_manifests() {
    for case in palisade_conformance::cases() {
        let text = case.world.manifests();
        let loaded = load_str(&case.name, &text, &LoadOptions::default());
        assert!(
            loaded.diagnostics.is_empty(),
            "{}: {:?}",
            case.name,
            loaded.diagnostics
        );
        let (got, want) = (
            comparable(loaded.cluster),
            comparable(case.world.cluster().clone()),
        );
        assert_eq!(got.namespaces, want.namespaces, "{}", case.name);
        assert_eq!(got.endpoints, want.endpoints, "{}", case.name);
        assert_eq!(got.policies, want.policies, "{}", case.name);
    }
}
