//! The `file` resource: a file on a host, compared by content hash and mode.

use crate::fileio::{self, FileProbe};
use crate::runner::{host_path, Runner};
use claw_provider::digest::{has_legacy_digest, only_rehash, rehash_change};
use claw_provider::*;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// A string, or a sensitive value read from the environment or a file.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum SecretString {
    Plain(String),
    Env {
        /// The environment variable holding the value.
        env: String,
    },
    File {
        /// A file holding the value (relative to `claw.toml`).
        file: String,
    },
}

/// A file mode as written in claw.toml: an octal string (`"0644"`) or a TOML
/// octal integer (`0o644`), at most `0o7777`. Anything else (a number too
/// large, a float, `"rw-r--r--"`) fails the shape check at the attribute.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ModeShape {
    Octal(String),
    Bits(i64),
}

const MODE_HINT: &str =
    "write it as an octal string such as \"0644\" or \"0600\", or as a TOML octal number 0o644 (at most 0o7777)";

impl<'de> Deserialize<'de> for ModeShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let bad = |what: String| D::Error::custom(format!("{what}: {MODE_HINT}"));
        let range = "is out of range for a file mode";
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) if parse_mode(&s).is_some() => Ok(ModeShape::Octal(s)),
            serde_json::Value::String(s) => Err(bad(format!("{s:?} is not a file mode"))),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) if (0..=0o7777).contains(&i) => Ok(ModeShape::Bits(i)),
                (Some(i), _) if i > 0 => Err(bad(format!("0o{i:o} {range}"))),
                (None, Some(f)) if f.fract() == 0.0 => Err(bad(format!("the number {range}"))),
                _ => Err(bad(format!("{n} is not a file mode"))),
            },
            other => Err(bad(format!("{other} is not a file mode"))),
        }
    }
}

/// `[file.<name>]`: a file on a host.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct FileShape {
    /// Where the file lives on the host. `~/` is the login user's home; a
    /// relative path resolves from the folder of `claw.toml` on `local`, from
    /// the login folder on an SSH host.
    pub path: String,
    /// The file's content. `{ env = "..." }` / `{ file = "..." }` make it sensitive.
    #[serde(default)]
    pub content: Option<SecretString>,
    /// A local file (relative to `claw.toml`) whose content is copied.
    #[serde(default)]
    pub source: Option<String>,
    /// Permission bits: an octal string (`"0644"`) or a TOML octal integer (`0o644`).
    #[serde(default)]
    pub mode: Option<ModeShape>,
    /// Never show the content (the plan says `(sensitive)`).
    #[serde(default)]
    pub sensitive: Option<bool>,
}

pub fn resource_type() -> ResourceType {
    ResourceType {
        name: "file",
        description:
            "A file on a host: content (or a local source file), mode; compared by content hash",
        shape: Shape::of::<FileShape>(),
        computed: &[],
    }
}

/// Parses `"0644"`, `"644"` or `"0o644"` into permission bits.
pub fn parse_mode(s: &str) -> Option<u32> {
    let t = s.trim();
    let t = t.strip_prefix("0o").unwrap_or(t);
    if t.is_empty() || t.len() > 5 {
        return None;
    }
    let m = u32::from_str_radix(t, 8).ok()?;
    (m <= 0o7777).then_some(m)
}

pub fn format_mode(m: u32) -> String {
    format!("{m:04o}")
}

