//! The local state backend: `.claw/state.json` written atomically (a temp
//! file, fsync, rename) after a copy of the previous version is saved as
//! `state.json.backup`; the run's journal `state.json.journal` (appended and
//! fdatasync'd per batch of records); and `state.json.lock`, created whole
//! (a temp file hard-linked into place, which fails if a lock exists).

use async_trait::async_trait;
use claw_provider::{Diagnostic, LockError, LockInfo, StateStorage};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct LocalStorage {
    pub path: PathBuf,
    /// The journal, open for appending once the first record is written.
    journal: std::sync::Mutex<Option<std::sync::Arc<File>>>,
}

impl LocalStorage {
    pub fn new(path: impl Into<PathBuf>) -> LocalStorage {
        LocalStorage {
            path: path.into(),
            journal: std::sync::Mutex::new(None),
        }
    }
    fn beside(&self, suffix: &str) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    }
    pub fn lock_path(&self) -> PathBuf {
        self.beside(".lock")
    }
    pub fn backup_path(&self) -> PathBuf {
        self.beside(".backup")
    }
    pub fn journal_path(&self) -> PathBuf {
        self.beside(".journal")
    }
    fn dir(&self) -> &Path {
        parent_dir(&self.path)
    }

    /// Puts a file holding exactly `bytes` at `path` unless one exists there:
    /// a complete temp file is hard-linked into place. `Ok(false)`: it exists.
    fn create_whole(&self, path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
        std::fs::create_dir_all(self.dir())?;
        let mut tmp = tempfile::NamedTempFile::new_in(self.dir())?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        match std::fs::hard_link(tmp.path(), path) {
            Ok(()) => {
                sync_dir(self.dir());
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn holder(&self) -> Result<Option<LockInfo>, LockError> {
        let lp = self.lock_path();
        match std::fs::read(&lp) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(h) => Ok(Some(h)),
                Err(_) => Err(LockError::Other(
                    Diagnostic::error(format!(
                        "the lock file {} exists but cannot be read",
                        lp.display()
                    ))
                    .with_hint("if no other claw runs, run `claw force-unlock`"),
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LockError::Other(io_diag("read the lock file", &lp, e))),
        }
    }

    fn try_lock(&self, info: &LockInfo) -> Result<bool, LockError> {
        let body = serde_json::to_vec_pretty(info).unwrap_or_default();
        self.create_whole(&self.lock_path(), &body)
            .map_err(|e| LockError::Other(io_diag("create the lock file", &self.lock_path(), e)))
    }
}

fn parent_dir(p: &Path) -> &Path {
    p.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn io_diag(what: &str, p: &Path, e: std::io::Error) -> Diagnostic {
    Diagnostic::error(format!("cannot {what} {}: {e}", p.display()))
}

/// Writes `bytes` to `path` atomically (mode 0600).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

/// An exclusive `flock` on a directory, released when dropped: serialises
/// lock take-overs between runs on this host.
struct DirLock(File);

impl DirLock {
    fn take(dir: &Path) -> std::io::Result<DirLock> {
        use std::os::fd::AsRawFd;
        let f = File::open(dir)?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(DirLock(f))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
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
        // The previous version goes to the backup first (never deleted).
        match std::fs::read(&self.path) {
            Ok(old) => write_atomic(&self.backup_path(), &old)
                .map_err(|e| io_diag("write the state backup", &self.backup_path(), e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_diag("read the state file", &self.path, e)),
        }
        write_atomic(&self.path, bytes).map_err(|e| io_diag("write the state file", &self.path, e))
    }

    async fn create(&self, bytes: &[u8]) -> Result<Vec<u8>, Diagnostic> {
        let created = self
            .create_whole(&self.path, bytes)
            .map_err(|e| io_diag("create the state file", &self.path, e))?;
        if created {
            return Ok(bytes.to_vec());
        }
        std::fs::read(&self.path).map_err(|e| io_diag("read the state file", &self.path, e))
    }

    async fn journal_append(&self, bytes: &[u8]) -> Result<(), Diagnostic> {
        let jp = self.journal_path();
        let f = {
            let mut open = self.journal.lock().expect("journal file");
            if open.is_none() {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(&jp)
                    .map_err(|e| io_diag("open the state journal", &jp, e))?;
                sync_dir(self.dir());
                *open = Some(std::sync::Arc::new(f));
            }
            open.clone().expect("journal open")
        };
        (&*f)
            .write_all(bytes)
            .map_err(|e| io_diag("append to the state journal", &jp, e))
    }

    async fn journal_sync(&self) -> Result<(), Diagnostic> {
        // Outside the lock: appends go on while the disk syncs.
        let f = self.journal.lock().expect("journal file").clone();
        match f {
            Some(f) => f
                .sync_data()
                .map_err(|e| io_diag("sync the state journal", &self.journal_path(), e)),
            None => Ok(()),
        }
    }

    async fn journal_read(&self) -> Result<Option<Vec<u8>>, Diagnostic> {
        let jp = self.journal_path();
        match std::fs::read(&jp) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_diag("read the state journal", &jp, e)),
        }
    }

    async fn journal_remove(&self) -> Result<(), Diagnostic> {
        let jp = self.journal_path();
        self.journal.lock().expect("journal file").take();
        match std::fs::remove_file(&jp) {
            Ok(()) => {
                sync_dir(self.dir());
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_diag("remove the state journal", &jp, e)),
        }
    }

    async fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        if self.try_lock(info)? {
            return Ok(());
        }
        match self.holder()? {
            Some(h) => Err(LockError::Held(h)),
            // Released between our attempt and the read: try once more.
            None if self.try_lock(info)? => Ok(()),
            None => match self.holder()? {
                Some(h) => Err(LockError::Held(h)),
                None => Err(LockError::Other(Diagnostic::error(
                    "the state lock keeps changing hands; try again",
                ))),
            },
        }
    }

    async fn take_over(&self, dead: &LockInfo, info: &LockInfo) -> Result<(), LockError> {
        // Only one run at a time replaces a dead holder's lock, and only while
        // that holder's lock is still the one in place.
        let _serial = DirLock::take(self.dir())
            .map_err(|e| LockError::Other(io_diag("lock the state folder", self.dir(), e)))?;
        match self.holder()? {
            Some(h) if h.id == dead.id => {
                let lp = self.lock_path();
                std::fs::remove_file(&lp)
                    .map_err(|e| LockError::Other(io_diag("remove the stale lock", &lp, e)))?;
            }
            Some(h) => return Err(LockError::Held(h)),
            None => {}
        }
        if self.try_lock(info)? {
            return Ok(());
        }
        Err(self.holder()?.map_or_else(
            || {
                LockError::Other(Diagnostic::error(
                    "the state lock keeps changing hands; try again",
                ))
            },
            LockError::Held,
        ))
    }

    async fn unlock(&self, info: &LockInfo) -> Result<(), Diagnostic> {
        let lp = self.lock_path();
        if let Ok(Some(h)) = self.holder() {
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
        match self.holder() {
            Ok(h) => Ok(h),
            Err(LockError::Other(d)) => Err(d),
            Err(LockError::Held(h)) => Ok(Some(h)),
        }
    }

    async fn force_unlock(&self) -> Result<Option<LockInfo>, Diagnostic> {
        let holder = self.lock_holder().await.unwrap_or(None);
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
        // Only the temp files' link targets remain: no stray temp files.
        let names: Vec<_> = std::fs::read_dir(d.path().join(".claw"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[tokio::test]
    async fn a_take_over_replaces_only_the_dead_holders_lock() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(d.path().join("state.json"));
        let (dead, me, other) = (
            crate::state::lock_info("apply"),
            crate::state::lock_info("apply"),
            crate::state::lock_info("apply"),
        );
        s.lock(&other).await.unwrap();
        match s.take_over(&dead, &me).await {
            Err(LockError::Held(h)) => assert_eq!(h.id, other.id, "a live holder keeps it"),
            x => panic!("{x:?}"),
        }
        s.force_unlock().await.unwrap();
        s.lock(&dead).await.unwrap();
        s.take_over(&dead, &me).await.unwrap();
        assert_eq!(s.lock_holder().await.unwrap().unwrap().id, me.id);
    }

    #[tokio::test]
    async fn writes_atomically_with_backup_and_creates_without_clobbering() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(d.path().join("st.json"));
        assert_eq!(s.read().await.unwrap(), None);
        assert_eq!(s.create(b"zero").await.unwrap(), b"zero");
        assert_eq!(s.create(b"other").await.unwrap(), b"zero", "no clobber");
        s.write(b"one").await.unwrap();
        s.write(b"two").await.unwrap();
        assert_eq!(s.read().await.unwrap().unwrap(), b"two");
        assert_eq!(std::fs::read(s.backup_path()).unwrap(), b"one");
        use std::os::unix::fs::PermissionsExt;
        for p in [s.path.clone(), s.backup_path()] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }

    #[tokio::test]
    async fn the_journal_appends_reads_and_goes() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(d.path().join("st.json"));
        assert_eq!(s.journal_read().await.unwrap(), None);
        s.journal_append(b"a\n").await.unwrap();
        s.journal_append(b"b\n").await.unwrap();
        assert_eq!(s.journal_read().await.unwrap().unwrap(), b"a\nb\n");
        s.journal_remove().await.unwrap();
        assert_eq!(s.journal_read().await.unwrap(), None);
        s.journal_append(b"c\n").await.unwrap();
        assert_eq!(s.journal_read().await.unwrap().unwrap(), b"c\n");
    }
}
