//! `[[moved]]` (SPEC §1.1a, issue 10): a rename keeps the live object — the
//! file's content and the tmux session's pane — and the state holds the new
//! address; a `from` not in the state is ignored; bad blocks are located.

use crate::common::Ctx;
use std::process::Command;

fn tmux(sock: &str, args: &[&str]) -> String {
    let o = Command::new("tmux")
        .arg("-S")
        .arg(sock)
        .args(args)
        .output()
        .expect("tmux runs");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

struct Server(String);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-S", &self.0, "kill-server"])
            .output();
    }
}

fn stack(names: (&str, &str), moved: &str, sock: &str) -> String {
    format!(
        r#"[stack]
name = "moves"

[file.{f}]
path = "out/agent.json"
content = "{{}}"

[tmux_session.{s}]
socket = "{sock}"
session = "agent"
command = "sleep 3600"
{moved}
"#,
        f = names.0,
        s = names.1,
    )
}

#[test]
fn a_rename_with_moved_keeps_the_file_and_the_session() {
    let t = Ctx::new();
    let sock = t.path("tmux.sock").to_str().unwrap().to_string();
    let _server = Server(sock.clone());
    t.write("claw.toml", &stack(("old", "old"), "", &sock));
    t.ok(&["apply", "--auto-approve"], 0);
    let pid = tmux(&sock, &["display", "-p", "-t", "agent", "#{pane_pid}"]);
    assert!(!pid.is_empty());

    let moved = r#"
[[moved]]
from = "file.old"
to = "file.new"

[[moved]]
from = "tmux_session.old"
to = "tmux_session.new"
"#;
    t.write("claw.toml", &stack(("new", "new"), moved, &sock));
    let plan = t.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout.contains("> file.new") && plan.stdout.contains("move (moved from file.old"),
        "{}",
        plan.stdout
    );
    assert!(
        !plan.stdout.contains("delete (") && plan.stdout.contains("0 to delete"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("2 to move"), "{}", plan.stdout);
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(t.read("out/agent.json"), "{}");
    assert_eq!(
        tmux(&sock, &["display", "-p", "-t", "agent", "#{pane_pid}"]),
        pid,
        "the same session runs"
    );
    let list = t.ok(&["state", "list"], 0).stdout;
    assert!(
        list.contains("file.new") && list.contains("tmux_session.new"),
        "{list}"
    );
    assert!(!list.contains("file.old"), "{list}");
    // The blocks can stay: their `from` is no longer in the state.
    t.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn a_moved_instance_with_a_change_is_moved_and_updated() {
    let t = Ctx::new();
    let cfg = |key: &str, content: &str, moved: &str| {
        format!(
            r#"[stack]
name = "moves"

[file.agent]
for_each = ["{key}"]
path = "out/${{each.key}}.txt"
content = "{content}"
{moved}
"#
        )
    };
    t.write("claw.toml", &cfg("dev", "one", ""));
    t.ok(&["apply", "--auto-approve"], 0);
    // The path stays the same by design of this test: only the key moves.
    let moved = "[[moved]]\nfrom = 'file.agent[\"dev\"]'\nto = 'file.agent[\"developer\"]'\n";
    t.write(
        "claw.toml",
        &cfg("developer", "two", moved).replace("out/${each.key}.txt", "out/dev.txt"),
    );
    let plan = t.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout
            .contains("update in place (content changed) (moved from file.agent[\"dev\"])"),
        "{}",
        plan.stdout
    );
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(t.read("out/dev.txt"), "two");
    t.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn bad_moved_blocks_are_located() {
    let t = Ctx::new();
    t.write(
        "claw.toml",
        "[stack]\nname = \"moves\"\n\n[[moved]]\nfrom = \"file.a\"\nto = \"tmux_session.a\"\n\n[[moved]]\nfrom = \"file.b\"\ntoo = \"file.c\"\n",
    );
    let o = t.ok(&["validate"], 1);
    assert!(
        o.stderr.contains("claw.toml:5:8") && o.stderr.contains("a move keeps the resource type"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("unknown key `too`") && o.stderr.contains("did you mean `to`?"),
        "{}",
        o.stderr
    );
}

#[test]
fn a_rename_without_moved_is_refused_and_deletes_nothing() {
    let t = Ctx::new();
    let sock = t.path("tmux.sock").to_str().unwrap().to_string();
    let _server = Server(sock.clone());
    t.write("claw.toml", &stack(("old", "old"), "", &sock));
    t.ok(&["apply", "--auto-approve"], 0);
    t.write("claw.toml", &stack(("new", "new"), "", &sock));
    let o = t.ok(&["plan"], 1);
    assert!(
        o.stderr.contains("file.new and file.old manage one object"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains("tmux_session.new and tmux_session.old manage one object"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("[[moved]]") && o.stderr.contains("from = 'file.old'"),
        "{}",
        o.stderr
    );
    let o = t.ok(&["apply", "--auto-approve"], 1);
    assert!(o.stderr.contains("manage one object"), "{}", o.stderr);
    assert_eq!(t.read("out/agent.json"), "{}", "nothing was deleted");
    assert!(!tmux(&sock, &["has-session", "-t", "agent"]).contains("can't find"));
}

#[test]
fn two_spellings_of_one_path_are_refused() {
    let t = Ctx::new();
    t.write(
        "claw.toml",
        r#"[stack]
name = "moves"

[file.a]
path = "out/x"
content = "a"

[file.b]
path = "out/sub/../x"
content = "b"
"#,
    );
    let o = t.ok(&["plan"], 1);
    assert!(
        o.stderr.contains("file.a and file.b manage one object") && o.stderr.contains("/out/x)"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("claw.toml:4:1"), "{}", o.stderr);
    assert!(!t.exists("out/x"));
}
