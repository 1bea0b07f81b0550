//! What object each host address claims (SPEC §1.1a): a file's path, a tmux
//! socket and session, a worktree path — normalised so that `a/x`,
//! `a/sub/../x` and a path through a symlinked parent are one object.

use crate::runner::{host_path, local_path, Runner};
use claw_provider::{IdentityItem, IdentityResponse, Value};
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
