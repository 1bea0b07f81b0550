//! Test harness: a real `sshd` on a loopback port with its own config, host
//! key and authorized_keys in a temp dir, plus helpers to drive the provider.
#![allow(dead_code)]

use claw_host::runner::{LocalRunner, Runner};
use claw_host::ssh::{SshConfig, SshRunner};
use claw_host::HostProvider;
use claw_provider::testing::{Harness, Recorded, Resource};
use claw_provider::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Skips a test (returns false) when a tool is missing; under `CI=true` a skip is a failure.
pub fn require(tool: &str) -> bool {
    let found = Path::new(tool).is_absolute() && Path::new(tool).exists()
        || Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is required in CI but is not installed");
        }
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub host_pub: String,
    child: Child,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// Starts sshd, or returns None (after printing why) when it is not installed.
    pub fn start() -> Option<Sshd> {
        Sshd::start_with(false)
    }

    /// Like [`Sshd::start`], but where this runs as root with `unshare`,
    /// sshd sees `/bin/sh` as the login shell (a private mount of a copy of
    /// `/etc/passwd`): sessions that last milliseconds, not the time of the
    /// login user's `~/.bashrc`. Otherwise the same as `start`.
    pub fn start_sh_login() -> Option<Sshd> {
        Sshd::start_with(true)
    }

    fn start_with(sh_login: bool) -> Option<Sshd> {
        if !require("/usr/sbin/sshd") || !require("ssh-keygen") {
            return None;
        }
        // The privilege-separation folder sshd insists on.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join("host_key")));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join("id_ed25519")));
        std::fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).unwrap();
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        for attempt in 0..5 {
            let port = free_port();
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                 PidFile {pid}\nUsePAM no\nStrictModes no\nPermitRootLogin yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 MaxStartups 100\nLogLevel ERROR\n",
                hk = d.join("host_key").display(),
                ak = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
            );
            std::fs::write(d.join("sshd_config"), config).unwrap();
            let mut cmd = Command::new("/usr/sbin/sshd");
            cmd.args(["-D", "-e", "-f"]).arg(d.join("sshd_config"));
            if sh_login && unsafe { libc::getuid() } == 0 && require("unshare") {
                let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
                let sh: String = passwd
                    .lines()
                    .map(|l| match l.rsplit_once(':') {
                        Some((head, _)) if l.starts_with("root:") => format!("{head}:/bin/sh\n"),
                        _ => format!("{l}\n"),
                    })
                    .collect();
                std::fs::write(d.join("passwd"), sh).unwrap();
                cmd = Command::new("unshare");
                cmd.args(["-m", "sh", "-c"]).arg(format!(
                    "mount --bind {} /etc/passwd && exec /usr/sbin/sshd -D -e -f {}",
                    d.join("passwd").display(),
                    d.join("sshd_config").display()
                ));
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let mut parts = host_pub.split_whitespace();
                    let (t, k) = (parts.next().unwrap(), parts.next().unwrap());
                    std::fs::write(
                        d.join("known_hosts"),
                        format!("[127.0.0.1]:{port} {t} {k}\n"),
                    )
                    .unwrap();
                    return Some(Sshd {
                        port,
                        key: d.join("id_ed25519"),
                        known_hosts: d.join("known_hosts"),
                        host_pub,
                        child,
                        dir,
                    });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let log = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
            eprintln!("sshd attempt {attempt} on port {port} failed: {log}");
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start");
    }

    pub fn config(&self) -> SshConfig {
        SshConfig {
            alias: "test".into(),
            host: "127.0.0.1".into(),
            port: self.port,
            user: claw_host::ssh::local_user(),
            identity_file: Some(self.key.clone()),
            agent_socket: None,
            known_hosts: self.known_hosts.clone(),
            global_known_hosts: Vec::new(),
            accept_new: false,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
        }
    }

    pub fn runner(&self) -> Arc<SshRunner> {
        Arc::new(SshRunner::new(self.config()))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn local_runner() -> Arc<LocalRunner> {
    Arc::new(LocalRunner::new(Duration::from_secs(60)))
}

/// Drives one provider through single SDK calls; [`Driver::converge`] plans
/// and applies through the SDK's harness (the engine's steps, the real `decide`).
pub struct Driver {
    pub p: Arc<HostProvider>,
    pub ctx: Ctx,
}

pub fn attrs(pairs: &[(&str, Value)]) -> Attrs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

pub fn name_of(address: &str) -> (&str, &str, Option<String>) {
    let (t, rest) = address.split_once('.').unwrap();
    match rest.split_once("[\"") {
        Some((n, k)) => (t, n, Some(k.trim_end_matches("\"]").to_string())),
        None => (t, rest, None),
    }
}

impl Driver {
    pub fn new(runner: Arc<dyn Runner>, base: &Path) -> Driver {
        Driver {
            p: Arc::new(HostProvider::with_runner("test", runner)),
            ctx: Ctx::for_tests("t", base),
        }
    }

    pub fn prepare(&self, address: &str, a: &Attrs) -> Attrs {
        let (rtype, name, key) = name_of(address);
        let req = || InstanceRequest {
            address,
            rtype,
            name,
            key: key.as_deref(),
            attrs: a,
            ctx: &self.ctx,
        };
        let d = self.p.validate(req()).diagnostics;
        assert!(d.is_empty(), "{address}: {d:?}");
        self.p.prepare(req()).into_result().unwrap().attrs
    }

    /// One refresh call for all items: `(address, desired, prior)`.
    pub async fn refresh(
        &self,
        items: &[(&str, Option<&Attrs>, Option<&StateObject>)],
    ) -> RefreshResponse {
        self.p
            .refresh(RefreshRequest {
                ctx: self.ctx.clone(),
                items: items
                    .iter()
                    .map(|(a, d, p)| RefreshItem {
                        address: a.to_string(),
                        rtype: name_of(a).0.to_string(),
                        desired: d.cloned().map(std::sync::Arc::new),
                        prior: p.cloned().map(std::sync::Arc::new),
                        recheck: false,
                    })
                    .collect(),
                find_orphans: true,
            })
            .await
    }

    pub async fn live(
        &self,
        address: &str,
        desired: &Attrs,
        prior: Option<&StateObject>,
    ) -> Option<LiveObject> {
        let r = self.refresh(&[(address, Some(desired), prior)]).await;
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
        r.live.get(address).cloned().flatten()
    }

    pub async fn diff(
        &self,
        address: &str,
        desired: &Attrs,
        live: &LiveObject,
        prior: Option<&StateObject>,
    ) -> DiffResponse {
        self.p
            .diff(DiffRequest {
                ctx: self.ctx.clone(),
                address: address.into(),
                rtype: name_of(address).0.into(),
                desired: desired.clone(),
                live: std::sync::Arc::new(live.clone()),
                prior: prior.cloned().map(std::sync::Arc::new),
            })
            .await
    }

    pub async fn apply(
        &self,
        address: &str,
        op: Op,
        desired: Option<&Attrs>,
        prior: Option<&StateObject>,
    ) -> Result<Option<StateObject>, Diagnostic> {
        self.p
            .apply(ApplyRequest {
                ctx: self.ctx.clone(),
                address: address.into(),
                rtype: name_of(address).0.into(),
                op,
                desired: desired.cloned(),
                prior: prior.cloned().map(std::sync::Arc::new),
                live: None,
                changes: vec![],
            })
            .await
            .into_result()
            .map(|r| r.state)
    }

    /// A harness on this driver's provider, with `prior` recorded for `address`.
    pub fn harness(&self, address: &str, prior: Option<&StateObject>) -> Harness {
        let mut h = Harness::new(self.p.clone(), self.ctx.clone());
        if let Some(p) = prior {
            h.state.insert(
                address.into(),
                Recorded {
                    rtype: name_of(address).0.into(),
                    object: p.clone(),
                    deps: vec![],
                    prevent_destroy: false,
                },
            );
        }
        h
    }

    /// Plans and applies one address through the harness until a second plan
    /// shows nothing to do; returns the new state.
    pub async fn converge(
        &self,
        address: &str,
        desired: &Attrs,
        prior: Option<&StateObject>,
    ) -> StateObject {
        let (rtype, name, key) = name_of(address);
        let mut r = Resource::new(rtype, name, desired.clone());
        if let Some(k) = key {
            r = r.key(&k);
        }
        let mut h = self.harness(address, prior);
        h.set(vec![r]).converge().await;
        h.state[address].object.clone()
    }
}
