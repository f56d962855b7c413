//! A relay that makes one address of the machine's own namespace (the API server on loopback)
//! reachable inside a node's namespace at 127.0.0.1 and the same port, without a link or a
//! route: the lab stays sealed, and only this one TCP port crosses, in user space.

use crate::LabError;
use crate::net::in_netns;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Relays until dropped (or, as a process, until signalled).
pub struct Relay {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listens on 127.0.0.1:`target.port()` inside `netns` and forwards each connection to
    /// `target` from the caller's namespace.
    pub fn start(netns: &str, target: SocketAddr) -> Result<Self, LabError> {
        let listen: SocketAddr = ([127, 0, 0, 1], target.port()).into();
        // A socket belongs to the namespace it was made in, whichever thread uses it later.
        let listener = in_netns(netns, || {
            TcpListener::bind(listen).map_err(|e| LabError::Io {
                context: format!("listening on {listen} in {netns}"),
                source: e,
            })
        })?;
        listener.set_nonblocking(true).map_err(|e| LabError::Io {
            context: "setting the relay's listener non-blocking".into(),
            source: e,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || accept(&listener, target, &flag));
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Runs until `stop` is set (the `lab relay` process's signal flag).
    pub fn wait(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.halt();
    }
}

fn accept(listener: &TcpListener, target: SocketAddr, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((inside, _)) => {
                let _ = inside.set_nonblocking(false);
                match TcpStream::connect(target) {
                    Ok(outside) => pipe(inside, outside),
                    // The API server is away: the client sees a reset, as it would directly.
                    Err(_) => drop(inside),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Copies both ways on two threads; each side's end closes the other's write half.
fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    std::thread::spawn(move || copy(a, b2));
    std::thread::spawn(move || copy(b, a2));
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
