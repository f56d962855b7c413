//! `GET /api/flows`: the agents' flow records as server-sent events, filtered as `observe`
//! filters them: the last ones already written, then each new one as it is appended.

use super::State;
use super::api::ApiError;
use axum::extract::{Query, State as Shared};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use palisade_agent::{FlowRecord, ObserveArgs, OutputFormat};
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
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
    let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let port = match given(query.port) {
        Some(text) => Some(text.parse::<u16>().map_err(|_| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("port: expected 1-65535, got {text:?}"),
            )
        })?),
        None => None,
    };
    let filter = ObserveArgs {
        files: Vec::new(),
        follow: true,
        namespace: given(query.namespace),
        pod: given(query.pod),
        verdict: given(query.verdict),
        port,
        output: OutputFormat::Json,
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

fn follow(files: Vec<PathBuf>, filter: &ObserveArgs, sender: &mpsc::Sender<String>) {
    let mut files: Vec<Follower> = files.into_iter().map(Follower::new).collect();
    let mut backlog = VecDeque::new();
    for file in &mut files {
        file.read_new(|record| {
            if filter.matches(record) {
                if backlog.len() == BACKLOG {
                    backlog.pop_front();
                }
                backlog.push_back(record.clone());
            }
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
                if !gone && filter.matches(record) {
                    gone = !send(sender, record);
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

/// One flow file read as it grows; read again from its start when it was rotated (the agent
/// renames a full file and starts a new one).
struct Follower {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    /// A line whose end has not been written yet.
    pending: String,
    offset: u64,
    /// The file being read: another one at the path means the old one was rotated away.
    inode: Option<u64>,
}

impl Follower {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            reader: None,
            pending: String::new(),
            offset: 0,
            inode: None,
        }
    }

    /// Hands each complete new record to `found`; true when anything was read.
    fn read_new(&mut self, mut found: impl FnMut(&FlowRecord)) -> bool {
        let now = std::fs::metadata(&self.path).ok();
        let rotated = now
            .as_ref()
            .is_some_and(|m| Some(m.ino()) != self.inode || m.len() < self.offset);
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
            // Lines that are not records (a torn write, another file) are skipped, as
            // `observe` skips them.
            if let Ok(record) = serde_json::from_str::<FlowRecord>(&self.pending) {
                found(&record);
            }
            self.pending.clear();
        }
        read_any
    }
}
