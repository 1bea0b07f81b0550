//! One test matrix, run through the local runner and the SSH runner (a real
//! sshd on loopback): create, no-op refresh, drift (kill the session, delete
//! the worktree folder, edit the file), converge, guarded destroy, destroy.

mod common;
mod fixtures;
use claw_host::runner::Runner;
use claw_provider::*;
use common::*;
use fixtures::*;
use std::path::Path;
use std::sync::Arc;

async fn matrix(runner: Arc<dyn Runner>) {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let repo = make_repo(root);
    let sock = root.join("tmux/clawdbot.sock");
    let _guard = TmuxGuard(sock.clone());
    let d = Driver::new(runner.clone(), root);

    let wt_dev = "git_worktree.agent[\"dev\"]";
    let wt_test = "git_worktree.agent[\"test\"]";
    let tm = "tmux_session.agent[\"dev\"]";
    let f = "file.config";
    let dev_path = root.join("sandboxes/agent-dev");
    let test_path = root.join("sandboxes/agent-test");
    let wt = |p: &Path, b: &str| {
        attrs(&[
            ("repo", s(&repo)),
            ("path", s(p)),
            ("branch", b.into()),
            ("setup", "echo ran > .setup-ran".into()),
        ])
    };
    let dev = d.prepare(wt_dev, &wt(&dev_path, "sandbox/agent-dev"));
    let test = d.prepare(wt_test, &wt(&test_path, "sandbox/agent-test"));
    let mut env = claw_provider::Map::new();
    env.insert(
        "CLAWDBOT_GATEWAY_URL".to_string(),
        Value::from("ws://localhost:8080"),
    );
    let tmux = d.prepare(
        tm,
        &attrs(&[
            ("socket", s(&sock)),
            ("window", "main".into()),
            ("cwd", s(&dev_path)),
            ("env", Value::Map(env)),
            ("command", "sleep 100000".into()),
        ]),
    );
    assert_eq!(
        tmux["session"],
        Value::from("agent-dev"),
        "default session name"
    );
    let file_path = root.join(".clawdbot/clawdbot.json");
    let file = d.prepare(
        f,
        &attrs(&[
            ("path", s(&file_path)),
            (
                "content",
                "{\n  \"gateway\": { \"port\": 8080 }\n}\n".into(),
            ),
        ]),
    );

    // 1. Nothing exists: one refresh, one probe per repo/socket/file set.
    let before = round_trips(runner.as_ref());
    let items = |st: &[Option<&StateObject>; 4]| -> Vec<(&'static str, Option<Attrs>, Option<StateObject>)> {
        vec![
            (wt_dev, Some(dev.clone()), st[0].cloned()),
            (wt_test, Some(test.clone()), st[1].cloned()),
            (tm, Some(tmux.clone()), st[2].cloned()),
            (f, Some(file.clone()), st[3].cloned()),
        ]
    };
    let refresh_all = |st: [Option<StateObject>; 4]| {
        let d = &d;
        let its = items(&[
            st[0].as_ref(),
            st[1].as_ref(),
            st[2].as_ref(),
            st[3].as_ref(),
        ]);
        async move {
            let refs: Vec<(&str, Option<&Attrs>, Option<&StateObject>)> = its
                .iter()
                .map(|(a, x, p)| (*a, x.as_ref(), p.as_ref()))
                .collect();
            let r = d.refresh(&refs).await;
            assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
            r.live
        }
    };
    let live = refresh_all([None, None, None, None]).await;
    assert!(live.values().all(Option::is_none), "{live:?}");
    // The local runner reads files natively (no command).
    let file_probe = if runner.native_fs() { 0 } else { 1 };
    assert_eq!(
        round_trips(runner.as_ref()) - before,
        2 + file_probe,
        "one probe each for the repo, the socket and the files"
    );

    // 2. Create.
    let st_dev = d
        .apply(wt_dev, Op::Create, Some(&dev), None)
        .await
        .unwrap()
        .unwrap();
    let st_test = d
        .apply(wt_test, Op::Create, Some(&test), None)
        .await
        .unwrap()
        .unwrap();
    let st_tm = d
        .apply(tm, Op::Create, Some(&tmux), None)
        .await
        .unwrap()
        .unwrap();
    let st_f = d
        .apply(f, Op::Create, Some(&file), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dev_path.join(".setup-ran")).unwrap(),
        "ran\n"
    );
    assert_eq!(
        sh(&format!(
            "cd {} && git symbolic-ref --short HEAD",
            q(&dev_path)
        ))
        .trim(),
        "sandbox/agent-dev"
    );
    let env_out = sh(&format!(
        "tmux -S {} show-environment -t =agent-dev:",
        q(&sock)
    ));
    assert!(
        env_out.contains("CLAWDBOT_GATEWAY_URL=ws://localhost:8080"),
        "{env_out}"
    );
    let path_out = sh(&format!(
        "tmux -S {} display-message -p -t =agent-dev: '#{{session_path}} #{{window_name}}'",
        q(&sock)
    ));
    assert_eq!(path_out.trim(), format!("{} main", dev_path.display()));

    // 3. No-op: everything exists and nothing differs.
    let state = [
        Some(st_dev.clone()),
        Some(st_test.clone()),
        Some(st_tm.clone()),
        Some(st_f.clone()),
    ];
    let before = round_trips(runner.as_ref());
    let live = refresh_all(state.clone()).await;
    assert_eq!(
        round_trips(runner.as_ref()) - before,
        if runner.native_fs() { 2 } else { 3 }
    );
    for (addr, desired, prior) in items(&[
        state[0].as_ref(),
        state[1].as_ref(),
        state[2].as_ref(),
        state[3].as_ref(),
    ]) {
        let l = live[addr]
            .clone()
            .unwrap_or_else(|| panic!("{addr} missing"));
        let diff = d
            .diff(addr, desired.as_ref().unwrap(), &l, prior.as_ref())
            .await;
        assert!(diff.changes.is_empty(), "{addr}: {:?}", diff.changes);
    }

    // 4. Drift: kill the session, delete the worktree folder, edit the file.
    sh(&format!("tmux -S {} kill-session -t =agent-dev:", q(&sock)));
    sh(&format!("rm -rf {}", q(&test_path)));
    std::fs::write(&file_path, "edited by hand\n").unwrap();
    let live = refresh_all(state.clone()).await;
    assert!(live[tm].is_none(), "killed session is missing");
    assert!(
        live[wt_test].is_none(),
        "deleted worktree folder is missing"
    );
    assert!(live[wt_dev].is_some());
    let fd = d
        .diff(f, &file, live[f].as_ref().unwrap(), Some(&st_f))
        .await;
    assert_eq!(fd.changes.len(), 1);
    assert_eq!(fd.changes[0].before, Some(Value::from("edited by hand\n")));

    // 5. Converge, then nothing to do.
    let st_test = d.converge(wt_test, &test, Some(&st_test)).await;
    let st_tm = d.converge(tm, &tmux, Some(&st_tm)).await;
    let st_f = d.converge(f, &file, Some(&st_f)).await;
    let state = [
        Some(st_dev.clone()),
        Some(st_test.clone()),
        Some(st_tm.clone()),
        Some(st_f.clone()),
    ];
    let live = refresh_all(state.clone()).await;
    for (addr, desired, prior) in items(&[
        state[0].as_ref(),
        state[1].as_ref(),
        state[2].as_ref(),
        state[3].as_ref(),
    ]) {
        let diff = d
            .diff(
                addr,
                desired.as_ref().unwrap(),
                live[addr].as_ref().unwrap(),
                prior.as_ref(),
            )
            .await;
        assert!(diff.changes.is_empty(), "{addr}: {:?}", diff.changes);
    }

    // 6. A changed cwd replaces the session, and the plan says what that kills;
    //    a changed window name is an in-place rename.
    let mut moved = tmux.clone();
    moved.insert("cwd".into(), s(&test_path));
    moved.insert("window".into(), "work".into());
    let diff = d
        .diff(tm, &moved, live[tm].as_ref().unwrap(), Some(&st_tm))
        .await;
    let cwd = diff.changes.iter().find(|c| c.path == "cwd").unwrap();
    assert!(cwd.replace);
    assert!(diff.replace_note.as_deref().unwrap().contains("kills"));
    let mut renamed = tmux.clone();
    renamed.insert("window".into(), "work".into());
    let diff = d
        .diff(tm, &renamed, live[tm].as_ref().unwrap(), Some(&st_tm))
        .await;
    assert_eq!(diff.changes.len(), 1);
    assert!(!diff.changes[0].replace);
    let st_tm = d
        .apply(tm, Op::Update, Some(&renamed), Some(&st_tm))
        .await
        .unwrap()
        .unwrap();
    let l = d.live(tm, &renamed, Some(&st_tm)).await.unwrap();
    assert!(d
        .diff(tm, &renamed, &l, Some(&st_tm))
        .await
        .changes
        .is_empty());

    // 6b. Another branch checked out by hand: switched back in place.
    sh(&format!("git -C {} checkout -q -b elsewhere", q(&dev_path)));
    let l = d.live(wt_dev, &dev, Some(&st_dev)).await.unwrap();
    assert_eq!(l.attrs["branch"], Value::from("elsewhere"));
    let diff = d.diff(wt_dev, &dev, &l, Some(&st_dev)).await;
    assert_eq!(diff.changes.len(), 1, "{:?}", diff.changes);
    assert_eq!(diff.changes[0].path, "branch");
    assert!(!diff.changes[0].replace);
    let st_dev = d.converge(wt_dev, &dev, Some(&st_dev)).await;
    assert_eq!(
        sh(&format!(
            "git -C {} symbolic-ref --short HEAD",
            q(&dev_path)
        ))
        .trim(),
        "sandbox/agent-dev"
    );
    let l = d.live(wt_dev, &dev, Some(&st_dev)).await.unwrap();
    assert!(d
        .diff(wt_dev, &dev, &l, Some(&st_dev))
        .await
        .changes
        .is_empty());

    // 7. Destroy is refused for a dirty worktree, and for unpushed commits, unless forced.
    std::fs::write(dev_path.join("work-in-progress.txt"), "wip").unwrap();
    let err = d
        .apply(wt_dev, Op::Delete, None, Some(&st_dev))
        .await
        .unwrap_err();
    assert!(err.summary.contains("uncommitted changes"), "{err}");
    assert!(
        err.detail
            .as_deref()
            .unwrap_or("")
            .contains("work-in-progress.txt"),
        "{err}"
    );
    assert!(err.hint.as_deref().unwrap().contains("force = true"));
    assert!(dev_path.exists());
    sh(&format!(
        "cd {} && git add -A && git -c user.name=t -c user.email=t@t commit -q -m wip",
        q(&dev_path)
    ));
    let err = d
        .apply(wt_dev, Op::Delete, None, Some(&st_dev))
        .await
        .unwrap_err();
    assert!(err.summary.contains("no other branch or remote"), "{err}");
    assert!(err.detail.as_deref().unwrap_or("").contains("wip"), "{err}");
    let mut forced = st_dev.clone();
    forced.attrs.insert("force".into(), true.into());
    d.apply(wt_dev, Op::Delete, None, Some(&forced))
        .await
        .unwrap();
    assert!(!dev_path.exists());

    // 8. Destroy the rest; then nothing exists.
    d.apply(wt_test, Op::Delete, None, Some(&st_test))
        .await
        .unwrap();
    d.apply(tm, Op::Delete, None, Some(&st_tm)).await.unwrap();
    d.apply(tm, Op::Delete, None, Some(&st_tm)).await.unwrap(); // idempotent
    d.apply(f, Op::Delete, None, Some(&st_f)).await.unwrap();
    let live = refresh_all([Some(st_dev), Some(st_test), Some(st_tm), Some(st_f)]).await;
    assert!(live.values().all(Option::is_none), "{live:?}");
    assert!(!file_path.exists());
    let wl = sh(&format!("cd {} && git worktree list --porcelain", q(&repo)));
    assert_eq!(wl.matches("worktree ").count(), 1, "{wl}");
}

