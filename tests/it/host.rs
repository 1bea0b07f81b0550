//! End-to-end CLI tests of the host provider: the clawdbot-fleet host part
//! applied locally and over SSH to a real sshd on 127.0.0.1, no-change plans,
//! a tmux session killed by hand, destroy.

use crate::common::{require, which, Ctx};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The host part of `examples/clawdbot-fleet/claw.toml`: the `[stack]` table,
/// the marked host variables and the marked host section (the other
/// providers' parts of the example are left out).
fn host_part_of_example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/clawdbot-fleet/claw.toml");
    let text = std::fs::read_to_string(path).expect("read the example");
    let between = |start: &str, end: &str| -> String {
        let mut on = false;
        let mut out = String::new();
        for l in text.lines() {
            if l.contains(end) {
                on = false;
                continue;
            }
            if on {
                out.push_str(l);
                out.push('\n');
            }
            if l.contains(start) {
                on = true;
            }
        }
        assert!(
            !out.is_empty(),
            "markers {start:?} … {end:?} not found in the example"
        );
        out
    };
    let stack = text
        .split("\n[")
        .find(|s| s.starts_with("stack]"))
        .map(|s| format!("[{s}\n"))
        .expect("[stack] in the example");
    let stack: String = stack
        .lines()
        .take_while(|l| !l.starts_with("[vars]"))
        .map(|l| format!("{l}\n"))
        .collect();
    format!(
        "{stack}\n[vars]\n{}\n{}",
        between("host part: variables", "end of host part: variables"),
        between("═══ host part:", "═══ end of host part")
    )
}

fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// Kills the test's tmux server however the test ends.
pub(crate) struct TmuxGuard(pub(crate) PathBuf);
impl Drop for TmuxGuard {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.0)
            .arg("kill-server")
            .output();
    }
}

/// A real sshd on a loopback port with its own config, host key and
/// authorized_keys in a temp folder.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Sshd {
    fn start() -> Option<Sshd> {
        if !require(
            "sshd",
            Path::new("/usr/sbin/sshd").exists(),
            "/usr/sbin/sshd is not installed (openssh-server)",
        ) || !require(
            "ssh-keygen",
            which("ssh-keygen"),
            "ssh-keygen is not installed",
        ) {
            return None;
        }
        let _ = std::fs::create_dir_all("/run/sshd"); // privilege-separation folder
        let dir = tempfile::Builder::new()
            .prefix("claw-sshd-")
            .tempdir()
            .unwrap();
        let d = dir.path().to_path_buf();
        for k in ["host_key", "id_ed25519"] {
            sh(&format!(
                "ssh-keygen -q -t ed25519 -N '' -f {}",
                q(&d.join(k))
            ));
        }
        std::fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).unwrap();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            std::fs::write(
                d.join("sshd_config"),
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
                     UsePAM no\nStrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nMaxStartups 100\nLogLevel ERROR\n",
                    d.join("host_key").display(),
                    d.join("authorized_keys").display(),
                    d.join("sshd.pid").display()
                ),
            )
            .unwrap();
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
                    let mut parts = host_pub.split_whitespace();
                    let (t, k) = (parts.next().unwrap(), parts.next().unwrap());
                    std::fs::write(
                        d.join("known_hosts"),
                        format!("[127.0.0.1]:{port} {t} {k}\n"),
                    )
                    .unwrap();
                    return Some(Sshd { dir, port, child });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "sshd did not start: {}",
            std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
        );
    }

    fn vars(&self) -> Vec<String> {
        let d = self.dir.path();
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| sh("id -un").trim().to_string());
        vec![
            format!("mac_mini_address=127.0.0.1:{}", self.port),
            format!("mac_mini_user={user}"),
            format!("mac_mini_identity_file={}", d.join("id_ed25519").display()),
            format!("mac_mini_known_hosts={}", d.join("known_hosts").display()),
        ]
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temp folder with the example's host part, a repository to add worktrees
/// to, and every path of the example pointed inside the folder.
fn fleet(extra_vars: &[String]) -> Option<(Ctx, Vec<String>, TmuxGuard)> {
    if !require("git", which("git"), "git is not installed")
        || !require("tmux", which("tmux"), "tmux is not installed")
    {
        return None;
    }
    let t = Ctx::new();
    t.write("claw.toml", &host_part_of_example());
    let root = t.dir.path();
    let repo = root.join("src/clawdbot");
    sh(&format!(
        "git init -q -b main {r} && git -C {r} -c user.name=t -c user.email=t@t commit -q --allow-empty -m init && echo .claw-setup >> {r}/.git/info/exclude",
        r = q(&repo)
    ));
    let sock_dir = root.join("sock");
    let guard = TmuxGuard(sock_dir.join("clawdbot.sock"));
    let mut vars = vec![
        format!("repo={}", repo.display()),
        format!("root={}", root.join("sandboxes").display()),
        format!("tmux_socket_dir={}", sock_dir.display()),
        format!(
            "clawdbot_config_path={}",
            root.join("dot-clawdbot/clawdbot.json").display()
        ),
        "worktree_setup=echo ready > .claw-setup".to_string(),
    ];
    vars.extend(extra_vars.iter().cloned());
    Some((t, vars, guard))
}

fn args<'a>(cmd: &[&'a str], vars: &'a [String]) -> Vec<&'a str> {
    let mut a: Vec<&str> = cmd.to_vec();
    for v in vars {
        a.push("--var");
        a.push(v);
    }
    a
}

