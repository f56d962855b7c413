//! Flow records: the kernel logs every verdict of the node's table to NFLOG with a prefix
//! naming the rule or chain ([`LogTag`]); this module reads those messages and turns them into
//! one JSON line each, naming pods and policies.

use crate::state::Snapshot;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nflog::{
    ConfigCmd, ConfigMode, PacketNla, ULogMessage, config_request,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use netlink_sys::{Socket, constants::NETLINK_NETFILTER};
use palisade_dataplane::LogTag;
use palisade_engine::{ChainId, Direction, Protocol, RuleId};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Forwarded,
    Dropped,
    Audit,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Forwarded => "FORWARDED",
            Verdict::Dropped => "DROPPED",
            Verdict::Audit => "AUDIT",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEnd {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pod: Option<String>,
    pub ip: IpAddr,
    pub port: u16,
}

/// One verdict of one side (the source pod's egress or the destination pod's ingress) on a
/// new connection. A connection between two pods of one node has two records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub time: String,
    pub node: String,
    pub src: FlowEnd,
    pub dst: FlowEnd,
    pub protocol: FlowProtocol,
    #[serde(with = "direction_spelling")]
    pub direction: Direction,
    pub verdict: Verdict,
    /// Policies that decided: the admitting rule's policy, or the isolating policies when none
    /// admits (the first [`NAMED_POLICIES`] of them). Empty when no policy isolates the pod.
    pub policies: Vec<String>,
    /// Isolating policies left out of `policies`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_policies: usize,
    /// `ns/name ingress rule 1` (numbered from 1, as `check` does), `no rule of ns/a, ns/b admits it`, or `not isolated`.
    pub decided_by: String,
    /// Verdicts of the same source, destination, port, direction and verdict folded into
    /// this record (those after the first within a second: a flood is a few lines).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub folded: usize,
}

/// How a record spells the side whose policies took its verdict: `INGRESS` or `EGRESS`.
pub fn direction_label(direction: Direction) -> &'static str {
    match direction {
        Direction::Ingress => "INGRESS",
        Direction::Egress => "EGRESS",
    }
}

/// [`FlowRecord::direction`] as records spell it ([`direction_label`]).
mod direction_spelling {
    use super::direction_label;
    use palisade_engine::Direction;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::borrow::Cow;

    pub fn serialize<S: Serializer>(direction: &Direction, to: S) -> Result<S::Ok, S::Error> {
        to.serialize_str(direction_label(*direction))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Direction, D::Error> {
        let text = Cow::<str>::deserialize(from)?;
        [Direction::Ingress, Direction::Egress]
            .into_iter()
            .find(|&d| direction_label(d) == text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown direction {text:?}")))
    }
}

/// A record's protocol: one that policies name (with ports), or another that has no ports,
/// written as `TCP`, `ICMP`, `ICMPv6` or `IP protocol 47`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum FlowProtocol {
    Ported(Protocol),
    Icmp,
    Icmpv6,
    Other(u8),
}

const ICMP: &str = "ICMP";
const ICMPV6: &str = "ICMPv6";
const OTHER: &str = "IP protocol ";

impl std::fmt::Display for FlowProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ported(protocol) => f.pad(protocol.as_str()),
            Self::Icmp => f.pad(ICMP),
            Self::Icmpv6 => f.pad(ICMPV6),
            Self::Other(number) => f.pad(&format!("{OTHER}{number}")),
        }
    }
}

impl std::str::FromStr for FlowProtocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            ICMP => Ok(Self::Icmp),
            ICMPV6 => Ok(Self::Icmpv6),
            _ => Protocol::parse(text)
                .map(Self::Ported)
                .or_else(|| text.strip_prefix(OTHER)?.parse().ok().map(Self::Other))
                .ok_or_else(|| format!("unknown protocol {text:?}")),
        }
    }
}

