//! The SSH runner: russh, one connection per host made on first use and
//! reused for every probe and change, one channel per script (channels are
//! multiplexed, so concurrent scripts share the connection).
//!
//! Host keys are verified against known_hosts ([`crate::known_hosts`]);
//! `accept-new` records unknown keys and still refuses changed ones.
//! Authentication: `identity_file` when given; otherwise every key of the
//! agent at `SSH_AUTH_SOCK`, then the default key files `~/.ssh/id_ed25519`,
//! `id_ecdsa`, `id_rsa` (unencrypted ones).

use crate::known_hosts::{self, HostKeyStatus};
use crate::runner::{sh_quote, Output, Runner};
use async_trait::async_trait;
use claw_provider::Diagnostic;
use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::ChannelMsg;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// The `[host.<alias>]` name, for messages.
    pub alias: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identity_file: Option<PathBuf>,
    /// The ssh-agent socket (from `SSH_AUTH_SOCK` when configured by claw).
    pub agent_socket: Option<PathBuf>,
    pub known_hosts: PathBuf,
    /// Read-only system-wide files checked after `known_hosts`
    /// (`/etc/ssh/ssh_known_hosts` when `known_hosts` is not configured).
    pub global_known_hosts: Vec<PathBuf>,
    pub accept_new: bool,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

impl SshConfig {
    fn target(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

/// Splits `host`, `host:port` or `[v6]:port`.
pub fn split_address(address: &str, default_port: u16) -> Result<(String, u16), String> {
    let a = address.trim();
    if a.is_empty() {
        return Err("the address is empty".into());
    }
    if let Some(rest) = a.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("{a:?}: missing `]`"))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("{a:?}: bad port {p:?}"))?,
            None if tail.is_empty() => default_port,
            None => return Err(format!("{a:?}: unexpected {tail:?} after `]`")),
        };
        return Ok((h.to_string(), port));
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = p.parse().map_err(|_| format!("{a:?}: bad port {p:?}"))?;
            Ok((h.to_string(), port))
        }
        _ => Ok((a.to_string(), default_port)),
    }
}

/// The local login name (for a host without `user`).
pub fn local_user() -> String {
    for v in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(v) {
            if !u.is_empty() {
                return u;
            }
        }
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy
    // the name out immediately.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    "root".into()
}

/// Expands a leading `~/` with the local home folder.
pub fn expand_local_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(rest);
        }
    }
    PathBuf::from(p)
}

/// What went wrong with the host key, kept by the handler for the error message.
#[derive(Debug, Clone)]
enum KeyProblem {
    Unknown {
        key: PublicKey,
    },
    Changed {
        key: PublicKey,
        file: PathBuf,
        line: usize,
    },
    Revoked {
        key: PublicKey,
        file: PathBuf,
        line: usize,
    },
    Io(String),
}

struct Verifier {
    cfg: Arc<SshConfig>,
    problem: Arc<Mutex<Option<KeyProblem>>>,
}

impl Verifier {
    fn verify(&self, key: &PublicKey) -> bool {
        let c = &self.cfg;
        let set = |p: KeyProblem| {
            *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
            false
        };
        // The configured file first, then the system-wide ones (read only).
        let mut files = vec![c.known_hosts.clone()];
        files.extend(c.global_known_hosts.iter().cloned());
        for file in files {
            match known_hosts::check(&file, &c.host, c.port, key) {
                Ok(HostKeyStatus::Known) => return true,
                Ok(HostKeyStatus::Changed { line }) => {
                    return set(KeyProblem::Changed {
                        key: key.clone(),
                        file,
                        line,
                    })
                }
                Ok(HostKeyStatus::Revoked { line }) => {
                    return set(KeyProblem::Revoked {
                        key: key.clone(),
                        file,
                        line,
                    })
                }
                Ok(HostKeyStatus::Unknown) => {}
                Err(e) => {
                    return set(KeyProblem::Io(format!(
                        "cannot read {}: {e}",
                        file.display()
                    )))
                }
            }
        }
        if c.accept_new {
            match known_hosts::append(&c.known_hosts, &c.host, c.port, key) {
                Ok(()) => true,
                Err(e) => set(KeyProblem::Io(format!(
                    "cannot record the new host key in {}: {e}",
                    c.known_hosts.display()
                ))),
            }
        } else {
            set(KeyProblem::Unknown { key: key.clone() })
        }
    }
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(c) => PublicKey::new(c.public_key().clone(), ""),
        };
        Ok(self.verify(&key))
    }
}