fn apply_plan_kill_destroy(t: &Ctx, vars: &[String], over_ssh: bool) {
    let root = t.dir.path();
    let o = t.ok(&args(&["plan", "--detailed-exitcode"], vars), 2);
    assert!(
        o.stdout
            .contains("Plan: 7 to create, 0 to update, 0 to replace, 0 to delete."),
        "{}",
        o.stdout
    );
    t.ok(&args(&["apply", "--auto-approve"], vars), 0);
    for a in ["dev", "test", "review"] {
        let wt = root.join(format!("sandboxes/agent-{a}"));
        assert_eq!(
            std::fs::read_to_string(wt.join(".claw-setup")).unwrap(),
            "ready\n"
        );
        assert_eq!(
            sh(&format!("git -C {} symbolic-ref --short HEAD", q(&wt))).trim(),
            format!("sandbox/agent-{a}")
        );
    }
    let sock = root.join("sock/clawdbot.sock");
    let sessions = sh(&format!(
        "tmux -S {} list-sessions -F '#{{session_name}}'",
        q(&sock)
    ));
    let mut names: Vec<&str> = sessions.lines().collect();
    names.sort();
    assert_eq!(names, ["agent-dev", "agent-review", "agent-test"]);
    let env = sh(&format!(
        "tmux -S {} show-environment -t =agent-review:",
        q(&sock)
    ));
    assert!(
        env.contains("CLAWDBOT_GATEWAY_URL=ws://localhost:8080"),
        "{env}"
    );
    let cfg = std::fs::read_to_string(root.join("dot-clawdbot/clawdbot.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&cfg).expect("clawdbot.json is JSON");
    assert_eq!(json["gateway"]["port"], 8080);

    // No changes: exit 0, and -v reports the round trips of the batched refresh.
    let o = t.ok(&args(&["-v", "plan", "--detailed-exitcode"], vars), 0);
    if over_ssh {
        let all = o.all();
        assert!(all.contains("ssh round trips"), "{all}");
    }

    // A session killed by hand: exactly that session is planned for creation.
    sh(&format!(
        "tmux -S {} kill-session -t =agent-test:",
        q(&sock)
    ));
    let o = t.ok(&args(&["plan", "--detailed-exitcode"], vars), 2);
    assert!(
        o.stdout.contains("+ tmux_session.agent[\"test\"]"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("Plan: 1 to create, 0 to update, 0 to replace, 0 to delete."),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.stdout.matches("\n  + ").count()
            + o.stdout.matches("\n  ~ ").count()
            + o.stdout.matches("\n -/+ ").count(),
        1,
        "{}",
        o.stdout
    );
    t.ok(&args(&["apply", "--auto-approve"], vars), 0);
    t.ok(&args(&["plan", "--detailed-exitcode"], vars), 0);

    // A changed gateway URL replaces the sessions, and the plan says what that kills.
    let mut changed = vars.to_vec();
    changed.push("gateway_url=ws://k3s-node-1:8080".into());
    let o = t.ok(&args(&["plan", "--detailed-exitcode"], &changed), 2);
    assert!(
        o.stdout.contains("kills the running session"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("Plan: 0 to create, 0 to update, 3 to replace, 0 to delete."),
        "{}",
        o.stdout
    );

    // Destroy refuses a worktree with uncommitted work, removes the rest.
    std::fs::write(root.join("sandboxes/agent-dev/wip.txt"), "work in progress").unwrap();
    let o = t.claw(&args(&["destroy", "--auto-approve"], vars));
    assert_eq!(o.code, 1, "{}", o.all());
    assert!(o.all().contains("uncommitted changes"), "{}", o.all());
    assert!(o.all().contains("wip.txt"), "{}", o.all());
    assert!(root.join("sandboxes/agent-dev/wip.txt").exists());
    assert!(!root.join("sandboxes/agent-test").exists(), "{}", o.all());
    assert!(!root.join("dot-clawdbot/clawdbot.json").exists());
    std::fs::remove_file(root.join("sandboxes/agent-dev/wip.txt")).unwrap();
    t.ok(&args(&["destroy", "--auto-approve"], vars), 0);
    assert!(!root.join("sandboxes/agent-dev").exists());
    let wl = sh(&format!(
        "git -C {} worktree list --porcelain",
        q(&root.join("src/clawdbot"))
    ));
    assert_eq!(wl.matches("worktree ").count(), 1, "{wl}");
}

#[test]
fn fleet_host_part_locally() {
    let Some((t, vars, _guard)) = fleet(&[]) else {
        return;
    };
    apply_plan_kill_destroy(&t, &vars, false);
}

#[test]
fn fleet_host_part_over_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let Some((t, vars, _guard)) = fleet(&sshd.vars()) else {
        return;
    };
    apply_plan_kill_destroy(&t, &vars, true);
}

#[test]
fn unknown_host_key_fails_the_plan_with_the_fix() {
    let Some(sshd) = Sshd::start() else { return };
    let Some((t, mut vars, _guard)) = fleet(&sshd.vars()) else {
        return;
    };
    let empty = t.path("empty_known_hosts");
    vars.push(format!("mac_mini_known_hosts={}", empty.display()));
    let o = t.ok(&args(&["plan"], &vars), 1);
    let all = o.all();
    assert!(all.contains("is not known"), "{all}");
    assert!(all.contains("SHA256:"), "{all}");
    assert!(
        all.contains(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)),
        "{all}"
    );
    assert!(all.contains("hint:"), "{all}");
    // The same message once, not once per resource.
    assert_eq!(all.matches("is not known").count(), 1, "{all}");
    assert!(!empty.exists());
}
