//! `${...}` interpolation: parsing references out of strings, and the
//! expression tree that remains once vars, env and each are substituted.

use claw_provider::{Secret, Value};
use std::ops::Range;

/// One `${...}` reference, as written.
#[derive(Debug, Clone, PartialEq)]
pub enum RefKind {
    /// `vars.name.path`
    Var(String, String),
    /// `each.key`
    EachKey,
    /// `each.value.path` (path may be empty)
    EachValue(String),
    /// `env.NAME`
    Env(String),
    /// `type.name["key"].attr.path`
    Resource(ResRef),
}

/// A reference to another resource instance's attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct ResRef {
    pub rtype: String,
    pub name: String,
    pub key: Option<String>,
    /// `attr.path` after the instance (never empty).
    pub attr: String,
    /// Where it was written (the source span of the string).
    pub span: Range<usize>,
    /// The text inside `${ }`, for messages.
    pub text: String,
}

impl ResRef {
    pub fn resource(&self) -> String {
        format!("{}.{}", self.rtype, self.name)
    }
    pub fn instance(&self) -> String {
        instance_address(&self.rtype, &self.name, self.key.as_deref())
    }
}

/// The key of a reference written `TYPE.NAME[each.key].ATTR`, until the
/// expansion of `for_each` puts the instance's key in its place.
pub const EACH_KEY: &str = "\u{0}each.key";

/// `type.name` or `type.name["key"]`.
pub fn instance_address(rtype: &str, name: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!(
            "{rtype}.{name}[{}]",
            serde_json::to_string(k).unwrap_or_default()
        ),
        None => format!("{rtype}.{name}"),
    }
}

/// Splits an address `type.name["key"]` into its parts.
pub fn parse_address(s: &str) -> Option<(String, String, Option<String>)> {
    let (head, key) = match s.find('[') {
        Some(i) => {
            let inner = s[i..].strip_prefix('[')?.strip_suffix(']')?;
            let key: String = serde_json::from_str(inner).ok()?;
            (&s[..i], Some(key))
        }
        None => (s, None),
    };
    let (t, n) = head.split_once('.')?;
    if t.is_empty() || n.is_empty() || n.contains('.') || !valid_name(n) || !valid_name(t) {
        return None;
    }
    Some((t.to_string(), n.to_string(), key))
}

pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A piece of a string template.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Lit(String),
    Ref(RefKind, String),
}

