//! Texts into a [`Batch`]: split into documents, parsed and converted on every core, merged
//! back in input order so the output does not depend on scheduling.

use crate::LoadOptions;
use crate::collect::Batch;
use crate::objects::{self, Source};
use crate::yaml::{Node, RootSoFar, Sink, YamlError, parse_piece, split_documents};

/// Below this much text a second thread costs more than it saves.
const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// One document of one input text.
#[derive(Clone, Copy)]
pub(crate) struct Document<'t> {
    pub file_index: usize,
    pub name: &'t str,
    /// The document's own text (a [`crate::yaml::Piece`] of the file).
    pub text: &'t str,
    /// How many lines of the file precede it.
    pub first_line: usize,
}

/// Every document of `(name, text)` pairs, in order.
pub(crate) fn documents<'t>(texts: &[(&'t str, &'t str)]) -> Vec<Document<'t>> {
    texts
        .iter()
        .enumerate()
        .flat_map(|(file_index, &(name, text))| {
            split_documents(text)
                .into_iter()
                .map(move |piece| Document {
                    file_index,
                    name,
                    text: &text[piece.start..piece.end],
                    first_line: piece.first_line,
                })
        })
        .collect()
}

/// Loads `(name, text)` pairs; `batch` holds what came before (e.g. file errors).
pub(crate) fn texts(texts: &[(&str, &str)], options: &LoadOptions, mut batch: Batch) -> Batch {
    for result in in_parallel(&documents(texts), options, run) {
        batch.append(result);
    }
    batch
}

/// One batch per document, in order, for callers that keep them apart (the cache).
pub(crate) fn each(documents: &[Document<'_>], options: &LoadOptions) -> Vec<Batch> {
    let per_group = |group: &[Document<'_>], options: &LoadOptions| -> Vec<Batch> {
        group
            .iter()
            .map(|document| run(std::slice::from_ref(document), options))
            .collect()
    };
    in_parallel(documents, options, per_group)
        .into_iter()
        .flatten()
        .collect()
}

/// `work` over contiguous runs of `documents`, on every core when there is enough text;
/// results in input order.
fn in_parallel<T: Send>(
    documents: &[Document<'_>],
    options: &LoadOptions,
    work: impl Fn(&[Document<'_>], &LoadOptions) -> T + Sync,
) -> Vec<T> {
    let total: usize = documents.iter().map(|d| d.text.len()).sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || total < PARALLEL_MIN_BYTES {
        return vec![work(documents, options)];
    }
    // Contiguous runs of about equal size, so that their results follow input order.
    let share = total.div_ceil(threads);
    let mut groups: Vec<&[Document<'_>]> = Vec::with_capacity(threads);
    let (mut start, mut size) = (0, 0);
    for (i, document) in documents.iter().enumerate() {
        size += document.text.len();
        if size >= share {
            groups.push(&documents[start..=i]);
            (start, size) = (i + 1, 0);
        }
    }
    if start < documents.len() {
        groups.push(&documents[start..]);
    }
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|group| scope.spawn(move || work(group, options)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn run(documents: &[Document<'_>], options: &LoadOptions) -> Batch {
    let mut batch = Batch::default();
    for document in documents {
        let mut loader = Loader {
            src: Source {
                file: document.name,
                file_index: document.file_index,
                options,
            },
            batch: &mut batch,
            streamed: Batch::default(),
        };
        parse_piece(document.text, document.first_line, &mut loader);
    }
    batch
}

/// Loads documents as they are parsed. List items are loaded as soon as they are complete,
/// into `streamed`, which joins the results only once the document is known to be a list.
struct Loader<'s> {
    src: Source<'s>,
    batch: &'s mut Batch,
    streamed: Batch,
}

impl<'a> Sink<'a> for Loader<'_> {
    fn item(&mut self, item: Node<'a>, root: RootSoFar<'_>) -> Option<Node<'a>> {
        let implied = match root.kind {
            Some(kind) => objects::list_items_kind(kind, root.api_version)?,
            // The kind may come last, as kubectl prints it: go ahead with self-describing items.
            None if objects::names_its_kind(&item) => None,
            None => return Some(item),
        };
        objects::load_item(&item, implied, &self.src, &mut self.streamed);
        None
    }

    fn document(&mut self, document: Result<Node<'a>, YamlError>) {
        let streamed = std::mem::take(&mut self.streamed);
        match document {
            Ok(root) => {
                let kind = root.get("kind").and_then(Node::as_str);
                let api_version = root.get("apiVersion").and_then(Node::as_str);
                if kind.is_some_and(|k| objects::list_items_kind(k, api_version).is_some()) {
                    self.batch.append(streamed);
                }
                objects::load_document(&root, &self.src, self.batch);
            }
            Err(err) => {
                let message = format!("{}; document skipped", err.message);
                self.src.error(self.batch, err.pos, None, &message);
            }
        }
    }
}
