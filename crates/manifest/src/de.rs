//! serde's `Deserializer` over the YAML tree, so k8s-openapi types deserialize straight from it
//! (no intermediate `serde_json::Value`) and skipped fields cost nothing.

use crate::yaml::{Entry, Node, Value};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use std::fmt;

#[derive(Debug)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

impl<'de, 'a: 'de> de::Deserializer<'de> for &'de Node<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.resolved().value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::UInt(u) => visitor.visit_u64(*u),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(Seq(items.iter())),
            Value::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
            }),
            // `resolved` never returns an alias.
            Value::Shared(_) => Err(de::Error::custom("unresolved alias")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.resolved().value {
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

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.resolved().value {
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
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct Seq<'de, 'a>(std::slice::Iter<'de, Node<'a>>);

impl<'de, 'a: 'de> de::SeqAccess<'de> for Seq<'de, 'a> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|node| seed.deserialize(node)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Map<'de, 'a> {
    entries: std::slice::Iter<'de, Entry<'a>>,
    value: Option<&'de Node<'a>>,
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
            Some(node) => seed.deserialize(node),
            None => Err(de::Error::custom("value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
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
            |root| Sample::deserialize(root).expect("valid"),
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
            Sample::deserialize(root).expect_err("name is not a string")
        });
        assert!(err.to_string().contains("expected a string"), "{err}");
        let err = with_root("name: a\nlabels: {}\nitems: [70000]\n", |root| {
            Sample::deserialize(root).expect_err("out of range")
        });
        assert!(err.to_string().contains("u16"), "{err}");
    }
}
