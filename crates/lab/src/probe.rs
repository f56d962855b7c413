//! Measuring a lab: a real connection attempt for every ordered pair and port, made from inside
//! the source's namespace by worker threads that `setns` into it; and comparing the measurement
//! with the engine's analysis of the same cluster with the lab's addresses.

use crate::LabError;
use crate::lab::LabState;
use crate::net;
use crate::plan::{LabSubject, SubjectKind};
use palisade_engine::{Analysis, Cluster, Protocol, Subject};
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What was measured for one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measured {
    Allowed,
    Denied,
    /// No measurement, with the reason (shown in the `allowed` column as `not-probed`).
    NotProbed(NotProbed),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotProbed {
    /// No probe server listens on this port of the destination (the lab serves each pod's
    /// declared ports).
    NotServed,
}

impl Measured {
    pub fn allowed(self) -> Option<bool> {
        match self {
            Self::Allowed => Some(true),
            Self::Denied => Some(false),
            Self::NotProbed(_) => None,
        }
    }

    fn cell(self) -> &'static str {
        match self {
            Self::Allowed => "true",
            Self::Denied => "false",
            Self::NotProbed(_) => "not-probed",
        }
    }
}

/// One row of the measured matrix; `src`/`dst` index `LabState::subjects`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeRow {
    pub src: usize,
    pub dst: usize,
    pub port: u16,
    pub protocol: Protocol,
    pub measured: Measured,
}

/// The order of `matrix` rows, shared so that measured and analysed matrices line up: source
/// (cluster order, outside ranges last), destination, port ascending, then TCP, UDP, SCTP.
pub fn row_order(src: usize, dst: usize, port: u16, protocol: Protocol) -> impl Ord {
    (src, dst, port, protocol)
}

#[derive(Clone, Debug)]
pub struct ProbeSpec {
    /// Ports to probe on every destination; empty: each destination's declared ports.
    pub ports: Vec<u16>,
    /// With `ports`: the protocols (default TCP). Without: a filter on the declared ports.
    pub protocols: Vec<Protocol>,
    /// How long one attempt may take; a denied connection costs this much.
    pub timeout: Duration,
    /// Attempts in flight at once.
    pub parallel: usize,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        Self {
            ports: Vec::new(),
            protocols: Vec::new(),
            timeout: Duration::from_millis(1000),
            parallel: 32,
        }
    }
}

/// The rows to measure, in [`row_order`]: every ordered pair except outside host to outside
/// host (as `matrix` does), with the destination's ports chosen as `matrix` chooses them.
pub fn rows(state: &LabState, spec: &ProbeSpec) -> Vec<ProbeRow> {
    let ports_of = |dst: &LabSubject| -> Vec<(u16, Protocol)> {
        let mut ports: Vec<(u16, Protocol)> = if spec.ports.is_empty() {
            dst.default_ports()
                .into_iter()
                .filter(|(_, proto)| spec.protocols.is_empty() || spec.protocols.contains(proto))
                .collect()
        } else {
            let protocols = if spec.protocols.is_empty() {
                vec![Protocol::Tcp]
            } else {
                spec.protocols.clone()
            };
            spec.ports
                .iter()
                .flat_map(|&port| protocols.iter().map(move |&proto| (port, proto)))
                .collect()
        };
        ports.sort();
        ports.dedup();
        ports
    };
    let mut rows = Vec::new();
    for (src, s) in state.subjects.iter().enumerate() {
        for (dst, d) in state.subjects.iter().enumerate() {
            if s.is_host() && d.is_host() {
                continue;
            }
            for (port, protocol) in ports_of(d) {
                let measured = if !d.serves(port, protocol) {
                    Measured::NotProbed(NotProbed::NotServed)
                } else {
                    // Placeholder until measured.
                    Measured::Denied
                };
                rows.push(ProbeRow {
                    src,
                    dst,
                    port,
                    protocol,
                    measured,
                });
            }
        }
    }
    rows.sort_by_key(|r| row_order(r.src, r.dst, r.port, r.protocol));
    rows
}

/// Measures every row of [`rows`], `spec.parallel` attempts at a time.
pub fn probe(state: &LabState, spec: &ProbeSpec) -> Result<Vec<ProbeRow>, LabError> {
    let rows = Mutex::new(rows(state, spec));
    let jobs: Vec<usize> = {
        let rows = rows.lock().map_err(|_| poisoned())?;
        (0..rows.len())
            .filter(|&i| !matches!(rows[i].measured, Measured::NotProbed(_)))
            .collect()
    };
    let next = AtomicUsize::new(0);
    let workers = spec.parallel.clamp(1, jobs.len().max(1));
    std::thread::scope(|scope| -> Result<(), LabError> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<(), LabError> {
                    // Jobs are sorted by source, so a worker rarely switches namespace.
                    let mut current: Option<usize> = None;
                    loop {
                        let Some(&job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            return Ok(());
                        };
                        let row = rows.lock().map_err(|_| poisoned())?[job];
                        if current != Some(row.src) {
                            net::enter_netns(&state.subject_netns[row.src])?;
                            current = Some(row.src);
                        }
                        let dst = &state.subjects[row.dst];
                        let addr = SocketAddr::new(dst.ip.into(), row.port);
                        let measured = attempt(addr, row.protocol, spec.timeout, job)?;
                        rows.lock().map_err(|_| poisoned())?[job].measured = measured;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| LabError::Invalid("a probe worker panicked".into()))??;
        }
        Ok(())
    })?;
    rows.into_inner().map_err(|_| poisoned())
}

