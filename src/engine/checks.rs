//! `[check.*]` (SPEC §1.1a): health gates. A check is a node of the graph:
//! apply runs it once its dependencies are applied (every apply, changed or
//! not), retrying until healthy or its `timeout`; what depends on a failing
//! check is skipped. `claw check` runs each one once, now. `plan` never
//! runs them.
//!
//! Probes: `http` (a GET; a 2xx status is healthy; no proxy), `tcp` (a
//! connection is accepted), `command` (exit 0, run on the check's host
//! through its provider's runner, [`claw_provider::Provider::run`]).

use super::build::Refs;
use super::resolve::Sources;
use super::*;
use crate::config::checks::{target_problem, Probe};
use crate::config::template::{Ex, Seg};
use crate::state::Store;
use std::ops::Range;
use std::time::{Duration, Instant};

/// The longest one try may take (a check's `timeout` bounds all tries).
const TRY_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between two tries.
const INTERVAL: Duration = Duration::from_secs(1);
/// How much of an answer a report keeps.
const ANSWER_CHARS: usize = 200;

/// One evaluated `[check.NAME]`.
#[derive(Debug, Clone)]
pub struct CheckNode {
    /// `check.NAME`
    pub address: String,
    pub probe: Probe,
    /// The probe's target; references remain.
    pub target: Ex,
    /// The provider block of the host a `command` runs on.
    pub host: String,
    pub timeout: Duration,
    /// Addresses it waits for (`depends_on` and references).
    pub deps: BTreeSet<String>,
    /// The check's table, to locate errors.
    pub span: Range<usize>,
}

/// Evaluates every `[check.*]`, checks its references and `depends_on`.
pub(super) fn build(refs: &Refs<'_>, errs: &mut Vec<Problem>) -> BTreeMap<String, CheckNode> {
    let cfg = refs.cfg;
    let mut out = BTreeMap::new();
    for c in &cfg.checks {
        let address = c.address();
        let Some((target, mut deps)) = refs.free_value(&address, &c.node, &c.target, errs) else {
            continue;
        };
        let before = errs.len();
        for (d, span) in &c.depends_on {
            match refs.depends(d, span) {
                Ok(ds) if ds.contains(&address) => errs
                    .push(Problem::new(format!("{address} depends on itself")).at(cfg.loc(span))),
                Ok(ds) => deps.extend(ds),
                Err(p) => errs.push(p),
            }
        }
        if secret_in(&target) {
            errs.push(
                Problem::new(format!(
                    "{address}: `{}` uses a sensitive value",
                    c.probe.key()
                ))
                .at(cfg.loc(&c.target.span))
                .detail(
                    "a check's target is shown in its report (and a command is on a command line)",
                )
                .hint("check something that needs no secret, such as a health URL"),
            );
        }
        if errs.len() > before {
            continue;
        }
        out.insert(
            address.clone(),
            CheckNode {
                address,
                probe: c.probe,
                target,
                host: c.host_key.clone(),
                timeout: c.timeout,
                deps,
                span: c.node.span.clone(),
            },
        );
    }
    out
}

