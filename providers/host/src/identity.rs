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
///
/// `dirs` caches resolved parent folders for one call of [`identities`]:
/// resolving every path whole cost a `realpath` (a readlink per component)
/// per file, 12 % of a 20,000-file plan; now it is one `lstat` per path
/// (a path that is itself a symlink is resolved whole) and one `realpath`
/// per folder.
fn normalise(runner: &dyn Runner, base_dir: &Path, p: &str, dirs: &mut Dirs) -> String {
    let hp = host_path(runner, base_dir, p);
    if !runner.is_local() {
        return lexical(Path::new(&hp)).to_string_lossy().into_owned();
    }
    let mut abs = local_path(&hp);
    if abs.is_relative() {
        if let Some(cwd) = dirs.cwd.get_or_insert_with(|| std::env::current_dir().ok()) {
            abs = cwd.join(abs);
        }
    }
    let abs = lexical(&abs);
    let is_link = std::fs::symlink_metadata(&abs).is_ok_and(|m| m.file_type().is_symlink());
    let resolved = match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) if !is_link => {
            let mut out = dirs
                .resolved
                .entry(parent.to_path_buf())
                .or_insert_with(|| resolve(parent))
                .clone();
            out.push(name);
            out
        }
        _ => resolve(&abs),
    };
    resolved.to_string_lossy().into_owned()
}

/// What one call of [`identities`] learnt of this machine's folders.
#[derive(Default)]
struct Dirs {
    /// The working folder (asked once, not per path).
    cwd: Option<Option<PathBuf>>,
    /// Resolved parent folders, by their lexical absolute path.
    resolved: std::collections::HashMap<PathBuf, PathBuf>,
}

/// `abs` with its deepest existing ancestor resolved through its symlinks.
fn resolve(abs: &Path) -> PathBuf {
    let mut existing = abs.to_path_buf();
    let mut rest = Vec::new();
    while !existing.as_os_str().is_empty() {
        if let Ok(mut out) = std::fs::canonicalize(&existing) {
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    abs.to_path_buf()
}

fn text<'a>(attrs: &'a claw_provider::Attrs, key: &str) -> Option<&'a str> {
    match attrs.get(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// The identities of host items on the host `alias`. On this machine, many
/// items are named on every core (each path costs an `lstat`).
pub fn identities(
    alias: &str,
    runner: &dyn Runner,
    base_dir: &Path,
    items: Vec<IdentityItem>,
) -> IdentityResponse {
    let threads = match runner.is_local() {
        true => claw_provider::par::cores(),
        false => 1,
    };
    let identities = claw_provider::par::in_chunks(&items, threads, 2048, |items| {
        let mut dirs = Dirs::default();
        items
            .iter()
            .filter_map(|it| {
                let id = identity(alias, runner, base_dir, it, &mut dirs)?;
                Some((it.address.to_string(), id))
            })
            .collect()
    });
    IdentityResponse {
        identities,
        ..Default::default()
    }
}

fn identity(
    alias: &str,
    runner: &dyn Runner,
    base_dir: &Path,
    it: &IdentityItem,
    dirs: &mut Dirs,
) -> Option<String> {
    match it.rtype {
        "file" | "ssh_key" => text(it.attrs, "path")
            .map(|p| format!("file:{alias}:{}", normalise(runner, base_dir, p, dirs))),
        "git_worktree" => text(it.attrs, "path").map(|p| {
            format!(
                "git_worktree:{alias}:{}",
                normalise(runner, base_dir, p, dirs)
            )
        }),
        "tmux_session" => {
            // `prepare` fills the default session name.
            let session = text(it.attrs, "session")?;
            let socket = match it.attrs.get("socket") {
                Some(Value::String(s)) => normalise(runner, base_dir, s, dirs),
                None | Some(Value::Null) => "(default server)".to_string(),
                _ => return None,
            };
            Some(format!(
                "tmux_session:{alias}:socket {socket}, session {session}"
            ))
        }
        _ => None,
    }
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

    /// Every spelling of one file gets one identity, with the folder cache
    /// shared across the items of one call: through a symlinked folder, a
    /// `..`, a symlink to the file itself, and (not yet made) a path under
    /// a symlinked folder.
    #[test]
    fn spellings_of_one_file_share_an_identity() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/x"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("via")).unwrap();
        std::os::unix::fs::symlink(root.join("real/x"), root.join("real/link")).unwrap();
        let runner = crate::runner::LocalRunner::new(std::time::Duration::from_secs(5));
        let item = |address: &'static str, path: &str| IdentityItem {
            address,
            rtype: "file",
            attrs: Box::leak(Box::new([("path".to_string(), Value::str(path))].into())),
        };
        let items = vec![
            item("file.a", "real/x"),
            item("file.b", "via/x"),
            item("file.c", "real/sub/../x"),
            item("file.d", "real/link"),
            item("file.e", "via/new/y"),
            item("file.f", "real/new/y"),
        ];
        let ids: std::collections::BTreeMap<String, String> =
            identities("local", &runner, &root, items)
                .identities
                .into_iter()
                .collect();
        let real_x = format!("file:local:{}", root.join("real/x").display());
        for a in ["file.a", "file.b", "file.c", "file.d"] {
            assert_eq!(ids[a], real_x, "{a}");
        }
        let new_y = format!("file:local:{}", root.join("real/new/y").display());
        assert_eq!(ids["file.e"], new_y);
        assert_eq!(ids["file.f"], new_y);
    }
}
