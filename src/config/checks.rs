//! `[check.NAME]` (SPEC §1.1a): exactly one of `http` (a 2xx answer is
//! healthy), `tcp` ("host:port" accepts a connection) or `command` (exit 0,
//! run on `host`, default `local`), a `timeout` (retry until healthy or
//! then; default 60s) and `depends_on`. Parsed here; `engine::checks` runs
//! them.

use super::node::{Kind, Node};
use super::parse::{check_name, depends_on, table_of, unknown_key};
use super::types::{ProviderBlock, Source};
use crate::error::{closest, Problem};
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

const KEYS: &[&str] = &["http", "tcp", "command", "host", "timeout", "depends_on"];
const PROBES: &[&str] = &["http", "tcp", "command"];
/// How long a check keeps trying when its `timeout` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a check probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// GET a URL; healthy on a 2xx status.
    Http,
    /// Connect to `host:port`.
    Tcp,
    /// Run a shell command on a host; healthy on exit 0.
    Command,
}

impl Probe {
    pub fn key(self) -> &'static str {
        match self {
            Probe::Http => "http",
            Probe::Tcp => "tcp",
            Probe::Command => "command",
        }
    }
}

/// One `[check.NAME]` table.
#[derive(Debug, Clone)]
pub struct CheckCfg {
    pub name: String,
    pub node: Node,
    pub probe: Probe,
    /// The probe's value (a string, may interpolate), evaluated later.
    pub target: Node,
    /// The host block a `command` runs on (`host.local` by default).
    pub host_key: String,
    pub timeout: Duration,
    pub depends_on: Vec<(String, Range<usize>)>,
}

impl CheckCfg {
    pub fn address(&self) -> String {
        format!("check.{}", self.name)
    }
}

/// The `[check.*]` tables, in file order.
pub(super) fn parse(
    n: Option<&Node>,
    blocks: &BTreeMap<String, ProviderBlock>,
    source: &Source<'_>,
    errs: &mut Vec<Problem>,
) -> Vec<CheckCfg> {
    let Some(n) = n else { return Vec::new() };
    let mut out = Vec::new();
    for e in table_of(n, "check", source, errs) {
        if !check_name(source, e, "check name", errs) {
            continue;
        }
        let label = format!("[check.{}]", e.key);
        if e.value.as_table().is_none() {
            errs.push(
                source
                    .err(&e.value.span, format!("{label} must be a table"))
                    .hint(format!(
                        "[check.{}]\nhttp = \"http://host:port/health\"",
                        e.key
                    )),
            );
            continue;
        }
        if let Some(c) = parse_one(&e.key, &label, &e.value, blocks, source, errs) {
            out.push(c);
        }
    }
    out
}