fn secret_in(ex: &Ex) -> bool {
    match ex {
        Ex::Val(v) => v.contains_secret(),
        Ex::Str(segs) => segs
            .iter()
            .any(|s| matches!(s, Seg::Val(v) if v.contains_secret())),
        Ex::List(l) => l.iter().any(secret_in),
        Ex::Map(m) => m.values().any(secret_in),
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub address: String,
    /// `http`, `tcp` or `command`.
    pub probe: &'static str,
    /// What was probed (the URL, `host:port`, the command).
    pub target: String,
    pub healthy: bool,
    /// The last answer: `HTTP 200 OK`, `connection refused`, `exit 1: ...`.
    pub answer: String,
    pub tries: u32,
}

impl Workspace {
    /// The checks an apply of a plan runs: none in destroy mode; with
    /// targets, those the selection holds; else every check.
    pub(super) fn planned_checks(
        &self,
        selected: Option<&BTreeSet<String>>,
        destroy: bool,
    ) -> Vec<String> {
        if destroy {
            return Vec::new();
        }
        self.checks
            .keys()
            .filter(|a| selected.is_none_or(|s| s.contains(*a)))
            .cloned()
            .collect()
    }

    /// The target of `check` from `sources`, as text.
    fn check_target(
        &self,
        check: &CheckNode,
        sources: &Sources<'_>,
    ) -> std::result::Result<String, String> {
        let v = check.target.resolve(&|r| sources.value(r), &self.salt);
        let text = match v {
            Value::String(s) => s,
            Value::Unknown => {
                return Err(format!(
                    "its {} is not known yet (it refers to something not applied)",
                    check.probe.key()
                ))
            }
            Value::Secret(_) => return Err(format!("its {} is sensitive", check.probe.key())),
            other => template::to_text(&other),
        };
        target_problem(check.probe, &text).map_err(|(m, _)| m)?;
        Ok(text)
    }

    /// Runs `address` once (`claw check`), or (`patient`) until healthy or
    /// its timeout; `None` when `cancel` fired first.
    pub async fn run_check(
        &self,
        address: &str,
        sources: &Sources<'_>,
        patient: bool,
        cancel: &Cancel,
    ) -> Option<Report> {
        let check = self.checks.get(address)?;
        let mut report = Report {
            address: address.to_string(),
            probe: check.probe.key(),
            target: String::new(),
            healthy: false,
            answer: String::new(),
            tries: 0,
        };
        let target = match self.check_target(check, sources) {
            Ok(t) => t,
            Err(why) => {
                report.answer = why;
                return Some(report);
            }
        };
        report.target = target.clone();
        let deadline = Instant::now() + check.timeout;
        loop {
            report.tries += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let per_try = left.clamp(Duration::from_millis(200), TRY_TIMEOUT);
            let (healthy, answer) = tokio::select! {
                r = self.probe(check, &target, per_try) => r,
                _ = cancel.cancelled() => return None,
            };
            report.healthy = healthy;
            report.answer = clip(&answer);
            let left = deadline.saturating_duration_since(Instant::now());
            if healthy || !patient || left.is_zero() {
                return Some(report);
            }
            self.events.progress(
                address,
                &format!("unhealthy ({}); trying again", report.answer),
            );
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL.min(left)) => {}
                _ = cancel.cancelled() => return None,
            }
        }
    }

    /// One try: (healthy, answer).
    async fn probe(&self, check: &CheckNode, target: &str, per_try: Duration) -> (bool, String) {
        match check.probe {
            Probe::Http => http_get(target, per_try).await,
            Probe::Tcp => {
                match tokio::time::timeout(per_try, tokio::net::TcpStream::connect(target)).await {
                    Ok(Ok(_)) => (true, "connected".into()),
                    Ok(Err(e)) => (false, e.to_string()),
                    Err(_) => (false, format!("no answer within {}", secs(per_try))),
                }
            }
            Probe::Command => {
                let Some(p) = self.providers.get(&check.host) else {
                    return (false, format!("no configured host {}", check.host));
                };
                let req = RunRequest {
                    ctx: self.ctx(),
                    command: target.to_string(),
                };
                match tokio::time::timeout(per_try.max(check.timeout), p.run(req)).await {
                    Err(_) => (
                        false,
                        format!("still running after {}", secs(check.timeout)),
                    ),
                    Ok(r) => match r.into_result() {
                        Err(d) => (false, d.summary),
                        Ok(r) => {
                            let last = r.output.lines().rev().find(|l| !l.trim().is_empty());
                            let answer = match last {
                                Some(l) => format!("exit {}: {}", r.code, l.trim()),
                                None => format!("exit {}", r.code),
                            };
                            (r.code == 0, answer)
                        }
                    },
                }
            }
        }
    }

    /// `claw check`: every check once, concurrently, from the state as it
    /// is; reports in address order.
    pub async fn run_checks_now(&self, state: &State) -> Vec<Report> {
        let sources = Sources {
            state: Some(state),
            ..Default::default()
        };
        let cancel = Cancel::default();
        let runs = self
            .checks
            .keys()
            .map(|a| self.run_check(a, &sources, false, &cancel));
        join_all(runs).await.into_iter().flatten().collect()
    }

    /// Apply's check operation: runs until healthy or the timeout, from the
    /// state as this run has written it. `Ok(what)` when healthy.
    pub(super) async fn check_op(
        &self,
        address: &str,
        store: &Store,
        observed: &BTreeMap<String, Observed>,
        cancel: &Cancel,
    ) -> std::result::Result<String, Problem> {
        if cancel.is_cancelled() {
            return Err(self.diag_problem(&cancel.decline(address), address));
        }
        self.events.op_started(address, "checking");
        let st = store.snapshot().await;
        let sources = Sources {
            after: None,
            state: Some(&st),
            observed: Some(observed),
        };
        let Some(r) = self.run_check(address, &sources, true, cancel).await else {
            return Err(self.diag_problem(&cancel.decline(address), address));
        };
        if r.healthy {
            return Ok(format!("healthy ({})", r.answer));
        }
        let timeout = self
            .checks
            .get(address)
            .map(|c| c.timeout)
            .unwrap_or_default();
        let tries = if r.tries == 1 {
            "1 try".to_string()
        } else {
            format!("{} tries", r.tries)
        };
        Err(Problem::new(format!(
            "{address} is unhealthy after {} ({tries}): {}",
            secs(timeout),
            r.answer
        ))
        .hint("what depends on it was skipped; `claw check` runs the checks again now"))
    }
}

/// A GET of `url`: healthy on a 2xx status.
async fn http_get(url: &str, per_try: Duration) -> (bool, String) {
    // One rustls crypto provider in the whole tree: ring. Installing it is a
    // no-op when another part of claw already did.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(per_try)
        .user_agent(concat!("claw/", env!("CARGO_PKG_VERSION"), " (check)"))
        .build()
    {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot make an HTTP client: {e}")),
    };
    match client.get(url).send().await {
        Ok(resp) => {
            let status = resp.status();
            let healthy = status.is_success();
            let mut answer = format!("HTTP {status}");
            if !healthy {
                if let Ok(body) = resp.text().await {
                    if let Some(line) = body.lines().map(str::trim).find(|l| !l.is_empty()) {
                        answer.push_str(": ");
                        answer.push_str(line);
                    }
                }
            }
            (healthy, answer)
        }
        Err(e) if e.is_timeout() => (false, format!("no answer within {}", secs(per_try))),
        Err(e) => {
            // The innermost cause says it plainly ("Connection refused").
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            (false, cause.to_string())
        }
    }
}

fn secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}

fn clip(s: &str) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    match one_line.char_indices().nth(ANSWER_CHARS) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}
