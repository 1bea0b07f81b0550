//! The state: what claw applied, per address; where it lives; the lock.
//!
//! **Invariant:** state is written atomically after every completed operation,
//! only while the lock is held, and never when the stored document could not
//! be read (corrupted or from a newer claw).

pub mod local;

use crate::error::{Error, Problem, Result};
use claw_provider::{Attrs, LockError, LockInfo, StateObject, StateStorage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Mutex;

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "type")]
    pub rtype: String,
    /// `host.local`, `provider.docker`, ...
    pub provider: String,
    pub id: String,
    #[serde(default)]
    pub attrs: Attrs,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub private: Attrs,
    /// Addresses this object depended on when applied (deletes run in reverse).
    #[serde(default)]
    pub deps: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prevent_destroy: bool,
}

impl Entry {
    pub fn object(&self) -> StateObject {
        StateObject {
            id: self.id.clone(),
            attrs: self.attrs.clone(),
            private: self.private.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format_version: u32,
    pub lineage: String,
    pub serial: u64,
    pub stack: String,
    /// Salt for the hashes of sensitive values (fixed per lineage).
    pub salt: String,
    pub resources: BTreeMap<String, Entry>,
}

impl State {
    pub fn new(stack: &str) -> State {
        State {
            format_version: STATE_VERSION,
            lineage: uuid::Uuid::new_v4().to_string(),
            serial: 0,
            stack: stack.to_string(),
            salt: uuid::Uuid::new_v4().simple().to_string(),
            resources: BTreeMap::new(),
        }
    }

    /// Parses a stored document, refusing corrupted and future-version files.
    pub fn parse(bytes: &[u8], where_: &str) -> Result<State> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            Error::one(
                Problem::new(format!("the state in {where_} is corrupted: {e}"))
                    .detail("claw refuses to read or overwrite it, so nothing was changed")
                    .hint("restore it from its .backup copy (written before each apply), or fix the JSON by hand"),
            )
        })?;
        let ver = v
            .get("format_version")
            .and_then(|x| x.as_u64())
            .unwrap_or(0);
        if ver > STATE_VERSION as u64 {
            return Err(Error::one(
                Problem::new(format!(
                    "the state in {where_} has format version {ver}, newer than this claw understands ({STATE_VERSION})"
                ))
                .detail("claw refuses to read or overwrite it, so nothing was changed")
                .hint("upgrade claw to the version that wrote this state"),
            ));
        }
        serde_json::from_value(v).map_err(|e| {
            Error::one(
                Problem::new(format!("the state in {where_} is corrupted: {e}"))
                    .detail("claw refuses to read or overwrite it, so nothing was changed")
                    .hint("restore it from its .backup copy, or fix the JSON by hand"),
            )
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).unwrap_or_default();
        b.push(b'\n');
        b
    }
}

/// This run's lock identity.
pub fn lock_info(command: &str) -> LockInfo {
    LockInfo {
        id: uuid::Uuid::new_v4().to_string(),
        pid: std::process::id(),
        host: hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into()),
        user: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        command: command.to_string(),
        created: crate::util::now_rfc3339(),
    }
}

/// Describes a lock holder for messages.
pub fn describe_holder(h: &LockInfo) -> String {
    let mut s = format!(
        "pid {} on {} ({}), running `{}` since {}",
        h.pid, h.host, h.user, h.command, h.created
    );
    if let Ok(me) = hostname::get() {
        if me.to_string_lossy() == h.host && !crate::util::pid_alive(h.pid) {
            s.push_str(" — that process is no longer running");
        }
    }
    s
}

/// The state of one run: the storage, the lock and the document, saved after
/// every change.
pub struct Store {
    pub storage: Box<dyn StateStorage>,
    pub state: Mutex<State>,
    lock: Option<LockInfo>,
}

impl Store {
    /// Reads the state (a fresh one when there is none) without locking.
    pub async fn read(storage: Box<dyn StateStorage>, stack: &str) -> Result<Store> {
        let state = read_state(storage.as_ref(), stack).await?;
        Ok(Store {
            storage,
            state: Mutex::new(state),
            lock: None,
        })
    }

    /// Takes the lock, then reads the state.
    pub async fn lock(storage: Box<dyn StateStorage>, stack: &str, command: &str) -> Result<Store> {
        let info = lock_info(command);
        match storage.lock(&info).await {
            Ok(()) => {}
            Err(LockError::Held(h)) => {
                return Err(Error::one(
                    Problem::new(format!(
                        "the state {} is locked by another run: {}",
                        storage.describe(),
                        describe_holder(&h)
                    ))
                    .detail("nothing was changed")
                    .hint("wait for that run to finish; if it died, run `claw force-unlock`"),
                ))
            }
            Err(LockError::Other(d)) => return Err(Error::one(Problem::from_diag(&d, None))),
        }
        let state = match read_state(storage.as_ref(), stack).await {
            Ok(s) => s,
            Err(e) => {
                let _ = storage.unlock(&info).await;
                return Err(e);
            }
        };
        Ok(Store {
            storage,
            state: Mutex::new(state),
            lock: Some(info),
        })
    }

    /// Writes the current state with the next serial.
    pub async fn save(&self) -> Result<()> {
        let mut st = self.state.lock().await;
        st.serial += 1;
        let bytes = st.to_bytes();
        self.storage
            .write(&bytes)
            .await
            .map_err(|d| Error::one(Problem::from_diag(&d, None)))
    }

    pub async fn snapshot(&self) -> State {
        self.state.lock().await.clone()
    }

    pub async fn unlock(&self) {
        if let Some(info) = &self.lock {
            let _ = self.storage.unlock(info).await;
        }
    }
}

async fn read_state(storage: &dyn StateStorage, stack: &str) -> Result<State> {
    let bytes = storage
        .read()
        .await
        .map_err(|d| Error::one(Problem::from_diag(&d, None)))?;
    match bytes {
        None => Ok(State::new(stack)),
        Some(b) => {
            let st = State::parse(&b, &storage.describe())?;
            if st.stack != stack {
                return Err(Error::one(
                    Problem::new(format!(
                        "the state {} belongs to stack `{}`, not `{stack}`",
                        storage.describe(),
                        st.stack
                    ))
                    .detail("nothing was changed")
                    .hint("point [stack] state at this stack's own state, or fix [stack] name"),
                ));
            }
            Ok(st)
        }
    }
}

pub type SharedStore = Arc<Store>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_future_and_corrupt() {
        let mut s = State::new("x");
        s.format_version = 99;
        let e = State::parse(&s.to_bytes(), "f").unwrap_err();
        assert!(e.to_string().contains("newer"), "{e}");
        let e = State::parse(b"{not json", "f").unwrap_err();
        assert!(e.to_string().contains("corrupted"), "{e}");
        let s = State::new("x");
        assert_eq!(State::parse(&s.to_bytes(), "f").unwrap(), s);
    }
}
