//! The one digest of sensitive data: an HMAC-SHA256 keyed with the stack's
//! salt. Every hash that could reveal a secret (state, plan files,
//! fingerprints, provider-private fields, the config hash) is made here, so
//! that no unsalted digest of a secret is ever stored. The salt lives only in
//! the state, never in a plan file.

use crate::diff::AttrChange;
use crate::provider::StateObject;
use crate::value::Value;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of every keyed digest.
pub const KEYED_PREFIX: &str = "hmac-sha256:";

/// `hmac-sha256:<hex>` of `data`, keyed with `key` (the stack's salt).
pub fn keyed_digest(key: &str, data: &[u8]) -> String {
    keyed_digest_of_parts(key, [data])
}

/// [`keyed_digest`] of the concatenation of `parts`, without making it.
pub fn keyed_digest_of_parts<'a>(key: &str, parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    format!("{KEYED_PREFIX}{}", hex::encode(m.finalize().into_bytes()))
}

/// The path of the change that records a state entry again because it holds
/// a digest in the form older versions of claw wrote (see [`rehash_change`]).
pub const REHASH_PATH: &str = "digests";

/// True when a state entry holds a secret hashed the way older versions of
/// claw did (salted SHA-256, not keyed): its next apply records it again.
pub fn has_legacy_digest(obj: &StateObject) -> bool {
    obj.attrs
        .values()
        .chain(obj.private.values())
        .any(Value::contains_legacy_digest)
}

/// The in-place change a provider's diff adds for an entry with a legacy
/// digest: nothing changes on the object; the update records the entry again,
/// with keyed digests only. The plan shows it plainly.
pub fn rehash_change() -> AttrChange {
    AttrChange::new(
        REHASH_PATH,
        Some(Value::str("sha256 (written by an older claw)")),
        Some(Value::str("hmac-sha256 (keyed with the stack's salt)")),
    )
}

/// True when every change is [`rehash_change`]: apply only records the entry.
pub fn only_rehash(changes: &[AttrChange]) -> bool {
    !changes.is_empty() && changes.iter().all(|c| c.path == REHASH_PATH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_differs_by_key_and_is_not_plain_sha256() {
        let a = keyed_digest("salt-a", b"hunter2");
        let b = keyed_digest("salt-b", b"hunter2");
        assert_ne!(a, b);
        assert!(a.starts_with(KEYED_PREFIX));
        // The plain SHA-256 of "hunter2" must not appear.
        assert!(!a.contains("f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7"));
        assert_eq!(a, keyed_digest("salt-a", b"hunter2"));
    }
}
