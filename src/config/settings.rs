//! The `[stack]` table (name and state backend) and `[vars]`.

use super::node::{Kind, Node};
use super::parse::{table_of, unknown_key};
use super::template::{parse_template, Piece, RefKind};
use super::types::*;
use crate::error::{closest, Problem};
use crate::registry::Registry;
use claw_provider::{Attrs, Value};
use std::collections::BTreeMap;
use std::path::Path;

pub(super) fn parse_stack(
    n: &Node,
    source: &Source<'_>,
    base_dir: &Path,
    unset: &mut Vec<UnsetEnv>,
    errs: &mut Vec<Problem>,
) -> (String, StateCfg) {
    let mut name = String::new();
    let mut state = StateCfg::Local {
        path: super::default_state_path(base_dir),
    };
    for e in table_of(n, "stack", source, errs) {
        match e.key.as_str() {
            "name" => match e.value.as_str() {
                Some(s) if valid_stack_name(s) => name = s.to_string(),
                Some(s) => errs.push(
                    source
                        .err(&e.value.span, format!("invalid stack name {s:?}"))
                        .hint("stack names match [a-z0-9][a-z0-9-]{0,39}: lowercase letters, digits and dashes"),
                ),
                None => errs.push(source.err(&e.value.span, "`name` must be a string")),
            },
            "state" => {
                if let Some(st) = parse_state(&e.value, source, base_dir, unset, errs) {
                    state = st;
                }
            }
            k => errs.push(unknown_key(source, &e.key_span, k, &["name", "state"], "[stack]")),
        }
    }
    if name.is_empty() && !errs.iter().any(|p| p.message.contains("stack name")) {
        errs.push(
            source
                .err(&n.span, "[stack] has no `name`")
                .hint("add `name = \"my-stack\"` under [stack]"),
        );
    }
    (name, state)
}

/// `state = { backend = "local", path = "..." }`, or any other backend: a
/// provider type whose alias `provider` names; its other keys go to that
/// provider's `state_storage`, which checks them.
fn parse_state(
    n: &Node,
    source: &Source<'_>,
    base_dir: &Path,
    unset: &mut Vec<UnsetEnv>,
    errs: &mut Vec<Problem>,
) -> Option<StateCfg> {
    let Some(t) = n.as_table() else {
        errs.push(
            source
                .err(&n.span, "`state` must be a table")
                .hint("state = { backend = \"local\", path = \".claw/state.json\" }"),
        );
        return None;
    };
    let backend = match n.get("backend") {
        None => "local",
        Some(b) => match b.as_str() {
            Some(s) => s,
            None => {
                errs.push(source.err(&b.span, "`backend` must be a string"));
                return None;
            }
        },
    };
    if backend == "local" {
        let mut path = base_dir.join(".claw/state.json");
        for f in t {
            match f.key.as_str() {
                "backend" => {}
                "path" => match f.value.as_str() {
                    Some(p) => path = base_dir.join(p),
                    None => errs.push(source.err(&f.value.span, "`path` must be a string")),
                },
                k => errs.push(unknown_key(source, &f.key_span, k, &["backend", "path"], "state").hint(
                    "the local backend takes `path`; a backend on a provider is written state = { backend = \"TYPE\", provider = \"ALIAS\", ... }",
                )),
            }
        }
        return Some(StateCfg::Local { path });
    }
    let mut provider = None;
    let mut attrs = Attrs::new();
    for f in t {
        match f.key.as_str() {
            "backend" => {}
            "provider" => match f.value.as_str() {
                Some(p) => provider = Some(p.to_string()),
                None => errs.push(source.err(&f.value.span, "`provider` must be a string")),
            },
            _ => {
                let used_by = format!("[stack] state.{}", f.key);
                let v = node_value(&f.value, source, &used_by, unset, errs);
                attrs.insert(f.key.clone(), v);
            }
        }
    }
    let Some(provider) = provider else {
        errs.push(
            source
                .err(&n.span, format!("the {backend} state backend needs `provider`"))
                .hint(format!(
                    "name the [provider.ALIAS] that holds the state: state = {{ backend = \"{backend}\", provider = \"ALIAS\", ... }}"
                )),
        );
        return None;
    };
    Some(StateCfg::Provider {
        backend: backend.to_string(),
        provider,
        attrs,
        node: n.clone(),
    })
}

