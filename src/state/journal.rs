//! The journal: one JSON line per event of a run, appended beside the state
//! and folded into it at the end of the run (or by the next run after a
//! crash).
//!
//! ```text
//! {"header":{"version":1,"lineage":"…","serial":7,"pid":4242,"host":"box","lock":"…","started":"…"}}
//! {"begin":{"addr":"file.a","op":"create","at":"…"}}
//! {"commit":{"addr":"file.a","entry":{"type":"file",…}}}
//! {"begin":{"addr":"file.b","op":"delete","at":"…"}}
//! {"commit":{"addr":"file.b","entry":null}}
//! {"end":{"addr":"file.c"}}
//! ```
//!
//! `begin` is written before the provider is called, `commit` (the new
//! entry, or `null` for a removal) after it succeeded, `end` after an
//! operation finished without changing the state (it failed, or it was the
//! delete of a replaced object). Every record is written (it survives the
//! process dying) before the call returns, and a `commit` is also synced
//! (fdatasync: it survives a power loss) before the operations that depend on
//! it start; concurrent operations share one write and one sync (group
//! commit), so a record costs O(1) and a run of N operations writes O(N)
//! bytes. A `begin` without its `commit`/`end` is an operation that was in
//! flight when the run died: folding keeps it in the state's `in_flight`.

use super::{Entry, InFlight, State};
use crate::error::{Error, Problem, Result};
use claw_provider::{Diagnostic, StateStorage};
use serde::{Deserialize, Serialize};

pub const JOURNAL_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    /// The state this journal applies to: its lineage and serial.
    pub lineage: String,
    pub serial: u64,
    pub pid: u32,
    pub host: String,
    /// The lock id of the run that writes it.
    pub lock: String,
    pub started: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    Header(Header),
    Begin {
        addr: String,
        op: String,
        at: String,
    },
    Commit {
        addr: String,
        entry: Option<Entry>,
    },
    End {
        addr: String,
    },
}

impl Record {
    pub fn line(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec(self).unwrap_or_default();
        b.push(b'\n');
        b
    }
}

/// What folding a journal did.
#[derive(Debug, Clone, PartialEq)]
pub enum Folded {
    /// The records were applied: `commits` operations completed, and the
    /// addresses still in flight.
    Applied {
        header: Header,
        commits: usize,
        in_flight: Vec<String>,
        /// The last line was cut short (the run died while writing it).
        torn: bool,
    },
    /// The state already holds these records (the run died after writing
    /// the state but before removing the journal).
    AlreadyIn(Header),
}

