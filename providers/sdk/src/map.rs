//! [`Map`]: the map of values claw holds by the ten thousand (every
//! resource's attributes, desired, live and recorded).
//!
//! A sorted vector ([`litemap::LiteMap`]) behind the part of `BTreeMap`'s
//! interface claw uses: the same key order (deterministic output), the same
//! serde form, `Debug` and equality, but 56 bytes an entry where a B-tree
//! spends a 630-byte leaf on any map of up to 11 entries. A stack of 20,000
//! files holds about 100,000 such maps at the peak of a plan
//! (docs/benchmarks.md, "Scale").
//!
//! Costs: lookups are a binary search; building from an iterator or a JSON
//! object sorts once; `insert` out of order moves the tail (fine for the
//! tens of entries an attribute map has, quadratic for one built key by key
//! from hundreds of thousands of unsorted keys: collect those instead).

use crate::value::Value;
use litemap::LiteMap;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Deref, DerefMut, Index};

/// A map from attribute names (or map keys) to values, ordered by key.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Map(LiteMap<String, Value>);

impl Map {
    pub fn new() -> Map {
        Map(LiteMap::new())
    }
    pub fn with_capacity(n: usize) -> Map {
        Map(LiteMap::with_capacity(n))
    }
    // `len`/`is_empty` here, not only through `Deref`, so that
    // `skip_serializing_if = "Map::is_empty"` resolves.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut Value> {
        self.0.iter_mut().map(|(_, v)| v)
    }
    pub fn into_keys(self) -> impl DoubleEndedIterator<Item = String> {
        self.into_iter().map(|(k, _)| k)
    }
}

impl Deref for Map {
    type Target = LiteMap<String, Value>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Map {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

/// `map["key"]`: panics when the key is absent, as `BTreeMap` does.
impl Index<&str> for Map {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        match self.0.get(key) {
            Some(v) => v,
            None => panic!("no entry {key:?} in the map"),
        }
    }
}

impl Index<&String> for Map {
    type Output = Value;
    fn index(&self, key: &String) -> &Value {
        &self[key.as_str()]
    }
}

impl FromIterator<(String, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Map {
        Map(iter.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, Value); N]> for Map {
    fn from(pairs: [(String, Value); N]) -> Map {
        pairs.into_iter().collect()
    }
}

impl Extend<(String, Value)> for Map {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, iter: I) {
        self.0.extend(iter)
    }
}

impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_tuple_vec().into_iter()
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = (&'a String, &'a Value);
    type IntoIter = <&'a LiteMap<String, Value> as IntoIterator>::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        (&self.0).into_iter()
    }
}

impl<'a> IntoIterator for &'a mut Map {
    type Item = (&'a String, &'a mut Value);
    type IntoIter = <&'a mut LiteMap<String, Value> as IntoIterator>::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        (&mut self.0).into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_keys_sorted_and_the_last_of_a_repeated_key() {
        let m: Map = [
            ("b".to_string(), Value::Int(1)),
            ("a".to_string(), Value::Int(2)),
            ("b".to_string(), Value::Int(3)),
        ]
        .into();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m["b"], Value::Int(3));
        let mut m2 = m.clone();
        m2.insert("0".into(), Value::Null);
        assert_eq!(m2.first().map(|(k, _)| k.as_str()), Some("0"));
        assert_eq!(format!("{m:?}"), r#"{"a": 2, "b": 3}"#);
    }

    #[test]
    fn reads_an_unsorted_json_object_in_key_order() {
        let v: Value = serde_json::from_str(r#"{"z": 1, "a": {"y": 2, "x": 3}, "z": 4}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"a":{"x":3,"y":2},"z":4}"#
        );
    }
}
