//! Worktrees whose `git worktree add` did not finish (issues 10 and 11).
//!
//! claw runs `git worktree add --lock --reason "claw: adding for stack S
//! (pid N)"`: git writes that lock right after it makes the worktree's
//! administrative folder, before anything else, and claw's script removes
//! it (`git worktree unlock`) only once the add finished and the marker
//! `claw-owner` is written. So a worktree that still carries claw's lock
//! was being made by claw, and:
//!
//! - without the marker, its add may have died midway (a partial checkout,
//!   no HEAD yet): the next apply removes it (guarded: nothing in it but
//!   what git wrote, unless `force`) and adds it again, then runs `setup`,
//!   which never started (it starts after the unlock);
//! - with the marker, the add finished and only the unlock is left.
//!
//! git's own lock `initializing` (an add killed without `--lock`) counts
//! as claw's only when claw knows it was making that worktree (an in-flight
//! record, or the state); `claw import` then turns it into claw's lock.
//! Everything here is POSIX sh run through the [`crate::runner::Runner`],
//! the same locally, on macOS and over SSH.

use super::{mark, repo_prelude, s, script_error, MARKER, PREAMBLE};
use crate::runner::{host_path, sh_path, sh_quote, Runner};
use claw_provider::{ApplyRequest, Attrs, Diagnostic};

const LOCK_HEAD: &str = "claw: adding for stack ";
/// git's lock reason while a plain `git worktree add` runs.
pub(super) const GIT_LOCK: &str = "initializing";

fn lock_prefix(stack: &str) -> String {
    format!("{LOCK_HEAD}{stack} (pid ")
}

/// The stack named by a lock reason of claw's.
pub(super) fn lock_stack(reason: &str) -> Option<&str> {
    reason
        .strip_prefix(LOCK_HEAD)?
        .split_once(" (pid ")
        .map(|(s, _)| s)
}

/// sh that sets `$lr`, the lock reason of an add run by this script.
pub(super) fn lock_reason(stack: &str) -> String {
    format!("lr={}\"$$)\"\n", sh_quote(&lock_prefix(stack)))
}

/// sh, run in the repository: the absolute git common folder in `$c`.
const COMMON: &str = "c=$(cd \"$(git rev-parse --git-common-dir)\" && pwd) || exit 1\n";

/// sh, run in the repository, that finds the administrative folder `$g` of
/// the worktree at `$p` (empty when it has none: also when git died between
/// its `gitdir` and its `.git` file) and its lock reason `$lk`. A lock of
/// this stack's claw whose process still runs (claw alone was killed: its
/// script goes on) is waited for, up to 30 s.
pub(super) fn inspect(stack: &str) -> String {
    format!(
        "{COMMON}g=\n\
         if [ -f \"$p/.git\" ]; then IFS= read -r g < \"$p/.git\" || :; g=${{g#gitdir: }}; case \"$g\" in /*|'') ;; *) g=\"$p/$g\" ;; esac\n\
         elif pp=$(cd -P \"$p\" 2>/dev/null && pwd); then\n\
         \x20 for d in \"$c\"/worktrees/*; do\n\
         \x20   [ -f \"$d/gitdir\" ] || continue\n\
         \x20   gd=; IFS= read -r gd < \"$d/gitdir\" || :\n\
         \x20   case \"$gd\" in /*) ;; *) gd=\"$d/$gd\" ;; esac\n\
         \x20   [ \"$(cd -P \"${{gd%/.git}}\" 2>/dev/null && pwd)\" = \"$pp\" ] && g=$d\n\
         \x20 done\n\
         fi\n\
         lk=; [ -n \"$g\" ] && [ -f \"$g/locked\" ] && {{ IFS= read -r lk < \"$g/locked\" || :; }}\n\
         case \"$lk\" in {prefix}*) pid=${{lk##*(pid }}; pid=${{pid%)}}; n=0\n\
         \x20 while [ \"$n\" -lt 30 ] && kill -0 \"$pid\" 2>/dev/null; do sleep 1; n=$((n + 1)); done\n\
         \x20 lk=; [ -f \"$g/locked\" ] && {{ IFS= read -r lk < \"$g/locked\" || :; }} ;;\n\
         esac\n",
        prefix = sh_quote(&lock_prefix(stack)),
    )
}

/// sh (after [`inspect`]): `$mine` is 1 when `$lk` is this stack's lock.
pub(super) fn is_mine(stack: &str) -> String {
    format!(
        "mine=0; case \"$lk\" in {}*) mine=1 ;; esac\n",
        sh_quote(&lock_prefix(stack))
    )
}

