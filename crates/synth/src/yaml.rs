//! A YAML emitter for the few fixed shapes we write. Hand-rolled because 100k Pod documents
//! through a generic serializer cost far more than appending to one buffer.

use crate::topology::{Pod, Workload};
use palisade_engine::{
    ContainerPort, IpBlock, LabelSelector, Namespace, NamespaceScope, NetworkPolicy, Operator,
    Peer, PortRef, PortRule, Rule,
};
use std::io::{self, Write};

/// Buffered bytes are handed to the writer once past this size.
const FLUSH_AT: usize = 1 << 16;

pub(crate) struct Emitter<'w, W: Write> {
    out: &'w mut W,
    buf: String,
}

impl<'w, W: Write> Emitter<'w, W> {
    pub fn new(out: &'w mut W) -> Self {
        Self {
            out,
            buf: String::with_capacity(FLUSH_AT + 4096),
        }
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.out.write_all(self.buf.as_bytes())?;
        self.buf.clear();
        Ok(())
    }

    fn end_document(&mut self) -> io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.out.write_all(self.buf.as_bytes())?;
            self.buf.clear();
        }
        Ok(())
    }

    fn start(&mut self, api_version: &str, kind: &str) {
        self.buf.push_str("---\napiVersion: ");
        self.buf.push_str(api_version);
        self.buf.push_str("\nkind: ");
        self.buf.push_str(kind);
        self.buf.push('\n');
    }

    pub fn namespace(&mut self, ns: &Namespace) -> io::Result<()> {
        self.start("v1", "Namespace");
        self.buf.push_str("metadata:\n");
        self.entry(2, "name", &ns.name);
        self.labels(2, "labels", ns.labels.iter(), None);
        self.end_document()
    }

    pub fn pod(&mut self, namespace: &str, workload: &Workload, pod: &Pod) -> io::Result<()> {
        self.start("v1", "Pod");
        self.buf.push_str("metadata:\n");
        self.entry(2, "name", &pod.name);
        self.entry(2, "namespace", namespace);
        let hash = ("pod-template-hash", workload.template_hash.as_str());
        self.labels(2, "labels", workload.labels.iter(), Some(hash));
        self.buf.push_str("spec:\n");
        self.containers(2, workload);
        self.buf.push_str("status:\n  phase: Running\n  podIP: \"");
        push_ipv4(&mut self.buf, pod.ip);
        self.buf.push_str("\"\n");
        self.end_document()
    }

    pub fn deployment(&mut self, namespace: &str, workload: &Workload) -> io::Result<()> {
        self.start("apps/v1", "Deployment");
        self.buf.push_str("metadata:\n");
        self.entry(2, "name", &workload.name);
        self.entry(2, "namespace", namespace);
        self.labels(2, "labels", workload.labels.iter(), None);
        self.buf.push_str("spec:\n  replicas: ");
        push_number(&mut self.buf, workload.pods.len());
        self.buf.push_str("\n  selector:\n");
        // The identifying labels only, as Deployments are written (version changes per rollout).
        let identity = workload
            .labels
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "app" | "k8s-app"));
        self.labels(4, "matchLabels", identity, None);
        self.buf.push_str("  template:\n    metadata:\n");
        self.labels(6, "labels", workload.labels.iter(), None);
        self.buf.push_str("    spec:\n");
        self.containers(6, workload);
        self.end_document()
    }

    pub fn policy(&mut self, policy: &NetworkPolicy) -> io::Result<()> {
        self.start("networking.k8s.io/v1", "NetworkPolicy");
        self.buf.push_str("metadata:\n");
        self.entry(2, "name", &policy.name);
        self.entry(2, "namespace", &policy.namespace);
        self.buf.push_str("spec:\n");
        self.selector(2, false, "podSelector", &policy.pod_selector);
        self.buf.push_str("  policyTypes:\n");
        if policy.policy_types.ingress {
            self.buf.push_str("  - Ingress\n");
        }
        if policy.policy_types.egress {
            self.buf.push_str("  - Egress\n");
        }
        self.rules(2, "ingress", "from", &policy.ingress);
        self.rules(2, "egress", "to", &policy.egress);
        self.end_document()
    }

    fn containers(&mut self, ind: usize, workload: &Workload) {
        pad(&mut self.buf, ind);
        self.buf.push_str("containers:\n");
        let col = self.head(ind, true);
        self.buf.push_str("name: ");
        push_scalar(&mut self.buf, &workload.name);
        self.buf.push('\n');
        self.entry(col, "image", &workload.image);
        if workload.ports.is_empty() {
            return;
        }
        pad(&mut self.buf, col);
        self.buf.push_str("ports:\n");
        for port in &workload.ports {
            self.container_port(col, port);
        }
    }

    fn container_port(&mut self, ind: usize, port: &ContainerPort) {
        let col = self.head(ind, true);
        if let Some(name) = &port.name {
            self.buf.push_str("name: ");
            push_scalar(&mut self.buf, name);
            self.buf.push('\n');
            pad(&mut self.buf, col);
        }
        self.buf.push_str("containerPort: ");
        push_number(&mut self.buf, port.port.into());
        self.buf.push('\n');
        self.entry(col, "protocol", port.protocol.as_str());
    }

    fn rules(&mut self, ind: usize, key: &str, peers_key: &str, rules: &[Rule]) {
        if rules.is_empty() {
            return;
        }
        pad(&mut self.buf, ind);
        self.buf.push_str(key);
        self.buf.push_str(":\n");
        for rule in rules {
            if rule.peers.is_empty() && rule.ports.is_empty() {
                pad(&mut self.buf, ind);
                self.buf.push_str("- {}\n");
                continue;
            }
            let col = ind + 2;
            if !rule.peers.is_empty() {
                self.head(ind, true);
                self.buf.push_str(peers_key);
                self.buf.push_str(":\n");
                for peer in &rule.peers {
                    self.peer(col, peer);
                }
            }
            if !rule.ports.is_empty() {
                if rule.peers.is_empty() {
                    self.head(ind, true);
                } else {
                    pad(&mut self.buf, col);
                }
                self.buf.push_str("ports:\n");
                for entry in &rule.ports {
                    self.port_rule(col, entry);
                }
            }
        }
    }

    fn peer(&mut self, ind: usize, peer: &Peer) {
        match peer {
            Peer::IpBlock(block) => self.ip_block(ind, block),
            Peer::Pods { namespaces, pods } => match namespaces {
                NamespaceScope::PolicyNamespace => self.selector(ind, true, "podSelector", pods),
                NamespaceScope::Selected(ns) => {
                    self.selector(ind, true, "namespaceSelector", ns);
                    // A missing podSelector means every pod; written only when it narrows.
                    if !pods.selects_everything() {
                        self.selector(ind + 2, false, "podSelector", pods);
                    }
                }
            },
        }
    }

    fn ip_block(&mut self, ind: usize, block: &IpBlock) {
        let col = self.head(ind, true);
        self.buf.push_str("ipBlock:\n");
        pad(&mut self.buf, col + 2);
        self.buf.push_str("cidr: ");
        push_quoted(&mut self.buf, &block.cidr.to_string());
        self.buf.push('\n');
        if !block.except.is_empty() {
            pad(&mut self.buf, col + 2);
            self.buf.push_str("except:\n");
            for net in &block.except {
                pad(&mut self.buf, col + 2);
                self.buf.push_str("- ");
                push_quoted(&mut self.buf, &net.to_string());
                self.buf.push('\n');
            }
        }
    }

    fn port_rule(&mut self, ind: usize, entry: &PortRule) {
        let col = self.head(ind, true);
        self.buf.push_str("protocol: ");
        self.buf.push_str(entry.protocol.as_str());
        self.buf.push('\n');
        match &entry.port {
            None => {}
            Some(PortRef::Number(n)) => self.number_entry(col, "port", (*n).into()),
            Some(PortRef::Named(name)) => self.entry(col, "port", name),
        }
        if let Some(end) = entry.end_port {
            self.number_entry(col, "endPort", end.into());
        }
    }

    fn selector(&mut self, ind: usize, dash: bool, key: &str, selector: &LabelSelector) {
        let col = self.head(ind, dash);
        self.buf.push_str(key);
        if selector.selects_everything() {
            self.buf.push_str(": {}\n");
            return;
        }
        self.buf.push_str(":\n");
        if !selector.match_labels.is_empty() {
            self.labels(col + 2, "matchLabels", selector.match_labels.iter(), None);
        }
        if selector.match_expressions.is_empty() {
            return;
        }
        pad(&mut self.buf, col + 2);
        self.buf.push_str("matchExpressions:\n");
        for req in &selector.match_expressions {
            let rcol = self.head(col + 2, true);
            self.buf.push_str("key: ");
            push_scalar(&mut self.buf, &req.key);
            self.buf.push('\n');
            let operator = match req.operator {
                Operator::In => "In",
                Operator::NotIn => "NotIn",
                Operator::Exists => "Exists",
                Operator::DoesNotExist => "DoesNotExist",
            };
            self.entry(rcol, "operator", operator);
            if !req.values.is_empty() {
                pad(&mut self.buf, rcol);
                self.buf.push_str("values:\n");
                for value in &req.values {
                    pad(&mut self.buf, rcol);
                    self.buf.push_str("- ");
                    push_scalar(&mut self.buf, value);
                    self.buf.push('\n');
                }
            }
        }
    }

    /// `key:` and one `k: v` line per label, plus `extra` last; nothing for no labels.
    fn labels<'a>(
        &mut self,
        ind: usize,
        key: &str,
        labels: impl Iterator<Item = (&'a String, &'a String)>,
        extra: Option<(&str, &str)>,
    ) {
        let mut labels = labels
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra)
            .peekable();
        if labels.peek().is_none() {
            return;
        }
        pad(&mut self.buf, ind);
        self.buf.push_str(key);
        self.buf.push_str(":\n");
        for (k, v) in labels {
            self.entry(ind + 2, k, v);
        }
    }

    /// Starts a mapping at column `ind`, as a list item when `dash`; returns its keys' column.
    /// The caller writes the first key right after.
    fn head(&mut self, ind: usize, dash: bool) -> usize {
        pad(&mut self.buf, ind);
        if dash {
            self.buf.push_str("- ");
            ind + 2
        } else {
            ind
        }
    }

    fn entry(&mut self, ind: usize, key: &str, value: &str) {
        pad(&mut self.buf, ind);
        push_scalar(&mut self.buf, key);
        self.buf.push_str(": ");
        push_scalar(&mut self.buf, value);
        self.buf.push('\n');
    }

    fn number_entry(&mut self, ind: usize, key: &str, value: usize) {
        pad(&mut self.buf, ind);
        self.buf.push_str(key);
        self.buf.push_str(": ");
        push_number(&mut self.buf, value);
        self.buf.push('\n');
    }
}