#[tokio::test]
async fn matrix_local() {
    if !tools() {
        return;
    }
    matrix(local_runner()).await;
}

#[tokio::test]
async fn matrix_ssh() {
    if !tools() {
        return;
    }
    let Some(sshd) = Sshd::start() else { return };
    let r = sshd.runner();
    matrix(r.clone()).await;
    assert_eq!(r.counters()[1], ("ssh connections".to_string(), 1));
}

#[tokio::test]
async fn repo_errors_are_actionable() {
    if !tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let d = Driver::new(local_runner(), root.path());
    let plain = root.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let a = attrs(&[
        ("repo", s(&plain)),
        ("path", s(&root.path().join("wt"))),
        ("branch", "b".into()),
    ]);
    let b = attrs(&[
        ("repo", s(&root.path().join("nope"))),
        ("path", s(&root.path().join("wt2"))),
        ("branch", "b".into()),
    ]);
    let r = d
        .refresh(&[
            ("git_worktree.a", Some(&a), None),
            ("git_worktree.b", Some(&b), None),
        ])
        .await;
    assert_eq!(r.diagnostics.len(), 2, "{:?}", r.diagnostics);
    let text: Vec<String> = r.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("is not a git repository") && t.contains("hint:")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("does not exist") && t.contains("hint:")),
        "{text:?}"
    );
}

