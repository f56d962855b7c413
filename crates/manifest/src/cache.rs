//! Loading again after an edit: documents that did not change are not parsed again.
//!
//! A document's yield depends only on its text, its file's name, the line it starts after and
//! the options; moving it down a file or to another input index only moves its positions.
//! So what each document yielded is kept by (file name, text), and reused relocated. The
//! whole-input rules (duplicates, owner folding, implicit namespaces) still run over
//! everything in [`Batch::finish`].

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
    /// File name → document text → what it yielded.
    files: HashMap<String, HashMap<String, Entry>>,
    last_parsed: usize,
}

#[derive(Clone)]
struct Entry {
    batch: Batch,
    /// Where the document started when it was parsed.
    first_line: usize,
    /// Whether the current call used it; the others are dropped at the end.
    used: bool,
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
        let pairs = files::pairs(&texts);
        let documents = load::documents(&pairs);
        // What each document yielded, where it is now; `None`: not seen, to be parsed.
        let reused: Vec<Option<Batch>> = documents.iter().map(|d| self.reuse(d)).collect();
        let misses: Vec<Document<'_>> = documents
            .iter()
            .zip(&reused)
            .filter_map(|(document, reused)| reused.is_none().then_some(*document))
            .collect();
        self.last_parsed = misses.len();
        let mut parsed = Vec::with_capacity(misses.len());
        for (document, yielded) in misses.iter().zip(load::each(&misses, options)) {
            let entry = Entry {
                batch: yielded.clone(),
                first_line: document.first_line,
                used: true,
            };
            let file = self.files.entry(document.name.to_string()).or_default();
            file.insert(document.text.to_string(), entry);
            parsed.push(yielded);
        }
        let mut parsed = parsed.into_iter();
        for yielded in reused
            .into_iter()
            .filter_map(|r| r.or_else(|| parsed.next()))
        {
            batch.append(yielded);
        }
        // Memory follows the input, not its history of edits.
        self.files.retain(|_, documents| {
            documents.retain(|_, entry| std::mem::take(&mut entry.used));
            !documents.is_empty()
        });
        batch.finish()
    }

    /// How many documents the last [`LoadCache::load_paths`] parsed (the others were reused).
    pub fn last_parsed_documents(&self) -> usize {
        self.last_parsed
    }

    /// What `document` yielded when last seen, moved to where it is now; marks it used.
    fn reuse(&mut self, document: &Document<'_>) -> Option<Batch> {
        let entry = self.files.get_mut(document.name)?.get_mut(document.text)?;
        entry.used = true;
        let mut yielded = entry.batch.clone();
        yielded.relocate(document.file_index, entry.first_line, document.first_line);
        Some(yielded)
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
                &self.files.values().map(HashMap::len).sum::<usize>(),
            )
            .field("last_parsed", &self.last_parsed)
            .finish()
    }
}
