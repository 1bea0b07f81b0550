//! Parsing: the document's checks (unknown keys with the closest suggestion,
//! names, hosts, provider aliases), `[stack]`, `[vars]` and resources.

use super::node::{self, Kind, Node};
use super::secrets::{secret_ref, Origin};
use super::settings::{check_state_provider, parse_stack, parse_vars};
use super::shape::shape_problem;
use super::template;
use super::types::*;
use crate::error::{closest, Error, Problem, Result};
use crate::registry::Registry;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

const TOP_KEYS: &[&str] = &[
    "stack", "vars", "host", "provider", "moved", "output", "check",
];

/// The folder of the configuration file `path` (relative paths in it are
/// relative to this folder).
pub fn base_dir_of(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where the state lives when `[stack] state` does not say.
pub fn default_state_path(base_dir: &Path) -> PathBuf {
    base_dir.join(".claw/state.json")
}

impl Config {
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
        let lines = line_starts(&src);
        let source = Source {
            path,
            src: &src,
            lines: &lines,
        };
        let root = node::parse(&src).map_err(|(msg, span)| {
            Error::one(
                source
                    .err(&span, format!("invalid TOML: {msg}"))
                    .hint("check quotes, brackets and `key = value` syntax at this place"),
            )
        })?;
        let mut errs = Vec::new();
        let base_dir = base_dir_of(path);

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

        let mut unset_env = Vec::new();
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
                        path: default_state_path(&base_dir),
                    },
                )
            }
            Some(n) => parse_stack(n, &source, &base_dir, &mut unset_env, &mut errs),
        };

        // [vars]
        let vars = parse_vars(
            root.get("vars"),
            cli_vars,
            &source,
            &mut unset_env,
            &mut errs,
        );

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

        check_state_provider(&state, &blocks, reg, &source, &mut errs);

        // Check block shapes.
        for b in blocks.values() {
            let Some(n) = &b.node else { continue };
            let Some(f) = reg.factory(&b.kind) else {
                continue;
            };
            let before = errs.len();
            let mut json = block_json(n, &source, &mut errs);
            if let Some(o) = json.as_object_mut() {
                o.remove("type");
            }
            if errs.len() > before {
                continue;
            }
            if let Err(ce) = (f.config_shape().check)(&json) {
                errs.push(shape_problem(&ce, n, &source, &format!("[{}]", b.key)));
            }
        }

        let moved = root
            .get("moved")
            .map(|n| super::moved::parse(n, &source, reg, &mut errs))
            .unwrap_or_default();
        let outputs = super::outputs::parse(root.get("output"), &source, &mut errs);
        let checks = super::checks::parse(root.get("check"), &blocks, &source, &mut errs);

        // Resources: the tree is taken apart, each resource keeps its node.
        let mut resources = Vec::new();
        let top = match root.kind {
            Kind::Table(t) => t,
            _ => Vec::new(),
        };
        for e in top {
            let Some((kind, _)) = reg.resource_type(&e.key) else {
                continue;
            };
            let rtype = e.key;
            if e.value.as_table().is_none() {
                table_of(&e.value, &rtype, &source, &mut errs);
                continue;
            }
            let Kind::Table(entries) = e.value.kind else {
                continue;
            };
            for r in entries {
                if !check_name(&source, &r, "resource name", &mut errs) {
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
                    parse_resource(&rtype, kind, &r.key, r.value, &blocks, &source, &mut errs)
                {
                    resources.push(res);
                }
            }
        }

        if !errs.is_empty() {
            return Err(Error::many(errs));
        }
        // Grown by doubling: give back the slack (a third of it, for
        // 20,000 resources of ~260 bytes).
        resources.shrink_to_fit();
        Ok(Config {
            moved,
            path: path.to_path_buf(),
            src,
            base_dir,
            stack,
            state,
            vars,
            blocks,
            resources,
            outputs,
            checks,
            unset_env,
            lines,
        })
    }
}

/// A block's JSON for its shape check: secret references are checked here
/// and appear without `optional` (evaluation decides where it may be).
fn block_json(n: &Node, source: &Source<'_>, errs: &mut Vec<Problem>) -> serde_json::Value {
    use serde_json::Value as J;
    match &n.kind {
        Kind::Table(t) => match secret_ref(t, source) {
            Ok(Some(r)) => match r.origin {
                Origin::Env(name) => serde_json::json!({ "env": name }),
                Origin::File(path) => serde_json::json!({ "file": path }),
            },
            Ok(None) => J::Object(
                t.iter()
                    .map(|e| (e.key.clone(), block_json(&e.value, source, errs)))
                    .collect(),
            ),
            Err(p) => {
                errs.push(p);
                J::Null
            }
        },
        Kind::Array(a) => J::Array(a.iter().map(|x| block_json(x, source, errs)).collect()),
        _ => n.to_json(),
    }
}

