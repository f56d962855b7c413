//! NetworkPolicy validation as the API server does it (k8s.io/kubernetes
//! `pkg/apis/networking/validation`, same checks in the same order, same field paths), fused with
//! the conversion into the engine's model and upstream's defaulting.

use crate::names;
use crate::path::{FieldPath, Problems};
use ipnet::IpNet;
use k8s_openapi::api::networking::v1 as net;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_engine::{
    IpBlock, LabelSelector, NamespaceScope, NetworkPolicy, Operator, Peer, PolicyTypes, PortRef,
    PortRule, Protocol, Requirement, Rule,
};
use std::collections::BTreeMap;

/// Validates `np` (its namespace already defaulted to `namespace`) and converts it. Every
/// problem goes to `problems`; the result is only meaningful when none of them is an error.
pub(crate) fn convert(
    np: &net::NetworkPolicy,
    namespace: &str,
    problems: &mut Problems,
) -> NetworkPolicy {
    let metadata = FieldPath::new("metadata");
    let name = np.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        problems.error(
            metadata.child("name"),
            "required: a NetworkPolicy needs a name",
        );
    } else {
        problems.invalid(
            &metadata.child("name"),
            &name,
            names::dns1123_subdomain(&name),
        );
    }
    problems.invalid(
        &metadata.child("namespace"),
        namespace,
        names::dns1123_label(namespace),
    );
    if let Some(labels) = &np.metadata.labels {
        check_labels(labels, &metadata.child("labels"), problems);
    }

    let spec_path = FieldPath::new("spec");
    let no_spec = net::NetworkPolicySpec::default();
    let spec = np.spec.as_ref().unwrap_or(&no_spec);
    let pod_selector = spec
        .pod_selector
        .as_ref()
        .map(|s| selector(s, &spec_path.child("podSelector"), problems))
        .unwrap_or_default();
    let ingress = rules(
        spec.ingress
            .iter()
            .flatten()
            .map(|r| (r.from.as_deref(), r.ports.as_deref())),
        &spec_path.child("ingress"),
        "from",
        problems,
    );
    let egress = rules(
        spec.egress
            .iter()
            .flatten()
            .map(|r| (r.to.as_deref(), r.ports.as_deref())),
        &spec_path.child("egress"),
        "to",
        problems,
    );
    let declared = policy_types(
        spec.policy_types.as_deref().unwrap_or_default(),
        &spec_path,
        problems,
    );
    // Upstream defaulting adds Egress only for a non-empty egress list (`egress: []` does not).
    let policy_types = PolicyTypes::defaulted(declared, !egress.is_empty());

    NetworkPolicy {
        namespace: namespace.to_string(),
        name,
        pod_selector,
        policy_types,
        ingress,
        egress,
    }
}

fn rules<'r>(
    rules: impl Iterator<
        Item = (
            Option<&'r [net::NetworkPolicyPeer]>,
            Option<&'r [net::NetworkPolicyPort]>,
        ),
    >,
    path: &FieldPath,
    peers_field: &str,
    problems: &mut Problems,
) -> Vec<Rule> {
    rules
        .enumerate()
        .map(|(i, (peers, ports))| {
            let rule_path = path.index(i);
            // Upstream checks a rule's ports before its peers; keep its order of errors.
            let ports = ports
                .unwrap_or_default()
                .iter()
                .enumerate()
                .filter_map(|(j, p)| port(p, &rule_path.child("ports").index(j), problems))
                .collect();
            let peers = peers
                .unwrap_or_default()
                .iter()
                .enumerate()
                .filter_map(|(j, p)| peer(p, &rule_path.child(peers_field).index(j), problems))
                .collect();
            Rule { peers, ports }
        })
        .collect()
}