#[tokio::test]
async fn tmux_sessions_on_one_socket_are_read_in_one_probe() {
    if !tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let sock = root.path().join("s/one.sock");
    let _guard = TmuxGuard(sock.clone());
    let runner = local_runner();
    let d = Driver::new(runner.clone(), root.path());
    let mk = |name: &str, url: &str| {
        let mut env = claw_provider::Map::new();
        env.insert("URL".to_string(), Value::from(url));
        env.insert("NAME".to_string(), Value::from(name));
        attrs(&[
            ("socket", s(&sock)),
            ("session", name.into()),
            ("env", Value::Map(env)),
            ("command", "sleep 100000".into()),
        ])
    };
    let names = ["alpha", "beta", "gamma", "delta"];
    let desired: Vec<Attrs> = names
        .iter()
        .enumerate()
        .map(|(i, n)| d.prepare(&format!("tmux_session.{n}"), &mk(n, &format!("ws://h{i}"))))
        .collect();
    let mut states = Vec::new();
    for (n, a) in names.iter().zip(&desired) {
        if *n == "gamma" {
            states.push(None); // never created: missing in the middle
            continue;
        }
        states.push(
            d.apply(&format!("tmux_session.{n}"), Op::Create, Some(a), None)
                .await
                .unwrap(),
        );
    }
    let addrs: Vec<String> = names.iter().map(|n| format!("tmux_session.{n}")).collect();
    let items: Vec<(&str, Option<&Attrs>, Option<&StateObject>)> = addrs
        .iter()
        .zip(&desired)
        .zip(&states)
        .map(|((a, d), s)| (a.as_str(), Some(d), s.as_ref()))
        .collect();
    let before = round_trips(runner.as_ref());
    let r = d.refresh(&items).await;
    assert_eq!(round_trips(runner.as_ref()) - before, 1);
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    assert!(r.live[&addrs[2]].is_none());
    for i in [0, 1, 3] {
        let live = r.live[&addrs[i]].as_ref().unwrap();
        let env = live.attrs["env"].as_map().unwrap();
        assert_eq!(env["NAME"], Value::from(names[i]));
        assert_eq!(env["URL"], Value::from(format!("ws://h{i}")));
        let diff = d
            .diff(&addrs[i], &desired[i], live, states[i].as_ref())
            .await;
        assert!(diff.changes.is_empty(), "{:?}", diff.changes);
    }
}