fn pad(buf: &mut String, n: usize) {
    const SPACES: &str = "                                ";
    buf.push_str(&SPACES[..n.min(SPACES.len())]);
}

fn push_number(buf: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        buf.push(char::from(d));
    }
}

fn push_ipv4(buf: &mut String, ip: std::net::Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf.push('.');
        }
        push_number(buf, octet.into());
    }
}

/// Plain when YAML 1.1 and 1.2 both read it back as this very string, quoted otherwise.
fn push_scalar(buf: &mut String, text: &str) {
    if is_plain_safe(text) {
        buf.push_str(text);
    } else {
        push_quoted(buf, text);
    }
}

fn push_quoted(buf: &mut String, text: &str) {
    buf.push('"');
    for c in text.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            c if c.is_control() => {
                buf.push_str("\\u");
                let code = u32::from(c);
                for shift in [12, 8, 4, 0] {
                    let nibble = (code >> shift) & 0xF;
                    buf.push(char::from_digit(nibble, 16).unwrap_or('0'));
                }
            }
            c => buf.push(c),
        }
    }
    buf.push('"');
}

/// Starts with a letter, has only `[A-Za-z0-9._/-]`, and is none of the words YAML 1.1
/// reads as booleans or null.
fn is_plain_safe(text: &str) -> bool {
    const SPECIAL: [&str; 11] = [
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "nan", "inf",
    ];
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !SPECIAL.iter().any(|w| w.eq_ignore_ascii_case(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_that_yaml_would_retype_are_quoted() {
        let table = [
            ("payments-prod", "payments-prod"),
            ("kubernetes.io/metadata.name", "kubernetes.io/metadata.name"),
            ("v1", "v1"),
            ("yes", "\"yes\""),
            ("Off", "\"Off\""),
            ("10.0.0.1", "\"10.0.0.1\""),
            ("8080", "\"8080\""),
            ("", "\"\""),
            ("a b", "\"a b\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
        ];
        for (text, expected) in table {
            let mut buf = String::new();
            push_scalar(&mut buf, text);
            assert_eq!(buf, expected, "{text:?}");
        }
    }

    #[test]
    fn numbers_and_addresses_render_in_decimal() {
        let mut buf = String::new();
        push_number(&mut buf, 0);
        buf.push(' ');
        push_number(&mut buf, 65535);
        buf.push(' ');
        push_ipv4(&mut buf, std::net::Ipv4Addr::new(10, 1, 134, 160));
        assert_eq!(buf, "0 65535 10.1.134.160");
    }
}
