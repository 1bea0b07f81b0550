//! The `ssh_key` resource: an ED25519 key pair on a host, generated once
//! (by claw, with the `ssh-key` crate and the operating system's random
//! numbers) into `path` (mode 0600, OpenSSH format) and `path.pub`.
//!
//! - **The private key never leaves the host's files and claw's memory**:
//!   it is written through [`fileio::write_file`] (on stdin, into an
//!   exclusively created temporary file that has its final mode from the
//!   first byte), never on a command line; refresh reads it back and hands it
//!   to references as a sensitive value (`private_key`), so plans and state
//!   hold at most its keyed hash.
//! - **Refresh reads both files in one probe** (with the host's other
//!   keys) and checks that they are a pair: the private key parses, is an
//!   unencrypted ED25519 key, and `path.pub` holds its public half. A missing
//!   private key plans a create; a broken pair (`pair`) a replace.
//! - A changed `comment` (or a private key readable by others) is fixed in
//!   place: the same key is written again.

use crate::fileio::{self, FileData, FileProbe};
use crate::runner::{host_path, Runner};
use claw_provider::*;
use schemars::JsonSchema;
use serde::Deserialize;
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};

/// `[ssh_key.<name>]`: an ED25519 key pair on a host.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SshKeyShape {
    /// The private key file; the public key is `path + ".pub"`. `~/` is the
    /// login user's home; a relative path resolves as for `file`.
    pub path: String,
    /// The key's comment (in both files and at the end of `public_key`).
    #[serde(default)]
    pub comment: Option<String>,
    /// The key type: only `"ed25519"` (the default).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

pub const TYPE: &str = "ssh_key";

pub fn resource_type() -> ResourceType {
    ResourceType {
        name: TYPE,
        description:
            "An ED25519 SSH key pair on a host, generated once: `path` (0600) and `path.pub`",
        shape: Shape::of::<SshKeyShape>(),
        computed: &["public_key", "fingerprint", "private_key"],
    }
}

/// The only key type.
const ED25519: &str = "ed25519";
const PRIVATE_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;
/// `pair` when both files are a valid pair.
const PAIR_OK: &str = "ok";

pub fn validate(req: &InstanceRequest<'_>) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let a = req.attrs;
    let err = |attr: &str, msg: String| {
        Diagnostic::error(msg)
            .with_address(req.address)
            .with_attr(attr)
    };
    if let Some(Value::String(p)) = a.get("path") {
        if p.trim().is_empty() {
            d.push(err("path", "`path` is empty".into()));
        } else if p.ends_with('/') {
            d.push(err(
                "path",
                format!("`path` {p:?} is a folder; it names the private key file"),
            ));
        }
    }
    if let Some(Value::String(t)) = a.get("type") {
        if t != ED25519 {
            d.push(
                err("type", format!("ssh_key type {t:?} is not supported")).with_hint(
                    "the only type is \"ed25519\" (remove `type`, or write type = \"ed25519\")",
                ),
            );
        }
    }
    match a.get("comment") {
        Some(Value::String(c)) if c.contains('\n') || c.contains('\r') => {
            d.push(err("comment", "`comment` must be one line".into()))
        }
        Some(Value::Secret(_)) => d.push(err(
            "comment",
            "`comment` cannot be sensitive: it is in the public key".into(),
        )),
        _ => {}
    }
    d
}

/// Defaults: `type = "ed25519"`.
pub fn prepare(req: &InstanceRequest<'_>) -> Result<Attrs, Diagnostic> {
    let mut a = req.attrs.clone();
    if matches!(a.get("type"), None | Some(Value::Null)) {
        a.insert("type".into(), Value::str(ED25519));
    }
    Ok(a)
}

