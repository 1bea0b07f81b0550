//! The TOML document as a tree of nodes that remember their source spans.

use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// TOML datetimes are kept as their text.
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_span: Range<usize>,
    pub value: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Range<usize>,
    pub kind: Kind,
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Str(_) => "string",
            Kind::Int(_) => "integer",
            Kind::Float(_) => "float",
            Kind::Bool(_) => "boolean",
            Kind::Datetime(_) => "datetime",
            Kind::Array(_) => "array",
            Kind::Table(_) => "table",
        }
    }
    pub fn as_table(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Table(t) => Some(t),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_table()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.as_table()?.iter().find(|e| e.key == key)
    }

    /// The node at an attribute path like `mounts[0].target` (serde_path_to_error
    /// style), or the deepest node on the way.
    pub fn locate(&self, path: &str) -> Range<usize> {
        let mut cur = self;
        let mut span = self.span.clone();
        for seg in claw_provider::value::split_path(path) {
            let next = match (&cur.kind, seg) {
                (Kind::Table(t), claw_provider::value::PathSeg::Key(k)) => {
                    t.iter().find(|e| e.key == k).map(|e| &e.value)
                }
                (Kind::Array(a), claw_provider::value::PathSeg::Index(i)) => a.get(i),
                _ => None,
            };
            match next {
                Some(n) => {
                    cur = n;
                    span = n.span.clone();
                }
                None => break,
            }
        }
        span
    }

    /// The span of the key `key` in this table (for "unknown key" errors).
    pub fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entry(key).map(|e| e.key_span.clone())
    }

    /// Plain JSON of this node (for shape checks).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            Kind::Str(s) | Kind::Datetime(s) => J::String(s.clone()),
            Kind::Int(i) => J::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Kind::Bool(b) => J::Bool(*b),
            Kind::Array(a) => J::Array(a.iter().map(Node::to_json).collect()),
            Kind::Table(t) => J::Object(
                t.iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Parses TOML text into a node tree, or the parse error's message and span.
pub fn parse(src: &str) -> Result<Node, (String, Range<usize>)> {
    match DeTable::parse(src) {
        Ok(t) => {
            let span = t.span();
            Ok(Node {
                span,
                kind: Kind::Table(table(t.get_ref())),
            })
        }
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().to_string();
            Err((msg, span))
        }
    }
}

fn table(t: &DeTable<'_>) -> Vec<Entry> {
    let mut out: Vec<Entry> = t
        .iter()
        .map(|(k, v)| Entry {
            key: k.get_ref().to_string(),
            key_span: k.span(),
            value: node(v),
        })
        .collect();
    // Source order: errors and plans follow the file.
    out.sort_by_key(|e| e.key_span.start);
    out
}

fn node(v: &Spanned<DeValue<'_>>) -> Node {
    let span = v.span();
    let kind = match v.get_ref() {
        DeValue::String(s) => Kind::Str(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            match i64::from_str_radix(&digits, i.radix()) {
                Ok(n) => Kind::Int(n),
                // Beyond i64: kept as a number (not 0) for the shape checks to refuse.
                Err(_) => Kind::Float(digits.parse().unwrap_or(f64::INFINITY)),
            }
        }
        DeValue::Float(f) => Kind::Float(f.as_str().replace('_', "").parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Kind::Bool(*b),
        DeValue::Datetime(d) => Kind::Datetime(d.to_string()),
        DeValue::Array(a) => Kind::Array(a.iter().map(node).collect()),
        DeValue::Table(t) => Kind::Table(table(t)),
    };
    Node { span, kind }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_spans() {
        let src = "[stack]\nname = \"x\"\n[file.a]\npath = \"p\"\nmode = 0o644\n";
        let n = parse(src).unwrap();
        let f = n.get("file").unwrap().get("a").unwrap();
        let p = f.get("path").unwrap();
        assert_eq!(&src[p.span.clone()], "\"p\"");
        assert_eq!(f.get("mode").unwrap().kind, Kind::Int(0o644));
        assert_eq!(f.locate("path"), p.span);
    }

    #[test]
    fn parse_error_has_span() {
        let (msg, span) = parse("a = \n").unwrap_err();
        assert!(!msg.is_empty());
        assert!(span.start <= 5);
    }
}
