//! What Palisade keeps of a Pod and a Node: the few fields policy needs, deserialized straight
//! from the API's JSON so that a watched cluster costs a few hundred bytes per pod, not the
//! kilobytes of a full `Pod` (managed fields, container specs, conditions).

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The metadata fields policy reads; the rest of `metadata` is skipped while parsing.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanMeta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    uid: Option<String>,
    resource_version: Option<String>,
}

fn lean_meta<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let lean = LeanMeta::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: lean.name,
        namespace: lean.namespace,
        labels: lean.labels,
        uid: lean.uid,
        resource_version: lean.resource_version,
        ..ObjectMeta::default()
    })
}

/// A Pod as Palisade watches it.
#[derive(Clone, Debug, Deserialize)]
pub struct WatchedPod {
    #[serde(deserialize_with = "lean_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: WatchedPodSpec,
    #[serde(default)]
    pub status: WatchedPodStatus,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedPodSpec {
    pub node_name: Option<String>,
    pub host_network: Option<bool>,
    #[serde(default)]
    pub containers: Vec<WatchedContainer>,
    pub init_containers: Option<Vec<WatchedContainer>>,
}

/// A container's name and ports, and whether an init container keeps running as a sidecar.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedContainer {
    #[serde(default)]
    pub name: String,
    pub ports: Option<Vec<core::ContainerPort>>,
    pub restart_policy: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedPodStatus {
    pub phase: Option<String>,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pub pod_ips: Option<Vec<core::PodIP>>,
}

impl WatchedPod {
    /// The Pod these fields came from, less what policy does not read: loaded by the same code
    /// as a Pod in a manifest.
    pub fn to_pod(&self) -> core::Pod {
        self.clone().into_pod()
    }

    pub fn into_pod(self) -> core::Pod {
        let container = |c: WatchedContainer| core::Container {
            name: c.name,
            ports: c.ports,
            restart_policy: c.restart_policy,
            ..core::Container::default()
        };
        core::Pod {
            metadata: self.metadata,
            spec: Some(core::PodSpec {
                node_name: self.spec.node_name,
                host_network: self.spec.host_network,
                containers: self.spec.containers.into_iter().map(container).collect(),
                init_containers: self
                    .spec
                    .init_containers
                    .map(|cs| cs.into_iter().map(container).collect()),
                ..core::PodSpec::default()
            }),
            status: Some(core::PodStatus {
                phase: self.status.phase,
                pod_ip: self.status.pod_ip,
                pod_ips: self.status.pod_ips,
                ..core::PodStatus::default()
            }),
        }
    }

    pub fn node_name(&self) -> Option<&str> {
        self.spec.node_name.as_deref()
    }
}

/// A Node as Palisade watches it: its name and addresses.
#[derive(Clone, Debug, Deserialize)]
pub struct WatchedNode {
    #[serde(deserialize_with = "lean_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub status: WatchedNodeStatus,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct WatchedNodeStatus {
    pub addresses: Option<Vec<core::NodeAddress>>,
}

impl WatchedNode {
    pub fn to_node(&self) -> core::Node {
        self.clone().into_node()
    }

    pub fn into_node(self) -> core::Node {
        core::Node {
            metadata: self.metadata,
            status: Some(core::NodeStatus {
                addresses: self.status.addresses,
                ..core::NodeStatus::default()
            }),
            ..core::Node::default()
        }
    }
}

macro_rules! core_resource {
    ($type:ty, $kind:literal, $plural:literal, $scope:ty) => {
        impl Resource for $type {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed("")
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed("v1")
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

core_resource!(
    WatchedPod,
    "Pod",
    "pods",
    k8s_openapi::NamespaceResourceScope
);
core_resource!(
    WatchedNode,
    "Node",
    "nodes",
    k8s_openapi::ClusterResourceScope
);

#[cfg(test)]
mod tests {
    use super::*;

    /// What the API returns for a pod, with the fields policy ignores, parses into the few it
    /// reads; converted back, it is the Pod policy sees.
    #[test]
    fn a_pod_keeps_what_policy_reads_and_nothing_else() {
        let json = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-0", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                "labels": {"app": "web"},
                "annotations": {"big": "x".repeat(1000)},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {
                "nodeName": "n1",
                "containers": [{"name": "c", "image": "nginx", "args": ["a"],
                    "ports": [{"name": "http", "containerPort": 80}]}],
                "initContainers": [{"name": "s", "image": "x", "restartPolicy": "Always",
                    "ports": [{"containerPort": 9090, "protocol": "UDP"}]}]
            },
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
                "conditions": [{"type": "Ready", "status": "True"}]}
        });
        let pod: WatchedPod = serde_json::from_value(json).unwrap();
        assert_eq!(pod.node_name(), Some("n1"));
        assert!(pod.metadata.annotations.is_none());
        assert!(pod.metadata.managed_fields.is_none());
        let full = pod.to_pod();
        let spec = full.spec.unwrap();
        assert_eq!(
            spec.containers[0].ports.as_ref().unwrap()[0].container_port,
            80
        );
        let sidecar = &spec.init_containers.unwrap()[0];
        assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
        let status = full.status.unwrap();
        assert_eq!(status.pod_ips.unwrap().len(), 2);
        assert_eq!(full.metadata.labels.unwrap()["app"], "web");
    }
}
