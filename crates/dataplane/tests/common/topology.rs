//! A routed node for root tests: one node namespace, one namespace per pod, each pod a /32
//! (and /128) behind a veth, gateway 169.254.1.1 / fe80::1 with neighbours pinned on both ends
//! so no ARP or neighbour discovery is involved. Probe servers answer on TCP and UDP.

use palisade_dataplane::{Netns, Runner};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// How long a probe waits before calling a connection refused by the filter (dropped SYNs
/// never answer). Not a timing assertion: a deadline for giving up.
pub const PROBE_WAIT: Duration = Duration::from_millis(400);

pub struct PodNs {
    pub ns: Netns,
    pub ips: Vec<IpAddr>,
}

pub struct Node {
    // Pods first: their veths go with them, then the node.
    pub pods: Vec<PodNs>,
    pub node: Netns,
}

const HOST_MAC: &str = "ee:ee:ee:ee:ee:ee";

fn sysctl(runner: &Runner, settings: &[&str]) {
    for s in settings {
        runner.run("sysctl", &["-qw", s], None).unwrap();
    }
}

impl Node {
    /// One pod per endpoint of `cluster` (in its order), with the endpoint's addresses.
    pub fn hosting(cluster: &palisade_engine::Cluster) -> Self {
        let pods: Vec<Vec<IpAddr>> = cluster.endpoints.iter().map(|e| e.ips.clone()).collect();
        Self::new(&pods)
    }

    pub fn new(pods: &[Vec<IpAddr>]) -> Self {
        let node = Netns::create("palisade-t").unwrap();
        sysctl(
            &node.runner(),
            &[
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                "net.ipv6.conf.default.accept_dad=0",
            ],
        );
        let mut out = Vec::new();
        for (i, ips) in pods.iter().enumerate() {
            let pod = Netns::create("palisade-t").unwrap();
            sysctl(
                &pod.runner(),
                &[
                    "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv6.conf.all.accept_dad=0",
                ],
            );
            let host = format!("h{i}");
            let pod_mac = format!("02:00:00:00:00:{:02x}", i + 1);
            node.ip(&[
                "link",
                "add",
                &host,
                "address",
                HOST_MAC,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "address",
                &pod_mac,
                "netns",
                pod.name(),
            ])
            .unwrap();
            node.ip(&["link", "set", &host, "up"]).unwrap();
            pod.ip(&["link", "set", "eth0", "up"]).unwrap();
            pod.ip(&[
                "route",
                "add",
                "169.254.1.1",
                "dev",
                "eth0",
                "scope",
                "link",
            ])
            .unwrap();
            pod.ip(&[
                "route",
                "add",
                "default",
                "via",
                "169.254.1.1",
                "dev",
                "eth0",
            ])
            .unwrap();
            pod.ip(&[
                "neigh",
                "add",
                "169.254.1.1",
                "lladdr",
                HOST_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ])
            .unwrap();
            pod.ip(&[
                "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0",
            ])
            .unwrap();
            pod.ip(&[
                "-6",
                "neigh",
                "add",
                "fe80::1",
                "lladdr",
                HOST_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ])
            .unwrap();
            for ip in ips {
                let (len, family) = if ip.is_ipv4() {
                    ("32", "-4")
                } else {
                    ("128", "-6")
                };
                let cidr = format!("{ip}/{len}");
                let ip_s = ip.to_string();
                pod.ip(&[family, "addr", "add", &cidr, "dev", "eth0", "nodad"]
                    [..if ip.is_ipv4() { 6 } else { 7 }])
                    .unwrap();
                node.ip(&[family, "route", "add", &cidr, "dev", &host])
                    .unwrap();
                node.ip(&[
                    family,
                    "neigh",
                    "add",
                    &ip_s,
                    "lladdr",
                    &pod_mac,
                    "dev",
                    &host,
                    "nud",
                    "permanent",
                ])
                .unwrap();
            }
            out.push(PodNs {
                ns: pod,
                ips: ips.clone(),
            });
        }
        Node { pods: out, node }
    }

    /// Starts echo servers on `ports` (TCP and UDP, both families) in every pod.
    pub fn serve(&self, tcp: &[u16], udp: &[u16]) {
        for pod in &self.pods {
            let (tcp, udp) = (tcp.to_vec(), udp.to_vec());
            pod.ns
                .enter(move || {
                    for port in tcp {
                        let listener = TcpListener::bind(("::", port)).unwrap();
                        std::thread::spawn(move || {
                            for stream in listener.incoming().flatten() {
                                std::thread::spawn(move || echo(stream));
                            }
                        });
                    }
                    for port in udp {
                        let socket = UdpSocket::bind(("::", port)).unwrap();
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 512];
                            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                                let _ = socket.send_to(&buf[..n], from);
                            }
                        });
                    }
                })
                .unwrap();
        }
    }

    pub fn pod_of(&self, ip: IpAddr) -> &PodNs {
        self.pods
            .iter()
            .find(|p| p.ips.contains(&ip))
            .expect("address of a test pod")
    }
}

fn echo(mut stream: TcpStream) {
    let mut buf = [0u8; 512];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// Opens a connection from `src`'s pod and exchanges one message; true when the reply came.
pub fn probe(node: &Node, src: IpAddr, dst: IpAddr, proto: Proto, port: u16) -> bool {
    node.pod_of(src)
        .ns
        .enter(move || {
            let to = SocketAddr::new(dst, port);
            match proto {
                Proto::Tcp => TcpStream::connect_timeout(&to, PROBE_WAIT).is_ok_and(|mut s| {
                    s.set_read_timeout(Some(PROBE_WAIT)).unwrap();
                    let mut buf = [0u8; 4];
                    s.write_all(b"ping").is_ok() && s.read_exact(&mut buf).is_ok()
                }),
                Proto::Udp => {
                    let local = if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                    let socket = UdpSocket::bind(local).unwrap();
                    socket.set_read_timeout(Some(PROBE_WAIT)).unwrap();
                    let mut buf = [0u8; 4];
                    socket.send_to(b"ping", to).is_ok()
                        && socket.recv_from(&mut buf).is_ok_and(|(n, _)| n == 4)
                }
            }
        })
        .unwrap()
}
