//! Evaluation: `for_each` expansion and substitution of vars, each, env and
//! secrets; resource references remain as [`Ex`] trees.

use super::node::{Kind, Node};
use super::shape::{body_json, shape_problem};
use super::template::{self, parse_template, Ex, Piece, RefKind, ResRef, Seg};
use super::types::*;
use crate::error::{closest, Error, Problem, Result};
use crate::registry::Registry;
use claw_provider::{Attrs, Secret, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

impl Config {
    /// Resolves the attributes of a `[host.*]`/`[provider.*]` block.
    pub fn block_attrs(&self, key: &str, salt: &str) -> Result<Attrs> {
        let Some(b) = self.blocks.get(key) else {
            return Ok(Attrs::new());
        };
        let Some(n) = &b.node else {
            return Ok(Attrs::new());
        };
        let mut errs = Vec::new();
        let scope = Scope {
            cfg: self,
            each: None,
            salt,
            refs_allowed: false,
        };
        let mut out = Attrs::new();
        for e in n.as_table().unwrap_or_default() {
            if e.key == "type" {
                continue;
            }
            match subst(&e.value, &scope, &mut errs) {
                Ex::Val(v) => {
                    out.insert(e.key.clone(), v);
                }
                _ => errs.push(self.source().err(
                    &e.value.span,
                    "provider and host settings cannot reference resources",
                )),
            }
        }
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(Error::many(errs))
        }
    }

    /// Expands every resource into its instances (for_each) and substitutes
    /// vars, each, env and secrets. Resource references remain in the bodies.
    pub fn instances(&self, reg: &Registry, salt: &str) -> Result<Vec<Instance>> {
        let mut errs = Vec::new();
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (ri, r) in self.resources.iter().enumerate() {
            let keys: Vec<(Option<String>, Option<Value>, Range<usize>)> =
                match r.node.get("for_each") {
                    None => vec![(None, None, r.node.span.clone())],
                    Some(fe) => match self.for_each_keys(fe, salt, &mut errs) {
                        Some(k) => k
                            .into_iter()
                            .map(|(k, v, s)| (Some(k), Some(v), s))
                            .collect(),
                        None => continue,
                    },
                };
            for (key, each_val, kspan) in keys {
                let addr = template::instance_address(&r.rtype, &r.name, key.as_deref());
                if !seen.insert(addr.clone()) {
                    errs.push(
                        self.source()
                            .err(&kspan, format!("duplicate address {addr}"))
                            .hint("for_each keys must be unique"),
                    );
                    continue;
                }
                let each = key
                    .as_ref()
                    .map(|k| (k.clone(), each_val.clone().unwrap_or(Value::Null)));
                let scope = Scope {
                    cfg: self,
                    each: each.clone(),
                    salt,
                    refs_allowed: true,
                };
                let mut body = BTreeMap::new();
                for e in r.node.as_table().unwrap_or_default() {
                    if META_KEYS.contains(&e.key.as_str()) {
                        continue;
                    }
                    body.insert(e.key.clone(), subst(&e.value, &scope, &mut errs));
                }
                // Shape check on the substituted body.
                if let Some((_, t)) = reg.resource_type(&r.rtype) {
                    let json = body_json(&body);
                    if let Err(ce) = (t.shape.check)(&json) {
                        errs.push(shape_problem(&ce, &r.node, &self.source(), &addr));
                    }
                }
                out.push(Instance {
                    addr,
                    rtype: r.rtype.clone(),
                    name: r.name.clone(),
                    key,
                    provider_key: r.provider_key.clone(),
                    res: ri,
                    body,
                    each,
                    expanded: false,
                });
            }
        }
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(Error::many(errs))
        }
    }

    fn for_each_keys(
        &self,
        fe: &Node,
        salt: &str,
        errs: &mut Vec<Problem>,
    ) -> Option<Vec<(String, Value, Range<usize>)>> {
        let scope = Scope {
            cfg: self,
            each: None,
            salt,
            refs_allowed: false,
        };
        let v = match subst(fe, &scope, errs) {
            Ex::Val(v) => v,
            _ => {
                errs.push(
                    self.source()
                        .err(&fe.span, "for_each cannot reference resources")
                        .hint("use a list or table, or ${vars.NAME}"),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        match v {
            Value::List(items) => {
                for (i, it) in items.into_iter().enumerate() {
                    let span = match &fe.kind {
                        Kind::Array(a) => {
                            a.get(i).map(|n| n.span.clone()).unwrap_or(fe.span.clone())
                        }
                        _ => fe.span.clone(),
                    };
                    match it {
                        Value::String(s) => out.push((s.clone(), Value::String(s), span)),
                        other => {
                            errs.push(
                                self.source()
                                    .err(
                                        &span,
                                        format!(
                                            "for_each list items must be strings, found {}",
                                            other.render_inline()
                                        ),
                                    )
                                    .hint("use a table of tables to attach values to keys"),
                            );
                            return None;
                        }
                    }
                }
            }
            Value::Map(m) => {
                for (k, v) in m {
                    let span = fe.key_span(&k).unwrap_or(fe.span.clone());
                    out.push((k, v, span));
                }
            }
            other => {
                errs.push(self.source().err(
                    &fe.span,
                    format!(
                        "for_each must be a list of strings or a table, found {}",
                        other.render_inline()
                    ),
                ));
                return None;
            }
        }
        let mut keys = BTreeSet::new();
        for (k, _, span) in &out {
            if !keys.insert(k.clone()) {
                errs.push(
                    self.source()
                        .err(span, format!("duplicate for_each key {k:?}"))
                        .hint("for_each keys must be unique"),
                );
                return None;
            }
        }
        Some(out)
    }
}

struct Scope<'a> {
    cfg: &'a Config,
    each: Option<(String, Value)>,
    salt: &'a str,
    refs_allowed: bool,
}

/// Substitutes vars, each, env and secrets in a node; resource references remain.
fn subst(n: &Node, scope: &Scope<'_>, errs: &mut Vec<Problem>) -> Ex {
    let source = scope.cfg.source();
    match &n.kind {
        Kind::Str(s) => {
            let pieces = match parse_template(s, &n.span) {
                Ok(p) => p,
                Err(m) => {
                    errs.push(source.err(&n.span, m).hint("references look like ${vars.NAME}, ${each.key}, ${env.NAME} or ${TYPE.NAME.ATTR}; write $${ for a literal ${"));
                    return Ex::Val(Value::Null);
                }
            };
            let mut segs = Vec::new();
            for p in pieces {
                match p {
                    Piece::Lit(l) => segs.push(Seg::Val(Value::String(l))),
                    Piece::Ref(r, text) => {
                        match r {
                            RefKind::Var(name, path) => match scope.cfg.vars.get(&name) {
                                Some(v) => {
                                    let v = if path.is_empty() {
                                        Some(v)
                                    } else {
                                        v.get_path(&path)
                                    };
                                    match v {
                                    Some(v) => segs.push(Seg::Val(v.clone())),
                                    None => errs.push(source.err(&n.span, format!("`${{{text}}}`: variable `{name}` has no field `{path}`"))),
                                }
                                }
                                None => {
                                    let names: Vec<&str> =
                                        scope.cfg.vars.keys().map(String::as_str).collect();
                                    let p = source.err(
                                        &n.span,
                                        format!("`${{{text}}}`: unknown variable `{name}`"),
                                    );
                                    errs.push(match closest(&name, names.iter().copied()) {
                                        Some(c) => p.hint(format!("did you mean `vars.{c}`?")),
                                        None => p.hint(format!(
                                            "declare it under [vars]: {name} = \"...\""
                                        )),
                                    });
                                }
                            },
                            RefKind::EachKey => match &scope.each {
                                Some((k, _)) => segs.push(Seg::Val(Value::String(k.clone()))),
                                None => errs.push(
                                    source
                                        .err(
                                            &n.span,
                                            "`${each.key}` used outside a resource with for_each",
                                        )
                                        .hint("add for_each = [...] to this resource"),
                                ),
                            },
                            RefKind::EachValue(path) => match &scope.each {
                                Some((_, v)) => {
                                    let got = if path.is_empty() {
                                        Some(v)
                                    } else {
                                        v.get_path(&path)
                                    };
                                    match got {
                                    Some(v) => segs.push(Seg::Val(v.clone())),
                                    None => errs.push(source.err(&n.span, format!("`${{{text}}}`: this for_each value has no field `{path}`")).hint(match v.as_map() {
                                        Some(m) => format!("fields are: {}", m.keys().cloned().collect::<Vec<_>>().join(", ")),
                                        None => "each.value is a plain string here (for_each is a list); use ${each.value} or ${each.key}".to_string(),
                                    })),
                                }
                                }
                                None => errs.push(
                                    source
                                        .err(
                                            &n.span,
                                            "`${each.value}` used outside a resource with for_each",
                                        )
                                        .hint("add for_each to this resource"),
                                ),
                            },
                            RefKind::Env(name) => match std::env::var(&name) {
                                Ok(v) => segs.push(Seg::Val(Value::String(v))),
                                Err(_) => errs.push(
                                    source
                                        .err(
                                            &n.span,
                                            format!("environment variable `{name}` is not set"),
                                        )
                                        .hint(format!("export {name}=... before running claw")),
                                ),
                            },
                            RefKind::Resource(rr) => {
                                if scope.refs_allowed {
                                    segs.push(Seg::Ref(rr));
                                } else {
                                    errs.push(source.err(&n.span, format!("`${{{text}}}`: resource references are not allowed here")));
                                }
                            }
                        }
                    }
                }
            }
            if segs.iter().all(|s| matches!(s, Seg::Val(_))) {
                let vals = segs
                    .into_iter()
                    .map(|s| match s {
                        Seg::Val(v) => v,
                        Seg::Ref(_) => Value::Null,
                    })
                    .collect();
                Ex::Val(template::join_values(vals, scope.salt))
            } else {
                Ex::Str(segs)
            }
        }
        Kind::Int(i) => Ex::Val(Value::Int(*i)),
        Kind::Float(f) => Ex::Val(Value::Float(*f)),
        Kind::Bool(b) => Ex::Val(Value::Bool(*b)),
        Kind::Datetime(d) => Ex::Val(Value::String(d.clone())),
        Kind::Array(a) => Ex::List(a.iter().map(|x| subst(x, scope, errs)).collect()).simplify(),
        Kind::Table(t) => {
            // { env = "NAME" } / { file = "path" }: a sensitive value.
            if t.len() == 1 {
                if let Some(s) = t[0].value.as_str() {
                    match t[0].key.as_str() {
                        "env" => {
                            return match std::env::var(s) {
                                Ok(v) => Ex::Val(Value::Secret(Secret::new(v, scope.salt))),
                                Err(_) => {
                                    errs.push(source.err(&t[0].value.span, format!("environment variable `{s}` is not set (needed for a sensitive value)")).hint(format!("export {s}=... before running claw; nothing was changed")));
                                    Ex::Val(Value::Null)
                                }
                            };
                        }
                        "file" => {
                            let p = expand_home(s, &scope.cfg.base_dir);
                            return match std::fs::read_to_string(&p) {
                                Ok(v) => Ex::Val(Value::Secret(Secret::new(
                                    v.trim_end_matches('\n'),
                                    scope.salt,
                                ))),
                                Err(e) => {
                                    errs.push(
                                        source
                                            .err(
                                                &t[0].value.span,
                                                format!(
                                                    "cannot read secret file {}: {e}",
                                                    p.display()
                                                ),
                                            )
                                            .hint("paths are relative to the folder of claw.toml"),
                                    );
                                    Ex::Val(Value::Null)
                                }
                            };
                        }
                        _ => {}
                    }
                }
            }
            Ex::Map(
                t.iter()
                    .map(|e| (e.key.clone(), subst(&e.value, scope, errs)))
                    .collect(),
            )
            .simplify()
        }
    }
}

/// Expands `~/` and makes relative paths relative to `base`.
pub fn expand_home(p: &str, base: &Path) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(rest);
        }
    }
    base.join(p)
}

