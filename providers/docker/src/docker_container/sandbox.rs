//! The sandbox attributes of a container: resource limits (changed in place
//! with the update API), capabilities, privileged and read-only modes,
//! security options, tmpfs mounts, the healthcheck, and `wait = "healthy"`.
//!
//! Each attribute is compared in a canonical form (bytes, nano-CPUs,
//! capability names without `CAP_`, durations in nanoseconds), so that what
//! `docker inspect` reports equals what was configured: no perpetual diff.

use crate::client::api_error;
use crate::diff::{cmp, cmp_map, prior_has, Rule};
use crate::util;
use bollard::models::*;
use bollard::Docker;
use claw_provider::*;
use std::collections::HashMap;
use std::time::Duration;

/// Limits Docker changes on a running container (`docker update`).
pub(crate) const IN_PLACE_LIMITS: &[&str] = &["memory", "memory_swap", "cpus", "pids_limit"];

/// The attributes only a new container can take.
const REPLACE_SIZES: &[&str] = &["shm_size"];

/// The default of `wait_timeout`.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(300);

const SIZE_HINT: &str =
    "write a size as Docker does: a number with an optional unit b, k, m, g, t or p (\"512m\", \"2g\", \"1.5g\"), or a number of bytes";

/// Parses a size as Docker's CLI does (go-units `RAMInBytes`): a decimal
/// number, an optional space, an optional unit `b k m g t p` (any case,
/// binary multiples), optionally followed by `i` and/or `b` (`"2GiB"`).
pub(crate) fn parse_size(s: &str) -> Result<i64, String> {
    let bad = || format!("`{s}` is not a size");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(bad());
    }
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut u = unit.as_str();
    let power = match u.chars().next() {
        Some(c @ ('k' | 'm' | 'g' | 't' | 'p')) => {
            u = &u[1..];
            "kmgtp".find(c).map_or(0, |i| i as u32 + 1)
        }
        _ => 0,
    };
    u = u.strip_prefix('i').unwrap_or(u);
    u = u.strip_prefix('b').unwrap_or(u);
    if !u.is_empty() {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let bytes = value * 1024f64.powi(power as i32);
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(format!("`{s}` is too large"));
    }
    Ok(bytes as i64)
}

/// A byte count in Docker's units: the largest unit that divides it (`512m`).
pub(crate) fn format_size(b: i64) -> String {
    for (unit, shift) in [("p", 50), ("t", 40), ("g", 30), ("m", 20), ("k", 10)] {
        let m = 1i64 << shift;
        if b != 0 && b % m == 0 {
            return format!("{}{unit}", b / m);
        }
    }
    b.to_string()
}

/// A size attribute's bytes (`-1`, unlimited, allowed for `memory_swap`).
pub(crate) fn size_of(v: &Value, key: &str) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::String(s) if key == "memory_swap" && s.trim() == "-1" => Ok(-1),
        Value::String(s) => parse_size(s),
        _ => Err(format!("`{key}` must be a size such as \"512m\"")),
    }
}

/// CPUs as Docker's `NanoCpus` (`"0.5"` → 500000000), exactly for decimals.
pub(crate) fn nano_cpus(v: &Value) -> Result<i64, String> {
    let text = match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_finite() => format!("{f}"),
        Value::String(s) => s.trim().to_string(),
        _ => return Err("`cpus` must be a number such as \"0.5\" or 2".into()),
    };
    let bad = || format!("`{text}` is not a number of CPUs (\"0.5\", \"2\")");
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > 9 {
        return Err(format!("`{text}`: CPUs take at most 9 decimals"));
    }
    let whole: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let part: i64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    let n = whole
        .checked_mul(1_000_000_000)
        .and_then(|w| w.checked_add(part))
        .ok_or_else(bad)?;
    if n <= 0 {
        return Err(format!("`{text}`: the number of CPUs must be more than 0"));
    }
    Ok(n)
}

