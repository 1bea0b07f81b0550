//! Pure helpers: Docker's short port syntax, restart policies, names,
//! attribute access. No IO.

use bollard::models::{PortBinding, RestartPolicy, RestartPolicyNameEnum};
use claw_provider::{Attrs, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// One published port: `host_ip:host_port:container_port/proto` (host parts may be empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortSpec {
    pub container_port: u16,
    pub proto: String,
    pub host_ip: String,
    pub host_port: String,
}

impl PortSpec {
    pub fn key(&self) -> String {
        format!("{}/{}", self.container_port, self.proto)
    }
    /// The canonical short syntax (what the plan compares).
    pub fn canonical(&self) -> String {
        let mut s = String::new();
        if !self.host_ip.is_empty() {
            if self.host_ip.contains(':') {
                s.push_str(&format!("[{}]:", self.host_ip));
            } else {
                s.push_str(&format!("{}:", self.host_ip));
            }
            s.push_str(&format!("{}:", self.host_port));
        } else if !self.host_port.is_empty() {
            s.push_str(&format!("{}:", self.host_port));
        }
        s.push_str(&self.container_port.to_string());
        if self.proto != "tcp" {
            s.push_str(&format!("/{}", self.proto));
        }
        s
    }
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let a: u16 = a
        .parse()
        .map_err(|_| format!("`{s}` is not a port or port range"))?;
    let b: u16 = b
        .parse()
        .map_err(|_| format!("`{s}` is not a port or port range"))?;
    if a == 0 || b < a {
        return Err(format!("`{s}` is not a valid port range"));
    }
    Ok((a, b))
}

/// Parses Docker's short syntax `[[ip:]host_port:]container_port[/proto]`
/// (ranges `8000-8002:8000-8002` expand to one spec per port).
pub fn parse_port(spec: &str) -> Result<Vec<PortSpec>, String> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_string()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("`{spec}`: protocol must be tcp, udp or sctp"));
    }
    // An IPv6 host address is written in brackets.
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r
            .split_once("]:")
            .ok_or_else(|| format!("`{spec}`: unclosed `[` around the host address"))?;
        (ip.to_string(), after.to_string())
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), rest.to_string()),
            3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
            _ => return Err(format!("`{spec}` is not Docker's short port syntax [[ip:]host_port:]container_port[/proto]")),
        }
    };
    let (host, cont) = match rest.split_once(':') {
        Some((h, c)) => (h.to_string(), c.to_string()),
        None => (String::new(), rest.clone()),
    };
    let (c0, c1) = parse_port_range(&cont).map_err(|e| format!("`{spec}`: {e}"))?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(parse_port_range(&host).map_err(|e| format!("`{spec}`: {e}"))?)
    };
    if let Some((h0, h1)) = host_range {
        if h1 - h0 != c1 - c0 && h0 != h1 {
            return Err(format!(
                "`{spec}`: the host and container port ranges differ in length"
            ));
        }
    }
    let mut out = Vec::new();
    for (i, c) in (c0..=c1).enumerate() {
        let host_port = match host_range {
            None => String::new(),
            Some((h0, h1)) if h0 == h1 && c0 != c1 => h0.to_string(),
            Some((h0, _)) => (h0 as usize + i).to_string(),
        };
        out.push(PortSpec {
            container_port: c,
            proto: proto.clone(),
            host_ip: ip.clone(),
            host_port,
        });
    }
    Ok(out)
}

/// All specs of a list of short-syntax strings, sorted (order does not matter to Docker).
pub fn parse_ports(specs: &[String]) -> Result<Vec<PortSpec>, String> {
    let mut out = Vec::new();
    for s in specs {
        out.extend(parse_port(s)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The Engine's `PortBindings` (and exposed ports) for these specs.
pub fn port_bindings(specs: &[PortSpec]) -> HashMap<String, Option<Vec<PortBinding>>> {
    let mut m: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in specs {
        m.entry(p.key())
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: Some(p.host_port.clone()),
            });
    }
    m
}

/// The specs an inspected container's `PortBindings` describe.
pub fn ports_from_bindings(m: &HashMap<String, Option<Vec<PortBinding>>>) -> Vec<PortSpec> {
    let mut out = Vec::new();
    for (k, v) in m {
        let (port, proto) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        for b in v.iter().flatten() {
            out.push(PortSpec {
                container_port: port,
                proto: proto.to_string(),
                host_ip: b.host_ip.clone().unwrap_or_default(),
                host_port: b.host_port.clone().unwrap_or_default(),
            });
        }
    }
    out.sort();
    out
}

/// Parses `no`, `always`, `unless-stopped`, `on-failure`, `on-failure:N`.
pub fn parse_restart(s: &str) -> Result<RestartPolicy, String> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (
            n,
            Some(
                c.parse::<i64>()
                    .map_err(|_| format!("`{s}`: the retry count after `:` must be a number"))?,
            ),
        ),
        None => (s, None),
    };
    let name = match name {
        "no" | "" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => {
            return Err(format!(
                "`{s}` is not a restart policy (no, always, unless-stopped, on-failure[:N])"
            ))
        }
    };
    if count.is_some() && name != RestartPolicyNameEnum::ON_FAILURE {
        return Err(format!("`{s}`: only on-failure takes a retry count"));
    }
    Ok(RestartPolicy {
        name: Some(name),
        maximum_retry_count: count,
    })
}

