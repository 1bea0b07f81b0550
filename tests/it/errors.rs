//! Bad input: each error names file:line:column, gives a hint where the fix
//! is knowable, never panics, and changes nothing.

use crate::common::{Ctx, Out};

/// Runs `claw args`: it must exit 1 without a panic, and stderr must hold
/// every `expect`.
pub fn fails(t: &Ctx, args: &[&str], expect: &[&str]) -> Out {
    let o = t.claw(args);
    assert_eq!(o.code, 1, "claw {args:?} should fail\n{}", o.all());
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    for e in expect {
        assert!(
            o.stderr.contains(e),
            "claw {args:?}: expected {e:?} in:\n{}",
            o.stderr
        );
    }
    o
}

/// Runs validate, plan and apply on `cfg`; all must fail the same way, and
/// nothing may be created.
fn bad(cfg: &str, expect: &[&str]) -> String {
    let t = Ctx::new();
    t.write("claw.toml", cfg);
    let mut first = String::new();
    for args in [
        &["validate"][..],
        &["plan"][..],
        &["apply", "--auto-approve"][..],
    ] {
        let o = fails(&t, args, expect);
        if first.is_empty() {
            first = o.stderr.clone();
        }
    }
    assert!(!t.exists("out"), "nothing is created");
    // A plan of a stack without state creates its empty state (lineage and
    // salt, nothing else), so that plans are repeatable; nothing more.
    if t.exists(".claw/state.json") {
        let st = t.state();
        assert_eq!(st["serial"], 0, "no state is written");
        assert_eq!(
            st["resources"],
            serde_json::json!({}),
            "no state is written"
        );
    }
    first
}

#[test]
fn toml_syntax_error() {
    bad(
        "[stack]\nname = \"x\"\n[file.a]\npath = \"out/a\ncontent = \"x\"\n",
        &["invalid TOML", "claw.toml:4:", "hint:"],
    );
}

#[test]
fn unknown_key_suggests_the_closest() {
    let e = bad(
        "[stack]\nname = \"x\"\n\n[file.a]\npath = \"out/a\"\ncontnet = \"x\"\n",
        &[
            "unknown key `contnet`",
            "claw.toml:6:1",
            "hint: did you mean `content`?",
        ],
    );
    assert!(e.contains("contnet = \"x\""), "shows the source line: {e}");
}

#[test]
fn wrong_value_type() {
    bad("[stack]\nname = \"x\"\n\n[file.a]\npath = \"out/a\"\ncontent = \"x\"\nsensitive = \"yes\"\n", &["sensitive", "claw.toml:7:13", "hint:"]);
}

#[test]
fn unknown_resource_type() {
    bad(
        "[stack]\nname = \"x\"\n\n[fiel.a]\npath = \"out/a\"\n",
        &[
            "unknown section `fiel`",
            "claw.toml:4:2",
            "hint: did you mean `file`?",
        ],
    );
}

#[test]
fn invalid_names() {
    bad(
        "[stack]\nname = \"x\"\n\n[file.\"a b\"]\npath = \"out/a\"\ncontent = \"\"\n",
        &["invalid resource name `a b`", "claw.toml:4:", "hint:"],
    );
    bad(
        "[stack]\nname = \"Bad_Name\"\n",
        &["invalid stack name", "claw.toml:2:8", "hint:"],
    );
}

#[test]
fn duplicate_address_from_for_each() {
    bad("[stack]\nname = \"x\"\n\n[file.a]\nfor_each = [\"k\", \"k\"]\npath = \"out/${each.key}\"\ncontent = \"\"\n", &["duplicate for_each key \"k\"", "claw.toml:5:18", "hint:"]);
}

#[test]
fn unknown_reference_and_attribute() {
    bad("[stack]\nname = \"x\"\n\n[file.a]\npath = \"out/a\"\ncontent = \"${file.b.path}\"\n\n[file.bb]\npath = \"out/b\"\ncontent = \"\"\n", &["unknown resource file.b", "claw.toml:6:11", "hint: did you mean `file.bb`?"]);
    bad("[stack]\nname = \"x\"\n\n[file.a]\npath = \"out/a\"\ncontent = \"${file.b.pth}\"\n\n[file.b]\npath = \"out/b\"\ncontent = \"\"\n", &["file.b has no attribute `pth`", "claw.toml:6:11", "hint: did you mean `path`?"]);
    bad(
        "[stack]\nname = \"x\"\n\n[file.a]\npath = \"out/${vars.nope}\"\ncontent = \"\"\n",
        &["unknown variable `nope`", "claw.toml:5:8", "hint:"],
    );
}

#[test]
fn reference_cycle_shows_the_path() {
    bad(
        "[stack]\nname = \"x\"\n\n[file.a]\npath = \"out/a\"\ncontent = \"${file.c.path}\"\n\n[file.b]\npath = \"out/b\"\ncontent = \"${file.a.path}\"\n\n[file.c]\npath = \"out/c\"\ncontent = \"\"\ndepends_on = [\"file.b\"]\n",
        &["dependency cycle: file.a -> file.c -> file.b -> file.a", "claw.toml:4:", "hint: break the cycle"],
    );
}

#[test]
fn unknown_host_or_provider_alias() {
    bad("[stack]\nname = \"x\"\n\n[host.mini]\naddress = \"127.0.0.1\"\n\n[file.a]\nhost = \"mac\"\npath = \"out/a\"\ncontent = \"\"\n", &["unknown host `mac`", "claw.toml:8:8", "hint:"]);
    bad("[stack]\nname = \"x\"\n\n[file.a]\nprovider = \"docker\"\npath = \"out/a\"\ncontent = \"\"\n", &["host resources take `host`, not `provider`", "claw.toml:5:1", "hint:"]);
}

