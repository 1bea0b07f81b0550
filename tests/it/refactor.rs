//! Refactoring tools end to end: `--replace ADDR` on plan and apply (a new
//! tmux session, a saved plan that replaces), and `claw state mv`.

use crate::common::{require, says, which, Ctx};
use crate::host::TmuxGuard;
use std::process::Command;

/// A stack of one tmux session `x` on a private socket and two files.
fn stack() -> Option<(Ctx, TmuxGuard)> {
    if !require("tmux", which("tmux"), "tmux is not installed") {
        return None;
    }
    let t = Ctx::new();
    t.write(
        "claw.toml",
        r#"
[stack]
name = "refactor"

[tmux_session.x]
socket = "tmux.sock"
session = "x"
command = "sleep 600"
depends_on = ["file.note"]

[file.note]
for_each = ["a", "b"]
path = "out/${each.key}.txt"
content = "note ${each.key}\n"
"#,
    );
    let guard = TmuxGuard(t.path("tmux.sock"));
    Some((t, guard))
}

fn pane_pid(t: &Ctx) -> String {
    let o = Command::new("tmux")
        .arg("-S")
        .arg(t.path("tmux.sock"))
        .args(["display", "-p", "-t", "x", "#{pane_pid}"])
        .output()
        .expect("run tmux");
    assert!(
        o.status.success(),
        "tmux display: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pid = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(!pid.is_empty(), "a pane pid");
    pid
}

#[test]
fn replace_gives_a_new_session_and_a_saved_plan_replaces_too() {
    let Some((t, _guard)) = stack() else { return };
    // --replace of an object that does not exist yet is its create.
    let o = t.ok(
        &["plan", "--replace", "tmux_session.x", "--detailed-exitcode"],
        2,
    );
    says(&o.stdout, "+ tmux_session.x");
    says(&o.stdout, "Plan: 3 to create, 0 to update, 0 to replace");
    t.ok(&["apply", "--auto-approve"], 0);
    let first = pane_pid(&t);
    t.ok(&["plan", "--detailed-exitcode"], 0);

    // Unchanged, yet replaced on request: a new pane (a new process).
    let o = t.ok(
        &["plan", "--replace", "tmux_session.x", "--detailed-exitcode"],
        2,
    );
    says(&o.stdout, "replace (replacement requested with --replace");
    says(&o.stdout, "0 to update, 1 to replace, 0 to delete");
    t.ok(
        &["apply", "--auto-approve", "--replace", "tmux_session.x"],
        0,
    );
    let second = pane_pid(&t);
    assert_ne!(first, second, "the session was started again");
    t.ok(&["plan", "--detailed-exitcode"], 0);

    // A saved plan carries the replace; applying it replaces exactly that.
    t.ok(
        &["plan", "--replace", "tmux_session.x", "--out", "p.json"],
        0,
    );
    let saved: serde_json::Value = serde_json::from_str(&t.read("p.json")).unwrap();
    assert_eq!(saved["replace"], serde_json::json!(["tmux_session.x"]));
    let o = t.ok(&["apply", "p.json"], 0);
    says(&o.stderr, "tmux_session.x: replaced");
    let third = pane_pid(&t);
    assert_ne!(second, third, "the saved plan replaced the session");
    t.ok(&["plan", "--detailed-exitcode"], 0);

    // A resource name selects all its instances.
    let o = t.ok(&["plan", "--replace", "file.note"], 0);
    says(&o.stdout, "0 to update, 2 to replace");
    // A plan file says what it replaces: --replace beside one is refused.
    let o = t.ok(&["apply", "p.json", "--replace", "file.note"], 1);
    says(&o.stderr, "--replace cannot be combined with a plan file");
}

#[test]
fn replace_of_an_unknown_address_names_the_closest() {
    let Some((t, _guard)) = stack() else { return };
    let o = t.ok(&["plan", "--replace", "tmux_session.y"], 1);
    says(
        &o.stderr,
        "--replace tmux_session.y: no such resource in the configuration",
    );
    says(&o.stderr, "did you mean `tmux_session.x`?");
    let o = t.ok(&["apply", "--auto-approve", "--replace", "file.nots"], 1);
    says(&o.stderr, "did you mean `file.note");
    assert!(!t.exists("out/a.txt"), "nothing was applied");
}

#[test]
fn state_mv_with_the_matching_rename_gives_a_clean_plan_and_keeps_the_objects() {
    let Some((t, _guard)) = stack() else { return };
    t.ok(&["apply", "--auto-approve"], 0);
    let pid = pane_pid(&t);
    let before = t.state();

    // Refusals change nothing: FROM missing (closest named), TO taken,
    // another type.
    let o = t.ok(&["state", "mv", "tmux_session.z", "tmux_session.y"], 1);
    says(&o.stderr, "tmux_session.z is not in the state");
    says(&o.stderr, "did you mean `tmux_session.x`?");
    let o = t.ok(&["state", "mv", "file.note[\"a\"]", "file.note[\"b\"]"], 1);
    says(&o.stderr, "file.note[\"b\"] is already in the state");
    let o = t.ok(&["state", "mv", "tmux_session.x", "file.x"], 1);
    says(&o.stderr, "keeps its resource type");
    assert_eq!(t.state(), before, "refused moves leave the state alone");

    // Rename in the state, then the same rename in claw.toml: nothing to do.
    let o = t.ok(&["state", "mv", "tmux_session.x", "tmux_session.agent"], 0);
    says(
        &o.stdout,
        "Moved tmux_session.x to tmux_session.agent in the state",
    );
    let o = t.ok(&["state", "mv", "file.note", "file.memo"], 0);
    says(&o.stdout, "Moved file.note[\"a\"] to file.memo[\"a\"]");
    says(&o.stdout, "Moved file.note[\"b\"] to file.memo[\"b\"]");
    let toml = t
        .read("claw.toml")
        .replace("[tmux_session.x]", "[tmux_session.agent]")
        .replace("file.note", "file.memo");
    t.write("claw.toml", &toml);
    let o = t.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(o.stdout.starts_with("No changes."), "{}", o.stdout);
    assert_eq!(pane_pid(&t), pid, "the session still runs, untouched");
    assert_eq!(t.read("out/a.txt"), "note a\n");
    let st = t.state();
    let addrs: Vec<&str> = st["resources"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        addrs,
        ["file.memo[\"a\"]", "file.memo[\"b\"]", "tmux_session.agent"]
    );
    assert_eq!(
        st["resources"]["tmux_session.agent"]["deps"],
        serde_json::json!(["file.memo[\"a\"]", "file.memo[\"b\"]"]),
        "the dependencies recorded for deletes follow the move"
    );
    assert!(st["serial"].as_u64() > before["serial"].as_u64());
}
