//! Values that flow between the engine and providers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

pub use crate::map::Map;

/// Attributes of one resource instance.
pub type Attrs = Map;

/// A configuration or live value.
#[derive(Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<Value>),
    Map(Map),
    /// A sensitive value: shown as `(sensitive)`, stored as a keyed hash.
    Secret(Secret),
    /// A value known only after apply (an id of a resource not yet created).
    Unknown,
}

/// A sensitive value. Equality compares the keyed hash, so a secret read back
/// from state (hash only) equals the same secret read from the environment.
///
/// The hash is made here and only here, from the clear text and the stack's
/// salt ([`crate::digest::keyed_digest`]): no provider can make a `Secret`
/// that stores a plain digest of its value.
///
/// One pointer wide (its parts shared), so that a [`Value`] stays small and
/// cloning a secret costs a reference count.
#[derive(Clone)]
pub struct Secret(Arc<SecretParts>);

struct SecretParts {
    hash: String,
    plain: Option<Arc<str>>,
    /// The secret values `plain` was built from (a string interpolating a
    /// secret holds the secret's value, not the whole string), for [`Secret::redact`].
    parts: Arc<[Arc<str>]>,
    /// The hash older versions of claw stored (`sha256:` of salt, NUL,
    /// clear text), so that a state written by them still compares equal.
    legacy: Option<String>,
}

/// The salted hash claw stored before keyed digests (read-only: recognised
/// in old states, never written).
fn legacy_hash(plain: &str, salt: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(plain.as_bytes());
    format!("sha256:{}", hex::encode(h.finalize()))
}

impl Secret {
    /// A secret from its clear text, hashed with the stack's salt.
    pub fn new(plain: impl Into<Arc<str>>, salt: &str) -> Secret {
        let plain: Arc<str> = plain.into();
        Secret::joined(plain.clone(), salt, vec![plain])
    }
    /// A secret built from a text that contains the secret values `parts`
    /// (`"TOKEN=${env.TOKEN}"`): hashed whole, redacted part by part.
    pub fn joined(plain: impl Into<Arc<str>>, salt: &str, parts: Vec<Arc<str>>) -> Secret {
        let plain: Arc<str> = plain.into();
        let mut parts: Vec<Arc<str>> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        // Longest first, so that a part containing another is redacted whole.
        parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
        parts.dedup();
        Secret(Arc::new(SecretParts {
            hash: crate::digest::keyed_digest(salt, plain.as_bytes()),
            legacy: Some(legacy_hash(&plain, salt)),
            plain: Some(plain),
            parts: parts.into(),
        }))
    }
    /// A secret known only by its hash, made from its clear text, which is not
    /// kept (a live value a provider must never write back).
    pub fn hash_only(plain: &str, salt: &str) -> Secret {
        let s = Secret::new(plain, salt);
        Secret(Arc::new(SecretParts {
            hash: s.0.hash.clone(),
            legacy: s.0.legacy.clone(),
            plain: None,
            parts: Arc::from(Vec::new()),
        }))
    }
    /// A secret known only by its hash (read back from state or a plan file).
    pub fn from_hash(hash: impl Into<String>) -> Secret {
        Secret(Arc::new(SecretParts {
            hash: hash.into(),
            plain: None,
            parts: Arc::from(Vec::new()),
            legacy: None,
        }))
    }
    /// The keyed hash (safe to store and print).
    pub fn hash(&self) -> &str {
        &self.0.hash
    }
    /// True when the hash is in the form older versions of claw stored
    /// (not keyed): the object should be recorded again.
    pub fn is_legacy(&self) -> bool {
        !self.0.hash.starts_with(crate::digest::KEYED_PREFIX)
    }
    /// The clear text, when known. Providers call this only to write the value
    /// to its destination; never log or return it.
    pub fn expose(&self) -> Option<&str> {
        self.0.plain.as_deref()
    }
    /// The secret values this secret is made of (non-empty, longest first).
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.0.parts.iter().map(|p| &**p)
    }
    /// `text` with every secret value of this secret replaced by `(sensitive)`
    /// (for command output shown in an error).
    pub fn redact(&self, text: &str) -> String {
        redact_all(text, self.parts())
    }
}

