//! Files on a host: one probe reads many files, writes are atomic and private
//! from the first byte.
//!
//! On this machine ([`Runner::native_fs`]) everything is done with the file
//! system API of this process, without any process. On another host, one
//! script per call:
//! - **Read**: every path is classified with `[ -f ]` / `[ -r ]` / `[ -e ]`
//!   (builtins), then ONE `ls -ldLn` over all regular files gives modes and
//!   sizes and ONE `cat` streams every content, framed by those sizes: a
//!   handful of processes whatever the number of files (POSIX: no `stat -c`).
//! - **Write**: the content on stdin, into a temporary file in the target's
//!   folder created exclusively (`set -C`, so O_EXCL) under a umask that gives
//!   it its final mode, then `chmod` (only for x and special bits) and `mv`
//!   over the target: `cat` and `mv`, two processes, for a usual file.

use crate::runner::{local_path, sh_path, Runner};
use claw_provider::Diagnostic;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
    for (c, x, set, unset) in [(b[3], 0o100, 0o4100, 0o4000), (b[6], 0o010, 0o2010, 0o2000)] {
        m |= match c {
            b'x' => x,
            b's' => set,
            b'S' => unset,
            _ => 0,
        };
    }
    m |= match b[9] {
        b'x' => 0o001,
        b't' => 0o1001,
        b'T' => 0o1000,
        _ => 0,
    };
    Some(m)
}

/// Paths per `ls` / `cat` pair (command lines stay far below `ARG_MAX`).
const BATCH: usize = 400;

/// One batch: reads paths from stdin up to an empty line; prints a status
/// line per path (`F <path>`, `M`, `D`, `U`), `L`, the `ls -ldLn` lines of
/// the `F` files (sorted by name, as POSIX says `ls` sorts its operands),
/// `C`, their contents back to back in input order, and `\nE\n`.
const BATCH_SCRIPT: &str = "LC_ALL=C; export LC_ALL\n\
unset BLOCK_SIZE LS_BLOCK_SIZE QUOTING_STYLE TIME_STYLE\n\
batch() {\n\
\x20 set --\n\
\x20 while IFS= read -r p && [ -n \"$p\" ]; do\n\
\x20   case $p in '~') p=$HOME ;; '~/'*) p=$HOME/${p#'~/'} ;; -*) p=./$p ;; esac\n\
\x20   if [ -f \"$p\" ]; then\n\
\x20     if [ -r \"$p\" ]; then printf 'F %s\\n' \"$p\"; set -- \"$@\" \"$p\"; else printf 'U\\n'; fi\n\
\x20   elif [ -e \"$p\" ]; then printf 'D\\n'; else printf 'M\\n'; fi\n\
\x20 done\n\
\x20 printf 'L\\n'\n\
\x20 if [ $# -gt 0 ]; then ls -ldLn -- \"$@\"; fi\n\
\x20 printf 'C\\n'\n\
\x20 if [ $# -gt 0 ]; then cat -- \"$@\"; fi\n\
\x20 printf '\\nE\\n'\n\
}\n";

/// Why a batched read could not be used.
#[derive(Debug, PartialEq)]
enum Unusable {
    /// A file changed between `ls` and `cat`: read again.
    Changed,
    /// `ls` printed something unexpected: read file by file.
    Unexpected,
}

/// Reads many files with one script (one round trip), or natively here.
pub async fn read_files(
    runner: &dyn Runner,
    paths: &[String],
) -> Result<Vec<FileProbe>, Diagnostic> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    if runner.native_fs() {
        return Ok(probe_all_local(paths));
    }
    if let Some(p) = paths.iter().find(|p| p.contains('\n') || p.is_empty()) {
        return Err(
            Diagnostic::error(format!("the path {p:?} is empty or contains a newline"))
                .with_hint("rename the file"),
        );
    }
    for _ in 0..2 {
        match read_batched(runner, paths).await? {
            Ok(v) => return Ok(v),
            Err(Unusable::Changed) => continue,
            Err(Unusable::Unexpected) => break,
        }
    }
    read_one_by_one(runner, paths).await
}

