//! `claw.toml`: parsing with spans, the typed model, `for_each` expansion and
//! interpolation of vars, env, each and secrets.
//!
//! **Invariant:** every error names `file:line:column`; nothing here does IO
//! beyond reading the config file and `{ file = ... }` secrets.

pub mod node;
pub mod template;

use crate::error::{closest, Error, Loc, Problem, Result};
use crate::registry::Registry;
use claw_provider::{Attrs, Secret, Value};
use node::{Kind, Node};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use template::{parse_template, Ex, Piece, RefKind, ResRef, Seg};

pub const META_KEYS: &[&str] = &["host", "provider", "depends_on", "for_each", "lifecycle"];
const TOP_KEYS: &[&str] = &["stack", "vars", "host", "provider"];

/// Where state lives (SPEC §5).
#[derive(Debug, Clone, PartialEq)]
pub enum StateCfg {
    Local { path: PathBuf },
    Kubernetes { provider: String, attrs: Attrs },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lifecycle {
    pub prevent_destroy: bool,
    pub create_before_destroy: bool,
    pub ignore_changes: Vec<String>,
}

/// A `[host.*]` or `[provider.*]` block.
#[derive(Debug, Clone)]
pub struct ProviderBlock {
    /// `host.local`, `host.mac-mini`, `provider.k3s`
    pub key: String,
    pub alias: String,
    pub kind: String,
    pub node: Option<Node>,
}

/// One `[type.name]` table.
#[derive(Debug, Clone)]
pub struct Resource {
    pub rtype: String,
    pub name: String,
    pub kind: String,
    /// The provider block key this resource uses.
    pub provider_key: String,
    pub node: Node,
    pub depends_on: Vec<(String, Range<usize>)>,
    pub lifecycle: Lifecycle,
}

/// One instance of a resource (one per `for_each` key).
#[derive(Debug, Clone)]
pub struct Instance {
    pub addr: String,
    pub rtype: String,
    pub name: String,
    pub key: Option<String>,
    pub provider_key: String,
    /// Index into `Config::resources`.
    pub res: usize,
    /// Attributes with vars/each/env/secrets substituted; resource references left.
    pub body: BTreeMap<String, Ex>,
    /// The `for_each` key and value this instance was made from.
    pub each: Option<(String, Value)>,
    /// True when this instance came from a provider's `expand`.
    pub expanded: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub src: String,
    pub base_dir: PathBuf,
    pub root: Node,
    pub stack: String,
    pub state: StateCfg,
    pub vars: BTreeMap<String, Value>,
    pub blocks: BTreeMap<String, ProviderBlock>,
    pub resources: Vec<Resource>,
}

/// The config file's text and where it came from, for locating errors.
pub struct Source<'a> {
    pub path: &'a Path,
    pub src: &'a str,
}

impl Source<'_> {
    pub fn loc(&self, span: &Range<usize>) -> Option<Loc> {
        Some(Loc::from_span(self.path, self.src, span.clone()))
    }
    pub fn err(&self, span: &Range<usize>, msg: impl Into<String>) -> Problem {
        Problem::new(msg).at(self.loc(span))
    }
}

