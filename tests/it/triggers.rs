//! `lifecycle.replace_triggered_by` end to end (issue 15): a real tmux
//! session restarts (a new pane pid) when the file it lists changes, keeps
//! its process when nothing changes; the plan says why, a saved plan applies
//! the same replace, an attribute trigger fires only for that attribute, and
//! bad entries are errors located in claw.toml with a hint.

use crate::common::{require, says, which, Ctx};
use crate::host::TmuxGuard;

fn stack(t: &Ctx, content: &str, trigger: &str) -> String {
    let root = t.dir.path().display();
    format!(
        r#"[stack]
name = "triggers"

[file.cfg]
path = "gw/clawdbot.json"
content = "{content}"

[tmux_session.gw]
socket = "{root}/sock/tmux.sock"
session = "gw"
cwd = "{root}/gw"
command = "sleep 600"
lifecycle = {{ replace_triggered_by = {trigger} }}
"#
    )
}

fn pane_pid(t: &Ctx) -> String {
    let out = std::process::Command::new("tmux")
        .arg("-S")
        .arg(t.path("sock/tmux.sock"))
        .args(["list-panes", "-t", "=gw:", "-F", "#{pane_pid}"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!pid.is_empty());
    pid
}

fn tmux_stack(content: &str) -> Option<(Ctx, TmuxGuard)> {
    if !require("tmux", which("tmux"), "tmux is not installed") {
        return None;
    }
    let t = Ctx::new();
    let guard = TmuxGuard(t.path("sock/tmux.sock"));
    t.write("claw.toml", &stack(&t, content, "[\"file.cfg\"]"));
    Some((t, guard))
}

#[test]
fn a_changed_file_restarts_the_session_that_lists_it_and_nothing_else_does() {
    let Some((t, _guard)) = tmux_stack("v1") else {
        return;
    };
    // The trigger is a dependency: created first.
    let graph = t.ok(&["graph"], 0);
    says(&graph.stdout, "\"tmux_session.gw\" -> \"file.cfg\"");
    t.ok(&["apply", "--auto-approve"], 0);
    let first = pane_pid(&t);
    assert_eq!(t.read("gw/clawdbot.json"), "v1");

    // Nothing changed: no replace, the same process.
    t.ok(&["plan", "--detailed-exitcode"], 0);
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(
        pane_pid(&t),
        first,
        "an unchanged trigger keeps the session"
    );

    // The file changes: the plan replaces the session and says why.
    t.write("claw.toml", &stack(&t, "v2", "[\"file.cfg\"]"));
    let plan = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(&plan.stdout, "~ file.cfg");
    says(
        &plan.stdout,
        "replace (replace_triggered_by: file.cfg changes)",
    );
    says(
        &plan.stdout,
        "Plan: 0 to create, 1 to update, 1 to replace, 0 to delete.",
    );
    let json = t.ok(&["plan", "--format", "json"], 0);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let gw = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "tmux_session.gw")
        .expect("the session is in the plan");
    assert_eq!(
        gw["reason"],
        serde_json::json!({"kind": "triggered", "by": ["file.cfg"]})
    );
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(t.read("gw/clawdbot.json"), "v2");
    let second = pane_pid(&t);
    assert_ne!(second, first, "the session was restarted");
    t.ok(&["plan", "--detailed-exitcode"], 0);

    // A saved plan carries the same replace, and applies it.
    t.write("claw.toml", &stack(&t, "v3", "[\"file.cfg\"]"));
    let saved = t.ok(&["plan", "--out", "p.json", "--detailed-exitcode"], 2);
    says(&saved.stdout, "replace_triggered_by: file.cfg changes");
    t.ok(&["apply", "p.json"], 0);
    let third = pane_pid(&t);
    assert_ne!(third, second, "the saved plan restarted it too");
    t.ok(&["plan", "--detailed-exitcode"], 0);

    // destroy is not concerned: both go.
    let d = t.ok(&["plan", "--destroy"], 0);
    says(
        &d.stdout,
        "Plan: 0 to create, 0 to update, 0 to replace, 2 to delete.",
    );
    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(!t.exists("gw/clawdbot.json"));
}

