//! `diff` on policy edits whose effect on connectivity is worked out by hand in each case.

use palisade_engine::Analysis;
use palisade_lint::{
    ConnectionChange, ConnectivityDiff, DiffConfig, DiffFormat, diff, report_diff,
    write_diff_markdown, write_diff_text,
};
use palisade_manifest::{LoadOptions, load_paths, load_str};
use std::process::ExitCode;

/// Three pods in `shop`; api declares `http` = TCP 8080.
const PODS: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.244.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
spec: {containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.244.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.244.0.3}
";

const DENY_INGRESS: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress]}
";

/// web -> api on `port`, as an ingress policy of api.
fn allow_web_to_api(port: &str) -> String {
    format!(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: api-from-web, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: api}}}}
  ingress:
    - from: [{{podSelector: {{matchLabels: {{app: web}}}}}}]
      ports: [{port}]
"
    )
}

const WEB_EGRESS_TO_API: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
    - to: [{podSelector: {matchLabels: {app: api}}}]
      ports: [{port: 8080}]
";

fn analysis(policies: &[&str]) -> Analysis {
    let mut docs = vec![PODS];
    docs.extend_from_slice(policies);
    let loaded = load_str("in.yaml", &docs.join("\n---\n"), &LoadOptions::default());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    Analysis::new(loaded.cluster)
}

fn lines(changes: &[ConnectionChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| format!("{} -> {} {}", c.from.label(), c.to.label(), c.ports))
        .collect()
}

fn compare(old: &[&str], new: &[&str]) -> ConnectivityDiff {
    diff(&analysis(old), &analysis(new))
}

/// (what, old policies, new policies, added, removed)
type Case<'a> = (
    &'a str,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<String>,
    Vec<String>,
);

#[test]
fn hand_worked_policy_edits() {
    let port_8080 = allow_web_to_api("{port: 8080}");
    let port_named = allow_web_to_api("{port: http}");
    let port_range = allow_web_to_api("{port: 8080, endPort: 8090}");
    let everything = "all ports";
    let table: Vec<Case<'_>> = vec![
        (
            // Every pod becomes ingress-isolated with no rule: all 6 pod pairs and the outside
            // lose every port; loopback stays.
            "default deny ingress",
            vec![],
            vec![DENY_INGRESS],
            vec![],
            [
                "shop/api -> shop/db",
                "shop/api -> shop/web",
                "shop/db -> shop/api",
                "shop/db -> shop/web",
                "shop/web -> shop/api",
                "shop/web -> shop/db",
                "0.0.0.0/0 -> shop/api",
                "0.0.0.0/0 -> shop/db",
                "0.0.0.0/0 -> shop/web",
            ]
            .iter()
            .map(|l| format!("{l} {everything}"))
            .collect(),
        ),
        (
            "allow web to api on 8080",
            vec![DENY_INGRESS],
            vec![DENY_INGRESS, &port_8080],
            vec!["shop/web -> shop/api TCP:8080".into()],
            vec![],
        ),
        (
            // `http` is api's name for TCP 8080: same meaning, no change.
            "number to named port",
            vec![DENY_INGRESS, &port_8080],
            vec![DENY_INGRESS, &port_named],
            vec![],
            vec![],
        ),
        (
            "widen to a range",
            vec![DENY_INGRESS, &port_8080],
            vec![DENY_INGRESS, &port_range],
            vec!["shop/web -> shop/api TCP:8081-8090".into()],
            vec![],
        ),
        (
            // web may now open only api:8080: it loses the rest of api, all of db, and the
            // outside (no ipBlock anywhere: one range).
            "egress lock-down of web",
            vec![],
            vec![WEB_EGRESS_TO_API],
            vec![],
            vec![
                "shop/web -> 0.0.0.0/0 all ports".into(),
                "shop/web -> shop/api TCP:1-8079,8081-65535 UDP:all SCTP:all".into(),
                "shop/web -> shop/db all ports".into(),
            ],
        ),
    ];
    for (what, old, new, added, removed) in table {
        let result = compare(&old, &new);
        let mut got_added = lines(&result.added);
        let mut got_removed = lines(&result.removed);
        got_added.sort();
        got_removed.sort();
        let (mut added, mut removed) = (added, removed);
        added.sort();
        removed.sort();
        assert_eq!(got_added, added, "{what}: added");
        assert_eq!(got_removed, removed, "{what}: removed");
        assert_eq!(
            result.changes_connectivity(),
            !added.is_empty() || !removed.is_empty()
        );
    }
}

#[test]
fn each_change_names_the_policy_edits_behind_it() {
    let result = compare(
        &[DENY_INGRESS],
        &[DENY_INGRESS, &allow_web_to_api("{port: 8080}")],
    );
    assert_eq!(result.added.len(), 1);
    let causes: Vec<String> = result.added[0]
        .causes
        .iter()
        .map(|c| {
            format!(
                "{} {} {:?}",
                c.change.object,
                c.change.change.as_str(),
                c.role
            )
        })
        .collect();
    assert_eq!(
        causes,
        ["NetworkPolicy shop/api-from-web added DestinationIngress"]
    );
    let changed: Vec<String> = result
        .policy_changes
        .iter()
        .map(|p| format!("{} {}", p.object, p.change.as_str()))
        .collect();
    assert_eq!(changed, ["NetworkPolicy shop/api-from-web added"]);
}

