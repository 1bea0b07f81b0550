//! Names are names (tmux never expands `#(...)`/`#{...}` in a session or
//! window name claw passes) and worktree setups of one repository overlap.

mod common;
mod fixtures;
use claw_provider::*;
use common::*;
use fixtures::*;

#[tokio::test]
async fn tmux_formats_in_names_run_nothing_and_stay_literal() {
    if !tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let sock = root.path().join("s/n.sock");
    let _guard = TmuxGuard(sock.clone());
    let d = Driver::new(local_runner(), root.path());
    let marker = |n: &str| root.path().join(format!("MARKER{n}"));
    let touch = |n: &str| format!("#(touch {})", marker(n).display());
    // No `.` allowed in a session name: a relative marker (tmux jobs run in
    // the session's folder, `root`; the test's own folder is checked too).
    let session = "s#(touch MARKER1)#{host}#H".to_string();
    let window = format!("w{}##x#{{window_index}}", touch("2"));
    let a = d.prepare(
        "tmux_session.x",
        &attrs(&[
            ("socket", s(&sock)),
            ("cwd", s(root.path())),
            ("session", session.clone().into()),
            ("window", window.clone().into()),
            ("command", "sleep 100000".into()),
        ]),
    );
    let st = d
        .apply("tmux_session.x", Op::Create, Some(&a), None)
        .await
        .unwrap()
        .unwrap();
    let shown = sh(&format!(
        "tmux -S {} list-sessions -F '#{{session_name}}|#{{window_name}}'",
        q(&sock)
    ));
    assert_eq!(shown.trim(), format!("{session}|{window}"));
    // Refresh reads the literal names back: nothing to change.
    let live = d.live("tmux_session.x", &a, Some(&st)).await.unwrap();
    assert!(d
        .diff("tmux_session.x", &a, &live, Some(&st))
        .await
        .changes
        .is_empty());
    // Renaming the window in place keeps it literal too.
    let mut b = a.clone();
    let renamed = format!("r{}#{{pane_pid}}", touch("3"));
    b.insert("window".into(), renamed.clone().into());
    let st = d.converge("tmux_session.x", &b, Some(&st)).await;
    let shown = sh(&format!(
        "tmux -S {} display-message -p -t {} '#{{window_name}}'",
        q(&sock),
        claw_host::runner::sh_quote(&format!("={session}:"))
    ));
    assert_eq!(shown.trim(), renamed);
    // Give any job tmux might have started time to run, then check.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!std::path::Path::new("MARKER1").exists());
    for n in ["1", "2", "3"] {
        assert!(!marker(n).exists(), "tmux ran the #(...) of MARKER{n}");
    }
    d.apply("tmux_session.x", Op::Delete, None, Some(&st))
        .await
        .unwrap();
}

/// Four worktrees of one repository, each with a 3-second setup, applied
/// concurrently: every setup starts before the first one ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn setups_of_one_repository_overlap() {
    if !tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let repo = make_repo(root.path());
    let log = root.path().join("setups.log");
    let d = Driver::new(local_runner(), root.path());
    let setup = format!("echo start >> {l}; sleep 3; echo end >> {l}", l = q(&log));
    let names = ["a", "b", "c", "d"];
    let desired: Vec<Attrs> = names
        .iter()
        .map(|n| {
            d.prepare(
                &format!("git_worktree.{n}"),
                &attrs(&[
                    ("repo", s(&repo)),
                    ("path", s(&root.path().join(format!("wt/{n}")))),
                    ("branch", format!("b/{n}").into()),
                    ("setup", setup.clone().into()),
                ]),
            )
        })
        .collect();
    let addrs: Vec<String> = names.iter().map(|n| format!("git_worktree.{n}")).collect();
    let started = std::time::Instant::now();
    let (r0, r1, r2, r3) = tokio::join!(
        d.apply(&addrs[0], Op::Create, Some(&desired[0]), None),
        d.apply(&addrs[1], Op::Create, Some(&desired[1]), None),
        d.apply(&addrs[2], Op::Create, Some(&desired[2]), None),
        d.apply(&addrs[3], Op::Create, Some(&desired[3]), None),
    );
    let took = started.elapsed();
    let states: Vec<StateObject> = [r0, r1, r2, r3]
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let lines = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = lines.lines().collect();
    eprintln!("four 3-second setups took {took:?}: {lines:?}");
    assert_eq!(lines.len(), 8, "{lines:?}");
    let first_end = lines.iter().position(|l| *l == "end").unwrap();
    assert_eq!(
        first_end, 4,
        "a setup ended before all had started: {lines:?}"
    );
    for (n, st) in names.iter().zip(&states) {
        let p = root.path().join(format!("wt/{n}"));
        assert!(p.join(".git").exists(), "{n}: no worktree");
        d.apply(&format!("git_worktree.{n}"), Op::Delete, None, Some(st))
            .await
            .unwrap();
    }
}