/// A provider backend must name a declared alias of the backend's type.
pub(super) fn check_state_provider(
    state: &StateCfg,
    blocks: &BTreeMap<String, ProviderBlock>,
    reg: &Registry,
    source: &Source<'_>,
    errs: &mut Vec<Problem>,
) {
    let StateCfg::Provider {
        backend,
        provider,
        node,
        ..
    } = state
    else {
        return;
    };
    let at = |key: &str| {
        node.get(key)
            .map(|v| v.span.clone())
            .unwrap_or(node.span.clone())
    };
    if reg.factory(backend).is_none() || backend == "host" {
        let kinds: Vec<&str> = reg.kinds().filter(|k| *k != "host").collect();
        let p = source.err(&at("backend"), format!("unknown state backend {backend:?}"));
        errs.push(match closest(backend, kinds.iter().copied()) {
            Some(c) => p.hint(format!("did you mean \"{c}\"?")),
            None => p.hint(format!(
                "backends are \"local\" or a provider type: {}",
                kinds.join(", ")
            )),
        });
        return;
    }
    match blocks.get(&format!("provider.{provider}")) {
        Some(b) if &b.kind == backend => {}
        Some(b) => errs.push(
            source
                .err(
                    &at("provider"),
                    format!(
                        "the {backend} state backend needs a {backend} provider; `{provider}` is of type {}",
                        b.kind
                    ),
                )
                .hint(format!("name a [provider.ALIAS] with type = \"{backend}\"")),
        ),
        None => {
            let names: Vec<&str> = blocks
                .values()
                .filter(|b| &b.kind == backend)
                .map(|b| b.alias.as_str())
                .collect();
            let p = source.err(
                &at("provider"),
                format!("the state backend names provider `{provider}`, which is not declared"),
            );
            errs.push(match closest(provider, names.iter().copied()) {
                Some(c) => p.hint(format!("did you mean `{c}`?")),
                None => p.hint(format!(
                    "declare it:\n[provider.{provider}]\ntype = \"{backend}\""
                )),
            });
        }
    }
}

pub fn valid_stack_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 40
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub(super) fn parse_vars(
    n: Option<&Node>,
    cli: &[(String, String)],
    source: &Source<'_>,
    unset: &mut Vec<UnsetEnv>,
    errs: &mut Vec<Problem>,
) -> BTreeMap<String, Value> {
    let mut vars = BTreeMap::new();
    let mut spans = BTreeMap::new();
    if let Some(n) = n {
        for e in table_of(n, "vars", source, errs) {
            // Var defaults may use ${env.X} (and nothing else).
            let v = node_value(&e.value, source, &format!("[vars] {}", e.key), unset, errs);
            spans.insert(e.key.clone(), e.value.span.clone());
            vars.insert(e.key.clone(), v);
        }
    }
    let names: Vec<String> = vars.keys().cloned().collect();
    let coerce =
        |name: &str, raw: &str, default: Option<&Value>| -> std::result::Result<Value, String> {
            match default {
                Some(Value::Int(_)) => raw
                    .parse()
                    .map(Value::Int)
                    .map_err(|_| format!("variable `{name}` is an integer, got {raw:?}")),
                Some(Value::Bool(_)) => raw
                    .parse()
                    .map(Value::Bool)
                    .map_err(|_| format!("variable `{name}` is a boolean, got {raw:?}")),
                Some(Value::List(_)) | Some(Value::Map(_)) => serde_json::from_str::<
                    serde_json::Value,
                >(raw)
                .map(|j| Value::from_json(&j))
                .map_err(|_| {
                    format!("variable `{name}` is a list or table: pass it as JSON, got {raw:?}")
                }),
                _ => Ok(Value::str(raw)),
            }
        };
    for name in &names {
        if let Ok(raw) = std::env::var(format!("CLAW_VAR_{name}")) {
            match coerce(name, &raw, vars.get(name)) {
                Ok(v) => {
                    vars.insert(name.clone(), v);
                }
                Err(m) => errs.push(Problem::new(format!("CLAW_VAR_{name}: {m}"))),
            }
        }
    }
    for (k, raw) in cli {
        if !vars.contains_key(k) {
            let mut p = Problem::new(format!(
                "--var {k}: no variable `{k}` is declared in [vars]"
            ));
            p = match closest(k, names.iter().map(String::as_str)) {
                Some(c) => p.hint(format!("did you mean `{c}`?")),
                None => p.hint(format!("declare it: [vars]\n{k} = \"default\"")),
            };
            errs.push(p);
            continue;
        }
        match coerce(k, raw, vars.get(k)) {
            Ok(v) => {
                vars.insert(k.clone(), v);
            }
            Err(m) => errs.push(Problem::new(format!("--var {k}: {m}"))),
        }
    }
    vars
}

