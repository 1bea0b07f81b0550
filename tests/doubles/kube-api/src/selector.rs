//! Label selectors (equality- and set-based) and the field selectors the real
//! server supports for every kind (`metadata.name`, `metadata.namespace`).

use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn set_values(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse requirement: found '{s}', expected: '('"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

pub fn parse(s: &str) -> Result<Vec<Req>, String> {
    let mut out = Vec::new();
    for part in split_top(s) {
        if let Some(k) = part.strip_prefix('!') {
            out.push(Req::NotExists(k.trim().to_string()));
        } else if let Some((k, v)) = part.split_once("!=") {
            out.push(Req::Ne(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = part.split_once("==") {
            out.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = part.split_once('=') {
            out.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some(i) = part.find(" notin ") {
            out.push(Req::NotIn(
                part[..i].trim().into(),
                set_values(&part[i + 7..])?,
            ));
        } else if let Some(i) = part.find(" in ") {
            out.push(Req::In(
                part[..i].trim().into(),
                set_values(&part[i + 4..])?,
            ));
        } else if part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            out.push(Req::Exists(part));
        } else {
            return Err(format!("unable to parse requirement: {part:?}"));
        }
    }
    Ok(out)
}

pub fn matches(reqs: &[Req], labels: &BTreeMap<String, String>) -> bool {
    reqs.iter().all(|r| match r {
        Req::Eq(k, v) => labels.get(k) == Some(v),
        Req::Ne(k, v) => labels.get(k) != Some(v),
        Req::In(k, vs) => labels.get(k).map(|l| vs.contains(l)).unwrap_or(false),
        Req::NotIn(k, vs) => labels.get(k).map(|l| !vs.contains(l)).unwrap_or(true),
        Req::Exists(k) => labels.contains_key(k),
        Req::NotExists(k) => !labels.contains_key(k),
    })
}

pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Field selector: `metadata.name=x,metadata.namespace!=y`.
pub fn field_matches(sel: &str, obj: &Value) -> Result<bool, String> {
    for part in split_top(sel) {
        let (k, v, neg) = if let Some((k, v)) = part.split_once("!=") {
            (k, v, true)
        } else if let Some((k, v)) = part.split_once("==") {
            (k, v, false)
        } else if let Some((k, v)) = part.split_once('=') {
            (k, v, false)
        } else {
            return Err(format!("invalid field selector {part:?}"));
        };
        let ptr = match k.trim() {
            "metadata.name" => "/metadata/name",
            "metadata.namespace" => "/metadata/namespace",
            other => return Err(format!("field label not supported: {other}")),
        };
        let got = obj.pointer(ptr).and_then(Value::as_str).unwrap_or("");
        if (got == v.trim()) == neg {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_set_based() {
        let r = parse("app=web,tier in (a, b),!legacy,env notin (prod),team").unwrap();
        assert!(matches(
            &r,
            &l(&[("app", "web"), ("tier", "a"), ("team", "x")])
        ));
        assert!(!matches(
            &r,
            &l(&[("app", "web"), ("tier", "c"), ("team", "x")])
        ));
        assert!(!matches(
            &r,
            &l(&[
                ("app", "web"),
                ("tier", "a"),
                ("team", "x"),
                ("legacy", "1")
            ])
        ));
        assert!(!matches(
            &r,
            &l(&[
                ("app", "web"),
                ("tier", "a"),
                ("team", "x"),
                ("env", "prod")
            ])
        ));
        let r = parse("claw.dev/stack!=other").unwrap();
        assert!(matches(&r, &l(&[])));
    }
}