/// `text` with every one of `parts` replaced by `(sensitive)`.
pub fn redact_all<'a>(text: &str, parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut parts: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut out = text.to_string();
    for p in parts {
        if out.contains(p) {
            out = out.replace(p, "(sensitive)");
        }
    }
    out
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&*self.0, &*other.0);
        a.hash == b.hash
            || a.legacy.as_deref() == Some(b.hash.as_str())
            || b.legacy.as_deref() == Some(a.hash.as_str())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Map(m) => f.debug_map().entries(m).finish(),
            Value::Secret(_) => f.write_str("(sensitive)"),
            Value::Unknown => f.write_str("(known after apply)"),
        }
    }
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_secret(&self) -> Option<&Secret> {
        match self {
            Value::Secret(s) => Some(s),
            _ => None,
        }
    }
    /// A string or the clear text of a secret (for providers writing the value).
    pub fn expose_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Secret(s) => s.expose(),
            _ => None,
        }
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }
    /// True when this value or anything inside it is unknown.
    pub fn contains_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::List(l) => l.iter().any(Value::contains_unknown),
            Value::Map(m) => m.values().any(Value::contains_unknown),
            _ => false,
        }
    }
    /// True when this value or anything inside it is sensitive.
    pub fn contains_secret(&self) -> bool {
        match self {
            Value::Secret(_) => true,
            Value::List(l) => l.iter().any(Value::contains_secret),
            Value::Map(m) => m.values().any(Value::contains_secret),
            _ => false,
        }
    }
    /// The secret values inside this value (for redacting command output).
    pub fn secret_parts(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_parts(&mut out);
        out
    }
    fn collect_parts<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Value::Secret(s) => out.extend(s.parts()),
            Value::List(l) => l.iter().for_each(|v| v.collect_parts(out)),
            Value::Map(m) => m.values().for_each(|v| v.collect_parts(out)),
            _ => {}
        }
    }
    /// True when a secret inside this value carries a hash in the form older
    /// versions of claw stored (see [`Secret::is_legacy`]).
    pub fn contains_legacy_digest(&self) -> bool {
        match self {
            Value::Secret(s) => s.is_legacy(),
            Value::List(l) => l.iter().any(Value::contains_legacy_digest),
            Value::Map(m) => m.values().any(Value::contains_legacy_digest),
            _ => false,
        }
    }
    /// Follows a dotted path (`a.b[0].c`) into maps and lists.
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        let mut cur = self;
        for seg in split_path(path) {
            cur = match seg {
                PathSeg::Key(k) => cur.as_map()?.get(&k)?,
                PathSeg::Index(i) => cur.as_list()?.get(i)?,
            };
        }
        Some(cur)
    }

    /// The storable JSON form: secrets become `{"$sensitive": "<keyed hash>"}`,
    /// unknowns `{"$unknown": true}`. Never contains clear-text secrets.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(x) => serde_json::Number::from_f64(*x)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::String(s) => J::String(s.clone()),
            Value::List(l) => J::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Value::Secret(s) => {
                let mut o = serde_json::Map::new();
                o.insert("$sensitive".into(), J::String(s.0.hash.clone()));
                J::Object(o)
            }
            Value::Unknown => {
                let mut o = serde_json::Map::new();
                o.insert("$unknown".into(), J::Bool(true));
                J::Object(o)
            }
        }
    }

    /// JSON with secrets in clear text, for a provider that must send the value
    /// to its destination (an API body). Unknown values become null.
    pub fn to_json_exposed(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Secret(s) => s
                .expose()
                .map(|p| J::String(p.to_string()))
                .unwrap_or(J::Null),
            Value::Unknown => J::Null,
            Value::List(l) => J::Array(l.iter().map(Value::to_json_exposed).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.to_json_exposed()))
                    .collect(),
            ),
            other => other.to_json(),
        }
    }

    /// The inverse of [`Value::to_json`]; plain JSON also converts (objects to maps).
    pub fn from_json(j: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            J::String(s) => Value::String(s.clone()),
            J::Array(a) => Value::List(a.iter().map(Value::from_json).collect()),
            J::Object(o) => {
                if o.len() == 1 {
                    if let Some(J::String(h)) = o.get("$sensitive") {
                        return Value::Secret(Secret::from_hash(h.clone()));
                    }
                    if o.get("$unknown") == Some(&J::Bool(true)) {
                        return Value::Unknown;
                    }
                }
                Value::Map(
                    o.iter()
                        .map(|(k, v)| (k.clone(), Value::from_json(v)))
                        .collect(),
                )
            }
        }
    }

    /// A short one-line rendering for plans: strings quoted, secrets `(sensitive)`.
    pub fn render_inline(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(x) => x.to_string(),
            Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
            Value::Secret(_) => "(sensitive)".into(),
            Value::Unknown => "(known after apply)".into(),
            Value::List(l) => {
                let parts: Vec<String> = l.iter().map(Value::render_inline).collect();
                format!("[{}]", parts.join(", "))
            }
            Value::Map(m) => {
                let parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{} = {}", render_key(k), v.render_inline()))
                    .collect();
                format!("{{ {} }}", parts.join(", "))
            }
        }
    }
}

