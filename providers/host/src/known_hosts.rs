//! OpenSSH `known_hosts` verification: plain and hashed (`|1|salt|hash`)
//! host names, `[host]:port` entries, wildcard and negated patterns, and the
//! `@revoked` / `@cert-authority` markers.

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::PublicKey;
use sha1::Sha1;
use std::io::Write;
use std::path::Path;

/// What the known_hosts file says about a host key.
#[derive(Debug, Clone, PartialEq)]
pub enum HostKeyStatus {
    /// A matching entry holds this key.
    Known,
    /// No entry of this key type for the host.
    Unknown,
    /// An entry of the same type holds a different key (line number, 1-based).
    Changed { line: usize },
    /// The key is marked `@revoked` (line number).
    Revoked { line: usize },
}

/// The name a host is recorded under: `host`, or `[host]:port` off port 22.
pub fn host_entry_name(host: &str, port: u16) -> String {
    let h = host.to_ascii_lowercase();
    if port == 22 {
        h
    } else {
        format!("[{h}]:{port}")
    }
}

/// A `*` / `?` glob match (OpenSSH `match_pattern`).
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match (pattern.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pattern[1..], s) || (!s.is_empty() && glob(pattern, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &s[1..]),
        (Some(p), Some(c)) if p.eq_ignore_ascii_case(c) => glob(&pattern[1..], &s[1..]),
        _ => false,
    }
}

fn hashed_match(entry: &str, name: &str) -> bool {
    let mut parts = entry.split('|').skip(2);
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// Whether a comma-separated host field applies to `name` (a negated match wins).
pub fn hosts_field_matches(field: &str, name: &str) -> bool {
    let mut positive = false;
    for entry in field.split(',') {
        if entry.starts_with("|1|") {
            if hashed_match(entry, name) {
                positive = true;
            }
        } else if let Some(neg) = entry.strip_prefix('!') {
            if glob(neg.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if glob(entry.as_bytes(), name.as_bytes()) {
            positive = true;
        }
    }
    positive
}

/// A hashed host name as `ssh-keygen -H` writes it (used by tests and docs).
pub fn hash_host_name(name: &str, salt: &[u8]) -> String {
    let mac = <Hmac<Sha1> as KeyInit>::new_from_slice(salt)
        .expect("HMAC accepts keys of any length")
        .chain_update(name.as_bytes());
    format!(
        "|1|{}|{}",
        BASE64.encode(salt),
        BASE64.encode(&mac.finalize().into_bytes())
    )
}

/// Checks `key` for `host:port` against the file at `path` (a missing file
/// knows no host).
pub fn check(
    path: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> std::io::Result<HostKeyStatus> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HostKeyStatus::Unknown),
        Err(e) => return Err(e),
    };
    Ok(check_text(&text, host, port, key))
}

pub fn check_text(text: &str, host: &str, port: u16, key: &PublicKey) -> HostKeyStatus {
    let name = host_entry_name(host, port);
    let mut known = false;
    let mut changed = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut toks = line.split_whitespace();
        let mut first = toks.next().unwrap_or("");
        let mut marker = None;
        if first.starts_with('@') {
            marker = Some(first);
            first = toks.next().unwrap_or("");
        }
        let (Some(_keytype), Some(b64)) = (toks.next(), toks.next()) else {
            continue;
        };
        if !hosts_field_matches(first, &name) {
            continue;
        }
        let Ok(recorded) = russh::keys::parse_public_key_base64(b64) else {
            continue;
        };
        match marker {
            Some("@revoked") => {
                if recorded.key_data() == key.key_data() {
                    return HostKeyStatus::Revoked { line: line_no };
                }
            }
            Some(_) => {} // @cert-authority: host certificates are not used here
            None => {
                if recorded.key_data() == key.key_data() {
                    known = true;
                } else if recorded.algorithm() == key.algorithm() && changed.is_none() {
                    changed = Some(line_no);
                }
            }
        }
    }
    if known {
        HostKeyStatus::Known
    } else if let Some(line) = changed {
        HostKeyStatus::Changed { line }
    } else {
        HostKeyStatus::Unknown
    }
}

/// The line that records `key` for `host:port`.
pub fn entry_line(host: &str, port: u16, key: &PublicKey) -> String {
    let openssh = key.to_openssh().unwrap_or_default();
    let mut parts = openssh.split_whitespace();
    let (t, b) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    format!("{} {t} {b}", host_entry_name(host, port))
}

/// Appends the entry for `key` (the folder is created with mode 0700).
pub fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            std::fs::create_dir_all(parent)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700));
            }
        }
    }
    let existing = std::fs::read(path).unwrap_or_default();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if !existing.is_empty() && !existing.ends_with(b"\n") {
        f.write_all(b"\n")?;
    }
    writeln!(f, "{}", entry_line(host, port, key))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const K2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    fn key(b: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b).unwrap()
    }

    #[test]
    fn plain_port_hashed_and_negated_entries() {
        let k1 = key(K1);
        let k2 = key(K2);
        let t = format!("# comment\n\nmac-mini,10.0.0.5 ssh-ed25519 {K1}\n[127.0.0.1]:2222 ssh-ed25519 {K2} c\n");
        assert_eq!(check_text(&t, "mac-mini", 22, &k1), HostKeyStatus::Known);
        assert_eq!(check_text(&t, "MAC-MINI", 22, &k1), HostKeyStatus::Known);
        assert_eq!(
            check_text(&t, "mac-mini", 22, &k2),
            HostKeyStatus::Changed { line: 3 }
        );
        assert_eq!(
            check_text(&t, "mac-mini", 2200, &k1),
            HostKeyStatus::Unknown
        );
        assert_eq!(check_text(&t, "127.0.0.1", 2222, &k2), HostKeyStatus::Known);
        assert_eq!(check_text(&t, "127.0.0.1", 22, &k2), HostKeyStatus::Unknown);

        let hashed = hash_host_name("[127.0.0.1]:2222", b"0123456789abcdefghij");
        let t = format!("{hashed} ssh-ed25519 {K1}\n");
        assert_eq!(check_text(&t, "127.0.0.1", 2222, &k1), HostKeyStatus::Known);
        assert_eq!(
            check_text(&t, "127.0.0.1", 2222, &k2),
            HostKeyStatus::Changed { line: 1 }
        );
        assert_eq!(
            check_text(&t, "127.0.0.2", 2222, &k1),
            HostKeyStatus::Unknown
        );

        let t = format!("*.lan,!evil.lan ssh-ed25519 {K1}\n@revoked * ssh-ed25519 {K2}\n");
        assert_eq!(check_text(&t, "box.lan", 22, &k1), HostKeyStatus::Known);
        assert_eq!(check_text(&t, "evil.lan", 22, &k1), HostKeyStatus::Unknown);
        assert_eq!(
            check_text(&t, "box.lan", 22, &k2),
            HostKeyStatus::Revoked { line: 2 }
        );
    }

    #[test]
    fn append_then_known() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/known_hosts");
        let k = key(K1);
        append(&p, "127.0.0.1", 2222, &k).unwrap();
        assert_eq!(
            check(&p, "127.0.0.1", 2222, &k).unwrap(),
            HostKeyStatus::Known
        );
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .starts_with("[127.0.0.1]:2222 ssh-ed25519 "));
    }
}
