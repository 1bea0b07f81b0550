//! claw's host provider: `file`, `git_worktree`, `tmux_session` and `ssh_key` resources
//! on the local machine or on a host reached over SSH.
//!
//! Every host operation is a POSIX sh script run through a [`runner::Runner`]:
//! [`runner::LocalRunner`] spawns `sh -c`, the SSH runner (one connection per
//! host, channels multiplexed) runs the same scripts remotely.
//!
//! Invariants:
//! - **Refresh is batched**: one probe for all files of a host, one per
//!   (host, repository) for worktrees, one per (host, socket) for tmux.
//! - **`configure` never connects**: the SSH connection is made by the first
//!   script that needs it and then reused.
//! - **No secret on a command line**: secrets reach scripts on stdin
//!   ([`runner::Runner::run_with_secrets`]); stored digests are keyed (`Ctx::digest`).

#![allow(clippy::result_large_err)] // Diagnostic is the SDK's error type

pub mod file;
pub mod fileio;
pub mod identity;
pub mod known_hosts;
pub mod runner;
pub mod ssh;
pub mod ssh_key;
pub mod tmux;
pub mod worktree;

use async_trait::async_trait;
use claw_provider::*;
use runner::{LocalRunner, Runner};
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// `[host.<name>]`: a host reached over SSH. `[host.local]` (always defined)
/// takes no SSH attributes.
#[derive(Deserialize, JsonSchema, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// `host` or `host:port` (IPv6 as `[::1]:22`). Absent or empty: this machine, no SSH.
    #[serde(default)]
    pub address: Option<String>,
    /// The login user (default: the local user name).
    #[serde(default)]
    pub user: Option<String>,
    /// The SSH port when `address` has none (default 22).
    #[serde(default)]
    pub port: Option<u16>,
    /// A private key file (OpenSSH format); else the agent at `SSH_AUTH_SOCK`.
    #[serde(default)]
    pub identity_file: Option<String>,
    /// The known_hosts file to verify the host key against (default `~/.ssh/known_hosts`).
    #[serde(default)]
    pub known_hosts: Option<String>,
    /// `"strict"` (default: unknown keys are refused) or `"accept-new"`
    /// (unknown keys are recorded; changed keys are still refused).
    #[serde(default)]
    pub host_key_policy: Option<HostKeyPolicy>,
    /// Seconds to wait for the TCP connection and SSH handshake (default 10).
    #[serde(default)]
    pub connect_timeout: Option<u64>,
    /// Seconds one command may run before it is abandoned (default 600).
    #[serde(default)]
    pub command_timeout: Option<u64>,
}

/// How unknown host keys are treated.
#[derive(Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Unknown and changed keys are refused.
    Strict,
    /// Unknown keys are recorded in known_hosts; changed keys are refused.
    AcceptNew,
}

impl HostConfig {
    fn from_attrs(attrs: &Attrs) -> Result<HostConfig, Diagnostic> {
        let j = serde_json::Value::Object(
            attrs
                .iter()
                // An empty string is "not set": `address = "${vars.addr}"` with
                // an empty var means this machine.
                .filter(|(_, v)| v.as_str() != Some(""))
                .map(|(k, v)| (k.clone(), v.to_json_exposed()))
                .collect(),
        );
        serde_json::from_value(j).map_err(|e| {
            Diagnostic::error(format!("invalid host configuration: {e}"))
                .with_hint("see docs/providers/host.md for the attributes of [host.NAME]")
        })
    }
}

pub struct HostFactory;

/// The host provider factory, registered once in the `claw` crate.
pub fn factory() -> Arc<dyn ProviderFactory> {
    Arc::new(HostFactory)
}

