//! The `tmux_session` resource: a detached session on a chosen socket, with
//! a first window name, a start folder, environment and an initial command.
//!
//! claw records the `cwd` and `command` it created a session with in the
//! session's user options `@claw-cwd` / `@claw-command`, so drift is judged
//! on exactly what was configured; sessions made by hand are compared on
//! tmux's own `session_path` / `pane_start_command`.
//!
//! **Ownership** (SPEC §1.2): a session claw creates carries its stack and
//! address in the user options `@claw-stack` / `@claw-address`, set by the
//! same tmux command list that creates it (no moment where it exists
//! unmarked). Refresh reads them into [`LiveObject::owner`]: this stack's →
//! `Stack` (adopted when missing from the state), another stack's →
//! `OtherStack`, none → `Unmanaged` (refused with the `claw import` hint) —
//! except for a session the state (or an in-flight record) already holds,
//! made by an older claw without markers: the state's ownership wins, and
//! the next update or `claw import` adds the markers.

use crate::file::SecretString;
use crate::identity::{marked, marker_owner};
use crate::runner::{host_path, sh_path, sh_quote, Runner, Secrets};
use claw_provider::digest::{has_legacy_digest, only_rehash, rehash_change};
use claw_provider::*;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[tmux_session.<name>]`: a tmux session on a host.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TmuxShape {
    /// The server socket path (`tmux -S`); its folder is created. Absent: the default server.
    #[serde(default)]
    pub socket: Option<String>,
    /// The session name (default: the resource name, `<name>-<key>` with `for_each`).
    #[serde(default)]
    pub session: Option<String>,
    /// The name of the first window.
    #[serde(default)]
    pub window: Option<String>,
    /// The session's start folder (must exist). Changing it replaces the session.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Environment of the session. Changing it replaces the session.
    #[serde(default)]
    pub env: Option<BTreeMap<String, SecretString>>,
    /// The initial command (run by the default shell). Changing it replaces the session.
    #[serde(default)]
    pub command: Option<String>,
}

pub fn resource_type() -> ResourceType {
    ResourceType {
        name: "tmux_session",
        description: "A detached tmux session on a socket: window name, cwd, env, initial command",
        shape: Shape::of::<TmuxShape>(),
        computed: &[],
    }
}

/// Field separator in `list-panes -F` output (tmux turns control characters
/// into `_`, so it must be printable).
const SEP: &str = "|~|";
/// Starts each session's block in the chained `show-environment` output.
const ENV_MARK: &str = "@@claw-env@@";
pub const REPLACE_NOTE: &str = "kills the running session and everything running in it";

pub fn validate(req: &InstanceRequest<'_>) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    if let Some(Value::String(s)) = req.attrs.get("session") {
        if s.is_empty() || s.contains(['.', ':']) || s.contains(SEP) || s.contains('\n') {
            d.push(
                Diagnostic::error(format!("`session` {s:?} is not a valid tmux session name"))
                    .with_address(req.address)
                    .with_attr("session")
                    .with_hint("tmux session names cannot be empty or contain `.` or `:`"),
            );
        }
    }
    for k in ["socket", "session", "window", "cwd", "command"] {
        if req.attrs.get(k).is_some_and(Value::contains_secret) {
            d.push(
                Diagnostic::error(format!("`{k}` of a tmux session cannot hold a secret"))
                    .with_address(req.address)
                    .with_attr(k)
                    .with_hint(if k == "command" {
                        "tmux runs the command as `sh -c COMMAND`, which every user of the host sees in the process list: put the secret in `env` and refer to it as $NAME in the command"
                    } else {
                        "tmux shows it to anyone who lists sessions; pass secrets through `env`"
                    }),
            );
        }
    }
    if let Some(Value::Map(env)) = req.attrs.get("env") {
        for k in env.keys() {
            let ok = !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                d.push(
                    Diagnostic::error(format!("`env` key {k:?} is not a valid variable name"))
                        .with_address(req.address)
                        .with_attr(format!("env.{k}"))
                        .with_hint("use letters, digits and `_`, not starting with a digit"),
                );
            }
        }
    }
    d
}

pub fn prepare(req: &InstanceRequest<'_>) -> Result<Attrs, Diagnostic> {
    let mut out = req.attrs.clone();
    if !matches!(
        out.get("session"),
        Some(Value::String(_)) | Some(Value::Unknown)
    ) {
        let name = match req.key {
            Some(k) => format!("{}-{}", req.name, k),
            None => req.name.to_string(),
        }
        .replace(['.', ':'], "_");
        out.insert("session".into(), Value::String(name));
    }
    Ok(out)
}

fn s<'a>(a: &'a Attrs, k: &str) -> Option<&'a str> {
    a.get(k).and_then(Value::as_str)
}

/// `(socket, session)` of an item; recorded ones first (a change is a replace).
fn item_keys(item: &RefreshItem) -> Option<(String, String)> {
    let from = |a: &Attrs| {
        Some((
            s(a, "socket").unwrap_or("").to_string(),
            s(a, "session")?.to_string(),
        ))
    };
    item.prior
        .as_ref()
        .and_then(|p| from(&p.attrs))
        .or_else(|| item.desired.as_deref().and_then(from))
}

pub fn group<'a>(
    items: &[&'a RefreshItem],
    resp: &mut RefreshResponse,
) -> BTreeMap<String, Vec<(&'a RefreshItem, String)>> {
    let mut by_socket: BTreeMap<String, Vec<(&RefreshItem, String)>> = BTreeMap::new();
    for item in items {
        match item_keys(item) {
            Some((sock, sess)) => by_socket.entry(sock).or_default().push((item, sess)),
            None => {
                resp.live.insert(item.address.clone(), None);
            }
        }
    }
    by_socket
}

/// `tmux` or `tmux -S '<socket>'`, with `~/` and relative paths resolved.
fn tmux_cmd(runner: &dyn Runner, ctx: &Ctx, socket: &str) -> String {
    if socket.is_empty() {
        "tmux -u".into()
    } else {
        format!(
            "tmux -u -S {}",
            sh_path(&host_path(runner, &ctx.base_dir, socket))
        )
    }
}

fn tmux_missing(target: &str) -> Diagnostic {
    Diagnostic::error(format!("tmux is not installed on {target}"))
        .with_hint("install tmux 3.0 or newer on the host (macOS: `brew install tmux`); claw looks in the login PATH plus /opt/homebrew/bin and /usr/local/bin")
}

/// Undoes tmux's quoting of `pane_start_command` (3.2+ quotes arguments with spaces).
fn unquote_start_command(s: &str) -> String {
    let t = s.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        let inner = &t[1..t.len() - 1];
        let mut out = String::new();
        let mut it = inner.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                if let Some(n) = it.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        t.to_string()
    }
}

#[derive(Debug, Default)]
struct Pane {
    claw_stack: String,
    claw_address: String,
    session: String,
    session_id: String,
    created: String,
    window_index: i64,
    window: String,
    pane_index: i64,
    path: String,
    claw_cwd: String,
    claw_command: String,
    start_command: String,
}

/// Probes one socket for all its sessions (one round trip).
pub async fn refresh_socket(
    runner: &dyn Runner,
    ctx: &Ctx,
    socket: &str,
    items: &[(&RefreshItem, String)],
    resp: &mut RefreshResponse,
) {
    let t = tmux_cmd(runner, ctx, socket);
    let mut script = String::from("LC_ALL=C; export LC_ALL; start=$PWD\n");
    // Resolve each desired cwd on the host (logical and physical forms).
    for (item, _) in items {
        let cwd = item
            .desired
            .as_ref()
            .and_then(|d| s(d, "cwd"))
            .unwrap_or("");
        if cwd.is_empty() {
            script.push_str("printf 'C\\n'\n");
        } else {
            script.push_str(&format!(
                "p={}; case \"$p\" in /*) ;; *) p=\"$start/$p\" ;; esac\n\
                 if cd -P \"$p\" 2>/dev/null; then ph=$PWD; cd \"$start\"; else ph=; fi; printf 'C %s{SEP}%s\\n' \"$p\" \"$ph\"\n",
                sh_path(&host_path(runner, &ctx.base_dir, cwd))
            ));
        }
    }
    let fmt = [
        "#{session_name}",
        "#{session_id}",
        "#{session_created}",
        "#{window_index}",
        "#{window_name}",
        "#{pane_index}",
        "#{session_path}",
        "#{@claw-cwd}",
        "#{@claw-command}",
        "#{@claw-stack}",
        "#{@claw-address}",
        "#{pane_start_command}",
    ]
    .join(SEP);
    script.push_str(&format!(
        "command -v tmux >/dev/null 2>&1 || {{ echo 'ERR notmux'; exit 0; }}\n\
         echo OK\n\
         nl='\n'\n\
         panes=$({t} list-panes -a -F {} 2>/dev/null)\n\
         [ -n \"$panes\" ] && printf '%s\\n' \"$panes\"\n\
         echo END\n",
        sh_quote(&fmt)
    ));
    // The environments of the wanted sessions that exist (a pane line starts
    // with its session's name), with one more tmux client: `display-message
    // -p MARKER \; show-environment -t =S: \; ...` (a missing session would
    // abort the chain, so only existing ones).
    let wanted: Vec<String> = items.iter().map(|(_, sess)| sh_quote(sess)).collect();
    script.push_str(&format!(
        "set --\n\
         for s in {}; do\n\
         \x20 case \"$nl$panes\" in *\"$nl$s{SEP}\"*)\n\
         \x20   printf 'Q %s\\n' \"$s\"\n\
         \x20   [ $# -gt 0 ] && set -- \"$@\" ';'\n\
         \x20   set -- \"$@\" display-message -p {ENV_MARK} ';' show-environment -t \"=$s:\" ;;\n\
         \x20 esac\n\
         done\n\
         echo ENVS\n\
         if [ $# -gt 0 ]; then {t} \"$@\" 2>/dev/null; fi\n",
        wanted.join(" ")
    ));
    let out = match runner.run(&script, b"").await {
        Ok(o) => o,
        Err(d) => {
            for (item, _) in items {
                resp.live.insert(item.address.clone(), None);
            }
            resp.diagnostics.push(d);
            return;
        }
    };
    let text = out.stdout_str();
    let mut lines = text.lines();
    let mut cwds = Vec::new();
    for _ in items {
        let l = lines.next().unwrap_or("C");
        let rest = l.strip_prefix("C ").unwrap_or("");
        let mut parts = rest.split(SEP);
        let logical = parts.next().unwrap_or("").to_string();
        let physical = parts.next().unwrap_or("").to_string();
        cwds.push((logical, physical));
    }
    match lines.next() {
        Some("OK") => {}
        Some("ERR notmux") => {
            for (item, _) in items {
                resp.live.insert(item.address.clone(), None);
                resp.diagnostics
                    .push(tmux_missing(&runner.target()).with_address(&item.address));
            }
            return;
        }
        _ => {
            for (item, _) in items {
                resp.live.insert(item.address.clone(), None);
            }
            resp.diagnostics.push(
                Diagnostic::error(format!("cannot list tmux sessions on {}", runner.target()))
                    .with_detail(out.stderr_str()),
            );
            return;
        }
    }
    let mut panes: Vec<Pane> = Vec::new();
    for l in lines.by_ref() {
        if l == "END" {
            break;
        }
        let f: Vec<&str> = l.splitn(12, SEP).collect();
        if f.len() < 12 {
            continue;
        }
        panes.push(Pane {
            session: f[0].into(),
            session_id: f[1].into(),
            created: f[2].into(),
            window_index: f[3].parse().unwrap_or(0),
            window: f[4].into(),
            pane_index: f[5].parse().unwrap_or(0),
            path: f[6].into(),
            claw_cwd: f[7].into(),
            claw_command: f[8].into(),
            claw_stack: f[9].into(),
            claw_address: f[10].into(),
            start_command: f[11].into(),
        });
    }
    let mut envs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut queried: Vec<String> = Vec::new();
    for l in lines.by_ref() {
        if l == "ENVS" {
            break;
        }
        if let Some(name) = l.strip_prefix("Q ") {
            queried.push(name.to_string());
        }
    }
    let mut cur: Option<usize> = None;
    for l in lines {
        if l == ENV_MARK {
            cur = Some(cur.map_or(0, |i| i + 1));
        } else if let Some(name) = cur.and_then(|i| queried.get(i)) {
            if let Some((k, v)) = l.split_once('=') {
                if !k.starts_with('-') {
                    envs.entry(name.clone())
                        .or_default()
                        .insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    for ((item, sess), (logical, physical)) in items.iter().zip(cwds) {
        let first = panes
            .iter()
            .filter(|p| &p.session == sess)
            .min_by_key(|p| (p.window_index, p.pane_index));
        let live = first.map(|p| {
            let desired = item.desired.as_ref();
            let mut attrs = Attrs::new();
            attrs.insert(
                "socket".into(),
                if socket.is_empty() {
                    Value::Null
                } else {
                    Value::from(socket)
                },
            );
            attrs.insert("session".into(), Value::from(sess.as_str()));
            attrs.insert("window".into(), Value::from(p.window.as_str()));
            // cwd: what claw recorded, else tmux's session path matched against
            // the host-resolved desired folder.
            let want_cwd = desired.and_then(|d| s(d, "cwd")).unwrap_or("");
            let live_cwd = if !p.claw_cwd.is_empty() {
                p.claw_cwd.clone()
            } else if !want_cwd.is_empty()
                && (p.path == logical || (!physical.is_empty() && p.path == physical))
            {
                want_cwd.to_string()
            } else {
                p.path.clone()
            };
            attrs.insert("cwd".into(), Value::String(live_cwd));
            let live_cmd = if !p.claw_command.is_empty() {
                p.claw_command.clone()
            } else {
                unquote_start_command(&p.start_command)
            };
            attrs.insert(
                "command".into(),
                if live_cmd.is_empty() {
                    Value::Null
                } else {
                    Value::String(live_cmd)
                },
            );
            let env = envs.get(sess).cloned().unwrap_or_default();
            let desired_env = desired.and_then(|d| d.get("env")).and_then(Value::as_map);
            let env_map: Map = env
                .into_iter()
                .map(|(k, v)| {
                    let secret = desired_env
                        .and_then(|m| m.get(&k))
                        .is_some_and(Value::contains_secret)
                        || item
                            .prior
                            .as_ref()
                            .and_then(|pr| pr.attrs.get("env"))
                            .and_then(Value::as_map)
                            .and_then(|m| m.get(&k))
                            .is_some_and(Value::contains_secret);
                    let val = if secret {
                        ctx.secret(&v)
                    } else {
                        Value::String(v)
                    };
                    (k, val)
                })
                .collect();
            attrs.insert("env".into(), Value::Map(env_map));
            let facts = format!(
                "{}\0{}\0{}\0{}\0{}\0{}\0{}\0{}",
                p.session_id,
                p.created,
                p.window,
                p.path,
                p.claw_cwd,
                p.claw_command,
                p.claw_stack,
                p.claw_address
            );
            LiveObject {
                id: format!("{socket}#{sess}"),
                attrs,
                fingerprint: ctx.digest(facts.as_bytes()),
                owner: marker_owner(
                    ctx,
                    Some(p.claw_stack.as_str()).filter(|s| !s.is_empty()),
                    item,
                ),
            }
        });
        resp.live.insert(item.address.clone(), live);
    }
}

/// One tmux command: its arguments.
type TmuxCommand = Vec<String>;

/// The tmux commands that mark the session `tg` (an exact target,
/// `=name:`) as `address` of this stack (option values are never expanded).
fn marker_commands(ctx: &Ctx, tg: &str, address: &str) -> Vec<TmuxCommand> {
    [
        ("@claw-stack", ctx.stack.as_str()),
        ("@claw-address", address),
    ]
    .into_iter()
    .map(|(k, v)| ["set-option", "-t", tg, k, v].map(str::to_string).to_vec())
    .collect()
}

/// `cmds` as one tmux command list (for `source-file`).
fn tmux_list(cmds: &[TmuxCommand]) -> String {
    let one = |c: &TmuxCommand| {
        c.iter()
            .map(|a| tmux_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    cmds.iter().map(one).collect::<Vec<_>>().join(" ; ")
}

/// Runs `cmds` with one tmux client (`t`: the tmux command), as arguments
/// separated by `\;`. Never for secrets: this is a command line.
async fn run_commands(
    runner: &dyn Runner,
    t: &str,
    cmds: &[TmuxCommand],
) -> Result<crate::runner::Output, Diagnostic> {
    let one = |c: &TmuxCommand| c.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ");
    let list: Vec<String> = cmds.iter().map(one).collect();
    runner
        .run(
            &format!("LC_ALL=C; export LC_ALL\n{t} {}\n", list.join(" \\; ")),
            b"",
        )
        .await
}

fn env_equal(a: &Value, b: &Value) -> bool {
    match (a.expose_str(), b.expose_str()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

pub fn diff(req: &DiffRequest) -> DiffResponse {
    let mut changes = Vec::new();
    let live = &req.live.attrs;
    let get = |a: &Attrs, k: &str| a.get(k).cloned().unwrap_or(Value::Null);
    for k in ["socket", "session", "cwd", "command"] {
        let d = get(&req.desired, k);
        if matches!(d, Value::Null) && !matches!(k, "socket") {
            continue; // not configured: whatever tmux chose is fine
        }
        let l = get(live, k);
        if d != l {
            changes.push(AttrChange::new(k, Some(l), Some(d)).forcing_replace());
        }
    }
    if let Some(Value::Map(denv)) = req.desired.get("env") {
        let lenv = live.get("env").and_then(Value::as_map);
        for (k, dv) in denv {
            let lv = lenv.and_then(|m| m.get(k));
            if dv.is_unknown() || lv.is_none_or(|lv| !env_equal(dv, lv)) {
                changes.push(
                    AttrChange::new(
                        claw_provider::value::join_key("env", k),
                        lv.cloned(),
                        Some(dv.clone()),
                    )
                    .forcing_replace(),
                );
            }
        }
    }
    let replacing = !changes.is_empty();
    if let Some(d) = req
        .desired
        .get("window")
        .filter(|v| !matches!(v, Value::Null))
    {
        let l = get(live, "window");
        if *d != l {
            changes.push(AttrChange::new("window", Some(l), Some(d.clone())));
        }
    }
    if !replacing && req.prior.as_deref().is_some_and(has_legacy_digest) {
        changes.push(rehash_change());
    }
    DiffResponse {
        changes,
        replace_note: replacing.then(|| REPLACE_NOTE.to_string()),
        ..Default::default()
    }
}

fn script_error(
    what: &str,
    out: &crate::runner::Output,
    target: &str,
    address: &str,
) -> Diagnostic {
    if out.code == 127 {
        return tmux_missing(target).with_address(address);
    }
    Diagnostic::error(format!("{what} on {target} failed (exit {})", out.code))
        .with_detail(out.stderr_str())
        .with_address(address)
}

pub async fn apply(runner: &dyn Runner, req: &ApplyRequest) -> Result<ApplyResponse, Diagnostic> {
    let target = runner.target();
    match req.op {
        Op::Delete => {
            let prior = req.prior.as_ref().map(|p| &p.attrs).ok_or_else(|| {
                Diagnostic::error("no recorded session to kill").with_address(&req.address)
            })?;
            let sess = s(prior, "session").unwrap_or_default();
            let t = tmux_cmd(runner, &req.ctx, s(prior, "socket").unwrap_or(""));
            let tg = sh_quote(&format!("={sess}:"));
            let script = format!(
                "command -v tmux >/dev/null 2>&1 || {{ echo 'tmux is not installed' >&2; exit 127; }}\n\
                 if {t} has-session -t {tg} 2>/dev/null; then {t} kill-session -t {tg} || exit 1; fi\n"
            );
            let out = runner.run(&script, b"").await?;
            if !out.ok() {
                return Err(script_error(
                    &format!("killing the session {sess}"),
                    &out,
                    &target,
                    &req.address,
                ));
            }
            Ok(ApplyResponse::default())
        }
        Op::Update => {
            // Only the window name changes in place.
            let desired = req.desired.clone().unwrap_or_default();
            let sess = s(&desired, "session").unwrap_or_default();
            let t = tmux_cmd(runner, &req.ctx, s(&desired, "socket").unwrap_or(""));
            // A session made by an older claw gets its markers now.
            let mut cmds = marker_commands(&req.ctx, &format!("={sess}:"), &req.address);
            if let Some(w) = s(&desired, "window").filter(|_| !only_rehash(&req.changes)) {
                let rename = [
                    "rename-window",
                    "-t",
                    &format!("={sess}:^"),
                    &fmt_literal(w),
                ];
                cmds.insert(0, rename.map(str::to_string).to_vec());
            }
            {
                let out = run_commands(runner, &t, &cmds).await?;
                if !out.ok() {
                    return Err(script_error(
                        &format!("updating the session {sess}"),
                        &out,
                        &target,
                        &req.address,
                    ));
                }
            }
            Ok(ApplyResponse {
                state: Some(state_of(&desired)),
                diagnostics: vec![],
            })
        }
        Op::Create => {
            let desired = req.desired.clone().unwrap_or_default();
            let sess = s(&desired, "session").ok_or_else(|| {
                Diagnostic::error("the session name is not known").with_address(&req.address)
            })?;
            if let Some(k) = ["command", "cwd", "window", "socket"]
                .into_iter()
                .find(|k| desired.get(*k).is_some_and(Value::contains_secret))
            {
                return Err(Diagnostic::error(format!(
                    "`{k}` of a tmux session cannot hold a secret"
                ))
                .with_address(&req.address)
                .with_hint("put the secret in `env` and refer to it as $NAME"));
            }
            let (script, tmux_commands) =
                create_script(runner, &req.ctx, &desired, sess, &req.address)?;
            // The tmux commands (with the environment's secrets) reach tmux
            // through a private file, never a command line.
            let secrets = Secrets {
                vars: vec![("CLAW_TMUX", &tmux_commands)],
                redact: desired
                    .get("env")
                    .map(Value::secret_parts)
                    .unwrap_or_default(),
            };
            let mut out = runner.run_with_secrets(&script, &secrets, b"").await?;
            if out.code == 1 {
                // A server whose last session was just killed (a replace)
                // exits a moment later; a new-session in that moment fails.
                // Once more, after the old server is gone.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                out = runner.run_with_secrets(&script, &secrets, b"").await?;
            }
            if !out.ok() {
                let d = script_error(
                    &format!("creating the tmux session {sess}"),
                    &out,
                    &target,
                    &req.address,
                );
                return Err(match out.code {
                    2 => d.with_hint("create the folder first (e.g. a git_worktree this session depends on)"),
                    3 => d.with_hint(format!("kill it (`tmux kill-session -t {sess}`) or adopt it with `claw import {} {sess}`", req.address)),
                    _ => d,
                });
            }
            Ok(ApplyResponse {
                state: Some(state_of(&desired)),
                diagnostics: vec![],
            })
        }
    }
}

/// Escapes tmux's format syntax: tmux expands `#(...)`, `#{...}`, `#H` and
/// the like in `new-session -s`/`-n` and `rename-window` names (3.3a), and
/// `##` is a literal `#`. Targets (`-t`), option values, `-e` and the
/// command are not expanded.
fn fmt_literal(s: &str) -> String {
    s.replace('#', "##")
}

/// Quotes `s` for tmux's command parser: single quotes are literal there;
/// a single quote itself goes in double quotes.
fn tmux_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

/// The create script (no secret in it: it is a command line) and the tmux
/// commands it feeds to `tmux source-file` from a 0600 file: `new-session`
/// with the window name, environment and command, then claw's own options,
/// as one command list (a failing `new-session` stops the rest).
fn create_script(
    runner: &dyn Runner,
    ctx: &Ctx,
    desired: &Attrs,
    sess: &str,
    address: &str,
) -> Result<(String, String), Diagnostic> {
    let socket = s(desired, "socket").unwrap_or("");
    let mut script = String::from(
        "LC_ALL=C; export LC_ALL; start=$(pwd)\n\
         command -v tmux >/dev/null 2>&1 || { echo 'tmux is not installed' >&2; exit 127; }\n",
    );
    let t = if socket.is_empty() {
        "tmux -u".to_string()
    } else {
        script.push_str(&format!(
            "S={}; case \"$S\" in /*) ;; *) S=\"$start/$S\" ;; esac\n\
             case \"$S\" in */*) mkdir -p \"${{S%/*}}\" || exit 1 ;; esac\n",
            sh_path(&host_path(runner, &ctx.base_dir, socket))
        ));
        "tmux -u -S \"$S\"".to_string()
    };
    let cwd = s(desired, "cwd");
    if let Some(c) = cwd {
        script.push_str(&format!(
            "c={}; case \"$c\" in /*) ;; *) c=\"$start/$c\" ;; esac\n\
             [ -d \"$c\" ] || {{ echo \"the folder $c (cwd) does not exist\" >&2; exit 2; }}\n",
            sh_path(&host_path(runner, &ctx.base_dir, c))
        ));
    }
    let tg = sh_quote(&format!("={sess}:"));
    script.push_str(&format!(
        "if {t} has-session -t {tg} 2>/dev/null; then echo \"a session named {} already runs on this socket\" >&2; exit 3; fi\n\
         f=\"${{TMPDIR:-/tmp}}/.claw-tmux.$$\"\n\
         rm -f \"$f\"\n\
         (umask 077; set -C; printf '%s\\n' \"$CLAW_TMUX\" > \"$f\") || {{ echo \"cannot create the private file $f\" >&2; exit 1; }}\n\
         ({}{t} start-server \\; source-file \"$f\"); rc=$?\n\
         rm -f \"$f\"\n\
         [ \"$rc\" = 0 ] || exit 1\n",
        sess.replace(['"', '$', '`', '\\'], "_"),
        // The session starts in the client's folder: no `-c` needed.
        if cwd.is_some() { "cd \"$c\" && " } else { "" },
    ));
    let mut cmds = format!("new-session -d -s {}", tmux_quote(&fmt_literal(sess)));
    if let Some(w) = s(desired, "window") {
        cmds.push_str(&format!(" -n {}", tmux_quote(&fmt_literal(w))));
    }
    if let Some(Value::Map(env)) = desired.get("env") {
        for (k, v) in env {
            let val = v.expose_str().ok_or_else(|| {
                Diagnostic::error(format!("the value of env.{k} is not known"))
                    .with_address(address)
                    .with_hint("a sensitive value read from a saved plan cannot be used; run `claw apply` without a plan file")
            })?;
            cmds.push_str(&format!(" -e {}", tmux_quote(&format!("{k}={val}"))));
        }
    }
    let command = s(desired, "command");
    if let Some(c) = command {
        cmds.push_str(&format!(" {}", tmux_quote(c)));
    }
    let tg = tmux_quote(&format!("={sess}:"));
    cmds.push_str(&format!(
        " ; set-option -t {tg} @claw-cwd {} ; set-option -t {tg} @claw-command {} ; {}",
        tmux_quote(cwd.unwrap_or("")),
        tmux_quote(command.unwrap_or("")),
        tmux_list(&marker_commands(ctx, &format!("={sess}:"), address))
    ));
    Ok((script, cmds))
}

fn state_of(desired: &Attrs) -> StateObject {
    StateObject {
        id: format!(
            "{}#{}",
            s(desired, "socket").unwrap_or(""),
            s(desired, "session").unwrap_or("")
        ),
        attrs: desired.clone(),
        private: marked(),
    }
}

pub async fn import(runner: &dyn Runner, req: &ImportRequest) -> Result<StateObject, Diagnostic> {
    let mut desired = req.desired.clone().unwrap_or_default();
    let socket = s(&desired, "socket").unwrap_or("").to_string();
    // The id is the session name (the socket comes from the configuration);
    // the plan's `SOCKET#SESSION` form is accepted too.
    let sess = req
        .id
        .strip_prefix(&format!("{socket}#"))
        .unwrap_or(&req.id)
        .to_string();
    desired.insert("session".into(), Value::from(sess.as_str()));
    let item = crate::import_item(req, &desired);
    let mut resp = RefreshResponse::default();
    refresh_socket(
        runner,
        &req.ctx,
        &socket,
        &[(&item, sess.clone())],
        &mut resp,
    )
    .await;
    let Some(live) = crate::imported_live(resp, req)? else {
        return Err(Diagnostic::error(format!(
            "no tmux session {sess} on {}",
            runner.target()
        ))
        .with_address(&req.address)
        .with_hint("the import id of a tmux_session is the session name; the socket comes from the configuration"));
    };
    if let Owner::OtherStack(other) = &live.owner {
        return Err(crate::identity::other_stack(&req.address, &sess, other));
    }
    // Marked as ours from now on (an in-flight recovery marks it again).
    let t = tmux_cmd(runner, &req.ctx, &socket);
    let out = run_commands(
        runner,
        &t,
        &marker_commands(&req.ctx, &format!("={sess}:"), &req.address),
    )
    .await?;
    if !out.ok() {
        return Err(script_error(
            &format!("marking the session {sess}"),
            &out,
            &runner.target(),
            &req.address,
        ));
    }
    let mut attrs = desired;
    for k in ["window", "cwd", "command"] {
        if let Some(v) = live.attrs.get(k) {
            attrs.insert(k.into(), v.clone());
        }
    }
    Ok(StateObject {
        id: live.id,
        attrs,
        private: marked(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_commands_unquote() {
        assert_eq!(
            unquote_start_command("\"sleep 1000; echo \\\"x \\$HOME\\\"\""),
            "sleep 1000; echo \"x $HOME\""
        );
        assert_eq!(unquote_start_command("top"), "top");
    }
}
