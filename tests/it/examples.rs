//! Every example validates, and the host-only file of clawdbot-fleet stays
//! identical to the host part of its claw.toml.

use crate::common::Ctx;
use std::path::Path;

const SECRETS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "BRAVE_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "GITHUB_TOKEN",
    "OPENAI_API_KEY",
    "TAILSCALE_API_KEY",
];

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn every_example_validates() {
    let mut t = Ctx::new();
    for s in SECRETS {
        t = t.env(s, "dummy-value-for-validate");
    }
    let mut seen = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let dir = entry.unwrap().path();
        for file in ["claw.toml", "host.toml"] {
            if !dir.join(file).exists() {
                continue;
            }
            let o = t.ok(&["-C", dir.to_str().unwrap(), "-f", file, "validate"], 0);
            assert!(
                o.stdout.contains("The configuration is valid"),
                "{}",
                o.stdout
            );
            seen += 1;
        }
    }
    assert!(seen >= 7, "examples found: {seen}");
}

fn section(text: &str, start: &str, end: &str) -> String {
    let s = text.find(start).unwrap_or_else(|| panic!("no {start:?}"));
    let e = text[s..]
        .find(end)
        .map(|e| s + e)
        .unwrap_or_else(|| panic!("no {end:?}"));
    text[s..e].to_string()
}

#[test]
fn host_toml_matches_the_host_part_of_claw_toml() {
    let dir = examples().join("clawdbot-fleet");
    let full = std::fs::read_to_string(dir.join("claw.toml")).unwrap();
    let host = std::fs::read_to_string(dir.join("host.toml")).unwrap();
    for (start, end) in [
        (
            "# ─── host part: variables",
            "# ─── end of host part: variables",
        ),
        ("# ═══ host part", "# ═══ end of host part"),
    ] {
        assert_eq!(
            section(&full, start, end),
            section(&host, start, end),
            "host.toml and claw.toml differ in {start:?}: copy the section over"
        );
    }
}
