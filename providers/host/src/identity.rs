//! What object each host address claims (SPEC §1.1a): a file's path, a tmux
//! socket and session, a worktree path — normalised so that `a/x`,
//! `a/sub/../x` and a path through a symlinked parent are one object.

use crate::runner::{host_path, local_path, Runner};
use claw_provider::{Ctx, Diagnostic, IdentityItem, IdentityResponse, Owner, RefreshItem, Value};
use std::path::{Component, Path, PathBuf};

/// `a/./b/../c` → `a/c`, without touching the file system.
pub fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                // `/..` is `/`; a relative path keeps its leading `..`.
                let at_root = out.parent().is_none() && out.has_root();
                let popped =
                    matches!(out.components().next_back(), Some(Component::Normal(_))) && out.pop();
                if !popped && !at_root {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// On this machine: the deepest existing ancestor is resolved through its
/// symlinks, the rest kept lexically. Elsewhere: lexical only (a remote
/// host's symlinks would cost a round trip; `~` stays as written).
fn normalise(runner: &dyn Runner, base_dir: &Path, p: &str) -> String {
    let hp = host_path(runner, base_dir, p);
    if !runner.is_local() {
        return lexical(Path::new(&hp)).to_string_lossy().into_owned();
    }
    let mut abs = local_path(&hp);
    if abs.is_relative() {
        if let Ok(cwd) = std::env::current_dir() {
            abs = cwd.join(abs);
        }
    }
    let abs = lexical(&abs);
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.as_os_str().is_empty() {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            let mut out = real;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out.to_string_lossy().into_owned();
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    abs.to_string_lossy().into_owned()
}

fn text<'a>(attrs: &'a claw_provider::Attrs, key: &str) -> Option<&'a str> {
    match attrs.get(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// The identities of host items on the host `alias`.
pub fn identities(
    alias: &str,
    runner: &dyn Runner,
    base_dir: &Path,
    items: Vec<IdentityItem>,
) -> IdentityResponse {
    let mut out = IdentityResponse::default();
    for it in items {
        let id = match it.rtype.as_str() {
            "file" | "ssh_key" => text(&it.attrs, "path")
                .map(|p| format!("file:{alias}:{}", normalise(runner, base_dir, p))),
            "git_worktree" => text(&it.attrs, "path")
                .map(|p| format!("git_worktree:{alias}:{}", normalise(runner, base_dir, p))),
            "tmux_session" => {
                // `prepare` fills the default session name.
                let session = text(&it.attrs, "session").map(str::to_string);
                let socket = match it.attrs.get("socket") {
                    Some(Value::String(s)) => Some(normalise(runner, base_dir, s)),
                    None | Some(Value::Null) => Some("(default server)".to_string()),
                    _ => None,
                };
                match (socket, session) {
                    (Some(sock), Some(s)) => {
                        Some(format!("tmux_session:{alias}:socket {sock}, session {s}"))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(id) = id {
            out.identities.push((it.address, id));
        }
    }
    out
}

/// The state's note (in `private`) that claw marked the object it records.
pub const MARKED: &str = "marked";

/// Whose tmux session or worktree this is, by the stack its markers name
/// (`None`: no markers). Without markers: an object an in-flight record
/// names was being made by claw (the moment before its markers); one the
/// state records as marked was replaced outside claw (not ours); one the
/// state records unmarked was made by an older claw: the state's ownership
/// wins. Anything else is not claw's.
pub(crate) fn marker_owner(ctx: &Ctx, stack: Option<&str>, item: &RefreshItem) -> Owner {
    let marked = |p: &claw_provider::StateObject| p.private.get(MARKED) == Some(&Value::Bool(true));
    match stack {
        Some(s) if s == ctx.stack => Owner::Stack,
        Some(other) => Owner::OtherStack(other.to_string()),
        None if item.recheck => Owner::NotApplicable,
        None => match &item.prior {
            Some(p) if !marked(p) => Owner::NotApplicable,
            _ => Owner::Unmanaged,
        },
    }
}

/// `private` of a state entry whose object claw has marked.
pub(crate) fn marked() -> claw_provider::Attrs {
    let mut a = claw_provider::Attrs::new();
    a.insert(MARKED.into(), Value::Bool(true));
    a
}

/// `claw import` of an object that carries another stack's markers.
pub(crate) fn other_stack(address: &str, id: &str, stack: &str) -> Diagnostic {
    Diagnostic::error(format!(
        "{id} belongs to the claw stack `{stack}`; claw never takes another stack's objects"
    ))
    .with_address(address)
    .with_hint(format!(
        "`claw destroy` it from stack `{stack}`, or `claw state rm` it there first"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_paths() {
        assert_eq!(lexical(Path::new("a/sub/../x")), PathBuf::from("a/x"));
        assert_eq!(lexical(Path::new("./a/./x")), PathBuf::from("a/x"));
        assert_eq!(lexical(Path::new("/a/../../x")), PathBuf::from("/x"));
    }
}
