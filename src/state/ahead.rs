//! Reading the state ahead: while the configuration is parsed on one core,
//! another thread reads and parses the state file at its default place
//! (`.claw/state.json` beside `claw.toml`). A parse is a function of the
//! bytes alone, so the store takes it only when the bytes it then reads
//! itself, from whatever backend the configuration names and under its
//! lock, are the same (same length and SHA-256: the early bytes are not
//! kept, to keep the memory peak down); otherwise it is dropped and the
//! store parses as always. Nothing is decided from the early read.

use super::State;
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread::JoinHandle;

/// The length and SHA-256 of the bytes read, and their parse.
type Parsed = Option<(usize, [u8; 32], State)>;

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// One read ahead at a time (the process's is [`start`] and [`take`]).
#[derive(Default)]
pub struct Ahead(Mutex<Option<JoinHandle<Parsed>>>);

static AHEAD: Ahead = Ahead(Mutex::new(None));

/// State files smaller than this (2 MiB) are parsed in place: that takes a
/// few milliseconds, and a thread of its own would cost more in memory (its
/// allocator pages) than it saves in time. A 1,000-resource plan (0.4 MB of
/// state) peaked at 20.3 MB read ahead, 18.7 MB not.
pub const AHEAD_FROM_BYTES: u64 = 2 << 20;

/// Starts reading and parsing the state file at `path`, if there is one of
/// at least [`AHEAD_FROM_BYTES`].
pub fn start(path: PathBuf) {
    AHEAD.start(path)
}

/// The state parsed ahead, if it was parsed from exactly `bytes`.
pub fn take(bytes: &[u8]) -> Option<State> {
    AHEAD.take(bytes)
}

impl Ahead {
    pub fn start(&self, path: PathBuf) {
        self.start_from(path, AHEAD_FROM_BYTES)
    }

    /// [`Ahead::start`] for files of at least `min` bytes.
    pub fn start_from(&self, path: PathBuf, min: u64) {
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() >= min) {
            return;
        }
        let handle = std::thread::Builder::new()
            .name("claw-state-ahead".into())
            .spawn(move || {
                let bytes = std::fs::read(&path).ok()?;
                let state = State::parse(&bytes, "").ok()?;
                Some((bytes.len(), sha256(&bytes), state))
            });
        if let Ok(h) = handle {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
        }
    }

    /// The parse, if it was made from exactly `bytes` (waits for it to
    /// finish); used once.
    pub fn take(&self, bytes: &[u8]) -> Option<State> {
        let handle = self.0.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        let (len, digest, state) = handle.join().ok()??;
        (len == bytes.len() && digest == sha256(bytes)).then_some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_is_taken_only_for_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let st = State::new("s");
        let bytes = st.to_bytes();
        std::fs::write(&path, &bytes).unwrap();
        let ahead = Ahead::default();
        // Too small to be read ahead by default.
        ahead.start(path.clone());
        assert!(ahead.take(&bytes).is_none());
        let ahead = Ahead::default();
        ahead.start_from(path.clone(), 0);
        let mut other = bytes.clone();
        other.push(b'\n');
        assert!(ahead.take(&other).is_none(), "other bytes: parse as always");
        assert!(ahead.take(&bytes).is_none(), "used once");
        ahead.start_from(path, 0);
        let got = ahead.take(&bytes).expect("the same bytes");
        assert_eq!(got.lineage, st.lineage);
        assert_eq!(got.to_bytes(), bytes);
        // No file, no thread.
        ahead.start_from(dir.path().join("missing.json"), 0);
        assert!(ahead.take(&bytes).is_none());
    }
}
