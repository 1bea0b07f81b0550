//! `Store`: one run's handle on the state.
//!
//! - `Store::read` (plan, show, state list): the state with any journal
//!   folded in memory; creates the empty state of a fresh stack once.
//! - `Store::lock` (apply, destroy, import, state rm): takes the lock (or
//!   takes over one whose holder died on this host), reads the state, and
//!   folds a journal left by a crash into it, writing the state.
//! - `begin` / `commit` / `end` record one operation in the journal, O(1)
//!   each; `finish` writes the state once (serial + 1, the previous one kept
//!   as `.backup`) and removes the journal; `close` finishes and unlocks.
//! - `save` writes the state now (one-shot commands: `state rm`, `import`).
//!
//! With `CLAW_STATS` set, `finish` prints the bytes of state written so far
//! to stderr (`claw-stats: state bytes written: ...`).

use super::journal::{self, Folded, Header, Record, Writer};
use super::{
    describe_holder, known_types, lock_info, process_alive_here, process_gone, Entry, InFlight,
    State,
};
use crate::error::{Error, Problem, Result};
use claw_provider::{Diagnostic, LockError, LockInfo, StateStorage};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;

pub type SharedStore = Arc<Store>;

/// Bytes handed to the backend, for `CLAW_STATS` and the benchmark.
#[derive(Default)]
struct Stats {
    journal: AtomicU64,
    state: AtomicU64,
    records: AtomicU64,
}

/// The state of one run: the storage, the lock, the document and its journal.
pub struct Store {
    pub storage: Box<dyn StateStorage>,
    /// The document as of now (every committed operation included). Read it
    /// freely; change it only through `commit` (or before `save`).
    pub state: Mutex<State>,
    lock: Option<LockInfo>,
    journal: Option<Writer>,
    /// Addresses begun by this run and not yet committed or ended.
    begun: std::sync::Mutex<BTreeSet<String>>,
    notices: std::sync::Mutex<Vec<Diagnostic>>,
    stats: Stats,
    /// Set by [`Store::defer_syncs`]: `commit` and `end` only write.
    deferred: std::sync::atomic::AtomicBool,
}

fn diag_err(d: &Diagnostic) -> Error {
    Error::one(Problem::from_diag(d, None))
}

fn who(h: &Header) -> String {
    format!("pid {} on {}", h.pid, h.host)
}

impl Store {
    fn new(storage: Box<dyn StateStorage>, state: State, lock: Option<LockInfo>) -> Store {
        let journal = lock.as_ref().map(|l| Writer::new(&header(&state, l)));
        Store {
            storage,
            state: Mutex::new(state),
            lock,
            journal,
            begun: Default::default(),
            notices: Default::default(),
            stats: Stats::default(),
            deferred: Default::default(),
        }
    }

    /// Reads the state without locking: a journal another run is writing, or
    /// one left by a crash, is folded in memory (the next locking command
    /// writes it into the state).
    pub async fn read(storage: Box<dyn StateStorage>, stack: &str) -> Result<Store> {
        // A run may finish (and the next one start a journal) between our
        // reads of the state and of the journal: then read both again.
        let mut tries = 0;
        let (state, notes) = loop {
            tries += 1;
            match Self::view(storage.as_ref(), stack).await {
                Err(_) if tries < 3 => continue,
                r => break r?,
            }
        };
        let store = Store::new(storage, state, None);
        store.notices.lock().expect("notices").extend(notes);
        Ok(store)
    }

    /// The state with a journal folded in memory, and what to say about it.
    async fn view(storage: &dyn StateStorage, stack: &str) -> Result<(State, Vec<Diagnostic>)> {
        let mut state = read_state(storage, stack).await?;
        let mut notes = Vec::new();
        let mut live = false;
        if let Some(bytes) = storage.journal_read().await.map_err(|d| diag_err(&d))? {
            if let Folded::Applied {
                header, commits, ..
            } = journal::fold(&mut state, &bytes, &journal_where(storage))?
            {
                live = process_alive_here(&header.host, header.pid);
                let msg = if live {
                    format!("the state is being changed by {} ({commits} operations so far); showing them", who(&header))
                } else if process_gone(&header.host, header.pid) {
                    format!("{commits} operations recorded in a journal left by {}, which is no longer running, are not in the state file yet; showing them", who(&header))
                } else {
                    format!("{commits} operations recorded in a journal by {} are not in the state file yet; showing them", who(&header))
                };
                notes.push(
                    Diagnostic::warning(msg).with_hint("the next apply writes them into the state"),
                );
                state.serial += 1;
            }
        }
        if !live {
            notes.extend(in_flight_notice(&state));
        }
        Ok((state, notes))
    }