/// Names of hosts, aliases and resources match `[A-Za-z0-9_-]+`.
pub(super) fn check_name(
    source: &Source<'_>,
    e: &node::Entry,
    what: &str,
    errs: &mut Vec<Problem>,
) -> bool {
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

pub(super) fn table_of<'a>(
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

pub(super) fn unknown_key(
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

/// The `depends_on` list of the table `n` (of `addr`): addresses as written.
pub(super) fn depends_on(
    n: &Node,
    addr: &str,
    source: &Source<'_>,
    errs: &mut Vec<Problem>,
) -> Vec<(String, Range<usize>)> {
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
    depends_on
}

fn parse_resource(
    rtype: &str,
    kind: &str,
    name: &str,
    n: Node,
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
    let depends_on = depends_on(&n, &addr, source, errs);
    let lifecycle = super::lifecycle::parse(&n, source, errs);
    Some(Resource {
        rtype: rtype.to_string(),
        name: name.to_string(),
        kind: kind.to_string(),
        provider_key,
        node: n,
        depends_on,
        lifecycle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Config> {
        Config::parse(
            Path::new("claw.toml"),
            src.into(),
            &[],
            &Registry::builtin(),
        )
    }

    fn messages(src: &str) -> Vec<String> {
        match parse(src) {
            Ok(_) => panic!("expected errors for:\n{src}"),
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn parses_stack_blocks_and_resources() {
        let c = parse(
            "[stack]\nname = \"s\"\n[host.mini]\naddress = \"m\"\n[provider.docker]\n\
             [file.a]\npath = \"p\"\nhost = \"mini\"\ndepends_on = [\"file.b\"]\n\
             lifecycle = { prevent_destroy = true }\n[file.b]\npath = \"q\"\n\
             [docker_network.n]\nname = \"n\"\n",
        )
        .unwrap();
        assert_eq!(c.stack, "s");
        assert!(matches!(&c.state, StateCfg::Local { path } if path.ends_with(".claw/state.json")));
        let keys: Vec<&str> = c.blocks.keys().map(String::as_str).collect();
        assert_eq!(keys, ["host.local", "host.mini", "provider.docker"]);
        let a = &c.resources[0];
        assert_eq!((a.rtype.as_str(), a.name.as_str()), ("file", "a"));
        assert_eq!(a.provider_key, "host.mini");
        assert_eq!(a.depends_on[0].0, "file.b");
        assert!(a.lifecycle.prevent_destroy);
        assert_eq!(c.resources[1].provider_key, "host.local");
        assert_eq!(c.resources[2].provider_key, "provider.docker");
    }

    #[test]
    fn unknown_keys_get_the_closest_suggestion_and_a_location() {
        let e = messages("[stak]\nname = \"s\"\n");
        assert!(e.iter().any(|m| m.contains("unknown section `stak`")
            && m.contains("claw.toml:1:2")
            && m.contains("did you mean `stack`?")));
        let e = messages("[stack]\nname = \"s\"\nnmae = 1\n");
        assert!(e.iter().any(|m| m.contains("unknown key `nmae` in [stack]")
            && m.contains("claw.toml:3:1")
            && m.contains("did you mean `name`?")));
        let e = messages("[stack]\nname = \"s\"\n[file.a]\npath = \"p\"\nlifecycle = { prevent_destory = true }\n");
        assert!(
            e.iter()
                .any(|m| m.contains("did you mean `prevent_destroy`?")),
            "{e:?}"
        );
    }

    #[test]
    fn names_hosts_and_aliases_are_checked() {
        let e = messages("[stack]\nname = \"Bad Name\"\n");
        assert!(e[0].contains("invalid stack name"), "{e:?}");
        let e = messages("[stack]\nname = \"s\"\n[host.local]\naddress = \"x\"\n");
        assert!(e[0].contains("cannot be redefined"), "{e:?}");
        let e = messages("[stack]\nname = \"s\"\n[host.mini]\naddress = \"m\"\n[file.a]\npath = \"p\"\nhost = \"mni\"\n");
        assert!(
            e[0].contains("unknown host `mni`") && e[0].contains("did you mean `mini`?"),
            "{e:?}"
        );
        let e = messages("[stack]\nname = \"s\"\n[provider.k]\ntype = \"kubernets\"\n");
        assert!(e[0].contains("did you mean `kubernetes`?"), "{e:?}");
        let e = messages("[stack]\nname = \"s\"\n[provider.a]\ntype = \"docker\"\n[provider.b]\ntype = \"docker\"\n[docker_network.n]\nname = \"n\"\n");
        assert!(e[0].contains("several docker providers"), "{e:?}");
        let e =
            messages("[stack]\nname = \"s\"\n[file.a]\npath = \"p\"\ndepends_on = [\"nope\"]\n");
        assert!(e[0].contains("is not a resource address"), "{e:?}");
    }
}
