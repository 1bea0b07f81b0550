//! The shared test context: a temp folder, the claw binary, output filters.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Ctx {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl Ctx {
    pub fn new() -> Ctx {
        Ctx {
            dir: tempfile::Builder::new()
                .prefix("claw-it-")
                .tempdir()
                .expect("temp dir"),
            env: Vec::new(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_claw"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("NO_COLOR")
            // Optional in examples/clawker: tests see it unset.
            .env_remove("ANTHROPIC_AUTH_TOKEN")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        for (k, _) in std::env::vars() {
            if k.starts_with("CLAW_VAR_") {
                c.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn claw(&self, args: &[&str]) -> Out {
        let o: Output = self.command(args).output().expect("run claw");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs claw and asserts the exit code, showing the output when it differs.
    pub fn ok(&self, args: &[&str], code: i32) -> Out {
        let o = self.claw(args);
        assert_eq!(
            o.code, code,
            "claw {args:?} exited {} (wanted {code})\n--- stdout\n{}\n--- stderr\n{}",
            o.code, o.stdout, o.stderr
        );
        o
    }

    /// Replaces the temp folder's path with `[TMP]`.
    pub fn normalize(&self, s: &str) -> String {
        s.replace(&self.dir.path().display().to_string(), "[TMP]")
    }

    pub fn state(&self) -> serde_json::Value {
        serde_json::from_str(&self.read(".claw/state.json")).expect("state json")
    }
}

/// Whether a service is there; when it is not, skips — except under CI=true,
/// where a skip is a failure.
pub fn require(what: &str, available: bool, why: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is required under CI=true but unavailable: {why}");
    }
    eprintln!("SKIPPED: {what} unavailable: {why}");
    false
}

/// Asserts that `out` contains `what`, showing `out` when it does not.
pub fn says(out: &str, what: &str) {
    assert!(out.contains(what), "{what:?} is not in:\n{out}");
}

pub fn which(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(bin).is_file()))
        .unwrap_or(false)
}

/// The marked sections of one part (`host`, `kubernetes`, `tailscale`) of
/// `examples/clawdbot-fleet/claw.toml`: its variables and its body, markers
/// excluded.
pub fn fleet_part(part: &str) -> (String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/clawdbot-fleet/claw.toml");
    let text = std::fs::read_to_string(path).expect("read the clawdbot-fleet example");
    let between = |start: &str, end: &str| -> String {
        let s = text
            .find(start)
            .unwrap_or_else(|| panic!("no {start:?} marker"));
        let e = text[s..]
            .find(end)
            .map(|e| s + e)
            .unwrap_or_else(|| panic!("no {end:?} marker"));
        let body = &text[s..e];
        body[body.find('\n').map(|i| i + 1).unwrap_or(0)..].to_string()
    };
    (
        between(
            &format!("# ─── {part} part: variables"),
            &format!("# ─── end of {part} part: variables"),
        ),
        between(
            &format!("# ═══ {part} part"),
            &format!("# ═══ end of {part} part"),
        ),
    )
}
