//! Which pods run on which node. Manifests do not say (the engine's endpoints carry no
//! `spec.nodeName`), so whoever places pods (the lab, later a watch on the API server) writes
//! a pod inventory, a JSON file:
//!
//! ```json
//! {"pods": [{"name": "shop/web", "node": "node0", "ips": ["10.1.0.1", "fd01::1"]}]}
//! ```
//!
//! `name` is the endpoint's qualified name (`ns/pod` or `ns/kind/name` for a workload, whose
//! replicas may be listed once per node); `ips`, when given, are the addresses the pod has
//! (they replace the manifest's `status.podIPs`). Without an inventory every pod with an
//! address is taken to be on this node (a one-node cluster).

use palisade_engine::{Cluster, EndpointId, EndpointKind};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInventory {
    pub pods: Vec<PodPlacement>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodPlacement {
    pub name: String,
    pub node: String,
    #[serde(default)]
    pub ips: Vec<IpAddr>,
}

impl PodInventory {
    /// Pods placed by the API server (`spec.nodeName`), with the addresses their status has.
    pub fn from_placements(placements: Vec<(String, String)>) -> Self {
        let pods = placements
            .into_iter()
            .map(|(name, node)| PodPlacement {
                name,
                node,
                ips: Vec::new(),
            })
            .collect();
        Self { pods }
    }
}

/// Applies the inventory to `cluster` (addresses) and returns this node's pods with their
/// addresses here, plus the names the inventory lists that the manifests do not have.
pub fn place(
    cluster: &mut Cluster,
    inventory: Option<&PodInventory>,
    node: &str,
) -> (Vec<(EndpointId, Vec<IpAddr>)>, Vec<String>) {
    let Some(inventory) = inventory else {
        return (palisade_engine::every_pod_local(cluster), Vec::new());
    };
    // Keyed by namespace and the rest of the qualified name, borrowed for pods: this runs on
    // every change, over every pod of the cluster.
    let by_name: HashMap<(&str, Cow<'_, str>), EndpointId> = cluster
        .endpoints
        .iter_enumerated()
        .map(|(id, ep)| {
            let rest = match &ep.kind {
                EndpointKind::Pod => Cow::Borrowed(ep.name.as_str()),
                EndpointKind::Workload { .. } => {
                    let qualified = ep.qualified_name();
                    Cow::Owned(qualified[ep.namespace.len() + 1..].to_string())
                }
            };
            ((ep.namespace.as_str(), rest), id)
        })
        .collect();
    let find = |name: &str| {
        let (namespace, rest) = name.split_once('/')?;
        by_name.get(&(namespace, Cow::Borrowed(rest))).copied()
    };
    let mut addresses: BTreeMap<EndpointId, Vec<IpAddr>> = BTreeMap::new();
    let mut local: BTreeMap<EndpointId, Vec<IpAddr>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for placement in &inventory.pods {
        let Some(id) = find(&placement.name) else {
            unknown.push(placement.name.clone());
            continue;
        };
        let ips = if placement.ips.is_empty() {
            cluster.endpoints[id].ips.clone()
        } else {
            placement.ips.clone()
        };
        addresses.entry(id).or_default().extend(&ips);
        if placement.node == node {
            local.entry(id).or_default().extend(ips);
        }
    }
    for (id, ips) in addresses {
        cluster.endpoints[id].ips = ips;
    }
    (local.into_iter().collect(), unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_engine::{Endpoint, Labels};

    #[test]
    fn placements_set_addresses_and_pick_this_nodes_pods() {
        let mut cluster = Cluster::default();
        let mut web = Endpoint::pod("shop", "web", Labels::new());
        web.ips = vec!["10.9.9.9".parse().unwrap()];
        cluster.endpoints = vec![web, Endpoint::pod("shop", "db", Labels::new())].into();
        let inventory: PodInventory = serde_json::from_str(
            r#"{"pods": [
                {"name": "shop/web", "node": "node0"},
                {"name": "shop/db", "node": "node1", "ips": ["10.1.0.2"]},
                {"name": "shop/gone", "node": "node0"}
            ]}"#,
        )
        .unwrap();
        let (local, unknown) = place(&mut cluster, Some(&inventory), "node0");
        assert_eq!(
            local,
            vec![(EndpointId::from(0), vec!["10.9.9.9".parse().unwrap()])]
        );
        assert_eq!(unknown, vec!["shop/gone".to_string()]);
        assert_eq!(
            cluster.endpoints[EndpointId::from(1)].ips,
            vec!["10.1.0.2".parse::<IpAddr>().unwrap()]
        );
        let (local, _) = place(&mut cluster, None, "node0");
        assert_eq!(local.len(), 2);
    }
}