/// Applies a journal's records to `state`. Refuses a journal that is
/// corrupted (except a torn last line) or that belongs to another state.
pub fn fold(state: &mut State, bytes: &[u8], where_: &str) -> Result<Folded> {
    let corrupt = |n: usize, why: String| {
        Error::one(
            Problem::new(format!("the journal {where_} is corrupted at line {n}: {why}"))
                .detail("claw refuses to guess which operations completed, so nothing was changed")
                .hint("if you know the operations it records, move the journal away; `claw plan` then shows what is not in the state"),
        )
    };
    let torn = !bytes.is_empty() && !bytes.ends_with(b"\n");
    let mut lines = bytes.split(|b| *b == b'\n').enumerate().peekable();
    let mut header: Option<Header> = None;
    let mut commits = 0;
    let mut changes: Vec<Record> = Vec::new();
    while let Some((i, line)) = lines.next() {
        let last = lines.peek().is_none();
        if last && torn {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let rec: Record =
            serde_json::from_slice(line).map_err(|e| corrupt(i + 1, e.to_string()))?;
        match (&header, rec) {
            (None, Record::Header(h)) => header = Some(h),
            (None, _) => return Err(corrupt(i + 1, "it does not start with a header".into())),
            (Some(_), Record::Header(_)) => {
                return Err(corrupt(i + 1, "a second header".into()));
            }
            (Some(_), r) => {
                if matches!(r, Record::Commit { .. }) {
                    commits += 1;
                }
                changes.push(r);
            }
        }
    }
    let Some(header) = header else {
        // Nothing but a torn header: no operation was recorded.
        return Ok(Folded::Applied {
            header: Header {
                version: JOURNAL_VERSION,
                lineage: state.lineage.clone(),
                serial: state.serial,
                pid: 0,
                host: String::new(),
                lock: String::new(),
                started: String::new(),
            },
            commits: 0,
            in_flight: vec![],
            torn,
        });
    };
    let another = |why: String| {
        Error::one(
            Problem::new(format!(
                "the journal {where_} (left by pid {} on {}) belongs to another state: {why}",
                header.pid, header.host
            ))
            .detail("claw refuses to fold it, so nothing was changed")
            .hint("if the state was replaced on purpose, move the journal away"),
        )
    };
    if header.version > JOURNAL_VERSION {
        return Err(another(format!(
            "journal version {} is newer than this claw understands",
            header.version
        )));
    }
    if header.lineage != state.lineage {
        return Err(another(format!(
            "lineage {} (the state's is {})",
            header.lineage, state.lineage
        )));
    }
    if header.serial.checked_add(1) == Some(state.serial) {
        return Ok(Folded::AlreadyIn(header));
    }
    if header.serial != state.serial {
        return Err(another(format!(
            "it applies to serial {}, the state is at serial {}",
            header.serial, state.serial
        )));
    }
    let mut flying: Vec<String> = Vec::new();
    for r in changes {
        match r {
            Record::Begin { addr, op, at } => {
                state.in_flight.insert(
                    addr.clone(),
                    InFlight {
                        op,
                        pid: header.pid,
                        host: header.host.clone(),
                        started: at,
                    },
                );
                flying.push(addr);
            }
            Record::Commit { addr, entry } => {
                state.in_flight.remove(&addr);
                match entry {
                    Some(e) => state.resources.insert(addr, e),
                    None => state.resources.remove(&addr),
                };
            }
            Record::End { addr } => {
                state.in_flight.remove(&addr);
            }
            Record::Header(_) => {}
        }
    }
    flying.sort();
    flying.dedup();
    flying.retain(|a| state.in_flight.contains_key(a));
    Ok(Folded::Applied {
        header,
        commits,
        in_flight: flying,
        torn,
    })
}

/// Appends records with group commit. A record is written (it survives the
/// process dying) before `push` returns; a durable one is also synced (it
/// survives a power loss). Records pushed while another write or sync is
/// under way go out together in the next one, so N concurrent operations
/// cost one write and one sync, not N.
pub struct Writer {
    pending: std::sync::Mutex<Pending>,
    written: tokio::sync::Mutex<Written>,
    synced: tokio::sync::Mutex<u64>,
    syncs: std::sync::atomic::AtomicU64,
}

struct Pending {
    /// Written before the first record (and again after `reset`).
    header: Option<Vec<u8>>,
    buf: Vec<u8>,
    seq: u64,
}

#[derive(Default)]
struct Written {
    seq: u64,
    /// Set when a write failed: every later record fails too (the
    /// in-memory state stays right, and `finish` writes it whole).
    broken: Option<String>,
}

impl Writer {
    pub fn new(header: &Header) -> Writer {
        Writer {
            pending: std::sync::Mutex::new(Pending {
                header: Some(Record::Header(header.clone()).line()),
                buf: Vec::new(),
                seq: 0,
            }),
            written: tokio::sync::Mutex::new(Written::default()),
            synced: tokio::sync::Mutex::new(0),
            syncs: Default::default(),
        }
    }

    /// Appends one record (synced too when `durable`); returns the bytes
    /// this call wrote (0 when another call's write carried it).
    pub async fn push(
        &self,
        storage: &dyn StateStorage,
        rec: &Record,
        durable: bool,
    ) -> std::result::Result<u64, Diagnostic> {
        let mine = {
            let mut p = self.pending.lock().expect("journal");
            if let Some(h) = p.header.take() {
                p.buf.extend_from_slice(&h);
            }
            p.buf.extend_from_slice(&rec.line());
            p.seq += 1;
            p.seq
        };
        let wrote = {
            let mut w = self.written.lock().await;
            if let Some(why) = &w.broken {
                return Err(Diagnostic::error(format!(
                    "the journal cannot be written ({why}); the state will be written whole at the end of the run"
                )));
            }
            if w.seq >= mine {
                0
            } else {
                let (buf, upto) = {
                    let mut p = self.pending.lock().expect("journal");
                    (std::mem::take(&mut p.buf), p.seq)
                };
                if let Err(d) = storage.journal_append(&buf).await {
                    w.broken = Some(d.summary.clone());
                    return Err(d);
                }
                w.seq = upto;
                buf.len() as u64
            }
        };
        if durable {
            self.sync_through(storage, mine).await?;
        }
        Ok(wrote)
    }

    /// Syncs every record written so far, unless a sync already covered them.
    pub async fn sync(&self, storage: &dyn StateStorage) -> std::result::Result<(), Diagnostic> {
        let upto = self.written.lock().await.seq;
        self.sync_through(storage, upto).await
    }

    async fn sync_through(
        &self,
        storage: &dyn StateStorage,
        seq: u64,
    ) -> std::result::Result<(), Diagnostic> {
        let mut s = self.synced.lock().await;
        if *s < seq {
            let upto = self.written.lock().await.seq;
            storage.journal_sync().await?;
            self.syncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *s = upto;
        }
        Ok(())
    }

    /// The syncs made so far (for `CLAW_STATS`).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Holds off every other write until the guard is dropped (for folding
    /// the journal into the state while operations may still be recorded).
    pub async fn hold(&self) -> Hold<'_> {
        Hold {
            w: self,
            f: self.written.lock().await,
        }
    }
}

