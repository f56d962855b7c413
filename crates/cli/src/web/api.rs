//! The JSON API's handlers. Each answer comes from the function the matching command uses:
//! `check`'s [`Answer`], `explain`'s policy document, `lint`, `diff`.

use super::State;
use super::view::{PortFilter, View};
use crate::check::{Answer, parse_protocol};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State as Shared};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_engine::PolicyId;
use palisade_engine::{Analysis, Protocol};
use palisade_manifest::{LoadOptions, Loaded};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// An error answer: `{"error": "…"}` with its status.
pub(super) struct ApiError(pub StatusCode, pub String);

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Shared_ = Shared<Arc<State>>;

/// Engine work runs off the async threads: a slow question (lint on a large cluster) must not
/// hold up the others.
async fn blocking<T: Send + 'static>(
    state: &Arc<State>,
    work: impl FnOnce(&State) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || work(&state))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// A query parameter; empty counts as absent (forms send `port=` for "any").
pub(super) fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

pub(super) fn port(value: &str) -> Result<u16, ApiError> {
    value
        .parse::<u16>()
        .ok()
        .filter(|&p| p >= 1)
        .ok_or_else(|| ApiError::bad_request(format!("port: expected 1-65535, got {value:?}")))
}

fn protocol(value: &Option<String>) -> Result<Protocol, ApiError> {
    given(value).map_or(Ok(Protocol::Tcp), |p| {
        parse_protocol(p).map_err(|e| ApiError::bad_request(format!("protocol: {e}")))
    })
}

fn json_body(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(super) async fn overview(Shared(state): Shared_) -> Json<Value> {
    let analysis = &state.analysis;
    let cluster = analysis.cluster();
    let mut ports: BTreeSet<(u16, Protocol)> = analysis.mentioned_ports(false);
    ports.extend(
        cluster
            .endpoints
            .iter()
            .flat_map(|e| e.ports.iter().map(|p| (p.port, p.protocol))),
    );
    Json(json!({
        "pods": cluster.endpoints.iter().map(|e| u64::from(e.replicas)).sum::<u64>(),
        "endpoints": cluster.endpoints.len(),
        "classes": analysis.class_count(),
        "policies": cluster.policies.len(),
        "outside_ranges": state.connectivity.externals().len(),
        "namespaces": cluster.namespaces.iter().map(|n| &n.name).collect::<Vec<_>>(),
        "input_errors": state.input_errors,
        "diagnostics": state.loaded.diagnostics.iter().take(LISTED_DIAGNOSTICS).map(ToString::to_string).collect::<Vec<_>>(),
        "ports": ports.iter().take(LISTED_PORTS).map(|(port, protocol)| json!({"port": port, "protocol": protocol})).collect::<Vec<_>>(),
        "flows": !state.flows.is_empty(),
    }))
}

/// The overview lists the first of these; the command line prints them all.
const LISTED_DIAGNOSTICS: usize = 100;
/// Ports offered by the matrix's filter.
const LISTED_PORTS: usize = 500;
/// Views remembered; the page asks for the same few again and again.
const CACHED_VIEWS: usize = 64;

#[derive(Deserialize)]
pub(super) struct ViewQuery {
    namespace: Option<String>,
    port: Option<String>,
    protocol: Option<String>,
}

/// The port a view counts with, if the query names one.
fn port_filter(query: &ViewQuery) -> Result<Option<PortFilter>, ApiError> {
    let Some(port) = given(&query.port).map(port).transpose()? else {
        return Ok(None);
    };
    let protocol = protocol(&query.protocol)?;
    Ok(Some(PortFilter { port, protocol }))
}

pub(super) async fn view(
    Shared(state): Shared_,
    Query(query): Query<ViewQuery>,
) -> Result<Response, ApiError> {
    let namespace = given(&query.namespace).map(str::to_string);
    let filter = port_filter(&query)?;
    let key = format!("{namespace:?} {:?}", filter.map(|f| (f.port, f.protocol)));
    if let Some(cached) = lock(&state).get(&key) {
        return Ok(json_body(cached.clone()));
    }
    let body: Bytes = blocking(&state, move |state| {
        View::new(&state.analysis, &state.connectivity, namespace.as_deref())
            .map(|view| view.json(&state.connectivity, filter).to_string())
            .map_err(|message| ApiError(StatusCode::NOT_FOUND, message))
    })
    .await??
    .into();
    let mut views = lock(&state);
    if views.len() < CACHED_VIEWS {
        views.insert(key, body.clone());
    }
    Ok(json_body(body))
}

fn lock(state: &State) -> std::sync::MutexGuard<'_, rustc_hash::FxHashMap<String, Bytes>> {
    // A handler that panicked left a complete map behind: entries are inserted whole.
    state
        .views
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Deserialize)]
pub(super) struct CheckQuery {
    src: Option<String>,
    dst: Option<String>,
    port: Option<String>,
    protocol: Option<String>,
}

pub(super) async fn check(
    Shared(state): Shared_,
    Query(query): Query<CheckQuery>,
) -> Result<Json<Value>, ApiError> {
    let required = |value: &Option<String>, name: &str| {
        given(value)
            .map(str::to_string)
            .ok_or_else(|| ApiError::bad_request(format!("{name}: required")))
    };
    let (src, dst) = (required(&query.src, "src")?, required(&query.dst, "dst")?);
    let port = port(&required(&query.port, "port")?)?;
    let protocol = protocol(&query.protocol)?;
    blocking(&state, move |state| {
        Answer::new(&state.analysis, &src, &dst, protocol, port)
            .map(|answer| Json(answer.json(&state.analysis, state.input_errors)))
            .map_err(|e| ApiError::bad_request(format!("{e:#}")))
    })
    .await?
}

