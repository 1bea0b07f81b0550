//! The runner seam: everything the host provider does on a host goes through
//! a [`Runner`], which runs one POSIX `sh` script (with bytes on its stdin) and
//! returns stdout, stderr and the exit code. The local runner spawns `sh -c`;
//! the SSH runner opens a channel on one shared connection.
//!
//! Invariants:
//! - **Scripts are POSIX sh** and avoid GNU-only flags (no `stat -c`, no
//!   `sha256sum`, no `readlink -f`), so they behave the same on Linux and macOS.
//! - **No secret is ever in a script**: a script is a command line (`sh -c
//!   SCRIPT` here, the remote `sh -c` over SSH), which every user of that host
//!   can read in the process list. Secret values travel on stdin, through
//!   [`Runner::run_with_secrets`], into shell variables that the script reads
//!   with the `read` builtin; the output comes back redacted of them.

use async_trait::async_trait;
use claw_provider::Diagnostic;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// What a script printed and how it exited.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code; `-1` when the process was killed by a signal.
    pub code: i32,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

/// Runs POSIX sh scripts on one host.
#[async_trait]
pub trait Runner: Send + Sync {
    /// `local` or `dev@mac-mini:22`, for messages.
    fn target(&self) -> String;
    /// True for the machine claw runs on (relative paths resolve from the
    /// folder of `claw.toml`); false for SSH hosts (relative to the login folder).
    fn is_local(&self) -> bool;
    /// True when files can be read with the filesystem API of this process
    /// instead of a script (the local runner): no process per file.
    fn native_fs(&self) -> bool {
        false
    }
    /// Runs `script` with `sh`, feeding `stdin`. An `Err` means the script
    /// could not be run at all (host unreachable, auth failed, timeout); a
    /// script that ran and failed is an `Ok` with a non-zero `code`.
    async fn run(&self, script: &str, stdin: &[u8]) -> Result<Output, Diagnostic>;
    /// Counters for `claw -v`.
    fn counters(&self) -> Vec<(String, u64)>;
    /// Runs `script` with secret values that never appear on a command line:
    /// they go first on the script's stdin (before `stdin`), and the script
    /// finds each in the shell variable it is named by (`read` is a builtin:
    /// no process sees the value in its arguments). Whatever the script
    /// prints comes back with `secrets.redact` replaced by `(sensitive)`.
    async fn run_with_secrets(
        &self,
        script: &str,
        secrets: &Secrets<'_>,
        stdin: &[u8],
    ) -> Result<Output, Diagnostic> {
        let (script, input) = secrets.wrap(script, stdin)?;
        let mut out = self.run(&script, &input).await?;
        if !secrets.redact.is_empty() {
            let clean = |b: &[u8]| {
                claw_provider::value::redact_all(
                    &String::from_utf8_lossy(b),
                    secrets.redact.iter().copied(),
                )
                .into_bytes()
            };
            out.stdout = clean(&out.stdout);
            out.stderr = clean(&out.stderr);
        }
        Ok(out)
    }
}

/// Secret values for one script (see [`Runner::run_with_secrets`]).
#[derive(Default)]
pub struct Secrets<'a> {
    /// `(shell variable, value)`: the script reads `value` in `$VARIABLE`.
    pub vars: Vec<(&'a str, &'a str)>,
    /// The secret values to cut out of the script's output.
    pub redact: Vec<&'a str>,
}

/// Reads one value framed by [`Secrets::wrap`] from stdin into the variable
/// named `$1`: a line count, then the lines. Builtins only.
const SECRET_READER: &str = r#"claw_read() {
  IFS= read -r claw_n || return 1
  claw_v=; claw_i=0
  while [ "$claw_i" -lt "$claw_n" ]; do
    IFS= read -r claw_l || return 1
    if [ "$claw_i" -eq 0 ]; then claw_v=$claw_l; else claw_v="$claw_v
$claw_l"; fi
    claw_i=$((claw_i + 1))
  done
  eval "$1=\$claw_v"
}
"#;

impl Secrets<'_> {
    /// The script with a prelude reading every variable, and the stdin that
    /// carries the values ahead of `stdin`.
    fn wrap(&self, script: &str, stdin: &[u8]) -> Result<(String, Vec<u8>), Diagnostic> {
        if self.vars.is_empty() {
            return Ok((script.to_string(), stdin.to_vec()));
        }
        let mut pre = String::from(SECRET_READER);
        let mut input = Vec::new();
        for (var, value) in &self.vars {
            debug_assert!(
                value.len() < 8 || !script.contains(value),
                "a secret value is in the script text"
            );
            if value.contains('\0') {
                return Err(Diagnostic::error(format!(
                    "the value for ${var} contains a NUL byte, which a shell cannot hold"
                )));
            }
            pre.push_str(&format!(
                "claw_read {var} || {{ echo 'claw: the secret values did not arrive on stdin' >&2; exit 125; }}\n"
            ));
            let lines: Vec<&str> = value.split('\n').collect();
            input.extend_from_slice(format!("{}\n", lines.len()).as_bytes());
            for l in lines {
                input.extend_from_slice(l.as_bytes());
                input.push(b'\n');
            }
        }
        pre.push_str("unset claw_n claw_v claw_i claw_l\n");
        input.extend_from_slice(stdin);
        Ok((format!("{pre}{script}"), input))
    }
}

