//! The one digest of sensitive data: an HMAC-SHA256 keyed with the stack's
//! salt. Every hash that could reveal a secret (state, plan files,
//! fingerprints, provider-private fields, the config hash) is made here, so
//! that no unsalted digest of a secret is ever stored. The salt lives only in
//! the state, never in a plan file.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of every keyed digest.
pub const KEYED_PREFIX: &str = "hmac-sha256:";

/// `hmac-sha256:<hex>` of `data`, keyed with `key` (the stack's salt).
pub fn keyed_digest(key: &str, data: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    m.update(data);
    format!("{KEYED_PREFIX}{}", hex::encode(m.finalize().into_bytes()))
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
