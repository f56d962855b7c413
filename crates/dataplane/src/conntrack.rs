//! Revocation: established connections that the current program would no longer admit lose
//! their conntrack entries, so their next packet is evaluated as new (and a TCP packet that is
//! not a SYN is dropped by the forward chain).

use crate::nft::{Error, Runner};
use palisade_engine::{NodeProgram, Protocol};
use std::net::IpAddr;

/// A connection as conntrack saw it opened (the original direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub protocol: Protocol,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

/// Every TCP, UDP and SCTP connection conntrack tracks, both address families.
pub fn flows(runner: &Runner) -> Result<Vec<Flow>, Error> {
    let mut out = Vec::new();
    for family in ["ipv4", "ipv6"] {
        let listing = runner.run("conntrack", &["-L", "-f", family], None)?;
        out.extend(listing.lines().filter_map(parse_line));
    }
    Ok(out)
}

/// Parses one line of `conntrack -L`; the first src/dst/sport/dport are the original tuple.
fn parse_line(line: &str) -> Option<Flow> {
    let mut words = line.split_whitespace();
    let protocol = match words.next()? {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => return None,
    };
    let first = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
    };
    Some(Flow {
        protocol,
        src: first("src")?.parse().ok()?,
        dst: first("dst")?.parse().ok()?,
        sport: first("sport")?.parse().ok()?,
        dport: first("dport")?.parse().ok()?,
    })
}

/// `conntrack` arguments that delete exactly one connection's entry (its original tuple).
fn delete_args(flow: &Flow) -> Vec<String> {
    let family = if flow.src.is_ipv4() { "ipv4" } else { "ipv6" };
    [
        "-D",
        "-f",
        family,
        "-p",
        &flow.protocol.as_str().to_lowercase(),
        "-s",
        &flow.src.to_string(),
        "-d",
        &flow.dst.to_string(),
        "--sport",
        &flow.sport.to_string(),
        "--dport",
        &flow.dport.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// Deletes the entry of one connection (exactly its original tuple).
pub fn delete(runner: &Runner, flow: &Flow) -> Result<(), Error> {
    let args = delete_args(flow);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match runner.run("conntrack", &args, None) {
        // Exit status 1 with nothing deleted: the connection ended meanwhile.
        Err(Error::Failed { status, .. }) if status.code() == Some(1) => Ok(()),
        other => other.map(drop),
    }
}

/// Deletes the entries of connections `program` denies now; returns how many. The entries are
/// deleted over ctnetlink by their exact tuple, all on one socket: `conntrack -D` dumps the
/// whole table for every entry it deletes, which took seconds (and more) on a busy node.
pub fn revoke(runner: &Runner, program: &NodeProgram) -> Result<usize, Error> {
    // Flows differ by source port mostly (a busy client has thousands): decide each
    // (protocol, source, destination, port) once, as a decision walks the pod's rules.
    let mut decided: std::collections::HashMap<(Protocol, IpAddr, IpAddr, u16), bool> =
        std::collections::HashMap::new();
    let denied: Vec<Flow> = flows(runner)?
        .into_iter()
        .filter(|f| {
            *decided
                .entry((f.protocol, f.src, f.dst, f.dport))
                .or_insert_with(|| program.denies(f.src, f.dst, f.protocol, f.dport))
        })
        .collect();
    if denied.is_empty() {
        return Ok(0);
    }
    let failed = |source: std::io::Error| Error::Spawn {
        command: format!("deleting {} conntrack entries over netlink", denied.len()),
        source,
    };
    match runner.netns() {
        None => delete_over_netlink(&denied).map_err(failed)?,
        Some(netns) => {
            let file = std::fs::File::open(format!("/run/netns/{netns}")).map_err(failed)?;
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                            .map_err(std::io::Error::from)?;
                        delete_over_netlink(&denied)
                    })
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("netlink worker panicked")))
            })
            .map_err(failed)?;
        }
    }
    Ok(denied.len())
}