type Handle = client::Handle<Verifier>;

/// Channels open at once on one connection (OpenSSH's `MaxSessions` defaults to 10).
pub const MAX_CHANNELS: usize = 8;

/// How often a refused channel is asked for again (2, 4, 6 ... ms apart: ~3.5 s in all).
const OPEN_RETRIES: u64 = 60;

/// Runs scripts on one host over one shared SSH connection.
pub struct SshRunner {
    cfg: Arc<SshConfig>,
    conn: tokio::sync::Mutex<Option<Arc<Handle>>>,
    /// A failed connection attempt is not retried within one run: every
    /// caller gets the same error at once.
    failed: Mutex<Option<Diagnostic>>,
    round_trips: AtomicU64,
    /// Bounds the channels open at once below sshd's `MaxSessions`
    /// (OpenSSH's default is 10).
    sessions: tokio::sync::Semaphore,
    connections: AtomicU64,
}

impl SshRunner {
    pub fn new(cfg: SshConfig) -> SshRunner {
        SshRunner {
            cfg: Arc::new(cfg),
            conn: tokio::sync::Mutex::new(None),
            failed: Mutex::new(None),
            round_trips: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            sessions: tokio::sync::Semaphore::new(MAX_CHANNELS),
        }
    }

    fn describe(&self) -> String {
        format!("host {} ({})", self.cfg.alias, self.cfg.target())
    }

