//! Pods listed as Kubernetes protobuf rather than JSON: at 100k pods the API server serves the
//! protobuf list about twice as fast and it is a third smaller, and decoding it skips every
//! field policy does not read (managed fields, container specs, conditions) without parsing it.
//!
//! The messages below name only the fields Palisade reads; their tags are the API's own
//! (`k8s.io/api/core/v1/generated.proto`), checked against `k8s-pb`'s full types in the tests.
//! A server (or proxy) that answers JSON instead is read as JSON.

use crate::objects::{WatchedContainer, WatchedPod, WatchedPodSpec, WatchedPodStatus};
use crate::read::{Page, PageItems};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{ListMeta, Status as PbStatus};
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use kube::api::ListParams;
use kube::core::{ObjectList, Status};
use kube::{Client, Resource};
use prost::Message;
use std::collections::BTreeMap;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// Protobuf, or JSON from a server (or proxy) that has no protobuf.
const ACCEPT: &str = "application/vnd.kubernetes.protobuf, application/json";
/// Every protobuf body the API server sends starts with these bytes, then a `runtime.Unknown`.
const MAGIC: &[u8] = b"k8s\0";

/// A `PodList`'s items (its metadata is read by [`PodListHead`]).
#[derive(Clone, PartialEq, Message)]
struct LeanPodList {
    #[prost(message, repeated, tag = "2")]
    items: Vec<LeanPod>,
}

/// A `PodList`'s metadata alone (the items are skipped): the next page's token, known
/// before the page is decoded.
#[derive(Clone, PartialEq, Message)]
struct PodListHead {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ListMeta>,
}

#[derive(Clone, PartialEq, Message)]
struct LeanPod {
    #[prost(message, optional, tag = "1")]
    metadata: Option<LeanMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<LeanPodSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<LeanPodStatus>,
}

#[derive(Clone, PartialEq, Message)]
struct LeanMeta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "5")]
    uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, Message)]
struct LeanPodSpec {
    #[prost(message, repeated, tag = "2")]
    containers: Vec<LeanContainer>,
    #[prost(string, optional, tag = "10")]
    node_name: Option<String>,
    #[prost(bool, optional, tag = "11")]
    host_network: Option<bool>,
    #[prost(message, repeated, tag = "20")]
    init_containers: Vec<LeanContainer>,
}

#[derive(Clone, PartialEq, Message)]
struct LeanContainer {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, repeated, tag = "6")]
    ports: Vec<LeanContainerPort>,
    #[prost(string, optional, tag = "24")]
    restart_policy: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct LeanContainerPort {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(int32, optional, tag = "2")]
    host_port: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    container_port: Option<i32>,
    #[prost(string, optional, tag = "4")]
    protocol: Option<String>,
    #[prost(string, optional, tag = "5")]
    host_ip: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct LeanPodStatus {
    #[prost(string, optional, tag = "1")]
    phase: Option<String>,
    #[prost(string, optional, tag = "6")]
    pod_ip: Option<String>,
    #[prost(message, repeated, tag = "12")]
    pod_ips: Vec<LeanPodIp>,
}

#[derive(Clone, PartialEq, Message)]
struct LeanPodIp {
    #[prost(string, optional, tag = "1")]
    ip: Option<String>,
}

/// `GET /api/v1/pods` for one page, asking for protobuf (JSON is read too, if that is what
/// comes back). Failures are the API's own `Status`, as kube-rs reports them.
pub(crate) async fn list_pod_page(
    client: &Client,
    params: &ListParams,
) -> Result<Page<PodPageItems>, kube::Error> {
    let mut request = kube::core::Request::new(WatchedPod::url_path(&(), None))
        .list(params)
        .map_err(kube::Error::BuildRequest)?
        .map(kube::client::Body::from);
    request
        .headers_mut()
        .insert(http::header::ACCEPT, http::HeaderValue::from_static(ACCEPT));
    let response = client.send(request).await?;
    let code = response.status();
    let protobuf = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with(PROTOBUF));
    let body = response.into_body().collect().await?.to_bytes();
    if !code.is_success() {
        return Err(kube::Error::Api(
            failure(&body, protobuf, code.as_u16()).boxed(),
        ));
    }
    if protobuf {
        let list = unwrap_envelope(&body)?;
        let head = PodListHead::decode(list.as_slice()).map_err(undecodable)?;
        Ok(Page {
            continue_token: head.metadata.and_then(|meta| meta.r#continue),
            items: PodPageItems::Protobuf(list),
        })
    } else {
        let list: ObjectList<WatchedPod> =
            serde_json::from_slice(&body).map_err(kube::Error::SerdeError)?;
        Ok(Page {
            continue_token: list.metadata.continue_,
            items: PodPageItems::Decoded(list.items),
        })
    }
}

