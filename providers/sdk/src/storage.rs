//! Remote state storage, implemented by providers that can hold state (the
//! Kubernetes provider: a Secret plus a Lease). The local file backend lives
//! in the engine.

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
    /// Replaces the stored document atomically.
    async fn write(&self, bytes: &[u8]) -> Result<(), Diagnostic>;
    /// Takes the lock, or reports who holds it.
    async fn lock(&self, info: &LockInfo) -> Result<(), LockError>;
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