    async fn handle(&self) -> Result<Arc<Handle>, Diagnostic> {
        let mut g = self.conn.lock().await;
        if let Some(h) = g.as_ref() {
            if !h.is_closed() {
                return Ok(h.clone());
            }
        }
        if let Some(d) = self
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(d);
        }
        match self.connect().await {
            Ok(h) => {
                let h = Arc::new(h);
                *g = Some(h.clone());
                Ok(h)
            }
            Err(d) => {
                *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(d.clone());
                Err(d)
            }
        }
    }

    async fn connect(&self) -> Result<Handle, Diagnostic> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let c = self.cfg.clone();
        let problem = Arc::new(Mutex::new(None));
        let verifier = Verifier {
            cfg: c.clone(),
            problem: problem.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 3,
            ..Default::default()
        });
        let attempt = async {
            let mut h = match connect_stream(config, &c.host, c.port, verifier).await {
                Ok(h) => h,
                Err(e) => {
                    let p = problem.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    return Err(match p {
                        Some(p) => self.key_error(p),
                        None => self.connect_error(&e),
                    });
                }
            };
            self.authenticate(&mut h).await?;
            Ok(h)
        };
        match tokio::time::timeout(c.connect_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Diagnostic::error(format!(
                "connecting to {} timed out after {}s",
                self.describe(),
                c.connect_timeout.as_secs()
            ))
            .with_hint(
                "check that the host is up and reachable (VPN/Tailscale, firewall), or raise `connect_timeout`",
            )),
        }
    }

    fn connect_error(&self, e: &russh::Error) -> Diagnostic {
        let reason = match e {
            russh::Error::IO(io) => io.to_string(),
            other => other.to_string(),
        };
        Diagnostic::error(format!("cannot reach {}: {reason}", self.describe())).with_hint(
            "check `address` and `port`, that sshd runs on the host and that the network path (VPN/Tailscale) is up",
        )
    }

    fn key_error(&self, p: KeyProblem) -> Diagnostic {
        let c = &self.cfg;
        let kh = c.known_hosts.display();
        let name = known_hosts::host_entry_name(&c.host, c.port);
        let fp = |k: &PublicKey| format!("{} {}", k.algorithm(), k.fingerprint(HashAlg::Sha256));
        match p {
            KeyProblem::Unknown { key } => Diagnostic::error(format!(
                "the host key of {} is not known: {} is not in {kh}",
                self.describe(),
                fp(&key)
            ))
            .with_detail(format!(
                "to trust it, add this line to {kh}:\n{}",
                known_hosts::entry_line(&c.host, c.port, &key)
            ))
            .with_hint(format!(
                "compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_{}_key.pub` on the host, then add the line above, or set host_key_policy = \"accept-new\" in [host.{}]",
                key_file_kind(&key),
                c.alias
            )),
            KeyProblem::Changed { key, file, line } => Diagnostic::error(format!(
                "HOST KEY CHANGED for {}: the server offers {} but {}:{line} records a different key",
                self.describe(),
                fp(&key),
                file.display()
            ))
            .with_detail(format!(
                "this can mean the host was reinstalled, or that someone is intercepting the connection; the new entry would be:\n{}",
                known_hosts::entry_line(&c.host, c.port, &key)
            ))
            .with_hint(format!(
                "if the change is expected, remove the old entry with `ssh-keygen -R '{name}' -f {}` and add the line above",
                file.display()
            )),
            KeyProblem::Revoked { key, file, line } => Diagnostic::error(format!(
                "the host key of {} ({}) is marked @revoked in {}:{line}",
                self.describe(),
                fp(&key),
                file.display()
            ))
            .with_hint("the host must be given a new key; claw will not connect with a revoked one"),
            KeyProblem::Io(msg) => Diagnostic::error(format!(
                "cannot verify the host key of {}: {msg}",
                self.describe()
            ))
            .with_hint("check `known_hosts` in the host's configuration and the file's permissions"),
        }
    }

    async fn authenticate(&self, h: &mut Handle) -> Result<(), Diagnostic> {
        let c = &self.cfg;
        let mut tried: Vec<String> = Vec::new();
        let mut server_methods: Option<Vec<String>> = None;
        let rsa_hash = h.best_supported_rsa_hash().await.ok().flatten().flatten();
        let note = |r: &russh::client::AuthResult, server_methods: &mut Option<Vec<String>>| {
            if let russh::client::AuthResult::Failure {
                remaining_methods, ..
            } = r
            {
                *server_methods = Some(
                    remaining_methods
                        .iter()
                        .map(|m| <&str>::from(m).to_string())
                        .collect(),
                );
            }
        };

        if let Some(path) = &c.identity_file {
            let key = russh::keys::load_secret_key(path, None).map_err(|e| {
                Diagnostic::error(format!(
                    "cannot load identity_file {} for {}: {e}",
                    path.display(),
                    self.describe()
                ))
                .with_hint(
                    "identity_file must be an unencrypted OpenSSH private key; for a key with a passphrase, add it to ssh-agent and remove identity_file",
                )
            })?;
            let r = h
                .authenticate_publickey(
                    &c.user,
                    PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash),
                )
                .await
                .map_err(|e| self.auth_transport_error(e))?;
            if r.success() {
                return Ok(());
            }
            note(&r, &mut server_methods);
            tried.push(format!("publickey with {} (rejected)", path.display()));
        } else {
            match &c.agent_socket {
                Some(sock) => {
                    match russh::keys::agent::client::AgentClient::connect_uds(sock).await {
                        Ok(mut agent) => {
                            let ids = agent.request_identities().await.unwrap_or_default();
                            let n = ids.len();
                            for id in ids {
                                let pk = id.public_key().into_owned();
                                let hash = if pk.algorithm().is_rsa() {
                                    rsa_hash
                                } else {
                                    None
                                };
                                match h
                                    .authenticate_publickey_with(&c.user, pk, hash, &mut agent)
                                    .await
                                {
                                    Ok(r) if r.success() => return Ok(()),
                                    Ok(r) => note(&r, &mut server_methods),
                                    Err(_) => {}
                                }
                            }
                            tried.push(format!(
                                "ssh-agent at {} ({n} key(s), all rejected)",
                                sock.display()
                            ));
                        }
                        Err(e) => tried.push(format!(
                            "ssh-agent at {} (cannot connect: {e})",
                            sock.display()
                        )),
                    }
                }
                None => tried.push("ssh-agent (SSH_AUTH_SOCK is not set)".into()),
            }
            for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                let path = expand_local_home(&format!("~/.ssh/{name}"));
                if !path.exists() {
                    continue;
                }
                match russh::keys::load_secret_key(&path, None) {
                    Ok(key) => {
                        let r = h
                            .authenticate_publickey(
                                &c.user,
                                PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash),
                            )
                            .await
                            .map_err(|e| self.auth_transport_error(e))?;
                        if r.success() {
                            return Ok(());
                        }
                        note(&r, &mut server_methods);
                        tried.push(format!("publickey with {} (rejected)", path.display()));
                    }
                    Err(_) => tried.push(format!(
                        "{} (skipped: encrypted or unreadable; add it to ssh-agent)",
                        path.display()
                    )),
                }
            }
        }
        let accepts = server_methods
            .map(|m| format!("; the server accepts: {}", m.join(", ")))
            .unwrap_or_default();
        Err(Diagnostic::error(format!(
            "authentication failed for {}",
            self.describe()
        ))
        .with_detail(format!("tried: {}{accepts}", tried.join("; ")))
        .with_hint(format!(
            "check `user` and `identity_file` in [host.{}], that the public key is in ~{}/.ssh/authorized_keys on the host, or load the key into ssh-agent",
            c.alias, c.user
        )))
    }

    fn auth_transport_error(&self, e: russh::Error) -> Diagnostic {
        Diagnostic::error(format!(
            "the connection to {} failed during authentication: {e}",
            self.describe()
        ))
        .with_hint("check that sshd on the host accepts connections from this machine")
    }

    async fn run_once(
        &self,
        h: &Handle,
        script: &str,
        stdin: &[u8],
    ) -> Result<Output, russh::Error> {
        let mut ch = h.channel_open_session().await?;
        ch.exec(true, format!("sh -c {}", sh_quote(script))).await?;
        if !stdin.is_empty() {
            ch.data(stdin).await?;
        }
        ch.eof().await?;
        let mut out = Output {
            code: -1,
            ..Default::default()
        };
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.code = exit_status as i32,
                ChannelMsg::Failure => {
                    out.stderr.extend_from_slice(
                        b"the SSH server refused to run the command (check ForceCommand / the login shell of the user)",
                    );
                }
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    out.code = -1;
                    out.stderr
                        .extend_from_slice(format!("killed by signal {signal_name:?}").as_bytes());
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Opens the TCP connection (no Nagle, ACKs at once) and runs the SSH handshake on it.
async fn connect_stream(
    config: Arc<client::Config>,
    host: &str,
    port: u16,
    verifier: Verifier,
) -> Result<Handle, russh::Error> {
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    client::connect_stream(config, QuickAck(tcp), verifier).await
}

/// The TCP stream to the host with delayed ACKs off: on Linux
/// `TCP_QUICKACK` is set again after every read (the kernel clears it).
///
/// Without it, every script paid ~40 ms once per connection: after the
/// login OpenSSH's sshd sends its `hostkeys-00@openssh.com` notice and then,
/// held back by Nagle's algorithm (sshd sets `TCP_NODELAY` only for
/// interactive sessions) until that notice is acknowledged, the channel
/// confirmation claw waits for before it may send the command, while this
/// side's kernel delays the ACK by its 40 ms timer.
struct QuickAck(tokio::net::TcpStream);

impl QuickAck {
    fn ack_at_once(&self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let one: libc::c_int = 1;
            // SAFETY: a valid socket fd and a c_int option of the right size.
            // A failure only costs the delayed ACK back.
            unsafe {
                libc::setsockopt(
                    self.0.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if r.is_ready() {
            self.ack_at_once();
        }
        r
    }
}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Non-interactive SSH sessions get a minimal PATH (on macOS `/usr/bin:/bin:
/// /usr/sbin:/sbin`), without Homebrew's git, tmux or pnpm: append the usual
/// Homebrew and /usr/local prefixes (the user's own PATH keeps priority).
pub const PATH_INIT: &str =
    "PATH=\"${PATH:-/usr/bin:/bin}:/opt/homebrew/bin:/opt/homebrew/sbin:/usr/local/bin:/usr/local/sbin\"; export PATH\n";

fn with_path(script: &str) -> String {
    format!("{PATH_INIT}{script}")
}

fn key_file_kind(k: &PublicKey) -> &'static str {
    let a = k.algorithm();
    if a.clone().is_rsa() {
        "rsa"
    } else if a.clone().is_ed25519() {
        "ed25519"
    } else {
        "ecdsa"
    }
}

#[async_trait]
impl Runner for SshRunner {
    fn target(&self) -> String {
        self.describe()
    }
    fn is_local(&self) -> bool {
        false
    }
    async fn run(&self, script: &str, stdin: &[u8]) -> Result<Output, Diagnostic> {
        let mut attempt = 0;
        let mut refused = 0u64;
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        loop {
            let h = self.handle().await?;
            let permit = self.sessions.acquire().await.map_err(|_| {
                Diagnostic::error(format!("the connection to {} was closed", self.describe()))
            })?;
            let r = tokio::time::timeout(
                self.cfg.command_timeout,
                self.run_once(&h, &with_path(script), stdin),
            )
            .await;
            match r {
                Ok(Ok(out)) => return Ok(out),
                // sshd frees a session only some time after its channel
                // closed, so a new channel can be refused although fewer
                // than `MaxSessions` are open: nothing ran yet, try again.
                Ok(Err(russh::Error::ChannelOpenFailure(_)))
                    if !h.is_closed() && refused < OPEN_RETRIES =>
                {
                    drop(permit);
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(2 * refused)).await;
                    continue;
                }
                Ok(Err(e @ russh::Error::ChannelOpenFailure(_))) if !h.is_closed() => {
                    return Err(Diagnostic::error(format!(
                        "{} refused to open a session {OPEN_RETRIES} times: {e}",
                        self.describe()
                    ))
                    .with_hint(format!(
                        "claw runs up to {MAX_CHANNELS} commands at once on one connection: check `MaxSessions` (at least {MAX_CHANNELS}) and `ForceCommand` in the host's sshd_config"
                    )));
                }
                Ok(Err(e)) => {
                    // The connection dropped (host rebooted, network blip): reconnect once.
                    if attempt == 0 && h.is_closed() {
                        attempt += 1;
                        let mut g = self.conn.lock().await;
                        if g.as_ref().is_some_and(|c| Arc::ptr_eq(c, &h)) {
                            *g = None;
                        }
                        continue;
                    }
                    return Err(Diagnostic::error(format!(
                        "running a command on {} failed: {e}",
                        self.describe()
                    ))
                    .with_hint("check that the host is reachable and that sshd allows sessions"));
                }
                Err(_) => {
                    return Err(Diagnostic::error(format!(
                        "a command on {} did not finish within {}s",
                        self.describe(),
                        self.cfg.command_timeout.as_secs()
                    ))
                    .with_hint(format!(
                        "raise `command_timeout` in [host.{}] or check the command",
                        self.cfg.alias
                    )))
                }
            }
        }
    }
    fn counters(&self) -> Vec<(String, u64)> {
        vec![
            (
                "ssh round trips".into(),
                self.round_trips.load(Ordering::Relaxed),
            ),
            (
                "ssh connections".into(),
                self.connections.load(Ordering::Relaxed),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(split_address("mac", 22).unwrap(), ("mac".into(), 22));
        assert_eq!(split_address("mac:2222", 22).unwrap(), ("mac".into(), 2222));
        assert_eq!(
            split_address("[::1]:2200", 22).unwrap(),
            ("::1".into(), 2200)
        );
        assert_eq!(split_address("[::1]", 23).unwrap(), ("::1".into(), 23));
        assert_eq!(
            split_address("fe80::1", 22).unwrap(),
            ("fe80::1".into(), 22)
        );
        assert!(split_address("mac:x", 22).is_err());
        assert!(split_address("", 22).is_err());
    }
}
