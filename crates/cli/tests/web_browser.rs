//! The web page in a real browser (Debian's Chromium through chromedriver): it draws every pod
//! of the example, explains a clicked connection with the deciding policies, shows a what-if
//! change's connections and streams appended flow records. Set PALISADE_SCREENSHOTS=DIR to keep
//! a screenshot of each view (the README's come from there).

mod common;

use common::browser::{Browser, wait_for};
use common::serve::{Served, append_flows, flow_record};
use fantoccini::{Client, Locator};
use palisade_agent::Verdict;
use serde_json::Value;
use std::path::Path;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/expense");

fn api(served: &Served, path: &str, body: Option<&str>) -> Value {
    let agent = ureq::Agent::new_with_defaults();
    let mut response = match body {
        Some(body) => agent.post(&served.url(path)).send(body).unwrap(),
        None => agent.get(&served.url(path)).call().unwrap(),
    };
    response.body_mut().read_json().unwrap()
}

async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("PALISADE_SCREENSHOTS") {
        let png = client.screenshot().await.unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// Clicks the element `css` finds, as a user would (WebDriver clicks its centre).
async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

async fn open_tab(client: &Client, tab: &str) {
    click(client, &format!("button[data-tab='{tab}']")).await;
    wait_for(client, &format!("#tab-{tab}.active")).await;
}

const WHAT_IF: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: podc-accepts-instana
  namespace: expense
spec:
  podSelector:
    matchLabels: {app: podC}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: instana}
    ports:
    - port: 80
";

#[tokio::test(flavor = "multi_thread")]
async fn the_page_draws_explains_compares_and_streams() {
    let Some(browser) = Browser::start("web page tests") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows.jsonl");
    std::fs::write(&flows, "").unwrap();
    let served = Served::start(&[Path::new(EXAMPLE)], Some(&flows));
    let client = browser.open().await;
    client.goto(&served.url("/")).await.unwrap();
    wait_for(&client, "body[data-ready='1']").await;

    // Every pod and workload of the example is drawn.
    let view = api(&served, "/api/view", None);
    let nodes = view["nodes"].as_array().unwrap();
    assert!(nodes.iter().filter(|n| n["kind"] != "outside").count() >= 5);
    for node in nodes {
        let name = node["name"].as_str().unwrap();
        client
            .find(Locator::Css(&format!("g.node[data-name='{name}']")))
            .await
            .unwrap_or_else(|e| panic!("node {name} is not drawn: {e}"));
    }
    screenshot(&client, "graph").await;

    // Clicking podA -> podC explains it with the policies `check` names.
    click(
        &client,
        "path.edge[data-from='expense/poda'][data-to='expense/podc']",
    )
    .await;
    let detail = wait_for(&client, "#detail[data-verdict]").await;
    assert_eq!(
        detail.attr("data-verdict").await.unwrap().unwrap(),
        "ALLOWED"
    );
    let text = detail.text().await.unwrap();
    let check = api(
        &served,
        "/api/check?src=expense/poda&dst=expense/podc&port=80",
        None,
    );
    for side in ["egress", "ingress"] {
        let named = check[side]["isolating_policies"]
            .as_array()
            .unwrap()
            .iter()
            .chain(
                check[side]["admitted_by"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|rule| &rule["policy"]),
            );
        for policy in named {
            let policy = policy.as_str().unwrap();
            assert!(
                text.contains(policy),
                "{policy} missing from the detail: {text}"
            );
        }
    }
    assert!(text.contains("expense/poda-egress") && text.contains("expense/podc-accepts-poda"));
    screenshot(&client, "check").await;

    open_tab(&client, "matrix").await;
    screenshot(&client, "matrix").await;

    // What-if: the connections the page lists are the ones `diff` finds.
    open_tab(&client, "whatif").await;
    let text_area = client.find(Locator::Css("#whatif-text")).await.unwrap();
    text_area.clear().await.unwrap();
    text_area.send_keys(WHAT_IF).await.unwrap();
    click(&client, "#whatif-run").await;
    wait_for(&client, "#whatif-result[data-state='done']").await;
    let expected = api(&served, "/api/whatif", Some(WHAT_IF));
    let added = expected["diff"]["added"].as_array().unwrap();
    assert_eq!(added.len(), 1, "{expected}");
    let shown = client
        .find_all(Locator::Css("#whatif-result li.added"))
        .await
        .unwrap();
    assert_eq!(shown.len(), added.len());
    let line = shown[0].text().await.unwrap();
    assert!(
        line.contains("instana/daemonset/instana-agent -> expense/podc"),
        "{line}"
    );
    screenshot(&client, "whatif").await;

    // Editing a policy that exists: its manifest comes in, a changed port goes out.
    open_tab(&client, "policies").await;
    wait_for(
        &client,
        "article.policy[data-name='expense/podc-accepts-poda'] button.edit",
    )
    .await
    .click()
    .await
    .unwrap();
    wait_for(&client, "#tab-whatif.active").await;
    let manifest: String = client
        .execute(
            "return document.querySelector('#whatif-text').value",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert!(manifest.contains("name: podc-accepts-poda"), "{manifest}");
    assert!(manifest.contains("port: 443"), "{manifest}");
    let edited = manifest.replace("port: 443", "port: 8443");
    client
        .execute(
            "document.querySelector('#whatif-text').value = arguments[0]",
            vec![Value::String(edited.clone())],
        )
        .await
        .unwrap();
    click(&client, "#whatif-run").await;
    wait_for(&client, "#whatif-result[data-state='done'] li.removed").await;
    let expected = api(&served, "/api/whatif", Some(&edited));
    let removed = expected["diff"]["removed"].as_array().unwrap();
    let shown = client
        .find_all(Locator::Css("#whatif-result li.removed"))
        .await
        .unwrap();
    assert_eq!(shown.len(), removed.len(), "{expected}");
    let line = shown[0].text().await.unwrap();
    assert!(line.contains("expense/poda -> expense/podc"), "{line}");
    assert!(line.contains("443"), "{line}");

    // A record an agent appends shows up, coloured by its verdict.
    open_tab(&client, "flows").await;
    append_flows(
        &flows,
        &[flow_record("podb", "expense", "podc", 80, Verdict::Dropped)],
    );
    let row = wait_for(&client, "#flows tr.flow[data-verdict='DROPPED']").await;
    let row = row.text().await.unwrap();
    assert!(
        row.contains("expense/podb") && row.contains("expense/podc"),
        "{row}"
    );
    screenshot(&client, "flows").await;
    client.close().await.unwrap();
}
