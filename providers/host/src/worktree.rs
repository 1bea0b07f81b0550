//! The `git_worktree` resource: `git worktree add` on a new or existing
//! branch, `setup` run once after creation, `git worktree remove` guarded
//! against losing uncommitted or unpushed work.
//!
//! **Ownership** (SPEC §1.2): a worktree claw adds carries the marker file
//! `claw-owner` in its git administrative folder (`<git-common-dir>/
//! worktrees/<name>/`, never in the work tree; git removes it with the
//! worktree): `stack`, `address` and `setup pending|done`. It is written by
//! the script that runs `git worktree add`, right after it, as `pending`
//! when a `setup` is configured; the setup's own script rewrites it as
//! `done` once the setup succeeded. Refresh reads it into
//! [`LiveObject::owner`] (this stack's → adopted when missing from the state;
//! none → refused with the `claw import` hint, unless the state or an
//! in-flight record holds the worktree: made by an older claw, the state's
//! ownership wins), and a `pending` setup is planned as an update that runs
//! it (`setup_run`), so an apply killed during a setup never records it done.
//!
//! **Interrupted adds** ([`repair`]): `git worktree add` runs with claw's
//! lock (`--lock --reason`), removed once the add and the marker are done;
//! a worktree still locked so is removed and added again by the next apply
//! (`add_run`), its setup then run once.

mod repair;