pub struct Hold<'a> {
    w: &'a Writer,
    f: tokio::sync::MutexGuard<'a, Written>,
}

impl Hold<'_> {
    /// Whether any record was written since the start or the last `reset`.
    pub fn written(&self) -> bool {
        self.w.pending.lock().expect("journal").header.is_none()
    }

    /// Starts over (after the journal was folded and removed): the next
    /// record begins a new journal with `header`. Records pushed but not
    /// written yet go into the new journal.
    pub fn reset(&mut self, header: &Header) {
        let mut p = self.w.pending.lock().expect("journal");
        let mut buf = Record::Header(header.clone()).line();
        if p.buf.is_empty() {
            p.header = Some(buf);
        } else {
            buf.append(&mut p.buf);
            p.buf = buf;
            p.header = None;
        }
        self.f.broken = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::local::LocalStorage;
    use claw_provider::Value;

    fn entry(i: usize) -> Entry {
        let mut attrs = claw_provider::Attrs::new();
        attrs.insert("path".into(), Value::str(format!("out/f{i}.txt")));
        attrs.insert("content".into(), Value::str(format!("file {i}\n")));
        Entry {
            rtype: "file".into(),
            provider: "host.local".into(),
            object: std::sync::Arc::new(claw_provider::StateObject {
                id: format!("out/f{i}.txt"),
                attrs,
                private: Default::default(),
            }),
            deps: vec![],
            prevent_destroy: false,
        }
    }

    fn header(st: &State) -> Header {
        Header {
            version: JOURNAL_VERSION,
            lineage: st.lineage.clone(),
            serial: st.serial,
            pid: 4242,
            host: "box".into(),
            lock: "l".into(),
            started: "t".into(),
        }
    }

    /// N commits write O(N) bytes: each record costs the same, whatever the
    /// number before it.
    #[tokio::test]
    async fn n_commits_write_linear_bytes() {
        let d = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(d.path().join("state.json"));
        let st = State::new("x");
        let w = Writer::new(&header(&st));
        let mut per_run = Vec::new();
        for n in [100usize, 1000] {
            let mut bytes = 0;
            for i in 0..n {
                let addr = format!("file.f{i}");
                let b = Record::Begin {
                    addr: addr.clone(),
                    op: "create".into(),
                    at: "t".into(),
                };
                bytes += w.push(&storage, &b, false).await.unwrap();
                let c = Record::Commit {
                    addr,
                    entry: Some(entry(i)),
                };
                bytes += w.push(&storage, &c, true).await.unwrap();
            }
            per_run.push(bytes as f64 / n as f64);
            let on_disk = storage.journal_read().await.unwrap().unwrap().len() as u64;
            assert_eq!(on_disk, bytes, "every byte counted once");
            storage.journal_remove().await.unwrap();
            w.hold().await.reset(&header(&st));
        }
        let (small, large) = (per_run[0], per_run[1]);
        assert!(
            large < small * 1.1,
            "bytes per operation grew: {small} → {large}"
        );
        assert!(large < 400.0, "{large} bytes per operation");
    }

    #[tokio::test]
    async fn concurrent_records_share_writes() {
        let d = tempfile::tempdir().unwrap();
        let storage = std::sync::Arc::new(LocalStorage::new(d.path().join("state.json")));
        let st = State::new("x");
        let w = std::sync::Arc::new(Writer::new(&header(&st)));
        let mut tasks = Vec::new();
        for i in 0..200 {
            let (w, s) = (w.clone(), storage.clone());
            tasks.push(tokio::spawn(async move {
                let c = Record::Commit {
                    addr: format!("file.f{i}"),
                    entry: Some(entry(i)),
                };
                w.push(s.as_ref(), &c, i % 2 == 0).await.unwrap()
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        let mut folded = st.clone();
        let bytes = storage.journal_read().await.unwrap().unwrap();
        assert_eq!(bytes.len() as u64, total);
        match fold(&mut folded, &bytes, "j").unwrap() {
            Folded::Applied { commits, .. } => assert_eq!(commits, 200),
            other => panic!("{other:?}"),
        }
        assert_eq!(folded.resources.len(), 200);
        assert!(w.hold().await.written());
    }

    #[test]
    fn fold_applies_commits_keeps_in_flight_and_ignores_a_torn_line() {
        let mut st = State::new("x");
        st.serial = 7;
        st.resources.insert("file.gone".into(), entry(9));
        let mut j = Record::Header(header(&st)).line();
        for r in [
            Record::Begin {
                addr: "file.a".into(),
                op: "create".into(),
                at: "t1".into(),
            },
            Record::Commit {
                addr: "file.a".into(),
                entry: Some(entry(1)),
            },
            Record::Begin {
                addr: "file.gone".into(),
                op: "delete".into(),
                at: "t2".into(),
            },
            Record::Commit {
                addr: "file.gone".into(),
                entry: None,
            },
            Record::Begin {
                addr: "file.b".into(),
                op: "create".into(),
                at: "t3".into(),
            },
            Record::Begin {
                addr: "file.c".into(),
                op: "create".into(),
                at: "t4".into(),
            },
            Record::End {
                addr: "file.c".into(),
            },
        ] {
            j.extend(r.line());
        }
        j.extend(br#"{"commit":{"addr":"file.b","ent"#);
        let mut folded = st.clone();
        let r = fold(&mut folded, &j, "j").unwrap();
        assert_eq!(
            r,
            Folded::Applied {
                header: header(&st),
                commits: 2,
                in_flight: vec!["file.b".into()],
                torn: true
            }
        );
        assert_eq!(folded.resources.keys().collect::<Vec<_>>(), ["file.a"]);
        assert_eq!(folded.in_flight["file.b"].op, "create");
        assert_eq!(folded.in_flight["file.b"].pid, 4242);

        // Already folded (the state was written, the journal not yet removed).
        let mut next = folded.clone();
        next.serial = 8;
        assert!(matches!(
            fold(&mut next.clone(), &j, "j").unwrap(),
            Folded::AlreadyIn(_)
        ));
        // Another state, or a corrupt middle line: refused.
        next.serial = 9;
        let e = fold(&mut next, &j, "j").unwrap_err().to_string();
        assert!(
            e.contains("applies to serial 7, the state is at serial 9"),
            "{e}"
        );
        let mut bad = Record::Header(header(&st)).line();
        bad.extend(b"{oops\n");
        bad.extend(
            Record::End {
                addr: "file.a".into(),
            }
            .line(),
        );
        let e = fold(&mut st.clone(), &bad, "j").unwrap_err().to_string();
        assert!(e.contains("corrupted at line 2"), "{e}");
    }
}
