//! `palisade observe`: reads flow-record files (JSON lines), filters and prints them; with
//! `--follow` it keeps reading what the agents append.

use crate::flows::{FlowEnd, FlowRecord};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    Table,
}

/// Which flow records to show; `None` matches every record.
#[derive(Clone, Debug, Default)]
pub struct ObserveFilter {
    /// Flows from or to this namespace.
    pub namespace: Option<String>,
    /// Flows from or to this pod (`name` or `namespace/name`).
    pub pod: Option<String>,
    /// This verdict, in any case: FORWARDED, DROPPED or AUDIT.
    pub verdict: Option<String>,
    /// Flows to this destination port.
    pub port: Option<u16>,
}

impl ObserveFilter {
    pub fn matches(&self, flow: &FlowRecord) -> bool {
        let ends = [&flow.src, &flow.dst];
        let pod_is = |end: &FlowEnd, wanted: &str| match wanted.split_once('/') {
            Some((ns, pod)) => {
                end.namespace.as_deref() == Some(ns) && end.pod.as_deref() == Some(pod)
            }
            None => end.pod.as_deref() == Some(wanted),
        };
        self.namespace
            .as_ref()
            .is_none_or(|ns| ends.iter().any(|e| e.namespace.as_ref() == Some(ns)))
            && self
                .pod
                .as_ref()
                .is_none_or(|pod| ends.iter().any(|e| pod_is(e, pod)))
            && self
                .verdict
                .as_ref()
                .is_none_or(|v| v.eq_ignore_ascii_case(flow.verdict.as_str()))
            && self.port.is_none_or(|p| flow.dst.port == p)
    }
}

/// Prints the records of `files` that `filter` matches to `out`; with `follow`, keeps reading
/// what is appended.
pub fn run_observe(
    files: &[PathBuf],
    filter: &ObserveFilter,
    follow: bool,
    format: OutputFormat,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if format == OutputFormat::Table {
        writeln!(
            out,
            "{:<30} {:<34} {:<34} {:<9} {:<8} {:<9} DECIDED BY",
            "TIME", "SOURCE", "DESTINATION", "PROTOCOL", "SIDE", "VERDICT"
        )?;
    }
    let mut followed = Vec::new();
    for path in files {
        // Named files must exist; FlowFile alone would wait for them to appear.
        File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        followed.push(FlowFile::new(path.clone()));
    }
    loop {
        let mut read_any = false;
        for file in &mut followed {
            let mut printed: anyhow::Result<()> = Ok(());
            read_any |= file.read_new(|line| match line {
                Ok(flow) if printed.is_ok() && filter.matches(&flow) => {
                    printed = print(&flow, format, out);
                }
                Ok(_) => {}
                Err(e) => eprintln!(
                    "{}: skipping a line that is not a flow record: {e}",
                    e.path.display()
                ),
            });
            printed?;
        }
        if !follow {
            return Ok(());
        }
        if !read_any {
            out.flush()?;
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

/// A line of a flow file that is not a record (a torn write, another kind of file).
#[derive(Debug)]
pub struct NotARecord {
    pub path: PathBuf,
    pub error: serde_json::Error,
}

impl std::fmt::Display for NotARecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// One flow file read as it grows: complete lines only (the rest is kept for the next read),
/// and from its start again when it was rotated (the agent renames a full file and starts a
/// new one at the same path). A file that does not exist yet is read once it appears.
pub struct FlowFile {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    /// A line whose end has not been written yet.
    pending: String,
    offset: u64,
    /// The file being read: another one at the path means the old one was rotated away.
    inode: Option<u64>,
}

impl FlowFile {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            reader: None,
            pending: String::new(),
            offset: 0,
            inode: None,
        }
    }

    /// Hands each complete new line to `found`, parsed; true when anything was read.
    pub fn read_new(&mut self, mut found: impl FnMut(Result<FlowRecord, NotARecord>)) -> bool {
        let rotated = std::fs::metadata(&self.path)
            .is_ok_and(|m| Some(m.ino()) != self.inode || m.len() < self.offset);
        if rotated || self.reader.is_none() {
            let file = File::open(&self.path).ok();
            self.inode = file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map(|m| m.ino());
            self.reader = file.map(BufReader::new);
            self.pending.clear();
            self.offset = 0;
        }
        let Some(reader) = &mut self.reader else {
            return false;
        };
        let mut read_any = false;
        loop {
            match reader.read_line(&mut self.pending) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.offset += n as u64,
            }
            read_any = true;
            if !self.pending.ends_with('\n') {
                break;
            }
            if !self.pending.trim().is_empty() {
                found(
                    serde_json::from_str(&self.pending).map_err(|error| NotARecord {
                        path: self.path.clone(),
                        error,
                    }),
                );
            }
            self.pending.clear();
        }
        read_any
    }
}