/// Parses the `${...}` references in `s`. `$${` is a literal `${`.
pub fn parse_template(s: &str, span: &Range<usize>) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(r) = after.strip_prefix("$${") {
            lit.push_str("${");
            rest = r;
        } else if let Some(body) = after.strip_prefix("${") {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in {s:?}"))?;
            let inner = body[..end].trim();
            if !lit.is_empty() {
                out.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            out.push(Piece::Ref(parse_ref(inner, span)?, inner.to_string()));
            rest = &body[end + 1..];
        } else {
            lit.push('$');
            rest = &after[1..];
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() || out.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

fn parse_ref(inner: &str, span: &Range<usize>) -> Result<RefKind, String> {
    let (head, rest) = match inner.find(['.', '[']) {
        Some(i) => (&inner[..i], &inner[i..]),
        None => (inner, ""),
    };
    let rest_path = rest.strip_prefix('.').unwrap_or(rest);
    match head {
        "vars" => {
            let (name, path) = split_first(rest_path);
            if name.is_empty() {
                return Err(format!("`${{{inner}}}` names no variable"));
            }
            Ok(RefKind::Var(name, path))
        }
        "each" => match rest_path {
            "key" => Ok(RefKind::EachKey),
            "value" => Ok(RefKind::EachValue(String::new())),
            p if p.starts_with("value.") || p.starts_with("value[") => {
                let p = p.strip_prefix("value").unwrap_or(p);
                Ok(RefKind::EachValue(
                    p.strip_prefix('.').unwrap_or(p).to_string(),
                ))
            }
            _ => Err(format!(
                "`${{{inner}}}`: only `each.key` and `each.value` exist"
            )),
        },
        "env" => {
            if rest_path.is_empty() {
                return Err(format!("`${{{inner}}}` names no environment variable"));
            }
            Ok(RefKind::Env(rest_path.to_string()))
        }
        rtype if valid_name(rtype) => {
            // name, optional ["key"], then .attr
            let r = rest_path;
            let name_end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..name_end];
            if name.is_empty() || !valid_name(name) {
                return Err(format!(
                    "`${{{inner}}}` is not a reference: expected vars.NAME, each.key, each.value.FIELD, env.NAME or TYPE.NAME.ATTRIBUTE"
                ));
            }
            let mut r = &r[name_end..];
            let mut key = None;
            if let Some(rest) = r.strip_prefix("[each.key]") {
                // Resolved to this instance's key when for_each is expanded.
                key = Some(EACH_KEY.to_string());
                r = rest;
            } else if r.starts_with('[') {
                let close = r
                    .find("\"]")
                    .map(|i| i + 2)
                    .ok_or_else(|| format!("`${{{inner}}}`: unclosed [\"key\"]"))?;
                let k: String = serde_json::from_str(&r[1..close - 1])
                    .map_err(|_| format!("`${{{inner}}}`: the key must be a quoted string"))?;
                key = Some(k);
                r = &r[close..];
            }
            let attr = r.strip_prefix('.').unwrap_or(r);
            if attr.is_empty() {
                return Err(format!(
                    "`${{{inner}}}` names a resource but no attribute (write `{inner}.ATTRIBUTE`)"
                ));
            }
            Ok(RefKind::Resource(ResRef {
                rtype: rtype.to_string(),
                name: name.to_string(),
                key,
                attr: attr.to_string(),
                span: span.clone(),
                text: inner.to_string(),
            }))
        }
        _ => Err(format!("`${{{inner}}}` is not a valid reference")),
    }
}

fn split_first(p: &str) -> (String, String) {
    match p.find(['.', '[']) {
        Some(i) => (
            p[..i].to_string(),
            p[i..].strip_prefix('.').unwrap_or(&p[i..]).to_string(),
        ),
        None => (p.to_string(), String::new()),
    }
}

/// A value with resource references still to resolve.
/// The attributes of an instance body (or an inline table), by name: a
/// sorted vector, like [`claw_provider::Map`] (20,000 bodies of three
/// attributes cost 13 MB as B-trees).
pub type ExMap = litemap::LiteMap<String, Ex>;

#[derive(Debug, Clone, PartialEq)]
pub enum Ex {
    Val(Value),
    /// A string made of literal values and references.
    Str(Vec<Seg>),
    List(Vec<Ex>),
    Map(ExMap),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Val(Value),
    /// Boxed: a reference is five strings, and most segments are values.
    Ref(Box<ResRef>),
}

impl Ex {
    /// Builds `Ex::Map` and `Ex::List` only when something inside is unresolved.
    pub fn simplify(self) -> Ex {
        match self {
            Ex::List(items) => {
                let items: Vec<Ex> = items.into_iter().map(Ex::simplify).collect();
                if items.iter().all(|e| matches!(e, Ex::Val(_))) {
                    Ex::Val(Value::List(
                        items
                            .into_iter()
                            .map(|e| match e {
                                Ex::Val(v) => v,
                                _ => Value::Null,
                            })
                            .collect(),
                    ))
                } else {
                    Ex::List(items)
                }
            }
            Ex::Map(m) => {
                let m: ExMap = m.into_iter().map(|(k, v)| (k, v.simplify())).collect();
                if m.values().all(|e| matches!(e, Ex::Val(_))) {
                    Ex::Val(Value::Map(
                        m.into_iter()
                            .map(|(k, e)| match e {
                                Ex::Val(v) => (k, v),
                                _ => (k, Value::Null),
                            })
                            .collect(),
                    ))
                } else {
                    Ex::Map(m)
                }
            }
            other => other,
        }
    }

    /// Every resource reference inside.
    pub fn refs<'a>(&'a self, out: &mut Vec<&'a ResRef>) {
        match self {
            Ex::Val(_) => {}
            Ex::Str(segs) => {
                for s in segs {
                    if let Seg::Ref(r) = s {
                        out.push(&**r);
                    }
                }
            }
            Ex::List(l) => l.iter().for_each(|e| e.refs(out)),
            Ex::Map(m) => m.values().for_each(|e| e.refs(out)),
        }
    }

    /// Resolves references with `lookup` (which returns `Value::Unknown` for
    /// values not yet known). A string that is exactly one reference keeps the
    /// referenced value's type; otherwise parts are joined as text, unknown if
    /// any part is unknown, sensitive if any part is.
    pub fn resolve(&self, lookup: &dyn Fn(&ResRef) -> Value, salt: &str) -> Value {
        match self {
            Ex::Val(v) => v.clone(),
            Ex::List(l) => Value::List(l.iter().map(|e| e.resolve(lookup, salt)).collect()),
            Ex::Map(m) => Value::Map(
                m.iter()
                    .map(|(k, e)| (k.clone(), e.resolve(lookup, salt)))
                    .collect(),
            ),
            Ex::Str(segs) => {
                let vals: Vec<Value> = segs
                    .iter()
                    .map(|s| match s {
                        Seg::Val(v) => v.clone(),
                        Seg::Ref(r) => lookup(r),
                    })
                    .collect();
                join_values(vals, salt)
            }
        }
    }
}