#[async_trait]
impl ProviderFactory for HostFactory {
    fn kind(&self) -> &'static str {
        "host"
    }
    fn resource_types(&self) -> Vec<ResourceType> {
        vec![
            file::resource_type(),
            worktree::resource_type(),
            tmux::resource_type(),
            ssh_key::resource_type(),
        ]
    }
    fn config_shape(&self) -> Shape {
        Shape::of::<HostConfig>()
    }
    fn configure(&self, req: ConfigureRequest) -> Result<Arc<dyn Provider>, Diagnostic> {
        let cfg = HostConfig::from_attrs(&req.attrs)?;
        let command_timeout = Duration::from_secs(cfg.command_timeout.unwrap_or(600));
        let runner: Arc<dyn Runner> = match &cfg.address {
            None => {
                if cfg.user.is_some() || cfg.identity_file.is_some() || cfg.port.is_some() {
                    return Err(Diagnostic::error(format!(
                        "host {}: SSH settings without an `address`",
                        req.alias
                    ))
                    .with_attr("address")
                    .with_hint("add `address = \"host\"` (or `host:port`) to reach it over SSH"));
                }
                Arc::new(LocalRunner::new(command_timeout))
            }
            Some(address) => {
                let (host, port) =
                    ssh::split_address(address, cfg.port.unwrap_or(22)).map_err(|e| {
                        Diagnostic::error(format!("host {}: invalid address: {e}", req.alias))
                            .with_attr("address")
                            .with_hint("write `host`, `host:port` or `[ipv6]:port`")
                    })?;
                let resolve = |p: &str| {
                    let e = ssh::expand_local_home(p);
                    if e.is_relative() {
                        req.ctx.base_dir.join(e)
                    } else {
                        e
                    }
                };
                Arc::new(ssh::SshRunner::new(ssh::SshConfig {
                    alias: req.alias.clone(),
                    host,
                    port,
                    user: cfg.user.clone().unwrap_or_else(ssh::local_user),
                    identity_file: cfg.identity_file.as_deref().map(resolve),
                    agent_socket: std::env::var_os("SSH_AUTH_SOCK")
                        .filter(|s| !s.is_empty())
                        .map(std::path::PathBuf::from),
                    known_hosts: resolve(
                        cfg.known_hosts.as_deref().unwrap_or("~/.ssh/known_hosts"),
                    ),
                    global_known_hosts: if cfg.known_hosts.is_none() {
                        vec!["/etc/ssh/ssh_known_hosts".into()]
                    } else {
                        Vec::new()
                    },
                    accept_new: cfg.host_key_policy == Some(HostKeyPolicy::AcceptNew),
                    connect_timeout: Duration::from_secs(cfg.connect_timeout.unwrap_or(10)),
                    command_timeout,
                }))
            }
        };
        Ok(Arc::new(HostProvider::with_runner(&req.alias, runner)))
    }
}

/// One configured host.
pub struct HostProvider {
    pub alias: String,
    pub runner: Arc<dyn Runner>,
    repo_locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl HostProvider {
    /// A provider over any runner (tests use this to run one matrix through
    /// the local and the SSH runner).
    pub fn with_runner(alias: &str, runner: Arc<dyn Runner>) -> HostProvider {
        HostProvider {
            alias: alias.into(),
            runner,
            repo_locks: Default::default(),
        }
    }
}

fn unknown_type(rtype: &str) -> Diagnostic {
    Diagnostic::error(format!("the host provider has no resource type {rtype:?}"))
}

/// The refresh item an import probes: the import's address and type, the
/// given desired attributes, no prior state.
pub(crate) fn import_item(req: &ImportRequest, desired: &Attrs) -> RefreshItem {
    RefreshItem {
        address: req.address.clone(),
        rtype: req.rtype.clone(),
        desired: Some(std::sync::Arc::new(desired.clone())),
        prior: None,
        recheck: false,
    }
}

/// The outcome of an import's probe: its first error diagnostic, else the
/// live object at the import's address (`None`: it does not exist).
pub(crate) fn imported_live(
    mut resp: RefreshResponse,
    req: &ImportRequest,
) -> Result<Option<LiveObject>, Diagnostic> {
    if let Some(d) = resp.diagnostics.into_iter().find(Diagnostic::is_error) {
        return Err(d);
    }
    Ok(resp.live.remove(&req.address).flatten())
}

#[async_trait]
impl Provider for HostProvider {
    fn validate(&self, req: ValidateRequest<'_>) -> ValidateResponse {
        let diagnostics = match req.rtype {
            "file" => file::validate(&req),
            "git_worktree" => worktree::validate(&req),
            "tmux_session" => tmux::validate(&req),
            ssh_key::TYPE => ssh_key::validate(&req),
            other => vec![unknown_type(other)],
        };
        ValidateResponse { diagnostics }
    }

