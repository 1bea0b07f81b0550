//! The runner seam: everything the host provider does on a host goes through
//! a [`Runner`], which runs one POSIX `sh` script (with bytes on its stdin) and
//! returns stdout, stderr and the exit code. The local runner spawns `sh -c`;
//! the SSH runner opens a channel on one shared connection.
//!
//! Invariant: **scripts are POSIX sh** and avoid GNU-only flags (no `stat -c`,
//! no `sha256sum`, no `readlink -f`), so they behave the same on Linux and macOS.
//! File helpers ([`read_files`], [`write_file`], [`remove_file`]) are built on
//! `run`, so the local and SSH runners share one code path and one test matrix.

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

/// A regular file as read from a host.
#[derive(Debug, Clone, PartialEq)]
pub struct FileData {
    pub content: Vec<u8>,
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
}

/// What a probe found at a path.
#[derive(Debug, Clone, PartialEq)]
pub enum FileProbe {
    Missing,
    File(FileData),
    /// Something that is not a regular file (a folder, a socket).
    NotAFile,
    /// A file the login user cannot read.
    Unreadable,
}

/// Parses `-rw-r--r--` (the first 10 characters of `ls -l`) into mode bits.
pub fn parse_ls_mode(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    if b.len() < 10 {
        return None;
    }
    let mut m = 0u32;
    let bit = |c: u8, want: u8, v: u32| if c == want { v } else { 0 };
    m |= bit(b[1], b'r', 0o400) | bit(b[2], b'w', 0o200);
    m |= bit(b[4], b'r', 0o040) | bit(b[5], b'w', 0o020);
    m |= bit(b[7], b'r', 0o004) | bit(b[8], b'w', 0o002);
    match b[3] {
        b'x' => m |= 0o100,
        b's' => m |= 0o4100,
        b'S' => m |= 0o4000,
        _ => {}
    }
    match b[6] {
        b'x' => m |= 0o010,
        b's' => m |= 0o2010,
        b'S' => m |= 0o2000,
        _ => {}
    }
    match b[9] {
        b'x' => m |= 0o001,
        b't' => m |= 0o1001,
        b'T' => m |= 0o1000,
        _ => {}
    }
    Some(m)
}

/// The sh fragment that prints one file's probe record:
/// `F <ls mode> <size>\n<bytes>\n`, `M\n` (missing), `D\n` (not a regular
/// file) or `U\n` (unreadable).
pub fn probe_file_fragment(qpath: &str) -> String {
    format!(
        "p={qpath}\n\
         if [ -f \"$p\" ]; then\n\
         \x20 if [ -r \"$p\" ]; then\n\
         \x20   m=$(ls -ldL \"$p\" | cut -c1-10); s=$(wc -c < \"$p\" | tr -d ' ')\n\
         \x20   printf 'F %s %s\\n' \"$m\" \"$s\"; cat \"$p\"; printf '\\n'\n\
         \x20 else printf 'U\\n'; fi\n\
         elif [ -e \"$p\" ]; then printf 'D\\n'\n\
         else printf 'M\\n'; fi\n"
    )
}

/// Parses the records printed by [`probe_file_fragment`] from `buf` at `*pos`.
pub fn parse_probe_record(buf: &[u8], pos: &mut usize) -> Result<FileProbe, String> {
    let line_end = buf[*pos..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| *pos + i)
        .ok_or("truncated probe output")?;
    let line = String::from_utf8_lossy(&buf[*pos..line_end]).into_owned();
    *pos = line_end + 1;
    match line.as_bytes().first() {
        Some(b'M') => Ok(FileProbe::Missing),
        Some(b'D') => Ok(FileProbe::NotAFile),
        Some(b'U') => Ok(FileProbe::Unreadable),
        Some(b'F') => {
            let mut parts = line.split(' ');
            parts.next();
            let mode = parts
                .next()
                .and_then(parse_ls_mode)
                .ok_or_else(|| format!("unexpected probe line {line:?}"))?;
            let size: usize = parts
                .next()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| format!("unexpected probe line {line:?}"))?;
            if *pos + size + 1 > buf.len() {
                return Err("truncated file content in probe output".into());
            }
            let content = buf[*pos..*pos + size].to_vec();
            *pos += size + 1;
            Ok(FileProbe::File(FileData { content, mode }))
        }
        _ => Err(format!("unexpected probe line {line:?}")),
    }
}

/// Reads many files with one script (one round trip).
pub async fn read_files(
    runner: &dyn Runner,
    paths: &[String],
) -> Result<Vec<FileProbe>, Diagnostic> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    // This machine: read natively (no shell, no process per file).
    if runner.native_fs() {
        return Ok(paths.iter().map(|p| probe_local(p)).collect());
    }
    // Elsewhere: one script; the paths go on stdin, one per line, so the
    // script stays small however many files there are (an argument is capped
    // at 128 KiB on Linux).
    if let Some(p) = paths.iter().find(|p| p.contains('\n')) {
        return Err(
            Diagnostic::error(format!("the path {p:?} contains a newline"))
                .with_hint("rename the file"),
        );
    }
    let script = format!(
        "LC_ALL=C; export LC_ALL\n\
         probe() {{\n{}}}\n\
         while IFS= read -r p; do\n\
         \x20 case $p in '~') p=$HOME ;; '~/'*) p=$HOME/${{p#'~/'}} ;; esac\n\
         \x20 probe \"$p\"\n\
         done\n",
        probe_file_fragment("\"$1\"")
    );
    let mut input = paths.join("\n").into_bytes();
    input.push(b'\n');
    let out = runner.run(&script, &input).await?;
    if !out.ok() {
        return Err(Diagnostic::error(format!(
            "reading files on {} failed (exit {})",
            runner.target(),
            out.code
        ))
        .with_detail(out.stderr_str()));
    }
    let mut pos = 0;
    let mut res = Vec::with_capacity(paths.len());
    for p in paths {
        let r = parse_probe_record(&out.stdout, &mut pos).map_err(|e| {
            Diagnostic::error(format!("cannot read {p} on {}: {e}", runner.target()))
        })?;
        res.push(r);
    }
    Ok(res)
}