/// Joins interpolated parts into one value (see [`Ex::resolve`]).
pub fn join_values(mut vals: Vec<Value>, salt: &str) -> Value {
    if vals.len() == 1 {
        return vals.pop().unwrap_or(Value::Null);
    }
    if vals.iter().any(Value::contains_unknown) {
        return Value::Unknown;
    }
    let secret = vals.iter().any(Value::contains_secret);
    let mut text = String::new();
    let mut clear = true;
    for v in &vals {
        match v {
            Value::Secret(s) => match s.expose() {
                Some(p) => text.push_str(p),
                None => clear = false,
            },
            other => text.push_str(&to_text(other)),
        }
    }
    if secret {
        if clear {
            let parts = vals.iter().flat_map(Value::secret_parts).map(Into::into);
            Value::Secret(Secret::joined(text, salt, parts.collect()))
        } else {
            // Only hashes are known (read back from state): a stable hash of hashes.
            let hashes: Vec<String> = vals
                .iter()
                .map(|v| match v {
                    Value::Secret(s) => s.hash().to_string(),
                    o => to_text(o),
                })
                .collect();
            Value::Secret(Secret::from_hash(claw_provider::digest::keyed_digest(
                salt,
                hashes.join("\0").as_bytes(),
            )))
        }
    } else {
        Value::String(text)
    }
}

/// A value as text inside a larger string.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::List(_) | Value::Map(_) => v.to_json().to_string(),
        Value::Secret(_) => "(sensitive)".into(),
        Value::Unknown => "(known after apply)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_reference_kinds() {
        let sp = 0..1;
        let p = parse_template(
            "a${vars.x}b${each.key}${each.value.f.g}${env.HOME}${file.cfg[\"k\"].path}$${lit}",
            &sp,
        )
        .unwrap();
        assert_eq!(p[0], Piece::Lit("a".into()));
        assert!(
            matches!(&p[1], Piece::Ref(RefKind::Var(n, path), _) if n == "x" && path.is_empty())
        );
        assert!(matches!(&p[3], Piece::Ref(RefKind::EachKey, _)));
        assert!(matches!(&p[4], Piece::Ref(RefKind::EachValue(f), _) if f == "f.g"));
        assert!(matches!(&p[5], Piece::Ref(RefKind::Env(n), _) if n == "HOME"));
        match &p[6] {
            Piece::Ref(RefKind::Resource(r), _) => {
                assert_eq!(r.instance(), "file.cfg[\"k\"]");
                assert_eq!(r.attr, "path");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p[7], Piece::Lit("${lit}".into()));
        // `[each.key]`: resolved when for_each is expanded.
        match &parse_template("${ssh_key.bot[each.key].public_key}", &(0..1)).unwrap()[0] {
            Piece::Ref(RefKind::Resource(r), _) => {
                assert_eq!(r.key.as_deref(), Some(EACH_KEY));
                assert_eq!(r.attr, "public_key");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_references() {
        assert!(parse_template("${file.x}", &(0..1)).is_err());
        assert!(parse_template("${each.nope}", &(0..1)).is_err());
        assert!(parse_template("${vars.x", &(0..1)).is_err());
    }

    #[test]
    fn joins_unknown_and_secret() {
        assert_eq!(
            join_values(vec!["a".into(), Value::Unknown], "s"),
            Value::Unknown
        );
        let s = join_values(vec!["a=".into(), Value::Secret(Secret::new("x", "s"))], "s");
        assert_eq!(s, Value::Secret(Secret::new("a=x", "s")));
        assert_eq!(join_values(vec![Value::Int(3)], "s"), Value::Int(3));
    }

    #[test]
    fn addresses_round_trip() {
        assert_eq!(
            parse_address("git_worktree.agent[\"dev\"]"),
            Some(("git_worktree".into(), "agent".into(), Some("dev".into())))
        );
        assert_eq!(parse_address("a.b.c"), None);
    }
}