#[derive(Deserialize)]
pub(super) struct PoliciesQuery {
    q: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// Endpoints named per list in a policy's description.
const NAMED_ENDPOINTS: usize = 20;

pub(super) async fn policies(
    Shared(state): Shared_,
    Query(query): Query<PoliciesQuery>,
) -> Result<Json<Value>, ApiError> {
    let wanted = given(&query.q).map(str::to_lowercase);
    let (offset, limit) = (
        query.offset.unwrap_or(0),
        query.limit.unwrap_or(100).min(500),
    );
    blocking(&state, move |state| {
        let analysis = &state.analysis;
        let matching: Vec<PolicyId> = analysis
            .cluster()
            .policies
            .keys()
            .filter(|&id| {
                wanted.as_ref().is_none_or(|w| {
                    analysis
                        .policy(id)
                        .qualified_name()
                        .to_lowercase()
                        .contains(w)
                })
            })
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|&id| {
                let origin = state.loaded.policy_origins.get(id).map(ToString::to_string);
                crate::explain::policy_document(analysis, id, origin, NAMED_ENDPOINTS)
            })
            .collect();
        Json(json!({ "total": matching.len(), "policies": page }))
    })
    .await
}

pub(super) async fn lint(Shared(state): Shared_) -> Result<Json<Value>, ApiError> {
    let findings = state
        .lint
        .get_or_try_init(|| {
            blocking(&state, |state| {
                let loaded = &state.loaded;
                palisade_lint::lint_json(&palisade_lint::lint_analysis(
                    &state.analysis,
                    &loaded.policy_origins,
                    &loaded.endpoint_origins,
                    &loaded.namespace_origins,
                ))
            })
        })
        .await?;
    Ok(Json(findings.clone()))
}

#[derive(Deserialize)]
pub(super) struct SourceQuery {
    name: Option<String>,
}

/// The manifest a policy was read from (its YAML document), for the what-if panel to edit.
pub(super) async fn policy_source(
    Shared(state): Shared_,
    Query(query): Query<SourceQuery>,
) -> Result<Json<Value>, ApiError> {
    let name = given(&query.name)
        .ok_or_else(|| ApiError::bad_request("name: required"))?
        .to_string();
    blocking(&state, move |state| {
        let analysis = &state.analysis;
        let id = analysis
            .cluster()
            .policies
            .keys()
            .find(|&id| analysis.policy(id).qualified_name() == name)
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no policy named {name:?}")))?;
        let unavailable = |why: &str| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("{name} has no manifest text here: {why}"),
            )
        };
        let origin = state
            .loaded
            .policy_origins
            .get(id)
            .ok_or_else(|| unavailable("its origin is unknown"))?;
        if origin.line == 0 {
            return Err(unavailable(
                "it was read from the API server (kubectl get -o yaml shows it)",
            ));
        }
        let text = std::fs::read_to_string(&origin.file)
            .map_err(|e| unavailable(&format!("{}: {e}", origin.file)))?;
        Ok(Json(json!({
            "name": name,
            "origin": origin.to_string(),
            "text": document_at(&text, origin.line),
        })))
    })
    .await?
}

/// The YAML document of a stream that holds line `line` (1-based): between the `---` lines
/// around it.
fn document_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let separator = |l: &&str| l.starts_with("---");
    let at = line.saturating_sub(1).min(lines.len());
    let start = lines[..at].iter().rposition(separator).map_or(0, |i| i + 1);
    let end = lines[at..]
        .iter()
        .position(separator)
        .map_or(lines.len(), |i| at + i);
    let mut document = lines[start..end].join("\n");
    document.push('\n');
    document
}

/// What `kubectl apply` of the posted manifests would change, as `diff` says it.
pub(super) async fn what_if(Shared(state): Shared_, body: String) -> Result<Json<Value>, ApiError> {
    blocking(&state, move |state| {
        let options = LoadOptions {
            default_namespace: state.namespace.clone(),
        };
        let change = palisade_manifest::load_str("what-if", &body, &options);
        if change.is_empty() {
            return Err(ApiError::bad_request(
                "no Kubernetes objects in the text: paste manifests (YAML or JSON)",
            ));
        }
        let diagnostics: Vec<String> = change.diagnostics.iter().map(ToString::to_string).collect();
        let input_errors = change.has_errors();
        let mut after = Loaded {
            cluster: state.analysis.cluster().clone(),
            ..state.loaded.clone()
        };
        after.apply(change);
        let diff = palisade_lint::diff(&state.analysis, &Analysis::new(after.cluster));
        let diff = serde_json::to_value(&diff)
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(Json(json!({
            "diagnostics": diagnostics,
            "input_errors": input_errors,
            "diff": diff,
        })))
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::document_at;

    #[test]
    fn a_document_is_cut_at_the_separators_around_its_line() {
        let stream = "a: 1\n---\nkind: X\nb: 2\n--- # next\nc: 3\n";
        for (line, document) in [
            (1, "a: 1\n"),
            (3, "kind: X\nb: 2\n"),
            (4, "kind: X\nb: 2\n"),
            (6, "c: 3\n"),
        ] {
            assert_eq!(document_at(stream, line), document, "line {line}");
        }
    }
}
