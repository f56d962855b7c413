//! Where flow records go: standard output (a DaemonSet's log, rotated by the kubelet), or a
//! file the agent rotates by size, so that no burst of verdicts fills the node's disk.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub(crate) struct FlowLog {
    out: BufWriter<Box<dyn Write + Send>>,
    /// The file and its size limit; `None` for standard output.
    file: Option<(PathBuf, u64)>,
    /// Bytes in the current file.
    written: u64,
}

impl FlowLog {
    /// Opens `path` for appending (`-`: standard output). A file reaching `max_bytes` is
    /// renamed to `path.1` (replacing the one before) and a new one is started: at most about
    /// twice `max_bytes` on disk.
    pub(crate) fn open(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        if path.as_os_str() == "-" {
            return Ok(Self {
                out: BufWriter::new(Box::new(std::io::stdout())),
                file: None,
                written: 0,
            });
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            out: BufWriter::new(Box::new(file)),
            file: Some((path.to_path_buf(), max_bytes)),
            written,
        })
    }

    /// Writes one record; rotates once the file is full, between records.
    pub(crate) fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        writeln!(self.out, "{line}")?;
        self.written += line.len() as u64 + 1;
        if let Some((path, max_bytes)) = &self.file
            && self.written >= *max_bytes
        {
            self.out.flush()?;
            let mut rotated = path.clone().into_os_string();
            rotated.push(".1");
            std::fs::rename(path, rotated)?;
            self.out = BufWriter::new(Box::new(File::create(path)?));
            self.written = 0;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_is_rotated_between_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.jsonl");
        std::fs::write(&path, "old\n").unwrap();
        let mut log = FlowLog::open(&path, 20).unwrap();
        for line in ["record-1", "record-2", "record-3"] {
            log.write_line(line).unwrap();
        }
        log.flush().unwrap();
        let rotated = std::fs::read_to_string(dir.path().join("flows.jsonl.1")).unwrap();
        assert_eq!(rotated, "old\nrecord-1\nrecord-2\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "record-3\n");
    }
}