/// A map key as written in TOML: bare when it can be, else quoted.
pub fn render_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        serde_json::to_string(k).unwrap_or_default()
    }
}

/// The same document as [`Value::to_json`], written without building it.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(x) if x.is_finite() => s.serialize_f64(*x),
            Value::Float(_) => s.serialize_unit(),
            Value::String(v) => s.serialize_str(v),
            Value::List(l) => s.collect_seq(l),
            Value::Map(m) => s.collect_map(m),
            Value::Secret(x) => {
                let mut o = s.serialize_map(Some(1))?;
                o.serialize_entry("$sensitive", &x.0.hash)?;
                o.end()
            }
            Value::Unknown => {
                let mut o = s.serialize_map(Some(1))?;
                o.serialize_entry("$unknown", &true)?;
                o.end()
            }
        }
    }
}

/// What [`Value::from_json`] makes of the same document, read without an
/// intermediate `serde_json::Value`.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(i64::try_from(u).map_or(Value::Float(u as f64), Value::Int))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        Ok(Value::Float(x))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut l = Vec::with_capacity(a.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = a.next_element()? {
            l.push(v);
        }
        Ok(Value::List(l))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut m = Map::with_capacity(a.size_hint().unwrap_or(0).min(4096));
        let mut unsorted = Vec::new();
        while let Some((k, v)) = a.next_entry::<String, Value>()? {
            if let Some(kv) = m.try_append(k, v) {
                unsorted.push(kv);
            }
        }
        // Out of order (or repeated: the last one wins, as in a JSON object).
        m.extend(unsorted);
        if m.len() == 1 {
            match m.first() {
                Some((k, Value::String(h))) if k == "$sensitive" => {
                    return Ok(Value::Secret(Secret::from_hash(h.clone())));
                }
                Some((k, Value::Bool(true))) if k == "$unknown" => return Ok(Value::Unknown),
                _ => {}
            }
        }
        Ok(Value::Map(m))
    }
}

impl schemars::JsonSchema for Value {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Value".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Any value. Sensitive values appear as {\"$sensitive\": \"hmac-sha256:<hash keyed with the stack's salt>\"}, values known only after apply as {\"$unknown\": true}."
        })
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

/// One step of an attribute path.
#[derive(Debug, Clone, PartialEq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// Whether `path` is one key, with nothing to split (`name`, not `a.b`,
/// `a[0]` or `"x"`): what most references name.
pub fn is_plain_key(path: &str) -> bool {
    !path.is_empty() && !path.contains(['.', '[', '"'])
}

