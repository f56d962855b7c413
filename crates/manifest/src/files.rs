//! Turning paths into texts: files, directories walked in sorted order, and stdin.

use crate::collect::Batch;
use crate::{Diagnostic, Origin, Severity};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

pub(crate) const STDIN_NAME: &str = "<stdin>";
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

pub(crate) struct Text {
    pub name: String,
    pub text: String,
}

/// `(name, text)` of each text, as [`crate::load`] takes them.
pub(crate) fn pairs(texts: &[Text]) -> Vec<(&str, &str)> {
    texts
        .iter()
        .map(|t| (t.name.as_str(), t.text.as_str()))
        .collect()
}

/// Reads every input in order, each file once. Problems (missing files, unreadable or non-UTF-8 ones) become
/// diagnostics; the other inputs are still read.
pub(crate) fn read_all(paths: &[PathBuf], batch: &mut Batch) -> Vec<Text> {
    let mut texts = Vec::new();
    let mut visited = HashSet::new();
    for path in paths {
        if path.as_os_str() == "-" {
            match read_bounded(std::io::stdin(), 0) {
                Ok(bytes) => push_text(STDIN_NAME.to_string(), bytes, &mut texts, batch),
                Err(message) => fail(batch, texts.len(), STDIN_NAME, message),
            }
        } else if path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files, &mut visited, batch, texts.len());
            for file in files {
                read_file(&file, &mut texts, batch);
            }
        } else if first_visit(path, &mut visited) {
            read_file(path, &mut texts, batch);
        }
    }
    texts
}

fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
    batch: &mut Batch,
    index: usize,
) {
    let real_dir = dir.canonicalize().ok();
    // Symlinks may form loops; each real directory is read once.
    if let Some(real) = &real_dir
        && !visited.insert(real.clone())
    {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            return fail(
                batch,
                index,
                &dir.display().to_string(),
                format!("cannot read directory: {err}"),
            );
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        match entry {
            // Not a symlink: the type the directory lists is the entry's own, and its real path
            // is its name in the real directory. Saves two system calls per file.
            Ok(entry) => match (entry.file_type(), &real_dir) {
                (Ok(kind), Some(real)) if !kind.is_symlink() => {
                    let real = real.join(entry.file_name());
                    paths.push((entry.path(), Some((kind.is_dir(), real))));
                }
                _ => paths.push((entry.path(), None)),
            },
            Err(err) => fail(
                batch,
                index,
                &dir.display().to_string(),
                format!("cannot read directory: {err}"),
            ),
        }
    }
    paths.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (path, known) in paths {
        let is_dir = known.as_ref().map_or_else(|| path.is_dir(), |k| k.0);
        if is_dir {
            walk(&path, out, visited, batch, index);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            let first = match known {
                Some((_, real)) => visited.insert(real),
                None => first_visit(&path, visited),
            };
            if first {
                out.push(path);
            }
        }
    }
}

/// False for a file or directory already read under another name (or the same one), so
/// overlapping arguments do not load objects twice.
fn first_visit(path: &Path, visited: &mut HashSet<PathBuf>) -> bool {
    match path.canonicalize() {
        Ok(real) => visited.insert(real),
        // Reading it will report the problem.
        Err(_) => true,
    }
}

/// A file larger than this is refused: parsing takes many times its size in memory, and no
/// cluster's manifests need one this large (100k pods as one list are about 40 MiB).
pub(crate) const MAX_FILE_BYTES: u64 = 256 << 20;

fn read_file(path: &Path, texts: &mut Vec<Text>, batch: &mut Batch) {
    let name = path.display().to_string();
    match read_regular_file(path) {
        Ok(bytes) => push_text(name, bytes, texts, batch),
        Err(message) => fail(batch, texts.len(), &name, message),
    }
}

/// The bytes of a regular file (through symlinks), at most [`MAX_FILE_BYTES`]. Anything else
/// is refused before it is opened: a FIFO would block every command until a writer came, a
/// device (`/dev/zero`) would be read until memory ran out.
fn read_regular_file(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|err| format!("cannot read: {err}"))?;
    if !meta.is_file() {
        return Err(format!(
            "not a regular file ({}); skipped",
            file_kind(&meta.file_type())
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(|err| format!("cannot read: {err}"))?;
    // The file may still grow after the check.
    read_bounded(file, meta.len())
}

/// All of `input`, at most [`MAX_FILE_BYTES`] (`expected`: its size, when known).
fn read_bounded(input: impl Read, expected: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or_default());
    input
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read: {err}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

fn too_large() -> String {
    format!("larger than {} MiB; skipped", MAX_FILE_BYTES >> 20)
}

fn file_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

fn push_text(name: String, bytes: Vec<u8>, texts: &mut Vec<Text>, batch: &mut Batch) {
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            texts.push(Text { name, text });
        }
        Err(err) => {
            let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
            // The prefix is valid UTF-8 by construction.
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let line = valid.matches('\n').count() + 1;
            let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let diagnostic = Diagnostic {
                severity: Severity::Error,
                origin: Origin {
                    file: name,
                    line,
                    column,
                },
                object: None,
                field: None,
                message: "not UTF-8 text (a binary file?); file skipped".to_string(),
            };
            batch.diagnose(texts.len(), diagnostic);
        }
    }
}

fn fail(batch: &mut Batch, index: usize, name: &str, message: String) {
    let diagnostic = Diagnostic {
        severity: Severity::Error,
        origin: Origin {
            file: name.to_string(),
            line: 1,
            column: 1,
        },
        object: None,
        field: None,
        message,
    };
    batch.diagnose(index, diagnostic);
}
