//! Secrets on a host: never on a command line (scanned in every process's
//! `/proc/PID/cmdline` while claw works), in the tmux session's environment,
//! passed to a worktree `setup` that runs and whose output is redacted, and
//! files private from their first byte. Through the local runner and the SSH
//! runner (a real sshd on loopback).

mod common;
mod fixtures;
use claw_host::runner::Runner;
use claw_provider::*;
use common::*;
use fixtures::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A 7-character secret, different in every run (letters only, so it cannot
/// match a pid or a port by chance).
fn fresh_secret() -> String {
    let mut n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        ^ u128::from(std::process::id()) << 40;
    (0..7)
        .map(|_| {
            let c = (b'a' + (n % 26) as u8) as char;
            n /= 26;
            if n.is_multiple_of(2) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Every process whose command line holds `needle` (the secret itself is
/// not printed: `(secret)` stands for it).
fn cmdlines_with(needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return hits;
    };
    for e in dir.flatten() {
        if let Ok(b) = std::fs::read(e.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&b).replace('\0', " ");
            if text.contains(needle) {
                hits.push(format!(
                    "{}: {}",
                    e.file_name().to_string_lossy(),
                    text.replace(needle, "(secret)")
                ));
            }
        }
    }
    hits
}

/// Scans every command line on this machine until stopped, in a thread.
struct Scanner {
    stop: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<String>>>,
    scans: Arc<Mutex<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scanner {
    fn start(needle: &str) -> Scanner {
        let stop = Arc::new(AtomicBool::new(false));
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let scans: Arc<Mutex<u64>> = Arc::default();
        let (s, h, n, needle) = (
            Arc::clone(&stop),
            Arc::clone(&hits),
            Arc::clone(&scans),
            needle.to_string(),
        );
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let found = cmdlines_with(&needle);
                h.lock().unwrap().extend(found);
                *n.lock().unwrap() += 1;
            }
        });
        Scanner {
            stop,
            hits,
            scans,
            thread: Some(thread),
        }
    }
    fn finish(mut self) -> (Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let hits = self.hits.lock().unwrap().clone();
        let n = *self.scans.lock().unwrap();
        (hits, n)
    }
}

async fn secrets_never_reach_a_command_line(runner: Arc<dyn Runner>) {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let repo = make_repo(root);
    let sock = root.join("tmux/secrets.sock");
    let _guard = TmuxGuard(sock.clone());
    let d = Driver::new(runner.clone(), root);
    let secret = fresh_secret();
    let scanner = Scanner::start(&secret);

    // A tmux session with the secret in its environment.
    let mut env = claw_provider::Map::new();
    env.insert("TOKEN".to_string(), d.ctx.secret(&secret));
    env.insert("PLAIN".to_string(), Value::from("it's \"quoted\" $HOME"));
    let tm = "tmux_session.agent";
    let tmux = d.prepare(
        tm,
        &attrs(&[
            ("socket", s(&sock)),
            ("env", Value::Map(env)),
            ("command", "sleep 100000".into()),
        ]),
    );
    d.apply(tm, Op::Create, Some(&tmux), None).await.unwrap();

    // A worktree whose setup interpolates the secret: it runs, with it.
    let wt = "git_worktree.agent";
    let setup = Secret::joined(
        format!("printf '%s' '{secret}' > .setup-token && echo done"),
        &d.ctx.salt,
        vec![secret.as_str().into()],
    );
    let wt_path = root.join("wt");
    let worktree = d.prepare(
        wt,
        &attrs(&[
            ("repo", s(&repo)),
            ("path", s(&wt_path)),
            ("branch", "agent".into()),
            ("setup", Value::Secret(setup)),
        ]),
    );
    d.apply(wt, Op::Create, Some(&worktree), None)
        .await
        .unwrap();
    // A file with the secret in its content.
    let f = "file.token";
    let file_path = root.join("conf/token.env");
    let file = d.prepare(
        f,
        &attrs(&[
            ("path", s(&file_path)),
            ("content", d.ctx.secret(&format!("TOKEN={secret}\n"))),
        ]),
    );
    let st = d.apply(f, Op::Create, Some(&file), None).await.unwrap();

    let (hits, scans) = scanner.finish();
    assert!(scans > 0);
    assert!(
        hits.is_empty(),
        "the secret was on a command line: {hits:?}"
    );
    assert!(cmdlines_with(&secret).is_empty(), "after apply");
    // It is where it belongs: the session's environment, the setup's output
    // file, the file (mode 0600 by default); the state holds no clear text.
    let env_out = sh(&format!(
        "tmux -S {} show-environment -t =agent: TOKEN",
        q(&sock)
    ));
    assert_eq!(env_out.trim(), format!("TOKEN={secret}"));
    let plain = sh(&format!(
        "tmux -S {} show-environment -t =agent: PLAIN",
        q(&sock)
    ));
    assert_eq!(plain.trim(), "PLAIN=it's \"quoted\" $HOME");
    assert_eq!(
        std::fs::read_to_string(wt_path.join(".setup-token")).unwrap(),
        secret
    );
    assert_eq!(
        std::fs::read_to_string(&file_path).unwrap(),
        format!("TOKEN={secret}\n")
    );
    let mode = std::fs::metadata(&file_path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "a file holding a secret is private by default");
    assert!(!serde_json::to_string(&st).unwrap().contains(&secret));
    // A no-change refresh sees the session and file as configured.
    let live = d.live(tm, &tmux, None).await.unwrap();
    assert!(d.diff(tm, &tmux, &live, None).await.changes.is_empty());
    let live = d.live(f, &file, st.as_ref()).await.unwrap();
    assert!(d
        .diff(f, &file, &live, st.as_ref())
        .await
        .changes
        .is_empty());
}

#[tokio::test]
async fn secrets_never_reach_a_command_line_locally() {
    if !tools() {
        return;
    }
    secrets_never_reach_a_command_line(local_runner()).await;
}

#[tokio::test]
async fn secrets_never_reach_a_command_line_over_ssh() {
    if !tools() {
        return;
    }
    let Some(sshd) = Sshd::start() else { return };
    secrets_never_reach_a_command_line(sshd.runner()).await;
}

#[tokio::test]
async fn a_failing_setup_shows_its_output_without_the_secret() {
    if !tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let repo = make_repo(root.path());
    let d = Driver::new(local_runner(), root.path());
    let secret = fresh_secret();
    let setup = Secret::joined(
        format!("echo \"logging in with {secret}\"; echo 'no luck' >&2; exit 7"),
        &d.ctx.salt,
        vec![secret.as_str().into()],
    );
    let wt = d.prepare(
        "git_worktree.w",
        &attrs(&[
            ("repo", s(&repo)),
            ("path", s(&root.path().join("w"))),
            ("branch", "w".into()),
            ("setup", Value::Secret(setup)),
        ]),
    );
    let err = d
        .apply("git_worktree.w", Op::Create, Some(&wt), None)
        .await
        .unwrap_err();
    let text = format!("{err} {:?}", err.detail);
    assert!(text.contains("exit 7"), "{text}");
    assert!(text.contains("logging in with (sensitive)"), "{text}");
    assert!(text.contains("no luck"), "{text}");
    assert!(!text.contains(&secret), "{text}");
    assert!(!root.path().join("w").exists(), "rolled back");
}

/// Watches `dir` for claw's temporary files and records the mode of each
/// one seen, until stopped.
fn watch_temps(dir: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<u32>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().contains(".claw-tmp") {
                    if let Ok(m) = std::fs::metadata(e.path()) {
                        seen.push(m.permissions().mode() & 0o7777);
                    }
                }
            }
        }
        seen
    })
}