/// The path probed: the recorded one when in state, else the configured one.
fn item_path(item: &RefreshItem) -> Option<String> {
    if let Some(p) = item.prior.as_ref().filter(|p| !p.id.is_empty()) {
        return Some(p.id.clone());
    }
    item.desired
        .as_ref()
        .and_then(|d| d.get("path"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// What is wrong with a pair, or `None` when it is one. `key` is the parsed
/// private key when it parses.
fn check_pair(private: &FileData, public: &FileProbe) -> (Option<PrivateKey>, Option<String>) {
    let key = match PrivateKey::from_openssh(&private.content) {
        Ok(k) => k,
        Err(e) => return (None, Some(format!("the private key does not parse ({e})"))),
    };
    if key.is_encrypted() {
        return (None, Some("the private key is encrypted".into()));
    }
    if key.algorithm() != Algorithm::Ed25519 {
        return (
            None,
            Some(format!(
                "the private key is {}, not ed25519",
                key.algorithm()
            )),
        );
    }
    let problem = match public {
        FileProbe::File(f) => {
            match PublicKey::from_openssh(String::from_utf8_lossy(&f.content).trim()) {
                Ok(p) if p.key_data() == key.public_key().key_data() => None,
                Ok(_) => Some("path.pub holds another key than the private key's".to_string()),
                Err(e) => Some(format!("path.pub does not parse ({e})")),
            }
        }
        FileProbe::Missing => Some("path.pub is missing".to_string()),
        FileProbe::NotAFile => Some("path.pub is not a regular file".to_string()),
        FileProbe::Unreadable => Some("path.pub cannot be read".to_string()),
    };
    (Some(key), problem)
}

/// The public key line (`ssh-ed25519 AAAA… comment`) and the fingerprint.
fn public_parts(key: &PrivateKey) -> Result<(String, String), Diagnostic> {
    let line = key
        .public_key()
        .to_openssh()
        .map_err(|e| Diagnostic::error(format!("cannot encode the public key: {e}")))?;
    Ok((line, key.fingerprint(HashAlg::Sha256).to_string()))
}

fn live_object(ctx: &Ctx, path: &str, private: &FileData, public: &FileProbe) -> LiveObject {
    let (key, problem) = check_pair(private, public);
    let mut attrs = Attrs::new();
    attrs.insert("path".into(), Value::str(path));
    attrs.insert(
        "pair".into(),
        Value::String(problem.unwrap_or_else(|| PAIR_OK.into())),
    );
    attrs.insert(
        "mode".into(),
        Value::String(format!("{:04o}", private.mode)),
    );
    if let Some(key) = &key {
        attrs.insert("type".into(), Value::str(ED25519));
        attrs.insert("comment".into(), Value::str(key.comment().as_str_lossy()));
        if let Ok((line, fp)) = public_parts(key) {
            attrs.insert("public_key".into(), Value::String(line));
            attrs.insert("fingerprint".into(), Value::String(fp));
        }
        attrs.insert(
            "private_key".into(),
            ctx.secret(&String::from_utf8_lossy(&private.content)),
        );
    }
    let mut seen = private.content.clone();
    if let FileProbe::File(f) = public {
        seen.push(0);
        seen.extend_from_slice(&f.content);
    }
    LiveObject {
        id: path.to_string(),
        attrs,
        fingerprint: format!("{}:{:04o}", ctx.digest(&seen), private.mode),
        owner: Owner::NotApplicable,
    }
}

/// Probes every key of the host with one read of all their files.
pub async fn refresh(
    runner: &dyn Runner,
    ctx: &Ctx,
    items: &[&RefreshItem],
    resp: &mut RefreshResponse,
) {
    let mut wanted: Vec<(String, String)> = Vec::new();
    for item in items {
        match item_path(item) {
            Some(p) => wanted.push((item.address.clone(), p)),
            None => {
                resp.live.insert(item.address.clone(), None);
            }
        }
    }
    let mut paths = Vec::new();
    for (_, p) in &wanted {
        let hp = host_path(runner, &ctx.base_dir, p);
        paths.push(format!("{hp}.pub"));
        paths.push(hp);
    }
    let probes = match fileio::read_files(runner, &paths).await {
        Ok(p) => p,
        Err(d) => {
            for (addr, _) in &wanted {
                resp.live.insert(addr.clone(), None);
            }
            resp.diagnostics.push(d);
            return;
        }
    };
    for ((addr, path), pair) in wanted.iter().zip(probes.chunks(2)) {
        let (public, private) = (&pair[0], &pair[1]);
        let live = match private {
            FileProbe::Missing => None,
            FileProbe::File(data) => Some(live_object(ctx, path, data, public)),
            FileProbe::NotAFile | FileProbe::Unreadable => {
                resp.diagnostics.push(
                    Diagnostic::error(format!(
                        "{path} on {} is not a private key file the login user can read",
                        runner.target()
                    ))
                    .with_address(addr)
                    .with_hint("move it away, fix its permissions, or point `path` elsewhere"),
                );
                None
            }
        };
        resp.live.insert(addr.clone(), live);
    }
}

pub fn diff(req: &DiffRequest) -> DiffResponse {
    let mut changes = Vec::new();
    let live = &req.live.attrs;
    let d = &req.desired;
    if let (Some(dp), Some(lp)) = (d.get("path"), live.get("path")) {
        if dp != lp {
            changes.push(
                AttrChange::new("path", Some(lp.clone()), Some(dp.clone())).forcing_replace(),
            );
        }
    }
    if let Some(p) = live.get("pair").filter(|p| p.as_str() != Some(PAIR_OK)) {
        changes.push(
            AttrChange::new("pair", Some(p.clone()), Some(Value::str(PAIR_OK))).forcing_replace(),
        );
    }
    if let Some(t) = d.get("type").filter(|t| t.as_str().is_some()) {
        if live.get("type").is_some_and(|l| l != t) {
            changes.push(
                AttrChange::new("type", live.get("type").cloned(), Some(t.clone()))
                    .forcing_replace(),
            );
        }
    }
    if changes.iter().all(|c| !c.replace) {
        if let Some(c) = d.get("comment").filter(|c| !matches!(c, Value::Null)) {
            let l = live.get("comment").cloned().unwrap_or(Value::str(""));
            if *c != l {
                changes.push(AttrChange::new("comment", Some(l), Some(c.clone())));
            }
        }
        let mode = live.get("mode").and_then(Value::as_str).unwrap_or("0600");
        if mode != "0600" {
            changes.push(AttrChange::new(
                "mode",
                Some(Value::str(mode)),
                Some(Value::str("0600")),
            ));
        }
    }
    DiffResponse {
        changes,
        replace_note: Some(
            "generates a new key pair: whatever trusts the old public key must be given the new one"
                .into(),
        ),
        ..Default::default()
    }
}

/// A new ED25519 key from the operating system's random numbers.
fn generate(comment: &str) -> Result<PrivateKey, Diagnostic> {
    use rand::TryRng;
    let mut seed = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut seed).map_err(|e| {
        Diagnostic::error(format!("no random numbers from the operating system: {e}"))
    })?;
    let pair = Ed25519Keypair::from_seed(&seed);
    seed.fill(0);
    PrivateKey::new(KeypairData::from(pair), comment)
        .map_err(|e| Diagnostic::error(format!("cannot make the key: {e}")))
}

/// Writes both files: the private key first (0600, through the secret-safe
/// write), then the public key.
async fn write_pair(runner: &dyn Runner, hp: &str, key: &PrivateKey) -> Result<(), Diagnostic> {
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| Diagnostic::error(format!("cannot encode the private key: {e}")))?;
    let (public, _) = public_parts(key)?;
    fileio::write_file(runner, hp, private.as_bytes(), Some(PRIVATE_MODE)).await?;
    fileio::write_file(
        runner,
        &format!("{hp}.pub"),
        format!("{public}\n").as_bytes(),
        Some(PUBLIC_MODE),
    )
    .await
}

/// The recorded attributes: the desired ones and the computed public ones;
/// `private_key` is in memory only for this run's references (the state
/// file keeps its keyed hash, like any secret).
fn state(
    ctx: &Ctx,
    path: &str,
    desired: &Attrs,
    key: &PrivateKey,
) -> Result<StateObject, Diagnostic> {
    let (line, fp) = public_parts(key)?;
    let mut attrs = desired.clone();
    attrs.insert("public_key".into(), Value::String(line));
    attrs.insert("fingerprint".into(), Value::String(fp));
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| Diagnostic::error(format!("cannot encode the private key: {e}")))?;
    attrs.insert("private_key".into(), ctx.secret(private.as_str()));
    Ok(StateObject {
        id: path.to_string(),
        attrs,
        private: Attrs::new(),
    })
}