/// sh (after [`inspect`]) that refuses, with exit 22 and the first 20
/// paths on stderr, when the work tree at `$p` holds anything the
/// interrupted add did not write: compared with HEAD in a throwaway index
/// (git's own may be half written, its `index.lock` left behind), only
/// files not written yet (` D`) may differ; with no HEAD yet, nothing but
/// `.git` may be there. `force = true` skips it.
pub(super) fn guard(force: bool) -> String {
    if force {
        return String::new();
    }
    "x=\n\
     if [ -n \"$g\" ] && [ -f \"$p/.git\" ] && GIT_DIR=\"$g\" git rev-parse -q --verify 'HEAD^{commit}' >/dev/null 2>&1; then\n\
     \x20 x=$(GIT_DIR=\"$g\" GIT_WORK_TREE=\"$p\" GIT_INDEX_FILE=\"$g/claw-index\" git read-tree HEAD 2>&1 && GIT_DIR=\"$g\" GIT_WORK_TREE=\"$p\" GIT_INDEX_FILE=\"$g/claw-index\" git status --porcelain --untracked-files=all 2>&1 | grep -v '^ D ' | head -n 20)\n\
     elif [ -d \"$p\" ]; then x=$(ls -A \"$p\" | grep -v '^\\.git$' | head -n 20); fi\n\
     if [ -n \"$x\" ]; then printf '%s\\n' \"$x\" >&2; exit 22; fi\n"
        .to_string()
}

/// sh (after [`inspect`] and [`guard`]) that discards the unfinished
/// worktree at `$p`: unlocked, its folder removed, then `git worktree
/// prune` removes its administrative folder.
pub(super) const DISCARD: &str =
    "git worktree unlock \"$p\" 2>/dev/null || { [ -n \"$g\" ] && rm -f \"$g/locked\"; }\n\
     rm -rf \"$p\" || exit 1\n\
     git worktree prune\n";

/// sh, run in the repository before an add: claw's adds of this stack that
/// died before their worktree existed (an administrative folder with claw's
/// lock, whose process is gone, and no work tree behind it) are unlocked,
/// so that the `git worktree prune` after it removes them.
pub(super) fn clear_stale(stack: &str) -> String {
    format!(
        "{COMMON}for d in \"$c\"/worktrees/*; do\n\
         \x20 [ -f \"$d/locked\" ] || continue\n\
         \x20 lk=; IFS= read -r lk < \"$d/locked\" || :\n\
         \x20 case \"$lk\" in {prefix}*) ;; *) continue ;; esac\n\
         \x20 pid=${{lk##*(pid }}; pid=${{pid%)}}\n\
         \x20 kill -0 \"$pid\" 2>/dev/null && continue\n\
         \x20 gd=; [ -f \"$d/gitdir\" ] && {{ IFS= read -r gd < \"$d/gitdir\" || :; }}\n\
         \x20 case \"$gd\" in ''|/*) ;; *) gd=\"$d/$gd\" ;; esac\n\
         \x20 [ -n \"$gd\" ] && [ -e \"$gd\" ] && continue\n\
         \x20 rm -f \"$d/locked\"\n\
         done\n",
        prefix = sh_quote(&lock_prefix(stack)),
    )
}

/// sh run before the add of a repair: a worktree whose add finished
/// meanwhile (it has the marker: claw alone died and its script went on)
/// is only unlocked and kept (`KEPT pending|done`, the state of its setup);
/// one still locked by claw (or git's `initializing`) is guarded and
/// discarded, and the add follows; anything else changed since the plan.
pub(super) fn before_readd(stack: &str, force: bool) -> String {
    format!(
        "{inspect}{mine}\
         if [ -n \"$g\" ] && [ -f \"$g/{MARKER}\" ]; then\n\
         \x20 if [ \"$mine\" = 1 ]; then git worktree unlock \"$p\" || exit 1; fi\n\
         \x20 if grep -q '^setup pending' \"$g/{MARKER}\"; then echo 'KEPT pending'; else echo 'KEPT done'; fi\n\
         \x20 exit 0\n\
         fi\n\
         case \"$mine$lk\" in 1*|0{GIT_LOCK}) ;; *) echo 'the worktree changed since the plan: it is no longer locked by an unfinished add' >&2; exit 23 ;; esac\n\
         {guard}{DISCARD}",
        inspect = inspect(stack),
        mine = is_mine(stack),
        guard = guard(force),
    )
}

/// sh run before a delete: this stack's unfinished worktree is guarded and
/// discarded (exit 0); one that only kept claw's lock is unlocked first.
pub(super) fn before_delete(stack: &str, force: bool) -> String {
    format!(
        "{inspect}{mine}\
         if [ \"$mine\" = 1 ]; then\n\
         \x20 if [ -f \"$g/{MARKER}\" ]; then git worktree unlock \"$p\" || exit 1\n\
         \x20 else\n{guard}{DISCARD}\x20 exit 0; fi\n\
         fi\n",
        inspect = inspect(stack),
        mine = is_mine(stack),
        guard = guard(force),
    )
}