/// Runs scripts on this machine with `sh -c`.
pub struct LocalRunner {
    pub command_timeout: Duration,
    commands: AtomicU64,
}

impl LocalRunner {
    pub fn new(command_timeout: Duration) -> LocalRunner {
        LocalRunner {
            command_timeout,
            commands: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl Runner for LocalRunner {
    fn target(&self) -> String {
        "local".into()
    }
    fn is_local(&self) -> bool {
        true
    }
    fn native_fs(&self) -> bool {
        true
    }
    async fn run(&self, script: &str, stdin: &[u8]) -> Result<Output, Diagnostic> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            Diagnostic::error(format!("cannot start `sh` on the local host: {e}"))
                .with_hint("claw needs a POSIX shell at `sh` in PATH")
        })?;
        let mut pipe = child.stdin.take();
        let input = stdin.to_vec();
        let writer = tokio::spawn(async move {
            if let Some(p) = pipe.as_mut() {
                // A script that does not read its stdin closes the pipe: ignore EPIPE.
                let _ = p.write_all(&input).await;
                let _ = p.shutdown().await;
            }
            drop(pipe);
        });
        let out = match tokio::time::timeout(self.command_timeout, child.wait_with_output()).await {
            Ok(r) => r.map_err(|e| Diagnostic::error(format!("local command failed: {e}")))?,
            Err(_) => {
                return Err(Diagnostic::error(format!(
                    "a command on the local host did not finish within {}s",
                    self.command_timeout.as_secs()
                ))
                .with_hint("check the command; a [host.NAME] without `address` runs locally with its own `command_timeout`"))
            }
        };
        let _ = writer.await;
        Ok(Output {
            stdout: out.stdout,
            stderr: out.stderr,
            code: out.status.code().unwrap_or(-1),
        })
    }
    fn counters(&self) -> Vec<(String, u64)> {
        vec![(
            "local commands".into(),
            self.commands.load(Ordering::Relaxed),
        )]
    }
}

/// Quotes `s` for sh: `'...'` with embedded quotes escaped.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Quotes a path for sh, expanding a leading `~/` (or a lone `~`) to the
/// remote `$HOME` at run time: `~/x y` becomes `"$HOME"/'x y'`.
pub fn sh_path(p: &str) -> String {
    if p == "~" {
        "\"$HOME\"".into()
    } else if let Some(rest) = p.strip_prefix("~/") {
        if rest.is_empty() {
            "\"$HOME\"/".into()
        } else {
            format!("\"$HOME\"/{}", sh_quote(rest))
        }
    } else {
        sh_quote(p)
    }
}

/// The path a path attribute names on this machine: `~/` is `$HOME`.
pub fn local_path(p: &str) -> PathBuf {
    let home = || {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
    };
    if p == "~" {
        home()
    } else if let Some(rest) = p.strip_prefix("~/") {
        home().join(rest)
    } else {
        PathBuf::from(p)
    }
}

/// Resolves a path attribute for a runner: `~/` stays for the host to expand;
/// a relative path on the local host resolves from the folder of `claw.toml`.
pub fn host_path(runner: &dyn Runner, base_dir: &std::path::Path, p: &str) -> String {
    if p.starts_with('/') || p == "~" || p.starts_with("~/") || !runner.is_local() {
        p.to_string()
    } else {
        let joined: PathBuf = base_dir.join(p);
        joined.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("/a/b"), "/a/b");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_path("~/x y"), "\"$HOME\"/'x y'");
        assert_eq!(sh_path("~"), "\"$HOME\"");
    }

    #[tokio::test]
    async fn secrets_reach_the_script_on_stdin_and_leave_redacted() {
        let r = LocalRunner::new(Duration::from_secs(30));
        let multi = "line 1\n 'quoted' $HOME `x` \\n\n\ntrailing\n";
        let secrets = Secrets {
            vars: vec![("A", "hunter2"), ("B", multi), ("C", "")],
            redact: vec!["hunter2"],
        };
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("b");
        let script = format!(
            "printf '%s|' \"$A\"; printf '%s' \"$B\" > {}; printf '[%s]' \"$C\"; cat",
            sh_quote(&f.to_string_lossy())
        );
        let out = r
            .run_with_secrets(&script, &secrets, b"rest of stdin")
            .await
            .unwrap();
        assert!(out.ok(), "{}", out.stderr_str());
        assert_eq!(out.stdout_str(), "(sensitive)|[]rest of stdin");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), multi);
        let nul = Secrets {
            vars: vec![("A", "a\0b")],
            redact: vec![],
        };
        assert!(r.run_with_secrets("true", &nul, b"").await.is_err());
    }
}
