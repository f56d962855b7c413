//! The probe server each lab pod runs: accepts TCP connections (echoing what they carry),
//! echoes UDP datagrams and answers SCTP INITs on the pod's ports. It prints one `ready` line
//! once every socket is bound, so `lab up` needs no timing guess.

use crate::LabError;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};

/// The line a server prints when all its sockets are bound.
pub const READY: &str = "ready";

/// Binds every port, reports readiness on `ready` (stdout, which `lab up` reads), then serves
/// until killed.
pub fn serve(
    tcp: &[u16],
    udp: &[u16],
    sctp: &[u16],
    ready: &mut dyn Write,
) -> Result<(), LabError> {
    let listeners = tcp
        .iter()
        .map(|&port| {
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(bind_error("TCP", port))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sockets = udp
        .iter()
        .map(|&port| {
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(bind_error("UDP", port))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sctp_socket = if sctp.is_empty() {
        None
    } else {
        Some(crate::sctp::listen().map_err(|e| LabError::Io {
            context: "opening a raw SCTP socket".into(),
            source: e,
        })?)
    };
    writeln!(ready, "{READY}")
        .and_then(|()| ready.flush())
        .map_err(|e| LabError::Io {
            context: "reporting readiness".into(),
            source: e,
        })?;
    std::thread::scope(|scope| {
        for listener in &listeners {
            scope.spawn(move || {
                for stream in listener.incoming().flatten() {
                    // Accepting is the answer; the probe only needs the handshake. Echoing
                    // until the peer closes lets tests that hold a connection open see
                    // whether it still carries data.
                    std::thread::spawn(move || {
                        let mut stream = stream;
                        let mut buf = [0u8; 512];
                        while let Ok(n) = stream.read(&mut buf)
                            && n > 0
                            && stream.write_all(&buf[..n]).is_ok()
                        {}
                    });
                }
            });
        }
        if let Some(socket) = &sctp_socket {
            scope.spawn(move || crate::sctp::answer(socket, sctp));
        }
        for socket in &sockets {
            scope.spawn(move || {
                let mut buf = [0u8; 2048];
                while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                    // A lost echo is a failed probe, which the prober reports.
                    let _ = socket.send_to(&buf[..n], peer);
                }
            });
        }
    });
    Ok(())
}

fn bind_error(proto: &'static str, port: u16) -> impl Fn(std::io::Error) -> LabError {
    move |e| LabError::Io {
        context: format!("binding {proto} port {port}"),
        source: e,
    }
}
