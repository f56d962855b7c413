//! SCTP reachability without SCTP sockets (this kernel is built without SCTP): the prober sends
//! an INIT chunk on a raw IP socket and the pod's server answers INIT-ACK on its own raw socket.
//! That is the first exchange of an association, which is what conntrack and nftables see as a
//! new SCTP connection and its reply.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

const IPPROTO_SCTP: i32 = 132;
const COMMON_HEADER: usize = 12;
const CHUNK_INIT: u8 = 1;
const CHUNK_INIT_ACK: u8 = 2;
/// Parameter type of the State Cookie an INIT-ACK must carry.
const STATE_COOKIE: u16 = 7;
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// The parts of an INIT or INIT-ACK the lab uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub src_port: u16,
    pub dst_port: u16,
    /// The common header's verification tag: 0 in an INIT, the peer's initiate tag after.
    pub verification_tag: u32,
    pub chunk_type: u8,
    pub initiate_tag: u32,
}

/// An INIT or INIT-ACK packet (without IP header), checksummed.
pub fn encode(chunk: &Chunk) -> Vec<u8> {
    let mut packet = Vec::with_capacity(48);
    packet.extend_from_slice(&chunk.src_port.to_be_bytes());
    packet.extend_from_slice(&chunk.dst_port.to_be_bytes());
    packet.extend_from_slice(&chunk.verification_tag.to_be_bytes());
    packet.extend_from_slice(&[0; 4]);
    let cookie: &[u8] = if chunk.chunk_type == CHUNK_INIT_ACK {
        b"lab!"
    } else {
        &[]
    };
    let params = if cookie.is_empty() {
        0
    } else {
        4 + cookie.len()
    };
    let length = u16::try_from(20 + params).unwrap_or(u16::MAX);
    packet.extend_from_slice(&[chunk.chunk_type, 0]);
    packet.extend_from_slice(&length.to_be_bytes());
    packet.extend_from_slice(&chunk.initiate_tag.to_be_bytes());
    // Receiver window, outbound and inbound streams, initial TSN.
    packet.extend_from_slice(&65_536u32.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet.extend_from_slice(&chunk.initiate_tag.to_be_bytes());
    if !cookie.is_empty() {
        packet.extend_from_slice(&STATE_COOKIE.to_be_bytes());
        packet.extend_from_slice(&u16::try_from(4 + cookie.len()).unwrap_or(8).to_be_bytes());
        packet.extend_from_slice(cookie);
    }
    // RFC 9260 appendix A: CRC32c over the packet with a zero checksum field, sent in
    // little-endian byte order (as Linux writes it).
    let sum = CRC32C.checksum(&packet);
    packet[8..12].copy_from_slice(&sum.to_le_bytes());
    packet
}

/// Parses an IPv4 packet as raw sockets deliver it; `None` unless it is an intact SCTP INIT or
/// INIT-ACK.
pub fn parse(ip_packet: &[u8]) -> Option<(Ipv4Addr, Chunk)> {
    let header_len = usize::from(ip_packet.first()? & 0x0f) * 4;
    let source = Ipv4Addr::new(
        *ip_packet.get(12)?,
        *ip_packet.get(13)?,
        *ip_packet.get(14)?,
        *ip_packet.get(15)?,
    );
    let sctp = ip_packet.get(header_len..)?;
    if sctp.len() < COMMON_HEADER + 20 {
        return None;
    }
    let mut zeroed = sctp.to_vec();
    zeroed[8..12].fill(0);
    if CRC32C.checksum(&zeroed).to_le_bytes() != sctp[8..12] {
        return None;
    }
    let u16_at = |i: usize| u16::from_be_bytes([sctp[i], sctp[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes([sctp[i], sctp[i + 1], sctp[i + 2], sctp[i + 3]]);
    let chunk_type = sctp[COMMON_HEADER];
    if chunk_type != CHUNK_INIT && chunk_type != CHUNK_INIT_ACK {
        return None;
    }
    Some((
        source,
        Chunk {
            src_port: u16_at(0),
            dst_port: u16_at(2),
            verification_tag: u32_at(4),
            chunk_type,
            initiate_tag: u32_at(COMMON_HEADER + 4),
        },
    ))
}

fn raw_socket() -> std::io::Result<Socket> {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_SCTP)))
}

/// Answers every INIT to one of `ports` with an INIT-ACK, until the process is killed. The
/// socket is opened by the caller so that binding errors surface before readiness.
pub fn answer(socket: &Socket, ports: &[u16]) {
    let mut reader: &Socket = socket;
    let mut buf = [0u8; 2048];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // The socket is broken: stop answering; probes then report denials.
            Err(_) => return,
        };
        let Some((source, init)) = parse(&buf[..n]) else {
            continue;
        };
        if init.chunk_type != CHUNK_INIT || !ports.contains(&init.dst_port) {
            continue;
        }
        let reply = encode(&Chunk {
            src_port: init.dst_port,
            dst_port: init.src_port,
            verification_tag: init.initiate_tag,
            chunk_type: CHUNK_INIT_ACK,
            initiate_tag: init.initiate_tag.rotate_left(16) | 1,
        });
        // A lost answer is a failed probe, which the prober reports.
        let _ = socket.send_to(&reply, &SockAddr::from(SocketAddrV4::new(source, 0)));
    }
}

