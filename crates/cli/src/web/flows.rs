//! `GET /api/flows`: the agents' flow records as server-sent events, filtered as `observe`
//! filters them: the last ones already written, then each new one as it is appended.

use super::State;
use super::api::{ApiError, given, port};
use axum::extract::{Query, State as Shared};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use palisade_agent::{FlowFile, FlowRecord, ObserveFilter};
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Records already written that a new page is shown first.
const BACKLOG: usize = 500;
/// How often the files are looked at for more.
const POLL: Duration = Duration::from_millis(200);

#[derive(Deserialize)]
pub(super) struct FlowQuery {
    namespace: Option<String>,
    pod: Option<String>,
    verdict: Option<String>,
    port: Option<String>,
}

pub(super) async fn stream(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<FlowQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if state.flows.is_empty() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "no flow files: start palisade serve with --flows FILE".to_string(),
        ));
    }
    let text = |value: &Option<String>| given(value).map(str::to_string);
    let filter = ObserveFilter {
        namespace: text(&query.namespace),
        pod: text(&query.pod),
        verdict: text(&query.verdict),
        port: given(&query.port).map(port).transpose()?,
    };
    let (sender, receiver) = mpsc::channel(BACKLOG);
    let files = state.flows.clone();
    // Reading files blocks; a thread per page follows them until the page goes away.
    std::thread::spawn(move || follow(files, &filter, &sender));
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        let line = receiver.recv().await?;
        Some((Ok(Event::default().data(line)), receiver))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn follow(files: Vec<PathBuf>, filter: &ObserveFilter, sender: &mpsc::Sender<String>) {
    let mut files: Vec<FlowFile> = files.into_iter().map(FlowFile::new).collect();
    let mut backlog = VecDeque::new();
    for file in &mut files {
        file.read_new(|record| match record {
            Ok(record) if filter.matches(&record) => {
                if backlog.len() == BACKLOG {
                    backlog.pop_front();
                }
                backlog.push_back(record);
            }
            // Lines that are not records are skipped, as `observe` skips them.
            _ => {}
        });
    }
    for record in backlog {
        if !send(sender, &record) {
            return;
        }
    }
    while !sender.is_closed() {
        let mut gone = false;
        let mut read_any = false;
        for file in &mut files {
            read_any |= file.read_new(|record| {
                if let Ok(record) = record
                    && !gone
                    && filter.matches(&record)
                {
                    gone = !send(sender, &record);
                }
            });
        }
        if gone {
            return;
        }
        if !read_any {
            std::thread::sleep(POLL);
        }
    }
}

/// False when the page has gone.
fn send(sender: &mpsc::Sender<String>, record: &FlowRecord) -> bool {
    match serde_json::to_string(record) {
        Ok(line) => sender.blocking_send(line).is_ok(),
        Err(_) => true,
    }
}