pub fn validate(req: &InstanceRequest<'_>) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let a = req.attrs;
    match a.get("path") {
        Some(Value::String(p)) if p.trim().is_empty() => d.push(
            Diagnostic::error("`path` is empty")
                .with_address(req.address)
                .with_attr("path"),
        ),
        _ => {}
    }
    let has_content = a.get("content").is_some_and(|v| !matches!(v, Value::Null));
    let has_source = a.get("source").is_some_and(|v| !matches!(v, Value::Null));
    if has_content && has_source {
        d.push(
            Diagnostic::error("`content` and `source` are both set")
                .with_address(req.address)
                .with_attr("source")
                .with_hint("keep one: `content` for inline text, `source` for a local file"),
        );
    }
    if !has_content && !has_source {
        d.push(
            Diagnostic::error("a file needs `content` or `source`")
                .with_address(req.address)
                .with_hint(
                    "add `content = \"...\"` (use \"\" for an empty file) or `source = \"path\"`",
                ),
        );
    }
    let mode_error = match a.get("mode") {
        Some(Value::Int(m)) if !(0..=0o7777).contains(m) => {
            Some(format!("`mode` {m} is out of range"))
        }
        Some(Value::Float(m)) => Some(format!("`mode` {m} is not an octal permission")),
        Some(Value::String(m)) if parse_mode(m).is_none() => {
            Some(format!("`mode` {m:?} is not an octal permission"))
        }
        Some(Value::Secret(_)) => Some("`mode` cannot be sensitive".to_string()),
        _ => None,
    };
    if let Some(msg) = mode_error {
        d.push(
            Diagnostic::error(msg)
                .with_address(req.address)
                .with_attr("mode")
                .with_hint(MODE_HINT),
        );
    }
    d
}

pub fn prepare(req: &InstanceRequest<'_>) -> Result<PrepareResponse, Diagnostic> {
    let mut out = req.attrs.clone();
    let mut inputs = Vec::new();
    let sensitive = req
        .attrs
        .get("sensitive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(Value::String(src)) = req.attrs.get("source") {
        let p = req.ctx.base_dir.join(src);
        let bytes = std::fs::read(&p).map_err(|e| {
            Diagnostic::error(format!("cannot read the source file {}: {e}", p.display()))
                .with_address(req.address)
                .with_attr("source")
                .with_hint("`source` is a local file, relative to the folder of claw.toml")
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Diagnostic::error(format!("the source file {} is not UTF-8 text", p.display()))
                .with_address(req.address)
                .with_attr("source")
        })?;
        inputs.push(Input::new(req.ctx, src, text.as_bytes()));
        out.insert("content".into(), Value::String(text));
    }
    if sensitive {
        if let Some(Value::String(c)) = out.get("content") {
            let s = req.ctx.secret(c);
            out.insert("content".into(), s);
        }
    }
    // A file holding a secret is private unless `mode` says otherwise.
    if out.get("mode").is_none_or(|m| matches!(m, Value::Null)) && is_sensitive(Some(&out)) {
        out.insert("mode".into(), Value::String(format_mode(PRIVATE_MODE)));
    }
    match out.get("mode") {
        Some(Value::String(m)) => {
            if let Some(bits) = parse_mode(m) {
                out.insert("mode".into(), Value::String(format_mode(bits)));
            }
        }
        Some(Value::Int(m)) if (0..=0o7777).contains(m) => {
            let bits = *m as u32;
            out.insert("mode".into(), Value::String(format_mode(bits)));
        }
        _ => {}
    }
    Ok(PrepareResponse {
        attrs: out,
        inputs,
        diagnostics: Vec::new(),
    })
}

/// The mode of a file with sensitive content when `mode` is not set.
pub const PRIVATE_MODE: u32 = 0o600;

/// True when the content must never be shown.
fn is_sensitive(attrs: Option<&Attrs>) -> bool {
    attrs.is_some_and(|a| {
        a.get("sensitive").and_then(Value::as_bool) == Some(true)
            || a.get("content").is_some_and(Value::contains_secret)
    })
}

/// `hmac-sha256:<hex>:<mode>`: the content's keyed digest (the content may
/// be a secret, and plan files are public) and the mode.
pub fn fingerprint(ctx: &Ctx, content: &[u8], mode: u32) -> String {
    format!("{}:{}", ctx.digest(content), format_mode(mode))
}

