//! The few system operations the lab needs: `ip` (iproute2) for namespaces, links and routes,
//! `setns` for working inside a namespace from one thread, and signals for the lab's processes.

use crate::LabError;
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where `ip netns add` puts its namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Runs `ip ARGS…` and returns its stdout.
pub fn ip(args: &[&str]) -> Result<String, LabError> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Tool {
            command: format!("ip {}", args.join(" ")),
            message: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(LabError::Tool {
            command: format!("ip {}", args.join(" ")),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs many `ip` commands inside `netns` with one process (`ip -n NETNS -batch -`).
pub fn ip_batch(netns: &str, commands: &[String]) -> Result<(), LabError> {
    let describe = || format!("ip -n {netns} -batch -");
    let mut child = Command::new("ip")
        .args(["-n", netns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::Tool {
            command: describe(),
            message: e.to_string(),
        })?;
    let script = commands.join("\n") + "\n";
    if let Some(mut stdin) = child.stdin.take() {
        // A failed write shows up as the command's own error below.
        let _ = stdin.write_all(script.as_bytes());
    }
    let output = child.wait_with_output().map_err(|e| LabError::Tool {
        command: describe(),
        message: e.to_string(),
    })?;
    if !output.status.success() {
        return Err(LabError::Tool {
            command: describe(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Names of all network namespaces `ip netns` knows. Read from the directory rather than with
/// `ip netns list`, which trips over namespaces other processes delete meanwhile.
pub fn list_netns() -> Result<Vec<String>, LabError> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(LabError::Io {
                context: format!("listing {NETNS_DIR}"),
                source: e,
            });
        }
    };
    Ok(entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect())
}

/// Pids of processes whose network namespace is `netns`.
pub fn netns_pids(netns: &str) -> Result<Vec<i32>, LabError> {
    Ok(ip(&["netns", "pids", netns])?
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect())
}

/// Moves the calling thread (only it) into `netns`; sockets it opens afterwards live there.
pub fn enter_netns(netns: &str) -> Result<(), LabError> {
    let path = Path::new(NETNS_DIR).join(netns);
    let file = File::open(&path).map_err(|e| LabError::Io {
        context: format!("opening {}", path.display()),
        source: e,
    })?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| LabError::Tool {
        command: format!("setns {}", path.display()),
        message: e.to_string(),
    })
}

/// Runs `f` on a thread inside `netns` (the caller's namespace never changes).
pub fn in_netns<T: Send>(
    netns: &str,
    f: impl FnOnce() -> Result<T, LabError> + Send,
) -> Result<T, LabError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter_netns(netns)?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(LabError::Invalid(format!("worker in {netns} panicked"))))
    })
}

/// Writes a sysctl of the calling thread's network namespace (`/proc/sys/net` is per thread's
/// namespace).
pub fn write_sysctl(key: &str, value: &str) -> Result<(), LabError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| LabError::Io {
        context: format!("writing {path}"),
        source: e,
    })
}

/// Stops processes: SIGTERM, then SIGKILL for those still running after `grace`. A process
/// that is gone or a zombie counts as stopped.
pub fn stop_processes(pids: &[i32], grace: Duration) {
    for &pid in pids {
        // Already gone is fine: that is the goal.
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    let mut remaining: Vec<i32> = pids.to_vec();
    while !remaining.is_empty() {
        remaining.retain(|&pid| running(pid));
        if Instant::now() >= deadline {
            for &pid in &remaining {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Alive and not a zombie.
pub fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name, which may contain spaces.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The command line of a process, arguments separated by spaces.
pub fn cmdline(pid: i32) -> Option<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
}