    /// Takes the lock, then reads the state and folds a journal left by a
    /// crash into it.
    pub async fn lock(storage: Box<dyn StateStorage>, stack: &str, command: &str) -> Result<Store> {
        let info = lock_info(command);
        let mut notes = Vec::new();
        match storage.lock(&info).await {
            Ok(()) => {}
            Err(LockError::Held(h)) if process_gone(&h.host, h.pid) => {
                match storage.take_over(&h, &info).await {
                    Ok(()) => notes.push(
                        Diagnostic::warning(format!(
                            "took over the lock on {} held by {}",
                            storage.describe(),
                            describe_holder(&h)
                        ))
                        .with_hint("that run died; this run folds in what it recorded and re-checks what it left in flight"),
                    ),
                    Err(LockError::Held(now)) => return Err(held(storage.as_ref(), &now)),
                    Err(LockError::Other(d)) => return Err(diag_err(&d)),
                }
            }
            Err(LockError::Held(h)) => return Err(held(storage.as_ref(), &h)),
            Err(LockError::Other(d)) => return Err(diag_err(&d)),
        }
        match Self::locked(storage.as_ref(), stack).await {
            Ok((state, more)) => {
                notes.extend(more);
                let store = Store::new(storage, state, Some(info));
                store.notices.lock().expect("notices").extend(notes);
                Ok(store)
            }
            Err(e) => {
                let _ = storage.unlock(&info).await;
                Err(e)
            }
        }
    }

    async fn locked(storage: &dyn StateStorage, stack: &str) -> Result<(State, Vec<Diagnostic>)> {
        let mut state = read_state(storage, stack).await?;
        let mut notes = Vec::new();
        if let Some(bytes) = storage.journal_read().await.map_err(|d| diag_err(&d))? {
            match journal::fold(&mut state, &bytes, &journal_where(storage))? {
                Folded::AlreadyIn(_) => {}
                Folded::Applied {
                    header,
                    commits,
                    in_flight,
                    torn,
                } => {
                    if process_alive_here(&header.host, header.pid) {
                        return Err(Error::one(
                            Problem::new(format!(
                                "the journal {} is still being written by {}, which holds no lock",
                                journal_where(storage),
                                who(&header)
                            ))
                            .detail("its lock was removed while it ran (`claw force-unlock`?); nothing was changed")
                            .hint("wait for that run to finish, then run this command again"),
                        ));
                    }
                    state.serial += 1;
                    storage
                        .write(&state.to_bytes())
                        .await
                        .map_err(|d| diag_err(&d))?;
                    let mut msg = format!(
                        "recovered {commits} operations from a journal left by {}",
                        who(&header)
                    );
                    if !in_flight.is_empty() {
                        msg.push_str(&format!(
                            "; {} were in flight and are re-checked: {}",
                            in_flight.len(),
                            in_flight.join(", ")
                        ));
                    }
                    if torn {
                        msg.push_str(" (its last record was cut short and is ignored)");
                    }
                    notes.push(Diagnostic::warning(msg));
                }
            }
            storage.journal_remove().await.map_err(|d| diag_err(&d))?;
        }
        if notes.is_empty() {
            notes.extend(in_flight_notice(&state));
        }
        Ok((state, notes))
    }

    /// Records that an operation on `addr` starts (`create`, `update`,
    /// `replace`, `delete`, `delete-old`): durable before it returns.
    pub async fn begin(&self, addr: &str, op: &str) -> Result<()> {
        let at = crate::util::now_rfc3339();
        {
            let mut st = self.state.lock().await;
            let (pid, host) = self
                .lock
                .as_ref()
                .map(|l| (l.pid, l.host.clone()))
                .unwrap_or_default();
            st.in_flight.insert(
                addr.to_string(),
                InFlight {
                    op: op.to_string(),
                    pid,
                    host,
                    started: at.clone(),
                },
            );
        }
        self.begun.lock().expect("begun").insert(addr.to_string());
        self.append_as(
            false,
            Record::Begin {
                addr: addr.to_string(),
                op: op.to_string(),
                at,
            },
        )
        .await
    }

