//! The policy file: HuJSON parsing, the checks Tailscale's control server makes
//! on save, and evaluation of the policy's `tests` and `sshTests`.
//!
//! Only the subset of the policy language that claw's examples and tests use is
//! evaluated: `groups`, `tagOwners`, `hosts`, `acls` (accept rules with
//! `src`/`dst` `host:port`), `grants` (`src`/`dst`/`ip`), `ssh` rules, and the
//! selectors `*`, users, `group:`, `tag:`, `autogroup:member`,
//! `autogroup:tagged`, `autogroup:self`, host aliases and IPv4 addresses/CIDRs.

use serde_json::{Map, Value};

/// Top-level keys the control server accepts (others are rejected as unknown).
const KNOWN_KEYS: &[&str] = &[
    "acls",
    "grants",
    "groups",
    "hosts",
    "tagOwners",
    "tests",
    "sshTests",
    "ssh",
    "nodeAttrs",
    "autoApprovers",
    "postures",
    "defaultSrcPosture",
    "ipsets",
    "derpMap",
    "disableIPv4",
    "OneCGNATRoute",
    "randomizeClientPort",
    "attrConfig",
    "auto_approvers",
];

/// Parses HuJSON (JSON with comments and trailing commas) as the control
/// server does; other JSON5 extensions are errors. Errors read
/// `line L, column C: message`.
pub fn parse_hujson(text: &str) -> Result<Value, String> {
    let opts = jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    match jsonc_parser::parse_to_serde_value::<Value>(text, &opts) {
        Ok(Value::Null) if text.trim().is_empty() => Err("line 1, column 1: empty policy".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(format!(
            "line {}, column {}: {}",
            e.line_display(),
            e.column_display(),
            e.kind()
        )),
    }
}

/// One failing test, in the shape of the API's `data` entries.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TestFailure {
    pub user: String,
    pub errors: Vec<String>,
}

/// Why a policy is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyError {
    /// Syntax or a semantic error (unknown tag, bad port...).
    Invalid(String),
    /// The policy is valid but its `tests`/`sshTests` fail.
    TestsFailed(Vec<TestFailure>),
}

impl PolicyError {
    /// The JSON error body the API returns.
    pub fn body(&self) -> Value {
        match self {
            PolicyError::Invalid(m) => serde_json::json!({ "message": m }),
            PolicyError::TestsFailed(f) => serde_json::json!({
                "message": "test(s) failed",
                "data": f,
            }),
        }
    }
}

/// Parses and checks a policy, then runs its tests: what a save runs.
pub fn check_text(text: &str) -> Result<Value, PolicyError> {
    let v = parse_hujson(text).map_err(|e| PolicyError::Invalid(format!("parsing HuJSON: {e}")))?;
    check(&v)?;
    Ok(v)
}

/// Checks a parsed policy and runs its tests.
pub fn check(policy: &Value) -> Result<(), PolicyError> {
    let p = Policy::from_value(policy).map_err(PolicyError::Invalid)?;
    let tests = policy.get("tests").cloned().unwrap_or(Value::Null);
    let ssh_tests = policy.get("sshTests").cloned().unwrap_or(Value::Null);
    p.run_tests(&tests, &ssh_tests)
}

/// Runs a list of tests (the `/validate` body being a JSON array) against a policy.
pub fn run_tests_against(policy: &Value, tests: &Value) -> Result<(), PolicyError> {
    let p = Policy::from_value(policy).map_err(PolicyError::Invalid)?;
    p.run_tests(tests, &Value::Null)
}

/// Who a test's `src` is, or what a destination is.
#[derive(Debug, Clone, PartialEq)]
enum Ident {
    User(String),
    Tag(String),
    Host(String),
}

impl Ident {
    fn display(&self) -> &str {
        match self {
            Ident::User(s) | Ident::Tag(s) | Ident::Host(s) => s,
        }
    }
}

struct Rule {
    src: Vec<String>,
    /// (selector, ports) pairs.
    dst: Vec<(String, String)>,
    proto: Option<String>,
}

struct SshRule {
    action: String,
    src: Vec<String>,
    dst: Vec<String>,
    users: Vec<String>,
}

struct Policy {
    groups: Map<String, Value>,
    /// `groups`, as sets of members.
    members: std::collections::HashMap<String, std::collections::HashSet<String>>,
    tag_owners: Map<String, Value>,
    hosts: Map<String, Value>,
    rules: Vec<Rule>,
    ssh: Vec<SshRule>,
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what}: expected a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("{what}: expected a list of strings")),
    }
}

