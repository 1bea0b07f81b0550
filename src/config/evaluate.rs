//! Evaluation: `for_each` expansion and substitution of vars, each, env and
//! secrets; resource references remain as [`Ex`] trees.

use super::node::{Entry, Kind, Node};
use super::secrets::{
    optional_not_here, secret_ref, Eval, Missing, Origin, SecretRef, Site, PLACEHOLDER,
};
use super::shape::{body_json, shape_problem};
use super::template::{self, parse_template, Ex, ExMap, Piece, RefKind, ResRef, Seg};
use super::types::*;
use crate::error::{closest, Error, Problem, Result};
use crate::registry::Registry;
use claw_provider::{Attrs, Secret, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

impl Config {
    /// Resolves the attributes of a `[host.*]`/`[provider.*]` block.
    pub fn block_attrs(&self, key: &str, salt: &str, eval: Eval) -> Result<Attrs> {
        let mut errs = Vec::new();
        let missing = self.missing_vars(eval);
        let out = self.block_values(key, salt, eval, &missing, &mut errs);
        self.finish(out, errs, missing)
    }

    fn block_values(
        &self,
        key: &str,
        salt: &str,
        eval: Eval,
        missing: &RefCell<Missing>,
        errs: &mut Vec<Problem>,
    ) -> Attrs {
        let mut out = Attrs::new();
        let Some(n) = self.blocks.get(key).and_then(|b| b.node.as_ref()) else {
            return out;
        };
        let label = format!("[{key}]");
        let scope = Scope::new(
            self,
            salt,
            eval,
            Site {
                label: &label,
                node: n,
            },
            missing,
        );
        for e in n.as_table().unwrap_or_default() {
            if e.key == "type" {
                continue;
            }
            match subst(&e.value, &scope, errs) {
                Ex::Val(v) => {
                    out.insert(e.key.clone(), v);
                }
                _ => errs.push(self.source().err(
                    &e.value.span,
                    "provider and host settings cannot reference resources",
                )),
            }
        }
        out
    }

    /// Substitutes vars, env and secrets in `value`, a value outside any
    /// resource (an output's `value`, a check's probe) held by the table
    /// `table` of `label` (`output.url`); resource references remain.
    pub fn free_value(
        &self,
        label: &str,
        table: &Node,
        value: &Node,
        salt: &str,
        eval: Eval,
    ) -> Result<Ex> {
        let mut errs = Vec::new();
        let missing = RefCell::new(Missing::default());
        let site = Site { label, node: table };
        let scope = Scope {
            refs_allowed: true,
            ..Scope::new(self, salt, eval, site, &missing)
        };
        let ex = subst(value, &scope, &mut errs);
        self.finish(ex, errs, missing)
    }

    /// The missing environment variables of `[vars]` defaults, which every
    /// live evaluation reports (a var default is evaluated once, at parse).
    fn missing_vars(&self, eval: Eval) -> RefCell<Missing> {
        let mut m = Missing::default();
        if eval == Eval::Live {
            for u in &self.unset_env {
                m.env(&u.name, u.used_by.clone(), &u.span);
            }
        }
        RefCell::new(m)
    }

    /// The evaluation's result: its errors, then one per missing value.
    fn finish<T>(&self, out: T, mut errs: Vec<Problem>, missing: RefCell<Missing>) -> Result<T> {
        errs.extend(missing.into_inner().problems(&self.source()));
        if errs.is_empty() {
            return Ok(out);
        }
        // for_each instances share their source: one error per place.
        let mut seen = BTreeSet::new();
        errs.retain(|p| seen.insert(p.to_string()));
        Err(Error::many(errs))
    }

    /// Expands every resource into its instances (for_each) and substitutes
    /// vars, each, env and secrets. Resource references remain in the bodies.
    pub fn instances(&self, reg: &Registry, salt: &str, eval: Eval) -> Result<Vec<Instance>> {
        let missing = self.missing_vars(eval);
        if eval == Eval::Live {
            // The blocks in use are evaluated later (`block_attrs`), but their
            // missing values are reported now, with all the others.
            let keys: BTreeSet<&str> = self
                .resources
                .iter()
                .map(|r| r.provider_key.as_str())
                .collect();
            for key in keys {
                self.block_values(key, salt, eval, &missing, &mut Vec::new());
            }
        }
        // Resources are independent: long lists are split over the cores,
        // and the parts joined in order (the same instances and errors as
        // one pass).
        let resources: Vec<(usize, &Resource)> = self.resources.iter().enumerate().collect();
        let parts =
            claw_provider::par::in_chunks(&resources, claw_provider::par::cores(), 2048, |chunk| {
                let missing = RefCell::new(Missing::default());
                let (mut out, mut errs) = (Vec::with_capacity(chunk.len()), Vec::new());
                for &(ri, r) in chunk {
                    self.resource_instances(ri, r, reg, salt, eval, &missing, &mut out, &mut errs);
                }
                vec![(out, errs, missing.into_inner())]
            });
        let mut out = Vec::with_capacity(self.resources.len());
        let mut errs = Vec::new();
        for (o, e, m) in parts {
            out.extend(o);
            errs.extend(e);
            missing.borrow_mut().merge(m);
        }
        self.finish(out, errs, missing)
    }

    /// The instances of resource `ri` (one, or one per for_each key).
    #[allow(clippy::too_many_arguments)]
    fn resource_instances(
        &self,
        ri: usize,
        r: &Resource,
        reg: &Registry,
        salt: &str,
        eval: Eval,
        missing: &RefCell<Missing>,
        out: &mut Vec<Instance>,
        errs: &mut Vec<Problem>,
    ) {
        let label = format!("{}.{}", r.rtype, r.name);
        let site = Site {
            label: &label,
            node: &r.node,
        };
        let scope = Scope::new(self, salt, eval, site, missing);
        let keys: Vec<(Option<String>, Option<Value>, Range<usize>)> = match r.node.get("for_each")
        {
            None => vec![(None, None, r.node.span.clone())],
            Some(fe) => match self.for_each_keys(fe, &scope, errs) {
                Some(k) => k
                    .into_iter()
                    .map(|(k, v, s)| (Some(k), Some(v), s))
                    .collect(),
                None => return,
            },
        };
        // Addresses are unique across resources (`TYPE.NAME` is): only
        // for_each keys can repeat one.
        let mut seen = BTreeSet::new();
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
                each: each.clone(),
                refs_allowed: true,
                ..scope
            };
            let mut body = ExMap::new();
            for e in r.node.as_table().unwrap_or_default() {
                if META_KEYS.contains(&e.key.as_str()) {
                    continue;
                }
                body.insert(e.key.clone(), subst(&e.value, &scope, errs));
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

    fn for_each_keys(
        &self,
        fe: &Node,
        scope: &Scope<'_>,
        errs: &mut Vec<Problem>,
    ) -> Option<Vec<(String, Value, Range<usize>)>> {
        let v = match subst(fe, scope, errs) {
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
                // One lookup table, not a scan of the keys for each key.
                let spans: BTreeMap<&str, &Range<usize>> = fe
                    .as_table()
                    .unwrap_or_default()
                    .iter()
                    .map(|e| (e.key.as_str(), &e.key_span))
                    .collect();
                for (k, v) in m {
                    let span = spans
                        .get(k.as_str())
                        .map_or(fe.span.clone(), |s| (*s).clone());
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

#[derive(Clone)]
struct Scope<'a> {
    cfg: &'a Config,
    each: Option<(String, Value)>,
    salt: &'a str,
    refs_allowed: bool,
    eval: Eval,
    /// Who is being evaluated, for the uses of missing values.
    site: Site<'a>,
    missing: &'a RefCell<Missing>,
}

impl<'a> Scope<'a> {
    /// A scope without `each`, where resource references are not allowed.
    fn new(
        cfg: &'a Config,
        salt: &'a str,
        eval: Eval,
        site: Site<'a>,
        missing: &'a RefCell<Missing>,
    ) -> Scope<'a> {
        Scope {
            cfg,
            each: None,
            salt,
            refs_allowed: false,
            eval,
            site,
            missing,
        }
    }

    fn placeholder(&self) -> Ex {
        Ex::Val(Value::Secret(Secret::new(PLACEHOLDER, self.salt)))
    }

    fn used_by(&self, span: &Range<usize>) -> String {
        self.site.describe(span)
    }

    /// A secret's value; `None` when it is optional and missing (the entry
    /// holding it is left out). A missing required value is recorded and
    /// stands in as a placeholder, so that nothing else reports it.
    fn secret(&self, r: &SecretRef<'_>, at: &Range<usize>) -> Option<Ex> {
        if self.eval == Eval::Validate {
            return Some(self.placeholder());
        }
        let value = match r.origin {
            Origin::Env(name) => std::env::var(name).map_err(|_| None),
            Origin::File(p) => {
                let path = expand_home(p, &self.cfg.base_dir);
                std::fs::read_to_string(&path)
                    .map(|v| v.trim_end_matches('\n').to_string())
                    .map_err(|e| Some((p.to_string(), e.to_string())))
            }
        };
        match value {
            Ok(v) => Some(Ex::Val(Value::Secret(Secret::new(v, self.salt)))),
            Err(_) if r.optional.is_some() => None,
            Err(file) => {
                let mut m = self.missing.borrow_mut();
                match (file, &r.origin) {
                    (Some((path, e)), _) => m.file(&path, e, self.used_by(at), &r.span),
                    (None, Origin::Env(name)) => m.env(name, self.used_by(at), &r.span),
                    (None, Origin::File(_)) => {}
                }
                Some(self.placeholder())
            }
        }
    }

    /// `${env.NAME}`: unknown when not set (recorded in live evaluation).
    fn env(&self, name: &str, span: &Range<usize>) -> Value {
        match std::env::var(name) {
            Ok(v) => Value::String(v),
            Err(_) => {
                if self.eval == Eval::Live {
                    self.missing
                        .borrow_mut()
                        .env(name, self.used_by(span), span);
                }
                Value::Unknown
            }
        }
    }
}

/// A table entry's value; `None` leaves the entry out (an optional secret
/// whose value is missing).
fn entry(e: &Entry, scope: &Scope<'_>, errs: &mut Vec<Problem>) -> Option<Ex> {
    if let Some(t) = e.value.as_table() {
        if let Ok(Some(r)) = secret_ref(t, &scope.cfg.source()) {
            if r.optional.is_some() {
                return scope.secret(&r, &e.value.span);
            }
        }
    }
    Some(subst(&e.value, scope, errs))
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
                            RefKind::Env(name) => segs.push(Seg::Val(scope.env(&name, &n.span))),
                            RefKind::Resource(mut rr) => {
                                // `TYPE.NAME[each.key].ATTR`: the instance of this key.
                                if rr.key.as_deref() == Some(template::EACH_KEY) {
                                    rr.key = scope.each.as_ref().map(|(k, _)| k.clone());
                                }
                                if rr.key.is_none() && rr.text.contains("[each.key]") {
                                    errs.push(
                                        source
                                            .err(&n.span, format!("`${{{text}}}`: `[each.key]` used outside a resource with for_each"))
                                            .hint("write the instance's key: TYPE.NAME[\"key\"].ATTRIBUTE"),
                                    );
                                } else if scope.refs_allowed {
                                    segs.push(Seg::Ref(Box::new(rr)));
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
            match secret_ref(t, &source) {
                Err(p) => {
                    errs.push(p);
                    return Ex::Val(Value::Null);
                }
                Ok(Some(r)) => {
                    // Entries of tables are evaluated by `entry`: here the
                    // secret is a whole value.
                    if let Some(span) = &r.optional {
                        errs.push(optional_not_here(span, &source));
                    }
                    return scope.secret(&r, &n.span).unwrap_or(Ex::Val(Value::Null));
                }
                Ok(None) => {}
            }
            Ex::Map(
                t.iter()
                    .filter_map(|e| Some((e.key.clone(), entry(e, scope, errs)?)))
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
    eval: Eval,
    errs: &mut Vec<Problem>,
) -> Ex {
    let res = cfg.resource(inst);
    let label = format!("{}.{}", res.rtype, res.name);
    let missing = RefCell::new(Missing::default());
    let site = Site {
        label: &label,
        node: &res.node,
    };
    let scope = Scope {
        each: inst.each.clone(),
        refs_allowed: true,
        ..Scope::new(cfg, salt, eval, site, &missing)
    };
    let ex = reparse(v, &scope, &res.node.span, errs);
    errs.extend(missing.into_inner().problems(&cfg.source()));
    ex
}

fn reparse(v: &Value, scope: &Scope<'_>, span: &Range<usize>, errs: &mut Vec<Problem>) -> Ex {
    match v {
        Value::String(s) if s.contains("${") => {
            let n = Node {
                span: span.clone(),
                kind: Kind::Str(s.clone()),
            };
            subst(&n, scope, errs)
        }
        Value::List(l) => {
            Ex::List(l.iter().map(|x| reparse(x, scope, span, errs)).collect()).simplify()
        }
        Value::Map(m) => Ex::Map(
            m.iter()
                .map(|(k, x)| (k.clone(), reparse(x, scope, span, errs)))
                .collect(),
        )
        .simplify(),
        other => Ex::Val(other.clone()),
    }
}

/// Every resource reference in an instance body.
pub fn body_refs(body: &ExMap) -> Vec<&ResRef> {
    let mut out = Vec::new();
    for e in body.values() {
        e.refs(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insts(c: &Config, eval: Eval) -> Vec<Instance> {
        c.instances(&Registry::builtin(), "salt", eval).unwrap()
    }

    fn map(e: &Ex) -> &claw_provider::Map {
        match e {
            Ex::Val(Value::Map(m)) => m,
            other => panic!("not a table: {other:?}"),
        }
    }

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
        let insts = insts(&c, Eval::Live);
        let addrs: Vec<&str> = insts.iter().map(|i| i.addr.as_str()).collect();
        assert_eq!(addrs, ["file.a[\"x\"]", "file.a[\"y\"]", "file.b"]);
        assert_eq!(
            *insts[1].body.get("path").unwrap(),
            Ex::Val(Value::str("/r/y"))
        );
        assert_eq!(
            *insts[1].body.get("content").unwrap(),
            Ex::Val(Value::str("0644"))
        );
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
            .instances(&Registry::builtin(), "salt", Eval::Live)
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
        let e = c
            .block_attrs("host.m", "salt", Eval::Live)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("resource references are not allowed here"),
            "{e}"
        );
    }

    #[test]
    fn value_to_ex_finds_references_in_expanded_values() {
        let c = cfg("[stack]\nname = \"s\"\n[file.a]\npath = \"p\"\n");
        let insts = insts(&c, Eval::Live);
        let v = Value::Map([("k".to_string(), Value::str("${file.a.path}"))].into());
        let mut errs = Vec::new();
        let ex = value_to_ex(&v, &c, &insts[0], "salt", Eval::Live, &mut errs);
        assert!(errs.is_empty());
        let mut refs = Vec::new();
        ex.refs(&mut refs);
        assert_eq!(refs[0].resource(), "file.a");
    }

    const SECRETS: &str = "[stack]\nname = \"s\"\n[vars]\nhome = \"${env.CLAW_UNIT_UNSET_HOME}/x\"\n\
         [tmux_session.t]\nenv = { A = { env = \"CLAW_UNIT_UNSET\", optional = true }, B = { env = \"CLAW_UNIT_UNSET_B\" }, C = \"${vars.home}\" }\n\
         [file.f]\npath = \"${env.CLAW_UNIT_UNSET_P}\"\ncontent = { file = \"no/such/file\" }\n";

    #[test]
    fn validate_uses_placeholders_and_reports_nothing_missing() {
        let c = cfg(SECRETS);
        let insts = insts(&c, Eval::Validate);
        let f = insts.iter().find(|i| i.addr == "file.f").unwrap();
        assert_eq!(*f.body.get("path").unwrap(), Ex::Val(Value::Unknown));
        assert!(matches!(
            f.body.get("content").unwrap(),
            Ex::Val(Value::Secret(_))
        ));
        let t = insts.iter().find(|i| i.addr == "tmux_session.t").unwrap();
        let env = map(t.body.get("env").unwrap());
        assert!(
            env.contains_key("A"),
            "validate reads no variable: the optional entry stays"
        );
        assert_eq!(env["C"], Value::Unknown);
    }

    #[test]
    fn live_evaluation_reports_each_missing_value_once() {
        let c = cfg(SECRETS);
        let e = c
            .instances(&Registry::builtin(), "salt", Eval::Live)
            .unwrap_err();
        let m: Vec<&str> = e.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(m.len(), 4, "{m:#?}");
        assert!(m[0].starts_with("environment variable `CLAW_UNIT_UNSET_HOME` is not set; used by [vars] home (claw.toml:4:8)"), "{m:#?}");
        assert!(
            m[1].contains("`CLAW_UNIT_UNSET_B` is not set; used by tmux_session.t env.B"),
            "{m:#?}"
        );
        assert!(
            m[2].contains("`CLAW_UNIT_UNSET_P` is not set; used by file.f path"),
            "{m:#?}"
        );
        assert!(
            m[3].starts_with("cannot read secret file no/such/file"),
            "{m:#?}"
        );
        assert!(
            !m.iter().any(|p| p.contains("CLAW_UNIT_UNSET`")),
            "the optional one is no error"
        );
    }

    #[test]
    fn optional_entries_are_dropped_and_optional_whole_values_refused() {
        let c = cfg("[stack]\nname = \"s\"\n[tmux_session.t]\nenv = { A = { env = \"CLAW_UNIT_UNSET\", optional = true }, B = \"b\" }\n");
        let insts = insts(&c, Eval::Live);
        let env = map(insts[0].body.get("env").unwrap());
        assert_eq!(env.keys().collect::<Vec<_>>(), ["B"]);
        let c = cfg("[stack]\nname = \"s\"\n[file.f]\npath = \"p\"\ncontent = { env = \"CLAW_UNIT_UNSET\", optional = true }\n");
        for eval in [Eval::Validate, Eval::Live] {
            let e = c
                .instances(&Registry::builtin(), "salt", eval)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("applies only to an entry of a table") && e.contains("claw.toml:5:38"),
                "{e}"
            );
        }
    }
}