/// `NanoCpus` as the decimal a user writes (`500000000` → `"0.5"`).
pub(crate) fn format_cpus(n: i64) -> String {
    let (whole, frac) = (n / 1_000_000_000, n % 1_000_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:09}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// A Go-style duration (`"30s"`, `"1m30s"`, `"500ms"`) in nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e})"))?;
    i64::try_from(d.as_nanos()).map_err(|_| format!("`{s}` is too long"))
}

pub(crate) fn format_duration(ns: i64) -> String {
    humantime::format_duration(Duration::from_nanos(ns.max(0) as u64))
        .to_string()
        .replace(' ', "")
}

/// A capability name as compared: upper case, without `CAP_`.
pub(crate) fn cap_name(c: &str) -> String {
    let u = c.trim().to_ascii_uppercase();
    u.strip_prefix("CAP_").map(str::to_string).unwrap_or(u)
}

fn caps(v: Option<&Value>) -> Option<Value> {
    let mut l: Vec<String> = util::str_list(v)?.iter().map(|c| cap_name(c)).collect();
    l.sort();
    l.dedup();
    Some(util::str_list_value(&l))
}

fn sorted(v: Option<&Value>) -> Option<Value> {
    let mut l = util::str_list(v)?;
    l.sort();
    Some(util::str_list_value(&l))
}

const DURATIONS: &[&str] = &["interval", "timeout", "start_period"];

/// A healthcheck in canonical form: durations as `1m30s`, zero values
/// (Docker's "use the default") left out.
fn healthcheck(v: Option<&Value>) -> Option<Value> {
    let m = v?.as_map()?;
    let mut out = Map::new();
    if let Some(t) = m.get("test") {
        out.insert("test".to_string(), t.clone());
    }
    for k in DURATIONS {
        match m.get(*k) {
            Some(Value::String(s)) => match parse_duration(s) {
                Ok(0) => {}
                Ok(ns) => {
                    out.insert(k.to_string(), Value::String(format_duration(ns)));
                }
                Err(_) => return Some(v?.clone()),
            },
            Some(Value::Null) | None => {}
            Some(other) => {
                out.insert(k.to_string(), other.clone());
            }
        }
    }
    match m.get("retries") {
        Some(Value::Int(0)) | Some(Value::Null) | None => {}
        Some(r) => {
            out.insert("retries".to_string(), r.clone());
        }
    }
    Some(Value::Map(out))
}

