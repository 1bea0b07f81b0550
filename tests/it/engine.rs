//! End-to-end CLI tests of the engine on `file` resources in temp folders.

use crate::common::Ctx;

const BASE: &str = r#"
[stack]
name = "files"

[vars]
greeting = "hello"

[file.readme]
path = "out/README.md"
content = "${vars.greeting} world\nsecond line\n"

[file.agent]
for_each = ["dev", "test"]
path = "out/agents/${each.key}.txt"
content = "agent ${each.key}, see ${file.readme.path}\n"
mode = "0600"
"#;

#[test]
fn apply_then_no_changes_then_drift_then_converge() {
    let t = Ctx::new();
    t.write("claw.toml", BASE);
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        o.stdout
            .contains("Plan: 3 to create, 0 to update, 0 to replace, 0 to delete."),
        "{}",
        o.stdout
    );
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(t.read("out/README.md"), "hello world\nsecond line\n");
    assert_eq!(
        t.read("out/agents/dev.txt"),
        "agent dev, see out/README.md\n"
    );
    let o = t.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(o.stdout.starts_with("No changes."), "{}", o.stdout);

    // Drift by hand: the plan shows a unified diff and exits 2.
    t.write("out/README.md", "hello world\nedited by hand\n");
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(o.stdout.contains("~ file.readme"), "{}", o.stdout);
    assert!(
        o.stdout.contains("content changed outside claw"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("-edited by hand"), "{}", o.stdout);
    assert!(o.stdout.contains("+second line"), "{}", o.stdout);
    assert!(
        o.stdout.contains("Plan: 0 to create, 1 to update"),
        "{}",
        o.stdout
    );
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(t.read("out/README.md"), "hello world\nsecond line\n");
    t.ok(&["plan", "--detailed-exitcode"], 0);

    // A file deleted by hand is planned for creation again.
    std::fs::remove_file(t.path("out/agents/test.txt")).unwrap();
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(o.stdout.contains("+ file.agent[\"test\"]"), "{}", o.stdout);
    assert!(
        o.stdout.contains("create (deleted outside claw)"),
        "{}",
        o.stdout
    );
}