#[test]
fn missing_env_for_a_secret() {
    let t = Ctx::new();
    t.write("claw.toml", "[stack]\nname = \"x\"\n\n[file.a]\npath = \"out/a\"\ncontent = { env = \"CLAW_SURELY_MISSING_VAR\" }\n");
    t.ok(&["validate"], 0);
    for args in [&["plan"][..], &["apply", "--auto-approve"][..]] {
        fails(
            &t,
            args,
            &[
                "`CLAW_SURELY_MISSING_VAR` is not set",
                "file.a content (claw.toml:6:19)",
                "hint: export CLAW_SURELY_MISSING_VAR=",
            ],
        );
    }
    assert!(!t.exists("out"), "nothing is created");
}

#[test]
fn malformed_secret_references() {
    bad("[stack]\nname = \"x\"\n\n[file.a]\npath = \"out/a\"\ncontent = { env = \"X\", optional = true }\n", &["`optional = true` applies only to an entry of a table", "claw.toml:6:24", "hint: remove `optional = true`"]);
    bad("[stack]\nname = \"x\"\n\n[tmux_session.t]\nenv = { A = { env = \"X\", optinal = true } }\n", &["unknown key `optinal` in a secret reference", "claw.toml:5:26", "hint: did you mean `optional`?"]);
    bad("[stack]\nname = \"x\"\n\n[file.a]\npath = \"out/a\"\ncontent = { env = \"X\", file = \"y\" }\n", &["not both", "claw.toml:6:13", "hint:"]);
    bad("[stack]\nname = \"x\"\n\n[file.a]\npath = \"out/a\"\ncontent = { env = \"X\", optional = \"yes\" }\n", &["`optional` must be true or false", "claw.toml:6:35", "hint:"]);
    bad("[stack]\nname = \"x\"\n\n[provider.tailnet]\ntype = \"tailscale\"\napi_key = { env = \"X\", optional = true }\n\n[tailscale_acl.a]\npolicy = {}\n", &["`optional = true` applies only to an entry of a table", "claw.toml:6:24"]);
}

#[test]
fn missing_stack_and_bad_vars() {
    bad(
        "[file.a]\npath = \"out/a\"\ncontent = \"\"\n",
        &["no [stack] table", "claw.toml:1:1", "hint:"],
    );
    let t = Ctx::new();
    t.write(
        "claw.toml",
        "[stack]\nname = \"x\"\n[vars]\nnamespace = \"a\"\n",
    );
    let o = t.ok(&["plan", "--var", "namespce=b"], 1);
    assert!(
        o.stderr.contains("did you mean `namespace`?"),
        "{}",
        o.stderr
    );
    let o = t.ok(&["plan", "--var", "novalue"], 1);
    assert!(o.stderr.contains("expected NAME=VALUE"), "{}", o.stderr);
}

#[test]
fn missing_config_file() {
    let t = Ctx::new();
    let o = t.ok(&["plan"], 1);
    assert!(o.stderr.contains("cannot read claw.toml"), "{}", o.stderr);
    assert!(o.stderr.contains("hint:"), "{}", o.stderr);
}

#[test]
fn corrupted_or_future_state_is_refused_and_kept() {
    let cfg = "[stack]\nname = \"x\"\n\n[file.a]\npath = \"out/a\"\ncontent = \"a\"\n";
    for (bytes, msg) in [
        ("{ this is not json", "is corrupted"),
        ("{\"format_version\": 99, \"lineage\": \"l\", \"serial\": 1, \"stack\": \"x\", \"salt\": \"s\", \"resources\": {}}", "format version 99, newer than this claw"),
    ] {
        let t = Ctx::new();
        t.write("claw.toml", cfg);
        t.write(".claw/state.json", bytes);
        for args in [&["plan"][..], &["apply", "--auto-approve"][..], &["destroy", "--auto-approve"][..]] {
            let o = t.ok(args, 1);
            assert!(o.stderr.contains(msg), "{}", o.stderr);
            assert!(o.stderr.contains("hint:"), "{}", o.stderr);
        }
        assert_eq!(t.read(".claw/state.json"), bytes, "the state file is untouched");
        assert!(!t.exists("out/a"));
        assert!(!t.exists(".claw/state.json.lock"), "the lock is released");
    }
}

#[test]
fn state_of_another_stack_is_refused() {
    let t = Ctx::new();
    t.write(
        "claw.toml",
        "[stack]\nname = \"one\"\n\n[file.a]\npath = \"out/a\"\ncontent = \"a\"\n",
    );
    t.ok(&["apply", "--auto-approve"], 0);
    t.write(
        "claw.toml",
        "[stack]\nname = \"two\"\n\n[file.a]\npath = \"out/a\"\ncontent = \"a\"\n",
    );
    let o = t.ok(&["plan"], 1);
    assert!(o.stderr.contains("belongs to stack `one`"), "{}", o.stderr);
}

#[test]
fn bad_plan_files() {
    let t = Ctx::new();
    t.write("claw.toml", "[stack]\nname = \"x\"\n");
    t.write("garbage.json", "not a plan");
    let o = t.ok(&["apply", "garbage.json"], 1);
    assert!(o.stderr.contains("is not a claw plan file"), "{}", o.stderr);
    t.write("future.json", "{\"format_version\": 7}");
    let o = t.ok(&["apply", "future.json"], 1);
    assert!(o.stderr.contains("plan format version 7"), "{}", o.stderr);
}
