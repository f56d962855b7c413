//! The lints. Every decision about connections comes from the engine's [`Analysis`]; this module
//! only decides which questions to ask and how to explain the answers.

mod coverage;
mod dns;
mod half_open;
mod paths;
mod rules;
mod selectors;

use crate::finding::{Finding, LintId, Severity};
use crate::sample::{Allowed, endpoint_object};
use palisade_engine::{Analysis, Direction, EndpointId, PolicyId, TiSlice};
use palisade_manifest::{Diagnostic, Loaded, Origin};
use std::cell::OnceCell;

/// Lints a loaded manifest set: the loader's diagnostics first, then every lint.
pub fn lint(loaded: &Loaded) -> Vec<Finding> {
    let analysis = Analysis::new(loaded.cluster.clone());
    let mut findings: Vec<Finding> = loaded.diagnostics.iter().map(diagnostic_finding).collect();
    findings.extend(lint_analysis(
        &analysis,
        &loaded.policy_origins,
        &loaded.endpoint_origins,
        &loaded.namespace_origins,
    ));
    findings
}

/// Lints a cluster already compiled by the engine. The origins are parallel to the cluster's
/// policies, endpoints and namespaces; missing entries leave findings unlocated.
pub fn lint_analysis(
    analysis: &Analysis,
    policy_origins: &TiSlice<PolicyId, Origin>,
    endpoint_origins: &TiSlice<EndpointId, Origin>,
    namespace_origins: &[Option<Origin>],
) -> Vec<Finding> {
    let ctx = Ctx {
        analysis,
        policy_origins,
        endpoint_origins,
        namespace_origins,
        tables: OnceCell::new(),
    };
    let mut findings = Vec::new();
    let checks: [(&str, Check); 9] = [
        ("dns", dns::check),
        ("egress-cluster-only", selectors::egress_cluster_only),
        ("selects-nothing", selectors::selects_nothing),
        ("named-ports", rules::named_ports),
        ("ip-blocks-cover-pods", rules::ip_blocks_cover_pods),
        ("ignored-directions", rules::ignored_directions),
        ("half-open", half_open::half_open),
        ("redundancy", paths::redundancy),
        ("coverage", coverage::check),
    ];
    // Each lint's time, for `PALISADE_LOG=palisade_lint=debug` on large clusters.
    for (name, check) in checks {
        let started = std::time::Instant::now();
        check(&ctx, &mut findings);
        tracing::debug!(lint = name, elapsed = ?started.elapsed(), "lint checked");
    }
    findings
        .sort_by(|a, b| (a.lint, &a.location, &a.message).cmp(&(b.lint, &b.location, &b.message)));
    findings
}

fn diagnostic_finding(diagnostic: &Diagnostic) -> Finding {
    let mut message = String::new();
    if let Some(field) = &diagnostic.field {
        message.push_str(field);
        message.push_str(": ");
    }
    message.push_str(&diagnostic.message);
    let mut finding = Finding::new(
        LintId::InvalidManifest,
        Some(diagnostic.origin.clone()),
        message,
    )
    .objects(diagnostic.object.clone())
    .fix("Correct the manifest as described; the object is left out of every other check until then.");
    finding.severity = match diagnostic.severity {
        palisade_manifest::Severity::Warning => Severity::Warning,
        palisade_manifest::Severity::Error => Severity::Error,
    };
    finding
}

/// A lint: adds its findings.
type Check = fn(&Ctx<'_>, &mut Vec<Finding>);

/// What every lint needs: the engine's view and where objects were written.
struct Ctx<'a> {
    analysis: &'a Analysis,
    policy_origins: &'a TiSlice<PolicyId, Origin>,
    endpoint_origins: &'a TiSlice<EndpointId, Origin>,
    namespace_origins: &'a [Option<Origin>],
    /// The whole-cluster tables, built once for the lints that need them.
    tables: OnceCell<Allowed<'a>>,
}

impl<'a> Ctx<'a> {
    fn tables(&self) -> &Allowed<'a> {
        self.tables.get_or_init(|| Allowed::new(self.analysis))
    }

    fn policy_location(&self, policy: PolicyId) -> Option<Origin> {
        self.policy_origins.get(policy).cloned()
    }

    fn endpoint_location(&self, endpoint: EndpointId) -> Option<Origin> {
        self.endpoint_origins.get(endpoint).cloned()
    }

    /// Where the Namespace object was written; `None` for namespaces only referred to.
    fn namespace_location(&self, name: &str) -> Option<Origin> {
        let index = self
            .analysis
            .cluster()
            .namespaces
            .iter()
            .position(|n| n.name == name)?;
        self.namespace_origins.get(index).cloned().flatten()
    }

    fn policy_object(&self, policy: PolicyId) -> String {
        format!(
            "NetworkPolicy {}",
            self.analysis.policy(policy).qualified_name()
        )
    }

    fn endpoint_object(&self, endpoint: EndpointId) -> String {
        endpoint_object(self.analysis.endpoint(endpoint))
    }

    fn endpoint_ids(&self) -> impl Iterator<Item = EndpointId> + use<> {
        self.analysis.cluster().endpoints.keys()
    }
}

/// `spec.egress[2]`: where a rule sits in its policy.
fn rule_path(direction: Direction, rule: usize) -> String {
    format!("spec.{direction}[{rule}]")
}

/// `spec.egress[2].to[1]`.
fn peer_path(direction: Direction, rule: usize, peer: usize) -> String {
    let list = match direction {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    format!("{}.{list}[{peer}]", rule_path(direction, rule))
}

/// Names at most `limit` items and says how many more there are, so findings stay readable on
/// large clusters.
fn name_some(items: &[String], limit: usize) -> String {
    if items.len() <= limit {
        return items.join(", ");
    }
    format!(
        "{} and {} more",
        items[..limit].join(", "),
        items.len() - limit
    )
}