fn object(v: Option<&Value>, what: &str) -> Result<Map<String, Value>, String> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(o)) => Ok(o.clone()),
        Some(_) => Err(format!("{what}: expected an object")),
    }
}

/// Splits `selector:ports` at the last colon.
fn split_dst(s: &str) -> Option<(String, String)> {
    let (sel, ports) = s.rsplit_once(':')?;
    if sel.is_empty() || ports.is_empty() {
        return None;
    }
    Some((sel.to_string(), ports.to_string()))
}

fn valid_ports(p: &str) -> bool {
    p == "*"
        || p.split(',').all(|part| match part.split_once('-') {
            Some((a, b)) => a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok(),
            None => part.parse::<u16>().is_ok(),
        })
}

fn port_matches(spec: &str, port: u16) -> bool {
    spec == "*"
        || spec.split(',').any(|part| match part.split_once('-') {
            Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) => a <= port && port <= b,
                _ => false,
            },
            None => part.parse::<u16>() == Ok(port),
        })
}

fn parse_ipv4(s: &str) -> Option<u32> {
    let ip: std::net::Ipv4Addr = s.parse().ok()?;
    Some(u32::from(ip))
}

/// True when `ip` is `net` (an address or an IPv4 CIDR).
fn ip_in(ip: &str, net: &str) -> bool {
    if ip == net {
        return true;
    }
    let Some(addr) = parse_ipv4(ip) else {
        return false;
    };
    let (base, bits) = match net.split_once('/') {
        Some((b, n)) => match n.parse::<u32>() {
            Ok(n) if n <= 32 => (b, n),
            _ => return false,
        },
        None => (net, 32),
    };
    let Some(base) = parse_ipv4(base) else {
        return false;
    };
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    addr & mask == base & mask
}