pub(crate) fn validate(a: &Attrs, err: &Rule<'_>, out: &mut Vec<Diagnostic>) {
    for k in ["memory", "memory_swap", "shm_size"] {
        if let Some(v @ (Value::String(_) | Value::Int(_))) = a.get(k) {
            match size_of(v, k) {
                Ok(b) if b < 0 && !(k == "memory_swap" && b == -1) => {
                    out.push(err(k, format!("`{k}` must not be negative")))
                }
                Ok(_) => {}
                Err(e) => out.push(err(k, e).with_hint(SIZE_HINT)),
            }
        }
    }
    if let (Some(m), Some(s)) = (a.get("memory"), a.get("memory_swap")) {
        if let (Ok(m), Ok(s)) = (size_of(m, "memory"), size_of(s, "memory_swap")) {
            if s != -1 && s < m {
                out.push(
                    err(
                        "memory_swap",
                        "`memory_swap` is memory plus swap: it cannot be less than `memory`".into(),
                    )
                    .with_hint("set it to at least `memory`, or \"-1\" for unlimited swap"),
                );
            }
        }
    }
    if let Some(v @ (Value::String(_) | Value::Int(_) | Value::Float(_))) = a.get("cpus") {
        if let Err(e) = nano_cpus(v) {
            out.push(err("cpus", e));
        }
    }
    for k in ["cap_add", "cap_drop"] {
        for (i, c) in util::str_list(a.get(k))
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let n = cap_name(c);
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                out.push(
                    err(
                        &format!("{k}[{i}]"),
                        format!("`{c}` is not a capability name"),
                    )
                    .with_hint(
                        "write capabilities as Docker does: \"NET_ADMIN\", \"SYS_PTRACE\", \"ALL\"",
                    ),
                );
            }
        }
    }
    if let Some(m) = a.get("tmpfs").and_then(Value::as_map) {
        for k in m.keys() {
            if !k.starts_with('/') {
                out.push(err(
                    &claw_provider::value::join_key("tmpfs", k),
                    format!("tmpfs target `{k}` must be an absolute path"),
                ));
            }
        }
    }
    if let Some(h) = a.get("healthcheck").and_then(Value::as_map) {
        if let Some(t) = util::str_list(h.get("test")) {
            match t.first().map(String::as_str) {
                Some("NONE") => {}
                Some("CMD" | "CMD-SHELL") if t.len() > 1 => {}
                _ => out.push(
                    err(
                        "healthcheck.test",
                        "`healthcheck.test` must start with \"CMD\" or \"CMD-SHELL\" and name a command, or be [\"NONE\"]".into(),
                    )
                    .with_hint("e.g. test = [\"CMD\", \"curl\", \"-f\", \"http://localhost/\"] or [\"CMD-SHELL\", \"pgrep agent\"]"),
                ),
            }
        }
        for k in DURATIONS {
            if let Some(Value::String(s)) = h.get(*k) {
                if let Err(e) = parse_duration(s) {
                    out.push(
                        err(&format!("healthcheck.{k}"), e)
                            .with_hint("write a duration such as \"5s\", \"1m30s\" or \"500ms\""),
                    );
                }
            }
        }
        if let Some(Value::Int(r)) = h.get("retries") {
            if *r < 0 {
                out.push(err(
                    "healthcheck.retries",
                    "`healthcheck.retries` must not be negative".into(),
                ));
            }
        }
    }
    if let Some(Value::String(w)) = a.get("wait") {
        if w != "healthy" {
            out.push(
                err("wait", format!("`wait = \"{w}\"` is not known"))
                    .with_hint("the one wait is \"healthy\": apply returns once Docker reports the container healthy"),
            );
        } else if util::s(a, "state") == Some("stopped") {
            out.push(err(
                "wait",
                "`wait = \"healthy\"` needs a running container, but `state = \"stopped\"`".into(),
            ));
        }
    }
    if let Some(Value::String(t)) = a.get("wait_timeout") {
        if let Err(e) = parse_duration(t) {
            out.push(
                err("wait_timeout", e).with_hint("write a duration such as \"90s\" or \"5m\""),
            );
        }
    }
}

/// Compares a limit by its canonical number; a limit no longer configured
/// replaces the container (Docker's update API cannot unset it), except
/// `pids_limit`, which is set back to unlimited in place.
fn cmp_limit(
    out: &mut Vec<AttrChange>,
    k: &str,
    d: Option<&Value>,
    l: Option<&Value>,
    prior_had: bool,
    canon: impl Fn(&Value) -> Option<i64>,
) {
    let l = l.filter(|v| !matches!(v, Value::Null));
    match d.filter(|v| !matches!(v, Value::Null)) {
        Some(d) => {
            let same = match (canon(d), l.and_then(&canon)) {
                (Some(a), Some(b)) => a == b,
                _ => Some(d) == l,
            };
            if !same {
                out.push(AttrChange::new(k, l.cloned(), Some(d.clone())));
            }
        }
        None if prior_had && l.is_some() => {
            let c = AttrChange::new(k, l.cloned(), None);
            out.push(if k == "pids_limit" {
                c
            } else {
                c.forcing_replace()
            });
        }
        None => {}
    }
}

