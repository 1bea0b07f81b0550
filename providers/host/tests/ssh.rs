//! The SSH runner against a real sshd: host keys, authentication, errors.

mod common;
use claw_host::runner::Runner;
use common::*;

#[tokio::test]
async fn runs_scripts_over_one_connection() {
    let Some(sshd) = Sshd::start() else { return };
    let r = sshd.runner();
    let out = r
        .run(
            "printf '%s' \"$1x\"; cat; echo err >&2; exit 3",
            b"from stdin",
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_str(), "xfrom stdin");
    assert_eq!(out.stderr_str(), "err");
    assert_eq!(out.code, 3);
    // Homebrew's prefixes are on PATH for non-interactive sessions.
    let path = r
        .run("printf '%s' \"$PATH\"", b"")
        .await
        .unwrap()
        .stdout_str();
    assert!(path.contains(":/opt/homebrew/bin:"), "{path}");
    // Concurrent scripts share the one connection (multiplexed channels).
    let futs: Vec<_> = (0..20)
        .map(|i| {
            let r = r.clone();
            async move { r.run(&format!("echo {i}"), b"").await.unwrap().stdout_str() }
        })
        .collect();
    let outs = futures::future::join_all(futs).await;
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(o.trim(), i.to_string());
    }
    let c = r.counters();
    assert_eq!(c[0], ("ssh round trips".to_string(), 22));
    assert_eq!(c[1], ("ssh connections".to_string(), 1));
}

fn other_key(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let p = dir.join("other");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    (
        p.clone(),
        std::fs::read_to_string(p.with_extension("pub")).unwrap(),
    )
}

#[tokio::test]
async fn changed_host_key_is_refused_with_the_fix() {
    let Some(sshd) = Sshd::start() else { return };
    let (_, other_pub) = other_key(sshd.dir.path());
    let mut parts = other_pub.split_whitespace();
    let (t, k) = (parts.next().unwrap(), parts.next().unwrap());
    let kh = sshd.dir.path().join("kh_changed");
    std::fs::write(&kh, format!("[127.0.0.1]:{} {t} {k}\n", sshd.port)).unwrap();
    let mut cfg = sshd.config();
    cfg.known_hosts = kh.clone();
    cfg.accept_new = true; // accept-new still refuses a changed key
    let r = claw_host::ssh::SshRunner::new(cfg);
    let err = r.run("true", b"").await.unwrap_err().to_string();
    assert!(err.contains("HOST KEY CHANGED"), "{err}");
    assert!(err.contains("SHA256:"), "{err}");
    assert!(err.contains(&format!("{}:1", kh.display())), "{err}");
    assert!(err.contains("ssh-keygen -R"), "{err}");
    // The file is left alone.
    assert_eq!(std::fs::read_to_string(&kh).unwrap().lines().count(), 1);
    // A second call gets the same error without reconnecting.
    assert!(r.run("true", b"").await.is_err());
    assert_eq!(r.counters()[1].1, 1);
}

#[tokio::test]
async fn unknown_host_key_strict_then_accept_new() {
    let Some(sshd) = Sshd::start() else { return };
    let kh = sshd.dir.path().join("kh_empty");
    let mut cfg = sshd.config();
    cfg.known_hosts = kh.clone();
    let err = claw_host::ssh::SshRunner::new(cfg.clone())
        .run("true", b"")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("is not known"), "{text}");
    let host_key = sshd.host_pub.split_whitespace().nth(1).unwrap();
    assert!(
        text.contains(&format!("[127.0.0.1]:{} ssh-ed25519 {host_key}", sshd.port)),
        "{text}"
    );
    assert!(text.contains("accept-new"), "{text}");
    assert!(!kh.exists());

    cfg.accept_new = true;
    let out = claw_host::ssh::SshRunner::new(cfg.clone())
        .run("echo ok", b"")
        .await
        .unwrap();
    assert_eq!(out.stdout_str().trim(), "ok");
    let recorded = std::fs::read_to_string(&kh).unwrap();
    assert!(recorded.contains(host_key), "{recorded}");
    // Now known: strict works.
    cfg.accept_new = false;
    claw_host::ssh::SshRunner::new(cfg)
        .run("true", b"")
        .await
        .unwrap();
}

#[tokio::test]
async fn hashed_known_hosts_entry_is_accepted() {
    let Some(sshd) = Sshd::start() else { return };
    let name = format!("[127.0.0.1]:{}", sshd.port);
    let hashed = claw_host::known_hosts::hash_host_name(&name, b"some-salt-20-bytes!!");
    let mut parts = sshd.host_pub.split_whitespace();
    let (t, k) = (parts.next().unwrap(), parts.next().unwrap());
    let kh = sshd.dir.path().join("kh_hashed");
    std::fs::write(&kh, format!("# hashed\n{hashed} {t} {k}\n")).unwrap();
    let mut cfg = sshd.config();
    cfg.known_hosts = kh;
    let out = claw_host::ssh::SshRunner::new(cfg)
        .run("echo hashed", b"")
        .await
        .unwrap();
    assert_eq!(out.stdout_str().trim(), "hashed");
}