/// The path an item is probed at: the recorded one when the object is in
/// state (a changed path is then a replace), else the configured one.
fn item_path(item: &RefreshItem) -> Option<String> {
    if let Some(p) = &item.prior {
        if !p.id.is_empty() {
            return Some(p.id.clone());
        }
    }
    item.desired
        .as_ref()
        .and_then(|d| d.get("path"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn live_object(ctx: &Ctx, path: &str, data: &fileio::FileData, sensitive: bool) -> LiveObject {
    let text = String::from_utf8_lossy(&data.content).into_owned();
    let mut attrs = Attrs::new();
    attrs.insert("path".into(), Value::String(path.to_string()));
    attrs.insert(
        "content".into(),
        if sensitive {
            ctx.secret(&text)
        } else {
            Value::String(text)
        },
    );
    attrs.insert("mode".into(), Value::String(format_mode(data.mode)));
    LiveObject {
        id: path.to_string(),
        attrs,
        fingerprint: fingerprint(ctx, &data.content, data.mode),
        owner: Owner::NotApplicable,
    }
}

/// Probes every file item with one script.
pub async fn refresh(
    runner: &dyn Runner,
    ctx: &Ctx,
    items: &[&RefreshItem],
    resp: &mut RefreshResponse,
) {
    let mut wanted: Vec<(String, String, bool)> = Vec::new(); // (address, path, sensitive)
    for item in items {
        match item_path(item) {
            Some(p) => {
                let sensitive = is_sensitive(item.desired.as_deref())
                    || is_sensitive(item.prior.as_ref().map(|p| &p.attrs));
                wanted.push((item.address.clone(), p, sensitive));
            }
            None => {
                // The path is not known yet (a reference): nothing to read.
                resp.live.insert(item.address.clone(), None);
            }
        }
    }
    let paths: Vec<String> = wanted
        .iter()
        .map(|(_, p, _)| host_path(runner, &ctx.base_dir, p))
        .collect();
    match fileio::read_files(runner, &paths).await {
        Ok(probes) => {
            for ((addr, path, sensitive), probe) in wanted.iter().zip(probes) {
                let live = match probe {
                    FileProbe::Missing => None,
                    FileProbe::File(data) => Some(live_object(ctx, path, &data, *sensitive)),
                    FileProbe::NotAFile => {
                        resp.diagnostics.push(
                            Diagnostic::error(format!(
                                "{path} on {} exists but is not a regular file",
                                runner.target()
                            ))
                            .with_address(addr)
                            .with_hint("move it away or point `path` elsewhere"),
                        );
                        None
                    }
                    FileProbe::Unreadable => {
                        resp.diagnostics.push(
                            Diagnostic::error(format!(
                                "{path} on {} cannot be read by the login user",
                                runner.target()
                            ))
                            .with_address(addr)
                            .with_hint("fix its permissions, or connect as a user who can read it"),
                        );
                        None
                    }
                };
                resp.live.insert(addr.clone(), live);
            }
        }
        Err(d) => {
            for (addr, _, _) in &wanted {
                resp.live.insert(addr.clone(), None);
            }
            resp.diagnostics.push(d);
        }
    }
}

fn content_equal(a: &Value, b: &Value) -> bool {
    match (a.expose_str(), b.expose_str()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

pub fn diff(req: &DiffRequest) -> DiffResponse {
    let mut changes = Vec::new();
    let live = &req.live.attrs;
    let sensitive =
        is_sensitive(Some(&req.desired)) || is_sensitive(req.prior.as_ref().map(|p| &p.attrs));
    if let (Some(d), Some(l)) = (req.desired.get("path"), live.get("path")) {
        if d != l {
            changes
                .push(AttrChange::new("path", Some(l.clone()), Some(d.clone())).forcing_replace());
        }
    }
    if let Some(d) = req.desired.get("content") {
        let l = live.get("content").unwrap_or(&Value::Null);
        if d.is_unknown() || !content_equal(d, l) {
            let l = l.clone();
            let (before, after) = if sensitive {
                let wrap = |v: &Value| match v {
                    Value::Secret(_) | Value::Unknown => v.clone(),
                    other => req.ctx.secret(other.expose_str().unwrap_or("")),
                };
                (wrap(&l), wrap(d))
            } else {
                (l, d.clone())
            };
            changes.push(AttrChange::new("content", Some(before), Some(after)));
        }
    }
    if let Some(d) = req.desired.get("mode") {
        if !matches!(d, Value::Null) {
            let dn = d.as_str().and_then(parse_mode).map(format_mode);
            let ln = live
                .get("mode")
                .and_then(Value::as_str)
                .and_then(parse_mode)
                .map(format_mode);
            if d.is_unknown() || dn != ln {
                changes.push(AttrChange::new(
                    "mode",
                    live.get("mode").cloned(),
                    Some(dn.map(Value::String).unwrap_or_else(|| d.clone())),
                ));
            }
        }
    }
    // A state entry from an older claw: its plain SHA-256 of the content
    // (`private.sha256`) or salted secret hashes are replaced on this apply.
    if req
        .prior
        .as_ref()
        .is_some_and(|p| p.private.contains_key(LEGACY_PRIVATE) || has_legacy_digest(p))
    {
        changes.push(rehash_change());
    }
    DiffResponse {
        changes,
        ..Default::default()
    }
}

/// The private field older versions of claw kept: a plain SHA-256 of the content.
const LEGACY_PRIVATE: &str = "sha256";

pub async fn apply(runner: &dyn Runner, req: &ApplyRequest) -> Result<ApplyResponse, Diagnostic> {
    match req.op {
        Op::Delete => {
            let path = req
                .prior
                .as_ref()
                .map(|p| p.id.clone())
                .filter(|p| !p.is_empty())
                .or_else(|| req.live.as_ref().map(|l| l.id.clone()))
                .ok_or_else(|| {
                    Diagnostic::error("no recorded path for this file").with_address(&req.address)
                })?;
            fileio::remove_file(runner, &host_path(runner, &req.ctx.base_dir, &path))
                .await
                .map_err(|d| d.with_address(&req.address))?;
            Ok(ApplyResponse::default())
        }
        Op::Create | Op::Update => {
            let desired = req.desired.clone().unwrap_or_default();
            let path = desired
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| Diagnostic::error("`path` is not known").with_address(&req.address))?
                .to_string();
            let content = match desired.get("content") {
                Some(v) => v.expose_str().map(str::to_string).ok_or_else(|| {
                    Diagnostic::error("the content of this file is not known")
                        .with_address(&req.address)
                        .with_hint("a sensitive value read from a saved plan cannot be written; run `claw apply` without a plan file")
                })?,
                None => String::new(),
            };
            let sensitive = is_sensitive(Some(&desired));
            // Unset: a secret is private; other files keep the mode they
            // have (a new one gets the umask default).
            let mode = desired
                .get("mode")
                .and_then(Value::as_str)
                .and_then(parse_mode)
                .or(sensitive.then_some(PRIVATE_MODE));
            // Only the state entry is from an older claw: record it again.
            if !(req.op == Op::Update && only_rehash(&req.changes)) {
                let hp = host_path(runner, &req.ctx.base_dir, &path);
                fileio::write_file(runner, &hp, content.as_bytes(), mode)
                    .await
                    .map_err(|d| d.with_address(&req.address))?;
            }
            let mut attrs = desired.clone();
            if sensitive {
                if let Some(Value::String(c)) = attrs.get("content") {
                    let s = req.ctx.secret(c);
                    attrs.insert("content".into(), s);
                }
            }
            let mut private = Map::new();
            private.insert(
                "digest".into(),
                Value::String(req.ctx.digest(content.as_bytes())),
            );
            Ok(ApplyResponse {
                state: Some(StateObject {
                    id: path,
                    attrs,
                    private,
                }),
                diagnostics: vec![],
            })
        }
    }
}

pub async fn import(runner: &dyn Runner, req: &ImportRequest) -> Result<StateObject, Diagnostic> {
    let hp = host_path(runner, &req.ctx.base_dir, &req.id);
    let probes = fileio::read_files(runner, &[hp]).await?;
    let sensitive = is_sensitive(req.desired.as_ref());
    match probes.into_iter().next() {
        Some(FileProbe::File(data)) => {
            let live = live_object(&req.ctx, &req.id, &data, sensitive);
            let mut attrs = live.attrs;
            if let Some(d) = &req.desired {
                if let Some(s) = d.get("sensitive") {
                    attrs.insert("sensitive".into(), s.clone());
                }
            }
            Ok(StateObject {
                id: req.id.clone(),
                attrs,
                private: Attrs::new(),
            })
        }
        _ => Err(Diagnostic::error(format!(
            "no regular file at {} on {}",
            req.id,
            runner.target()
        ))
        .with_address(&req.address)
        .with_hint("the import id of a file is its path, as written in `path`")),
    }
}
