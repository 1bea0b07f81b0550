//! The probes of a refresh start a fixed number of processes, whatever the
//! number of objects (issue 14): one `ls` and one `cat` for any number of
//! files, one `git` per repository, two `tmux` clients per socket. Every
//! external command a probe starts is counted by a logging shim put first on
//! PATH. And the file probe reads awkward names the same way through the
//! scripts (local `sh` and a real sshd) as natively.

mod common;
mod fixtures;
use claw_host::fileio::{read_files, FileData, FileProbe};
use claw_host::runner::{LocalRunner, Output, Runner};
use claw_provider::*;
use common::*;
use fixtures::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The commands a probe could start (every one is shimmed and counted).
const COMMANDS: &[&str] = &[
    "ls", "cat", "wc", "cut", "tr", "stat", "mkdir", "chmod", "mv", "rm", "cp", "git", "tmux",
    "readlink", "sed", "awk", "head", "basename", "dirname", "pwd", "test", "printf", "sh",
];

/// The local runner without native file access, with a shim per command
/// first on PATH that appends the command's name to `log`.
struct Counting {
    inner: LocalRunner,
    shims: PathBuf,
    log: PathBuf,
}

impl Counting {
    fn new(dir: &Path) -> Counting {
        let shims = dir.join("shims");
        std::fs::create_dir_all(&shims).unwrap();
        let log = dir.join("started.log");
        for c in COMMANDS {
            let real = sh(&format!("command -v {c} || true")).trim().to_string();
            if !real.starts_with('/') {
                continue; // not installed, or a builtin only
            }
            let shim = shims.join(c);
            std::fs::write(
                &shim,
                format!(
                    "#!/bin/sh\nprintf '%s\\n' {c} >> {}\nexec {} \"$@\"\n",
                    q(&log),
                    q(Path::new(&real))
                ),
            )
            .unwrap();
            sh(&format!("chmod +x {}", q(&shim)));
        }
        Counting {
            inner: LocalRunner::new(Duration::from_secs(60)),
            shims,
            log,
        }
    }

    /// The commands started since the last call, sorted.
    fn started(&self) -> Vec<String> {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    }
}

#[async_trait::async_trait]
impl Runner for Counting {
    fn target(&self) -> String {
        "counting".into()
    }
    fn is_local(&self) -> bool {
        true
    }
    async fn run(&self, script: &str, stdin: &[u8]) -> Result<Output, Diagnostic> {
        let script = format!("PATH={}:$PATH; export PATH\n{script}", q(&self.shims));
        self.inner.run(&script, stdin).await
    }
    fn counters(&self) -> Vec<(String, u64)> {
        self.inner.counters()
    }
}

fn file(content: &[u8], mode: u32) -> FileProbe {
    FileProbe::File(FileData {
        content: content.to_vec(),
        mode,
    })
}

/// Awkward names and kinds in `dir`: `(path, what a probe must find)`.
fn awkward(dir: &Path) -> Vec<(String, FileProbe)> {
    let at = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let w = |n: &str, c: &[u8], mode: u32| {
        std::fs::write(dir.join(n), c).unwrap();
        sh(&format!("chmod {mode:o} {}", q(&dir.join(n))));
    };
    w("with space.txt", b"a b\n", 0o644);
    w("it's \"quoted\".txt", b"q", 0o600);
    w("-starts-with-dash", b"-", 0o640);
    w("empty", b"", 0o644);
    w("$HOME `x` \\ *", b"literal", 0o644);
    w("no-newline-at-end", b"x\ny", 0o755);
    w("ünïcødé", "ü\n".as_bytes(), 0o644);
    std::fs::create_dir(dir.join("a folder")).unwrap();
    std::os::unix::fs::symlink(dir.join("with space.txt"), dir.join("link to file")).unwrap();
    std::os::unix::fs::symlink(dir.join("gone"), dir.join("dangling link")).unwrap();
    std::os::unix::fs::symlink(dir.join("a folder"), dir.join("link to folder")).unwrap();
    vec![
        (at("with space.txt"), file(b"a b\n", 0o644)),
        (at("it's \"quoted\".txt"), file(b"q", 0o600)),
        (at("-starts-with-dash"), file(b"-", 0o640)),
        (at("empty"), file(b"", 0o644)),
        (at("$HOME `x` \\ *"), file(b"literal", 0o644)),
        (at("no-newline-at-end"), file(b"x\ny", 0o755)),
        (at("ünïcødé"), file("ü\n".as_bytes(), 0o644)),
        (at("missing"), FileProbe::Missing),
        (at("a folder"), FileProbe::NotAFile),
        (at("link to file"), file(b"a b\n", 0o644)),
        (at("dangling link"), FileProbe::Missing),
        (at("link to folder"), FileProbe::NotAFile),
        // The same file twice.
        (at("empty"), file(b"", 0o644)),
    ]
}