    fn prepare(&self, req: PrepareRequest<'_>) -> PrepareResponse {
        match req.rtype {
            "file" => file::prepare(&req).unwrap_or_else(PrepareResponse::failed),
            "git_worktree" => worktree::prepare(&req).into(),
            "tmux_session" => tmux::prepare(&req).into(),
            ssh_key::TYPE => ssh_key::prepare(&req).into(),
            other => PrepareResponse::failed(unknown_type(other)),
        }
    }

    /// A session started in a worktree, or a file inside one, waits for the
    /// worktree (and is deleted before it), without a `depends_on`.
    fn implicit_deps(&self, req: ImplicitDepsRequest) -> ImplicitDepsResponse {
        let norm = |p: &str| p.trim_end_matches('/').to_string();
        let worktrees: Vec<(&String, String)> = req
            .items
            .iter()
            .filter(|i| i.rtype == "git_worktree")
            .filter_map(|i| Some((&i.address, norm(i.attrs.get("path")?.as_str()?))))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        let mut edges = Vec::new();
        for item in &req.items {
            let key = match item.rtype.as_str() {
                "tmux_session" => "cwd",
                "file" => "path",
                _ => continue,
            };
            let Some(p) = item.attrs.get(key).and_then(Value::as_str).map(norm) else {
                continue;
            };
            for (wt, wp) in &worktrees {
                let inside = p.starts_with(&format!("{wp}/"));
                if inside || (key == "cwd" && p == *wp) {
                    edges.push(Edge::new(&item.address, *wt));
                }
            }
        }
        ImplicitDepsResponse {
            edges,
            diagnostics: Vec::new(),
        }
    }

    async fn refresh(&self, req: RefreshRequest) -> RefreshResponse {
        let mut resp = RefreshResponse::default();
        let of =
            |t: &str| -> Vec<&RefreshItem> { req.items.iter().filter(|i| i.rtype == t).collect() };
        let files = of("file");
        let keys = of(ssh_key::TYPE);
        let by_repo = worktree::group(&of("git_worktree"), &mut resp);
        let by_socket = tmux::group(&of("tmux_session"), &mut resp);
        for item in req.items.iter() {
            if !matches!(
                item.rtype.as_str(),
                "file" | "git_worktree" | "tmux_session" | ssh_key::TYPE
            ) {
                resp.diagnostics
                    .push(unknown_type(&item.rtype).with_address(&item.address));
                resp.live.insert(item.address.clone(), None);
            }
        }
        // One probe for the files, one per repository, one per socket; all
        // at once (multiplexed over the one SSH connection).
        let runner = self.runner.as_ref();
        let ctx = &req.ctx;
        let mut probes: Vec<
            std::pin::Pin<Box<dyn std::future::Future<Output = RefreshResponse> + Send + '_>>,
        > = Vec::new();
        if !files.is_empty() {
            probes.push(Box::pin(async move {
                let mut r = RefreshResponse::default();
                file::refresh(runner, ctx, &files, &mut r).await;
                r
            }));
        }
        if !keys.is_empty() {
            probes.push(Box::pin(async move {
                let mut r = RefreshResponse::default();
                ssh_key::refresh(runner, ctx, &keys, &mut r).await;
                r
            }));
        }
        for (repo, items) in &by_repo {
            probes.push(Box::pin(async move {
                let mut r = RefreshResponse::default();
                worktree::refresh_repo(runner, ctx, repo, items, &mut r).await;
                r
            }));
        }
        for (socket, items) in &by_socket {
            probes.push(Box::pin(async move {
                let mut r = RefreshResponse::default();
                tmux::refresh_socket(runner, ctx, socket, items, &mut r).await;
                r
            }));
        }
        for r in futures::future::join_all(probes).await {
            resp.live.extend(r.live);
            resp.orphans.extend(r.orphans);
            resp.diagnostics.extend(r.diagnostics);
        }
        // Identical errors (git missing for every worktree) are said once per item
        // by the probes; connection errors once per probe: keep the first of each.
        let mut seen = std::collections::BTreeSet::new();
        resp.diagnostics
            .retain(|d| seen.insert((d.address.clone(), d.summary.clone())));
        resp
    }