pub async fn apply(runner: &dyn Runner, req: &ApplyRequest) -> Result<ApplyResponse, Diagnostic> {
    let addr = |d: Diagnostic| d.with_address(&req.address);
    match req.op {
        Op::Delete => {
            let path = req
                .prior
                .as_ref()
                .map(|p| p.id.clone())
                .filter(|p| !p.is_empty())
                .or_else(|| req.live.as_ref().map(|l| l.id.clone()))
                .ok_or_else(|| addr(Diagnostic::error("no recorded path for this key")))?;
            let hp = host_path(runner, &req.ctx.base_dir, &path);
            fileio::remove_file(runner, &hp).await.map_err(addr)?;
            fileio::remove_file(runner, &format!("{hp}.pub"))
                .await
                .map_err(addr)?;
            Ok(ApplyResponse::default())
        }
        Op::Create | Op::Update => {
            let desired = req.desired.clone().unwrap_or_default();
            let path = desired
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| addr(Diagnostic::error("`path` is not known")))?
                .to_string();
            let comment = desired.get("comment").and_then(Value::as_str);
            let hp = host_path(runner, &req.ctx.base_dir, &path);
            let key = if req.op == Op::Update {
                // The same key, written again (a new comment, its mode).
                let probe = fileio::read_files(runner, std::slice::from_ref(&hp))
                    .await
                    .map_err(addr)?;
                let mut key = match probe.into_iter().next() {
                    Some(FileProbe::File(f)) => {
                        PrivateKey::from_openssh(&f.content).map_err(|e| {
                            addr(Diagnostic::error(format!(
                                "{path}: the private key does not parse ({e})"
                            )))
                        })?
                    }
                    _ => {
                        return Err(addr(
                            Diagnostic::error(format!("{path} is gone"))
                                .with_hint("run `claw plan` again: a missing key is created"),
                        ))
                    }
                };
                if let Some(c) = comment {
                    key.set_comment(c);
                }
                key
            } else {
                generate(comment.unwrap_or("")).map_err(addr)?
            };
            write_pair(runner, &hp, &key).await.map_err(addr)?;
            Ok(ApplyResponse::state(
                state(&req.ctx, &path, &desired, &key).map_err(addr)?,
            ))
        }
    }
}

