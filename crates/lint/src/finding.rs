//! What a lint reports: the catalogue of lints with stable ids, and one finding.

use palisade_manifest::Origin;
use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, nothing is broken (SARIF `note`).
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Note => "note",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every lint, in id order. Ids are stable: never renumber, only append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LintId {
    InvalidManifest,
    DnsBlocked,
    EgressClusterOnly,
    PolicySelectsNothing,
    PeerSelectsNothing,
    NamedPortUndeclared,
    IpBlockCoversPods,
    RulesIgnoredByPolicyTypes,
    HalfOpenPath,
    RedundantPolicy,
    ShadowedRule,
    NoDefaultDeny,
}

impl LintId {
    pub const ALL: [LintId; 12] = [
        Self::InvalidManifest,
        Self::DnsBlocked,
        Self::EgressClusterOnly,
        Self::PolicySelectsNothing,
        Self::PeerSelectsNothing,
        Self::NamedPortUndeclared,
        Self::IpBlockCoversPods,
        Self::RulesIgnoredByPolicyTypes,
        Self::HalfOpenPath,
        Self::RedundantPolicy,
        Self::ShadowedRule,
        Self::NoDefaultDeny,
    ];

    /// The stable id, `PAL001`.
    pub fn code(self) -> String {
        format!("PAL{:03}", self as usize)
    }

    /// A short kebab-case name, for people and for SARIF `rules[].name`.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidManifest => "invalid-manifest",
            Self::DnsBlocked => "dns-blocked",
            Self::EgressClusterOnly => "egress-cluster-only",
            Self::PolicySelectsNothing => "policy-selects-nothing",
            Self::PeerSelectsNothing => "peer-selects-nothing",
            Self::NamedPortUndeclared => "named-port-undeclared",
            Self::IpBlockCoversPods => "ipblock-covers-pods",
            Self::RulesIgnoredByPolicyTypes => "rules-ignored-by-policy-types",
            Self::HalfOpenPath => "half-open-path",
            Self::RedundantPolicy => "redundant-policy",
            Self::ShadowedRule => "shadowed-rule",
            Self::NoDefaultDeny => "no-default-deny",
        }
    }

    /// The severity findings of this lint carry (the loader's diagnostics keep their own).
    pub fn severity(self) -> Severity {
        match self {
            Self::InvalidManifest | Self::DnsBlocked | Self::RulesIgnoredByPolicyTypes => {
                Severity::Error
            }
            Self::EgressClusterOnly
            | Self::PolicySelectsNothing
            | Self::PeerSelectsNothing
            | Self::NamedPortUndeclared
            | Self::IpBlockCoversPods
            | Self::HalfOpenPath => Severity::Warning,
            Self::RedundantPolicy | Self::ShadowedRule | Self::NoDefaultDeny => Severity::Note,
        }
    }

    /// One line on what the lint looks for.
    pub fn summary(self) -> &'static str {
        match self {
            Self::InvalidManifest => "A manifest could not be loaded as written.",
            Self::DnsBlocked => {
                "Egress isolation leaves pods unable to reach cluster DNS on UDP and TCP port 53."
            }
            Self::EgressClusterOnly => {
                "An egress rule meant for outside access names only pod selectors, which match cluster pods only."
            }
            Self::PolicySelectsNothing => "A policy's podSelector selects no pod.",
            Self::PeerSelectsNothing => "A peer selector of a rule selects no pod or namespace.",
            Self::NamedPortUndeclared => {
                "A named port is declared by no destination pod (with that protocol)."
            }
            Self::IpBlockCoversPods => {
                "An ipBlock covers pod addresses, which change when pods are rescheduled."
            }
            Self::RulesIgnoredByPolicyTypes => {
                "Rules are written for a direction that policyTypes leaves out, so they are ignored."
            }
            Self::HalfOpenPath => {
                "One side allows a connection that the other side's isolation never allows."
            }
            Self::RedundantPolicy => "Removing the policy changes no connection.",
            Self::ShadowedRule => "Removing the rule changes no connection.",
            Self::NoDefaultDeny => "A namespace has no default-deny policy for a direction.",
        }
    }
}

impl fmt::Display for LintId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

/// One problem found: where, which objects, why it matters, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub lint: LintId,
    pub severity: Severity,
    /// Where the main object was written; `None` only for clusters built without origins.
    pub location: Option<Origin>,
    /// `NetworkPolicy ns/name`, `Deployment ns/name`, ...
    pub objects: Vec<String>,
    pub message: String,
    /// Items the message refers to: affected pods, paths, coverage figures.
    pub details: Vec<String>,
    pub fix: String,
}

impl Finding {
    pub fn new(lint: LintId, location: Option<Origin>, message: impl Into<String>) -> Self {
        Self {
            lint,
            severity: lint.severity(),
            location,
            objects: Vec::new(),
            message: message.into(),
            details: Vec::new(),
            fix: String::new(),
        }
    }

    pub fn objects(mut self, objects: impl IntoIterator<Item = String>) -> Self {
        self.objects.extend(objects);
        self
    }

    pub fn details(mut self, details: impl IntoIterator<Item = String>) -> Self {
        self.details.extend(details);
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
}
