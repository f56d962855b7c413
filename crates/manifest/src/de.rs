//! serde's `Deserializer` over the YAML tree, so k8s-openapi types deserialize straight from it
//! (no intermediate `serde_json::Value`) and skipped fields cost nothing. Strict where a typo
//! would change what is allowed: a field the type does not have is an error there, as with the
//! API server's strict field validation (`kubectl apply` since 1.27), not a silent skip.

use crate::suggest::nearest;
use crate::yaml::{Entry, Node, Value};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use std::fmt;

#[derive(Debug)]
pub(crate) struct Error {
    message: String,
    /// The key of a field the type does not have: the error is about that key, below the
    /// struct serde reports it at.
    unknown_field: Option<String>,
}

impl Error {
    pub fn unknown_field(&self) -> Option<&str> {
        self.unknown_field.as_deref()
    }

    fn unknown(key: &str, fields: &[&str]) -> Self {
        let message = match nearest(key, fields.iter().copied()) {
            Some(near) => format!("unknown field {key:?}; did you mean {near:?}?"),
            None => format!(
                "unknown field {key:?}; expected one of {}",
                fields
                    .iter()
                    .map(|f| format!("{f:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Self {
            message,
            unknown_field: Some(key.to_string()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            message: msg.to_string(),
            unknown_field: None,
        }
    }
}

/// Which unknown fields are errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// Everywhere (policies: a misspelled `from:` would allow every source).
    All,
    /// In object metadata (`ObjectMeta`, also a template's) and below: a misspelled `labels:`
    /// would leave a pod unselected by the policies meant to isolate it. The rest of a kind
    /// newer than k8s-openapi's API version may have fields it does not know.
    Metadata,
}

/// A YAML node to deserialize, and which unknown fields are errors.
#[derive(Clone, Copy)]
pub(crate) struct De<'de, 'a> {
    node: &'de Node<'a>,
    strictness: Strictness,
}

impl<'de, 'a> De<'de, 'a> {
    pub fn new(node: &'de Node<'a>, strictness: Strictness) -> Self {
        Self { node, strictness }
    }

    fn child(self, node: &'de Node<'a>) -> Self {
        Self { node, ..self }
    }

    fn strict_in(self, struct_name: &str) -> bool {
        self.strictness == Strictness::All || struct_name == "ObjectMeta"
    }
}

impl<'de, 'a: 'de> de::Deserializer<'de> for De<'de, 'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.resolved().value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::UInt(u) => visitor.visit_u64(*u),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter(),
                de: self,
            }),
            Value::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
                de: self,
            }),
            // `resolved` never returns an alias.
            Value::Shared(_) => Err(de::Error::custom("unresolved alias")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node.resolved().value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if !self.strict_in(name) {
            return self.deserialize_any(visitor);
        }
        if let Value::Map(entries) = &self.node.resolved().value
            && let Some(entry) = entries.iter().find(|e| !fields.contains(&e.key.as_ref()))
        {
            return Err(Error::unknown(&entry.key, fields));
        }
        Self::new(self.node, Strictness::All).deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.node.resolved().value {
            Value::Str(s) => visitor.visit_enum(s.as_ref().into_deserializer()),
            _ => Err(de::Error::custom(
                "expected a string naming an enum variant",
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct Seq<'de, 'a> {
    items: std::slice::Iter<'de, Node<'a>>,
    de: De<'de, 'a>,
}

impl<'de, 'a: 'de> de::SeqAccess<'de> for Seq<'de, 'a> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let de = self.de;
        self.items
            .next()
            .map(|node| seed.deserialize(de.child(node)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'de, 'a> {
    entries: std::slice::Iter<'de, Entry<'a>>,
    value: Option<&'de Node<'a>>,
    de: De<'de, 'a>,
}

impl<'de, 'a: 'de> de::MapAccess<'de> for Map<'de, 'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(&entry.value);
        let key: de::value::StrDeserializer<'_, Error> = entry.key.as_ref().into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(node) => seed.deserialize(self.de.child(node)),
            None => Err(de::Error::custom("value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::{De, Strictness};
    use crate::yaml::{Node, parse_piece};
    use serde::Deserialize;
    use std::collections::BTreeMap;

    fn with_root<R>(text: &str, f: impl FnOnce(&Node<'_>) -> R) -> R {
        let mut root = None;
        parse_piece(text, 0, &mut |d: Result<_, _>| {
            root = Some(d.expect("parses"))
        });
        f(&root.expect("one document"))
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Sample {
        name: String,
        count: Option<i32>,
        labels: BTreeMap<String, String>,
        items: Vec<u16>,
    }

    #[test]
    fn deserializes_structs_options_maps_and_aliases() {
        let got: Sample = with_root(
            "name: web\ncount: null\nlabels: &l {a: b}\nitems: [1, 2]\nextra: *l\n",
            |root| Sample::deserialize(De::new(root, Strictness::Metadata)).expect("valid"),
        );
        assert_eq!(
            got,
            Sample {
                name: "web".into(),
                count: None,
                labels: [("a".to_string(), "b".to_string())].into(),
                items: vec![1, 2],
            }
        );
    }

    #[test]
    fn type_errors_name_what_was_expected() {
        let err = with_root("name: 5\nlabels: {}\nitems: []\n", |root| {
            Sample::deserialize(De::new(root, Strictness::Metadata))
                .expect_err("name is not a string")
        });
        assert!(err.to_string().contains("expected a string"), "{err}");
        let err = with_root("name: a\nlabels: {}\nitems: [70000]\n", |root| {
            Sample::deserialize(De::new(root, Strictness::Metadata)).expect_err("out of range")
        });
        assert!(err.to_string().contains("u16"), "{err}");
    }
}