async fn read_batched(
    runner: &dyn Runner,
    paths: &[String],
) -> Result<Result<Vec<FileProbe>, Unusable>, Diagnostic> {
    let chunks: Vec<&[String]> = paths.chunks(BATCH).collect();
    let mut script = String::from(BATCH_SCRIPT);
    let mut input = Vec::new();
    for c in &chunks {
        script.push_str("batch\n");
        for p in *c {
            input.extend_from_slice(p.as_bytes());
            input.push(b'\n');
        }
        input.push(b'\n');
    }
    let out = runner.run(&script, &input).await?;
    if !out.ok() {
        return Err(read_error(runner, &out));
    }
    let counts: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
    Ok(parse_batched(&out.stdout, &counts))
}

fn read_error(runner: &dyn Runner, out: &crate::runner::Output) -> Diagnostic {
    Diagnostic::error(format!(
        "reading files on {} failed (exit {})",
        runner.target(),
        out.code
    ))
    .with_detail(out.stderr_str())
}

/// A read position in a script's output.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn line(&mut self) -> Option<&'a [u8]> {
        let rest = self.buf.get(self.pos..)?;
        let n = rest.iter().position(|&b| b == b'\n')?;
        self.pos += n + 1;
        Some(&rest[..n])
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }
}

/// Splits the output of [`BATCH_SCRIPT`] (`counts`: paths per batch).
fn parse_batched(out: &[u8], counts: &[usize]) -> Result<Vec<FileProbe>, Unusable> {
    let mut c = Cursor { buf: out, pos: 0 };
    let mut res = Vec::new();
    for &k in counts {
        // Status lines; the `F` ones name the files ls and cat read.
        let mut names: Vec<(usize, &[u8])> = Vec::new();
        for _ in 0..k {
            let l = c.line().ok_or(Unusable::Unexpected)?;
            res.push(match l {
                b"M" => FileProbe::Missing,
                b"D" => FileProbe::NotAFile,
                b"U" => FileProbe::Unreadable,
                _ if l.starts_with(b"F ") => {
                    names.push((res.len(), &l[2..]));
                    FileProbe::Missing // filled in below
                }
                _ => return Err(Unusable::Unexpected),
            });
        }
        if c.line() != Some(b"L") {
            return Err(Unusable::Unexpected);
        }
        let mut ls = Vec::new();
        loop {
            match c.line().ok_or(Unusable::Unexpected)? {
                b"C" => break,
                l => ls.push(l),
            }
        }
        if ls.len() != names.len() {
            return Err(Unusable::Changed); // a file went away in between
        }
        let mut sorted: Vec<usize> = (0..names.len()).collect();
        sorted.sort_by(|a, b| names[*a].1.cmp(names[*b].1));
        let mut meta = vec![(0u32, 0usize); names.len()];
        for (l, &i) in ls.iter().zip(&sorted) {
            meta[i] = parse_ls_line(l, names[i].1).ok_or(Unusable::Unexpected)?;
        }
        for ((idx, _), (mode, size)) in names.iter().zip(meta) {
            let content = c.take(size).ok_or(Unusable::Changed)?.to_vec();
            res[*idx] = FileProbe::File(FileData { content, mode });
        }
        if c.take(3) != Some(b"\nE\n") {
            return Err(Unusable::Changed);
        }
    }
    Ok(res)
}

/// `(mode, size)` of one `ls -ldLn` line, which must end with ` NAME`.
fn parse_ls_line(l: &[u8], name: &[u8]) -> Option<(u32, usize)> {
    let head = l.strip_suffix(name)?.strip_suffix(b" ")?;
    let head = std::str::from_utf8(head).ok()?;
    let mut f = head.split_ascii_whitespace();
    let mode = parse_ls_mode(f.next()?)?;
    let size = f.nth(3)?.parse().ok()?;
    Some((mode, size))
}