#[tokio::test]
async fn import_adopts_existing_worktrees_and_sessions() {
    if !tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let repo = make_repo(root.path());
    let wt = root.path().join("by-hand");
    sh(&format!(
        "git -C {} worktree add -q -b by-hand {}",
        q(&repo),
        q(&wt)
    ));
    let sock = root.path().join("s/imp.sock");
    let _guard = TmuxGuard(sock.clone());
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    sh(&format!(
        "tmux -S {} new-session -d -s manual -n w1 -c {} 'sleep 100000'",
        q(&sock),
        q(&wt)
    ));
    let d = Driver::new(local_runner(), root.path());

    let desired = d.prepare(
        "git_worktree.hand",
        &attrs(&[
            ("repo", s(&repo)),
            ("path", s(&wt)),
            ("branch", "by-hand".into()),
        ]),
    );
    let st =
        d.p.import(ImportRequest {
            ctx: d.ctx.clone(),
            address: "git_worktree.hand".into(),
            rtype: "git_worktree".into(),
            id: wt.to_string_lossy().into_owned(),
            desired: Some(desired.clone()),
        })
        .await
        .into_state()
        .unwrap();
    let live = d
        .live("git_worktree.hand", &desired, Some(&st))
        .await
        .unwrap();
    assert!(d
        .diff("git_worktree.hand", &desired, &live, Some(&st))
        .await
        .changes
        .is_empty());

    let tdesired = d.prepare(
        "tmux_session.manual",
        &attrs(&[
            ("socket", s(&sock)),
            ("window", "w1".into()),
            ("cwd", s(&wt)),
            ("command", "sleep 100000".into()),
        ]),
    );
    let st =
        d.p.import(ImportRequest {
            ctx: d.ctx.clone(),
            address: "tmux_session.manual".into(),
            rtype: "tmux_session".into(),
            id: "manual".into(),
            desired: Some(tdesired.clone()),
        })
        .await
        .into_state()
        .unwrap();
    let live = d
        .live("tmux_session.manual", &tdesired, Some(&st))
        .await
        .unwrap();
    // A session made by hand is compared on tmux's own session_path and start command.
    let diff = d
        .diff("tmux_session.manual", &tdesired, &live, Some(&st))
        .await;
    assert!(diff.changes.is_empty(), "{:?}", diff.changes);
    // Creating over it is refused with the import hint.
    let err = d
        .apply("tmux_session.manual", Op::Create, Some(&tdesired), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("claw import"), "{err}");

    let missing =
        d.p.import(ImportRequest {
            ctx: d.ctx.clone(),
            address: "tmux_session.none".into(),
            rtype: "tmux_session".into(),
            id: "none".into(),
            desired: Some(tdesired),
        })
        .await
        .into_state()
        .unwrap_err();
    assert!(missing.hint.is_some());
}