fn poisoned() -> LabError {
    LabError::Invalid("a probe worker panicked".into())
}

/// One connection attempt from the calling thread's namespace.
fn attempt(
    addr: SocketAddr,
    protocol: Protocol,
    timeout: Duration,
    id: usize,
) -> Result<Measured, LabError> {
    let io_error = |e: std::io::Error| LabError::Io {
        context: format!("probing {addr} {protocol}"),
        source: e,
    };
    match protocol {
        Protocol::Tcp => match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => Ok(Measured::Allowed),
            Err(e) if refused(&e) => Ok(Measured::Denied),
            Err(e) => Err(io_error(e)),
        },
        Protocol::Udp => {
            let socket = UdpSocket::bind(("0.0.0.0", 0)).map_err(io_error)?;
            socket.connect(addr).map_err(io_error)?;
            // Three tries within the timeout: one lost datagram must not read as a denial.
            const TRIES: u32 = 3;
            socket
                .set_read_timeout(Some(timeout / TRIES))
                .map_err(io_error)?;
            let payload = format!("palisade-probe {id}");
            let mut buf = [0u8; 64];
            for _ in 0..TRIES {
                match socket.send(payload.as_bytes()) {
                    Ok(_) => {}
                    Err(e) if refused(&e) => return Ok(Measured::Denied),
                    Err(e) => return Err(io_error(e)),
                }
                match socket.recv(&mut buf) {
                    Ok(n) if &buf[..n] == payload.as_bytes() => return Ok(Measured::Allowed),
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) if refused(&e) => return Ok(Measured::Denied),
                    Err(e) => return Err(io_error(e)),
                }
            }
            Ok(Measured::Denied)
        }
        Protocol::Sctp => {
            let SocketAddr::V4(dst) = addr else {
                return Ok(Measured::NotProbed(NotProbed::NotServed));
            };
            // Distinct per attempt, so concurrent probes in one namespace tell their answers
            // apart (every raw socket sees every SCTP packet).
            let src_port = 32768 + (id % 28_000) as u16;
            let tag = (id as u32).wrapping_mul(2_654_435_761) | 1;
            match crate::sctp::probe(dst, src_port, tag, timeout) {
                Ok(true) => Ok(Measured::Allowed),
                Ok(false) => Ok(Measured::Denied),
                Err(e) if refused(&e) => Ok(Measured::Denied),
                Err(e) => Err(io_error(e)),
            }
        }
    }
}

/// Errors that mean "the network did not let this connection through" rather than a local
/// failure of the prober.
fn refused(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::TimedOut
            | ErrorKind::WouldBlock
            | ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::PermissionDenied
    )
}

/// Writes rows exactly as `palisade matrix -o tsv` does.
pub fn write_tsv(out: &mut dyn Write, state: &LabState, rows: &[ProbeRow]) -> std::io::Result<()> {
    writeln!(out, "src\tdst\tport\tprotocol\tallowed")?;
    for row in rows {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            state.subjects[row.src].name,
            state.subjects[row.dst].name,
            row.port,
            row.protocol,
            row.measured.cell()
        )?;
    }
    Ok(())
}

/// `cluster` with each lab pod's endpoint given the pod's lab address and one replica, so that
/// ipBlocks and loopback mean in the analysis what they mean in the lab.
pub fn lab_cluster(mut cluster: Cluster, state: &LabState) -> Cluster {
    for ep in &mut cluster.endpoints {
        let qualified = ep.qualified_name();
        let lab_pod = state
            .subjects
            .iter()
            .find(|s| matches!(&s.kind, SubjectKind::Pod { endpoint } if *endpoint == qualified));
        if let Some(subject) = lab_pod {
            ep.ips = vec![subject.ip.into()];
            ep.replicas = 1;
        }
    }
    cluster
}

/// A row where measurement and analysis disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Difference {
    pub row: ProbeRow,
    pub expected: bool,
}

/// Rows whose measurement differs from `analysis` (built from [`lab_cluster`]). Rows not
/// probed, and pods the analysis no longer has, are not compared.
pub fn compare(state: &LabState, analysis: &Analysis, rows: &[ProbeRow]) -> Vec<Difference> {
    let subject = |s: &LabSubject| match &s.kind {
        SubjectKind::Pod { endpoint } => analysis.find_endpoint(endpoint).map(Subject::Endpoint),
        SubjectKind::Host => Some(Subject::External(s.ip.into())),
    };
    rows.iter()
        .filter_map(|row| {
            let measured = row.measured.allowed()?;
            let src = subject(&state.subjects[row.src])?;
            let dst = subject(&state.subjects[row.dst])?;
            let expected = analysis
                .allowed_ports(src, dst)
                .contains(row.protocol, row.port);
            (measured != expected).then_some(Difference {
                row: *row,
                expected,
            })
        })
        .collect()
}
