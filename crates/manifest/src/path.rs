//! Field paths in the API server's notation (`spec.ingress[0].from[1].ipBlock.cidr`,
//! `metadata.labels[app]`) and where they were written.

use crate::Severity;
use crate::yaml::{Node, Pos, Value};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// A struct field: `.name`.
    Field(String),
    /// A map key: `[key]`.
    Key(String),
    Index(usize),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(Vec<Segment>);

impl FieldPath {
    pub fn root() -> Self {
        Self::default()
    }

    pub fn new(field: &str) -> Self {
        Self::root().child(field)
    }

    pub fn child(&self, field: &str) -> Self {
        self.with(Segment::Field(field.to_string()))
    }

    pub fn key(&self, key: &str) -> Self {
        self.with(Segment::Key(key.to_string()))
    }

    pub fn index(&self, index: usize) -> Self {
        self.with(Segment::Index(index))
    }

    fn with(&self, segment: Segment) -> Self {
        let mut segments = Vec::with_capacity(self.0.len() + 1);
        segments.extend_from_slice(&self.0);
        segments.push(segment);
        Self(segments)
    }

    /// The path serde_path_to_error reports. It does not tell struct fields from map keys;
    /// keys of the string maps in object metadata and selectors are written `[key]`.
    pub fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        const STRING_MAPS: [&str; 4] = ["labels", "annotations", "matchLabels", "nodeSelector"];
        let mut out = Self::root();
        for segment in path {
            let in_map = matches!(out.0.last(), Some(Segment::Field(f)) if STRING_MAPS.contains(&f.as_str()));
            out.0.push(match segment {
                S::Seq { index } => Segment::Index(*index),
                S::Map { key } if !in_map && is_field_name(key) => Segment::Field(key.clone()),
                S::Map { key } => Segment::Key(key.clone()),
                S::Enum { variant } => Segment::Field(variant.clone()),
                S::Unknown => break,
            });
        }
        out
    }

    /// Where the field was written: its value for scalars, its key for collections and map
    /// keys (where the name stands). A missing field resolves to its nearest written ancestor.
    pub fn locate(&self, root: &Node<'_>) -> Pos {
        let mut node = root;
        let (mut key_pos, mut at_map_key) = (None, false);
        for segment in &self.0 {
            let next = match (segment, &node.resolved().value) {
                (Segment::Field(k) | Segment::Key(k), Value::Map(entries)) => entries
                    .iter()
                    .find(|e| e.key == *k)
                    .map(|e| (&e.value, Some(e.key_pos))),
                (Segment::Index(i), Value::Seq(items)) => items.get(*i).map(|n| (n, None)),
                _ => None,
            };
            match next {
                Some((child, pos)) => {
                    (node, key_pos) = (child, pos);
                    at_map_key = matches!(segment, Segment::Key(_));
                }
                None => break,
            }
        }
        match key_pos {
            Some(pos) if at_map_key || node.is_collection() => pos,
            _ => node.pos,
        }
    }
}

/// Problems found in one object, by field; any error leaves the object out.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub Vec<(Severity, FieldPath, String)>);

impl Problems {
    pub fn error(&mut self, path: FieldPath, message: impl Into<String>) {
        self.0.push((Severity::Error, path, message.into()));
    }

    pub fn warn(&mut self, path: FieldPath, message: impl Into<String>) {
        self.0.push((Severity::Warning, path, message.into()));
    }

    /// Reports each of `messages` (a validator's output) as one error about `value`.
    pub fn invalid(&mut self, path: &FieldPath, value: &str, messages: Vec<String>) {
        if !messages.is_empty() {
            self.error(
                path.clone(),
                format!("invalid value {value:?}: {}", messages.join("; ")),
            );
        }
    }

    pub fn has_errors(&self) -> bool {
        self.0
            .iter()
            .any(|(severity, ..)| *severity == Severity::Error)
    }
}

fn is_field_name(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Field(name) if i == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Key(key) => write!(f, "[{key}]")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_piece;

    #[test]
    fn renders_like_the_api_server_and_locates_nearest_ancestor() {
        let text = "spec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: web\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8}\n";
        let mut root = None;
        parse_piece(text, 0, &mut |d: Result<_, _>| {
            root = Some(d.expect("parses"))
        });
        let root = root.expect("doc");
        let spec = FieldPath::new("spec");
        let labels = spec.child("podSelector").child("matchLabels");
        let cidr = spec
            .child("ingress")
            .index(0)
            .child("from")
            .index(0)
            .child("ipBlock");
        // (path, rendered, line, column)
        let table = [
            (
                labels.key("app.kubernetes.io/name"),
                "spec.podSelector.matchLabels[app.kubernetes.io/name]",
                4,
                7,
            ),
            (labels.clone(), "spec.podSelector.matchLabels", 3, 5),
            (
                cidr.child("cidr"),
                "spec.ingress[0].from[0].ipBlock.cidr",
                7,
                23,
            ),
            (
                cidr.child("except").index(0),
                "spec.ingress[0].from[0].ipBlock.except[0]",
                7,
                7,
            ),
            (spec.child("ingress").index(3), "spec.ingress[3]", 5, 3),
            (spec.child("egress"), "spec.egress", 1, 1),
        ];
        for (path, rendered, line, column) in table {
            assert_eq!(path.to_string(), rendered);
            assert_eq!(path.locate(&root), Pos { line, column }, "{rendered}");
        }
    }
}