/// A var default: plain TOML with `${env.X}` interpolation. A string that
/// uses an unset variable is unknown, and the variable is recorded.
fn node_value(
    n: &Node,
    source: &Source<'_>,
    used_by: &str,
    unset: &mut Vec<UnsetEnv>,
    errs: &mut Vec<Problem>,
) -> Value {
    match &n.kind {
        Kind::Str(s) => match parse_template(s, &n.span) {
            Ok(pieces) => {
                let mut out = String::new();
                let mut known = true;
                for p in pieces {
                    match p {
                        Piece::Lit(l) => out.push_str(&l),
                        Piece::Ref(RefKind::Env(name), _) => match std::env::var(&name) {
                            Ok(v) => out.push_str(&v),
                            Err(_) => {
                                known = false;
                                unset.push(UnsetEnv {
                                    name,
                                    used_by: used_by.to_string(),
                                    span: n.span.clone(),
                                });
                            }
                        },
                        Piece::Ref(_, text) => errs.push(source.err(
                            &n.span,
                            format!("`${{{text}}}`: variable defaults may only use ${{env.NAME}}"),
                        )),
                    }
                }
                if known {
                    Value::String(out)
                } else {
                    Value::Unknown
                }
            }
            Err(m) => {
                errs.push(source.err(&n.span, m));
                Value::Null
            }
        },
        Kind::Int(i) => Value::Int(*i),
        Kind::Float(f) => Value::Float(*f),
        Kind::Bool(b) => Value::Bool(*b),
        Kind::Datetime(d) => Value::String(d.clone()),
        Kind::Array(a) => Value::List(
            a.iter()
                .map(|x| node_value(x, source, used_by, unset, errs))
                .collect(),
        ),
        Kind::Table(t) => Value::Map(
            t.iter()
                .map(|e| {
                    (
                        e.key.clone(),
                        node_value(&e.value, source, used_by, unset, errs),
                    )
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;

    fn parse_with(src: &str, cli: &[(String, String)]) -> Result<Config> {
        Config::parse(
            Path::new("claw.toml"),
            src.into(),
            cli,
            &Registry::builtin(),
        )
    }

    #[test]
    fn vars_take_cli_overrides_with_the_default_type() {
        let src = "[stack]\nname = \"s\"\n[vars]\nn = 1\nb = false\nl = [\"a\"]\n";
        let cli = [
            ("n".to_string(), "7".to_string()),
            ("l".to_string(), "[\"x\",\"y\"]".to_string()),
        ];
        let c = parse_with(src, &cli).unwrap();
        assert_eq!(c.vars["n"], Value::Int(7));
        assert_eq!(c.vars["b"], Value::Bool(false));
        assert_eq!(c.vars["l"], Value::List(vec!["x".into(), "y".into()]));
        let bad = [("nn".to_string(), "1".to_string())];
        let e = parse_with(src, &bad).unwrap_err();
        assert!(e.to_string().contains("did you mean `n`?"), "{e}");
    }

    #[test]
    fn state_backends_and_unset_env() {
        let src = "[stack]\nname = \"s\"\nstate = { backend = \"kubernetes\", provider = \"k\", namespace = \"ns\", lease_seconds = 9, secret = \"${env.CLAW_UNIT_UNSET_S}\" }\n[provider.k]\ntype = \"kubernetes\"\n[vars]\nv = \"${env.CLAW_UNIT_UNSET_V}\"\n";
        let c = parse_with(src, &[]).unwrap();
        let StateCfg::Provider {
            backend,
            provider,
            attrs,
            ..
        } = &c.state
        else {
            panic!("{:?}", c.state)
        };
        assert_eq!((backend.as_str(), provider.as_str()), ("kubernetes", "k"));
        assert_eq!(attrs["namespace"], Value::str("ns"));
        assert_eq!(attrs["lease_seconds"], Value::Int(9));
        assert_eq!(attrs["secret"], Value::Unknown);
        assert_eq!(c.vars["v"], Value::Unknown);
        let unset: Vec<(&str, &str)> = c
            .unset_env
            .iter()
            .map(|u| (u.name.as_str(), u.used_by.as_str()))
            .collect();
        assert_eq!(
            unset,
            [
                ("CLAW_UNIT_UNSET_S", "[stack] state.secret"),
                ("CLAW_UNIT_UNSET_V", "[vars] v")
            ]
        );
        let c = parse_with(
            "[stack]\nname = \"s\"\nstate = { path = \"st/x.json\" }\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.state,
            StateCfg::Local {
                path: Path::new("./st/x.json").to_path_buf()
            }
        );
    }
}