/// A page of pods: a protobuf `PodList` still to decode, or what JSON gave.
pub(crate) enum PodPageItems {
    Protobuf(Vec<u8>),
    Decoded(Vec<WatchedPod>),
}

impl PageItems for PodPageItems {
    type Item = WatchedPod;
    fn decode(self) -> Result<Vec<WatchedPod>, kube::Error> {
        match self {
            PodPageItems::Protobuf(list) => {
                let list = LeanPodList::decode(list.as_slice()).map_err(undecodable)?;
                Ok(list.items.into_iter().map(LeanPod::into_watched).collect())
            }
            PodPageItems::Decoded(pods) => Ok(pods),
        }
    }
}

/// The message inside the API server's protobuf envelope (magic, then `runtime.Unknown`).
fn unwrap_envelope(body: &[u8]) -> Result<Vec<u8>, kube::Error> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| undecodable("the body does not start with the protobuf magic k8s\\0"))?;
    let unknown = Unknown::decode(envelope).map_err(undecodable)?;
    Ok(unknown.raw.unwrap_or_default())
}

/// The `Status` of a failed request, whatever its encoding.
fn failure(body: &[u8], protobuf: bool, code: u16) -> Status {
    let decoded = if protobuf {
        unwrap_envelope(body)
            .ok()
            .and_then(|raw| PbStatus::decode(raw.as_slice()).ok())
            .map(|status| Status {
                code: status
                    .code
                    .and_then(|c| u16::try_from(c).ok())
                    .unwrap_or(code),
                message: status.message.unwrap_or_default(),
                reason: status.reason.unwrap_or_default(),
                ..Status::failure("", "")
            })
    } else {
        serde_json::from_slice::<Status>(body).ok()
    };
    decoded.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        Status::failure(text.trim(), "Failed to parse error data").with_code(code)
    })
}

fn undecodable(error: impl std::fmt::Display) -> kube::Error {
    kube::Error::Service(format!("undecodable protobuf pod list: {error}").into())
}

/// A field as JSON has it: the API's protobuf carries zero values (`""`, `0`, `false`) of the
/// fields JSON omits when empty, and the loader must not read `name: ""` as a port name.
fn set<T: Default + PartialEq>(value: Option<T>) -> Option<T> {
    value.filter(|value| *value != T::default())
}

/// A list as JSON has it: absent when empty.
fn listed<T>(items: impl IntoIterator<Item = T>) -> Option<Vec<T>> {
    let items: Vec<T> = items.into_iter().collect();
    (!items.is_empty()).then_some(items)
}

impl LeanPod {
    fn into_watched(self) -> WatchedPod {
        let meta = self.metadata.unwrap_or_default();
        let spec = self.spec.unwrap_or_default();
        let status = self.status.unwrap_or_default();
        WatchedPod {
            metadata: ObjectMeta {
                name: set(meta.name),
                namespace: set(meta.namespace),
                uid: set(meta.uid),
                resource_version: set(meta.resource_version),
                labels: (!meta.labels.is_empty()).then_some(meta.labels),
                ..ObjectMeta::default()
            },
            spec: WatchedPodSpec {
                node_name: set(spec.node_name),
                host_network: set(spec.host_network),
                containers: spec
                    .containers
                    .into_iter()
                    .map(LeanContainer::into_watched)
                    .collect(),
                init_containers: listed(
                    spec.init_containers
                        .into_iter()
                        .map(LeanContainer::into_watched),
                ),
            },
            status: WatchedPodStatus {
                phase: set(status.phase),
                pod_ip: set(status.pod_ip),
                pod_ips: listed(status.pod_ips.into_iter().map(|ip| core::PodIP {
                    ip: ip.ip.unwrap_or_default(),
                })),
            },
        }
    }
}