#[tokio::test]
async fn authentication_failure_says_what_was_tried() {
    let Some(sshd) = Sshd::start() else { return };
    let (other, _) = other_key(sshd.dir.path());
    let mut cfg = sshd.config();
    cfg.identity_file = Some(other.clone());
    let err = claw_host::ssh::SshRunner::new(cfg.clone())
        .run("true", b"")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("authentication failed"), "{text}");
    assert!(
        text.contains(&format!("publickey with {}", other.display())),
        "{text}"
    );
    assert!(text.contains("the server accepts: publickey"), "{text}");
    assert!(err.hint.is_some());

    cfg.identity_file = Some(sshd.dir.path().join("no-such-key"));
    let err = claw_host::ssh::SshRunner::new(cfg)
        .run("true", b"")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot load identity_file"),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_host_is_a_clear_error() {
    if !require("/usr/sbin/sshd") {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = claw_host::ssh::SshConfig {
        alias: "gone".into(),
        host: "127.0.0.1".into(),
        port,
        user: "nobody".into(),
        identity_file: None,
        agent_socket: None,
        known_hosts: "/nonexistent/known_hosts".into(),
        global_known_hosts: Vec::new(),
        accept_new: false,
        connect_timeout: std::time::Duration::from_secs(5),
        command_timeout: std::time::Duration::from_secs(5),
    };
    let err = claw_host::ssh::SshRunner::new(cfg)
        .run("true", b"")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cannot reach host gone"), "{text}");
    assert!(text.contains("hint:"), "{text}");
}

#[tokio::test]
async fn authenticates_with_the_ssh_agent() {
    let Some(sshd) = Sshd::start() else { return };
    if !require("ssh-agent") || !require("ssh-add") {
        return;
    }
    let sock = sshd.dir.path().join("agent.sock");
    let out = std::process::Command::new("ssh-agent")
        .arg("-a")
        .arg(&sock)
        .output()
        .unwrap();
    assert!(out.status.success());
    let pid: String = String::from_utf8_lossy(&out.stdout)
        .split("SSH_AGENT_PID=")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or_default()
        .to_string();
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            if !self.0.is_empty() {
                let _ = std::process::Command::new("kill").arg(&self.0).status();
            }
        }
    }
    let _agent = Kill(pid);
    let mut cfg = sshd.config();
    cfg.identity_file = None;
    cfg.agent_socket = Some(sock.clone());
    // An empty agent: refused, and the message says the agent was tried.
    let err = claw_host::ssh::SshRunner::new(cfg.clone())
        .run("true", b"")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("0 key(s), all rejected"), "{err}");
    let added = std::process::Command::new("ssh-add")
        .arg(&sshd.key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let out = claw_host::ssh::SshRunner::new(cfg)
        .run("echo via-agent", b"")
        .await
        .unwrap();
    assert_eq!(out.stdout_str().trim(), "via-agent");
}

#[tokio::test]
async fn system_wide_known_hosts_are_consulted_read_only() {
    let Some(sshd) = Sshd::start() else { return };
    let global = sshd.dir.path().join("ssh_known_hosts");
    std::fs::copy(&sshd.known_hosts, &global).unwrap();
    let mut cfg = sshd.config();
    cfg.known_hosts = sshd.dir.path().join("user_known_hosts_missing");
    cfg.global_known_hosts = vec![global.clone()];
    let out = claw_host::ssh::SshRunner::new(cfg.clone())
        .run("echo global", b"")
        .await
        .unwrap();
    assert_eq!(out.stdout_str().trim(), "global");
    assert!(
        !cfg.known_hosts.exists(),
        "nothing is written for a key known system-wide"
    );

    // A changed key in the system-wide file names that file.
    let (_, other_pub) = other_key(sshd.dir.path());
    let mut parts = other_pub.split_whitespace();
    let (t, k) = (parts.next().unwrap(), parts.next().unwrap());
    std::fs::write(&global, format!("[127.0.0.1]:{} {t} {k}\n", sshd.port)).unwrap();
    let err = claw_host::ssh::SshRunner::new(cfg)
        .run("true", b"")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("{}:1", global.display())), "{err}");
}

#[tokio::test]
async fn large_files_round_trip_over_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let r = sshd.runner();
    let p = sshd
        .dir
        .path()
        .join("big/blob.bin")
        .to_string_lossy()
        .into_owned();
    // 3 MiB of every byte value, newlines and NULs included.
    let data: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    claw_host::fileio::write_file(r.as_ref(), &p, &data, Some(0o600))
        .await
        .unwrap();
    let got = claw_host::fileio::read_files(r.as_ref(), &[p.clone(), format!("{p}.missing")])
        .await
        .unwrap();
    match &got[0] {
        claw_host::fileio::FileProbe::File(f) => {
            assert_eq!(f.content.len(), data.len());
            assert!(f.content == data, "content differs");
            assert_eq!(f.mode, 0o600);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(got[1], claw_host::fileio::FileProbe::Missing);
}

#[tokio::test]
async fn hundreds_of_concurrent_scripts_share_sshds_sessions() {
    // sshd's default MaxSessions (10) frees a session some time after its
    // channel closed: a burst of short scripts must not see a refused channel.
    let Some(sshd) = Sshd::start_sh_login() else {
        return;
    };
    let r = sshd.runner();
    let futs: Vec<_> = (0..300)
        .map(|i| {
            let r = r.clone();
            async move {
                r.run(&format!("echo {i}"), b"")
                    .await
                    .map(|o| o.stdout_str())
            }
        })
        .collect();
    for (i, o) in futures::future::join_all(futs)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(o.unwrap().trim(), i.to_string());
    }
    assert_eq!(r.counters()[0], ("ssh round trips".to_string(), 300));
    assert_eq!(r.counters()[1], ("ssh connections".to_string(), 1));
}