#[test]
fn removed_resource_is_deleted_and_destroy_removes_all() {
    let t = Ctx::new();
    t.write("claw.toml", BASE);
    t.ok(&["apply", "--auto-approve"], 0);
    // Drop "test" from for_each.
    t.write(
        "claw.toml",
        &BASE.replace(r#"["dev", "test"]"#, r#"["dev"]"#),
    );
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(o.stdout.contains("- file.agent[\"test\"]"), "{}", o.stdout);
    assert!(
        o.stdout.contains("delete (not in configuration)"),
        "{}",
        o.stdout
    );
    t.ok(&["apply", "--auto-approve"], 0);
    assert!(!t.exists("out/agents/test.txt"));
    assert!(t.exists("out/agents/dev.txt"));

    let o = t.ok(&["plan", "--destroy"], 0);
    assert!(
        o.stdout
            .contains("Plan: 0 to create, 0 to update, 0 to replace, 2 to delete."),
        "{}",
        o.stdout
    );
    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(!t.exists("out/agents/dev.txt"));
    assert!(!t.exists("out/README.md"));
    assert_eq!(t.state()["resources"].as_object().unwrap().len(), 0);
    let o = t.ok(&["state", "list"], 0);
    assert_eq!(o.stdout, "");
}

#[test]
fn prevent_destroy_blocks_destroy_and_removal() {
    let t = Ctx::new();
    let cfg = r#"
[stack]
name = "keep"

[file.precious]
path = "precious.txt"
content = "keep me"
lifecycle = { prevent_destroy = true }
"#;
    t.write("claw.toml", cfg);
    t.ok(&["apply", "--auto-approve"], 0);
    let o = t.ok(&["destroy", "--auto-approve"], 1);
    assert!(
        o.stderr.contains("prevent_destroy forbids this delete"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("hint:"), "{}", o.stderr);
    assert!(t.exists("precious.txt"));
    // Removing it from the configuration is refused too (the state remembers).
    t.write("claw.toml", "[stack]\nname = \"keep\"\n");
    let o = t.ok(&["plan"], 1);
    assert!(o.stderr.contains("file.precious"), "{}", o.stderr);
    assert!(t.exists("precious.txt"));
}

#[test]
fn a_failure_skips_dependents_and_a_rerun_converges() {
    let t = Ctx::new();
    t.write(
        "claw.toml",
        r#"
[stack]
name = "partial"

[file.blocked]
path = "blocker/inner.txt"
content = "cannot be written while blocker is a file"

[file.dependent]
path = "dependent.txt"
content = "after ${file.blocked.path}"

[file.independent]
path = "independent.txt"
content = "fine"
"#,
    );
    // A regular file where a folder must go: the write fails.
    t.write("blocker", "I am a file");
    let o = t.ok(&["apply", "--auto-approve"], 1);
    assert!(
        o.stdout.contains("1 done, 1 failed, 1 skipped"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("skipped: file.dependent (depends on file.blocked, which failed)"),
        "{}",
        o.stdout
    );
    assert!(o.stderr.contains("file.blocked"), "{}", o.stderr);
    assert!(t.exists("independent.txt"));
    assert!(!t.exists("dependent.txt"));
    let st = t.state();
    let res = st["resources"].as_object().unwrap();
    assert_eq!(res.keys().collect::<Vec<_>>(), vec!["file.independent"]);
    // Fix the cause; a rerun converges.
    std::fs::remove_file(t.path("blocker")).unwrap();
    let o = t.ok(&["apply", "--auto-approve"], 0);
    assert!(
        o.stdout.contains("2 done, 0 failed, 0 skipped"),
        "{}",
        o.stdout
    );
    t.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn concurrent_apply_fails_naming_the_holder() {
    let t = Ctx::new();
    // The first apply blocks reading a FIFO while it holds the lock.
    let fifo = t.path("slow.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path in our temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    t.write(
        "claw.toml",
        r#"
[stack]
name = "locked"

[file.slow]
path = "slow.txt"
source = "slow.fifo"
"#,
    );
    let mut first = t
        .command(&["apply", "--auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the lock file appears.
    let lock = t.path(".claw/state.json.lock");
    for _ in 0..200 {
        if lock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(lock.exists(), "the first apply took the lock");
    let second = t.ok(&["apply", "--auto-approve"], 1);
    assert!(
        second.stderr.contains("locked by another run"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("running `apply`"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("claw force-unlock"),
        "{}",
        second.stderr
    );
    // Release the first one: feed the FIFO each time it is opened (claw
    // may read a source more than once) until the first apply exits.
    let status = loop {
        if let Some(st) = first.try_wait().unwrap() {
            break st;
        }
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
        {
            use std::io::Write;
            let _ = f.write_all(b"slow content\n");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success());
    assert_eq!(t.read("slow.txt"), "slow content\n");
    assert!(!lock.exists(), "the lock is released");
}

#[test]
fn force_unlock_shows_the_holder() {
    let t = Ctx::new();
    t.write("claw.toml", "[stack]\nname = \"unlock\"\n");
    t.write(
        ".claw/state.json.lock",
        r#"{"id":"x","pid":999999,"host":"elsewhere","user":"ci","command":"apply","created":"2026-01-01T00:00:00Z"}"#,
    );
    let o = t.ok(&["plan"], 0);
    assert!(o.stdout.starts_with("No changes"));
    let o = t.ok(&["apply", "--auto-approve"], 1);
    assert!(o.stderr.contains("pid 999999 on elsewhere"), "{}", o.stderr);
    let o = t.ok(&["force-unlock"], 0);
    assert!(
        o.stdout.contains("held by pid 999999 on elsewhere"),
        "{}",
        o.stdout
    );
    t.ok(&["apply", "--auto-approve"], 0);
}

#[test]
fn stale_saved_plan_is_refused_and_changes_nothing() {
    let t = Ctx::new();
    t.write("claw.toml", BASE);
    t.ok(&["apply", "--auto-approve"], 0);
    t.write("claw.toml", &BASE.replace("hello", "hi"));
    t.ok(&["plan", "--out", "plan.json"], 0);
    // Someone edits the file between plan and apply.
    t.write("out/README.md", "edited in between\n");
    let o = t.ok(&["apply", "plan.json"], 1);
    assert!(
        o.stderr
            .contains("file.readme: the live object changed since the plan was made"),
        "{}",
        o.stderr
    );
    assert_eq!(t.read("out/README.md"), "edited in between\n");
    // A fresh plan applies exactly.
    t.ok(&["plan", "--out", "plan2.json"], 0);
    let o = t.ok(&["apply", "plan2.json"], 0);
    assert!(o.stdout.contains("1 done"), "{}", o.stdout);
    assert_eq!(t.read("out/README.md"), "hi world\nsecond line\n");
    // Applying the same plan again: the state moved on.
    let o = t.ok(&["apply", "plan2.json"], 1);
    assert!(o.stderr.contains("the plan is stale"), "{}", o.stderr);
}

#[test]
fn saved_plan_from_another_config_or_stack_is_refused() {
    let t = Ctx::new();
    t.write("claw.toml", BASE);
    t.ok(&["plan", "--out", "plan.json"], 0);
    t.write("claw.toml", &BASE.replace("hello", "bonjour"));
    let o = t.ok(&["apply", "plan.json"], 1);
    assert!(
        o.stderr.contains("error: claw.toml changed since the plan"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains("file.readme: `content` would differ from the plan"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("nothing was changed"), "{}", o.stderr);
    assert!(!t.exists("out/README.md"));
    t.write(
        "claw.toml",
        &BASE.replace("name = \"files\"", "name = \"other\""),
    );
    let o = t.ok(&["apply", "plan.json"], 1);
    assert!(
        o.stderr.contains("the plan is for stack `files`"),
        "{}",
        o.stderr
    );
    assert!(!t.exists("out/README.md"));
}

#[test]
fn apply_without_tty_needs_auto_approve() {
    let t = Ctx::new();
    t.write("claw.toml", BASE);
    let o = t.ok(&["apply"], 1);
    assert!(o.stderr.contains("--auto-approve"), "{}", o.stderr);
    assert!(!t.exists("out/README.md"));
    let o = t.ok(&["destroy"], 0);
    assert!(o.stdout.contains("No changes"), "{}", o.stdout);
}

#[test]
fn secrets_never_leak() {
    let secret = "s3cr3t-T0KEN-value-4242";
    let t = Ctx::new().env("CLAW_TEST_TOKEN", secret);
    t.write(
        "claw.toml",
        r#"
[stack]
name = "secret"

[file.token]
path = "token.txt"
content = { env = "CLAW_TEST_TOKEN" }
mode = "0600"

[file.config]
path = "config.json"
content = "{\"gateway\": \"ws://gw\"}\n"
sensitive = true

[file.uses]
path = "uses.txt"
content = "token file at ${file.token.path}"
"#,
    );
    let mut outputs = Vec::new();
    for f in ["human", "markdown", "json"] {
        outputs.push(t.ok(&["plan", "--format", f], 0).all());
    }
    t.ok(&["plan", "--out", "plan.json"], 0);
    outputs.push(t.ok(&["apply", "plan.json"], 0).all());
    assert_eq!(t.read("token.txt"), secret);
    outputs.push(t.ok(&["plan", "--detailed-exitcode"], 0).all());
    outputs.push(t.ok(&["show"], 0).all());
    outputs.push(t.ok(&["show", "--format", "json"], 0).all());
    outputs.push(t.ok(&["state", "show", "file.token"], 0).all());
    outputs.push(t.ok(&["show", "plan.json", "--format", "json"], 0).all());
    outputs.push(t.read("plan.json"));
    outputs.push(t.read(".claw/state.json"));
    // Change the secret: the plan says so without showing either value.
    let t = t.env("CLAW_TEST_TOKEN", "another-S3CRET-value");
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        o.stdout.contains("(sensitive value changed)"),
        "{}",
        o.stdout
    );
    outputs.push(o.all());
    outputs.push(t.ok(&["apply", "--auto-approve", "-v"], 0).all());
    outputs.push(t.ok(&["destroy", "--auto-approve", "-v"], 0).all());
    outputs.push(t.read(".claw/state.json"));
    if let Ok(b) = std::fs::read_to_string(t.path(".claw/state.json.backup")) {
        outputs.push(b);
    }
    for (i, o) in outputs.iter().enumerate() {
        assert!(!o.contains(secret), "output {i} leaks the secret:\n{o}");
        assert!(
            !o.contains("another-S3CRET-value"),
            "output {i} leaks the new secret:\n{o}"
        );
        assert!(
            !o.contains("ws://gw"),
            "output {i} leaks sensitive file content:\n{o}"
        );
    }
}

#[test]
fn missing_secret_env_fails_before_anything_changes() {
    let t = Ctx::new();
    t.write(
        "claw.toml",
        "[stack]\nname = \"s\"\n\n[file.a]\npath = \"a.txt\"\ncontent = \"a\"\n\n[file.t]\npath = \"t.txt\"\ncontent = { env = \"CLAW_TEST_SURELY_UNSET\" }\n",
    );
    let o = t.ok(&["apply", "--auto-approve"], 1);
    assert!(
        o.stderr
            .contains("environment variable `CLAW_TEST_SURELY_UNSET` is not set"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("claw.toml:10:"), "{}", o.stderr);
    assert!(
        o.stderr.contains("hint: export CLAW_TEST_SURELY_UNSET="),
        "{}",
        o.stderr
    );
    assert!(!t.exists("a.txt"));
}

#[test]
fn targets_include_dependencies() {
    let t = Ctx::new();
    t.write("claw.toml", BASE);
    let o = t.ok(&["plan", "--target", "file.agent[\"dev\"]"], 0);
    assert!(o.stdout.contains("file.readme"), "{}", o.stdout);
    assert!(o.stdout.contains("file.agent[\"dev\"]"), "{}", o.stdout);
    assert!(!o.stdout.contains("file.agent[\"test\"]"), "{}", o.stdout);
    t.ok(
        &["apply", "--auto-approve", "--target", "file.agent[\"dev\"]"],
        0,
    );
    assert!(t.exists("out/agents/dev.txt"));
    assert!(!t.exists("out/agents/test.txt"));
    // Destroy of a target includes its dependents.
    t.ok(&["apply", "--auto-approve"], 0);
    let o = t.ok(&["destroy", "--auto-approve", "--target", "file.readme"], 0);
    assert!(o.stdout.contains("3 done"), "{}", o.stdout);
}

#[test]
fn vars_from_cli_and_env() {
    let t = Ctx::new().env("CLAW_VAR_greeting", "from-env");
    t.write("claw.toml", BASE);
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(t.read("out/README.md"), "from-env world\nsecond line\n");
    t.ok(
        &["apply", "--auto-approve", "--var", "greeting=from-cli"],
        0,
    );
    assert_eq!(t.read("out/README.md"), "from-cli world\nsecond line\n");
}

#[test]
fn state_commands_and_graph() {
    let t = Ctx::new();
    t.write("claw.toml", BASE);
    t.ok(&["apply", "--auto-approve"], 0);
    let o = t.ok(&["state", "list"], 0);
    assert_eq!(
        o.stdout,
        "file.agent[\"dev\"]\tout/agents/dev.txt\nfile.agent[\"test\"]\tout/agents/test.txt\nfile.readme\tout/README.md\n"
    );
    let o = t.ok(&["graph"], 0);
    assert!(
        o.stdout
            .contains("\"file.agent[\\\"dev\\\"]\" -> \"file.readme\";"),
        "{}",
        o.stdout
    );
    let o = t.ok(&["state", "rm", "file.readme"], 0);
    assert!(o.stdout.contains("not touched"));
    assert!(t.exists("out/README.md"));
    let o = t.ok(&["state", "show", "file.readm"], 1);
    assert!(
        o.stderr.contains("did you mean `file.readme`?") || o.stderr.contains("did you mean"),
        "{}",
        o.stderr
    );
    // Import it back.
    let o = t.ok(&["import", "file.readme", "out/README.md"], 0);
    assert!(o.stdout.contains("Imported file.readme"), "{}", o.stdout);
    t.ok(&["plan", "--detailed-exitcode"], 0);
}

/// Refresh makes each desired value against the state; the plan reuses it
/// only where every reference resolves alike. A renamed upstream file
/// changes its dependents' planned content (the state still holds the old
/// path), in the plan and on disk, in one apply.
#[test]
fn a_changed_reference_is_planned_from_its_planned_value() {
    let t = Ctx::new();
    let cfg = |a: &str| {
        format!(
            r#"
[stack]
name = "refs"

[file.a]
path = "out/{a}"
content = "a\n"

[file.b]
path = "out/b.txt"
content = "a is at ${{file.a.path}}\n"

[file.c]
path = "out/c.txt"
content = "b says: ${{file.b.content}}"
"#
        )
    };
    t.write("claw.toml", &cfg("a1.txt"));
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(t.read("out/c.txt"), "b says: a is at out/a1.txt\n");
    t.ok(&["plan", "--detailed-exitcode"], 0);

    t.write("claw.toml", &cfg("a2.txt"));
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(o.stdout.contains("+a is at out/a2.txt"), "{}", o.stdout);
    assert!(
        o.stdout.contains("+b says: a is at out/a2.txt"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("Plan: 0 to create, 2 to update, 1 to replace, 0 to delete."),
        "{}",
        o.stdout
    );
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(t.read("out/b.txt"), "a is at out/a2.txt\n");
    assert_eq!(t.read("out/c.txt"), "b says: a is at out/a2.txt\n");
    let o = t.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(o.stdout.starts_with("No changes."), "{}", o.stdout);
}
