//! Texts into a [`Batch`]: split into documents, parsed and converted on every core, merged
//! back in input order so the output does not depend on scheduling.

use crate::LoadOptions;
use crate::Severity;
use crate::collect::Batch;
use crate::objects::{Source, load_document};
use crate::yaml::{Piece, parse_piece, split_documents};

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
    groups.push(&tasks[start..]);
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
        let src = Source {
            file: task.name,
            file_index: task.file_index,
            options,
        };
        let text = &task.text[task.piece.start..task.piece.end];
        parse_piece(text, task.piece.first_line, |document| match document {
            Ok(root) => load_document(&root, &src, &mut batch),
            Err(err) => {
                let message = format!("{}; document skipped", err.message);
                src.diagnose(&mut batch, Severity::Error, err.pos, None, None, message);
            }
        });
    }
    batch
}
