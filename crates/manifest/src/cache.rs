//! Loading again after an edit: documents that did not change are not parsed again.
//!
//! A document's yield depends only on its text, its file's name, the line it starts after and
//! the options; moving it down a file or to another input index only moves its positions.
//! So what each document yielded is kept per file, and reused relocated. A file whose text is
//! unchanged is not even split again: its documents are reused in order. The whole-input
//! rules (duplicates, owner folding, implicit namespaces) still run over everything in
//! [`Batch::finish`].

use crate::collect::Batch;
use crate::load::{self, Document};
use crate::{LoadOptions, Loaded, files};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::Arc;

/// Keeps what each document yielded between calls of [`LoadCache::load_paths`].
#[derive(Clone, Default)]
pub struct LoadCache {
    hasher: Hasher,
    /// The options the entries were loaded with.
    options: LoadOptions,
    /// File name → a digest of its text when last loaded, and what its documents yielded.
    files: HashMap<String, FileEntry>,
    last_parsed: usize,
}

/// Texts are kept as digests, not copies: the agent keeps this cache for the cluster's life
/// and a copy of every manifest was a tenth of its memory. The hasher's keys are random per
/// cache, so nobody can write two texts that collide on purpose.
#[derive(Clone, Default)]
struct FileEntry {
    text: Digest,
    /// In file order.
    documents: Vec<DocumentEntry>,
}

#[derive(Clone)]
struct DocumentEntry {
    /// Where the document's text is in its file's text, the digest of that text, and the
    /// line it starts after.
    range: std::ops::Range<usize>,
    text: Digest,
    first_line: usize,
    /// What it yielded, with positions as parsed after `parsed_first_line`; shared by the
    /// entries of a document a file has twice.
    parsed_first_line: usize,
    batch: Arc<Batch>,
}

impl LoadCache {
    /// Same result as [`crate::load_paths`]`(paths, options)`; documents whose text, file name
    /// and options are unchanged since the last call are not parsed again, wherever they
    /// moved in their file or in the list of inputs.
    pub fn load_paths(&mut self, paths: &[PathBuf], options: &LoadOptions) -> Loaded {
        if self.options != *options {
            self.files.clear();
            self.options = options.clone();
        }
        let mut batch = Batch::default();
        let texts = files::read_all(paths, &mut batch);
        let mut previous = std::mem::take(&mut self.files);
        let plans: Vec<Plan<'_>> = texts
            .iter()
            .enumerate()
            .map(|(file_index, text)| {
                plan(&self.hasher, file_index, text, previous.remove(&text.name))
            })
            .collect();
        // Memory follows the input, not its history of edits: what is left is dropped.
        drop(previous);
        let misses: Vec<Document<'_>> = plans
            .iter()
            .flat_map(|plan| &plan.documents)
            .filter(|(_, _, entry)| entry.is_none())
            .map(|(document, _, _)| *document)
            .collect();
        self.last_parsed = misses.len();
        let mut parsed = load::each(&misses, options).into_iter();
        for (plan, text) in plans.into_iter().zip(&texts) {
            let mut documents = Vec::with_capacity(plan.documents.len());
            for (document, text_digest, entry) in plan.documents {
                let start = document.text.as_ptr() as usize - text.text.as_ptr() as usize;
                let range = start..start + document.text.len();
                let entry = match entry {
                    Some(entry) => {
                        let mut yielded = Batch::clone(&entry.batch);
                        yielded.relocate(
                            document.file_index,
                            entry.parsed_first_line,
                            document.first_line,
                        );
                        batch.append(yielded);
                        DocumentEntry {
                            range,
                            first_line: document.first_line,
                            ..entry
                        }
                    }
                    None => {
                        let Some(yielded) = parsed.next() else {
                            continue;
                        };
                        let entry = DocumentEntry {
                            range,
                            text: text_digest,
                            first_line: document.first_line,
                            parsed_first_line: document.first_line,
                            batch: Arc::new(yielded.clone()),
                        };
                        batch.append(yielded);
                        entry
                    }
                };
                documents.push(entry);
            }
            self.files.insert(
                text.name.clone(),
                FileEntry {
                    text: plan.digest,
                    documents,
                },
            );
        }
        batch.finish()
    }

    /// How many documents the last [`LoadCache::load_paths`] parsed (the others were reused).
    pub fn last_parsed_documents(&self) -> usize {
        self.last_parsed
    }
}

/// A file's documents as planned: each with the digest of its text and its entry when the
/// file as last loaded has a document of the same text.
struct Plan<'t> {
    digest: Digest,
    documents: Vec<(Document<'t>, Digest, Option<DocumentEntry>)>,
}

/// The plan of input `text` (at `file_index`) against `old`, the file as last loaded. An
/// unchanged file is neither split nor hashed per document again: its entries are reused in
/// order.
fn plan<'t>(
    hasher: &Hasher,
    file_index: usize,
    text: &'t files::Text,
    old: Option<FileEntry>,
) -> Plan<'t> {
    let old = old.unwrap_or_default();
    let digest = hasher.digest(&text.text);
    let document = |range: std::ops::Range<usize>, first_line| Document {
        file_index,
        name: &text.name,
        text: &text.text[range],
        first_line,
    };
    if old.text == digest {
        let documents = old
            .documents
            .into_iter()
            .map(|d| (document(d.range.clone(), d.first_line), d.text, Some(d)))
            .collect();
        return Plan { digest, documents };
    }
    let known: HashMap<Digest, &DocumentEntry> =
        old.documents.iter().map(|d| (d.text, d)).collect();
    let documents = load::documents(&[(&text.name, &text.text)])
        .into_iter()
        .map(|d| {
            let text_digest = hasher.digest(d.text);
            let entry = known.get(&text_digest).map(|&entry| entry.clone());
            (Document { file_index, ..d }, text_digest, entry)
        })
        .collect();
    Plan { digest, documents }
}

/// 128 bits of a text (two keyed SipHashes) and its length.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Digest(u64, u64, usize);

#[derive(Clone, Default)]
struct Hasher(RandomState, RandomState);

impl Hasher {
    fn digest(&self, text: &str) -> Digest {
        Digest(self.0.hash_one(text), self.1.hash_one(text), text.len())
    }
}

impl fmt::Debug for LoadCache {
    /// Sizes only: the entries are the whole input.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadCache")
            .field("options", &self.options)
            .field("files", &self.files.len())
            .field(
                "documents",
                &self
                    .files
                    .values()
                    .map(|f| f.documents.len())
                    .sum::<usize>(),
            )
            .field("last_parsed", &self.last_parsed)
            .finish()
    }
}
