//! `ssh_key` end to end through the CLI: the public key reaches a dependent
//! `file` through `${ssh_key.k.public_key}`, the private key a sensitive one
//! through `${ssh_key.k.private_key}` (read from the key file, also on a
//! later run whose state holds only its keyed hash), no key material in the
//! state, the plan file or `show`, a second apply changes nothing, bad
//! `type` is refused at its location, destroy removes both files.

use crate::common::{require, says, which, Ctx};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const STACK: &str = r#"
[stack]
name = "keys"

[ssh_key.bot]
path = "keys/bot_ed25519"
comment = "bot@claworc"

[file.authorized]
path = "out/authorized_keys"
content = "${ssh_key.bot.public_key}\n"

[file.copy]
path = "out/private_copy"
content = "${ssh_key.bot.private_key}"
# Set: before the key exists, the plan cannot know the content is a secret
# (whose file would default to 0600).
mode = "0600"

[output.fingerprint]
value = "${ssh_key.bot.fingerprint}"
"#;

/// The base64 lines of an OpenSSH private key (its key material).
fn material(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(str::to_string)
        .collect()
}

fn no_key_in(what: &str, text: &str, pem: &str) {
    for l in material(pem) {
        assert!(!text.contains(&l), "private key material in {what}");
    }
}

#[test]
fn ssh_key_feeds_dependents_without_leaking_and_applies_once() {
    if !require(
        "ssh-keygen",
        which("ssh-keygen"),
        "apt-get install openssh-client",
    ) {
        return;
    }
    let t = Ctx::new();
    t.write("claw.toml", STACK);
    let o = t.ok(&["plan", "--out", "first.plan"], 0);
    says(&o.stdout, "(known after apply)");
    t.ok(&["apply", "first.plan"], 0);

    let pem = t.read("keys/bot_ed25519");
    let public = t.read("keys/bot_ed25519.pub");
    let derived = Command::new("ssh-keygen")
        .args(["-y", "-f"])
        .arg(t.path("keys/bot_ed25519"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&derived.stdout), public);
    let mode = |rel: &str| std::fs::metadata(t.path(rel)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("keys/bot_ed25519"), 0o600);
    assert_eq!(t.read("out/authorized_keys"), public);
    assert_eq!(t.read("out/private_copy"), pem);
    assert_eq!(
        mode("out/private_copy"),
        0o600,
        "a secret's file is private"
    );
    let fp = t.ok(&["output", "fingerprint"], 0);
    assert!(fp.stdout.starts_with("SHA256:"), "{}", fp.stdout);

    // Neither state, nor a plan file, nor `show` holds the key.
    no_key_in("the state", &t.read(".claw/state.json"), &pem);
    no_key_in("the first plan file", &t.read("first.plan"), &pem);
    let o = t.ok(&["show", "--format", "json"], 0);
    no_key_in("show", &o.all(), &pem);

    // A second apply changes nothing (the key is not generated again).
    t.ok(&["plan", "--detailed-exitcode"], 0);
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(t.read("keys/bot_ed25519"), pem);

    // The copy edited by hand: the next run (whose state holds only the
    // key's keyed hash) reads the private key from its file to restore it.
    t.write("out/private_copy", "tampered\n");
    let o = t.ok(&["plan", "--detailed-exitcode", "--out", "drift.plan"], 2);
    says(&o.stdout, "file.copy");
    no_key_in("the plan", &o.all(), &pem);
    no_key_in("the drift plan file", &t.read("drift.plan"), &pem);
    let o = t.ok(&["plan", "--format", "json"], 0);
    no_key_in("the json plan", &o.stdout, &pem);
    t.ok(&["apply", "drift.plan"], 0);
    assert_eq!(t.read("out/private_copy"), pem);
    t.ok(&["plan", "--detailed-exitcode"], 0);
    no_key_in("the state", &t.read(".claw/state.json"), &pem);

    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(!t.exists("keys/bot_ed25519") && !t.exists("keys/bot_ed25519.pub"));
}

#[test]
fn an_ssh_key_type_other_than_ed25519_is_refused_at_its_location() {
    let t = Ctx::new();
    t.write(
        "claw.toml",
        "[stack]\nname = \"keys\"\n\n[ssh_key.old]\npath = \"k\"\ntype = \"rsa\"\n",
    );
    let o = t.ok(&["validate"], 1);
    says(&o.stderr, "claw.toml:6:8");
    says(&o.stderr, "\"rsa\" is not supported");
    says(&o.stderr, "hint:");
}