/// Sends one `IPCTNL_MSG_CT_DELETE` per flow (original tuple) in the calling thread's network
/// namespace and reads every acknowledgement; an entry already gone (ENOENT) is fine.
fn delete_over_netlink(flows: &[Flow]) -> std::io::Result<()> {
    use netlink_packet_core::{
        NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    };
    use netlink_packet_netfilter::conntrack::{
        ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol as CtProtocol, Tuple,
    };
    use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
    let mut socket = netlink_sys::Socket::new(netlink_sys::constants::NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    let mut buffer = vec![0u8; 1 << 16];
    // A bounded number in flight, so acknowledgements never overflow the receive buffer.
    for chunk in flows.chunks(64) {
        for (sequence, flow) in chunk.iter().enumerate() {
            let protocol = match flow.protocol {
                Protocol::Tcp => CtProtocol::Tcp,
                Protocol::Udp => CtProtocol::Udp,
                Protocol::Sctp => CtProtocol::Sctp,
            };
            let family = if flow.src.is_ipv4() {
                NetfilterProtoFamily::IPv4
            } else {
                NetfilterProtoFamily::IPv6
            };
            let tuple = ConntrackAttribute::CtaTupleOrig(vec![
                Tuple::Ip(vec![
                    IPTuple::SourceAddress(flow.src),
                    IPTuple::DestinationAddress(flow.dst),
                ]),
                Tuple::Proto(vec![
                    ProtoTuple::Protocol(protocol),
                    ProtoTuple::SourcePort(flow.sport),
                    ProtoTuple::DestinationPort(flow.dport),
                ]),
            ]);
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_ACK;
            header.sequence_number = sequence as u32 + 1;
            let mut message = NetlinkMessage::new(
                header,
                NetlinkPayload::from(NetfilterMessage::new(
                    NetfilterHeader::new(family, 0, 0),
                    ConntrackMessage::Delete(vec![tuple]),
                )),
            );
            message.finalize();
            let mut bytes = vec![0u8; message.header.length as usize];
            message.serialize(&mut bytes);
            socket.send(&bytes, 0)?;
        }
        let mut acknowledged = 0;
        while acknowledged < chunk.len() {
            let size = socket.recv(&mut &mut buffer[..], 0)?;
            let mut offset = 0;
            while offset < size {
                let Ok(reply) =
                    NetlinkMessage::<NetfilterMessage>::deserialize(&buffer[offset..size])
                else {
                    break;
                };
                let length = reply.header.length as usize;
                // The acknowledgement: no code for success, -errno otherwise.
                if let NetlinkPayload::Error(e) = reply.payload {
                    acknowledged += 1;
                    match e.code.map(|c| -c.get()) {
                        None => {}
                        Some(errno) if errno == nix::errno::Errno::ENOENT as i32 => {}
                        Some(errno) => return Err(std::io::Error::from_raw_os_error(errno)),
                    }
                }
                if length == 0 {
                    break;
                }
                offset += (length + 3) & !3;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_original_tuple() {
        let tcp = "tcp      6 431999 ESTABLISHED src=10.1.0.3 dst=10.1.0.1 sport=40000 dport=80 src=10.1.0.1 dst=10.1.0.3 sport=80 dport=40000 [ASSURED] mark=0 use=1";
        assert_eq!(
            parse_line(tcp),
            Some(Flow {
                protocol: Protocol::Tcp,
                src: "10.1.0.3".parse().unwrap(),
                dst: "10.1.0.1".parse().unwrap(),
                sport: 40000,
                dport: 80,
            })
        );
        let udp6 = "udp      17 29 src=fd02::1 dst=fd01::1 sport=5000 dport=53 [UNREPLIED] src=fd01::1 dst=fd02::1 sport=53 dport=5000 mark=0 use=1";
        assert_eq!(
            parse_line(udp6).map(|f| (f.protocol, f.dport)),
            Some((Protocol::Udp, 53))
        );
        assert_eq!(
            parse_line("icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1"),
            None
        );
    }
}
