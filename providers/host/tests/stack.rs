//! A whole host stack through the SDK's harness (the engine's plan and apply
//! with the real `decide`) on the local runner: a worktree, a tmux session
//! started in it and a file inside it. Implicit order (the worktree first,
//! deleted last), one refresh per plan, drift planned with its reason,
//! converge, destroy.

mod common;
mod fixtures;

use claw_provider::decide::{Action, Reason};
use claw_provider::testing::{Harness, Resource};
use common::*;
use fixtures::*;

#[tokio::test]
async fn a_worktree_with_a_session_and_a_file_inside_converges_and_destroys() {
    if !tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let repo = make_repo(root);
    let sock = root.join("tmux/stack.sock");
    let _guard = TmuxGuard(sock.clone());
    let runner = local_runner();
    let d = Driver::new(runner.clone(), root);
    let mut h = Harness::new(d.p.clone(), d.ctx.clone());
    let wt_path = root.join("sandboxes/agent");
    let file_path = wt_path.join(".env");
    h.set(vec![
        Resource::new(
            "git_worktree",
            "agent",
            attrs(&[
                ("repo", s(&repo)),
                ("path", s(&wt_path)),
                ("branch", "sandbox/agent".into()),
            ]),
        ),
        Resource::new(
            "tmux_session",
            "agent",
            attrs(&[
                ("socket", s(&sock)),
                ("cwd", s(&wt_path)),
                ("command", "sleep 100000".into()),
            ]),
        ),
        Resource::new(
            "file",
            "env",
            attrs(&[("path", s(&file_path)), ("content", "MODE=test\n".into())]),
        ),
    ]);

    let plan = h.converge().await;
    assert_eq!(
        plan.with(Action::Create),
        vec!["file.env", "git_worktree.agent", "tmux_session.agent"]
    );
    let mut edges: Vec<(&str, &str)> = plan
        .edges
        .iter()
        .map(|e| (e.dependent.as_str(), e.dependency.as_str()))
        .collect();
    edges.sort();
    assert_eq!(
        edges,
        vec![
            ("file.env", "git_worktree.agent"),
            ("tmux_session.agent", "git_worktree.agent"),
        ]
    );
    assert_eq!(std::fs::read_to_string(&file_path).unwrap(), "MODE=test\n");
    assert_eq!(h.state["file.env"].deps, vec!["git_worktree.agent"]);

    // A no-change plan is one refresh: one probe per repository and socket.
    let before = round_trips(runner.as_ref());
    h.assert_converged().await;
    assert_eq!(round_trips(runner.as_ref()) - before, 2);

    // Drift: the session killed, the file edited by hand.
    sh(&format!("tmux -S {} kill-session -t =agent:", q(&sock)));
    std::fs::write(&file_path, "MODE=hacked\n").unwrap();
    let plan = h.plan().await;
    assert_eq!(plan.action("tmux_session.agent"), Some(Action::Create));
    assert_eq!(
        plan.get("tmux_session.agent").unwrap().reason,
        Reason::DeletedOutside
    );
    let f = plan.get("file.env").unwrap();
    assert_eq!(f.action, Action::Update);
    assert_eq!(f.reason.to_string(), "content changed outside claw");
    h.apply_plan(&plan).await.unwrap();
    h.assert_converged().await;
    assert_eq!(std::fs::read_to_string(&file_path).unwrap(), "MODE=test\n");

    // Destroy: the session and the file before the worktree they are in.
    let plan = h.destroy().await;
    assert_eq!(plan.with(Action::Delete).len(), 3);
    assert!(!wt_path.exists());
    let sessions = std::process::Command::new("tmux")
        .arg("-S")
        .arg(&sock)
        .arg("list-sessions")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&sessions.stdout).contains("agent"));
}