async fn probes_awkward_names(r: &dyn Runner, dir: &Path) {
    let cases = awkward(dir);
    let paths: Vec<String> = cases.iter().map(|(p, _)| p.clone()).collect();
    let got = read_files(r, &paths).await.unwrap();
    for ((p, want), got) in cases.iter().zip(&got) {
        assert_eq!(got, want, "{p} on {}", r.target());
    }
    // A name with a newline cannot be framed by a line-based probe: a clear
    // error, not a wrong answer. On this machine it is read natively.
    let nl = dir.join("new\nline");
    std::fs::write(&nl, "n").unwrap();
    let nl = nl.to_string_lossy().into_owned();
    match read_files(r, std::slice::from_ref(&nl)).await {
        Ok(v) => {
            assert!(r.native_fs(), "{}", r.target());
            assert_eq!(v[0], file(b"n", 0o644));
        }
        Err(d) => {
            assert!(!r.native_fs());
            assert!(d.summary.contains("contains a newline"), "{d:?}");
            assert!(d.hint.is_some());
        }
    }
}

#[tokio::test]
async fn awkward_file_names_probe_alike_natively_through_sh_and_over_ssh() {
    let dir = tempfile::tempdir().unwrap();
    let native = local_runner();
    let d = dir.path().join("native");
    std::fs::create_dir(&d).unwrap();
    probes_awkward_names(native.as_ref(), &d).await;

    let counting = Counting::new(dir.path());
    let d = dir.path().join("sh");
    std::fs::create_dir(&d).unwrap();
    probes_awkward_names(&counting, &d).await;

    let Some(sshd) = Sshd::start() else { return };
    let d = dir.path().join("ssh");
    std::fs::create_dir(&d).unwrap();
    probes_awkward_names(sshd.runner().as_ref(), &d).await;
}

#[tokio::test]
async fn a_file_probe_starts_one_ls_and_one_cat_for_300_files() {
    let dir = tempfile::tempdir().unwrap();
    let r = Counting::new(dir.path());
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let mut paths = Vec::new();
    for i in 0..300 {
        let p = files.join(format!("f {i}.conf"));
        if i % 10 != 0 {
            std::fs::write(&p, format!("setting = {i}\n")).unwrap();
        }
        paths.push(p.to_string_lossy().into_owned());
    }
    r.started();
    let got = read_files(&r, &paths).await.unwrap();
    for (i, g) in got.iter().enumerate() {
        if i % 10 == 0 {
            assert_eq!(*g, FileProbe::Missing);
        } else {
            assert!(
                matches!(g, FileProbe::File(f) if f.content == format!("setting = {i}\n").as_bytes())
            );
        }
    }
    assert_eq!(
        r.started(),
        vec!["cat", "ls"],
        "one script, no process per file"
    );
    assert_eq!(r.counters()[0].1, 1, "one script");
}