/// Opens the server's raw socket.
pub fn listen() -> std::io::Result<Socket> {
    raw_socket()
}

/// Sends INIT from `src_port` to `dst` and waits for the matching INIT-ACK; `Ok(false)` when
/// none arrives within `timeout` (three tries).
pub fn probe(
    dst: SocketAddrV4,
    src_port: u16,
    tag: u32,
    timeout: Duration,
) -> std::io::Result<bool> {
    let socket = raw_socket()?;
    // Connecting a raw socket filters what it receives to packets from `dst`'s address.
    socket.connect(&SockAddr::from(SocketAddrV4::new(*dst.ip(), 0)))?;
    const TRIES: u32 = 3;
    socket.set_read_timeout(Some(timeout / TRIES))?;
    let init = encode(&Chunk {
        src_port,
        dst_port: dst.port(),
        verification_tag: 0,
        chunk_type: CHUNK_INIT,
        initiate_tag: tag,
    });
    let mut reader: &Socket = &socket;
    let mut buf = [0u8; 2048];
    for _ in 0..TRIES {
        socket.send(&init)?;
        let deadline = std::time::Instant::now() + timeout / TRIES;
        // Other probes' packets arrive here too; wait out this try's share of the timeout.
        while std::time::Instant::now() < deadline {
            match reader.read(&mut buf) {
                Ok(n) => {
                    if let Some((_, ack)) = parse(&buf[..n])
                        && ack.chunk_type == CHUNK_INIT_ACK
                        && ack.verification_tag == tag
                        && ack.src_port == dst.port()
                        && ack.dst_port == src_port
                    {
                        return Ok(true);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_the_iscsi_polynomial() {
        // The standard check value of CRC-32C.
        assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn init_and_init_ack_round_trip_and_damage_is_rejected() {
        let mut ip = vec![
            0x45u8, 0, 0, 0, 0, 0, 0, 0, 64, 132, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        for chunk_type in [CHUNK_INIT, CHUNK_INIT_ACK] {
            let chunk = Chunk {
                src_port: 40000,
                dst_port: 80,
                verification_tag: 7,
                chunk_type,
                initiate_tag: 0xdead_beef,
            };
            let mut packet = ip.clone();
            packet.extend(encode(&chunk));
            assert_eq!(parse(&packet), Some((Ipv4Addr::new(10, 0, 0, 1), chunk)));
            let last = packet.len() - 1;
            packet[last] ^= 1;
            assert_eq!(parse(&packet), None);
        }
        ip.extend([0u8; 8]);
        assert_eq!(parse(&ip), None);
    }
}
