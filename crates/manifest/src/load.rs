//! Texts into a [`Batch`]: split into documents, parsed and converted on every core, merged
//! back in input order so the output does not depend on scheduling.

use crate::LoadOptions;
use crate::collect::Batch;
use crate::objects::{self, Source};
use crate::yaml::{Node, Piece, RootSoFar, Sink, YamlError, parse_piece, split_documents};

/// Below this much text a second thread costs more than it saves.
const PARALLEL_MIN_BYTES: usize = 1 << 20;

struct Task<'t> {
    file_index: usize,
    name: &'t str,
    text: &'t str,
    piece: Piece,
}

/// Loads `(name, text)` pairs; `batch` holds what came before (e.g. file errors).
pub(crate) fn texts(texts: &[(&str, &str)], options: &LoadOptions, mut batch: Batch) -> Batch {
    let tasks: Vec<Task<'_>> = texts
        .iter()
        .enumerate()
        .flat_map(|(file_index, &(name, text))| {
            split_documents(text).into_iter().map(move |piece| Task {
                file_index,
                name,
                text,
                piece,
            })
        })
        .collect();
    let total: usize = texts.iter().map(|(_, t)| t.len()).sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || total < PARALLEL_MIN_BYTES {
        batch.append(run(&tasks, options));
        return batch;
    }
    // Contiguous runs of about equal size, so appending them keeps input order.
    let share = total.div_ceil(threads);
    let mut groups: Vec<&[Task<'_>]> = Vec::with_capacity(threads);
    let (mut start, mut size) = (0, 0);
    for (i, task) in tasks.iter().enumerate() {
        size += task.piece.end - task.piece.start;
        if size >= share {
            groups.push(&tasks[start..=i]);
            (start, size) = (i + 1, 0);
        }
    }
    if start < tasks.len() {
        groups.push(&tasks[start..]);
    }
    let results: Vec<Batch> = std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|group| scope.spawn(move || run(group, options)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    for result in results {
        batch.append(result);
    }
    batch
}

fn run(tasks: &[Task<'_>], options: &LoadOptions) -> Batch {
    let mut batch = Batch::default();
    for task in tasks {
        let mut loader = Loader {
            src: Source {
                file: task.name,
                file_index: task.file_index,
                options,
            },
            batch: &mut batch,
            streamed: Batch::default(),
        };
        let text = &task.text[task.piece.start..task.piece.end];
        parse_piece(text, task.piece.first_line, &mut loader);
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
