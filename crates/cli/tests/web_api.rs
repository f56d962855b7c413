//! `palisade serve`'s JSON API against the real server: every answer must equal what the
//! matching command prints for the same input (docs/web.md promises the same engine answers).

mod common;

use common::serve::{Served, append_flows, flow_record};
use palisade_agent::{FlowRecord, Verdict};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/expense");

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Status and JSON body of a GET.
fn get(served: &Served, path: &str) -> (u16, Value) {
    let mut response = agent().get(&served.url(path)).call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_json().unwrap())
}

fn post(served: &Served, path: &str, body: &str) -> (u16, Value) {
    let mut response = agent().post(&served.url(path)).send(body).unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_json().unwrap())
}

/// What `palisade ARGS` prints as JSON.
fn command_json(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&output.stderr)))
}

#[test]
fn the_api_answers_as_the_commands_do() {
    let served = Served::start(&[Path::new(EXAMPLE)], None);

    let (status, overview) = get(&served, "/api/overview");
    assert_eq!(status, 200);
    let explained = command_json(&["explain", "-o", "json", EXAMPLE]);
    let endpoints: usize = explained["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ns| ns["endpoints"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(overview["endpoints"], endpoints);
    assert_eq!(overview["flows"], false);

    // Every endpoint drawn, each pair checked as `check` checks it.
    let (status, view) = get(&served, "/api/view");
    assert_eq!(status, 200);
    assert_eq!(view["level"], "pods");
    let pods: Vec<&str> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] != "outside")
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(pods.len(), endpoints);
    for src in &pods {
        for dst in &pods {
            for (port, protocol) in [("80", "TCP"), ("53", "UDP")] {
                let (status, answer) = get(
                    &served,
                    &format!("/api/check?src={src}&dst={dst}&port={port}&protocol={protocol}"),
                );
                assert_eq!(status, 200, "{answer}");
                let command = command_json(&[
                    "check",
                    src,
                    dst,
                    "--port",
                    port,
                    "--protocol",
                    protocol,
                    "-o",
                    "json",
                    EXAMPLE,
                ]);
                assert_eq!(answer, command, "{src} -> {dst} {port}/{protocol}");
            }
        }
    }

    let (_, policies) = get(&served, "/api/policies");
    assert_eq!(policies["policies"], explained["policies"]);
    let (_, found) = get(&served, "/api/policies?q=PODC");
    let names: Vec<&Value> = found["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(names, ["expense/podc-accepts-poda"]);
    assert_eq!(found["total"], 1);

    // The manifest of a policy, for the what-if panel to edit: its own YAML document.
    let (status, source) = get(&served, "/api/policy-source?name=expense/podc-accepts-poda");
    assert_eq!(status, 200, "{source}");
    let text = source["text"].as_str().unwrap();
    let written = std::fs::read_to_string(format!("{EXAMPLE}/policies.yaml")).unwrap();
    assert!(written.contains(text.trim_end()), "{text}");
    assert!(
        text.contains("name: podc-accepts-poda") && !text.contains("---"),
        "{text}"
    );
    assert_eq!(text.matches("kind: NetworkPolicy").count(), 1, "{text}");

    let (_, lint) = get(&served, "/api/lint");
    assert_eq!(lint, command_json(&["lint", "-o", "json", EXAMPLE]));

    // What-if: the page's answer is `diff`'s between the example and the example plus the text.
    let extra = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: podc-accepts-instana\n  namespace: expense\nspec:\n  podSelector:\n    matchLabels: {app: podC}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {kubernetes.io/metadata.name: instana}\n    ports:\n    - port: 80\n";
    let changed = tempfile::tempdir().unwrap();
    for file in std::fs::read_dir(EXAMPLE).unwrap() {
        let file = file.unwrap().path();
        if file.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&file, changed.path().join(file.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(changed.path().join("what-if.yaml"), extra).unwrap();
    let (status, what_if) = post(&served, "/api/whatif", extra);
    assert_eq!(status, 200, "{what_if}");
    let mut diff = command_json(&[
        "diff",
        "-o",
        "json",
        EXAMPLE,
        changed.path().to_str().unwrap(),
    ]);
    diff.as_object_mut().unwrap().remove("input_errors");
    assert_eq!(what_if["diff"], diff);
    assert_eq!(what_if["diff"]["added"].as_array().unwrap().len(), 1);
    assert_eq!(what_if["input_errors"], false);

    // Mistakes get a status and a message that names the mistake.
    let (status, misspelled) = post(&served, "/api/whatif", "kind: NetworkPolicyy\n");
    assert_eq!(status, 200);
    assert_eq!(misspelled["input_errors"], true);
    assert!(
        misspelled["diagnostics"][0]
            .as_str()
            .unwrap()
            .contains("did you mean \"NetworkPolicy\"")
    );
    for (path, status, message) in [
        (
            "/api/check?src=expense/poda&dst=expense/podc&port=0",
            400,
            "port: expected 1-65535",
        ),
        ("/api/check?src=expense/poda&port=80", 400, "dst: required"),
        (
            "/api/check?src=expense/pod&dst=expense/podc&port=80",
            400,
            "did you mean expense/poda",
        ),
        (
            "/api/check?src=expense/poda&dst=expense/podc&port=80&protocol=icmp",
            400,
            "protocol",
        ),
        ("/api/view?namespace=nowhere", 404, "no namespace named"),
        ("/api/view?port=70000", 400, "port: expected 1-65535"),
        ("/api/flows", 404, "--flows"),
        (
            "/api/policy-source?name=expense/nope",
            404,
            "no policy named",
        ),
    ] {
        let (got, body) = get(&served, path);
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(message),
            "{path}: {body}"
        );
    }
    let (status, _) = post(&served, "/api/whatif", "  \n");
    assert_eq!(status, 400);
}

#[test]
fn flows_arrive_filtered_as_they_are_written_and_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows.jsonl");
    append_flows(
        &flows,
        &[
            flow_record("poda", "expense", "podc", 80, Verdict::Dropped),
            flow_record("poda", "expense", "podb", 80, Verdict::Forwarded),
        ],
    );
    let served = Served::start(&[Path::new(EXAMPLE)], Some(&flows));
    let response = agent()
        .get(&served.url("/api/flows?verdict=dropped&namespace=expense"))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = BufReader::new(response.into_body().into_reader())
        .lines()
        .map(Result::unwrap)
        .filter_map(|line| line.strip_prefix("data:").map(|d| d.trim().to_string()))
        .map(|data| serde_json::from_str::<FlowRecord>(&data).unwrap());
    // The one already written that matches; the forwarded one is filtered out.
    assert_eq!(
        events.next().unwrap(),
        flow_record("poda", "expense", "podc", 80, Verdict::Dropped)
    );
    append_flows(
        &flows,
        &[
            flow_record("poda", "expense", "podb", 443, Verdict::Forwarded),
            flow_record("poda", "expense", "podc", 443, Verdict::Dropped),
        ],
    );
    assert_eq!(
        events.next().unwrap(),
        flow_record("poda", "expense", "podc", 443, Verdict::Dropped)
    );
    // Rotated: the agent starts a new, shorter file; it is read from its start.
    std::fs::remove_file(&flows).unwrap();
    append_flows(
        &flows,
        &[flow_record(
            "poda",
            "expense",
            "podc",
            8080,
            Verdict::Dropped,
        )],
    );
    assert_eq!(
        events.next().unwrap(),
        flow_record("poda", "expense", "podc", 8080, Verdict::Dropped)
    );
}