impl Policy {
    fn from_value(v: &Value) -> Result<Policy, String> {
        let Value::Object(top) = v else {
            return Err("policy: expected a JSON object".into());
        };
        for k in top.keys() {
            if !KNOWN_KEYS.contains(&k.as_str()) {
                return Err(format!("json: unknown field {k:?}"));
            }
        }
        let groups = object(top.get("groups"), "groups")?;
        for (k, members) in &groups {
            if !k.starts_with("group:") {
                return Err(format!(
                    "groups: group name {k:?} must start with \"group:\""
                ));
            }
            strings(Some(members), &format!("groups[{k:?}]"))?;
        }
        let tag_owners = object(top.get("tagOwners"), "tagOwners")?;
        for (k, owners) in &tag_owners {
            if !k.starts_with("tag:") || k.len() <= 4 {
                return Err(format!(
                    "tagOwners: tag name {k:?} must look like \"tag:name\""
                ));
            }
            strings(Some(owners), &format!("tagOwners[{k:?}]"))?;
        }
        let hosts = object(top.get("hosts"), "hosts")?;
        let members = groups
            .iter()
            .map(|(k, v)| {
                let m = strings(Some(v), k).unwrap_or_default();
                (k.clone(), m.into_iter().collect())
            })
            .collect();
        let mut p = Policy {
            groups,
            members,
            tag_owners,
            hosts,
            rules: Vec::new(),
            ssh: Vec::new(),
        };
        // Owners of tags must be known groups/tags too.
        for (k, owners) in &p.tag_owners {
            for o in strings(Some(owners), k)? {
                p.check_selector(&o, &format!("tagOwners[{k:?}]"))?;
            }
        }
        match top.get("acls") {
            None | Some(Value::Null) => {}
            Some(Value::Array(acls)) => {
                for (i, a) in acls.iter().enumerate() {
                    let what = format!("acls[{i}]");
                    let action = a.get("action").and_then(Value::as_str).unwrap_or("");
                    if action != "accept" {
                        return Err(format!(
                            "{what}: action {action:?} is not valid; the only action is \"accept\""
                        ));
                    }
                    let src = strings(a.get("src"), &format!("{what}.src"))?;
                    if src.is_empty() {
                        return Err(format!("{what}: src is required"));
                    }
                    for s in &src {
                        p.check_selector(s, &format!("{what}.src"))?;
                    }
                    let mut dst = Vec::new();
                    for d in strings(a.get("dst"), &format!("{what}.dst"))? {
                        let Some((sel, ports)) = split_dst(&d) else {
                            return Err(format!(
                                "{what}.dst: {d:?} must be \"host:ports\" (e.g. \"tag:web:443\" or \"*:*\")"
                            ));
                        };
                        if !valid_ports(&ports) {
                            return Err(format!(
                                "{what}.dst: invalid port list {ports:?} in {d:?}"
                            ));
                        }
                        p.check_selector(&sel, &format!("{what}.dst"))?;
                        dst.push((sel, ports));
                    }
                    if dst.is_empty() {
                        return Err(format!("{what}: dst is required"));
                    }
                    let proto = a.get("proto").and_then(Value::as_str).map(str::to_string);
                    p.rules.push(Rule { src, dst, proto });
                }
            }
            Some(_) => return Err("acls: expected a list".into()),
        }
        match top.get("grants") {
            None | Some(Value::Null) => {}
            Some(Value::Array(grants)) => {
                for (i, g) in grants.iter().enumerate() {
                    let what = format!("grants[{i}]");
                    let src = strings(g.get("src"), &format!("{what}.src"))?;
                    let dsts = strings(g.get("dst"), &format!("{what}.dst"))?;
                    for s in src.iter().chain(&dsts) {
                        p.check_selector(s, &what)?;
                    }
                    let ips = strings(g.get("ip"), &format!("{what}.ip"))?;
                    for ip in ips {
                        // "*", "443", "tcp:443", "udp:1000-2000"
                        let (proto, ports) = match ip.split_once(':') {
                            Some((pr, po)) => (Some(pr.to_string()), po.to_string()),
                            None => (None, ip.clone()),
                        };
                        if !valid_ports(&ports) {
                            return Err(format!("{what}.ip: invalid {ip:?}"));
                        }
                        p.rules.push(Rule {
                            src: src.clone(),
                            dst: dsts.iter().map(|d| (d.clone(), ports.clone())).collect(),
                            proto,
                        });
                    }
                }
            }
            Some(_) => return Err("grants: expected a list".into()),
        }
        match top.get("ssh") {
            None | Some(Value::Null) => {}
            Some(Value::Array(rules)) => {
                for (i, r) in rules.iter().enumerate() {
                    let what = format!("ssh[{i}]");
                    let action = r.get("action").and_then(Value::as_str).unwrap_or("");
                    if action != "accept" && action != "check" {
                        return Err(format!(
                            "{what}: action {action:?} must be \"accept\" or \"check\""
                        ));
                    }
                    let src = strings(r.get("src"), &format!("{what}.src"))?;
                    let dst = strings(r.get("dst"), &format!("{what}.dst"))?;
                    for s in src.iter().chain(&dst) {
                        p.check_selector(s, &what)?;
                    }
                    let users = strings(r.get("users"), &format!("{what}.users"))?;
                    p.ssh.push(SshRule {
                        action: action.to_string(),
                        src,
                        dst,
                        users,
                    });
                }
            }
            Some(_) => return Err("ssh: expected a list".into()),
        }
        Ok(p)
    }

    /// A selector referring to an undefined tag or group is an error.
    fn check_selector(&self, s: &str, what: &str) -> Result<(), String> {
        if s.starts_with("tag:") && !self.tag_owners.contains_key(s) {
            return Err(format!("{what}: tag {s:?} not found in tagOwners"));
        }
        if s.starts_with("group:") && !self.groups.contains_key(s) {
            return Err(format!("{what}: group {s:?} is not defined in groups"));
        }
        Ok(())
    }

    fn group_members(&self, g: &str) -> Vec<String> {
        strings(self.groups.get(g), g).unwrap_or_default()
    }

    /// Turns a test address's host part into an identity.
    fn ident_of(&self, s: &str) -> Result<Ident, String> {
        if s.starts_with("tag:") {
            if !self.tag_owners.contains_key(s) {
                return Err(format!("tag {s:?} not found in tagOwners"));
            }
            return Ok(Ident::Tag(s.to_string()));
        }
        if s.contains('@') {
            return Ok(Ident::User(s.to_string()));
        }
        if let Some(ip) = self.hosts.get(s).and_then(Value::as_str) {
            return Ok(Ident::Host(ip.to_string()));
        }
        if parse_ipv4(s).is_some() {
            return Ok(Ident::Host(s.to_string()));
        }
        Err(format!(
            "unknown host {s:?} (not a user, tag, host alias or IP)"
        ))
    }