impl Config {
    pub fn source(&self) -> Source<'_> {
        Source {
            path: &self.path,
            src: &self.src,
        }
    }

    pub fn loc(&self, span: &Range<usize>) -> Option<Loc> {
        self.source().loc(span)
    }

    /// Reads and checks `path`. `cli_vars` are `--var k=v` pairs (highest precedence),
    /// then `CLAW_VAR_<name>` from the environment, then `[vars]` defaults.
    pub fn load(path: &Path, cli_vars: &[(String, String)], reg: &Registry) -> Result<Config> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            Error::one(
                Problem::new(format!("cannot read {}: {e}", path.display()))
                    .hint("run claw in the folder that holds claw.toml, or pass -C DIR / -f FILE"),
            )
        })?;
        Config::parse(path, src, cli_vars, reg)
    }

    pub fn parse(
        path: &Path,
        src: String,
        cli_vars: &[(String, String)],
        reg: &Registry,
    ) -> Result<Config> {
        let source = Source { path, src: &src };
        let root = node::parse(&src).map_err(|(msg, span)| {
            Error::one(
                source
                    .err(&span, format!("invalid TOML: {msg}"))
                    .hint("check quotes, brackets and `key = value` syntax at this place"),
            )
        })?;
        let mut errs = Vec::new();
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));

        // Top-level keys.
        let type_names: Vec<&str> = reg.type_names().collect();
        for e in root.as_table().unwrap_or_default() {
            if TOP_KEYS.contains(&e.key.as_str()) || reg.resource_type(&e.key).is_some() {
                continue;
            }
            let mut p = source.err(
                &e.key_span,
                format!(
                    "unknown section `{}`: not a setting or resource type",
                    e.key
                ),
            );
            let cands = TOP_KEYS.iter().copied().chain(type_names.iter().copied());
            p = match closest(&e.key, cands) {
                Some(c) => p.hint(format!("did you mean `{c}`?")),
                None => p.hint(format!("resource types are: {}", type_names.join(", "))),
            };
            errs.push(p);
        }

        // [stack]
        let (stack, state) = match root.get("stack") {
            None => {
                errs.push(
                    Problem::new("claw.toml has no [stack] table")
                        .at(source.loc(&(0..0)))
                        .hint("add:\n[stack]\nname = \"my-stack\""),
                );
                (
                    String::new(),
                    StateCfg::Local {
                        path: base_dir.join(".claw/state.json"),
                    },
                )
            }
            Some(n) => parse_stack(n, &source, &base_dir, &mut errs),
        };

        // [vars]
        let vars = parse_vars(root.get("vars"), cli_vars, &source, &mut errs);

        // [host.*] and [provider.*]
        let mut blocks = BTreeMap::new();
        let mut add_block = |prefix: &str, alias: &str, kind: String, node: Option<Node>| {
            let key = format!("{prefix}.{alias}");
            let alias = alias.to_string();
            blocks.insert(
                key.clone(),
                ProviderBlock {
                    key,
                    alias,
                    kind,
                    node,
                },
            );
        };
        add_block("host", "local", "host".into(), None);
        if let Some(h) = root.get("host") {
            for e in table_of(h, "host", &source, &mut errs) {
                if !check_name(&source, e, "host name", &mut errs) {
                    continue;
                }
                if e.key == "local" {
                    errs.push(
                        source
                            .err(
                                &e.key_span,
                                "`local` is always this machine and cannot be redefined",
                            )
                            .hint("give the host another name"),
                    );
                    continue;
                }
                if e.value.as_table().is_none() {
                    errs.push(
                        source.err(&e.value.span, format!("[host.{}] must be a table", e.key)),
                    );
                    continue;
                }
                add_block("host", &e.key, "host".into(), Some(e.value.clone()));
            }
        }
        if let Some(p) = root.get("provider") {
            let kinds: Vec<&str> = reg.kinds().filter(|k| *k != "host").collect();
            for e in table_of(p, "provider", &source, &mut errs) {
                if !check_name(&source, e, "provider alias", &mut errs) {
                    continue;
                }
                let kind = match e.value.get("type") {
                    Some(t) => match t.as_str() {
                        Some(k) if kinds.contains(&k) => k.to_string(),
                        Some(k) => {
                            let mut pb =
                                source.err(&t.span, format!("unknown provider type `{k}`"));
                            pb = match closest(k, kinds.iter().copied()) {
                                Some(c) => pb.hint(format!("did you mean `{c}`?")),
                                None => {
                                    pb.hint(format!("provider types are: {}", kinds.join(", ")))
                                }
                            };
                            errs.push(pb);
                            continue;
                        }
                        None => {
                            errs.push(source.err(&t.span, "`type` must be a string"));
                            continue;
                        }
                    },
                    None if kinds.contains(&e.key.as_str()) => e.key.clone(),
                    None => {
                        errs.push(
                            source
                                .err(&e.key_span, format!("[provider.{}] has no `type`", e.key))
                                .hint(format!(
                                    "add `type = \"...\"`, one of: {}",
                                    kinds.join(", ")
                                )),
                        );
                        continue;
                    }
                };
                add_block("provider", &e.key, kind, Some(e.value.clone()));
            }
        }

        // Check block shapes.
        for b in blocks.values() {
            let Some(n) = &b.node else { continue };
            let Some(f) = reg.factory(&b.kind) else {
                continue;
            };
            let mut json = n.to_json();
            if let Some(o) = json.as_object_mut() {
                o.remove("type");
            }
            if let Err(ce) = (f.config_shape().check)(&json) {
                errs.push(shape_problem(&ce, n, &source, &format!("[{}]", b.key)));
            }
        }

        // Resources.
        let mut resources = Vec::new();
        for e in root.as_table().unwrap_or_default() {
            let Some((kind, _)) = reg.resource_type(&e.key) else {
                continue;
            };
            let rtype = e.key.clone();
            for r in table_of(&e.value, &rtype, &source, &mut errs) {
                if !check_name(&source, r, "resource name", &mut errs) {
                    continue;
                }
                if r.value.as_table().is_none() {
                    errs.push(
                        source
                            .err(
                                &r.value.span,
                                format!(
                                    "[{rtype}.{}] must be a table, found {}",
                                    r.key,
                                    r.value.type_name()
                                ),
                            )
                            .hint(format!("write it as a table: [{rtype}.{}]", r.key)),
                    );
                    continue;
                }
                if let Some(res) =
                    parse_resource(&rtype, kind, &r.key, &r.value, &blocks, &source, &mut errs)
                {
                    resources.push(res);
                }
            }
        }

        if !errs.is_empty() {
            return Err(Error::many(errs));
        }
        Ok(Config {
            path: path.to_path_buf(),
            src: src.clone(),
            base_dir,
            root,
            stack,
            state,
            vars,
            blocks,
            resources,
        })
    }

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

    /// The resource a config instance comes from.
    pub fn resource(&self, inst: &Instance) -> &Resource {
        &self.resources[inst.res]
    }

    /// A hash of the configuration text (saved in plan files).
    pub fn text_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(self.src.as_bytes()))
    }
}

