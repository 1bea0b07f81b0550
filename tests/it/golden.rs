//! Golden tests of plan output in every format, determinism, and block locality.

use crate::common::Ctx;

const CFG: &str = r#"
[stack]
name = "golden"

[vars]
motd = "welcome"

[file.motd]
path = "out/motd.txt"
content = "${vars.motd}\nto the fleet\n"

[file.agent]
for_each = { dev = { branch = "sandbox/agent-dev" }, review = { branch = "sandbox/agent-review" } }
path = "out/agents/${each.key}.json"
content = "{\"branch\": \"${each.value.branch}\", \"motd\": \"${file.motd.path}\"}"
mode = "0640"

[file.old]
path = "out/old.txt"
content = "old"

[file.token]
path = "out/token"
content = { env = "GOLDEN_TOKEN" }
"#;

/// A stack with every kind of change: create, update (config and drift), delete, secret change.
fn scenario() -> Ctx {
    let t = Ctx::new().env("GOLDEN_TOKEN", "first-token");
    t.write("claw.toml", CFG);
    t.ok(&["apply", "--auto-approve"], 0);
    let t = t.env("GOLDEN_TOKEN", "second-token");
    let cfg = CFG
        .replace(
            "${vars.motd}\\nto the fleet",
            "${vars.motd}\\nto the whole fleet",
        )
        .replace(
            "[file.old]\npath = \"out/old.txt\"\ncontent = \"old\"\n",
            "[file.new]\npath = \"out/new.txt\"\ncontent = \"new\"\n",
        );
    t.write("claw.toml", &cfg);
    std::fs::set_permissions(
        t.path("out/agents/dev.json"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    t
}

fn redact_json(s: &str) -> String {
    let re = regex::Regex::new(r#""(config_hash|state_lineage|fingerprint)": "[^"]*""#).unwrap();
    let s = re.replace_all(s, "\"$1\": \"[redacted]\"").into_owned();
    // Keyed digests depend on the state's random salt.
    let re = regex::Regex::new(r#""\$sensitive": "(hmac-)?sha256:[0-9a-f]+""#).unwrap();
    let s = re
        .replace_all(&s, "\"$$sensitive\": \"[salted hash]\"")
        .into_owned();
    let re = regex::Regex::new(r#"hmac-sha256:[0-9a-f]{64}"#).unwrap();
    re.replace_all(&s, "hmac-sha256:[keyed digest]")
        .into_owned()
}

#[test]
fn plan_formats_golden() {
    let t = scenario();
    let human = t.ok(&["plan", "--detailed-exitcode"], 2).stdout;
    insta::assert_snapshot!("plan_human", human);
    let md = t.ok(&["plan", "--format", "markdown"], 0).stdout;
    insta::assert_snapshot!("plan_markdown", md);
    let json = t.ok(&["plan", "--format", "json"], 0).stdout;
    insta::assert_snapshot!("plan_json", redact_json(&json));
    // The saved plan renders the same way.
    t.ok(&["plan", "--out", "p.json"], 0);
    assert_eq!(t.ok(&["show", "p.json"], 0).stdout, human);
    assert_eq!(t.read("p.json"), json);
}

#[test]
fn plans_are_byte_identical_twice() {
    let t = scenario();
    for f in ["human", "markdown", "json"] {
        let a = t.ok(&["plan", "--format", f], 0).stdout;
        let b = t.ok(&["plan", "--format", f], 0).stdout;
        assert_eq!(a, b, "format {f} differs between two runs");
    }
}

fn fifty(changed: Option<usize>) -> String {
    let mut s = String::from("[stack]\nname = \"fifty\"\n");
    for i in 0..50 {
        let content = if Some(i) == changed {
            format!("resource {i}\\nchanged line\\n")
        } else {
            format!("resource {i}\\nline\\n")
        };
        s.push_str(&format!(
            "\n[file.r{i:02}]\npath = \"out/r{i:02}.txt\"\ncontent = \"{content}\"\n"
        ));
    }
    s
}

fn blocks(s: &str, sep: &str) -> Vec<String> {
    s.split(sep).map(str::to_string).collect()
}

#[test]
fn one_change_changes_one_block() {
    let t = Ctx::new();
    t.write("claw.toml", &fifty(None));
    let h1 = t.ok(&["plan"], 0).stdout;
    let m1 = t.ok(&["plan", "--format", "markdown"], 0).stdout;
    t.write("claw.toml", &fifty(Some(27)));
    let h2 = t.ok(&["plan"], 0).stdout;
    let m2 = t.ok(&["plan", "--format", "markdown"], 0).stdout;
    for (a, b, sep) in [(&h1, &h2, "\n\n"), (&m1, &m2, "</details>")] {
        let (ba, bb) = (blocks(a, sep), blocks(b, sep));
        assert_eq!(ba.len(), bb.len());
        let differing: Vec<usize> = (0..ba.len()).filter(|i| ba[*i] != bb[*i]).collect();
        assert_eq!(
            differing.len(),
            1,
            "exactly one block differs: {differing:?}"
        );
        assert!(
            bb[differing[0]].contains("file.r27"),
            "{}",
            bb[differing[0]]
        );
    }
    // The same holds once applied: one update block.
    t.write("claw.toml", &fifty(None));
    t.ok(&["apply", "--auto-approve"], 0);
    t.write("claw.toml", &fifty(Some(27)));
    let o = t.ok(&["plan"], 0).stdout;
    assert!(o.contains("~ file.r27"), "{o}");
    assert!(
        o.contains("Plan: 0 to create, 1 to update, 0 to replace, 0 to delete."),
        "{o}"
    );
}

#[test]
fn markdown_is_truncated_under_the_limit() {
    let t = Ctx::new();
    let mut s = String::from("[stack]\nname = \"big\"\n");
    let body = "x".repeat(60);
    for i in 0..600 {
        s.push_str(&format!("\n[file.r{i:03}]\npath = \"out/r{i:03}.txt\"\ncontent = \"{body}\\n{body}\\n{body}\\n\"\n"));
    }
    t.write("claw.toml", &s);
    let md = t.ok(&["plan", "--format", "markdown"], 0).stdout;
    assert!(md.len() < 65_000, "{} chars", md.len());
    assert!(md.contains("**Truncated:**"), "has a truncation note");
    assert!(md.contains("Plan: 600 to create"));
}