/// The canonical string of a restart policy (`no` when unset).
pub fn restart_string(p: Option<&RestartPolicy>) -> String {
    let Some(p) = p else {
        return "no".into();
    };
    let name = match p.name {
        Some(RestartPolicyNameEnum::ALWAYS) => "always",
        Some(RestartPolicyNameEnum::UNLESS_STOPPED) => "unless-stopped",
        Some(RestartPolicyNameEnum::ON_FAILURE) => "on-failure",
        _ => "no",
    };
    match (name, p.maximum_retry_count) {
        ("on-failure", Some(n)) if n > 0 => format!("on-failure:{n}"),
        _ => name.to_string(),
    }
}

/// Canonical form of a configured restart string (`on-failure:0` → `on-failure`).
pub fn canonical_restart(s: &str) -> String {
    parse_restart(s)
        .map(|p| restart_string(Some(&p)))
        .unwrap_or_else(|_| s.to_string())
}

/// Docker object names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `<stack>-<name>` or `<stack>-<name>-<key>`, with characters Docker refuses turned into `-`.
pub fn default_name(stack: &str, name: &str, key: Option<&str>) -> String {
    let raw = match key {
        Some(k) => format!("{stack}-{name}-{k}"),
        None => format!("{stack}-{name}"),
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A string attribute.
pub fn s<'a>(a: &'a Attrs, k: &str) -> Option<&'a str> {
    a.get(k).and_then(Value::as_str)
}

/// A list of strings, when every element is a known string.
pub fn str_list(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_list()?
        .iter()
        .map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// A map of strings (secrets exposed), when every value is known.
pub fn str_map_exposed(v: Option<&Value>) -> Option<BTreeMap<String, String>> {
    v?.as_map()?
        .iter()
        .map(|(k, x)| value_to_plain(x).map(|s| (k.clone(), s)))
        .collect()
}

/// A scalar as the string Docker receives (secrets exposed).
pub fn value_to_plain(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Secret(s) => s.expose().map(str::to_string),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

pub fn str_map_value(m: &BTreeMap<String, String>) -> Value {
    Value::Map(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

pub fn str_list_value(l: &[String]) -> Value {
    Value::List(l.iter().cloned().map(Value::String).collect())
}

/// Labels without claw's own `claw.dev/` ones (those are compared separately).
pub fn user_labels(l: &HashMap<String, String>) -> BTreeMap<String, String> {
    l.iter()
        .filter(|(k, _)| !k.starts_with("claw.dev/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `repo:tag` with the implicit `:latest` added, for matching RepoTags.
pub fn normalize_ref(r: &str) -> String {
    if r.starts_with("sha256:") || r.contains('@') {
        return r.to_string();
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    let r = if last.contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    };
    r.strip_prefix("docker.io/library/")
        .or_else(|| r.strip_prefix("docker.io/"))
        .map(str::to_string)
        .unwrap_or(r)
}

/// A bind-mount source as Docker needs it: absolute (relative paths resolve
/// from the folder of claw.toml, itself made absolute), `.` and `..` removed.
pub fn abs_path(base: &Path, source: &str) -> String {
    let joined = base.join(source);
    let joined = if joined.is_absolute() {
        joined
    } else {
        std::env::current_dir()
            .map(|d| d.join(&joined))
            .unwrap_or(joined)
    };
    let mut out = std::path::PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out.to_string_lossy().into_owned()
}

/// Set difference helper for network lists.
pub fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_port_syntax() {
        let p = parse_port("8080:80").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].host_port, "8080");
        assert_eq!(p[0].canonical(), "8080:80");
        let p = parse_port("127.0.0.1:9000:9000/udp").unwrap();
        assert_eq!(p[0].host_ip, "127.0.0.1");
        assert_eq!(p[0].proto, "udp");
        assert_eq!(p[0].canonical(), "127.0.0.1:9000:9000/udp");
        let p = parse_port("80").unwrap();
        assert_eq!(p[0].host_port, "");
        assert_eq!(p[0].canonical(), "80");
        let p = parse_port("[::1]:8080:80").unwrap();
        assert_eq!(p[0].host_ip, "::1");
        assert_eq!(p[0].canonical(), "[::1]:8080:80");
        let p = parse_port("8000-8002:9000-9002").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[2].host_port, "8002");
        assert_eq!(p[2].container_port, 9002);
        assert!(parse_port("80/xyz").is_err());
        assert!(parse_port("a:b").is_err());
        assert!(parse_port("1-2:1-5").is_err());
    }

    #[test]
    fn ports_round_trip_through_bindings() {
        let specs = parse_ports(&["127.0.0.1:9000:9000/udp".into(), "8080:80".into()]).unwrap();
        let back = ports_from_bindings(&port_bindings(&specs));
        assert_eq!(back, specs);
    }

    #[test]
    fn restart_policies() {
        assert_eq!(canonical_restart("on-failure:3"), "on-failure:3");
        assert_eq!(canonical_restart("unless-stopped"), "unless-stopped");
        assert_eq!(restart_string(None), "no");
        assert!(parse_restart("sometimes").is_err());
        assert!(parse_restart("always:3").is_err());
    }

    #[test]
    fn names_and_refs() {
        assert!(valid_name("clawker.app.dev"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a b"));
        assert_eq!(default_name("s", "web", Some("a b")), "s-web-a-b");
        assert_eq!(normalize_ref("busybox"), "busybox:latest");
        assert_eq!(normalize_ref("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(normalize_ref("localhost:5000/x"), "localhost:5000/x:latest");
    }

    #[test]
    fn bind_sources_become_absolute() {
        assert_eq!(abs_path(Path::new("/a/b"), "."), "/a/b");
        assert_eq!(abs_path(Path::new("/a/b"), "../c/./d"), "/a/c/d");
        assert_eq!(abs_path(Path::new("/a/b"), "/x"), "/x");
        assert!(abs_path(Path::new("."), "w").starts_with('/'));
    }
}