/// The changes of the sandbox attributes.
pub(crate) fn diff(d: &Attrs, l: &Attrs, prior: Option<&Attrs>, out: &mut Vec<AttrChange>) {
    let ph = |k: &str| prior_has(prior, k);
    for k in ["memory", "memory_swap"] {
        cmp_limit(out, k, d.get(k), l.get(k), ph(k), |v| size_of(v, k).ok());
    }
    cmp_limit(out, "cpus", d.get("cpus"), l.get("cpus"), ph("cpus"), |v| {
        nano_cpus(v).ok()
    });
    cmp_limit(
        out,
        "pids_limit",
        d.get("pids_limit"),
        l.get("pids_limit"),
        ph("pids_limit"),
        |v| v.as_int().map(|n| if n <= 0 { -1 } else { n }),
    );
    for k in REPLACE_SIZES {
        let canon = |v: Option<&Value>| {
            v.map(|x| {
                size_of(x, k)
                    .map(|b| Value::String(format_size(b)))
                    .unwrap_or_else(|_| x.clone())
            })
        };
        cmp(
            out,
            k,
            canon(d.get(*k)).as_ref(),
            canon(l.get(*k)).as_ref(),
            ph(k),
            true,
        );
    }
    for k in ["cap_add", "cap_drop"] {
        cmp(
            out,
            k,
            caps(d.get(k)).or_else(|| d.get(k).cloned()).as_ref(),
            caps(l.get(k)).as_ref(),
            ph(k),
            true,
        );
    }
    for k in ["privileged", "read_only"] {
        cmp(
            out,
            k,
            d.get(k),
            l.get(k)
                .filter(|v| v.as_bool() == Some(true) || d.contains_key(k)),
            ph(k),
            true,
        );
    }
    cmp(
        out,
        "security_opt",
        sorted(d.get("security_opt"))
            .or_else(|| d.get("security_opt").cloned())
            .as_ref(),
        sorted(l.get("security_opt")).as_ref(),
        ph("security_opt"),
        true,
    );
    cmp_map(
        out,
        "tmpfs",
        d.get("tmpfs"),
        l.get("tmpfs"),
        ph("tmpfs"),
        true,
    );
    cmp(
        out,
        "healthcheck",
        healthcheck(d.get("healthcheck")).as_ref(),
        healthcheck(l.get("healthcheck")).as_ref(),
        ph("healthcheck"),
        true,
    );
}

fn size(d: &Attrs, k: &str) -> Result<Option<i64>, Diagnostic> {
    d.get(k)
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| size_of(v, k).map_err(|e| Diagnostic::error(e).with_attr(k)))
        .transpose()
}

fn cpus(d: &Attrs) -> Result<Option<i64>, Diagnostic> {
    d.get("cpus")
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| nano_cpus(v).map_err(|e| Diagnostic::error(e).with_attr("cpus")))
        .transpose()
}

/// The configured limits as the update API takes them. Without
/// `memory_swap`, a changed `memory` takes Docker's create-time default
/// (swap as large as the memory: `memory_swap = 2 × memory`), so raising the
/// memory above the old swap limit is not refused.
pub(crate) fn limits(d: &Attrs) -> Result<ContainerUpdateBody, Diagnostic> {
    let memory = size(d, "memory")?;
    let memory_swap = size(d, "memory_swap")?.or(memory.map(|m| m.saturating_mul(2)));
    Ok(ContainerUpdateBody {
        memory,
        memory_swap,
        nano_cpus: cpus(d)?,
        pids_limit: d.get("pids_limit").and_then(Value::as_int).or(Some(-1)),
        ..Default::default()
    })
}

/// Durations of a healthcheck in nanoseconds.
fn health_config(d: &Attrs) -> Result<Option<HealthConfig>, Diagnostic> {
    let Some(h) = d.get("healthcheck").and_then(Value::as_map) else {
        return Ok(None);
    };
    let dur = |k: &str| -> Result<Option<i64>, Diagnostic> {
        h.get(k)
            .and_then(Value::as_str)
            .map(|s| {
                parse_duration(s)
                    .map_err(|e| Diagnostic::error(e).with_attr(format!("healthcheck.{k}")))
            })
            .transpose()
    };
    Ok(Some(HealthConfig {
        test: util::str_list(h.get("test")),
        interval: dur("interval")?,
        timeout: dur("timeout")?,
        retries: h.get("retries").and_then(Value::as_int),
        start_period: dur("start_period")?,
        ..Default::default()
    }))
}