/// Turns a substituted body into JSON for its shape check: secrets appear as
/// `{ env = "(sensitive)" }`, references and unknowns as their template text.
fn body_json(body: &BTreeMap<String, Ex>) -> serde_json::Value {
    fn ex(e: &Ex) -> serde_json::Value {
        match e {
            Ex::Val(v) => val(v),
            Ex::Str(segs) => serde_json::Value::String(
                segs.iter()
                    .map(|s| match s {
                        Seg::Val(v) => template::to_text(v),
                        Seg::Ref(r) => format!("${{{}}}", r.text),
                    })
                    .collect(),
            ),
            Ex::List(l) => serde_json::Value::Array(l.iter().map(ex).collect()),
            Ex::Map(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), ex(v))).collect())
            }
        }
    }
    fn val(v: &Value) -> serde_json::Value {
        match v {
            Value::Secret(_) => serde_json::json!({"env": "(sensitive)"}),
            Value::Unknown => serde_json::Value::String("(known after apply)".into()),
            Value::List(l) => serde_json::Value::Array(l.iter().map(val).collect()),
            Value::Map(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), val(v))).collect())
            }
            other => other.to_json(),
        }
    }
    serde_json::Value::Object(body.iter().map(|(k, v)| (k.clone(), ex(v))).collect())
}

/// Maps a shape error (a serde message and path) to a located problem.
fn shape_problem(
    ce: &claw_provider::CheckError,
    node: &Node,
    source: &Source<'_>,
    what: &str,
) -> Problem {
    let msg = &ce.message;
    // serde: "unknown field `contnet`, expected one of `path`, `content`"
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let cands: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let parent_path = ce.path.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
        let parent_path = if ce.path == field { "" } else { parent_path };
        let parent_span = node.locate(parent_path);
        let parent = node_at(node, parent_path);
        let span = parent
            .and_then(|p| p.key_span(field))
            .unwrap_or(parent_span);
        let mut p = source.err(&span, format!("unknown key `{field}` in {what}"));
        p = match closest(field, cands.iter().copied()) {
            Some(c) => p.hint(format!("did you mean `{c}`?")),
            None if !cands.is_empty() => p.hint(format!("known keys: {}", cands.join(", "))),
            None => p,
        };
        return p;
    }
    let span = node.locate(&ce.path);
    let at = if ce.path.is_empty() {
        String::new()
    } else {
        format!(" at `{}`", ce.path)
    };
    let mut p = source.err(&span, format!("invalid value in {what}{at}: {msg}"));
    if msg.starts_with("missing field") {
        let f = msg.split('`').nth(1).unwrap_or_default();
        p = p.hint(format!("add `{f} = ...`"));
    } else if msg.starts_with("invalid type") {
        p = p.hint("check the value's type (string, number, boolean, list or table)");
    }
    p
}

