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
use std::path::PathBuf;

/// Keeps what each document yielded between calls of [`LoadCache::load_paths`].
#[derive(Clone, Default)]
pub struct LoadCache {
    /// The options the entries were loaded with.
    options: LoadOptions,
    /// File name → its text when last loaded, and what its documents yielded.
    files: HashMap<String, FileEntry>,
    last_parsed: usize,
}

#[derive(Clone)]
struct FileEntry {
    text: String,
    /// In file order.
    documents: Vec<DocumentEntry>,
}

#[derive(Clone)]
struct DocumentEntry {
    /// Where the document's text is in its file's text, and the line it starts after.
    range: std::ops::Range<usize>,
    first_line: usize,
    /// What it yielded, with positions as parsed after `parsed_first_line`.
    parsed_first_line: usize,
    batch: Batch,
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
        // Per input file: its documents, each with its entry when it is known.
        let mut plans: Vec<Vec<(Document<'_>, Option<DocumentEntry>)>> =
            Vec::with_capacity(texts.len());
        for (file_index, text) in texts.iter().enumerate() {
            let (old_text, old_documents) = previous
                .remove(&text.name)
                .map(|old| (old.text, old.documents))
                .unwrap_or_default();
            let documents: Vec<Document<'_>> = if old_text == text.text {
                // As split before: no need to split again.
                old_documents
                    .iter()
                    .map(|d| Document {
                        file_index,
                        name: &text.name,
                        text: &text.text[d.range.clone()],
                        first_line: d.first_line,
                    })
                    .collect()
            } else {
                load::documents(&[(&text.name, &text.text)])
                    .into_iter()
                    .map(|d| Document { file_index, ..d })
                    .collect()
            };
            let index: HashMap<&str, usize> = old_documents
                .iter()
                .enumerate()
                .map(|(i, d)| (&old_text[d.range.clone()], i))
                .collect();
            let mut old_documents: Vec<Option<DocumentEntry>> =
                old_documents.into_iter().map(Some).collect();
            // Entries move to the new state; a document the file now has twice is copied.
            let mut plan: Vec<(Document<'_>, Option<DocumentEntry>)> =
                Vec::with_capacity(documents.len());
            let mut moved_to: HashMap<usize, usize> = HashMap::new();
            for document in documents {
                let entry = index
                    .get(document.text)
                    .and_then(|&i| match old_documents[i].take() {
                        Some(entry) => {
                            moved_to.insert(i, plan.len());
                            Some(entry)
                        }
                        None => plan[moved_to[&i]].1.clone(),
                    });
                plan.push((document, entry));
            }
            plans.push(plan);
        }
        // Memory follows the input, not its history of edits: what is left is dropped.
        drop(previous);
        let misses: Vec<Document<'_>> = plans
            .iter()
            .flatten()
            .filter(|(_, entry)| entry.is_none())
            .map(|(document, _)| *document)
            .collect();
        self.last_parsed = misses.len();
        let mut parsed = load::each(&misses, options).into_iter();
        for (plan, text) in plans.into_iter().zip(&texts) {
            let mut documents = Vec::with_capacity(plan.len());
            for (document, entry) in plan {
                let start = document.text.as_ptr() as usize - text.text.as_ptr() as usize;
                let range = start..start + document.text.len();
                let entry = match entry {
                    Some(entry) => {
                        let mut yielded = entry.batch.clone();
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
                            first_line: document.first_line,
                            parsed_first_line: document.first_line,
                            batch: yielded.clone(),
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
                    text: text.text.clone(),
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