/// The fallback read: a record per file (`F <ls mode> <size>`, the bytes),
/// sizes taken right before each `cat`.
async fn read_one_by_one(
    runner: &dyn Runner,
    paths: &[String],
) -> Result<Vec<FileProbe>, Diagnostic> {
    let script = "LC_ALL=C; export LC_ALL\n\
         while IFS= read -r p; do\n\
         \x20 case $p in '~') p=$HOME ;; '~/'*) p=$HOME/${p#'~/'} ;; esac\n\
         \x20 if [ -f \"$p\" ]; then\n\
         \x20   if [ -r \"$p\" ]; then\n\
         \x20     m=$(ls -ldL \"$p\" | cut -c1-10); s=$(wc -c < \"$p\" | tr -d ' ')\n\
         \x20     printf 'F %s %s\\n' \"$m\" \"$s\"; cat \"$p\"; printf '\\n'\n\
         \x20   else printf 'U\\n'; fi\n\
         \x20 elif [ -e \"$p\" ]; then printf 'D\\n'\n\
         \x20 else printf 'M\\n'; fi\n\
         done\n";
    let mut input = paths.join("\n").into_bytes();
    input.push(b'\n');
    let out = runner.run(script, &input).await?;
    if !out.ok() {
        return Err(read_error(runner, &out));
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

/// Parses one record printed by [`read_one_by_one`] from `buf` at `*pos`.
fn parse_probe_record(buf: &[u8], pos: &mut usize) -> Result<FileProbe, String> {
    let line_end = buf[*pos..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| *pos + i)
        .ok_or("truncated probe output")?;
    let line = String::from_utf8_lossy(&buf[*pos..line_end]).into_owned();
    *pos = line_end + 1;
    let bad = || format!("unexpected probe line {line:?}");
    match line.as_bytes().first() {
        Some(b'M') => Ok(FileProbe::Missing),
        Some(b'D') => Ok(FileProbe::NotAFile),
        Some(b'U') => Ok(FileProbe::Unreadable),
        Some(b'F') => {
            let mut parts = line.split(' ').skip(1);
            let mode = parts.next().and_then(parse_ls_mode).ok_or_else(bad)?;
            let size: usize = parts
                .next()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(bad)?;
            let content = buf
                .get(*pos..*pos + size)
                .ok_or("truncated file content in probe output")?
                .to_vec();
            *pos += size + 1;
            Ok(FileProbe::File(FileData { content, mode }))
        }
        _ => Err(bad()),
    }
}

/// Probes a path on this machine without a shell.
fn probe_local(path: &Path) -> FileProbe {
    // Open first and stat the open file: two system calls fewer than a
    // stat by path then a read by path. O_NONBLOCK: opening a FIFO must not
    // wait for a writer (it is then "not a file", as a folder is).
    let open = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let mut f = match open {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileProbe::Missing,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return FileProbe::Unreadable,
        // A socket, a path through a file, ...: say what stat says.
        Err(_) => {
            return match std::fs::metadata(path) {
                Ok(m) if !m.is_file() => FileProbe::NotAFile,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => FileProbe::Unreadable,
                Err(_) => FileProbe::Missing,
                Ok(_) => FileProbe::Unreadable,
            }
        }
    };
    let m = match f.metadata() {
        Ok(m) if !m.is_file() => return FileProbe::NotAFile,
        Ok(m) => m,
        Err(_) => return FileProbe::Unreadable,
    };
    match read_regular(&mut f, m.len() as usize) {
        Ok(content) => FileProbe::File(FileData {
            content,
            mode: m.permissions().mode() & 0o7777,
        }),
        Err(_) => FileProbe::Unreadable,
    }
}

/// The content of an open regular file of `len` bytes (by `fstat`), in one
/// `read` when its size holds: asked for one byte more and given exactly
/// `len`, the file ends there, so the `read` returning 0 that
/// `read_to_end` adds is not needed. Anything else (a file that grew or
/// shrank meanwhile, a `/proc` file that says 0 bytes) is read until a
/// `read` returns 0.
fn read_regular(f: &mut std::fs::File, len: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; len + 1];
    let mut filled = 0;
    loop {
        match f.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled == len && buf.len() == len + 1 {
                    break;
                }
                if filled == buf.len() {
                    buf.resize(buf.len() * 2, 0);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// [`probe_local`] for every path, on several threads when there are many:
/// a refresh of 20,000 files is a loop of system calls (open, stat, read,
/// close), 14 % of the plan on one thread when the files are cached, and
/// waits on the disk when they are not — more threads than cores keep
/// several reads in flight then (20,000 files out of the page cache, 2
/// cores: 2.1–3.6 s with 2 threads, see docs/benchmarks.md).
fn probe_all_local(paths: &[String]) -> Vec<FileProbe> {
    claw_provider::par::in_chunks(paths, 8, 1024, |c| {
        c.iter().map(|p| probe_local(&local_path(p))).collect()
    })
}

/// Creates `path` exclusively (O_CREAT | O_EXCL: an existing file or a
/// planted link is refused, never opened) with `mode` from the first byte
/// (the umask can only take bits away).
pub fn create_exclusive(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .open(path)
}

/// Creates a new temporary file for `name` in `dir` with
/// [`create_exclusive`]; the caller sets the exact mode before renaming.
/// Without a mode: the umask default of a new file.
pub fn create_temp(
    dir: &Path,
    name: &str,
    mode: Option<u32>,
) -> std::io::Result<(std::fs::File, PathBuf)> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut cut = name.len().min(100);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    loop {
        let tmp = dir.join(format!(
            ".{}.claw-tmp.{}.{}",
            &name[..cut],
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        match create_exclusive(&tmp, mode.unwrap_or(0o666)) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes a file on this machine atomically: parent folders created, the
/// bytes into [`create_temp`], the exact mode set, renamed over `path`.
/// Without `mode` an existing file keeps its mode (and, where allowed, its
/// owner); a new one gets the umask default.
pub fn write_local(path: &Path, content: &[u8], mode: Option<u32>) -> Result<(), String> {
    let existing = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(format!("{} is a folder", path.display())),
        Ok(m) => m.is_file().then_some(m),
        Err(_) => None,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let final_mode = mode.or(existing.as_ref().map(|m| m.permissions().mode() & 0o7777));
    // The folder usually exists: create it only when the temp file cannot be.
    let (mut f, tmp) = match create_temp(dir, &name, final_mode) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create the folder {}: {e}", dir.display()))?;
            create_temp(dir, &name, final_mode)
        }
        r => r,
    }
    .map_err(|e| format!("cannot write to the folder {}: {e}", dir.display()))?;
    let done = (|| {
        f.write_all(content)?;
        if let Some(m) = &existing {
            // Keeps the owner when allowed (as root); otherwise the new file is ours.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
        }
        if let Some(m) = final_mode {
            f.set_permissions(std::fs::Permissions::from_mode(m))?;
        }
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    done.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {}: {e}", path.display())
    })
}

/// Writes `content` to `path` atomically (see the module comment). `mode`
/// (permission bits) is set when given; otherwise an existing file keeps its
/// mode and a new one gets the umask default.
pub async fn write_file(
    runner: &dyn Runner,
    path: &str,
    content: &[u8],
    mode: Option<u32>,
) -> Result<(), Diagnostic> {
    let failed = |detail: String| {
        Diagnostic::error(format!("cannot write {path} on {}", runner.target()))
            .with_detail(detail)
            .with_hint(
                "check that the login user may write to that folder (permissions, read-only file system)",
            )
    };
    if runner.native_fs() {
        let (p, bytes) = (local_path(path), content.to_vec());
        return tokio::task::spawn_blocking(move || write_local(&p, &bytes, mode))
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(failed);
    }
    let create = match mode {
        // A umask that leaves exactly the final permission bits: a file the
        // shell creates gets 0666 of them, so `chmod` only for x and special bits.
        Some(m) => format!(
            "umask {:03o}\n\
             cat > \"$t\" || fail \"cannot write to the folder $d\"\n{}",
            !m & 0o777,
            if m & 0o7111 != 0 {
                format!("chmod {m:o} \"$t\" || fail \"cannot set mode {m:04o}\"\n")
            } else {
                String::new()
            }
        ),
        // Keep the mode (and owner) of the file there: copy it into our own
        // private temp with `cp -p`, then overwrite the content.
        None => "if [ -f \"$p\" ]; then\n\
                 \x20 umask 077\n\
                 \x20 { : > \"$t\" && cp -p \"$p\" \"$t\" && cat >| \"$t\"; } || fail \"cannot write to the folder $d\"\n\
                 else cat > \"$t\" || fail \"cannot write to the folder $d\"; fi\n"
            .to_string(),
    };
    let script = format!(
        "fail() {{ rm -f \"$t\" 2>/dev/null; echo \"$1\" >&2; exit 1; }}\n\
         p={q}\n\
         case \"$p\" in */*) d=${{p%/*}}; [ -n \"$d\" ] || d=/ ;; *) d=. ;; esac\n\
         b=${{p##*/}}\n\
         t=\"$d/.$b.claw-tmp.$$\"\n\
         [ -d \"$p\" ] && fail \"$p is a folder\"\n\
         [ -d \"$d\" ] || mkdir -p \"$d\" || fail \"cannot create the folder $d\"\n\
         if [ -e \"$t\" ] || [ -h \"$t\" ]; then rm -f \"$t\"; fi\n\
         set -C\n\
         {create}\
         mv -f \"$t\" \"$p\" || fail \"cannot replace $p\"\n",
        q = sh_path(path)
    );
    let out = runner.run(&script, content).await?;
    if !out.ok() {
        return Err(failed(out.stderr_str()));
    }
    Ok(())
}

/// Removes a file; a missing file is not an error.
pub async fn remove_file(runner: &dyn Runner, path: &str) -> Result<(), Diagnostic> {
    let failed = |detail: String| {
        Diagnostic::error(format!("cannot remove {path} on {}", runner.target()))
            .with_detail(detail)
            .with_hint("check that the login user may write to that folder")
    };
    if runner.native_fs() {
        let p = local_path(path);
        return match std::fs::symlink_metadata(&p) {
            Err(_) => Ok(()),
            Ok(_) if std::fs::metadata(&p).is_ok_and(|m| m.is_dir()) => {
                Err(failed(format!("{path} is a folder")))
            }
            Ok(_) => match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed(e.to_string())),
                _ => Ok(()),
            },
        };
    }
    let script = format!(
        "p={}\nif [ -d \"$p\" ]; then echo \"$p is a folder\" >&2; exit 1; fi\nrm -f \"$p\"\n",
        sh_path(path)
    );
    let out = runner.run(&script, b"").await?;
    if !out.ok() {
        return Err(failed(out.stderr_str()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::LocalRunner;
    use std::time::Duration;

    /// One `read` when the size holds; the whole content whatever the size
    /// says (a `/proc` file says 0 bytes).
    #[test]
    fn regular_files_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 1, 4095, 4096, 100_000] {
            let p = dir.path().join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            let mut f = std::fs::File::open(&p).unwrap();
            assert_eq!(read_regular(&mut f, len).unwrap(), data, "{len} bytes");
            // A size that is out of date either way still reads it all.
            for said in [len / 2, len + 10] {
                let mut f = std::fs::File::open(&p).unwrap();
                assert_eq!(
                    read_regular(&mut f, said).unwrap(),
                    data,
                    "{len} bytes, said {said}"
                );
            }
        }
        let proc = std::path::Path::new("/proc/self/mountinfo");
        let mut f = std::fs::File::open(proc).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0);
        let got = read_regular(&mut f, 0).unwrap();
        assert!(got.len() > 100, "{} bytes", got.len());
        assert!(got.ends_with(b"\n"));
    }

    #[test]
    fn ls_modes() {
        assert_eq!(parse_ls_mode("-rw-r--r--"), Some(0o644));
        assert_eq!(parse_ls_mode("-rwsr-x--T"), Some(0o5750));
        assert_eq!(parse_ls_mode("-rw-------@"), Some(0o600));
        assert_eq!(parse_ls_mode("-rw"), None);
    }

    #[test]
    fn ls_lines_and_batches_parse() {
        assert_eq!(
            parse_ls_line(b"-rw-r-----  1 501  20  12 Dec  1  2025 /a b/c", b"/a b/c"),
            Some((0o640, 12))
        );
        assert_eq!(
            parse_ls_line(b"-rw-r----- 1 0 0 12 Dec 1 09:05 /x", b"/y"),
            None
        );
        // Two batches: ls lines sorted by name, contents in input order.
        let out = b"F b\nM\nF a\nL\n-rw------- 1 0 0 1 Dec 1 09:05 a\n-rw-r--r-- 1 0 0 3 Dec 1 09:05 b\nC\nxyzA\nE\nD\nL\nC\n\nE\n";
        let got = parse_batched(out, &[3, 1]).unwrap();
        let file = |c: &[u8], mode| {
            FileProbe::File(FileData {
                content: c.to_vec(),
                mode,
            })
        };
        assert_eq!(
            got,
            vec![
                file(b"xyz", 0o644),
                FileProbe::Missing,
                file(b"A", 0o600),
                FileProbe::NotAFile
            ]
        );
        // A file that grew between ls and cat.
        let grown = b"F a\nL\n-rw------- 1 0 0 1 Dec 1 09:05 a\nC\nAB\nE\n";
        assert_eq!(parse_batched(grown, &[1]), Err(Unusable::Changed));
        let odd = b"F a\nL\n-rw------- 1 0 0 1 Dec 1 09:05 'a'\nC\nA\nE\n";
        assert_eq!(parse_batched(odd, &[1]), Err(Unusable::Unexpected));
    }

    /// The local runner without its native file access: the scripts.
    struct Scripts(LocalRunner);
    #[async_trait::async_trait]
    impl Runner for Scripts {
        fn target(&self) -> String {
            "scripts".into()
        }
        fn is_local(&self) -> bool {
            true
        }
        async fn run(&self, s: &str, i: &[u8]) -> Result<crate::runner::Output, Diagnostic> {
            self.0.run(s, i).await
        }
        fn counters(&self) -> Vec<(String, u64)> {
            self.0.counters()
        }
    }

    #[tokio::test]
    async fn files_round_trip_natively_and_through_scripts() {
        let native = LocalRunner::new(Duration::from_secs(30));
        let scripts = Scripts(LocalRunner::new(Duration::from_secs(30)));
        for r in [&native as &dyn Runner, &scripts] {
            let dir = tempfile::tempdir().unwrap();
            let at = |rel: &str| dir.path().join(rel).to_string_lossy().into_owned();
            let p = at("a b/c/it's.txt");
            write_file(r, &p, b"hello\nworld", Some(0o600))
                .await
                .unwrap();
            write_file(r, &at("-dash"), b"", Some(0o4755))
                .await
                .unwrap();
            let got = read_files(r, &[p.clone(), at("nope"), at(""), at("-dash")])
                .await
                .unwrap();
            let file = |c: &[u8], mode| {
                FileProbe::File(FileData {
                    content: c.to_vec(),
                    mode,
                })
            };
            assert_eq!(got[0], file(b"hello\nworld", 0o600), "{}", r.target());
            assert_eq!(got[1], FileProbe::Missing);
            assert_eq!(got[2], FileProbe::NotAFile);
            assert_eq!(got[3], file(b"", 0o4755));
            // Without a mode, an existing file keeps its mode.
            write_file(r, &p, b"", None).await.unwrap();
            let got = read_files(r, std::slice::from_ref(&p)).await.unwrap();
            assert_eq!(got[0], file(b"", 0o600));
            // Many files in several batches, one script.
            let many: Vec<String> = (0..BATCH + 5).map(|i| at(&format!("m/{i}"))).collect();
            for (i, m) in many.iter().enumerate() {
                write_file(r, m, i.to_string().as_bytes(), None)
                    .await
                    .unwrap();
            }
            let before = r.counters()[0].1;
            let got = read_files(r, &many).await.unwrap();
            if r.target() == "scripts" {
                assert_eq!(r.counters()[0].1, before + 1, "one script");
            }
            for (i, g) in got.iter().enumerate() {
                assert!(matches!(g, FileProbe::File(f) if f.content == i.to_string().as_bytes()));
            }
            remove_file(r, &p).await.unwrap();
            remove_file(r, &p).await.unwrap();
            assert!(remove_file(r, &at("a b")).await.is_err(), "a folder");
            assert_eq!(read_files(r, &[p]).await.unwrap()[0], FileProbe::Missing);
            // No temporary files are left behind.
            let left: Vec<_> = std::fs::read_dir(dir.path().join("a b/c"))
                .unwrap()
                .collect();
            assert!(left.is_empty(), "{left:?}");
        }
    }

    #[test]
    fn temp_files_are_exclusive_and_have_their_final_mode_at_creation() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o640, 0o400] {
            let (f, tmp) = create_temp(dir.path(), "secret.env", Some(mode)).unwrap();
            let m = std::fs::metadata(&tmp).unwrap().permissions().mode() & 0o7777;
            // Before any byte is written: never more than the final mode
            // (the umask may only take bits away).
            assert_eq!(m & !mode, 0, "{m:o} at creation, final {mode:o}");
            assert_eq!(m & 0o077 & !mode, 0);
            drop(f);
            std::fs::remove_file(tmp).unwrap();
        }
        // O_EXCL: a link planted at the name is refused, its target untouched.
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "theirs").unwrap();
        let planted = dir.path().join(".x.claw-tmp");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let err = create_exclusive(&planted, 0o600).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "theirs");
    }
}