#[tokio::test]
async fn worktree_and_tmux_probes_start_a_fixed_number_of_processes() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let counting = Arc::new(Counting::new(root));
    let repo = make_repo(root);
    let sock = root.join("tmux/probe.sock");
    let _guard = TmuxGuard(sock.clone());
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    let n = 12;
    for i in 0..n {
        sh(&format!(
            "git -C {} worktree add -q -b b{i} {} && tmux -S {} new-session -d -s s{i} 'sleep 100000'",
            q(&repo),
            q(&root.join(format!("wt/w{i}"))),
            q(&sock)
        ));
    }
    let d = Driver::new(counting.clone(), root);
    let mut desired = Vec::new();
    for i in 0..n {
        let wt = format!("git_worktree.w[\"{i}\"]");
        let a = d.prepare(
            &wt,
            &attrs(&[
                ("repo", s(&repo)),
                ("path", s(&root.join(format!("wt/w{i}")))),
                ("branch", format!("b{i}").as_str().into()),
            ]),
        );
        desired.push((wt, a));
        let tm = format!("tmux_session.t[\"{i}\"]");
        let a = d.prepare(
            &tm,
            &attrs(&[
                ("socket", s(&sock)),
                ("session", format!("s{i}").as_str().into()),
                ("command", "sleep 100000".into()),
            ]),
        );
        desired.push((tm, a));
    }
    // One more session that does not exist: it must not break the env chain.
    let absent = "tmux_session.t[\"absent\"]".to_string();
    let a = d.prepare(
        &absent,
        &attrs(&[
            ("socket", s(&sock)),
            ("session", "absent".into()),
            ("command", "sleep 100000".into()),
        ]),
    );
    desired.push((absent.clone(), a));
    let items: Vec<(&str, Option<&Attrs>, Option<&StateObject>)> = desired
        .iter()
        .map(|(addr, a)| (addr.as_str(), Some(a), None))
        .collect();
    counting.started();
    let r = d.refresh(&items).await;
    let started = counting.started();
    for (addr, _) in &desired {
        let live = r.live.get(addr).cloned().flatten();
        assert_eq!(
            live.is_some(),
            *addr != absent,
            "{addr}: {:?}",
            r.diagnostics
        );
    }
    assert_eq!(
        started,
        vec!["git", "tmux", "tmux"],
        "one git per repository, two tmux clients per socket"
    );
}

#[tokio::test]
async fn a_file_write_over_a_script_starts_cat_and_mv() {
    let dir = tempfile::tempdir().unwrap();
    let r = Counting::new(dir.path());
    let at = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let write = |p: String, c: &'static [u8], mode: Option<u32>| {
        let r = &r;
        async move { claw_host::fileio::write_file(r, &p, c, mode).await.unwrap() }
    };
    r.started();
    // A new folder: one mkdir; then the usual file: cat and mv.
    write(at("new/a.conf"), b"a", Some(0o644)).await;
    assert_eq!(r.started(), vec!["cat", "mkdir", "mv"]);
    write(at("new/b.conf"), b"b", Some(0o600)).await;
    write(at("new/c.conf"), b"c", None).await;
    assert_eq!(r.started(), vec!["cat", "cat", "mv", "mv"]);
    // Execute and special bits need chmod; keeping an existing file's mode, cp -p.
    write(at("new/run.sh"), b"#!/bin/sh\n", Some(0o4755)).await;
    write(at("new/b.conf"), b"bb", None).await;
    assert_eq!(r.started(), vec!["cat", "cat", "chmod", "cp", "mv", "mv"]);
    let got = read_files(&r, &[at("new/a.conf"), at("new/b.conf"), at("new/run.sh")])
        .await
        .unwrap();
    assert_eq!(got[0], file(b"a", 0o644));
    assert_eq!(got[1], file(b"bb", 0o600));
    assert_eq!(got[2], file(b"#!/bin/sh\n", 0o4755));
}

/// The native probe of many files spreads them over the cores and keeps
/// their order; a FIFO is "not a file" at once (it is opened without
/// waiting for a writer), and a path through a file is missing.
#[tokio::test]
async fn native_probe_of_thousands_of_files_keeps_order_and_never_waits_on_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut paths = Vec::new();
    let mut want = Vec::new();
    for i in 0..3000 {
        let p = d.join(format!("f{i}"));
        if i % 7 == 0 {
            want.push(FileProbe::Missing);
        } else {
            std::fs::write(&p, format!("file {i}\n")).unwrap();
            want.push(file(format!("file {i}\n").as_bytes(), 0o644));
        }
        paths.push(p.to_string_lossy().into_owned());
    }
    let fifo = d.join("fifo");
    sh(&format!("mkfifo {}", q(&fifo)));
    paths.insert(1500, fifo.to_string_lossy().into_owned());
    want.insert(1500, FileProbe::NotAFile);
    paths.push(d.join("f1/below-a-file").to_string_lossy().into_owned());
    want.push(FileProbe::Missing);
    let native = local_runner();
    let got = tokio::time::timeout(Duration::from_secs(60), read_files(native.as_ref(), &paths))
        .await
        .expect("the probe waited (on the FIFO?)")
        .unwrap();
    assert_eq!(got.len(), want.len());
    for ((p, w), g) in paths.iter().zip(&want).zip(&got) {
        assert_eq!(g, w, "{p}");
    }
}