fn parse_one(
    name: &str,
    label: &str,
    n: &Node,
    blocks: &BTreeMap<String, ProviderBlock>,
    source: &Source<'_>,
    errs: &mut Vec<Problem>,
) -> Option<CheckCfg> {
    let before = errs.len();
    let t = n.as_table().unwrap_or_default();
    for f in t {
        if !KEYS.contains(&f.key.as_str()) {
            errs.push(unknown_key(source, &f.key_span, &f.key, KEYS, label));
        }
    }
    let probes: Vec<&super::node::Entry> = t
        .iter()
        .filter(|f| PROBES.contains(&f.key.as_str()))
        .collect();
    let (probe, target) = match probes.as_slice() {
        [one] => {
            let probe = match one.key.as_str() {
                "http" => Probe::Http,
                "tcp" => Probe::Tcp,
                _ => Probe::Command,
            };
            check_target(probe, &one.value, label, source, errs);
            (probe, one.value.clone())
        }
        [] => {
            errs.push(
                source
                    .err(&n.span, format!("{label} says nothing to check"))
                    .hint("give it exactly one of: http = \"http://host:port/health\", tcp = \"host:port\", command = \"...\""),
            );
            return None;
        }
        [_, second, ..] => {
            let keys: Vec<&str> = probes.iter().map(|f| f.key.as_str()).collect();
            errs.push(
                source
                    .err(
                        &second.key_span,
                        format!("{label} has {}; a check probes one thing", keys.join(" and ")),
                    )
                    .hint("keep exactly one of http, tcp and command; make another [check.NAME] for the rest"),
            );
            return None;
        }
    };
    let host_key = match n.get("host") {
        None => "host.local".to_string(),
        Some(_) if probe != Probe::Command => {
            errs.push(
                source
                    .err(
                        &n.key_span("host").unwrap_or(n.span.clone()),
                        format!("{label}: `host` applies to `command` checks only"),
                    )
                    .hint("an http or tcp check is made from this machine; drop `host`"),
            );
            String::new()
        }
        Some(h) => match h.as_str() {
            Some(hn) if blocks.contains_key(&format!("host.{hn}")) => format!("host.{hn}"),
            Some(hn) => {
                let hosts = blocks
                    .values()
                    .filter(|b| b.kind == "host")
                    .map(|b| b.alias.as_str());
                let p = source.err(&h.span, format!("{label}: unknown host `{hn}`"));
                errs.push(match closest(hn, hosts) {
                    Some(c) => p.hint(format!("did you mean `{c}`?")),
                    None => p.hint(format!(
                        "declare it as [host.{hn}], or leave `host` out to run on this machine"
                    )),
                });
                String::new()
            }
            None => {
                errs.push(source.err(&h.span, "`host` must be a string"));
                String::new()
            }
        },
    };
    let timeout = match n.get("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(tn) => parse_timeout(tn, source, errs).unwrap_or(DEFAULT_TIMEOUT),
    };
    let addr = format!("check.{name}");
    let depends_on = depends_on(n, &addr, source, errs);
    if errs.len() > before {
        return None;
    }
    Some(CheckCfg {
        name: name.to_string(),
        node: n.clone(),
        probe,
        target,
        host_key,
        timeout,
        depends_on,
    })
}

fn parse_timeout(n: &Node, source: &Source<'_>, errs: &mut Vec<Problem>) -> Option<Duration> {
    let hint = "write a duration such as \"60s\", \"2m\" or \"1m30s\"";
    let Kind::Str(s) = &n.kind else {
        errs.push(source.err(&n.span, "`timeout` must be a string").hint(hint));
        return None;
    };
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => {
            errs.push(
                source
                    .err(&n.span, "`timeout` must be longer than zero")
                    .hint(hint),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            errs.push(
                source
                    .err(&n.span, format!("`timeout`: {s:?} is not a duration ({e})"))
                    .hint(hint),
            );
            None
        }
    }
}

/// The form of a probe's value, when it is known now (a string without
/// references is checked here; one with `${...}` after evaluation).
fn check_target(p: Probe, n: &Node, label: &str, source: &Source<'_>, errs: &mut Vec<Problem>) {
    let Kind::Str(s) = &n.kind else {
        errs.push(source.err(&n.span, format!("{label}: `{}` must be a string", p.key())));
        return;
    };
    if s.contains("${") {
        return;
    }
    if let Err((msg, hint)) = target_problem(p, s) {
        errs.push(source.err(&n.span, format!("{label}: {msg}")).hint(hint));
    }
}