    /// Records that the operation on `addr` completed: its new entry, or
    /// `None` when the object is gone. O(1): one journal record.
    pub async fn commit(&self, addr: &str, entry: Option<Entry>) -> Result<()> {
        {
            let mut st = self.state.lock().await;
            st.in_flight.remove(addr);
            match &entry {
                Some(e) => st.resources.insert(addr.to_string(), e.clone()),
                None => st.resources.remove(addr),
            };
        }
        self.begun.lock().expect("begun").remove(addr);
        self.append(Record::Commit {
            addr: addr.to_string(),
            entry,
        })
        .await
    }

    /// Records that the operation this run began on `addr` finished without
    /// changing the state (it failed, or deleted a replaced object). Does
    /// nothing when this run did not begin one.
    pub async fn end(&self, addr: &str) -> Result<()> {
        if !self.begun.lock().expect("begun").remove(addr) {
            return Ok(());
        }
        self.state.lock().await.in_flight.remove(addr);
        self.append(Record::End {
            addr: addr.to_string(),
        })
        .await
    }

    /// Forgets an operation left in flight by an earlier run (after
    /// re-checking it found nothing to record).
    pub async fn settle(&self, addr: &str) -> Result<()> {
        self.begun.lock().expect("begun").insert(addr.to_string());
        self.end(addr).await
    }

    async fn append(&self, rec: Record) -> Result<()> {
        self.append_as(!self.deferred.load(Ordering::Relaxed), rec)
            .await
    }

    /// From now on `commit` and `end` only write their record (it survives
    /// the process dying); [`Store::sync`] makes them durable. The apply
    /// walker syncs before the operations that depend on a commit start and
    /// once at its end, so a finished operation frees its slot without
    /// waiting for the disk.
    pub fn defer_syncs(&self) {
        self.deferred.store(true, Ordering::Relaxed);
    }

    /// Makes every record written so far durable (one sync, shared).
    pub async fn sync(&self) -> Result<()> {
        match &self.journal {
            Some(j) => j
                .sync(self.storage.as_ref())
                .await
                .map_err(|d| diag_err(&d)),
            None => Ok(()),
        }
    }