fn node_at<'a>(node: &'a Node, path: &str) -> Option<&'a Node> {
    let mut cur = node;
    for seg in claw_provider::value::split_path(path) {
        cur = match (&cur.kind, seg) {
            (Kind::Table(t), claw_provider::value::PathSeg::Key(k)) => {
                &t.iter().find(|e| e.key == k)?.value
            }
            (Kind::Array(a), claw_provider::value::PathSeg::Index(i)) => a.get(i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Names of hosts, aliases and resources match `[A-Za-z0-9_-]+`.
fn check_name(source: &Source<'_>, e: &node::Entry, what: &str, errs: &mut Vec<Problem>) -> bool {
    if template::valid_name(&e.key) {
        return true;
    }
    errs.push(
        source
            .err(&e.key_span, format!("invalid {what} `{}`", e.key))
            .hint("names match [A-Za-z0-9_-]+"),
    );
    false
}

fn table_of<'a>(
    n: &'a Node,
    what: &str,
    source: &Source<'_>,
    errs: &mut Vec<Problem>,
) -> &'a [node::Entry] {
    match n.as_table() {
        Some(t) => t,
        None => {
            errs.push(source.err(
                &n.span,
                format!("`{what}` must be a table, found {}", n.type_name()),
            ));
            &[]
        }
    }
}

fn parse_stack(
    n: &Node,
    source: &Source<'_>,
    base_dir: &Path,
    errs: &mut Vec<Problem>,
) -> (String, StateCfg) {
    let mut name = String::new();
    let mut state = StateCfg::Local {
        path: base_dir.join(".claw/state.json"),
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
                let Some(t) = e.value.as_table() else {
                    errs.push(source.err(&e.value.span, "`state` must be a table like { backend = \"local\", path = \".claw/state.json\" }"));
                    continue;
                };
                let backend = e.value.get("backend").and_then(Node::as_str).unwrap_or("local");
                match backend {
                    "local" => {
                        for f in t {
                            match f.key.as_str() {
                                "backend" => {}
                                "path" => match f.value.as_str() {
                                    Some(p) => state = StateCfg::Local { path: base_dir.join(p) },
                                    None => errs.push(source.err(&f.value.span, "`path` must be a string")),
                                },
                                k => errs.push(unknown_key(source, &f.key_span, k, &["backend", "path"], "state")),
                            }
                        }
                    }
                    "kubernetes" => {
                        let mut provider = None;
                        let mut attrs = Attrs::new();
                        for f in t {
                            match (f.key.as_str(), f.value.as_str()) {
                                ("backend", _) => {}
                                ("provider", Some(p)) => provider = Some(p.to_string()),
                                ("namespace" | "name", Some(v)) => {
                                    attrs.insert(f.key.clone(), Value::str(v));
                                }
                                ("provider" | "namespace" | "name", None) => {
                                    errs.push(source.err(&f.value.span, format!("`{}` must be a string", f.key)))
                                }
                                (k, _) => errs.push(unknown_key(source, &f.key_span, k, &["backend", "provider", "namespace", "name"], "state")),
                            }
                        }
                        match provider {
                            Some(p) => state = StateCfg::Kubernetes { provider: p, attrs },
                            None => errs.push(source.err(&e.value.span, "the kubernetes state backend needs `provider`").hint("state = { backend = \"kubernetes\", provider = \"k3s\", namespace = \"claw-system\" }")),
                        }
                    }
                    other => {
                        let span = e.value.get("backend").map(|b| b.span.clone()).unwrap_or(e.value.span.clone());
                        errs.push(source.err(&span, format!("unknown state backend {other:?}")).hint("backends are \"local\" and \"kubernetes\""));
                    }
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

pub fn valid_stack_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 40
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn unknown_key(
    source: &Source<'_>,
    span: &Range<usize>,
    k: &str,
    known: &[&str],
    what: &str,
) -> Problem {
    let p = source.err(span, format!("unknown key `{k}` in {what}"));
    match closest(k, known.iter().copied()) {
        Some(c) => p.hint(format!("did you mean `{c}`?")),
        None => p.hint(format!("known keys: {}", known.join(", "))),
    }
}

fn parse_vars(
    n: Option<&Node>,
    cli: &[(String, String)],
    source: &Source<'_>,
    errs: &mut Vec<Problem>,
) -> BTreeMap<String, Value> {
    let mut vars = BTreeMap::new();
    let mut spans = BTreeMap::new();
    if let Some(n) = n {
        for e in table_of(n, "vars", source, errs) {
            // Var defaults may use ${env.X} (and nothing else).
            let v = node_value(&e.value, source, errs);
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

/// A var default: plain TOML with `${env.X}` interpolation.
fn node_value(n: &Node, source: &Source<'_>, errs: &mut Vec<Problem>) -> Value {
    match &n.kind {
        Kind::Str(s) => match parse_template(s, &n.span) {
            Ok(pieces) => {
                let mut out = String::new();
                for p in pieces {
                    match p {
                        Piece::Lit(l) => out.push_str(&l),
                        Piece::Ref(RefKind::Env(name), _) => match std::env::var(&name) {
                            Ok(v) => out.push_str(&v),
                            Err(_) => errs.push(
                                source
                                    .err(
                                        &n.span,
                                        format!("environment variable `{name}` is not set"),
                                    )
                                    .hint(format!("export {name}=... before running claw")),
                            ),
                        },
                        Piece::Ref(_, text) => errs.push(source.err(
                            &n.span,
                            format!("`${{{text}}}`: variable defaults may only use ${{env.NAME}}"),
                        )),
                    }
                }
                Value::String(out)
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
        Kind::Array(a) => Value::List(a.iter().map(|x| node_value(x, source, errs)).collect()),
        Kind::Table(t) => Value::Map(
            t.iter()
                .map(|e| (e.key.clone(), node_value(&e.value, source, errs)))
                .collect(),
        ),
    }
}

fn parse_resource(
    rtype: &str,
    kind: &str,
    name: &str,
    n: &Node,
    blocks: &BTreeMap<String, ProviderBlock>,
    source: &Source<'_>,
    errs: &mut Vec<Problem>,
) -> Option<Resource> {
    let addr = format!("{rtype}.{name}");
    // Provider / host.
    let provider_key = if kind == "host" {
        if let Some(p) = n.entry("provider") {
            errs.push(
                source
                    .err(
                        &p.key_span,
                        format!("{addr}: host resources take `host`, not `provider`"),
                    )
                    .hint("write host = \"NAME\" (a [host.NAME] table, or \"local\")"),
            );
            return None;
        }
        match n.get("host") {
            None => "host.local".to_string(),
            Some(h) => match h.as_str() {
                Some(hn) if blocks.contains_key(&format!("host.{hn}")) => format!("host.{hn}"),
                Some(hn) => {
                    let hosts: Vec<&str> = blocks
                        .values()
                        .filter(|b| b.kind == "host")
                        .map(|b| b.alias.as_str())
                        .collect();
                    let p = source.err(&h.span, format!("{addr}: unknown host `{hn}`"));
                    errs.push(match closest(hn, hosts.iter().copied()) {
                        Some(c) => p.hint(format!(
                            "did you mean `{c}`? hosts are declared as [host.NAME]"
                        )),
                        None => p.hint(format!(
                            "declare it as [host.{hn}] with an `address`, or use one of: {}",
                            hosts.join(", ")
                        )),
                    });
                    return None;
                }
                None => {
                    errs.push(source.err(&h.span, "`host` must be a string"));
                    return None;
                }
            },
        }
    } else {
        if let Some(p) = n.entry("host") {
            errs.push(
                source
                    .err(
                        &p.key_span,
                        format!("{addr}: only host resources take `host`"),
                    )
                    .hint("use `provider = \"ALIAS\"` to choose a [provider.ALIAS]"),
            );
            return None;
        }
        let of_kind: Vec<&ProviderBlock> = blocks.values().filter(|b| b.kind == kind).collect();
        match n.get("provider") {
            Some(p) => match p.as_str() {
                Some(alias) => match blocks.get(&format!("provider.{alias}")) {
                    Some(b) if b.kind == kind => b.key.clone(),
                    Some(b) => {
                        errs.push(source.err(&p.span, format!("{addr}: provider `{alias}` is of type {}, but {rtype} needs a {kind} provider", b.kind)));
                        return None;
                    }
                    None => {
                        let names: Vec<&str> = of_kind.iter().map(|b| b.alias.as_str()).collect();
                        let pb = source.err(&p.span, format!("{addr}: unknown provider `{alias}`"));
                        errs.push(match closest(alias, names.iter().copied()) {
                            Some(c) => pb.hint(format!("did you mean `{c}`?")),
                            None => pb.hint(format!(
                                "declare it:\n[provider.{alias}]\ntype = \"{kind}\""
                            )),
                        });
                        return None;
                    }
                },
                None => {
                    errs.push(source.err(&p.span, "`provider` must be a string"));
                    return None;
                }
            },
            None => match of_kind.len() {
                0 => format!("provider.{kind}"),
                1 => of_kind[0].key.clone(),
                _ => {
                    let names: Vec<&str> = of_kind.iter().map(|b| b.alias.as_str()).collect();
                    errs.push(
                        source
                            .err(
                                &n.span,
                                format!(
                                    "{addr}: several {kind} providers are declared; which one?"
                                ),
                            )
                            .hint(format!(
                                "add `provider = \"...\"`, one of: {}",
                                names.join(", ")
                            )),
                    );
                    return None;
                }
            },
        }
    };
    // depends_on
    let mut depends_on = Vec::new();
    if let Some(d) = n.get("depends_on") {
        match &d.kind {
            Kind::Array(items) => {
                for it in items {
                    match it.as_str() {
                        Some(s) if template::parse_address(s).is_some() => {
                            depends_on.push((s.to_string(), it.span.clone()))
                        }
                        Some(s) => errs.push(
                            source
                                .err(&it.span, format!("{addr}: `{s}` is not a resource address"))
                                .hint("write \"TYPE.NAME\" or \"TYPE.NAME[\\\"KEY\\\"]\""),
                        ),
                        None => errs.push(source.err(&it.span, "depends_on items must be strings")),
                    }
                }
            }
            _ => errs.push(
                source
                    .err(&d.span, "`depends_on` must be a list of addresses")
                    .hint("depends_on = [\"file.config\"]"),
            ),
        }
    }
    // lifecycle
    let mut lifecycle = Lifecycle::default();
    if let Some(l) = n.get("lifecycle") {
        match l.as_table() {
            Some(t) => {
                for e in t {
                    match (e.key.as_str(), &e.value.kind) {
                        ("prevent_destroy", Kind::Bool(b)) => lifecycle.prevent_destroy = *b,
                        ("create_before_destroy", Kind::Bool(b)) => {
                            lifecycle.create_before_destroy = *b
                        }
                        ("ignore_changes", Kind::Array(a)) => {
                            for it in a {
                                match it.as_str() {
                                    Some(s) => lifecycle.ignore_changes.push(s.to_string()),
                                    None => errs.push(source.err(
                                        &it.span,
                                        "ignore_changes items must be attribute paths (strings)",
                                    )),
                                }
                            }
                        }
                        ("prevent_destroy" | "create_before_destroy", _) => errs.push(
                            source.err(&e.value.span, format!("`{}` must be true or false", e.key)),
                        ),
                        ("ignore_changes", _) => errs.push(source.err(
                            &e.value.span,
                            "`ignore_changes` must be a list of attribute paths",
                        )),
                        (k, _) => errs.push(unknown_key(
                            source,
                            &e.key_span,
                            k,
                            &["prevent_destroy", "create_before_destroy", "ignore_changes"],
                            "lifecycle",
                        )),
                    }
                }
            }
            None => errs.push(
                source
                    .err(&l.span, "`lifecycle` must be a table")
                    .hint("lifecycle = { prevent_destroy = true }"),
            ),
        }
    }
    Some(Resource {
        rtype: rtype.to_string(),
        name: name.to_string(),
        kind: kind.to_string(),
        provider_key,
        node: n.clone(),
        depends_on,
        lifecycle,
    })
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
