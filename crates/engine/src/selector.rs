//! Label selectors with the exact matching rules of `metav1.LabelSelector`.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Operator {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "In" => Some(Self::In),
            "NotIn" => Some(Self::NotIn),
            "Exists" => Some(Self::Exists),
            "DoesNotExist" => Some(Self::DoesNotExist),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

impl Requirement {
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            // Upstream: NotIn also matches objects that lack the key.
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// An empty selector (no labels, no expressions) selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct LabelSelector {
    pub match_labels: Labels,
    pub match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn with_labels<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            match_labels: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    pub fn selects_everything(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for LabelSelector {
    /// Renders like `kubectl get -l` syntax; `{}` for the empty selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.selects_everything() {
            return f.write_str("{}");
        }
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            parts.push(match r.operator {
                Operator::In => format!("{} in ({})", r.key, r.values.join(",")),
                Operator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                Operator::Exists => r.key.clone(),
                Operator::DoesNotExist => format!("!{}", r.key),
            });
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: Labels::new(),
            match_expressions: vec![Requirement {
                key: key.into(),
                operator,
                values: values.iter().map(|v| v.to_string()).collect(),
            }],
        }
    }

    #[test]
    fn operators_follow_upstream_truth_table() {
        use Operator::*;
        let web = labels(&[("app", "web")]);
        let db = labels(&[("app", "db")]);
        let none = labels(&[("tier", "x")]);
        // (selector, matches web, matches db, matches unlabelled)
        let table = [
            (req("app", In, &["web", "api"]), true, false, false),
            (req("app", NotIn, &["web"]), false, true, true),
            (req("app", Exists, &[]), true, true, false),
            (req("app", DoesNotExist, &[]), false, false, true),
            (
                LabelSelector::with_labels([("app", "web")]),
                true,
                false,
                false,
            ),
            (LabelSelector::everything(), true, true, true),
        ];
        for (sel, w, d, n) in table {
            assert_eq!(sel.matches(&web), w, "{sel} on app=web");
            assert_eq!(sel.matches(&db), d, "{sel} on app=db");
            assert_eq!(sel.matches(&none), n, "{sel} on unlabelled");
        }
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let mut sel = req("tier", Operator::In, &["front"]);
        sel.match_labels.insert("app".into(), "web".into());
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "front")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "back")])));
        assert!(!sel.matches(&labels(&[("app", "db"), ("tier", "front")])));
    }

    #[test]
    fn display_uses_kubectl_syntax() {
        let mut sel = req("env", Operator::NotIn, &["prod", "stage"]);
        sel.match_labels.insert("app".into(), "web".into());
        assert_eq!(sel.to_string(), "app=web,env notin (prod,stage)");
        assert_eq!(LabelSelector::everything().to_string(), "{}");
    }
}