/// Splits `a.b[0]["x.y"]` into segments.
pub fn split_path(path: &str) -> Vec<PathSeg> {
    let mut out = Vec::new();
    let b = path.as_bytes();
    let mut i = 0;
    let mut cur = String::new();
    while i < b.len() {
        match b[i] {
            b'.' => {
                if !cur.is_empty() {
                    out.push(PathSeg::Key(std::mem::take(&mut cur)));
                }
                i += 1;
            }
            b'[' => {
                if !cur.is_empty() {
                    out.push(PathSeg::Key(std::mem::take(&mut cur)));
                }
                let end = path[i..].find(']').map(|e| i + e).unwrap_or(b.len());
                let inner = &path[i + 1..end.min(b.len())];
                if let Ok(n) = inner.parse::<usize>() {
                    out.push(PathSeg::Index(n));
                } else {
                    out.push(PathSeg::Key(
                        serde_json::from_str::<String>(inner)
                            .unwrap_or_else(|_| inner.trim_matches('"').to_string()),
                    ));
                }
                i = end + 1;
            }
            _ => {
                let ch = path[i..].chars().next().unwrap_or(' ');
                cur.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    if !cur.is_empty() {
        out.push(PathSeg::Key(cur));
    }
    out
}

/// Appends a map key to a path, quoting it when it is not a bare identifier.
pub fn join_key(base: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (base.is_empty(), bare) {
        (true, true) => key.to_string(),
        (false, true) => format!("{base}.{key}"),
        (_, false) => format!("{base}[{}]", serde_json::to_string(key).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn serde_matches_to_json_and_from_json() {
        use super::{Secret, Value};
        let j = serde_json::json!({
            "a": [1, -2, 1.5, 18446744073709551615u64, true, null, "s"],
            "m": {"x": {"$sensitive": "hmac-sha256:00"}, "y": {"$unknown": true}},
            "not": {"$sensitive": "h", "other": 1},
            "no": {"$unknown": false}
        });
        let direct: Value = serde_json::from_value(j.clone()).unwrap();
        assert_eq!(direct, Value::from_json(&j));
        assert!(matches!(
            direct.as_map().unwrap()["m"].as_map().unwrap()["y"],
            Value::Unknown
        ));
        let mut m = direct.as_map().unwrap().clone();
        m.insert("s".into(), Value::Secret(Secret::new("hunter2", "salt")));
        m.insert("nan".into(), Value::Float(f64::NAN));
        let v = Value::Map(m);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string(&v.to_json()).unwrap()
        );
        assert!(!serde_json::to_string(&v).unwrap().contains("hunter2"));
    }

    #[test]
    fn a_value_is_four_words() {
        // Attribute maps are B-trees of 11 slots per node: every byte of a
        // Value is paid 11 times per small map (issue 11, memory at scale).
        assert!(
            std::mem::size_of::<super::Value>() <= 32,
            "{}",
            std::mem::size_of::<super::Value>()
        );
    }

    use super::*;

    #[test]
    fn secret_never_serializes_clear_text() {
        let v = Value::Secret(Secret::new("hunter2", "salt"));
        let j = serde_json::to_string(&v).unwrap();
        assert!(!j.contains("hunter2"), "{j}");
        assert!(j.contains("$sensitive"));
        assert_eq!(format!("{v:?}"), "(sensitive)");
        let back: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(back, v, "a hash read back equals the secret");
        assert_eq!(back.as_secret().unwrap().expose(), None);
    }

    #[test]
    fn salts_change_hashes() {
        assert_ne!(Secret::new("a", "s1"), Secret::new("a", "s2"));
    }

    #[test]
    fn the_hash_is_the_keyed_digest_and_old_hashes_still_match() {
        let s = Secret::new("hunter2", "salt");
        assert_eq!(s.hash(), crate::digest::keyed_digest("salt", b"hunter2"));
        assert!(!s.is_legacy());
        // A state written by an older claw: salted SHA-256, recognised as equal
        // (no diff) and reported as legacy (the object is recorded again).
        let old = Secret::from_hash(legacy_hash("hunter2", "salt"));
        assert!(old.is_legacy());
        assert_eq!(old, s);
        assert_eq!(s, old);
        assert_ne!(Secret::from_hash(legacy_hash("other", "salt")), s);
        assert!(Value::Map([("k".to_string(), Value::Secret(old))].into()).contains_legacy_digest());
    }

    #[test]
    fn redaction_replaces_each_secret_part() {
        let s = Secret::joined(
            "curl -H 'X: hunter2' && echo ab",
            "salt",
            vec!["hunter2".into(), "".into()],
        );
        assert_eq!(
            s.redact("failed: X: hunter2; hunter2"),
            "failed: X: (sensitive); (sensitive)"
        );
        let v = Value::List(vec![
            Value::Secret(Secret::new("abc", "s")),
            Value::from("x"),
        ]);
        assert_eq!(v.secret_parts(), vec!["abc"]);
        assert_eq!(
            redact_all("xabcabcd", ["abc", "abcd"]),
            "x(sensitive)(sensitive)"
        );
    }

    #[test]
    fn paths_split_and_join() {
        assert_eq!(
            split_path(r#"spec.containers[0]["a.b"]"#),
            vec![
                PathSeg::Key("spec".into()),
                PathSeg::Key("containers".into()),
                PathSeg::Index(0),
                PathSeg::Key("a.b".into())
            ]
        );
        assert_eq!(join_key("data", "a.b"), r#"data["a.b"]"#);
        assert_eq!(join_key("", "x"), "x");
    }
}
