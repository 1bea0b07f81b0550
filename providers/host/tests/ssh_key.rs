//! `ssh_key` against real files, through the local runner and the SSH runner
//! (a real sshd on loopback): `ssh-keygen` reads the pair, the private key is
//! 0600 and never in the state, a second plan is clean, a broken pair or a
//! lax mode is seen, destroy removes both files.

mod common;

use claw_host::runner::Runner;
use claw_provider::decide::Action;
use claw_provider::testing::{Plan, Resource};
use claw_provider::*;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const K: &str = "ssh_key.bot";

fn keygen(args: &[&str], key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(args)
        .arg(key)
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The base64 body of an OpenSSH private key file (the key material).
fn body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

fn plan_actions(p: &Plan) -> Vec<(String, Action, Vec<String>)> {
    p.changes
        .iter()
        .map(|c| {
            (
                c.address.clone(),
                c.action,
                c.diff.iter().map(|d| d.path.clone()).collect(),
            )
        })
        .collect()
}

async fn key_pair_lifecycle(runner: Arc<dyn Runner>) {
    if !require("ssh-keygen") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys/bot_ed25519");
    let pubf = dir.path().join("keys/bot_ed25519.pub");
    let d = Driver::new(runner.clone(), dir.path());
    let cfg = |comment: &str| {
        Resource::json(
            "ssh_key",
            "bot",
            serde_json::json!({ "path": key.to_string_lossy(), "comment": comment }),
        )
    };
    let mut h = d.harness(K, None);
    let plan = h.set(vec![cfg("bot@claworc")]).converge().await;
    assert_eq!(plan.action(K), Some(Action::Create), "{}", runner.target());

    // A valid OpenSSH pair: ssh-keygen derives exactly path.pub from path.
    let public = std::fs::read_to_string(&pubf).unwrap();
    assert_eq!(keygen(&["-y", "-f"], &key), public);
    assert!(
        public.starts_with("ssh-ed25519 ") && public.ends_with(" bot@claworc\n"),
        "{public}"
    );
    assert_eq!(mode(&key), 0o600, "the private key is private");
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));

    // Computed attributes: the public line, the fingerprint ssh-keygen shows.
    let st = h.state[K].object.clone();
    assert_eq!(
        st.attrs["public_key"],
        Value::String(public.trim_end().to_string())
    );
    let fp = keygen(&["-l", "-E", "sha256", "-f"], &key);
    let Value::String(ours) = &st.attrs["fingerprint"] else {
        panic!("fingerprint")
    };
    assert!(
        ours.starts_with("SHA256:") && fp.contains(ours.as_str()),
        "{fp} vs {ours}"
    );
    // The private key: sensitive, its clear text for references, never in
    // what is recorded or planned.
    let Value::Secret(s) = &st.attrs["private_key"] else {
        panic!("private_key is sensitive")
    };
    assert_eq!(s.expose(), Some(pem.as_str()));
    let recorded = serde_json::to_string(&st).unwrap();
    assert!(!recorded.contains(&body(&pem)[..40]), "{recorded}");
    assert!(
        recorded.contains("\"$sensitive\":\"hmac-sha256:"),
        "{recorded}"
    );
    let again = h.plan().await;
    assert!(!format!("{:?}", again.changes).contains(&body(&pem)[..40]));
    // The live object read back carries the same key (read from the file).
    let live = again.live[K].clone().expect("live");
    assert_eq!(live.attrs["private_key"].expose_str(), Some(pem.as_str()));

    // A new comment: the same key written again, in place.
    let plan = h.set(vec![cfg("bot@fleet")]).plan().await;
    assert_eq!(
        plan_actions(&plan),
        vec![(K.to_string(), Action::Update, vec!["comment".to_string()])]
    );
    h.apply_plan(&plan).await.unwrap();
    let renamed = std::fs::read_to_string(&pubf).unwrap();
    assert_eq!(
        renamed.split_whitespace().nth(1),
        public.split_whitespace().nth(1),
        "same key"
    );
    assert!(renamed.ends_with(" bot@fleet\n"));
    assert_eq!(keygen(&["-y", "-f"], &key), renamed);
    h.assert_converged().await;

    // A private key opened to others: its mode is put back, in place.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let plan = h.plan().await;
    assert_eq!(
        plan_actions(&plan),
        vec![(K.to_string(), Action::Update, vec!["mode".to_string()])]
    );
    h.apply_plan(&plan).await.unwrap();
    assert_eq!(mode(&key), 0o600);
    h.assert_converged().await;

    // path.pub removed or replaced by another key: the pair is broken → replace.
    std::fs::remove_file(&pubf).unwrap();
    let plan = h.plan().await;
    assert_eq!(plan.action(K), Some(Action::DeleteCreate));
    assert!(plan.get(K).unwrap().reason.to_string().contains("pair"));
    h.apply_plan(&plan).await.unwrap();
    let fresh = std::fs::read_to_string(&pubf).unwrap();
    assert_ne!(
        fresh.split_whitespace().nth(1),
        public.split_whitespace().nth(1)
    );
    assert_eq!(keygen(&["-y", "-f"], &key), fresh);
    h.assert_converged().await;

    // The private key removed by hand: created again.
    std::fs::remove_file(&key).unwrap();
    assert_eq!(h.plan().await.action(K), Some(Action::Create));
    h.apply().await;
    h.assert_converged().await;

    // Destroy removes both files.
    h.destroy().await;
    assert!(!key.exists() && !pubf.exists());
}

#[tokio::test]
async fn key_pair_generated_once_locally() {
    key_pair_lifecycle(local_runner()).await;
}

#[tokio::test]
async fn key_pair_generated_once_over_ssh() {
    let Some(sshd) = Sshd::start() else {
        return;
    };
    key_pair_lifecycle(sshd.runner()).await;
}

#[tokio::test]
async fn foreign_keys_are_adopted_only_when_identical_and_bad_types_refused() {
    if !require("ssh-keygen") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "mine", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(out.success());
    let d = Driver::new(local_runner(), dir.path());
    let mut h = d.harness(K, None);
    // Another comment: not ours, refused (never overwritten).
    let other = Resource::json(
        "ssh_key",
        "bot",
        serde_json::json!({ "path": key.to_string_lossy(), "comment": "bot" }),
    );
    let plan = h.set(vec![other]).plan().await;
    let err = plan.error().expect("refused");
    assert!(
        err.hint.as_deref().unwrap_or("").contains("claw import"),
        "{err}"
    );
    // The same pair as configured: adopted, untouched.
    let same = Resource::json(
        "ssh_key",
        "bot",
        serde_json::json!({ "path": key.to_string_lossy(), "comment": "mine" }),
    );
    let before = std::fs::read(&key).unwrap();
    let plan = h.set(vec![same]).plan().await;
    assert_eq!(plan.action(K), Some(Action::Adopt));
    h.apply_plan(&plan).await.unwrap();
    assert_eq!(std::fs::read(&key).unwrap(), before);
    h.assert_converged().await;

    // `type` other than ed25519 is an error at the attribute.
    let bad = Resource::json(
        "ssh_key",
        "rsa",
        serde_json::json!({ "path": "k", "type": "rsa" }),
    );
    let diags = h.set(vec![bad]).check();
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].attr.as_deref(), Some("type"));
    assert!(diags[0].summary.contains("\"rsa\" is not supported"));
    assert!(diags[0].hint.as_deref().unwrap().contains("ed25519"));
}