/// sh for `claw import` of an unfinished worktree: git's own lock
/// `initializing` becomes claw's (the claim that survives until the next
/// apply removes it and adds it again); no marker is written.
pub(super) fn claim(stack: &str) -> String {
    format!(
        "{inspect}{lr}\
         if [ \"$lk\" = {GIT_LOCK} ]; then git worktree unlock \"$p\" && git worktree lock --reason \"$lr\" \"$p\" || exit 1; fi\n",
        inspect = inspect(stack),
        lr = lock_reason(stack),
    )
}

/// Adds the worktree of `desired` under claw's lock, marks it (`setup
/// pending` when `setup` is configured) and unlocks it, in one script that
/// first runs `before` (the discard of a repair). `Ok(Some(pending))`:
/// `before` found the add finished meanwhile and kept the worktree.
pub(super) async fn add(
    runner: &dyn Runner,
    req: &ApplyRequest,
    desired: &Attrs,
    setup: bool,
    before: &str,
) -> Result<Option<bool>, Diagnostic> {
    let hp = |p: &str| sh_path(&host_path(runner, &req.ctx.base_dir, p));
    let (repo, path, branch) = (
        s(desired, "repo").unwrap_or_default(),
        s(desired, "path").unwrap_or_default(),
        s(desired, "branch").unwrap_or_default(),
    );
    let script = format!(
        "{PREAMBLE}p={qpath}; case \"$p\" in /*) ;; *) p=\"$start/$p\" ;; esac\n{prelude}{before}{stale}\
         git worktree prune\n\
         mkdir -p \"$(dirname -- \"$p\")\" || exit 1\n\
         b={branch}\n{lr}\
         if git show-ref --verify --quiet \"refs/heads/$b\"; then git worktree add --lock --reason \"$lr\" \"$p\" \"$b\" || exit 1\n\
         else git worktree add --lock --reason \"$lr\" -b \"$b\" \"$p\" {base} || exit 1; fi\n\
         {mark} || {{ git worktree remove --force --force \"$p\"; exit 1; }}\n\
         git worktree unlock \"$p\" || exit 1\n",
        qpath = hp(path),
        prelude = repo_prelude(&hp(repo)),
        stale = clear_stale(&req.ctx.stack),
        branch = sh_quote(branch),
        lr = lock_reason(&req.ctx.stack),
        base = sh_quote(s(desired, "base").unwrap_or("HEAD")),
        mark = mark(
            &req.ctx,
            &req.address,
            if setup { "pending" } else { "done" }
        ),
    );
    let out = runner.run(&script, b"").await?;
    let target = runner.target();
    match out.code {
        0 => {}
        22 => return Err(refused(&out, path, &target, &req.address, "apply again")),
        _ => {
            let d = script_error(
                &format!("adding the worktree {path}"),
                &out,
                &target,
                &req.address,
            );
            return Err(if d.hint.is_some() || out.code == 23 {
                d
            } else {
                d.with_hint("check that the branch is not checked out in another worktree and that the folder is empty or absent")
            });
        }
    }
    let text = out.stdout_str();
    Ok(text.lines().find_map(|l| match l {
        "KEPT pending" => Some(true),
        "KEPT done" => Some(false),
        _ => None,
    }))
}

/// The error of a refused discard (exit 22 of [`guard`]).
pub(super) fn refused(
    out: &crate::runner::Output,
    path: &str,
    target: &str,
    address: &str,
    then: &str,
) -> Diagnostic {
    Diagnostic::error(format!(
        "refusing to remove the worktree {path} on {target}: its `git worktree add` was interrupted and it holds files that add did not write"
    ))
    .with_address(address)
    .with_detail(out.stderr_str())
    .with_hint(format!(
        "move them out of the worktree and apply again; or, to throw them away, set `force = true` on the resource and {then}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_reasons_name_their_stack() {
        assert_eq!(
            lock_stack("claw: adding for stack own (pid 42)"),
            Some("own")
        );
        assert_eq!(lock_stack(GIT_LOCK), None);
        assert_eq!(lock_stack("claw: adding for stack own"), None);
        assert_eq!(lock_stack("moved to a USB disk"), None);
        assert_eq!(
            lock_reason("own"),
            "lr='claw: adding for stack own (pid '\"$$)\"\n"
        );
    }

    #[test]
    fn porcelain_and_file_lock_reasons_are_read() {
        let entries = super::super::parse_entries(&[
            "worktree /r/a",
            "physical /r/a",
            "claw-lock claw: adding for stack own (pid 7)",
            "HEAD 0",
            "locked claw: adding for stack own (pid 7)",
            "worktree /r/b",
            "locked initializing",
            "worktree /r/c",
            "locked",
        ]);
        let reasons: Vec<_> = entries.iter().map(|e| e.lock_reason.as_deref()).collect();
        assert_eq!(
            reasons,
            [
                Some("claw: adding for stack own (pid 7)"),
                Some(GIT_LOCK),
                None
            ]
        );
        assert!(entries.iter().all(|e| e.locked));
    }
}