/// Probes a path on this machine without a shell.
fn probe_local(p: &str) -> FileProbe {
    use std::os::unix::fs::PermissionsExt;
    let path = match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(h)) => std::path::PathBuf::from(h).join(rest),
        _ if p == "~" => std::env::var_os("HOME").map(Into::into).unwrap_or_default(),
        _ => std::path::PathBuf::from(p),
    };
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileProbe::Missing,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => FileProbe::Unreadable,
        Err(_) => FileProbe::Missing,
        Ok(m) if !m.is_file() => FileProbe::NotAFile,
        Ok(m) => match std::fs::read(&path) {
            Ok(content) => FileProbe::File(FileData {
                content,
                mode: m.permissions().mode() & 0o7777,
            }),
            Err(_) => FileProbe::Unreadable,
        },
    }
}

/// Writes `content` to `path` atomically: parent folders are created, the
/// bytes go to a temporary file in the same folder which is then renamed over
/// the target. `mode` (permission bits) is set when given; otherwise an
/// existing file keeps its mode and a new one gets the umask default.
pub async fn write_file(
    runner: &dyn Runner,
    path: &str,
    content: &[u8],
    mode: Option<u32>,
) -> Result<(), Diagnostic> {
    let q = sh_path(path);
    let chmod = match mode {
        Some(m) => format!("chmod {m:o} \"$t\" || fail \"cannot set mode {m:04o}\"\n"),
        None => String::new(),
    };
    let script = format!(
        "fail() {{ rm -f \"$t\" 2>/dev/null; echo \"$1\" >&2; exit 1; }}\n\
         p={q}\n\
         case \"$p\" in */*) d=${{p%/*}}; [ -n \"$d\" ] || d=/ ;; *) d=. ;; esac\n\
         b=${{p##*/}}\n\
         t=\"$d/.$b.claw-tmp.$$\"\n\
         [ -d \"$p\" ] && fail \"$p is a folder\"\n\
         mkdir -p \"$d\" || fail \"cannot create the folder $d\"\n\
         if [ -f \"$p\" ]; then cp -p \"$p\" \"$t\" 2>/dev/null; fi\n\
         cat > \"$t\" || fail \"cannot write to the folder $d\"\n\
         {chmod}\
         mv -f \"$t\" \"$p\" || fail \"cannot replace $p\"\n"
    );
    let out = runner.run(&script, content).await?;
    if !out.ok() {
        return Err(Diagnostic::error(format!(
            "cannot write {path} on {}",
            runner.target()
        ))
        .with_detail(out.stderr_str())
        .with_hint(
            "check that the login user may write to that folder (permissions, read-only file system)",
        ));
    }
    Ok(())
}

/// Removes a file; a missing file is not an error.
pub async fn remove_file(runner: &dyn Runner, path: &str) -> Result<(), Diagnostic> {
    let script = format!(
        "p={}\nif [ -d \"$p\" ]; then echo \"$p is a folder\" >&2; exit 1; fi\nrm -f \"$p\"\n",
        sh_path(path)
    );
    let out = runner.run(&script, b"").await?;
    if !out.ok() {
        return Err(
            Diagnostic::error(format!("cannot remove {path} on {}", runner.target()))
                .with_detail(out.stderr_str())
                .with_hint("check that the login user may write to that folder"),
        );
    }
    Ok(())
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

    #[test]
    fn ls_modes() {
        assert_eq!(parse_ls_mode("-rw-r--r--"), Some(0o644));
        assert_eq!(parse_ls_mode("-rwsr-x--T"), Some(0o5750));
        assert_eq!(parse_ls_mode("-rw-------@"), Some(0o600));
        assert_eq!(parse_ls_mode("-rw"), None);
    }

    #[tokio::test]
    async fn local_roundtrip_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let r = LocalRunner::new(Duration::from_secs(30));
        let p = dir
            .path()
            .join("a b/c/it's.txt")
            .to_string_lossy()
            .into_owned();
        let missing = dir.path().join("nope").to_string_lossy().into_owned();
        write_file(&r, &p, b"hello\nworld", Some(0o600))
            .await
            .unwrap();
        let got = read_files(
            &r,
            &[
                p.clone(),
                missing,
                dir.path().to_string_lossy().into_owned(),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            got[0],
            FileProbe::File(FileData {
                content: b"hello\nworld".to_vec(),
                mode: 0o600
            })
        );
        assert_eq!(got[1], FileProbe::Missing);
        assert_eq!(got[2], FileProbe::NotAFile);
        // Without a mode, an existing file keeps its mode.
        write_file(&r, &p, b"", None).await.unwrap();
        let got = read_files(&r, std::slice::from_ref(&p)).await.unwrap();
        assert_eq!(
            got[0],
            FileProbe::File(FileData {
                content: vec![],
                mode: 0o600
            })
        );
        remove_file(&r, &p).await.unwrap();
        remove_file(&r, &p).await.unwrap();
        assert_eq!(read_files(&r, &[p]).await.unwrap()[0], FileProbe::Missing);
        // No temporary files are left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("a b/c"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