/// Re-parses the strings of a value produced by a provider's `expand`
/// (e.g. YAML documents) for `${...}` references.
pub fn value_to_ex(
    v: &Value,
    cfg: &Config,
    inst: &Instance,
    salt: &str,
    errs: &mut Vec<Problem>,
) -> Ex {
    let span = cfg.resource(inst).node.span.clone();
    let scope = Scope {
        cfg,
        each: inst.each.clone(),
        salt,
        refs_allowed: true,
    };
    match v {
        Value::String(s) if s.contains("${") => {
            let n = Node {
                span,
                kind: Kind::Str(s.clone()),
            };
            subst(&n, &scope, errs)
        }
        Value::List(l) => Ex::List(
            l.iter()
                .map(|x| value_to_ex(x, cfg, inst, salt, errs))
                .collect(),
        )
        .simplify(),
        Value::Map(m) => Ex::Map(
            m.iter()
                .map(|(k, x)| (k.clone(), value_to_ex(x, cfg, inst, salt, errs)))
                .collect(),
        )
        .simplify(),
        other => Ex::Val(other.clone()),
    }
}

/// Every resource reference in an instance body.
pub fn body_refs(body: &BTreeMap<String, Ex>) -> Vec<&ResRef> {
    let mut out = Vec::new();
    for e in body.values() {
        e.refs(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(src: &str) -> Config {
        Config::parse(
            Path::new("claw.toml"),
            src.into(),
            &[],
            &Registry::builtin(),
        )
        .unwrap()
    }

    #[test]
    fn for_each_expands_and_substitutes_vars_and_each() {
        let c = cfg("[stack]\nname = \"s\"\n[vars]\nroot = \"/r\"\n\
             [file.a]\nfor_each = { x = { m = \"0600\" }, y = { m = \"0644\" } }\n\
             path = \"${vars.root}/${each.key}\"\ncontent = \"${each.value.m}\"\n\
             [file.b]\npath = \"p\"\ncontent = \"${file.a[\\\"x\\\"].path}!\"\n");
        let insts = c.instances(&Registry::builtin(), "salt").unwrap();
        let addrs: Vec<&str> = insts.iter().map(|i| i.addr.as_str()).collect();
        assert_eq!(addrs, ["file.a[\"x\"]", "file.a[\"y\"]", "file.b"]);
        assert_eq!(insts[1].body["path"], Ex::Val(Value::str("/r/y")));
        assert_eq!(insts[1].body["content"], Ex::Val(Value::str("0644")));
        let refs = body_refs(&insts[2].body);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].instance(), "file.a[\"x\"]");
    }

    #[test]
    fn evaluation_errors_are_located() {
        let c = cfg(
            "[stack]\nname = \"s\"\n[file.a]\nfor_each = [\"k\", \"k\"]\npath = \"p\"\n\
             [file.b]\npath = \"${vars.nope}\"\n[file.c]\npath = \"${each.key}\"\n",
        );
        let e = c
            .instances(&Registry::builtin(), "salt")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("duplicate for_each key \"k\"") && e.contains("claw.toml:4:"),
            "{e}"
        );
        assert!(
            e.contains("unknown variable `nope`") && e.contains("claw.toml:7:8"),
            "{e}"
        );
        assert!(e.contains("`${each.key}` used outside"), "{e}");
    }

    #[test]
    fn block_attrs_refuse_resource_references() {
        let c = cfg("[stack]\nname = \"s\"\n[host.m]\naddress = \"${file.a.path}\"\n[file.a]\npath = \"p\"\n");
        let e = c.block_attrs("host.m", "salt").unwrap_err().to_string();
        assert!(
            e.contains("resource references are not allowed here"),
            "{e}"
        );
    }

    #[test]
    fn value_to_ex_finds_references_in_expanded_values() {
        let c = cfg("[stack]\nname = \"s\"\n[file.a]\npath = \"p\"\n");
        let insts = c.instances(&Registry::builtin(), "salt").unwrap();
        let v = Value::Map([("k".to_string(), Value::str("${file.a.path}"))].into());
        let mut errs = Vec::new();
        let ex = value_to_ex(&v, &c, &insts[0], "salt", &mut errs);
        assert!(errs.is_empty());
        let mut refs = Vec::new();
        ex.refs(&mut refs);
        assert_eq!(refs[0].resource(), "file.a");
    }
}