    /// Appends a record; `durable`: synced before returning (commits), else
    /// only written (begins: they survive the process dying; the next sync
    /// makes them durable too).
    async fn append_as(&self, durable: bool, rec: Record) -> Result<()> {
        let Some(j) = &self.journal else {
            return Err(Error::msg(
                "internal: the state is not locked; cannot record an operation",
            ));
        };
        let n = j
            .push(self.storage.as_ref(), &rec, durable)
            .await
            .map_err(|d| diag_err(&d))?;
        self.stats.journal.fetch_add(n, Ordering::Relaxed);
        self.stats.records.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Folds this run's journal into the state: writes the state once
    /// (serial + 1) and removes the journal. Nothing to do when no operation
    /// was recorded.
    pub async fn finish(&self) -> Result<()> {
        self.write(false).await
    }

    /// Writes the current state now, with the next serial.
    pub async fn save(&self) -> Result<()> {
        self.write(true).await
    }

    async fn write(&self, always: bool) -> Result<()> {
        // Holding the journal: an operation recorded meanwhile goes into the
        // next journal, never into one that is about to be removed.
        let mut hold = match &self.journal {
            Some(j) => Some(j.hold().await),
            None => None,
        };
        let journaled = hold.as_ref().is_some_and(|h| h.written());
        if !journaled && !always {
            return Ok(());
        }
        self.write_now().await?;
        if journaled {
            self.storage
                .journal_remove()
                .await
                .map_err(|d| diag_err(&d))?;
        }
        if let (Some(h), Some(l)) = (hold.as_mut(), &self.lock) {
            h.reset(&header(&*self.state.lock().await, l));
        }
        self.print_stats();
        Ok(())
    }

    async fn write_now(&self) -> Result<()> {
        let mut st = self.state.lock().await;
        st.serial += 1;
        let bytes = st.to_bytes();
        if let Err(d) = self.storage.write(&bytes).await {
            st.serial -= 1;
            return Err(diag_err(&d));
        }
        self.stats
            .state
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Finishes (folds the journal) and releases the lock, whatever `result`
    /// is; an error of either is reported.
    pub async fn close<T>(&self, result: Result<T>) -> Result<T> {
        let finished = self.finish().await;
        self.unlock().await;
        match (result, finished) {
            (Ok(v), Ok(())) => Ok(v),
            (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
            (Err(mut e), Err(f)) => {
                e.problems.extend(f.problems);
                Err(e)
            }
        }
    }

    pub async fn snapshot(&self) -> State {
        self.state.lock().await.clone()
    }

    /// The state, without a copy (a read-only command done with the store).
    pub fn into_state(self) -> State {
        self.state.into_inner()
    }

    pub async fn unlock(&self) {
        if let Some(info) = &self.lock {
            let _ = self.storage.unlock(info).await;
        }
    }

    /// What the store and its backend noticed (a lock taken over, a journal
    /// folded, operations left in flight), for the CLI to print.
    pub fn take_notices(&self) -> Vec<Diagnostic> {
        let mut v = std::mem::take(&mut *self.notices.lock().expect("notices"));
        v.extend(self.storage.take_notices());
        v
    }

    /// Bytes of journal and state handed to the backend by this run.
    pub fn bytes_written(&self) -> (u64, u64) {
        (
            self.stats.journal.load(Ordering::Relaxed),
            self.stats.state.load(Ordering::Relaxed),
        )
    }

    fn print_stats(&self) {
        if std::env::var_os("CLAW_STATS").is_some() {
            let (j, s) = self.bytes_written();
            eprintln!(
                "claw-stats: state bytes written: {} (journal {j} in {} records, state {s}); journal syncs: {}",
                j + s,
                self.stats.records.load(Ordering::Relaxed),
                self.journal.as_ref().map_or(0, Writer::syncs)
            );
        }
    }
}

fn header(st: &State, l: &LockInfo) -> Header {
    Header {
        version: journal::JOURNAL_VERSION,
        lineage: st.lineage.clone(),
        serial: st.serial,
        pid: l.pid,
        host: l.host.clone(),
        lock: l.id.clone(),
        started: l.created.clone(),
    }
}

fn journal_where(storage: &dyn StateStorage) -> String {
    format!("of {}", storage.describe())
}

fn held(storage: &dyn StateStorage, h: &LockInfo) -> Error {
    Error::one(
        Problem::new(format!(
            "the state {} is locked by another run: {}",
            storage.describe(),
            describe_holder(h)
        ))
        .detail("nothing was changed")
        .hint("wait for that run to finish; if it died on another host, run `claw force-unlock`"),
    )
}

fn in_flight_notice(st: &State) -> Option<Diagnostic> {
    let first = st.in_flight.values().next()?;
    let list: Vec<String> = st
        .in_flight
        .iter()
        .map(|(a, f)| format!("{a} ({})", f.op))
        .collect();
    Some(
        Diagnostic::warning(format!(
            "{} operations were in flight when pid {} on {} died: {}; they are re-checked",
            list.len(),
            first.pid,
            first.host,
            list.join(", ")
        ))
        .with_hint("the next apply records what it finds"),
    )
}

/// Reads and checks the stored state; a stack without one gets the empty
/// state, created once (no clobber: of two racing runs, both read the one
/// that was stored first).
async fn read_state(storage: &dyn StateStorage, stack: &str) -> Result<State> {
    let bytes = match storage.read().await.map_err(|d| diag_err(&d))? {
        Some(b) => b,
        None => storage
            .create(&State::new(stack).to_bytes())
            .await
            .map_err(|d| diag_err(&d))?,
    };
    let st = match super::ahead::take(&bytes) {
        Some(st) => st,
        None => State::parse(&bytes, &storage.describe())?,
    };
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
    st.check_types(known_types(), &storage.describe())?;
    Ok(st)
}