impl Serialize for FlowProtocol {
    fn serialize<S: serde::Serializer>(&self, to: S) -> Result<S::Ok, S::Error> {
        to.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FlowProtocol {
    fn deserialize<D: serde::Deserializer<'de>>(from: D) -> Result<Self, D::Error> {
        Cow::<str>::deserialize(from)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// How many isolating policies a record of a denial names: a record and a metric label stay
/// small when 10k policies isolate a pod.
pub const NAMED_POLICIES: usize = 5;

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The parts of an NFLOG packet message a record needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedPacket {
    pub prefix: String,
    pub payload: Vec<u8>,
}

/// Builds the record of a logged packet; `None` when the prefix is not ours, no kept program
/// explains it, or the packet is not TCP, UDP or SCTP.
///
/// A prefix names the chain by the policies that isolate (its rules stay unchanged when
/// only what they admit changes, so a change is a few set elements, not new rules). The
/// record is explained by the newest of `snapshots` that has the chain and, for an
/// admission, admits the packet: a packet logged just before a change and read after it is
/// explained by the program that admitted it.
pub fn record(
    packet: &LoggedPacket,
    snapshots: &[std::sync::Arc<Snapshot>],
    node: &str,
) -> Option<FlowRecord> {
    let tag = LogTag::parse(&packet.prefix)?;
    let (src, dst, protocol, sport, dport) = parse_packet(&packet.payload)?;
    let peer = |direction| match direction {
        Direction::Ingress => src,
        Direction::Egress => dst,
    };
    let (snapshot, decision) = match tag {
        LogTag::Open(direction) => {
            let decision = Decision {
                direction,
                verdict: Verdict::Forwarded,
                policies: Vec::new(),
                more_policies: 0,
                decided_by: "not isolated".to_string(),
            };
            (snapshots.first()?, decision)
        }
        LogTag::Denied(key) | LogTag::Audit(key) => {
            let verdict = if matches!(tag, LogTag::Audit(_)) {
                Verdict::Audit
            } else {
                Verdict::Dropped
            };
            snapshots
                .iter()
                .find_map(|s| Some((s, Decision::denied(s, s.chain(key)?, verdict))))?
        }
        LogTag::Admitted(key, position) => snapshots.iter().find_map(|s| {
            let rule = *s.program.chains[s.chain(key)?].rules.get(position)?;
            Some((s, Decision::admitted(s, rule)?))
        })?,
        LogTag::AdmittedIn(key) => {
            // The chain's set holds what its rules admit; the rule that decided is the first
            // of them that admits this packet, as the set was rendered.
            let FlowProtocol::Ported(protocol) = protocol else {
                return None;
            };
            snapshots.iter().find_map(|s| {
                let chain = s.chain(key)?;
                let direction = s.program.chains[chain].direction;
                let rule = s
                    .chain_index(chain)?
                    .rule(peer(direction), protocol, dport)?;
                Some((s, Decision::admitted(s, rule)?))
            })?
        }
    };
    let end = |ip: IpAddr, port: u16| {
        let (namespace, pod) = snapshot
            .endpoint_at(ip)
            .map(|(namespace, name)| (Some(namespace.to_string()), Some(name.to_string())))
            .unwrap_or_default();
        FlowEnd {
            namespace,
            pod,
            ip,
            port,
        }
    };
    Some(FlowRecord {
        time: jiff::Timestamp::now().to_string(),
        node: node.to_string(),
        src: end(src, sport),
        dst: end(dst, dport),
        protocol,
        direction: decision.direction,
        verdict: decision.verdict,
        policies: decision.policies,
        more_policies: decision.more_policies,
        decided_by: decision.decided_by,
        folded: 0,
    })
}

/// What a record says about the side that decided.
struct Decision {
    direction: Direction,
    verdict: Verdict,
    policies: Vec<String>,
    more_policies: usize,
    decided_by: String,
}

impl Decision {
    fn admitted(snapshot: &Snapshot, rule: RuleId) -> Option<Self> {
        let rule = snapshot.program.rules.get(rule)?;
        let name = snapshot.policy_name(rule.policy).to_string();
        Some(Self {
            direction: rule.direction,
            verdict: Verdict::Forwarded,
            // Numbered from 1, as `check` and `explain` number them.
            decided_by: format!("{name} {} rule {}", rule.direction, rule.index + 1),
            policies: vec![name],
            more_policies: 0,
        })
    }

    /// No rule of `chain` admits: a pod isolated by 10k policies gets a record that names a
    /// few and counts the rest.
    fn denied(snapshot: &Snapshot, chain: ChainId, verdict: Verdict) -> Self {
        let chain = &snapshot.program.chains[chain];
        let named = chain.policies.len().min(NAMED_POLICIES);
        let policies: Vec<String> = chain.policies[..named]
            .iter()
            .map(|&p| snapshot.policy_name(p).to_string())
            .collect();
        let more_policies = chain.policies.len() - named;
        let decided_by = match more_policies {
            0 => format!("no rule of {} admits it", policies.join(", ")),
            more => format!(
                "no rule of {} and {more} more policies admits it",
                policies.join(", ")
            ),
        };
        Self {
            direction: chain.direction,
            verdict,
            policies,
            more_policies,
            decided_by,
        }
    }
}

/// Addresses, protocol and ports of an IPv4 or IPv6 packet (possibly cut short by NFLOG's copy
/// range). TCP, UDP and SCTP all start with source and destination port; other protocols
/// (dropped where a side is isolated) have no ports and are recorded with port 0.
fn parse_packet(payload: &[u8]) -> Option<(IpAddr, IpAddr, FlowProtocol, u16, u16)> {
    let (ip, _) = etherparse::LaxIpSlice::from_slice(payload).ok()?;
    let body = ip.payload();
    let (protocol, ports) = match body.ip_number {
        etherparse::IpNumber::TCP => (FlowProtocol::Ported(Protocol::Tcp), true),
        etherparse::IpNumber::UDP => (FlowProtocol::Ported(Protocol::Udp), true),
        etherparse::IpNumber::SCTP => (FlowProtocol::Ported(Protocol::Sctp), true),
        etherparse::IpNumber::ICMP => (FlowProtocol::Icmp, false),
        etherparse::IpNumber::IPV6_ICMP => (FlowProtocol::Icmpv6, false),
        other => (FlowProtocol::Other(other.0), false),
    };
    let (sport, dport) = if ports {
        let ports = body.payload.get(..4)?;
        (
            u16::from_be_bytes([ports[0], ports[1]]),
            u16::from_be_bytes([ports[2], ports[3]]),
        )
    } else {
        (0, 0)
    };
    Some((
        ip.source_addr(),
        ip.destination_addr(),
        protocol,
        sport,
        dport,
    ))
}

/// An NFLOG subscription to one group, in the network namespace of the calling thread.
pub struct NflogSocket {
    socket: Socket,
    buffer: Vec<u8>,
}

/// Enough of each packet for the IP and transport headers.
const COPY_RANGE: u32 = 256;
/// Kernel buffer for verdict records. The default (about 200 KiB) overflows under bursts of
/// new connections before the reader wakes ("No buffer space available").
const RECEIVE_BUFFER: usize = 8 << 20;

impl NflogSocket {
    pub fn bind(group: u16) -> std::io::Result<Self> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        // FORCE goes past net.core.rmem_max (the agent is root); without the privilege the
        // plain option gets what rmem_max allows.
        use nix::sys::socket::{setsockopt, sockopt};
        if setsockopt(&socket, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
            setsockopt(&socket, sockopt::RcvBuf, &RECEIVE_BUFFER)?;
        }
        let mut this = Self {
            socket,
            buffer: vec![0; 1 << 16],
        };
        // Deliver at once: one message per packet, no batching delay.
        let request = config_request(
            NetfilterProtoFamily::Unspec,
            group,
            vec![
                ConfigCmd::Bind.into(),
                ConfigMode::new_packet(COPY_RANGE).into(),
                netlink_packet_netfilter::nflog::ConfigNla::QThresh(1),
            ],
        );
        this.request(request)?;
        Ok(this)
    }

    fn request(&mut self, message: NetlinkMessage<NetfilterMessage>) -> std::io::Result<()> {
        let mut buf = vec![0; message.header.length as usize];
        message.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let size = self.socket.recv(&mut &mut self.buffer[..], 0)?;
        let reply = NetlinkMessage::<NetfilterMessage>::deserialize(&self.buffer[..size])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        match reply.payload {
            NetlinkPayload::Error(e) if e.code.is_some() => {
                Err(std::io::Error::other(format!("NFLOG bind refused: {e:?}")))
            }
            _ => Ok(()),
        }
    }

    /// A non-blocking socket's [`NflogSocket::receive`] returns nothing at once when no
    /// packet waits, so its reader can notice that it should stop.
    pub fn set_non_blocking(&self, non_blocking: bool) -> std::io::Result<()> {
        self.socket.set_non_blocking(non_blocking)
    }

    /// Returns the packets of one read; blocks until some arrive unless non-blocking.
    pub fn receive(&mut self) -> std::io::Result<Vec<LoggedPacket>> {
        let size = match self.socket.recv(&mut &mut self.buffer[..], 0) {
            Ok(size) => size,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < size {
            let Ok(message) =
                NetlinkMessage::<NetfilterMessage>::deserialize(&self.buffer[offset..size])
            else {
                break;
            };
            let length = message.header.length as usize;
            if let NetlinkPayload::InnerMessage(NetfilterMessage {
                inner: NetfilterMessageInner::ULog(ULogMessage::Packet(nlas)),
                ..
            }) = message.payload
            {
                let mut packet = LoggedPacket {
                    prefix: String::new(),
                    payload: Vec::new(),
                };
                for nla in nlas {
                    match nla {
                        PacketNla::Prefix(prefix) => {
                            packet.prefix = prefix.to_string_lossy().into_owned()
                        }
                        PacketNla::Payload(payload) => packet.payload = payload,
                        _ => {}
                    }
                }
                out.push(packet);
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_engine::{EndpointId, PolicyId};

    #[test]
    fn parses_ports_of_truncated_ipv4_and_ipv6_packets() {
        // IPv4 header (20 bytes) claiming 100 bytes in total, then TCP ports 40000 -> 80.
        let mut v4 = vec![
            0x45, 0, 0, 100, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 2, 0, 1, 10, 1, 0, 1,
        ];
        v4.extend([0x9c, 0x40, 0, 80, 0, 0, 0, 0]);
        assert_eq!(
            parse_packet(&v4),
            Some((
                "10.2.0.1".parse().unwrap(),
                "10.1.0.1".parse().unwrap(),
                "TCP".parse().unwrap(),
                40000,
                80
            ))
        );
        // IPv6 header (40 bytes), next header UDP, then ports 5000 -> 53.
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        v6.extend("fd02::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        v6.extend("fd01::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        v6.extend([0x13, 0x88, 0, 53, 0, 8, 0, 0]);
        assert_eq!(
            parse_packet(&v6).map(|p| (p.2, p.3, p.4)),
            Some(("UDP".parse().unwrap(), 5000, 53))
        );
        // Protocols without ports are recorded by name, with port 0.
        let mut icmp = v4.clone();
        icmp[9] = 1;
        assert_eq!(
            parse_packet(&icmp).map(|p| (p.2, p.3, p.4)),
            Some(("ICMP".parse().unwrap(), 0, 0))
        );
        icmp[9] = 253;
        assert_eq!(
            parse_packet(&icmp).map(|p| (p.2, p.3, p.4)),
            Some(("IP protocol 253".parse().unwrap(), 0, 0))
        );
    }

    /// An IPv4 TCP SYN header from `src` to `dst:port`.
    fn tcp_packet(src: &str, dst: &str, port: u16) -> Vec<u8> {
        let mut packet = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        packet.extend(src.parse::<std::net::Ipv4Addr>().unwrap().octets());
        packet.extend(dst.parse::<std::net::Ipv4Addr>().unwrap().octets());
        packet.extend([0x9c, 0x40]);
        packet.extend(port.to_be_bytes());
        packet.extend([0; 16]);
        packet
    }

    /// A chain's set logs admissions as the chain's: the record names the first rule of the
    /// chain that admits the packet, as the rules are written.
    #[test]
    fn admissions_by_a_chain_set_name_the_first_rule_that_admits() {
        use palisade_dataplane::{RenderOptions, render};
        use palisade_engine::{
            Analysis, Cluster, Endpoint, IpBlock, LabelSelector, Labels, NamespaceScope,
            NetworkPolicy, NodeProgram, Peer, PolicyTypes, PortRef, PortRule, Rule,
        };
        let labels = |app: &str| Labels::from([("app".to_string(), app.to_string())]);
        // web's policy admits probe on `probe_port`; `extra` more policies isolate web and
        // admit nothing.
        let shop = |probe_port: u16, extra: usize| {
            let mut cluster = Cluster::default();
            for (namespace, name, ip) in [
                ("shop", "web", "10.1.0.1"),
                ("ops", "probe", "10.2.0.1"),
                ("ops", "other", "10.2.0.2"),
            ] {
                let mut pod = Endpoint::pod(namespace, name, labels(name));
                pod.ips = vec![ip.parse().unwrap()];
                cluster.endpoints.push(pod);
            }
            let tcp = |from: u16, to: u16| PortRule {
                protocol: Protocol::Tcp,
                port: Some(PortRef::Number(from)),
                end_port: (to != from).then_some(to),
            };
            cluster.policies.push(NetworkPolicy {
                namespace: "shop".to_string(),
                name: "web".to_string(),
                pod_selector: LabelSelector::with_labels([("app".to_string(), "web".to_string())]),
                policy_types: PolicyTypes {
                    ingress: true,
                    egress: false,
                },
                ingress: vec![
                    Rule {
                        peers: vec![Peer::Pods {
                            namespaces: NamespaceScope::Selected(LabelSelector::everything()),
                            pods: LabelSelector::with_labels([(
                                "app".to_string(),
                                "probe".to_string(),
                            )]),
                        }],
                        ports: vec![tcp(probe_port, probe_port)],
                    },
                    Rule {
                        peers: vec![Peer::IpBlock(IpBlock {
                            cidr: "10.2.0.0/24".parse().unwrap(),
                            except: vec![],
                        })],
                        ports: vec![tcp(80, 81)],
                    },
                ],
                egress: vec![],
            });
            for i in 0..extra {
                let mut isolating = cluster.policies[PolicyId::from(0)].clone();
                isolating.name = format!("web-{i}");
                isolating.ingress.clear();
                cluster.policies.push(isolating);
            }
            cluster
        };
        let snapshot = |cluster: Cluster| {
            let analysis = Analysis::new(cluster);
            let first = EndpointId::from(0);
            let program =
                NodeProgram::compile(&analysis, &[(first, analysis.endpoint(first).ips.clone())]);
            let options = RenderOptions {
                audit: false,
                log_group: 100,
            };
            let ruleset = render(&analysis, &program, options);
            std::sync::Arc::new(Snapshot::new(&analysis, program, ruleset))
        };
        let old = snapshot(shop(80, 0));
        let ruleset = &old.ruleset;
        let tag = LogTag::AdmittedIn(ruleset.chain_keys[ChainId::from(0)]);
        assert!(
            ruleset.text(1).contains(&tag.prefix()),
            "{}",
            ruleset.text(1)
        );
        let snapshots = [old.clone()];
        for (src, port, expected) in [
            ("10.2.0.1", 80, Some("shop/web ingress rule 1")),
            ("10.2.0.2", 80, Some("shop/web ingress rule 2")),
            ("10.2.0.1", 81, Some("shop/web ingress rule 2")),
            // The set would not have admitted it: no admission to explain.
            ("10.2.0.2", 82, None),
        ] {
            let packet = LoggedPacket {
                prefix: tag.prefix(),
                payload: tcp_packet(src, "10.1.0.1", port),
            };
            let found = record(&packet, &snapshots, "n0");
            assert_eq!(
                found.as_ref().map(|r| r.decided_by.as_str()),
                expected,
                "{src} -> :{port}"
            );
            if let Some(found) = found {
                assert_eq!(
                    (
                        direction_label(found.direction),
                        found.verdict,
                        found.policies
                    ),
                    ("INGRESS", Verdict::Forwarded, vec!["shop/web".to_string()])
                );
            }
        }

        // web's policy admits probe on 82, then on 8080 only: the chain keeps its key, and a
        // packet logged before the change is explained by the program that admitted it.
        let before = snapshot(shop(82, 0));
        let after = snapshot(shop(8080, 0));
        assert_eq!(after.ruleset.chain_keys, before.ruleset.chain_keys);
        let explain = |port: u16, snapshots: &[std::sync::Arc<Snapshot>]| {
            let packet = LoggedPacket {
                prefix: tag.prefix(),
                payload: tcp_packet("10.2.0.1", "10.1.0.1", port),
            };
            record(&packet, snapshots, "n0").map(|r| r.decided_by)
        };
        let both = [after.clone(), before];
        for (port, expected) in [
            (82, Some("shop/web ingress rule 1")),
            (8080, Some("shop/web ingress rule 1")),
            (80, Some("shop/web ingress rule 2")),
            (83, None),
        ] {
            assert_eq!(explain(port, &both).as_deref(), expected, "port {port}");
        }
        assert_eq!(explain(82, &[after]), None);

        // Seven policies isolate web and none admits: a denial names five and counts two.
        let many = snapshot(shop(80, 6));
        let packet = LoggedPacket {
            prefix: LogTag::Denied(many.ruleset.chain_keys[ChainId::from(0)]).prefix(),
            payload: tcp_packet("10.2.0.2", "10.1.0.1", 9),
        };
        let denied = record(&packet, &[many], "n0").expect("a record");
        assert_eq!(
            (denied.verdict, denied.policies.len(), denied.more_policies),
            (Verdict::Dropped, NAMED_POLICIES, 2)
        );
        assert_eq!(
            denied.decided_by,
            "no rule of shop/web, shop/web-0, shop/web-1, shop/web-2, shop/web-3 and 2 more \
             policies admits it"
        );
    }
}
