//! Remote state storage, implemented by providers that can hold state (the
//! Kubernetes provider: a Secret plus a Lease). The local file backend lives
//! in the engine.
//!
//! A backend stores two things: the state document (replaced whole, rarely:
//! once per run) and the run's journal (appended to after every operation,
//! O(1) per append). The engine owns both formats; a backend only moves bytes.

use crate::diag::Diagnostic;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Who holds a lock: shown to a second run that finds it held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub id: String,
    pub pid: u32,
    pub host: String,
    pub user: String,
    pub command: String,
    /// RFC 3339 time the lock was taken.
    pub created: String,
}

#[derive(Debug)]
pub enum LockError {
    /// Another run holds the lock.
    Held(LockInfo),
    Other(Diagnostic),
}

#[async_trait]
pub trait StateStorage: Send + Sync {
    /// Where the state lives, for messages (`secret claw-system/claw-state-clawdbot`).
    fn describe(&self) -> String;
    /// The stored state document, or `None` when there is none yet.
    async fn read(&self) -> Result<Option<Vec<u8>>, Diagnostic>;
    /// Replaces the stored document atomically (keeping the previous one as a
    /// backup where the backend can).
    async fn write(&self, bytes: &[u8]) -> Result<(), Diagnostic>;
    /// Stores `bytes` only if there is no document yet (never clobbers), and
    /// returns the stored document: `bytes`, or the one a concurrent run
    /// created first.
    async fn create(&self, bytes: &[u8]) -> Result<Vec<u8>, Diagnostic>;
    /// Appends `bytes` to the journal: written so that it survives this
    /// process dying when the call returns (`write(2)`, or acknowledged by
    /// the server). The first append starts the journal.
    async fn journal_append(&self, bytes: &[u8]) -> Result<(), Diagnostic>;
    /// Makes everything appended so far durable across a power loss
    /// (`fdatasync`). Default: nothing to do (every append is durable).
    async fn journal_sync(&self) -> Result<(), Diagnostic> {
        Ok(())
    }
    /// The journal's bytes in append order, or `None` when there is none.
    async fn journal_read(&self) -> Result<Option<Vec<u8>>, Diagnostic>;
    /// Removes the journal (after it was folded into the state).
    async fn journal_remove(&self) -> Result<(), Diagnostic>;
    /// Takes the lock, or reports who holds it.
    async fn lock(&self, info: &LockInfo) -> Result<(), LockError>;
    /// Replaces the lock held by `dead` (a process the engine found gone)
    /// with `info`, only if `dead` still holds it. Default: refuse.
    async fn take_over(&self, dead: &LockInfo, info: &LockInfo) -> Result<(), LockError> {
        let _ = info;
        Err(LockError::Held(dead.clone()))
    }
    /// Releases a lock this run holds.
    async fn unlock(&self, info: &LockInfo) -> Result<(), Diagnostic>;
    /// The current holder, if any.
    async fn lock_holder(&self) -> Result<Option<LockInfo>, Diagnostic>;
    /// Removes the lock whoever holds it; returns who held it.
    async fn force_unlock(&self) -> Result<Option<LockInfo>, Diagnostic>;
    /// Warnings gathered since the last call, for the engine to print (e.g.
    /// "took over an expired lock held by ..."). Default: none.
    fn take_notices(&self) -> Vec<Diagnostic> {
        Vec::new()
    }
}