impl LeanContainer {
    fn into_watched(self) -> WatchedContainer {
        WatchedContainer {
            name: self.name.unwrap_or_default(),
            ports: listed(self.ports.into_iter().map(|port| core::ContainerPort {
                name: set(port.name),
                host_port: set(port.host_port),
                container_port: port.container_port.unwrap_or_default(),
                protocol: set(port.protocol),
                host_ip: set(port.host_ip),
            })),
            restart_policy: set(self.restart_policy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::api::core::v1 as pb;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;

    /// A port as the API server encodes it: every field present, empty ones as zero values.
    fn port(name: &str, number: i32, protocol: &str) -> pb::ContainerPort {
        pb::ContainerPort {
            name: Some(name.into()),
            host_port: Some(0),
            container_port: Some(number),
            protocol: Some(protocol.into()),
            host_ip: Some(String::new()),
        }
    }

    /// A full pod as the API encodes it (k8s-pb's complete types), with fields policy ignores
    /// and zero values JSON would omit, decodes into exactly what the JSON reader keeps: the
    /// lean tags are the API's.
    #[test]
    fn a_protobuf_pod_keeps_what_policy_reads_and_nothing_else() {
        let pod = pb::Pod {
            metadata: Some(pb_meta::ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("shop".into()),
                uid: Some("u1".into()),
                resource_version: Some("7".into()),
                labels: [("app".to_string(), "web".to_string())].into(),
                annotations: [("big".to_string(), "x".repeat(1000))].into(),
                managed_fields: vec![pb_meta::ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            spec: Some(pb::PodSpec {
                node_name: Some("n1".into()),
                host_network: Some(false),
                containers: vec![pb::Container {
                    name: Some("c".into()),
                    image: Some("nginx".into()),
                    args: vec!["a".into()],
                    ports: vec![port("http", 80, "TCP")],
                    ..Default::default()
                }],
                init_containers: vec![pb::Container {
                    name: Some("s".into()),
                    restart_policy: Some("Always".into()),
                    ports: vec![port("", 9090, "UDP")],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(pb::PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some("10.0.0.1".into()),
                pod_ips: vec![
                    pb::PodIp {
                        ip: Some("10.0.0.1".into()),
                    },
                    pb::PodIp {
                        ip: Some("fd00::1".into()),
                    },
                ],
                conditions: vec![pb::PodCondition {
                    r#type: Some("Ready".into()),
                    status: Some("True".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        };
        let list = pb::PodList {
            metadata: Some(pb_meta::ListMeta {
                r#continue: Some("next".into()),
                ..Default::default()
            }),
            items: vec![pod],
        };
        let envelope = Unknown {
            raw: Some(list.encode_to_vec()),
            ..Default::default()
        };
        let body = [MAGIC, &envelope.encode_to_vec()].concat();

        let raw = unwrap_envelope(&body).unwrap();
        let head = PodListHead::decode(raw.as_slice()).unwrap();
        assert_eq!(head.metadata.unwrap().r#continue.as_deref(), Some("next"));
        let decoded = PodPageItems::Protobuf(raw).decode().unwrap().remove(0);

        let json: WatchedPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1",
                "resourceVersion": "7", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1",
                "containers": [{"name": "c",
                    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}]}],
                "initContainers": [{"name": "s", "restartPolicy": "Always",
                    "ports": [{"containerPort": 9090, "protocol": "UDP"}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}
        }))
        .unwrap();
        assert_eq!(
            format!("{:?}", decoded.to_pod()),
            format!("{:?}", json.to_pod())
        );
    }

    /// A refusal in protobuf keeps its code and message (the one-line error names them).
    #[test]
    fn a_protobuf_status_is_read_as_the_failure() {
        let status = PbStatus {
            code: Some(403),
            message: Some("pods is forbidden: User \"x\" cannot list resource \"pods\"".into()),
            reason: Some("Forbidden".into()),
            ..Default::default()
        };
        let body = [
            MAGIC,
            &Unknown {
                raw: Some(status.encode_to_vec()),
                ..Default::default()
            }
            .encode_to_vec(),
        ]
        .concat();
        let read = failure(&body, true, 500);
        assert_eq!(read.code, 403);
        assert!(read.message.starts_with("pods is forbidden"));
        let garbage = failure(b"upstream timed out", true, 504);
        assert_eq!(
            (garbage.code, garbage.message.as_str()),
            (504, "upstream timed out")
        );
    }
}
