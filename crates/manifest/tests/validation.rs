//! NetworkPolicy validation, one row per upstream rule: the exact field path and line of the
//! error, and that the invalid policy stays out of the cluster while the valid rest loads.

use palisade_engine::PolicyId;
use palisade_manifest::{Diagnostic, LoadOptions, Loaded, Severity, load_str};

/// Lines 1–6; a case's spec starts on line 7.
const HEADER: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np
  namespace: prod
spec:
";

fn load(text: &str) -> Loaded {
    load_str("np.yaml", text, &LoadOptions::default())
}

fn errors(loaded: &Loaded) -> Vec<&Diagnostic> {
    loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

#[test]
fn each_rule_reports_its_field_and_line() {
    // (rule, spec body from line 7, field path, line, part of the message)
    let table: &[(&str, &str, &str, usize, &str)] = &[
        // A misspelled field is an error, not a skip: `fromm` would make the rule admit every
        // source, `portz` every port, `egres` deny all egress.
        (
            "unknown field in a rule",
            "  podSelector: {}\n  ingress:\n  - fromm:\n    - podSelector: {}\n",
            "spec.ingress[0].fromm",
            9,
            "unknown field \"fromm\"; did you mean \"from\"?",
        ),
        (
            "unknown field beside a known one",
            "  podSelector: {}\n  ingress:\n  - from:\n    - podSelector: {}\n    portz:\n    - port: 80\n",
            "spec.ingress[0].portz",
            11,
            "did you mean \"ports\"?",
        ),
        (
            "unknown field in the spec",
            "  podSelector: {}\n  egres:\n  - {}\n",
            "spec.egres",
            8,
            "did you mean \"egress\"?",
        ),
        (
            "unknown field in a selector",
            "  podSelector:\n    matchLabel: {app: web}\n",
            "spec.podSelector.matchLabel",
            8,
            "did you mean \"matchLabels\"?",
        ),
        (
            "unknown field far from every known one",
            "  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8, exclude: [10.1.0.0/16]}\n",
            "spec.ingress[0].from[0].ipBlock.exclude",
            10,
            "expected one of \"cidr\", \"except\"",
        ),
        (
            "matchLabels key syntax",
            "  podSelector:\n    matchLabels:\n      -app: web\n",
            "spec.podSelector.matchLabels[-app]",
            9,
            "name part must consist of",
        ),
        (
            "matchLabels key prefix must be a DNS subdomain",
            "  podSelector:\n    matchLabels:\n      Example.com/app: web\n",
            "spec.podSelector.matchLabels[Example.com/app]",
            9,
            "prefix part",
        ),
        (
            "matchLabels key name at most 63 characters",
            &format!(
                "  podSelector:\n    matchLabels:\n      {}: web\n",
                "a".repeat(64)
            ),
            &format!("spec.podSelector.matchLabels[{}]", "a".repeat(64)),
            9,
            "no more than 63 characters",
        ),
        (
            "matchLabels value syntax",
            "  podSelector:\n    matchLabels:\n      app: web_\n",
            "spec.podSelector.matchLabels[app]",
            9,
            "\"web_\"",
        ),
        (
            "In needs values",
            "  podSelector:\n    matchExpressions:\n    - key: app\n      operator: In\n",
            "spec.podSelector.matchExpressions[0].values",
            9,
            "must be specified when `operator` is 'In' or 'NotIn'",
        ),
        (
            "NotIn needs values",
            "  podSelector:\n    matchExpressions:\n    - {key: app, operator: NotIn, values: []}\n",
            "spec.podSelector.matchExpressions[0].values",
            9,
            "'In' or 'NotIn'",
        ),
        (
            "Exists takes no values",
            "  podSelector:\n    matchExpressions:\n    - key: app\n      operator: Exists\n      values: [web]\n",
            "spec.podSelector.matchExpressions[0].values",
            11,
            "may not be specified",
        ),
        (
            "unknown operator",
            "  podSelector:\n    matchExpressions:\n    - key: app\n      operator: in\n      values: [web]\n",
            "spec.podSelector.matchExpressions[0].operator",
            10,
            "not a valid selector operator",
        ),
        (
            "expression key syntax",
            "  podSelector:\n    matchExpressions:\n    - key: a/b/c\n      operator: Exists\n",
            "spec.podSelector.matchExpressions[0].key",
            9,
            "qualified name",
        ),
        (
            "expression value syntax",
            "  podSelector:\n    matchExpressions:\n    - key: app\n      operator: In\n      values: [web, 'bad value']\n",
            "spec.podSelector.matchExpressions[0].values[1]",
            11,
            "\"bad value\"",
        ),
        (
            "namespaceSelector is validated too",
            "  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {team: -x}\n",
            "spec.ingress[0].from[0].namespaceSelector.matchLabels[team]",
            10,
            "\"-x\"",
        ),
        (
            "a peer needs a selector or ipBlock",
            "  ingress:\n  - from:\n    - {}\n",
            "spec.ingress[0].from[0]",
            9,
            "must specify a peer",
        ),
        (
            "ipBlock excludes selectors",
            "  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/8}\n      podSelector: {}\n",
            "spec.egress[0].to[0]",
            9,
            "may not specify both ipBlock and another peer",
        ),
        (
            "cidr is required",
            "  egress:\n  - to:\n    - ipBlock:\n        except: [10.1.0.0/16]\n",
            "spec.egress[0].to[0].ipBlock.cidr",
            9,
            "required",
        ),
        (
            "cidr syntax",
            "  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/33\n",
            "spec.egress[0].to[0].ipBlock.cidr",
            10,
            "must be a valid CIDR",
        ),
        (
            "cidr needs a prefix length",
            "  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.1\n",
            "spec.egress[0].to[0].ipBlock.cidr",
            10,
            "must be a valid CIDR",
        ),
        (
            "except syntax",
            "  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/8\n        except:\n        - banana\n",
            "spec.egress[0].to[0].ipBlock.except[0]",
            12,
            "must be a valid CIDR",
        ),
        (
            "except outside cidr",
            "  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/8\n        except:\n        - 10.1.0.0/16\n        - 11.0.0.0/16\n",
            "spec.egress[0].to[0].ipBlock.except[1]",
            13,
            "strict subset of `cidr`",
        ),
        (
            "except equal to cidr is not strictly inside",
            "  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/8\n        except: [10.0.0.0/8]\n",
            "spec.egress[0].to[0].ipBlock.except[0]",
            11,
            "strict subset",
        ),
        (
            "except of the other family",
            "  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/8\n        except: ['fd00::/64']\n",
            "spec.egress[0].to[0].ipBlock.except[0]",
            11,
            "strict subset",
        ),
        (
            "port 0",
            "  ingress:\n  - ports:\n    - port: 0\n",
            "spec.ingress[0].ports[0].port",
            9,
            "between 1 and 65535",
        ),
        (
            "port above 65535",
            "  ingress:\n  - ports:\n    - protocol: UDP\n      port: 65536\n",
            "spec.ingress[0].ports[0].port",
            10,
            "between 1 and 65535",
        ),
        (
            "named port needs a letter",
            "  ingress:\n  - ports:\n    - port: '8080'\n",
            "spec.ingress[0].ports[0].port",
            9,
            "at least one letter",
        ),
        (
            "named port is lower case",
            "  ingress:\n  - ports:\n    - port: HTTP\n",
            "spec.ingress[0].ports[0].port",
            9,
            "alpha-numeric",
        ),
        (
            "named port has no double hyphen",
            "  ingress:\n  - ports:\n    - port: we--b\n",
            "spec.ingress[0].ports[0].port",
            9,
            "consecutive hyphens",
        ),
        (
            "named port does not end in a hyphen",
            "  ingress:\n  - ports:\n    - port: web-\n",
            "spec.ingress[0].ports[0].port",
            9,
            "begin or end with a hyphen",
        ),
        (
            "named port at most 15 characters",
            "  ingress:\n  - ports:\n    - port: metrics-and-more\n",
            "spec.ingress[0].ports[0].port",
            9,
            "no more than 15 characters",
        ),
        (
            "endPort below port",
            "  ingress:\n  - ports:\n    - port: 8080\n      endPort: 80\n",
            "spec.ingress[0].ports[0].endPort",
            10,
            "greater than or equal to `port`",
        ),
        (
            "endPort above 65535",
            "  ingress:\n  - ports:\n    - port: 8080\n      endPort: 70000\n",
            "spec.ingress[0].ports[0].endPort",
            10,
            "between 1 and 65535",
        ),
        (
            "endPort with a named port",
            "  ingress:\n  - ports:\n    - port: http\n      endPort: 90\n",
            "spec.ingress[0].ports[0].endPort",
            10,
            "non-numeric",
        ),
        (
            "endPort without port",
            "  egress:\n  - ports:\n    - endPort: 90\n",
            "spec.egress[0].ports[0].endPort",
            9,
            "not specified",
        ),
        (
            "protocol is case-sensitive",
            "  ingress:\n  - ports:\n    - protocol: tcp\n      port: 80\n",
            "spec.ingress[0].ports[0].protocol",
            9,
            "supported values: \"TCP\", \"UDP\", \"SCTP\"",
        ),
        (
            "protocol ICMP is not in the API",
            "  egress:\n  - ports:\n    - protocol: ICMP\n",
            "spec.egress[0].ports[0].protocol",
            9,
            "unsupported value \"ICMP\"",
        ),
        (
            "policyTypes values",
            "  policyTypes:\n  - Ingress\n  - egress\n",
            "spec.policyTypes[1]",
            9,
            "supported values: \"Ingress\", \"Egress\"",
        ),
        (
            "policyTypes at most two",
            "  policyTypes: [Ingress, Egress, Ingress]\n",
            "spec.policyTypes",
            7,
            "more than two",
        ),
        (
            "type errors name the field and what was expected",
            "  ingress:\n  - ports:\n    - port: [80]\n",
            "spec.ingress[0].ports[0].port",
            9,
            "IntOrString",
        ),
        (
            "type errors in selectors",
            "  podSelector:\n    matchLabels:\n      app: 5\n",
            "spec.podSelector.matchLabels[app]",
            9,
            "expected a string",
        ),
    ];
    for (rule, body, field, line, message) in table {
        let text = format!("{HEADER}{body}---\n{HEADER}");
        let loaded = load(&text);
        let errs = errors(&loaded);
        assert_eq!(errs.len(), 1, "{rule}: {:#?}", loaded.diagnostics);
        let err = errs[0];
        assert_eq!(err.field.as_deref(), Some(*field), "{rule}");
        assert_eq!(err.origin.line, *line, "{rule}: {err}");
        assert_eq!(err.origin.file, "np.yaml", "{rule}");
        assert_eq!(
            err.object.as_deref(),
            Some("NetworkPolicy prod/np"),
            "{rule}"
        );
        assert!(err.message.contains(message), "{rule}: {err}");
        // The invalid policy is left out; the valid one after it (same name, so not a
        // duplicate of an accepted one) still loads.
        assert_eq!(loaded.cluster.policies.len(), 1, "{rule}");
        assert_eq!(
            loaded.policy_origins[PolicyId::from(0)].line,
            line_count(HEADER, body) + 2,
            "{rule}"
        );
    }
}

fn line_count(header: &str, body: &str) -> usize {
    header.lines().count() + body.lines().count()
}

#[test]
fn metadata_and_api_version_rules() {
    // (rule, document, field, line, part of the message, object)
    let table: &[(&str, &str, &str, usize, &str, &str)] = &[
        (
            "name is required",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  namespace: prod\nspec: {}\n",
            "metadata.name",
            3,
            "required",
            "NetworkPolicy prod/<unnamed>",
        ),
        (
            "name is a DNS subdomain",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: Allow_Web\nspec: {}\n",
            "metadata.name",
            4,
            "RFC 1123 subdomain",
            "NetworkPolicy default/Allow_Web",
        ),
        (
            "namespace is a DNS label",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: a\n  namespace: a.b\n",
            "metadata.namespace",
            5,
            "RFC 1123 label",
            "NetworkPolicy a.b/a",
        ),
        (
            "extensions/v1beta1 is gone",
            "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata:\n  name: a\n",
            "apiVersion",
            1,
            "unsupported apiVersion \"extensions/v1beta1\" for NetworkPolicy; expected \"networking.k8s.io/v1\"",
            "NetworkPolicy default/a",
        ),
        (
            "apiVersion is required",
            "kind: NetworkPolicy\nmetadata:\n  name: a\n",
            "apiVersion",
            1,
            "missing apiVersion",
            "NetworkPolicy default/a",
        ),
        (
            "an old version of the same group",
            "apiVersion: networking.k8s.io/v1beta1\nkind: NetworkPolicy\nmetadata:\n  name: a\n",
            "apiVersion",
            1,
            "unsupported apiVersion \"networking.k8s.io/v1beta1\"",
            "NetworkPolicy default/a",
        ),
        (
            "Deployment in extensions/v1beta1",
            "kind: Deployment\napiVersion: extensions/v1beta1\nmetadata:\n  name: a\n",
            "apiVersion",
            2,
            "expected \"apps/v1\"",
            "Deployment default/a",
        ),
    ];
    for (rule, text, field, line, message, object) in table {
        let loaded = load(text);
        let errs = errors(&loaded);
        assert_eq!(errs.len(), 1, "{rule}: {:#?}", loaded.diagnostics);
        assert_eq!(errs[0].field.as_deref(), Some(*field), "{rule}");
        assert_eq!(errs[0].origin.line, *line, "{rule}");
        assert_eq!(errs[0].object.as_deref(), Some(*object), "{rule}");
        assert!(errs[0].message.contains(message), "{rule}: {}", errs[0]);
        assert!(
            loaded.cluster.policies.is_empty() && loaded.cluster.endpoints.is_empty(),
            "{rule}"
        );
    }
}

#[test]
fn every_error_in_a_policy_is_reported() {
    let body = "  podSelector:\n    matchLabels: {app: -x}\n  ingress:\n  - ports:\n    - port: 0\n    from:\n    - {}\n  policyTypes: [Sideways]\n";
    let loaded = load(&format!("{HEADER}{body}"));
    let fields: Vec<(&str, usize)> = errors(&loaded)
        .iter()
        .map(|d| (d.field.as_deref().unwrap_or(""), d.origin.line))
        .collect();
    assert_eq!(
        fields,
        [
            ("spec.podSelector.matchLabels[app]", 8),
            ("spec.ingress[0].ports[0].port", 11),
            ("spec.ingress[0].from[0]", 13),
            ("spec.policyTypes[0]", 14),
        ]
    );
    assert!(loaded.cluster.policies.is_empty());
}

#[test]
fn duplicate_policy_names_in_a_namespace() {
    let other_ns = HEADER.replace("namespace: prod", "namespace: dev");
    let text = format!(
        "{HEADER}  podSelector: {{}}\n---\n{other_ns}  podSelector: {{}}\n---\n{HEADER}  podSelector: {{}}\n"
    );
    let loaded = load(&text);
    let errs = errors(&loaded);
    assert_eq!(errs.len(), 1, "{:#?}", loaded.diagnostics);
    assert_eq!(errs[0].field.as_deref(), Some("metadata.name"));
    assert_eq!(errs[0].origin.line, 20, "{}", errs[0]);
    assert!(
        errs[0].message.contains("already defined at np.yaml:1:1"),
        "{}",
        errs[0]
    );
    let names: Vec<String> = loaded
        .cluster
        .policies
        .iter()
        .map(|p| p.qualified_name())
        .collect();
    assert_eq!(names, ["prod/np", "dev/np"]);
}

/// Upstream (1.33, strict CIDR validation off) parses with ParseCIDRSloppy: host bits and
/// leading zeros are accepted. We accept them, warn, and use the network upstream uses.
#[test]
fn sloppy_cidrs_load_with_a_warning() {
    let body = "  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.1/8\n        except: [010.001.0.0/16]\n";
    let loaded = load(&format!("{HEADER}{body}"));
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let warnings: Vec<(&str, usize)> = loaded
        .diagnostics
        .iter()
        .map(|d| (d.field.as_deref().unwrap_or(""), d.origin.line))
        .collect();
    assert_eq!(
        warnings,
        [
            ("spec.egress[0].to[0].ipBlock.cidr", 10),
            ("spec.egress[0].to[0].ipBlock.except[0]", 11)
        ]
    );
    let policy = &loaded.cluster.policies[PolicyId::from(0)];
    let palisade_engine::Peer::IpBlock(block) = &policy.egress[0].peers[0] else {
        panic!("ipBlock peer expected")
    };
    assert_eq!(block.cidr.to_string(), "10.0.0.0/8");
    assert_eq!(block.except[0].to_string(), "10.1.0.0/16");
}

#[test]
fn misspelled_metadata_kinds_and_invalid_labels_are_errors_other_fields_are_not() {
    // (document, field, line, message); each is left out, the pod after it loads.
    let table: &[(&str, &str, usize, &str)] = &[
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: db\n  lables: {app: db}\n",
            "metadata.lables",
            5,
            "did you mean \"labels\"?",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata:\n      label: {app: db}\n    spec: {containers: [{name: c}]}\n",
            "spec.template.metadata.label",
            8,
            "did you mean \"labels\"?",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n  labelz: {team: a}\n",
            "metadata.labelz",
            5,
            "did you mean \"labels\"?",
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicyy\nmetadata: {name: deny}\nspec: {podSelector: {}}\n",
            "kind",
            2,
            "unknown kind \"NetworkPolicyy\"; did you mean \"NetworkPolicy\"?",
        ),
        (
            "kind: networkpolicy\nmetadata: {name: deny}\n",
            "kind",
            1,
            "did you mean \"NetworkPolicy\"?",
        ),
        // Labels the API server would refuse: no selector could match them as written.
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: db\n  labels: {app: db_}\n",
            "metadata.labels[app]",
            5,
            "\"db_\"",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n  labels:\n    -team: a\n",
            "metadata.labels[-team]",
            6,
            "name part must consist of",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata:\n      labels: {app: \"db app\"}\n    spec: {containers: [{name: c}]}\n",
            "spec.template.metadata.labels[app]",
            8,
            "\"db app\"",
        ),
    ];
    let good = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: c}]\n  someFutureField: true\n";
    for (text, field, line, message) in table {
        let loaded = load(&format!("{text}{good}"));
        let errs = errors(&loaded);
        assert_eq!(errs.len(), 1, "{text}: {:#?}", loaded.diagnostics);
        assert_eq!(errs[0].field.as_deref(), Some(*field), "{text}");
        assert_eq!(errs[0].origin.line, *line, "{text}");
        assert!(errs[0].message.contains(message), "{text}: {}", errs[0]);
        let names: Vec<&str> = loaded
            .cluster
            .endpoints
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["web"], "{text}");
        assert!(loaded.cluster.policies.is_empty(), "{text}");
    }
    // Kinds near ours in other groups are other resources: skipped, as before.
    let role = load("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r}\n");
    assert!(role.diagnostics.is_empty(), "{:#?}", role.diagnostics);
}

#[test]
fn same_named_kinds_of_other_groups_are_skipped() {
    let text = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: a}\nspec: {selector: all()}\n";
    let loaded = load(text);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    assert!(loaded.cluster.policies.is_empty());
    let skipped: Vec<(&str, usize)> = loaded
        .skipped_kinds
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    assert_eq!(skipped, [("NetworkPolicy (projectcalico.org/v3)", 1)]);
}