/// Why `s` is not a valid target for `p`, with a hint.
pub fn target_problem(p: Probe, s: &str) -> Result<(), (String, &'static str)> {
    match p {
        Probe::Http => {
            let rest = s
                .strip_prefix("http://")
                .or_else(|| s.strip_prefix("https://"))
                .ok_or((
                    format!("`http` must be an http:// or https:// URL, found {s:?}"),
                    "e.g. http = \"http://127.0.0.1:8080/health\"",
                ))?;
            if rest.is_empty() || rest.starts_with('/') {
                return Err((
                    format!("`http`: {s:?} names no host"),
                    "e.g. http = \"http://127.0.0.1:8080/health\"",
                ));
            }
        }
        Probe::Tcp => {
            let ok = s
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err((
                    format!("`tcp` must be \"host:port\", found {s:?}"),
                    "e.g. tcp = \"127.0.0.1:5432\"",
                ));
            }
        }
        Probe::Command => {
            if s.trim().is_empty() {
                return Err((
                    "`command` is empty".into(),
                    "e.g. command = \"tmux -S /tmp/s.sock has-session -t agent\"",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::registry::Registry;
    use std::path::Path;

    fn errors(body: &str) -> String {
        let src = format!("[stack]\nname = \"s\"\n{body}");
        match Config::parse(
            Path::new("claw.toml"),
            src.clone(),
            &[],
            &Registry::builtin(),
        ) {
            Ok(_) => panic!("expected errors for:\n{src}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn checks_parse_with_defaults() {
        let c = Config::parse(
            Path::new("claw.toml"),
            "[stack]\nname = \"s\"\n[file.a]\npath = \"p\"\n[check.web]\nhttp = \"http://127.0.0.1:1/h\"\ntimeout = \"1m30s\"\ndepends_on = [\"file.a\"]\n[check.sh]\ncommand = \"true\"\n".into(),
            &[],
            &Registry::builtin(),
        )
        .unwrap();
        assert_eq!(c.checks.len(), 2);
        let w = &c.checks[0];
        assert_eq!(w.address(), "check.web");
        assert_eq!(w.probe, super::Probe::Http);
        assert_eq!(w.timeout, std::time::Duration::from_secs(90));
        assert_eq!(w.depends_on[0].0, "file.a");
        assert_eq!(c.checks[1].host_key, "host.local");
        assert_eq!(c.checks[1].timeout, super::DEFAULT_TIMEOUT);
    }

    #[test]
    fn bad_checks_are_clear_errors_with_locations() {
        let e = errors("[check.a]\ntimeout = \"5s\"\n");
        assert!(
            e.contains("[check.a] says nothing to check") && e.contains("claw.toml:3:1"),
            "{e}"
        );
        let e = errors("[check.a]\nhttp = \"http://x\"\ntcp = \"x:1\"\n");
        assert!(
            e.contains("[check.a] has http and tcp; a check probes one thing")
                && e.contains("claw.toml:5:1"),
            "{e}"
        );
        let e = errors("[check.a]\ntcp = \"x:1\"\ntimeout = \"12 parsecs\"\n");
        assert!(
            e.contains("`timeout`: \"12 parsecs\" is not a duration")
                && e.contains("claw.toml:5:11"),
            "{e}"
        );
        assert!(e.contains("hint: write a duration such as"), "{e}");
        let e = errors("[check.a]\ntcp = \"x:1\"\ntimeout = 5\n");
        assert!(e.contains("`timeout` must be a string"), "{e}");
        let e = errors("[check.a]\ntcp = \"nohost\"\n");
        assert!(
            e.contains("`tcp` must be \"host:port\"") && e.contains("claw.toml:4:7"),
            "{e}"
        );
        let e = errors("[check.a]\nhttp = \"ftp://x\"\n");
        assert!(e.contains("http:// or https:// URL"), "{e}");
        let e = errors("[check.a]\nhttp = \"http://x\"\nhost = \"local\"\n");
        assert!(e.contains("`host` applies to `command` checks only"), "{e}");
        let e =
            errors("[check.a]\ncommand = \"true\"\nhost = \"mni\"\n[host.mini]\naddress = \"m\"\n");
        assert!(
            e.contains("unknown host `mni`") && e.contains("did you mean `mini`?"),
            "{e}"
        );
        let e = errors("[check.a]\ncommand = \"true\"\ntimout = \"1s\"\n");
        assert!(
            e.contains("unknown key `timout` in [check.a]")
                && e.contains("did you mean `timeout`?"),
            "{e}"
        );
    }
}
