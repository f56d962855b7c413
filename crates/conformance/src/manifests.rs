//! A world as Kubernetes manifests (k8s-openapi objects serialized as JSON, which YAML reads),
//! so that tools that only read manifests — the agent — see the very cluster a case describes.

use crate::harness::World;
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as net;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_engine::{
    Endpoint, EndpointKind, LabelSelector, Labels, NamespaceScope, NetworkPolicy, Operator, Peer,
    PortRef, PortRule, Rule,
};

impl World {
    /// Namespaces, pods (with `status.podIPs`), workloads and NetworkPolicies (with explicit
    /// `policyTypes`), one document each. Panics on a workload kind it cannot write (only
    /// Deployment and StatefulSet are used by the suite).
    pub fn manifests(&self) -> String {
        let cluster = self.cluster();
        let mut documents = Vec::new();
        for ns in &cluster.namespaces {
            documents.push(json(&core::Namespace {
                metadata: meta::ObjectMeta {
                    name: Some(ns.name.clone()),
                    labels: Some(ns.labels.clone()),
                    ..Default::default()
                },
                ..Default::default()
            }));
        }
        for ep in &cluster.endpoints {
            documents.push(endpoint(ep));
        }
        for policy in &cluster.policies {
            documents.push(json(&network_policy(policy)));
        }
        documents.join("---\n")
    }
}

fn json(object: &impl serde::Serialize) -> String {
    let mut text = serde_json::to_string(object).expect("k8s-openapi objects serialize");
    text.push('\n');
    text
}

fn object_meta(ep: &Endpoint, labels: Option<&Labels>) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: Some(ep.name.clone()),
        namespace: Some(ep.namespace.clone()),
        labels: labels.cloned(),
        ..Default::default()
    }
}

fn pod_spec(ep: &Endpoint) -> core::PodSpec {
    core::PodSpec {
        host_network: ep.host_network.then_some(true),
        containers: vec![core::Container {
            name: "probe".into(),
            image: Some("palisade-probe".into()),
            ports: Some(
                ep.ports
                    .iter()
                    .map(|p| core::ContainerPort {
                        name: p.name.clone(),
                        container_port: p.port.into(),
                        protocol: Some(p.protocol.as_str().into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn endpoint(ep: &Endpoint) -> String {
    let template = || core::PodTemplateSpec {
        metadata: Some(meta::ObjectMeta {
            labels: Some(ep.labels.clone()),
            ..Default::default()
        }),
        spec: Some(pod_spec(ep)),
    };
    let selector = || meta::LabelSelector {
        match_labels: Some(ep.labels.clone()),
        ..Default::default()
    };
    let replicas = Some(i32::try_from(ep.replicas).expect("replicas fit in i32"));
    match &ep.kind {
        EndpointKind::Pod => json(&core::Pod {
            metadata: object_meta(ep, Some(&ep.labels)),
            spec: Some(pod_spec(ep)),
            status: Some(core::PodStatus {
                pod_ip: ep.ips.first().map(ToString::to_string),
                pod_ips: Some(
                    ep.ips
                        .iter()
                        .map(|ip| core::PodIP { ip: ip.to_string() })
                        .collect(),
                ),
                ..Default::default()
            }),
        }),
        EndpointKind::Workload { kind } if kind == "Deployment" => json(&apps::Deployment {
            metadata: object_meta(ep, None),
            spec: Some(apps::DeploymentSpec {
                replicas,
                selector: selector(),
                template: template(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        EndpointKind::Workload { kind } if kind == "StatefulSet" => json(&apps::StatefulSet {
            metadata: object_meta(ep, None),
            spec: Some(apps::StatefulSetSpec {
                replicas,
                selector: selector(),
                template: template(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        EndpointKind::Workload { kind } => panic!("cannot write a {kind} manifest"),
    }
}

fn network_policy(policy: &NetworkPolicy) -> net::NetworkPolicy {
    let mut types = Vec::new();
    if policy.policy_types.ingress {
        types.push("Ingress".to_string());
    }
    if policy.policy_types.egress {
        types.push("Egress".to_string());
    }
    let (ingress, egress) = (&policy.ingress, &policy.egress);
    net::NetworkPolicy {
        metadata: meta::ObjectMeta {
            name: Some(policy.name.clone()),
            namespace: Some(policy.namespace.clone()),
            ..Default::default()
        },
        spec: Some(net::NetworkPolicySpec {
            pod_selector: Some(selector(&policy.pod_selector)),
            policy_types: Some(types),
            ingress: (!ingress.is_empty()).then(|| {
                ingress
                    .iter()
                    .map(|r| net::NetworkPolicyIngressRule {
                        from: peers(r),
                        ports: ports(r),
                    })
                    .collect()
            }),
            egress: (!egress.is_empty()).then(|| {
                egress
                    .iter()
                    .map(|r| net::NetworkPolicyEgressRule {
                        to: peers(r),
                        ports: ports(r),
                    })
                    .collect()
            }),
        }),
    }
}

fn peers(rule: &Rule) -> Option<Vec<net::NetworkPolicyPeer>> {
    let peers = rule.peers.iter().map(|peer| match peer {
        Peer::IpBlock(block) => net::NetworkPolicyPeer {
            ip_block: Some(net::IPBlock {
                cidr: block.cidr.to_string(),
                except: (!block.except.is_empty())
                    .then(|| block.except.iter().map(ToString::to_string).collect()),
            }),
            ..Default::default()
        },
        Peer::Pods {
            namespaces: NamespaceScope::PolicyNamespace,
            pods,
        } => net::NetworkPolicyPeer {
            pod_selector: Some(selector(pods)),
            ..Default::default()
        },
        Peer::Pods {
            namespaces: NamespaceScope::Selected(namespaces),
            pods,
        } => net::NetworkPolicyPeer {
            namespace_selector: Some(selector(namespaces)),
            pod_selector: Some(selector(pods)),
            ..Default::default()
        },
    });
    (!rule.peers.is_empty()).then(|| peers.collect())
}

fn ports(rule: &Rule) -> Option<Vec<net::NetworkPolicyPort>> {
    let port = |entry: &PortRule| net::NetworkPolicyPort {
        protocol: Some(entry.protocol.as_str().into()),
        port: entry.port.as_ref().map(|p| match p {
            PortRef::Number(n) => IntOrString::Int((*n).into()),
            PortRef::Named(name) => IntOrString::String(name.clone()),
        }),
        end_port: entry.end_port.map(i32::from),
    };
    (!rule.ports.is_empty()).then(|| rule.ports.iter().map(port).collect())
}

fn selector(selector: &LabelSelector) -> meta::LabelSelector {
    let requirements = selector.match_expressions.iter().map(|r| {
        let operator = match r.operator {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
        };
        meta::LabelSelectorRequirement {
            key: r.key.clone(),
            operator: operator.into(),
            values: (!r.values.is_empty()).then(|| r.values.clone()),
        }
    });
    meta::LabelSelector {
        match_labels: (!selector.match_labels.is_empty()).then(|| selector.match_labels.clone()),
        match_expressions: (!selector.match_expressions.is_empty()).then(|| requirements.collect()),
    }
}
