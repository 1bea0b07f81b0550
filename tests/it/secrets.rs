//! End to end, through the claw binary: a 7-character secret in a file's
//! content and in a tmux session's environment leaves no trace — no clear
//! text, no SHA-1/SHA-256/SHA-512/MD5 hex digest, no base64 of it or of its
//! digests — in the state, its backup, anything else under `.claw/`, plan
//! files (`--out`, `--format json`) or claw's output; no process's command
//! line holds it; the session's environment does.

use crate::common::{require, which, Ctx};
use crate::host::TmuxGuard;
use std::io::Write;
use std::process::{Command, Stdio};

/// `tool` (sha256sum, base64, ...) over `input`: its first word.
fn tool(name: &str, input: &[u8]) -> String {
    let mut c = Command::new(name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    c.stdin.take().unwrap().write_all(input).unwrap();
    let out = c.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Every encoding of `secret` that must not be stored: hex digests and
/// base64 of the secret and of each raw digest (unpadded, so padded and
/// unpadded forms both match). Lower-cased hex; base64 as is.
fn traces(secret: &str) -> Vec<(String, String)> {
    let mut out = vec![
        ("clear text".to_string(), secret.to_string()),
        (
            "base64".to_string(),
            tool("base64", secret.as_bytes())
                .trim_end_matches('=')
                .to_string(),
        ),
    ];
    for d in ["md5sum", "sha1sum", "sha256sum", "sha512sum"] {
        let hex = tool(d, secret.as_bytes());
        let raw: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let b64 = tool("base64", &raw).trim_end_matches('=').to_string();
        out.push((format!("{d} hex"), hex));
        out.push((format!("{d} base64"), b64));
    }
    out
}

/// Fails naming the file and the kind of trace (never the secret itself).
fn assert_no_trace(what: &str, text: &str, secrets: &[&str]) {
    let lower = text.to_lowercase();
    for s in secrets {
        for (kind, t) in traces(s) {
            let found = if kind.contains("hex") {
                lower.contains(&t)
            } else {
                text.contains(&t)
            };
            assert!(!found, "{what} holds the secret's {kind}");
        }
    }
}

fn cmdlines_holding(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let b = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&b)
                .contains(needle)
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

const CONFIG: &str = r#"[stack]
name = "secrets-e2e"

[file.token]
path = "out/token"
content = { env = "CLAW_E2E_TOKEN" }

[tmux_session.agent]
socket = "tmux/e2e.sock"
env = { TOKEN = { env = "CLAW_E2E_TOKEN" }, MODE = "test" }
command = "sleep 100000"
"#;

#[test]
fn a_secret_leaves_no_digest_in_state_plans_or_command_lines() {
    let tools = [
        "tmux",
        "base64",
        "md5sum",
        "sha1sum",
        "sha256sum",
        "sha512sum",
    ];
    if !tools.iter().all(|t| require(t, which(t), "not installed")) {
        return;
    }
    let (first, second) = ("hK4w9Qz", "Tp2vX8m");
    let t = Ctx::new();
    t.write("claw.toml", CONFIG);
    let _tmux = TmuxGuard(t.path("tmux/e2e.sock"));
    let run = |secret: &str, args: &[&str]| {
        let mut c = t.command(args);
        c.env("CLAW_E2E_TOKEN", secret);
        let o = c.output().expect("run claw");
        let all = format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "claw {args:?}: {all}");
        all
    };
    let mut outputs = vec![run(first, &["-v", "apply", "--auto-approve"])];
    assert_eq!(t.read("out/token"), first);
    // Rotate the secret: plans with changes, saved and as JSON.
    outputs.push(run(second, &["-v", "plan", "--out", "plan.out"]));
    outputs.push(run(second, &["plan", "--format", "json"]));
    outputs.push(run(second, &["-v", "apply", "--auto-approve"]));
    assert_eq!(t.read("out/token"), second);
    outputs.push(run(second, &["-v", "plan", "--out", "noop.out"]));

    let mut files = vec!["plan.out".to_string(), "noop.out".to_string()];
    for e in std::fs::read_dir(t.path(".claw")).unwrap().flatten() {
        files.push(format!(".claw/{}", e.file_name().to_string_lossy()));
    }
    assert!(files.iter().any(|f| f.ends_with(".backup")), "{files:?}");
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(t.path(f)).unwrap()).into_owned();
        assert_no_trace(f, &text, &[first, second]);
    }
    for (i, o) in outputs.iter().enumerate() {
        assert_no_trace(&format!("the output of run {i}"), o, &[first, second]);
    }
    // The state keeps keyed digests only.
    let state = t.read(".claw/state.json");
    assert!(state.contains("hmac-sha256:"), "{state}");
    assert!(!state.contains("\"sha256:"), "{state}");

    // Where the secret belongs, and nowhere else.
    let env = Command::new("tmux")
        .arg("-S")
        .arg(t.path("tmux/e2e.sock"))
        .args(["show-environment", "-t", "=agent:", "TOKEN"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&env.stdout).trim(),
        format!("TOKEN={second}")
    );
    assert_eq!(
        cmdlines_holding(second),
        Vec::<String>::new(),
        "pids whose command line holds the secret"
    );
    run(second, &["destroy", "--auto-approve"]);
}

#[test]
fn a_state_from_an_older_claw_is_recorded_again_with_keyed_digests() {
    let t = Ctx::new().env("CLAW_E2E_TOKEN", "hK4w9Qz");
    t.write(
        "claw.toml",
        "[stack]\nname = \"migrate\"\n\n[file.token]\npath = \"out/token\"\ncontent = { env = \"CLAW_E2E_TOKEN\" }\n",
    );
    t.ok(&["apply", "--auto-approve"], 0);
    // What older versions wrote: the plain SHA-256 of the content.
    let mut st = t.state();
    let private = &mut st["resources"]["file.token"]["private"];
    *private = serde_json::json!({ "sha256": tool("sha256sum", b"hK4w9Qz") });
    t.write(
        ".claw/state.json",
        &serde_json::to_string_pretty(&st).unwrap(),
    );
    let plan = t.ok(&["plan", "--detailed-exitcode"], 2).stdout;
    assert!(plan.contains("digests"), "{plan}");
    assert!(plan.contains("written by an older claw"), "{plan}");
    t.ok(&["apply", "--auto-approve"], 0);
    let state = t.read(".claw/state.json");
    assert_no_trace("the migrated state", &state, &["hK4w9Qz"]);
    assert!(!state.contains("\"sha256\""), "{state}");
    t.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn an_out_of_range_mode_is_an_error_at_its_line() {
    let t = Ctx::new();
    t.write(
        "claw.toml",
        "[stack]\nname = \"m\"\n\n[file.a]\npath = \"a\"\ncontent = \"x\"\nmode = 99999999999999999999\n",
    );
    let out = t.ok(&["validate"], 1);
    let err = out.all();
    assert!(err.contains("claw.toml:7:8"), "{err}");
    assert!(
        err.contains("`mode`") && err.contains("out of range"),
        "{err}"
    );
    assert!(!t.exists("a"));
}