#[test]
fn an_attribute_trigger_fires_only_when_that_attribute_changes() {
    let Some((t, _guard)) = tmux_stack("v1") else {
        return;
    };
    let on_content = "[\"file.cfg.content\"]";
    t.write("claw.toml", &stack(&t, "v1", on_content));
    t.ok(&["apply", "--auto-approve"], 0);
    let first = pane_pid(&t);
    // Another attribute of the file changes: the session stays.
    let with_mode = stack(&t, "v1", on_content)
        .replace("content = \"v1\"", "content = \"v1\"\nmode = \"0600\"");
    t.write("claw.toml", &with_mode);
    let plan = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(&plan.stdout, "1 to update, 0 to replace");
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(pane_pid(&t), first);
    // The content changes: replaced, and the reason names the attribute.
    t.write("claw.toml", &with_mode.replace("\"v1\"", "\"v2\""));
    let plan = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(
        &plan.stdout,
        "replace_triggered_by: file.cfg.content changes",
    );
    t.ok(&["apply", "--auto-approve"], 0);
    assert_ne!(pane_pid(&t), first);
}

#[test]
fn for_each_instances_name_their_own_trigger_with_each_key() {
    let t = Ctx::new();
    let toml = |a: &str| {
        format!(
            r#"[stack]
name = "triggers"

[file.cfg]
for_each = {{ a = {{ v = "{a}" }}, b = {{ v = "1" }} }}
path = "cfg-${{each.key}}.txt"
content = "${{each.value.v}}"

[file.copy]
for_each = ["a", "b"]
path = "copy-${{each.key}}.txt"
content = "x"
lifecycle = {{ replace_triggered_by = ["file.cfg[\"${{each.key}}\"]"] }}
"#
        )
    };
    t.write("claw.toml", &toml("1"));
    t.ok(&["apply", "--auto-approve"], 0);
    t.ok(&["plan", "--detailed-exitcode"], 0);
    // Only `a`'s source changes: only `a`'s copy is replaced.
    t.write("claw.toml", &toml("2"));
    let plan = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(
        &plan.stdout,
        "replace_triggered_by: file.cfg[\"a\"] changes",
    );
    assert!(!plan.stdout.contains("file.copy[\"b\"]"), "{}", plan.stdout);
    says(&plan.stdout, "1 to update, 1 to replace");
    t.ok(&["apply", "--auto-approve"], 0);
    t.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn bad_triggers_are_located_with_a_hint() {
    let t = Ctx::new();
    let cases = [
        (
            "[\"file.cgf\"]",
            "tmux_session.gw: replace_triggered_by: unknown resource file.cgf",
            "did you mean `file.cfg`?",
        ),
        (
            "[\"file.cfg[\\\"x\\\"]\"]",
            "replace_triggered_by: no instance file.cfg[\"x\"]",
            "instances are: file.cfg",
        ),
        (
            "[\"file.cfg.contnet\"]",
            "file.cfg has no attribute `contnet`",
            "did you mean `content`?",
        ),
        (
            "[\"tmux_session.gw\"]",
            "tmux_session.gw cannot trigger its own replacement",
            "",
        ),
        (
            "[\"nonsense\"]",
            "`nonsense` is not a resource address",
            "hint: write",
        ),
        (
            "\"file.cfg\"",
            "`replace_triggered_by` must be a list of addresses",
            "",
        ),
    ];
    for (trigger, error, hint) in cases {
        t.write("claw.toml", &stack(&t, "v1", trigger));
        let o = t.ok(&["validate"], 1);
        says(&o.stderr, error);
        says(&o.stderr, "claw.toml:13:");
        says(&o.stderr, hint);
    }
    // `replace_triggered_by` is a known lifecycle key; a typo is not.
    t.write(
        "claw.toml",
        &stack(&t, "v1", "[\"file.cfg\"]").replace("replace_triggered_by", "replace_triggerd_by"),
    );
    let o = t.ok(&["validate"], 1);
    says(&o.stderr, "did you mean `replace_triggered_by`?");
}