/// Writes a large sensitive file while a reader polls its folder: every
/// temporary file it catches already has the final mode.
async fn temp_files_are_private_from_the_first_byte(runner: Arc<dyn Runner>, size: usize) {
    let root = tempfile::tempdir().unwrap();
    let d = Driver::new(runner, root.path());
    let dir = root.path().join("conf");
    std::fs::create_dir_all(&dir).unwrap();
    let content = "abcdefghijklmnopqrstuvwxyz\n".repeat(size / 27);
    let secret = d.ctx.secret(&content);
    for (mode, want) in [(None, 0o600), (Some("0640"), 0o640)] {
        let mut seen = Vec::new();
        // The reader may miss a fast write: try a few times.
        for round in 0..20 {
            let path = dir.join(format!("secret-{want:o}-{round}.env"));
            let mut a = attrs(&[("path", s(&path)), ("content", secret.clone())]);
            if let Some(m) = mode {
                a.insert("mode".into(), m.into());
            }
            let desired = d.prepare("file.s", &a);
            let stop = Arc::new(AtomicBool::new(false));
            let watcher = watch_temps(dir.clone(), stop.clone());
            d.apply("file.s", Op::Create, Some(&desired), None)
                .await
                .unwrap();
            stop.store(true, Ordering::Relaxed);
            seen.extend(watcher.join().unwrap());
            let m = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
            assert_eq!(m, want);
            if !seen.is_empty() {
                break;
            }
        }
        assert!(!seen.is_empty(), "the reader never saw a temporary file");
        assert!(
            seen.iter().all(|m| *m == want),
            "temporary file modes seen: {:?}, final {want:o}",
            seen.iter().map(|m| format!("{m:o}")).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_files_are_private_from_the_first_byte_locally() {
    temp_files_are_private_from_the_first_byte(local_runner(), 4 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_files_are_private_from_the_first_byte_over_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    temp_files_are_private_from_the_first_byte(sshd.runner(), 4 << 20).await;
}