    /// Does selector `sel` cover identity `id`? `src` is the connecting
    /// identity (for `autogroup:self`).
    fn covers(&self, sel: &str, id: &Ident, src: Option<&Ident>) -> bool {
        match sel {
            "*" | "autogroup:danger-all" => true,
            "autogroup:member" => matches!(id, Ident::User(_)),
            "autogroup:tagged" => matches!(id, Ident::Tag(_)),
            "autogroup:self" => {
                matches!((id, src), (Ident::User(a), Some(Ident::User(b))) if a == b)
            }
            _ if sel.starts_with("group:") => match id {
                Ident::User(u) => self.members.get(sel).is_some_and(|m| m.contains(u)),
                _ => false,
            },
            _ if sel.starts_with("tag:") => matches!(id, Ident::Tag(t) if t == sel),
            _ if sel.starts_with("autogroup:") => false,
            _ if sel.contains('@') => matches!(id, Ident::User(u) if u == sel),
            _ => {
                let net = self
                    .hosts
                    .get(sel)
                    .and_then(Value::as_str)
                    .unwrap_or(sel)
                    .to_string();
                matches!(id, Ident::Host(ip) if ip_in(ip, &net))
            }
        }
    }

    fn allows(&self, src: &Ident, dst: &Ident, port: u16, proto: Option<&str>) -> bool {
        self.rules.iter().any(|r| {
            let proto_ok = match (&r.proto, proto) {
                (None, _) => true,
                (Some(rp), Some(tp)) => rp == tp,
                (Some(rp), None) => rp == "tcp" || rp == "6",
            };
            proto_ok
                && r.src.iter().any(|s| self.covers(s, src, None))
                && r.dst.iter().any(|(sel, ports)| {
                    self.covers(sel, dst, Some(src)) && port_matches(ports, port)
                })
        })
    }

