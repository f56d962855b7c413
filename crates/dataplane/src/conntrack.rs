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

/// Deletes the entry of one connection (exactly its original tuple).
pub fn delete(runner: &Runner, flow: &Flow) -> Result<(), Error> {
    let protocol = flow.protocol.as_str().to_lowercase();
    let (src, dst) = (flow.src.to_string(), flow.dst.to_string());
    let (sport, dport) = (flow.sport.to_string(), flow.dport.to_string());
    let family = if flow.src.is_ipv4() { "ipv4" } else { "ipv6" };
    let args = [
        "-D", "-f", family, "-p", &protocol, "-s", &src, "-d", &dst, "--sport", &sport, "--dport",
        &dport,
    ];
    match runner.run("conntrack", &args, None) {
        // Exit status 1 with nothing deleted: the connection ended meanwhile.
        Err(Error::Failed { status, .. }) if status.code() == Some(1) => Ok(()),
        other => other.map(drop),
    }
}

/// Deletes the entries of connections `program` denies now; returns how many.
pub fn revoke(runner: &Runner, program: &NodeProgram) -> Result<usize, Error> {
    let denied: Vec<Flow> = flows(runner)?
        .into_iter()
        .filter(|f| program.denies(f.src, f.dst, f.protocol, f.dport))
        .collect();
    for flow in &denied {
        delete(runner, flow)?;
    }
    Ok(denied.len())
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
