//! Every lint against manifests that trigger it and corrected ones that do not, plus what the
//! findings say where the wording carries the fix (suggestions, affected pods, paths).

use palisade_lint::{Finding, LintId, Severity, lint};
use palisade_manifest::{LoadOptions, load_str};
use std::fs;
use std::path::{Path, PathBuf};

fn testdata(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(relative)
}

fn lint_file(path: &Path) -> Vec<Finding> {
    let text = fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    lint(&load_str(&name, &text, &LoadOptions::default()))
}

fn of(findings: &[Finding], lint: LintId) -> Vec<&Finding> {
    findings.iter().filter(|f| f.lint == lint).collect()
}

fn summary(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("{} {}", f.lint, f.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_lint_has_a_triggering_and_a_clean_manifest() {
    for lint in LintId::ALL {
        let dir = testdata(&format!("lints/{}", lint.code()));
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let named = |prefix: &str| -> Vec<PathBuf> {
            files
                .iter()
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
                .cloned()
                .collect()
        };
        let (bad, good) = (named("bad-"), named("good"));
        assert!(
            !bad.is_empty() && !good.is_empty(),
            "{lint}: needs bad-* and good* manifests"
        );
        for path in &bad {
            let findings = lint_file(path);
            assert!(
                !of(&findings, lint).is_empty(),
                "{} should trigger {lint}; got:\n{}",
                path.display(),
                summary(&findings)
            );
        }
        for path in &good {
            let findings = lint_file(path);
            assert!(
                of(&findings, lint).is_empty(),
                "{} should not trigger {lint}; got:\n{}",
                path.display(),
                summary(&findings)
            );
        }
    }
}

fn only(path: &str, lint: LintId) -> Finding {
    let findings = lint_file(&testdata(path));
    let matching = of(&findings, lint);
    assert_eq!(matching.len(), 1, "{path}:\n{}", summary(&findings));
    matching[0].clone()
}

#[test]
fn dns_findings_name_the_pods_the_protocols_and_the_side_to_fix() {
    let deny = only("lints/PAL001/bad-egress-deny.yaml", LintId::DnsBlocked);
    assert_eq!(deny.severity, Severity::Error);
    assert!(
        deny.objects.contains(&"Pod shop/web".to_string()),
        "{deny:?}"
    );
    assert!(
        deny.objects
            .contains(&"NetworkPolicy shop/deny-egress".to_string())
    );
    assert!(
        deny.message.contains("UDP 53 and TCP 53"),
        "{}",
        deny.message
    );
    assert!(deny.message.contains("assumed"), "{}", deny.message);
    assert!(deny.fix.contains("k8s-app: kube-dns"), "{}", deny.fix);

    let udp_only = only("lints/PAL001/bad-udp-only.yaml", LintId::DnsBlocked);
    assert!(
        udp_only.message.contains("admits TCP 53 to"),
        "{}",
        udp_only.message
    );
    assert!(!udp_only.message.contains("UDP 53"), "{}", udp_only.message);

    let ingress = only("lints/PAL001/bad-dns-ingress.yaml", LintId::DnsBlocked);
    assert!(
        ingress
            .message
            .contains("ingress-isolated by kube-system/deny-ingress"),
        "{}",
        ingress.message
    );
    assert!(
        ingress
            .fix
            .contains("spec.ingress of NetworkPolicy kube-system/deny-ingress")
    );
}

#[test]
fn selector_typos_come_with_the_nearest_existing_label() {
    let table = [
        (
            "lints/PAL003/bad-typo.yaml",
            LintId::PolicySelectsNothing,
            "Replace app=wbe with app=web in spec.podSelector",
        ),
        (
            "lints/PAL004/bad-pod-typo.yaml",
            LintId::PeerSelectsNothing,
            "Replace app=frontnd with app=frontend in spec.ingress[0].from[0]",
        ),
        (
            "lints/PAL004/bad-namespace-typo.yaml",
            LintId::PeerSelectsNothing,
            "Replace team=paymnts with team=payments in spec.ingress[0].from[0]",
        ),
    ];
    for (path, lint, suggestion) in table {
        let finding = only(path, lint);
        assert!(finding.fix.contains(suggestion), "{path}: {}", finding.fix);
    }
}

#[test]
fn named_port_findings_say_what_is_declared() {
    let typo = only("lints/PAL005/bad-typo.yaml", LintId::NamedPortUndeclared);
    assert!(typo.fix.contains("http (TCP 8080)"), "{}", typo.fix);
    let protocol = only(
        "lints/PAL005/bad-protocol.yaml",
        LintId::NamedPortUndeclared,
    );
    assert!(
        protocol.fix.contains("set `protocol: TCP`"),
        "{}",
        protocol.fix
    );
}

#[test]
fn ipblock_findings_list_the_covered_pods_and_addresses() {
    let finding = only("lints/PAL006/bad-pod-range.yaml", LintId::IpBlockCoversPods);
    assert_eq!(
        finding.details,
        vec!["Pod shop/frontend at 10.244.1.5".to_string()]
    );
    assert!(finding.message.contains("spec.ingress[0].from[0]"));
}

#[test]
fn half_open_findings_list_each_path() {
    let egress = only("lints/PAL008/bad-egress-only.yaml", LintId::HalfOpenPath);
    assert_eq!(
        egress.details,
        vec![
            "Pod shop/frontend -> Pod shop/api on TCP:8080: ingress of shop/api is isolated by shop/default-deny-ingress and admits none of it"
                .to_string()
        ]
    );
    let ingress = only("lints/PAL008/bad-ingress-only.yaml", LintId::HalfOpenPath);
    assert!(
        ingress
            .message
            .starts_with("spec.ingress[0] of NetworkPolicy shop/api-ingress")
    );
    assert_eq!(ingress.details.len(), 1, "{:?}", ingress.details);
    assert!(
        ingress.details[0].contains("egress of shop/frontend is isolated by shop/frontend-egress")
    );
}

#[test]
fn redundancy_reports_one_of_two_twins_and_the_covered_rule() {
    // Greedy: the first twin goes, after which the second is needed.
    let twin = only("lints/PAL009/bad-duplicate.yaml", LintId::RedundantPolicy);
    assert!(
        twin.message.contains("shop/api-ingress "),
        "{}",
        twin.message
    );
    let rule = only("lints/PAL010/bad-covered-rule.yaml", LintId::ShadowedRule);
    assert!(
        rule.message.starts_with("Removing spec.ingress[0] "),
        "{}",
        rule.message
    );
}

#[test]
fn coverage_counts_isolated_pods_per_direction() {
    let finding = only(
        "lints/PAL011/bad-no-default-deny.yaml",
        LintId::NoDefaultDeny,
    );
    assert_eq!(
        finding.details,
        vec![
            "ingress: 1 of 3 pods isolated (33%)".to_string(),
            "egress: 0 of 3 pods isolated (0%)".to_string()
        ]
    );
    assert!(finding.message.contains("for ingress and egress"));
}

#[test]
fn findings_point_at_the_policy_in_its_file() {
    let finding = only(
        "lints/PAL007/bad-egress-ignored.yaml",
        LintId::RulesIgnoredByPolicyTypes,
    );
    let location = finding.location.expect("located");
    assert_eq!(location.file, "bad-egress-ignored.yaml");
    let text = fs::read_to_string(testdata("lints/PAL007/bad-egress-ignored.yaml")).unwrap();
    // The policy is the document after the second `---`; it starts on the line after it.
    let separator = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "---")
        .map(|(i, _)| i + 1)
        .nth(1)
        .unwrap();
    assert_eq!(location.line, separator + 1);
}

/// A rule half-open towards a big namespace lists a readable number of paths and counts the rest.
#[test]
fn half_open_paths_are_listed_up_to_a_limit_and_counted() {
    let mut manifests = String::new();
    for i in 0..40 {
        manifests.push_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: s{i}, namespace: back, labels: {{app: s{i}, tier: db}}}}\nspec: {{containers: [{{name: c, image: i, ports: [{{containerPort: 80}}]}}]}}\n---\n"
        ));
    }
    manifests.push_str(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: front, labels: {app: client}}\nspec: {containers: [{name: c, image: i}]}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-in, namespace: back}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: front}\n\
         spec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: back}}, podSelector: {matchLabels: {tier: db}}}]\n    ports: [{port: 80}]\n",
    );
    let findings = lint(&load_str("big.yaml", &manifests, &LoadOptions::default()));
    let half_open = of(&findings, LintId::HalfOpenPath);
    assert_eq!(half_open.len(), 1, "{}", summary(&findings));
    let details = &half_open[0].details;
    assert_eq!(details.len(), 26, "{details:#?}");
    assert_eq!(details[25], "… and 15 more paths of this rule");
}
