//! The local state backend: a JSON file written atomically (temp file +
//! fsync + rename), a `.backup` of the previous version, and a lock file beside it.

use async_trait::async_trait;
use claw_provider::{Diagnostic, LockError, LockInfo, StateStorage};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct LocalStorage {
    pub path: PathBuf,
}

impl LocalStorage {
    pub fn new(path: impl Into<PathBuf>) -> LocalStorage {
        LocalStorage { path: path.into() }
    }
    pub fn lock_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".lock");
        PathBuf::from(p)
    }
    fn backup_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".backup");
        PathBuf::from(p)
    }
}

fn io_diag(what: &str, p: &Path, e: std::io::Error) -> Diagnostic {
    Diagnostic::error(format!("cannot {what} {}: {e}", p.display()))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[async_trait]
impl StateStorage for LocalStorage {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    async fn read(&self) -> Result<Option<Vec<u8>>, Diagnostic> {
        match std::fs::read(&self.path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_diag("read the state file", &self.path, e)),
        }
    }

    async fn write(&self, bytes: &[u8]) -> Result<(), Diagnostic> {
        // Keep the previous version once per run (the first write after lock).
        if self.path.exists() && !self.backup_path().exists() {
            let _ = std::fs::copy(&self.path, self.backup_path());
        }
        write_atomic(&self.path, bytes).map_err(|e| io_diag("write the state file", &self.path, e))
    }

    async fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let lp = self.lock_path();
        if let Some(d) = lp.parent() {
            std::fs::create_dir_all(d).map_err(|e| LockError::Other(io_diag("create", d, e)))?;
        }
        let body = serde_json::to_vec_pretty(info).unwrap_or_default();
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lp)
        {
            Ok(mut f) => {
                f.write_all(&body)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| LockError::Other(io_diag("write the lock file", &lp, e)))?;
                // A fresh backup for this run.
                let _ = std::fs::remove_file(self.backup_path());
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match self.lock_holder().await {
                    Ok(Some(h)) => Err(LockError::Held(h)),
                    Ok(None) => Err(LockError::Other(
                        Diagnostic::error(format!(
                            "the lock file {} exists but cannot be read",
                            lp.display()
                        ))
                        .with_hint("if no other claw runs, run `claw force-unlock`"),
                    )),
                    Err(d) => Err(LockError::Other(d)),
                }
            }
            Err(e) => Err(LockError::Other(io_diag("create the lock file", &lp, e))),
        }
    }

    async fn unlock(&self, info: &LockInfo) -> Result<(), Diagnostic> {
        let lp = self.lock_path();
        if let Ok(Some(h)) = self.lock_holder().await {
            if h.id != info.id {
                return Err(Diagnostic::error(
                    "the lock is held by another run; not removing it",
                ));
            }
        }
        match std::fs::remove_file(&lp) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_diag("remove the lock file", &lp, e)),
        }
    }

    async fn lock_holder(&self) -> Result<Option<LockInfo>, Diagnostic> {
        let lp = self.lock_path();
        match std::fs::read(&lp) {
            Ok(b) => Ok(serde_json::from_slice(&b).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_diag("read the lock file", &lp, e)),
        }
    }

    async fn force_unlock(&self) -> Result<Option<LockInfo>, Diagnostic> {
        let holder = self.lock_holder().await?;
        let lp = self.lock_path();
        match std::fs::remove_file(&lp) {
            Ok(()) => Ok(holder),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_diag("remove the lock file", &lp, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lock_is_exclusive_and_names_holder() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(d.path().join(".claw/state.json"));
        let a = crate::state::lock_info("apply");
        let b = crate::state::lock_info("apply");
        s.lock(&a).await.unwrap();
        match s.lock(&b).await {
            Err(LockError::Held(h)) => assert_eq!(h.id, a.id),
            other => panic!("{other:?}"),
        }
        assert!(s.unlock(&b).await.is_err(), "another run's lock stays");
        s.unlock(&a).await.unwrap();
        s.lock(&b).await.unwrap();
        assert_eq!(s.force_unlock().await.unwrap().unwrap().id, b.id);
    }

    #[tokio::test]
    async fn writes_atomically_with_backup() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(d.path().join("st.json"));
        assert_eq!(s.read().await.unwrap(), None);
        s.write(b"one").await.unwrap();
        s.write(b"two").await.unwrap();
        assert_eq!(s.read().await.unwrap().unwrap(), b"two");
        assert_eq!(
            std::fs::read(d.path().join("st.json.backup")).unwrap(),
            b"one"
        );
    }
}