fn port(
    port: &net::NetworkPolicyPort,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<PortRule> {
    let protocol = match port.protocol.as_deref() {
        None => Some(Protocol::Tcp),
        Some(text) => {
            let parsed = Protocol::parse(text);
            if parsed.is_none() {
                problems.error(
                    path.child("protocol"),
                    format!(
                        "unsupported value {text:?}: supported values: \"TCP\", \"UDP\", \"SCTP\""
                    ),
                );
            }
            parsed
        }
    };
    let end_path = path.child("endPort");
    let (port_ref, end_port) = match (&port.port, port.end_port) {
        (Some(IntOrString::Int(number)), end) => {
            let number = names::port_number(*number)
                .map_err(|m| {
                    problems.error(path.child("port"), format!("invalid value {number}: {m}"))
                })
                .ok();
            let end = end.and_then(|end| {
                if number.is_some_and(|n| end < i32::from(n)) {
                    problems.error(
                        end_path.clone(),
                        format!("invalid value {end}: must be greater than or equal to `port`"),
                    );
                }
                names::port_number(end)
                    .map_err(|m| {
                        problems.error(end_path.clone(), format!("invalid value {end}: {m}"))
                    })
                    .ok()
            });
            (number.map(PortRef::Number), end)
        }
        (Some(IntOrString::String(name)), end) => {
            if let Some(end) = end {
                problems.error(
                    end_path,
                    format!("invalid value {end}: may not be specified when `port` is non-numeric"),
                );
            }
            problems.invalid(&path.child("port"), name, names::port_name(name));
            (Some(PortRef::Named(name.clone())), None)
        }
        (None, Some(end)) => {
            problems.error(
                end_path,
                format!("invalid value {end}: may not be specified when `port` is not specified"),
            );
            (None, None)
        }
        (None, None) => (None, None),
    };
    Some(PortRule {
        protocol: protocol?,
        port: port_ref,
        end_port,
    })
}

fn peer(peer: &net::NetworkPolicyPeer, path: &FieldPath, problems: &mut Problems) -> Option<Peer> {
    let pods = peer
        .pod_selector
        .as_ref()
        .map(|s| selector(s, &path.child("podSelector"), problems));
    let namespaces = peer
        .namespace_selector
        .as_ref()
        .map(|s| selector(s, &path.child("namespaceSelector"), problems));
    let block = peer
        .ip_block
        .as_ref()
        .map(|b| ip_block(b, &path.child("ipBlock"), problems));
    let count = usize::from(pods.is_some())
        + usize::from(namespaces.is_some())
        + usize::from(block.is_some());
    if count == 0 {
        problems.error(
            path.clone(),
            "required: must specify a peer (podSelector, namespaceSelector or ipBlock)",
        );
        return None;
    }
    match block {
        Some(_) if count > 1 => {
            problems.error(
                path.clone(),
                "forbidden: may not specify both ipBlock and another peer",
            );
            None
        }
        Some(block) => block.map(Peer::IpBlock),
        None => Some(Peer::Pods {
            namespaces: namespaces
                .map_or(NamespaceScope::PolicyNamespace, NamespaceScope::Selected),
            pods: pods.unwrap_or_default(),
        }),
    }
}

fn ip_block(block: &net::IPBlock, path: &FieldPath, problems: &mut Problems) -> Option<IpBlock> {
    let cidr_path = path.child("cidr");
    if block.cidr.is_empty() {
        problems.error(cidr_path, "required: a CIDR such as 10.0.0.0/8 or fd00::/8");
        return None;
    }
    let cidr = parse_cidr(&block.cidr, &cidr_path, problems)?;
    let mut except = Vec::new();
    for (i, text) in block.except.iter().flatten().enumerate() {
        let except_path = path.child("except").index(i);
        let Some(net) = parse_cidr(text, &except_path, problems) else {
            continue;
        };
        // Upstream: cidr.Contains(except.IP) && cidr prefix < except prefix. Different address
        // families never contain each other.
        if !cidr.contains(&net.network()) || cidr.prefix_len() >= net.prefix_len() {
            problems.error(
                except_path,
                format!("invalid value {text:?}: must be a strict subset of `cidr` ({cidr})"),
            );
        }
        except.push(net);
    }
    Some(IpBlock { cidr, except })
}

/// The API server (1.33, StrictIPCIDRValidation off by default) parses these with
/// `ParseCIDRSloppy`: it accepts host bits (`10.0.0.1/24` means `10.0.0.0/24`) and IPv4
/// octets with leading zeros (read as decimal, as ipnet does too). We accept them like
/// upstream, warn about any non-canonical spelling, and keep the network upstream matches.
fn parse_cidr(text: &str, path: &FieldPath, problems: &mut Problems) -> Option<IpNet> {
    let Ok(net) = text.parse::<IpNet>() else {
        problems.error(
            path.clone(),
            format!("invalid value {text:?}: must be a valid CIDR, such as 10.0.0.0/8 or fd00::/8"),
        );
        return None;
    };
    let network = net.trunc();
    if network.to_string() != text {
        problems.warn(
            path.clone(),
            format!(
                "non-canonical CIDR {text:?}: the API server reads it as {network}; write that"
            ),
        );
    }
    Some(network)
}

fn policy_types(
    types: &[String],
    spec: &FieldPath,
    problems: &mut Problems,
) -> Option<PolicyTypes> {
    let path = spec.child("policyTypes");
    if types.len() > 2 {
        problems.error(
            path,
            "invalid value: may not specify more than two policyTypes",
        );
        return None;
    }
    for (i, t) in types.iter().enumerate() {
        if t != "Ingress" && t != "Egress" {
            problems.error(
                path.index(i),
                format!("unsupported value {t:?}: supported values: \"Ingress\", \"Egress\""),
            );
        }
    }
    // Upstream defaulting treats an empty list like a missing one.
    (!types.is_empty()).then(|| PolicyTypes {
        ingress: types.iter().any(|t| t == "Ingress"),
        egress: types.iter().any(|t| t == "Egress"),
    })
}

/// `metav1validation.ValidateLabelSelector`, values checked as for newly created objects.
pub(crate) fn selector(
    sel: &meta::LabelSelector,
    path: &FieldPath,
    problems: &mut Problems,
) -> LabelSelector {
    let match_labels = sel.match_labels.clone().unwrap_or_default();
    check_labels(&match_labels, &path.child("matchLabels"), problems);
    let mut match_expressions = Vec::new();
    for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
        let expr_path = path.child("matchExpressions").index(i);
        let values = expr.values.clone().unwrap_or_default();
        let operator = Operator::parse(&expr.operator);
        match operator {
            Some(Operator::In | Operator::NotIn) if values.is_empty() => problems.error(
                expr_path.child("values"),
                "required: must be specified when `operator` is 'In' or 'NotIn'",
            ),
            Some(Operator::Exists | Operator::DoesNotExist) if !values.is_empty() => problems.error(
                expr_path.child("values"),
                "forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            Some(_) => {}
            None => problems.error(
                expr_path.child("operator"),
                format!(
                    "invalid value {:?}: not a valid selector operator; expected In, NotIn, Exists or DoesNotExist",
                    expr.operator
                ),
            ),
        }
        problems.invalid(
            &expr_path.child("key"),
            &expr.key,
            names::qualified_name(&expr.key),
        );
        for (j, value) in values.iter().enumerate() {
            problems.invalid(
                &expr_path.child("values").index(j),
                value,
                names::label_value(value),
            );
        }
        if let Some(operator) = operator {
            match_expressions.push(Requirement {
                key: expr.key.clone(),
                operator,
                values,
            });
        }
    }
    LabelSelector {
        match_labels,
        match_expressions,
    }
}

/// `ValidateLabels`: each key a qualified name, each value a label value.
pub(crate) fn check_labels(
    labels: &BTreeMap<String, String>,
    path: &FieldPath,
    problems: &mut Problems,
) {
    for (key, value) in labels {
        let key_path = path.key(key);
        problems.invalid(&key_path, key, names::qualified_name(key));
        problems.invalid(&key_path, value, names::label_value(value));
    }
}