    async fn diff(&self, req: DiffRequest) -> DiffResponse {
        match req.rtype.as_str() {
            "file" => file::diff(&req),
            "git_worktree" => worktree::diff(&req),
            "tmux_session" => tmux::diff(&req),
            ssh_key::TYPE => ssh_key::diff(&req),
            _ => DiffResponse {
                changes: generic_diff(&req.desired, &req.live.attrs, &[]),
                ..Default::default()
            },
        }
    }

    async fn apply(&self, req: ApplyRequest) -> ApplyResponse {
        match req.rtype.as_str() {
            "file" => file::apply(self.runner.as_ref(), &req).await,
            "git_worktree" => {
                // One git operation at a time per repository: concurrent
                // `worktree add` / `prune` in one repository race. The
                // lock is released before `setup` runs, so setups overlap.
                let key = worktree::repo_key(&req);
                let lock = {
                    let mut m = self.repo_locks.lock().unwrap_or_else(|e| e.into_inner());
                    m.entry(key).or_default().clone()
                };
                let g = tokio::select! {
                    biased;
                    // Interrupted before it could start: it does not.
                    _ = req.ctx.cancel.cancelled() => {
                        return ApplyResponse::failed(req.ctx.cancel.decline(&req.address))
                    }
                    g = lock.lock() => g,
                };
                worktree::apply(self.runner.as_ref(), &req, &lock, g).await
            }
            "tmux_session" => tmux::apply(self.runner.as_ref(), &req).await,
            ssh_key::TYPE => ssh_key::apply(self.runner.as_ref(), &req).await,
            other => Err(unknown_type(other).with_address(&req.address)),
        }
        .into()
    }

    async fn import(&self, req: ImportRequest) -> ImportResponse {
        match req.rtype.as_str() {
            "file" => file::import(self.runner.as_ref(), &req).await,
            "git_worktree" => worktree::import(self.runner.as_ref(), &req).await,
            "tmux_session" => tmux::import(self.runner.as_ref(), &req).await,
            ssh_key::TYPE => ssh_key::import(self.runner.as_ref(), &req).await,
            other => Err(unknown_type(other).with_address(&req.address)),
        }
        .into()
    }

    /// A check's command, through the host's runner (local `sh` or SSH).
    async fn run(&self, req: RunRequest) -> RunResponse {
        match self.runner.run(&req.command, b"").await {
            Ok(out) => {
                let mut output = out.stdout_str();
                output.push_str(&String::from_utf8_lossy(&out.stderr));
                RunResponse {
                    code: out.code,
                    output,
                    diagnostics: Vec::new(),
                }
            }
            Err(d) => RunResponse::failed(d),
        }
    }

    fn identities(&self, req: IdentityRequest) -> IdentityResponse {
        identity::identities(
            &self.alias,
            self.runner.as_ref(),
            &req.ctx.base_dir,
            req.items,
        )
    }

    fn counters(&self) -> Vec<(String, u64)> {
        self.runner.counters()
    }
}