    /// The SSH action for `src` → `dst` as `user`: "accept", "check" or "drop".
    fn ssh_action(&self, src: &Ident, dst: &Ident, user: &str) -> &'static str {
        let mut result = "drop";
        for r in &self.ssh {
            let user_ok = r
                .users
                .iter()
                .any(|u| u == user || u == "*" || (u == "autogroup:nonroot" && user != "root"));
            if user_ok
                && r.src.iter().any(|s| self.covers(s, src, None))
                && r.dst.iter().any(|d| self.covers(d, dst, Some(src)))
            {
                if r.action == "accept" {
                    return "accept";
                }
                result = "check";
            }
        }
        result
    }

    /// Expands a test's `src` into identities (a group into its members).
    fn sources(&self, src: &str) -> Result<Vec<Ident>, String> {
        if src.starts_with("group:") {
            if !self.groups.contains_key(src) {
                return Err(format!("group {src:?} is not defined in groups"));
            }
            return Ok(self
                .group_members(src)
                .into_iter()
                .map(Ident::User)
                .collect());
        }
        Ok(vec![self.ident_of(src)?])
    }

    fn run_tests(&self, tests: &Value, ssh_tests: &Value) -> Result<(), PolicyError> {
        let mut failures: Vec<TestFailure> = Vec::new();
        let mut push = |user: &str, err: String| {
            if let Some(f) = failures.iter_mut().find(|f| f.user == user) {
                f.errors.push(err);
            } else {
                failures.push(TestFailure {
                    user: user.to_string(),
                    errors: vec![err],
                });
            }
        };
        let list = |v: &Value, what: &str| -> Result<Vec<Value>, PolicyError> {
            match v {
                Value::Null => Ok(Vec::new()),
                Value::Array(a) => Ok(a.clone()),
                _ => Err(PolicyError::Invalid(format!("{what}: expected a list"))),
            }
        };
        for (i, t) in list(tests, "tests")?.iter().enumerate() {
            let what = format!("tests[{i}]");
            let src = t
                .get("src")
                .and_then(Value::as_str)
                .ok_or_else(|| PolicyError::Invalid(format!("{what}: src is required")))?;
            let sources = self
                .sources(src)
                .map_err(|e| PolicyError::Invalid(format!("{what}.src: {e}")))?;
            let proto = t.get("proto").and_then(Value::as_str);
            for (key, want) in [("accept", true), ("deny", false)] {
                for addr in
                    strings(t.get(key), &format!("{what}.{key}")).map_err(PolicyError::Invalid)?
                {
                    let (host, port) = split_dst(&addr)
                        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
                        .ok_or_else(|| {
                            PolicyError::Invalid(format!(
                                "{what}.{key}: {addr:?} must be \"host:port\" with one port number"
                            ))
                        })?;
                    let dst = self
                        .ident_of(&host)
                        .map_err(|e| PolicyError::Invalid(format!("{what}.{key}: {e}")))?;
                    for s in &sources {
                        let got = self.allows(s, &dst, port, proto);
                        if got != want {
                            let w = |b: bool| if b { "Accept" } else { "Drop" };
                            push(
                                s.display(),
                                format!("address {addr:?}: want: {}, got: {}", w(want), w(got)),
                            );
                        }
                    }
                }
            }
        }
        for (i, t) in list(ssh_tests, "sshTests")?.iter().enumerate() {
            let what = format!("sshTests[{i}]");
            let src = t
                .get("src")
                .and_then(Value::as_str)
                .ok_or_else(|| PolicyError::Invalid(format!("{what}: src is required")))?;
            let sources = self
                .sources(src)
                .map_err(|e| PolicyError::Invalid(format!("{what}.src: {e}")))?;
            let dsts =
                strings(t.get("dst"), &format!("{what}.dst")).map_err(PolicyError::Invalid)?;
            for d in dsts {
                let dst = self
                    .ident_of(&d)
                    .map_err(|e| PolicyError::Invalid(format!("{what}.dst: {e}")))?;
                for (key, want) in [("accept", "accept"), ("check", "check"), ("deny", "drop")] {
                    for user in strings(t.get(key), &format!("{what}.{key}"))
                        .map_err(PolicyError::Invalid)?
                    {
                        for s in &sources {
                            let got = self.ssh_action(s, &dst, &user);
                            if got != want {
                                push(
                                    s.display(),
                                    format!("ssh {d:?} as {user:?}: want: {want}, got: {got}"),
                                );
                            }
                        }
                    }
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::TestsFailed(failures))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"{
  // who is who
  "groups": { "group:dev": ["alice@example.com"], },
  "tagOwners": {
    "tag:dev": ["group:dev"],
    "tag:clawdbot": ["group:dev"],
  },
  "acls": [
    { "action": "accept", "src": ["tag:dev", "group:dev"], "dst": ["tag:clawdbot:8080"] },
  ],
  "ssh": [
    { "action": "accept", "src": ["group:dev"], "dst": ["tag:clawdbot"], "users": ["autogroup:nonroot"] },
  ],
  "tests": [
    { "src": "tag:dev", "accept": ["tag:clawdbot:8080"], "deny": ["tag:clawdbot:22"] },
    { "src": "bob@example.com", "deny": ["tag:clawdbot:8080"] },
  ],
  "sshTests": [
    { "src": "alice@example.com", "dst": ["tag:clawdbot"], "accept": ["dev"], "deny": ["root"] },
  ],
}"#;

    #[test]
    fn passing_policy_checks() {
        check_text(POLICY).unwrap();
    }

    #[test]
    fn failing_test_is_reported_per_user() {
        let bad = POLICY.replace(
            r#""deny": ["tag:clawdbot:22"]"#,
            r#""deny": ["tag:clawdbot:8080"]"#,
        );
        match check_text(&bad) {
            Err(PolicyError::TestsFailed(f)) => {
                assert_eq!(f.len(), 1);
                assert_eq!(f[0].user, "tag:dev");
                assert_eq!(
                    f[0].errors,
                    vec!["address \"tag:clawdbot:8080\": want: Drop, got: Accept".to_string()]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ssh_tests_evaluate() {
        let bad = POLICY.replace(r#""deny": ["root"]"#, r#""accept": ["root"]"#);
        let err = check_text(&bad).unwrap_err();
        assert!(
            format!("{err:?}").contains("ssh \\\"tag:clawdbot\\\" as \\\"root\\\""),
            "{err:?}"
        );
    }

    #[test]
    fn undefined_tag_and_syntax_errors() {
        let bad = POLICY.replace(
            r#""dst": ["tag:clawdbot:8080"]"#,
            r#""dst": ["tag:nope:8080"]"#,
        );
        assert!(matches!(check_text(&bad), Err(PolicyError::Invalid(m)) if m.contains("tag:nope")));
        let err = parse_hujson("{\n  'a': 1\n}").unwrap_err();
        assert!(err.starts_with("line 2, column 3"), "{err}");
        assert!(parse_hujson("{\"a\": 0x10}").is_err());
        assert!(parse_hujson("{a: 1}").is_err());
    }

    #[test]
    fn ports_and_cidrs() {
        assert!(port_matches("80,443,1000-2000", 1500));
        assert!(!port_matches("80,443", 8080));
        assert!(ip_in("100.64.0.5", "100.64.0.0/10"));
        assert!(!ip_in("10.0.0.1", "100.64.0.0/10"));
    }
}