/// Sets the sandbox attributes on the create body.
pub(crate) fn create(d: &Attrs, body: &mut ContainerCreateBody) -> Result<(), Diagnostic> {
    let hc = body.host_config.get_or_insert_with(Default::default);
    let memory = size(d, "memory")?;
    hc.memory = memory;
    hc.memory_swap = size(d, "memory_swap")?;
    hc.nano_cpus = cpus(d)?;
    hc.pids_limit = d.get("pids_limit").and_then(Value::as_int);
    hc.shm_size = size(d, "shm_size")?;
    hc.cap_add = util::str_list(d.get("cap_add"));
    hc.cap_drop = util::str_list(d.get("cap_drop"));
    hc.privileged = d.get("privileged").and_then(Value::as_bool);
    hc.readonly_rootfs = d.get("read_only").and_then(Value::as_bool);
    hc.security_opt = util::str_list(d.get("security_opt"));
    hc.tmpfs =
        util::str_map_exposed(d.get("tmpfs")).map(|m| m.into_iter().collect::<HashMap<_, _>>());
    body.healthcheck = health_config(d)?;
    Ok(())
}

/// The sandbox attributes an inspect shows, in the configuration's shape.
pub(crate) fn from_inspect(hc: &HostConfig, cfg: &ContainerConfig, a: &mut Attrs) {
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            a.insert(k.to_string(), v);
        }
    };
    let pos = |v: Option<i64>| v.filter(|n| *n > 0);
    put(
        "memory",
        pos(hc.memory).map(|b| Value::String(format_size(b))),
    );
    put(
        "memory_swap",
        hc.memory_swap
            .filter(|n| *n > 0 || *n == -1)
            .map(|b| Value::String(if b == -1 { "-1".into() } else { format_size(b) })),
    );
    put(
        "cpus",
        pos(hc.nano_cpus).map(|n| Value::String(format_cpus(n))),
    );
    put("pids_limit", pos(hc.pids_limit).map(Value::Int));
    put(
        "shm_size",
        pos(hc.shm_size).map(|b| Value::String(format_size(b))),
    );
    let names = |l: &Option<Vec<String>>| {
        l.as_ref()
            .filter(|l| !l.is_empty())
            .map(|l| util::str_list_value(&l.iter().map(|c| cap_name(c)).collect::<Vec<_>>()))
    };
    put("cap_add", names(&hc.cap_add));
    put("cap_drop", names(&hc.cap_drop));
    put(
        "privileged",
        Some(Value::Bool(hc.privileged.unwrap_or(false))),
    );
    put(
        "read_only",
        Some(Value::Bool(hc.readonly_rootfs.unwrap_or(false))),
    );
    put(
        "security_opt",
        hc.security_opt
            .as_ref()
            .filter(|l| !l.is_empty())
            .map(|l| util::str_list_value(l)),
    );
    put(
        "tmpfs",
        hc.tmpfs
            .as_ref()
            .filter(|m| !m.is_empty())
            .map(|m| util::str_map_value(&m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())),
    );
    if let Some(h) = cfg
        .healthcheck
        .as_ref()
        .filter(|h| h.test.as_ref().is_some_and(|t| !t.is_empty()))
    {
        let mut m = Map::new();
        m.insert(
            "test".to_string(),
            util::str_list_value(h.test.as_deref().unwrap_or_default()),
        );
        for (k, v) in [
            ("interval", h.interval),
            ("timeout", h.timeout),
            ("start_period", h.start_period),
        ] {
            if let Some(ns) = v.filter(|n| *n > 0) {
                m.insert(k.to_string(), Value::String(format_duration(ns)));
            }
        }
        if let Some(r) = h.retries.filter(|r| *r > 0) {
            m.insert("retries".to_string(), Value::Int(r));
        }
        put("healthcheck", Some(Value::Map(m)));
    }
}