fn print(flow: &FlowRecord, format: OutputFormat, out: &mut dyn Write) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string(flow)?)?,
        OutputFormat::Table => {
            let end = |e: &FlowEnd| match (&e.namespace, &e.pod) {
                (Some(ns), Some(pod)) => format!("{ns}/{pod}:{}", e.port),
                _ => format!("{}", std::net::SocketAddr::new(e.ip, e.port)),
            };
            writeln!(
                out,
                "{:<30} {:<34} {:<34} {:<9} {:<8} {:<9} {}",
                flow.time,
                end(&flow.src),
                end(&flow.dst),
                flow.protocol,
                crate::flows::direction_label(flow.direction),
                flow.verdict.as_str(),
                flow.decided_by
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::Verdict;

    fn flow(src_ns: &str, dst_pod: &str, port: u16, verdict: Verdict) -> FlowRecord {
        FlowRecord {
            time: "2026-01-01T00:00:00Z".into(),
            node: "node0".into(),
            src: FlowEnd {
                namespace: Some(src_ns.into()),
                pod: Some("client".into()),
                ip: "10.2.0.1".parse().unwrap(),
                port: 40000,
            },
            dst: FlowEnd {
                namespace: Some("shop".into()),
                pod: Some(dst_pod.into()),
                ip: "10.1.0.1".parse().unwrap(),
                port,
            },
            protocol: crate::flows::FlowProtocol::Ported(palisade_engine::Protocol::Tcp),
            direction: palisade_engine::Direction::Ingress,
            verdict,
            policies: vec!["shop/web".into()],
            more_policies: 0,
            decided_by: "no rule of shop/web admits it".into(),
            folded: 0,
        }
    }

    #[test]
    fn filters_select_by_namespace_pod_verdict_and_port() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.jsonl");
        let flows = [
            flow("ops", "web", 80, Verdict::Dropped),
            flow("ops", "db", 5432, Verdict::Forwarded),
            flow("dev", "web", 81, Verdict::Audit),
        ];
        let mut text: String = flows
            .iter()
            .map(|f| serde_json::to_string(f).unwrap() + "\n")
            .collect();
        text.push_str("not json\n");
        std::fs::write(&path, text).unwrap();
        let files = [path];
        let filter = |namespace: Option<&str>, pod: Option<&str>, verdict: Option<&str>, port| {
            ObserveFilter {
                namespace: namespace.map(String::from),
                pod: pod.map(String::from),
                verdict: verdict.map(String::from),
                port,
            }
        };
        let cases = [
            (filter(None, None, None, None), 3),
            (filter(Some("dev"), None, None, None), 1),
            (filter(None, Some("shop/web"), None, None), 2),
            (filter(None, None, Some("dropped"), None), 1),
            (filter(None, None, None, Some(5432)), 1),
            (filter(Some("ops"), Some("web"), Some("AUDIT"), None), 0),
        ];
        for (filter, expected) in cases {
            let mut out = Vec::new();
            run_observe(&files, &filter, false, OutputFormat::Json, &mut out).unwrap();
            let lines: Vec<FlowRecord> = String::from_utf8(out)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len(), expected, "{filter:?}");
            assert!(lines.iter().all(|f| filter.matches(f)));
        }
        let dropped = filter(None, None, Some("DROPPED"), None);
        let mut out = Vec::new();
        run_observe(&files, &dropped, false, OutputFormat::Table, &mut out).unwrap();
        let table = String::from_utf8(out).unwrap();
        assert_eq!(table.lines().count(), 2, "{table}");
        assert!(
            table.contains("ops/client:40000")
                && table.contains("shop/web:80")
                && table.contains("DROPPED"),
            "{table}"
        );
    }

    /// Partial lines wait for their end; a rotated file is read from its start.
    #[test]
    fn a_flow_file_is_followed_across_torn_lines_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.jsonl");
        let line = |f: &FlowRecord| serde_json::to_string(f).unwrap();
        let (a, b, c) = (
            flow("ops", "web", 80, Verdict::Dropped),
            flow("ops", "db", 5432, Verdict::Forwarded),
            flow("dev", "web", 81, Verdict::Audit),
        );
        let mut file = FlowFile::new(path.clone());
        let read = |file: &mut FlowFile| {
            let mut got = Vec::new();
            file.read_new(|r| got.push(r.map_err(|e| e.to_string())));
            got
        };
        assert!(read(&mut file).is_empty(), "no file yet");
        let second = line(&b);
        let (head, tail) = second.split_at(10);
        std::fs::write(&path, format!("{}\n{head}", line(&a))).unwrap();
        assert_eq!(read(&mut file), [Ok(a.clone())]);
        let mut appended = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(appended, "{tail}").unwrap();
        assert_eq!(read(&mut file), [Ok(b.clone())]);
        std::fs::rename(&path, dir.path().join("flows.jsonl.1")).unwrap();
        std::fs::write(&path, format!("{}\nnot json\n", line(&c))).unwrap();
        let got = read(&mut file);
        assert_eq!(got[0], Ok(c));
        assert!(got[1].is_err());
    }
}