use crate::identity::{marked, marker_owner};
use crate::runner::{host_path, sh_path, sh_quote, Runner, Secrets};
use claw_provider::digest::{has_legacy_digest, rehash_change};
use claw_provider::*;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[git_worktree.<name>]`: a worktree of a repository on a host.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WorktreeShape {
    /// The repository (a folder holding `.git`) the worktree belongs to. Must exist.
    pub repo: String,
    /// Where the worktree goes (`~/` allowed). Changing it replaces the worktree.
    pub path: String,
    /// The branch checked out in the worktree; created from `base` when it does not exist.
    pub branch: String,
    /// The start point of a new branch (default `HEAD` of the repository).
    #[serde(default)]
    pub base: Option<String>,
    /// A command run once with `sh -c` in the new worktree (e.g. `pnpm install`).
    #[serde(default)]
    pub setup: Option<String>,
    /// Destroy even with uncommitted changes or commits on no other branch or remote.
    #[serde(default)]
    pub force: Option<bool>,
}

pub fn resource_type() -> ResourceType {
    ResourceType {
        name: "git_worktree",
        description: "A git worktree on a host: branch from base, setup run once, guarded removal",
        shape: Shape::of::<WorktreeShape>(),
        computed: &[],
    }
}

pub fn validate(req: &InstanceRequest<'_>) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    for k in ["repo", "path", "branch"] {
        if let Some(Value::String(s)) = req.attrs.get(k) {
            if s.trim().is_empty() {
                d.push(
                    Diagnostic::error(format!("`{k}` is empty"))
                        .with_address(req.address)
                        .with_attr(k),
                );
            }
        }
    }
    if let Some(Value::String(b)) = req.attrs.get("branch") {
        if b.starts_with('-') || b.contains("..") || b.contains(' ') || b.ends_with('/') {
            d.push(
                Diagnostic::error(format!("`branch` {b:?} is not a valid branch name"))
                    .with_address(req.address)
                    .with_attr("branch")
                    .with_hint("see `git check-ref-format --branch`"),
            );
        }
    }
    d
}

/// Drops empty optional strings (`setup = "${vars.setup}"` with an empty var).
pub fn prepare(req: &InstanceRequest<'_>) -> Result<Attrs, Diagnostic> {
    let mut out = req.attrs.clone();
    for k in ["base", "setup"] {
        if out
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|v| v.trim().is_empty())
        {
            out.remove(k);
        }
    }
    Ok(out)
}

/// The repository an apply works in (for the per-repository lock).
pub fn repo_key(req: &ApplyRequest) -> String {
    req.desired
        .as_ref()
        .and_then(|d| s(d, "repo"))
        .or_else(|| req.prior.as_ref().and_then(|p| s(&p.attrs, "repo")))
        .unwrap_or("")
        .to_string()
}

fn s<'a>(a: &'a Attrs, k: &str) -> Option<&'a str> {
    a.get(k).and_then(Value::as_str)
}

/// Path and repo of an item: recorded ones first (a change is then a replace).
fn item_keys(item: &RefreshItem) -> Option<(String, String)> {
    let from = |a: &Attrs| Some((s(a, "repo")?.to_string(), s(a, "path")?.to_string()));
    item.prior
        .as_ref()
        .and_then(|p| from(&p.attrs))
        .or_else(|| item.desired.as_deref().and_then(from))
}

/// The marker file in a worktree's git administrative folder.
const MARKER: &str = "claw-owner";
/// The pseudo attribute of a setup that has still to run.
pub const SETUP_RUN: &str = "setup_run";
/// The live attribute of a worktree whose setup did not finish.
const SETUP_PENDING: &str = "setup_pending";
/// The pseudo attribute of an add that did not finish.
pub const ADD_RUN: &str = "add_run";
/// The live attribute of a worktree whose `git worktree add` may not have
/// finished (claw's lock, or git's `initializing`, and no marker).
const ADD_INTERRUPTED: &str = "add_interrupted";
/// The live attribute of a worktree whose add finished (it has the
/// marker) but still carries claw's lock.
const ADD_LOCKED: &str = "add_locked";

/// One `git worktree list --porcelain` entry.
#[derive(Debug, Default, Clone)]
struct Entry {
    /// From the marker file: the stack, and whether the setup is pending.
    claw_stack: Option<String>,
    setup_pending: bool,
    path: String,
    physical: String,
    head: String,
    branch: Option<String>,
    prunable: bool,
    locked: bool,
    /// The first line of its `locked` file (read from the file, else from
    /// the listing of a git that prints it).
    lock_reason: Option<String>,
}

fn parse_entries(lines: &[&str]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for l in lines {
        if let Some(p) = l.strip_prefix("worktree ") {
            out.push(Entry {
                path: p.to_string(),
                ..Default::default()
            });
        } else if let Some(e) = out.last_mut() {
            if let Some(p) = l.strip_prefix("physical ") {
                e.physical = p.to_string();
            } else if let Some(h) = l.strip_prefix("HEAD ") {
                e.head = h.to_string();
            } else if let Some(b) = l.strip_prefix("branch ") {
                e.branch = Some(b.strip_prefix("refs/heads/").unwrap_or(b).to_string());
            } else if l.starts_with("prunable") {
                e.prunable = true;
            } else if let Some(r) = l.strip_prefix("locked") {
                e.locked = true;
                let r = r.trim_start();
                if e.lock_reason.is_none() && !r.is_empty() {
                    e.lock_reason = Some(r.to_string());
                }
            } else if let Some(r) = l.strip_prefix("claw-lock ") {
                e.lock_reason = Some(r.to_string());
            } else if let Some(st) = l.strip_prefix("claw-stack ") {
                e.claw_stack = Some(st.to_string());
            } else if let Some(st) = l.strip_prefix("claw-setup ") {
                e.setup_pending = st == "pending";
            }
        }
    }
    out
}

/// sh that resolves a path (relative ones from `$start`): `L <logical>` and
/// `P <physical>` (empty when neither it nor its parent exists). Builtins
/// only (`cd -P` and `$PWD`): no process per path, no `readlink -f`.
fn resolve_fragment(qpath: &str) -> String {
    format!(
        "p={qpath}; case \"$p\" in /*) ;; *) p=\"$start/$p\" ;; esac; p=${{p%/}}\n\
         if cd -P \"$p\" 2>/dev/null; then ph=$PWD\n\
         else pd=${{p%/*}}; if cd -P \"${{pd:-/}}\" 2>/dev/null; then ph=\"${{PWD%/}}/${{p##*/}}\"; else ph=; fi; fi\n\
         cd \"$start\"; printf 'L %s\\nP %s\\n' \"$p\" \"$ph\"\n"
    )
}

const PREAMBLE: &str = "LC_ALL=C; export LC_ALL; start=$PWD\n";

fn git_missing(target: &str) -> Diagnostic {
    Diagnostic::error(format!("git is not installed on {target}")).with_hint(
        "install git on the host (macOS: `xcode-select --install` or `brew install git`)",
    )
}

fn repo_error(code: &str, repo: &str, target: &str) -> Diagnostic {
    match code {
        "nogit" => git_missing(target),
        "norepo" => Diagnostic::error(format!(
            "the repository folder {repo} does not exist on {target}"
        ))
        .with_hint("clone the repository there first, or fix `repo`"),
        _ => Diagnostic::error(format!("{repo} on {target} is not a git repository"))
            .with_hint("point `repo` at the folder of a git clone (the one holding .git)"),
    }
}

/// Probes one repository for all its items (one round trip).
pub async fn refresh_repo(
    runner: &dyn Runner,
    ctx: &Ctx,
    repo: &str,
    items: &[(&RefreshItem, String)],
    resp: &mut RefreshResponse,
) {
    let mut script = String::from(PREAMBLE);
    for (_, path) in items {
        script.push_str(&resolve_fragment(&sh_path(&host_path(
            runner,
            &ctx.base_dir,
            path,
        ))));
    }
    script.push_str(&format!(
        "command -v git >/dev/null 2>&1 || {{ echo 'ERR nogit'; exit 0; }}\n\
         r={}\n\
         [ -d \"$r\" ] || {{ echo 'ERR norepo'; exit 0; }}\n\
         cd \"$r\" || {{ echo 'ERR norepo'; exit 0; }}\n\
         wl=$(git worktree list --porcelain 2>/dev/null) || {{ echo 'ERR notgit'; exit 0; }}\n\
         echo OK\n\
         while IFS= read -r l; do\n\
         \x20 case \"$l\" in\n\
         \x20   'worktree '*) printf '%s\\n' \"$l\"; w=${{l#worktree }}; if cd -P \"$w\" 2>/dev/null; then printf 'physical %s\\n' \"$PWD\"; else printf 'physical \\n'; fi\n\
         \x20     g=; if [ -f \"$w/.git\" ]; then IFS= read -r g < \"$w/.git\"; g=${{g#gitdir: }}; case \"$g\" in /*|'') ;; *) g=\"$w/$g\" ;; esac; fi\n\
         \x20     if [ -n \"$g\" ] && [ -f \"$g/{MARKER}\" ]; then while IFS= read -r m || [ -n \"$m\" ]; do printf 'claw-%s\\n' \"$m\"; done < \"$g/{MARKER}\"; fi\n\
         \x20     if [ -n \"$g\" ] && [ -f \"$g/locked\" ]; then k=; IFS= read -r k < \"$g/locked\" || :; printf 'claw-lock %s\\n' \"$k\"; fi ;;\n\
         \x20   *) printf '%s\\n' \"$l\" ;;\n\
         \x20 esac\n\
         done <<CLAW_EOF\n$wl\nCLAW_EOF\n",
        sh_path(&host_path(runner, &ctx.base_dir, repo))
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
    let lines: Vec<&str> = text.lines().collect();
    let mut wanted = Vec::new();
    let mut i = 0;
    for _ in items {
        let l = lines
            .get(i)
            .and_then(|l| l.strip_prefix("L "))
            .unwrap_or("")
            .to_string();
        let p = lines
            .get(i + 1)
            .and_then(|l| l.strip_prefix("P "))
            .unwrap_or("")
            .to_string();
        wanted.push((l, p));
        i += 2;
    }
    let status = lines.get(i).copied().unwrap_or("");
    if let Some(code) = status.strip_prefix("ERR ") {
        for (item, _) in items {
            resp.live.insert(item.address.clone(), None);
            resp.diagnostics
                .push(repo_error(code, repo, &runner.target()).with_address(&item.address));
        }
        return;
    }
    if status != "OK" || !out.ok() {
        for (item, _) in items {
            resp.live.insert(item.address.clone(), None);
        }
        resp.diagnostics.push(
            Diagnostic::error(format!(
                "cannot list the worktrees of {repo} on {}",
                runner.target()
            ))
            .with_detail(out.stderr_str()),
        );
        return;
    }
    let entries = parse_entries(&lines[i + 1..]);
    for ((item, path), (logical, physical)) in items.iter().zip(wanted) {
        let found = entries.iter().find(|e| {
            e.path == logical
                || (!physical.is_empty() && (e.physical == physical || e.path == physical))
        });
        let live = match found {
            // A worktree whose folder is gone (prunable) is missing: create prunes it first.
            Some(e) if !e.prunable && !e.physical.is_empty() => {
                let mut attrs = Attrs::new();
                attrs.insert("repo".into(), Value::from(repo));
                attrs.insert("path".into(), Value::from(path.as_str()));
                attrs.insert(
                    "branch".into(),
                    e.branch.clone().map(Value::String).unwrap_or(Value::Null),
                );
                if e.setup_pending {
                    attrs.insert(SETUP_PENDING.into(), Value::Bool(true));
                }
                // claw's lock names the stack until the marker does.
                let reason = e.lock_reason.as_deref();
                let lock_stack = reason.and_then(repair::lock_stack);
                match (
                    &e.claw_stack,
                    lock_stack.is_some() || reason == Some(repair::GIT_LOCK),
                ) {
                    (None, true) => {
                        attrs.insert(ADD_INTERRUPTED.into(), Value::Bool(true));
                    }
                    (Some(_), _) if lock_stack.is_some() => {
                        attrs.insert(ADD_LOCKED.into(), Value::Bool(true));
                    }
                    _ => {}
                }
                let facts = format!(
                    "{}\0{}\0{:?}\0{}\0{:?}\0{}\0{:?}",
                    e.path, e.head, e.branch, e.locked, e.claw_stack, e.setup_pending, reason
                );
                let owner = marker_owner(ctx, e.claw_stack.as_deref().or(lock_stack), item);
                Some(LiveObject {
                    id: path.clone(),
                    attrs,
                    fingerprint: ctx.digest(facts.as_bytes()),
                    owner,
                })
            }
            _ => None,
        };
        resp.live.insert(item.address.clone(), live);
    }
}

pub fn diff(req: &DiffRequest) -> DiffResponse {
    let mut changes = Vec::new();
    let live = &req.live.attrs;
    for k in ["repo", "path"] {
        let d = req.desired.get(k).cloned().unwrap_or(Value::Null);
        let l = live.get(k).cloned().unwrap_or(Value::Null);
        if d != l {
            changes.push(AttrChange::new(k, Some(l), Some(d)).forcing_replace());
        }
    }
    let replacing = !changes.is_empty();
    let flag = |k: &str| live.get(k) == Some(&Value::Bool(true));
    // An add that did not finish: removed and added again (with the
    // configured branch, and its setup); one that only kept claw's lock
    // is unlocked.
    let interrupted = flag(ADD_INTERRUPTED);
    if !replacing && interrupted {
        changes.push(AttrChange::new(
            ADD_RUN,
            Some(Value::str("interrupted before it finished")),
            Some(Value::str("removed and added again")),
        ));
    } else if !replacing && flag(ADD_LOCKED) {
        changes.push(AttrChange::new(
            ADD_RUN,
            Some(Value::str("finished, still locked")),
            Some(Value::str("unlocked")),
        ));
    }
    // Another branch checked out in the worktree: switched back in place
    // (`git checkout`, refused when the worktree has uncommitted changes).
    let (db, lb) = (
        req.desired.get("branch").cloned().unwrap_or(Value::Null),
        live.get("branch").cloned().unwrap_or(Value::Null),
    );
    if db != lb && (replacing || !interrupted) {
        changes.push(AttrChange::new("branch", Some(lb), Some(db)));
    }
    // Attributes that only matter to claw (recorded in state, nothing to
    // change on the host): an update records them.
    if !replacing {
        let prior = req.prior.as_ref().map(|p| &p.attrs);
        for k in ["base", "setup", "force"] {
            let d = req.desired.get(k).cloned().unwrap_or(Value::Null);
            let p = prior.and_then(|a| a.get(k)).cloned().unwrap_or(Value::Null);
            if d != p {
                changes.push(AttrChange::new(k, Some(p), Some(d)));
            }
        }
    }
    // A setup that did not finish (the run died during it) runs now.
    let configured_setup = s(&req.desired, "setup").is_some_and(|c| !c.trim().is_empty())
        || matches!(req.desired.get("setup"), Some(Value::Secret(_)));
    if !replacing && configured_setup && flag(SETUP_PENDING) {
        changes.push(AttrChange::new(
            SETUP_RUN,
            Some(Value::str("interrupted before it finished")),
            Some(Value::str("runs again in the worktree")),
        ));
    }
    if !replacing && req.prior.as_deref().is_some_and(has_legacy_digest) {
        changes.push(rehash_change());
    }
    let replace_note = replacing.then(|| {
        "removes the worktree folder (refused if it holds uncommitted or unpushed work) and adds it again"
            .to_string()
    });
    DiffResponse {
        changes,
        replace_note,
        ..Default::default()
    }
}

/// Maps a failed git script to a diagnostic.
fn script_error(
    what: &str,
    out: &crate::runner::Output,
    target: &str,
    address: &str,
) -> Diagnostic {
    let err = out.stderr_str();
    let d = match out.code {
        127 => git_missing(target),
        3 | 4 => Diagnostic::error(format!("{what} on {target} failed: {err}"))
            .with_hint("point `repo` at the folder of a git clone (the one holding .git)"),
        _ => Diagnostic::error(format!("{what} on {target} failed (exit {})", out.code))
            .with_detail(err),
    };
    d.with_address(address)
}

fn repo_prelude(repo: &str) -> String {
    format!(
        "command -v git >/dev/null 2>&1 || {{ echo 'git is not installed' >&2; exit 127; }}\n\
         r={repo}\n\
         cd \"$r\" 2>/dev/null || {{ echo \"the repository folder $r does not exist\" >&2; exit 3; }}\n\
         git rev-parse --git-dir >/dev/null 2>&1 || {{ echo \"$r is not a git repository\" >&2; exit 4; }}\n"
    )
}

/// sh that writes the marker file of the worktree at `$p` (in its git
/// administrative folder, atomically): this stack, `address`, and whether
/// its setup is `pending` or `done`.
fn mark(ctx: &Ctx, address: &str, setup: &str) -> String {
    let line = |v: &str| sh_quote(&v.replace(['\n', '\r'], " "));
    format!(
        "[ -f \"$p/.git\" ] && g=$(git -C \"$p\" rev-parse --absolute-git-dir) && printf 'stack %s\\naddress %s\\nsetup %s\\n' {} {} {setup} > \"$g/{MARKER}.tmp\" && mv -f \"$g/{MARKER}.tmp\" \"$g/{MARKER}\"",
        line(&ctx.stack),
        line(address)
    )
}

/// Runs the setup in the worktree at `path` (sh-quoted) and marks it done;
/// `Ok(Err(output))` when it failed.
async fn run_setup(
    runner: &dyn Runner,
    req: &ApplyRequest,
    path: &str,
    secrets: &Secrets<'_>,
) -> Result<Result<(), crate::runner::Output>, Diagnostic> {
    req.ctx.progress.report(&req.address, "running setup");
    let script = format!(
        "{PREAMBLE}p={path}; case \"$p\" in /*) ;; *) p=\"$start/$p\" ;; esac\ncd \"$p\" || exit 1\n( eval \"$CLAW_SETUP\" ) 2>&1 || exit $?\n{} >&2 || exit 1\n",
        mark(&req.ctx, &req.address, "done")
    );
    let out = runner.run_with_secrets(&script, secrets, b"").await?;
    Ok(if out.ok() { Ok(()) } else { Err(out) })
}

/// The error of a failed setup: the last 20 lines it printed.
fn setup_failed(
    out: &crate::runner::Output,
    path: &str,
    target: &str,
    address: &str,
    then: &str,
) -> Diagnostic {
    let all = out.stdout_str();
    let tail: Vec<&str> = all.lines().rev().take(20).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Diagnostic::error(format!(
        "the setup command of {path} on {target} failed (exit {}); {then}",
        out.code
    ))
    .with_address(address)
    .with_detail(tail.join("\n"))
    .with_hint("fix `setup` (it runs with sh in the new worktree) and apply again")
}

/// Applies one worktree. `guard` holds the repository's git lock (`lock`):
/// it is released while `setup` runs and taken again for a rollback.
pub async fn apply(
    runner: &dyn Runner,
    req: &ApplyRequest,
    lock: &tokio::sync::Mutex<()>,
    guard: tokio::sync::MutexGuard<'_, ()>,
) -> Result<ApplyResponse, Diagnostic> {
    let target = runner.target();
    let hp = |p: &str| sh_path(&host_path(runner, &req.ctx.base_dir, p));
    match req.op {
        Op::Delete => {
            let prior = req.prior.as_ref().map(|p| &p.attrs).ok_or_else(|| {
                Diagnostic::error("no recorded worktree to remove").with_address(&req.address)
            })?;
            let (Some(repo), Some(path)) = (s(prior, "repo"), s(prior, "path")) else {
                return Err(
                    Diagnostic::error("the state lacks repo/path").with_address(&req.address)
                );
            };
            let force = req
                .desired
                .as_ref()
                .and_then(|d| d.get("force"))
                .or_else(|| prior.get("force"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let script = format!(
                "{PREAMBLE}p={path}; case \"$p\" in /*) ;; *) p=\"$start/$p\" ;; esac\n{prelude}{stale}{unfinished}\
                 if [ -d \"$p\" ]; then\n\
                 \x20 if [ {force} = 0 ]; then\n\
                 \x20   d=$(git -C \"$p\" status --porcelain 2>&1) || {{ printf '%s\\n' \"$d\" >&2; exit 1; }}\n\
                 \x20   if [ -n \"$d\" ]; then printf '%s\\n' \"$d\" | head -n 20 >&2; exit 20; fi\n\
                 \x20   b=$(git -C \"$p\" symbolic-ref -q --short HEAD)\n\
                 \x20   if [ -n \"$b\" ]; then u=$(git -C \"$p\" log --oneline HEAD --not --exclude=\"$b\" --branches --remotes | head -n 20)\n\
                 \x20   else u=$(git -C \"$p\" log --oneline HEAD --not --branches --remotes | head -n 20); fi\n\
                 \x20   if [ -n \"$u\" ]; then printf '%s\\n' \"$u\" >&2; exit 21; fi\n\
                 \x20   git worktree remove \"$p\" || exit 1\n\
                 \x20 else git worktree remove --force --force \"$p\" || exit 1; fi\n\
                 else git worktree prune; fi\n",
                path = hp(path),
                prelude = repo_prelude(&hp(repo)),
                stale = repair::clear_stale(&req.ctx.stack),
                unfinished = repair::before_delete(&req.ctx.stack, force),
                force = if force { 1 } else { 0 },
            );
            let out = runner.run(&script, b"").await?;
            match out.code {
                0 => Ok(ApplyResponse::default()),
                22 => Err(repair::refused(&out, path, &target, &req.address, "run `claw apply` (which records it) before destroying")),
                20 => Err(Diagnostic::error(format!(
                    "refusing to remove the worktree {path} on {target}: it has uncommitted changes"
                ))
                .with_address(&req.address)
                .with_detail(out.stderr_str())
                .with_hint("commit or discard the changes; or, to throw them away, set `force = true` on the resource and run `claw apply` (which records it) before destroying")),
                21 => Err(Diagnostic::error(format!(
                    "refusing to remove the worktree {path} on {target}: it has commits that are on no other branch or remote"
                ))
                .with_address(&req.address)
                .with_detail(out.stderr_str())
                .with_hint("push or merge them; or set `force = true` on the resource and run `claw apply` (which records it) before destroying")),
                _ => Err(script_error(&format!("removing the worktree {path}"), &out, &target, &req.address)),
            }
        }
        Op::Create | Op::Update => {
            let desired = req.desired.clone().unwrap_or_default();
            let (Some(repo), Some(path), Some(branch)) = (
                s(&desired, "repo"),
                s(&desired, "path"),
                s(&desired, "branch"),
            ) else {
                return Err(Diagnostic::error("repo, path and branch must be known")
                    .with_address(&req.address));
            };
            let has = |k: &str| req.changes.iter().any(|c| c.path == k);
            let mut pending = has(SETUP_RUN);
            // An add that did not finish: removed and added again.
            let readd = req.op == Op::Update && has(ADD_RUN);
            // A setup may interpolate secrets: it reaches the shell on
            // stdin (`eval` of a variable: never a command line), and its
            // output comes back redacted of them.
            let setup = desired
                .get("setup")
                .filter(|v| !matches!(v, Value::Null))
                .filter(|_| req.op == Op::Create || pending || readd);
            let setup_text = match setup {
                Some(v) => Some(v.expose_str().ok_or_else(|| {
                    Diagnostic::error("the setup command is sensitive and its value is not known")
                        .with_address(&req.address)
                        .with_hint("a sensitive value read from a saved plan cannot be run; run `claw apply` without a plan file")
                })?),
                None => None,
            }
            .filter(|c| !c.trim().is_empty());
            let secrets = Secrets {
                vars: vec![("CLAW_SETUP", setup_text.unwrap_or(""))],
                redact: setup.map(Value::secret_parts).unwrap_or_default(),
            };
            let force = desired
                .get("force")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mut guard = Some(guard);
            let mut added = false;
            if req.op == Op::Create || readd {
                let before = match readd {
                    true => repair::before_readd(&req.ctx.stack, force),
                    false => String::new(),
                };
                match repair::add(runner, req, &desired, setup_text.is_some(), &before).await? {
                    None => added = true,
                    // It finished meanwhile: its setup runs if it is pending.
                    Some(p) => pending |= p,
                }
            }
            if added {
                // The git work is done: other worktrees of this repository
                // may be added while this setup runs.
                drop(guard.take());
                if setup_text.is_some() {
                    if let Err(out) = run_setup(runner, req, &hp(path), &secrets).await? {
                        // Roll back so a rerun starts from scratch (the branch is kept).
                        let rollback = format!(
                            "{PREAMBLE}p={path}; case \"$p\" in /*) ;; *) p=\"$start/$p\" ;; esac\n{prelude}git worktree remove --force --force \"$p\"\n",
                            path = hp(path),
                            prelude = repo_prelude(&hp(repo)),
                        );
                        let _g = lock.lock().await;
                        let _ = runner.run(&rollback, b"").await;
                        return Err(setup_failed(
                            &out,
                            path,
                            &target,
                            &req.address,
                            "the worktree was removed again",
                        ));
                    }
                }
            } else if !readd
                && req
                    .live
                    .as_ref()
                    .is_some_and(|l| l.owner == Owner::NotApplicable)
            {
                // Made by an older claw: marked now.
                let script = format!(
                        "{PREAMBLE}p={path}; case \"$p\" in /*) ;; *) p=\"$start/$p\" ;; esac\n{mark}\n",
                        path = hp(path),
                        mark = mark(&req.ctx, &req.address, "done"),
                    );
                let _ = runner.run(&script, b"").await?;
            }
            let branch_drift = has("branch")
                || req
                    .live
                    .as_ref()
                    .is_some_and(|l| l.attrs.get("branch").and_then(Value::as_str) != Some(branch));
            if req.op == Op::Update && !added && branch_drift {
                let base = s(&desired, "base").unwrap_or("HEAD");
                let script = format!(
                    "{PREAMBLE}p={path}; case \"$p\" in /*) ;; *) p=\"$start/$p\" ;; esac\n{prelude}\
                     if [ {force} = 0 ]; then d=$(git -C \"$p\" status --porcelain --untracked-files=no); if [ -n \"$d\" ]; then printf '%s\\n' \"$d\" | head -n 20 >&2; exit 20; fi; fi\n\
                     b={branch}\n\
                     if git show-ref --verify --quiet \"refs/heads/$b\"; then git -C \"$p\" checkout -q \"$b\" || exit 1\n\
                     else git -C \"$p\" checkout -q -b \"$b\" {base} || exit 1; fi\n",
                    path = hp(path),
                    prelude = repo_prelude(&hp(repo)),
                    force = if force { 1 } else { 0 },
                    branch = sh_quote(branch),
                    base = sh_quote(base),
                );
                let out = runner.run(&script, b"").await?;
                match out.code {
                    0 => {}
                    20 => {
                        return Err(Diagnostic::error(format!(
                            "refusing to switch the worktree {path} on {target} to {branch}: it has uncommitted changes"
                        ))
                        .with_address(&req.address)
                        .with_detail(out.stderr_str())
                        .with_hint("commit or stash them in the worktree, then apply again"))
                    }
                    _ => {
                        let d = script_error(
                            &format!("switching the worktree {path} to {branch}"),
                            &out,
                            &target,
                            &req.address,
                        );
                        return Err(if d.hint.is_some() {
                            d
                        } else {
                            d.with_hint("check that the branch is not checked out in another worktree")
                        });
                    }
                }
            }
            // The setup of an interrupted run, in the worktree as it is
            // (other git work of the repository goes on meanwhile).
            drop(guard.take());
            if req.op == Op::Update && !added && pending && setup_text.is_some() {
                if let Err(out) = run_setup(runner, req, &hp(path), &secrets).await? {
                    return Err(setup_failed(
                        &out,
                        path,
                        &target,
                        &req.address,
                        "it runs again on the next apply",
                    ));
                }
            }
            let mut private = marked();
            private.insert("created_by".into(), Value::from("claw"));
            Ok(ApplyResponse {
                state: Some(StateObject {
                    id: path.to_string(),
                    attrs: desired.clone(),
                    private,
                }),
                diagnostics: vec![],
            })
        }
    }
}

pub async fn import(runner: &dyn Runner, req: &ImportRequest) -> Result<StateObject, Diagnostic> {
    let desired = req.desired.clone().ok_or_else(|| {
        Diagnostic::error("import a git_worktree that is in the configuration")
            .with_address(&req.address)
    })?;
    let repo = s(&desired, "repo").unwrap_or_default().to_string();
    let item = crate::import_item(req, &desired);
    let mut resp = RefreshResponse::default();
    refresh_repo(
        runner,
        &req.ctx,
        &repo,
        &[(&item, req.id.clone())],
        &mut resp,
    )
    .await;
    match crate::imported_live(resp, req)? {
        Some(live) => {
            if let Owner::OtherStack(other) = &live.owner {
                return Err(crate::identity::other_stack(&req.address, &req.id, other));
            }
            // Marked as ours from now on; a setup an interrupted run left
            // pending stays pending (the plan runs it), else it counts as
            // done: an import runs nothing.
            let state = match live.attrs.get(SETUP_PENDING) {
                Some(Value::Bool(true)) => "pending",
                _ => "done",
            };
            // An add that did not finish gets no marker (the next apply
            // removes it and adds it again) but keeps, or gets, claw's lock.
            let claim = match live.attrs.get(ADD_INTERRUPTED) {
                Some(Value::Bool(true)) => format!(
                    "{}{}",
                    repo_prelude(&sh_path(&host_path(runner, &req.ctx.base_dir, &repo))),
                    repair::claim(&req.ctx.stack)
                ),
                _ => mark(&req.ctx, &req.address, state),
            };
            let script = format!(
                "{PREAMBLE}p={}; case \"$p\" in /*) ;; *) p=\"$start/$p\" ;; esac\n{claim}\n",
                sh_path(&host_path(runner, &req.ctx.base_dir, &req.id)),
            );
            let out = runner.run(&script, b"").await?;
            if !out.ok() {
                return Err(script_error(
                    &format!("marking the worktree {}", req.id),
                    &out,
                    &runner.target(),
                    &req.address,
                ));
            }
            let mut attrs = desired;
            attrs.insert("path".into(), Value::from(req.id.as_str()));
            if let Some(b) = live.attrs.get("branch") {
                attrs.insert("branch".into(), b.clone());
            }
            Ok(StateObject {
                id: req.id.clone(),
                attrs,
                private: marked(),
            })
        }
        None => Err(Diagnostic::error(format!(
            "{} is not a worktree of {repo} on {}",
            req.id,
            runner.target()
        ))
        .with_address(&req.address)
        .with_hint("the import id of a git_worktree is its path")),
    }
}

/// Groups refresh items by repository.
pub fn group<'a>(
    items: &[&'a RefreshItem],
    resp: &mut RefreshResponse,
) -> BTreeMap<String, Vec<(&'a RefreshItem, String)>> {
    let mut by_repo: BTreeMap<String, Vec<(&RefreshItem, String)>> = BTreeMap::new();
    for item in items {
        match item_keys(item) {
            Some((repo, path)) => by_repo.entry(repo).or_default().push((item, path)),
            None => {
                resp.live.insert(item.address.clone(), None);
            }
        }
    }
    by_repo
}