#[test]
fn outside_ranges_are_split_where_an_ipblock_changes_and_merged_elsewhere() {
    let egress = |cidr: &str| {
        format!(
            "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: web-egress, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  policyTypes: [Egress]
  egress:
    - to: [{{ipBlock: {{cidr: {cidr}}}}}]
      ports: [{{port: 443}}]
"
        )
    };
    // /32 -> /24: the rest of 192.168.1.0/24 gains TCP 443; .10 had it already.
    let result = compare(&[&egress("192.168.1.10/32")], &[&egress("192.168.1.0/24")]);
    assert_eq!(
        lines(&result.added),
        [
            "shop/web -> 192.168.1.0-192.168.1.9 TCP:443",
            "shop/web -> 192.168.1.11-192.168.1.255 TCP:443"
        ]
    );
    assert!(result.removed.is_empty(), "{:?}", lines(&result.removed));
}

#[test]
fn endpoints_on_one_side_only_are_listed_not_compared() {
    let old = analysis(&[]);
    let text = format!(
        "{PODS}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: cache, namespace: shop}}\nspec: {{containers: [{{name: c, image: i}}]}}\n"
    );
    let new = Analysis::new(load_str("in.yaml", &text, &LoadOptions::default()).cluster);
    let result = diff(&old, &new);
    assert!(!result.changes_connectivity());
    assert_eq!(result.endpoints_added, ["shop/cache"]);
    assert!(result.endpoints_removed.is_empty());
}

fn rendered(result: &ConnectivityDiff) -> (String, String) {
    let mut text = Vec::new();
    write_diff_text(result, &mut text, false).unwrap();
    let mut markdown = Vec::new();
    write_diff_markdown(result, &mut markdown).unwrap();
    (
        String::from_utf8(text).unwrap(),
        String::from_utf8(markdown).unwrap(),
    )
}

/// api-from-web moves from 8080 to 8443 and web-egress (to api:8080 only) is added.
fn two_policies_changed() -> ConnectivityDiff {
    compare(
        &[DENY_INGRESS, &allow_web_to_api("{port: 8080}")],
        &[
            DENY_INGRESS,
            &allow_web_to_api("{port: 8443}"),
            WEB_EGRESS_TO_API,
        ],
    )
}

/// Of two changed policies that both govern a connection, only the one whose change decided
/// it is named: web-egress (added) admits web → api:8080, so it did not take 8080 away; the
/// port change of api-from-web did. web-egress alone cut web's other egress.
#[test]
fn a_change_that_did_not_decide_a_connection_is_not_its_cause() {
    let result = two_policies_changed();
    let causes = |to: &str| -> Vec<String> {
        let change = result
            .removed
            .iter()
            .find(|c| c.to.label() == to)
            .unwrap_or_else(|| panic!("a removed connection to {to}: {result:#?}"));
        change
            .causes
            .iter()
            .map(|c| c.change.object.clone())
            .collect()
    };
    assert_eq!(causes("shop/api"), ["NetworkPolicy shop/api-from-web"]);
    assert_eq!(causes("0.0.0.0/0"), ["NetworkPolicy shop/web-egress"]);
}

#[test]
fn text_and_markdown_reports() {
    let result = two_policies_changed();
    let (text, markdown) = rendered(&result);
    insta::assert_snapshot!("diff-text", text);
    insta::assert_snapshot!("diff-markdown", markdown);
}

#[test]
fn report_diff_exit_code_follows_connectivity_not_text() {
    let dir = std::env::temp_dir().join(format!("palisade-lint-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, docs: &[&str]| {
        let path = dir.join(name);
        let mut all = vec![PODS];
        all.extend_from_slice(docs);
        std::fs::write(&path, all.join("\n---\n")).unwrap();
        path
    };
    let numbered = allow_web_to_api("{port: 8080}");
    let named = allow_web_to_api("{port: http}");
    let base = write("base.yaml", &[DENY_INGRESS, &numbered]);
    let same_meaning = write("named.yaml", &[DENY_INGRESS, &named]);
    let opened = write("open.yaml", &[]);
    let run = |new: &std::path::Path, exit_code: bool| {
        let config = DiffConfig {
            format: DiffFormat::Json,
            exit_code,
            color: false,
        };
        let side = |path: &std::path::Path| {
            load_paths(&[path.to_path_buf()], &LoadOptions::default()).cluster
        };
        let mut out = Vec::new();
        let code = report_diff(&config, side(&base), side(new), false, &mut out).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        (code, json)
    };
    let (code, json) = run(&same_meaning, true);
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(json["added"].as_array().unwrap().len(), 0);
    assert_eq!(json["policy_changes"][0]["change"], "changed");
    let (code, json) = run(&opened, true);
    assert_eq!(code, ExitCode::FAILURE);
    assert!(!json["added"].as_array().unwrap().is_empty());
    assert_eq!(json["added"][0]["port_ranges"][0]["protocol"], "TCP");
    let (code, _) = run(&opened, false);
    assert_eq!(code, ExitCode::SUCCESS);
    std::fs::remove_dir_all(&dir).unwrap();
}