/// How long apply waits for `wait = "healthy"`, when asked to.
pub(crate) fn wait_for(d: &Attrs) -> Option<Duration> {
    (util::s(d, "wait") == Some("healthy")).then(|| {
        util::s(d, "wait_timeout")
            .and_then(|t| parse_duration(t).ok())
            .map(|ns| Duration::from_nanos(ns.max(0) as u64))
            .unwrap_or(DEFAULT_WAIT)
    })
}

/// The last line the last health check printed.
fn last_log(h: &Health) -> String {
    h.log
        .as_ref()
        .and_then(|l| l.last())
        .map(|r| {
            let out = r.output.as_deref().unwrap_or("").trim();
            let line = out.lines().last().unwrap_or("").trim();
            match (r.exit_code, line.is_empty()) {
                (Some(c), true) => format!("exit {c}, no output"),
                (Some(c), false) => format!("exit {c}: {line}"),
                (None, _) => line.to_string(),
            }
        })
        .unwrap_or_else(|| "no health check has run yet".into())
}

/// Waits until Docker reports the container healthy (polling its inspect);
/// an unhealthy or exited container, or the timeout, is an error carrying
/// the last health check's output.
pub(crate) async fn wait_healthy(
    p: &crate::DockerProvider,
    docker: &Docker,
    id: &str,
    name: &str,
    timeout: Duration,
    ctx: &Ctx,
    address: &str,
) -> Result<(), Diagnostic> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("no health check has run yet");
    let mut said = None;
    loop {
        p.client.count(1);
        let c = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| api_error(&format!("inspect container {name}"), &e))?;
        let st = c.state.unwrap_or_default();
        let health = st.health.clone();
        let status = health.as_ref().and_then(|h| h.status);
        if let Some(h) = &health {
            last = last_log(h);
        }
        match status {
            Some(HealthStatusEnum::HEALTHY) => return Ok(()),
            Some(HealthStatusEnum::UNHEALTHY) => {
                return Err(Diagnostic::error(format!(
                    "container {name} is unhealthy; its last health check said: {last}"
                ))
                .with_hint(format!(
                    "`docker inspect --format '{{{{json .State.Health}}}}' {name}` shows every check; fix the healthcheck or the program"
                )))
            }
            None | Some(HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) => {
                return Err(Diagnostic::error(format!(
                    "container {name} has no healthcheck to wait for"
                ))
                .with_attr("wait")
                .with_hint("add `healthcheck = { test = [\"CMD\", ...] }`, or remove `wait`"))
            }
            Some(HealthStatusEnum::STARTING) => {}
        }
        if st.running != Some(true) && st.restarting != Some(true) {
            return Err(Diagnostic::error(format!(
                "container {name} exited (code {}) before it was healthy; its last health check said: {last}",
                st.exit_code.unwrap_or(-1)
            ))
            .with_hint(format!("`docker logs {name}` shows what it printed")));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(Diagnostic::error(format!(
                "container {name} was not healthy within {}; its last health check said: {last}",
                humantime::format_duration(Duration::from_secs(timeout.as_secs().max(1)))
            ))
            .with_attr("wait_timeout")
            .with_hint(
                "raise `wait_timeout`, or check the healthcheck's `interval` and `start_period`",
            ));
        }
        if said.as_deref() != Some(last.as_str()) {
            ctx.progress
                .report(address, &format!("waiting for healthy: {last}"));
            said = Some(last.clone());
        }
        let nap = Duration::from_millis(500).min(deadline - now);
        tokio::select! {
            _ = ctx.cancel.cancelled() => {
                return Err(Diagnostic::error(format!(
                    "stopped waiting for container {name} to be healthy: the run was interrupted"
                )))
            }
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_docker_does() {
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("64 MB"), Ok(64 << 20));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10b"), Ok(10));
        for bad in ["12 parsecs", "", "m", "1.2.3g", "-5m", "5x", ".5g", "5 g b"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(512 << 20), "512m");
        assert_eq!(format_size(2 << 30), "2g");
        assert_eq!(format_size(1536), "1536");
        assert_eq!(format_size(67108864), "64m");
        assert_eq!(size_of(&Value::str("-1"), "memory_swap"), Ok(-1));
        assert!(size_of(&Value::str("-1"), "memory").is_err());
    }

    #[test]
    fn cpus_are_exact_nano_cpus() {
        assert_eq!(nano_cpus(&Value::str("0.5")), Ok(500_000_000));
        assert_eq!(nano_cpus(&Value::Float(1.25)), Ok(1_250_000_000));
        assert_eq!(nano_cpus(&Value::Int(2)), Ok(2_000_000_000));
        assert!(nano_cpus(&Value::str("0")).is_err());
        assert!(nano_cpus(&Value::str("half")).is_err());
        assert!(nano_cpus(&Value::str("0.1234567891")).is_err());
        assert_eq!(format_cpus(500_000_000), "0.5");
        assert_eq!(format_cpus(2_000_000_000), "2");
        assert_eq!(format_cpus(1_250_000_000), "1.25");
    }

    #[test]
    fn durations_and_caps_are_canonical() {
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(format_duration(90_000_000_000), "1m30s");
        assert_eq!(format_duration(500_000_000), "500ms");
        assert!(parse_duration("soon").is_err());
        assert_eq!(cap_name("cap_net_admin"), "NET_ADMIN");
        assert_eq!(cap_name("ALL"), "ALL");
    }

    fn attrs(j: serde_json::Value) -> Attrs {
        match Value::from_json(&j) {
            Value::Map(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn what_docker_reports_equals_what_was_configured() {
        let d = attrs(serde_json::json!({
            "memory": "512m", "memory_swap": "1g", "cpus": "0.5", "pids_limit": 100,
            "shm_size": "2g", "cap_add": ["net_admin"], "cap_drop": ["ALL"],
            "privileged": false, "read_only": true, "security_opt": ["no-new-privileges"],
            "tmpfs": { "/tmp": "rw,size=64m" },
            "healthcheck": { "test": ["CMD", "true"], "interval": "1s", "timeout": "60s", "retries": 3, "start_period": "0s" },
        }));
        let hc = HostConfig {
            memory: Some(512 << 20),
            memory_swap: Some(1 << 30),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(100),
            shm_size: Some(2 << 30),
            cap_add: Some(vec!["CAP_NET_ADMIN".into()]),
            cap_drop: Some(vec!["ALL".into()]),
            readonly_rootfs: Some(true),
            security_opt: Some(vec!["no-new-privileges".into()]),
            tmpfs: Some(HashMap::from([("/tmp".into(), "rw,size=64m".into())])),
            ..Default::default()
        };
        let cfg = ContainerConfig {
            healthcheck: Some(HealthConfig {
                test: Some(vec!["CMD".into(), "true".into()]),
                interval: Some(1_000_000_000),
                timeout: Some(60_000_000_000),
                retries: Some(3),
                start_period: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut l = Attrs::new();
        from_inspect(&hc, &cfg, &mut l);
        let mut out = Vec::new();
        diff(&d, &l, None, &mut out);
        assert!(out.is_empty(), "{out:?}");

        // A changed limit is in place; a changed capability replaces.
        let mut d2 = d.clone();
        d2.insert("memory".into(), Value::str("1g"));
        d2.insert(
            "cap_add".into(),
            util::str_list_value(&["SYS_PTRACE".into()]),
        );
        let mut out = Vec::new();
        diff(&d2, &l, None, &mut out);
        let got: Vec<(&str, bool)> = out.iter().map(|c| (c.path.as_str(), c.replace)).collect();
        assert_eq!(got, vec![("memory", false), ("cap_add", true)]);

        // A limit no longer configured replaces (pids_limit goes back in place).
        let mut d3 = d.clone();
        d3.remove("memory");
        d3.remove("pids_limit");
        let mut out = Vec::new();
        diff(&d3, &l, Some(&d), &mut out);
        let got: Vec<(&str, bool)> = out.iter().map(|c| (c.path.as_str(), c.replace)).collect();
        assert_eq!(got, vec![("memory", true), ("pids_limit", false)]);
    }
}