/// The local runner with every script rewritten first: a host with a
/// different userland, named `host <name>` in messages.
struct Rewriting {
    name: &'static str,
    inner: Arc<claw_host::runner::LocalRunner>,
    rewrite: Box<dyn Fn(&str) -> String + Send + Sync>,
}

#[async_trait::async_trait]
impl Runner for Rewriting {
    fn target(&self) -> String {
        format!("host {} (test)", self.name)
    }
    fn is_local(&self) -> bool {
        true
    }
    async fn run(
        &self,
        script: &str,
        stdin: &[u8],
    ) -> Result<claw_host::runner::Output, Diagnostic> {
        self.inner.run(&(self.rewrite)(script), stdin).await
    }
    fn counters(&self) -> Vec<(String, u64)> {
        self.inner.counters()
    }
}

/// A host without git and tmux: the local runner with an empty PATH.
fn no_tools() -> Rewriting {
    Rewriting {
        name: "bare",
        inner: local_runner(),
        rewrite: Box::new(|script| format!("PATH=/nonexistent-claw-test; export PATH\n{script}")),
    }
}

#[tokio::test]
async fn missing_git_and_tmux_are_reported_with_a_hint() {
    let root = tempfile::tempdir().unwrap();
    let d = Driver::new(Arc::new(no_tools()), root.path());
    let wt = attrs(&[
        ("repo", s(root.path())),
        ("path", s(&root.path().join("w"))),
        ("branch", "b".into()),
    ]);
    let tm = d.prepare(
        "tmux_session.t",
        &attrs(&[("socket", s(&root.path().join("x.sock")))]),
    );
    let r = d
        .refresh(&[
            ("git_worktree.w", Some(&wt), None),
            ("tmux_session.t", Some(&tm), None),
        ])
        .await;
    let text: Vec<String> = r.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("git is not installed on host bare") && t.contains("hint:")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("tmux is not installed on host bare") && t.contains("hint:")),
        "{text:?}"
    );
    let err = d
        .apply("tmux_session.t", Op::Create, Some(&tm), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tmux is not installed"), "{err}");
    let err = d
        .apply("git_worktree.w", Op::Create, Some(&wt), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("git is not installed"), "{err}");
    assert!(
        err.hint.as_deref().unwrap().contains("install git"),
        "{err}"
    );
}

/// The local runner with a non-GNU userland: busybox's sh, ls, wc, cut, cp,
/// mv, ... (and the real git and tmux), to catch GNU-only flags in the
/// scripts the way a macOS host would.
fn busybox() -> Option<Rewriting> {
    let bb = ["/usr/bin/busybox", "/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let bin = tempfile::tempdir().unwrap();
    for tool in [
        "sh", "ls", "wc", "cut", "cat", "mkdir", "cp", "mv", "chmod", "rm", "dirname", "basename",
        "head", "tr", "printf", "env", "sleep", "true", "false", "echo", "test", "[",
    ] {
        std::os::unix::fs::symlink(bb, bin.path().join(tool)).unwrap();
    }
    for tool in ["git", "tmux"] {
        let real = sh(&format!("command -v {tool}")).trim().to_string();
        std::os::unix::fs::symlink(real, bin.path().join(tool)).unwrap();
    }
    Some(Rewriting {
        name: "busybox",
        inner: local_runner(),
        // The closure owns the temporary bin directory, keeping it alive.
        rewrite: Box::new(move |script| {
            let b = bin.path().display().to_string();
            format!(
                "PATH={b}; export PATH; exec {b}/sh -c {}",
                claw_host::runner::sh_quote(script)
            )
        }),
    })
}

#[tokio::test]
async fn matrix_busybox_userland() {
    if !tools() || !require("busybox") {
        return;
    }
    let Some(bb) = busybox() else { return };
    matrix(Arc::new(bb)).await;
}