/// `claw import ssh_key.NAME PATH`: an existing pair (both files, matching)
/// is recorded as it is.
pub async fn import(runner: &dyn Runner, req: &ImportRequest) -> Result<StateObject, Diagnostic> {
    let mut desired = req.desired.clone().unwrap_or_default();
    desired.insert("path".into(), Value::String(req.id.clone()));
    let item = crate::import_item(req, &desired);
    let mut resp = RefreshResponse::default();
    refresh(runner, &req.ctx, &[&item], &mut resp).await;
    let live = crate::imported_live(resp, req)?.ok_or_else(|| {
        Diagnostic::error(format!(
            "no private key at {} on {}",
            req.id,
            runner.target()
        ))
        .with_address(&req.address)
        .with_hint("the import id of an ssh_key is the private key's path")
    })?;
    let pair = live.attrs.get("pair").and_then(Value::as_str).unwrap_or("");
    if pair != PAIR_OK {
        return Err(
            Diagnostic::error(format!("{} is not a usable key pair: {pair}", req.id))
                .with_address(&req.address),
        );
    }
    let mut attrs = live.attrs;
    attrs.remove("pair");
    attrs.remove("mode");
    Ok(StateObject {
        id: req.id.clone(),
        attrs,
        private: Attrs::new(),
    })
}
