//! The state: what claw applied, per address; where it lives; the lock.
//!
//! `State` is the document; `store::Store` is one run's handle on it (lock →
//! read and fold a journal left by a crash → journal each operation →
//! finish: write the state once); `journal` is the record format and the
//! group-committing writer; `local` the file backend; `recover` re-checks
//! operations that were in flight when a run died.
//!
//! **Invariant:** a state that cannot be read or is invalid (corrupt, newer
//! format, another stack, duplicated addresses, empty lineage, serial at its
//! maximum, unknown resource type) is never overwritten, and its `.backup`
//! is never touched.

pub mod ahead;
pub mod journal;
pub mod local;
pub mod recover;
mod store;

pub use store::{SharedStore, Store};

use crate::error::{Error, Problem, Result};
use claw_provider::{Attrs, LockInfo, StateObject};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::Arc;

pub const STATE_VERSION: u32 = 1;

/// One address's record. Its object (id, attributes, private data) sits
/// behind an `Arc`, shared with the refresh and diff requests that carry it
/// as their prior; `Deref` reads it as fields (`e.attrs`), and writing a
/// field copies it first only while a request still holds it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "EntryRepr")]
pub struct Entry {
    pub rtype: String,
    /// `host.local`, `provider.docker`, ...
    pub provider: String,
    pub object: Arc<StateObject>,
    /// Addresses this object depended on when applied (deletes run in reverse).
    pub deps: Vec<String>,
    pub prevent_destroy: bool,
}

/// An entry as the state file spells it (read).
#[derive(Deserialize)]
struct EntryRepr {
    #[serde(rename = "type")]
    rtype: String,
    provider: String,
    id: String,
    #[serde(default)]
    attrs: Attrs,
    #[serde(default)]
    private: Attrs,
    #[serde(default)]
    deps: Vec<String>,
    #[serde(default)]
    prevent_destroy: bool,
}

/// An entry as the state file spells it (written, borrowed).
#[derive(Serialize)]
struct EntryRef<'a> {
    #[serde(rename = "type")]
    rtype: &'a str,
    provider: &'a str,
    id: &'a str,
    attrs: &'a Attrs,
    #[serde(skip_serializing_if = "claw_provider::Map::is_empty")]
    private: &'a Attrs,
    deps: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    prevent_destroy: bool,
}

impl From<EntryRepr> for Entry {
    fn from(r: EntryRepr) -> Entry {
        Entry::new(
            r.rtype,
            r.provider,
            StateObject {
                id: r.id,
                attrs: r.attrs,
                private: r.private,
            },
            r.deps,
            r.prevent_destroy,
        )
    }
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        EntryRef {
            rtype: &self.rtype,
            provider: &self.provider,
            id: &self.object.id,
            attrs: &self.object.attrs,
            private: &self.object.private,
            deps: &self.deps,
            prevent_destroy: self.prevent_destroy,
        }
        .serialize(s)
    }
}

impl Entry {
    pub fn new(
        rtype: String,
        provider: String,
        object: StateObject,
        deps: Vec<String>,
        prevent_destroy: bool,
    ) -> Entry {
        Entry {
            rtype,
            provider,
            object: Arc::new(object),
            deps,
            prevent_destroy,
        }
    }

    /// The object, shared (no copy).
    pub fn object(&self) -> Arc<StateObject> {
        self.object.clone()
    }
}

impl std::ops::Deref for Entry {
    type Target = StateObject;
    fn deref(&self) -> &StateObject {
        &self.object
    }
}

impl std::ops::DerefMut for Entry {
    fn deref_mut(&mut self) -> &mut StateObject {
        Arc::make_mut(&mut self.object)
    }
}

/// An `[output.*]` value as the last apply evaluated it. A sensitive one is
/// kept as its keyed hash only (`claw output NAME` evaluates it again from
/// the configuration and checks it against this hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredOutput {
    pub value: claw_provider::Value,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// An operation that had started but not finished when its run died: the
/// next plan re-checks the address, the next apply records what it finds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlight {
    /// `create`, `update`, `replace`, `delete` or `delete-old` (the old
    /// object of a create-before-destroy replace).
    pub op: String,
    pub pid: u32,
    pub host: String,
    /// RFC 3339 time the operation started.
    pub started: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format_version: u32,
    pub lineage: String,
    pub serial: u64,
    pub stack: String,
    /// Salt for the hashes of sensitive values (fixed per lineage).
    pub salt: String,
    #[serde(deserialize_with = "unique_addresses")]
    pub resources: BTreeMap<String, Entry>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_addresses"
    )]
    pub in_flight: BTreeMap<String, InFlight>,
    /// The outputs recorded by the last apply, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, StoredOutput>,
}

/// The marker of a duplicated key, recognised by `State::parse`.
const DUPLICATED: &str = "duplicated address ";

/// A map of addresses that refuses a key given twice (serde_json would keep
/// the last one silently).
fn unique_addresses<'de, D, T>(d: D) -> std::result::Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Unique<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Unique<T> {
        type Value = BTreeMap<String, T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of addresses")
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut m: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(k) = m.next_key::<String>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!("{DUPLICATED}`{k}`")));
                }
                let v = m.next_value()?;
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Unique(PhantomData))
}

fn refused(message: String, hint: &str) -> Error {
    Error::one(
        Problem::new(message)
            .detail("claw refuses to read or overwrite it, so nothing was changed")
            .hint(hint),
    )
}

impl State {
    /// A new, empty state: a fresh lineage and salt, serial 0.
    pub fn new(stack: &str) -> State {
        State {
            format_version: STATE_VERSION,
            lineage: uuid::Uuid::new_v4().to_string(),
            serial: 0,
            stack: stack.to_string(),
            salt: uuid::Uuid::new_v4().simple().to_string(),
            resources: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }

    /// Parses a stored document, refusing corrupted, invalid and
    /// future-version ones.
    pub fn parse(bytes: &[u8], where_: &str) -> Result<State> {
        #[derive(Deserialize)]
        struct Version {
            #[serde(default)]
            format_version: u64,
        }
        let corrupt = |e: serde_json::Error| {
            let msg = e.to_string();
            match msg.strip_prefix(DUPLICATED) {
                Some(rest) => refused(
                    match rest.split_once(" at line ") {
                        Some((addr, pos)) => format!(
                            "the state in {where_} lists the address {addr} twice (line {pos})"
                        ),
                        None => format!("the state in {where_} lists the address {rest} twice"),
                    },
                    "remove one of the two entries by hand (claw cannot tell which one is right), or restore the state from its .backup copy",
                ),
                None => refused(
                    format!("the state in {where_} is corrupted: {msg}"),
                    "restore it from its .backup copy (a copy of the previous state), or fix the JSON by hand",
                ),
            }
        };
        let ver = serde_json::from_slice::<Version>(bytes)
            .map_err(corrupt)?
            .format_version;
        if ver > STATE_VERSION as u64 {
            return Err(refused(
                format!("the state in {where_} has format version {ver}, newer than this claw understands ({STATE_VERSION})"),
                "upgrade claw to the version that wrote this state",
            ));
        }
        let st: State = serde_json::from_slice(bytes).map_err(corrupt)?;
        if st.lineage.trim().is_empty() {
            return Err(refused(
                format!("the state in {where_} has an empty lineage"),
                "every state has a lineage id that never changes; restore the state from its .backup copy",
            ));
        }
        if st.serial == u64::MAX {
            return Err(refused(
                format!(
                    "the state in {where_} has serial {}, which cannot be incremented",
                    st.serial
                ),
                "restore the state from its .backup copy, or set `serial` to a smaller number by hand",
            ));
        }
        Ok(st)
    }

    /// Refuses a state that records a resource type no provider defines.
    pub fn check_types(&self, known: &BTreeSet<&str>, where_: &str) -> Result<()> {
        let unknown: Vec<Problem> = self
            .resources
            .iter()
            .filter(|(_, e)| !known.contains(e.rtype.as_str()))
            .map(|(a, e)| {
                Problem::new(format!(
                    "the state in {where_} records {a} with the unknown resource type `{}`",
                    e.rtype
                ))
                .detail("claw refuses to read or overwrite it, so nothing was changed")
                .hint("use the claw that wrote this state (a newer version?), or remove the entry from the JSON by hand")
            })
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(Error::many(unknown))
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).unwrap_or_default();
        b.push(b'\n');
        b
    }
}

/// The resource types of every built-in provider.
pub fn known_types() -> &'static BTreeSet<&'static str> {
    static TYPES: std::sync::OnceLock<BTreeSet<&'static str>> = std::sync::OnceLock::new();
    TYPES.get_or_init(|| crate::registry::Registry::builtin().type_names().collect())
}

pub fn this_host() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// This run's lock identity.
pub fn lock_info(command: &str) -> LockInfo {
    LockInfo {
        id: uuid::Uuid::new_v4().to_string(),
        pid: std::process::id(),
        host: this_host(),
        user: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        command: command.to_string(),
        created: crate::util::now_rfc3339(),
    }
}

/// Whether a process recorded as (`host`, `pid`) is known to be gone: it ran
/// on this host and no such process exists any more.
pub fn process_gone(host: &str, pid: u32) -> bool {
    pid != 0 && host == this_host() && !crate::util::pid_alive(pid)
}

/// Whether a process recorded as (`host`, `pid`) is known to be running: on
/// this host, and there.
pub fn process_alive_here(host: &str, pid: u32) -> bool {
    pid != 0 && host == this_host() && crate::util::pid_alive(pid)
}

/// Describes a lock holder for messages.
pub fn describe_holder(h: &LockInfo) -> String {
    let mut s = format!(
        "pid {} on {} ({}), running `{}` since {}",
        h.pid, h.host, h.user, h.command, h.created
    );
    if process_gone(&h.host, h.pid) {
        s.push_str(" — that process is no longer running");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(json: &str) -> String {
        State::parse(json.as_bytes(), "f").unwrap_err().to_string()
    }

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

    #[test]
    fn refuses_invalid_states() {
        let entry = r#"{"type": "file", "provider": "host.local", "id": "a"}"#;
        let doc = |lineage: &str, serial: &str, resources: &str| {
            format!(
                r#"{{"format_version": 1, "lineage": "{lineage}", "serial": {serial}, "stack": "x", "salt": "s", "resources": {{{resources}}}}}"#
            )
        };
        let e = refusal(&doc(
            "l",
            "3",
            &format!(r#""file.a": {entry}, "file.a": {entry}"#),
        ));
        assert!(e.contains("lists the address `file.a` twice"), "{e}");
        assert!(e.contains("(line 1 column"), "{e}");
        assert!(e.contains("hint:"), "{e}");
        let e = refusal(&doc("", "3", ""));
        assert!(e.contains("has an empty lineage"), "{e}");
        let e = refusal(&doc("l", &u64::MAX.to_string(), ""));
        assert!(e.contains("cannot be incremented"), "{e}");
        let st = State::parse(
            doc(
                "l",
                "3",
                r#""thing.a": {"type": "thing", "provider": "p", "id": "a"}"#,
            )
            .as_bytes(),
            "f",
        )
        .unwrap();
        let e = st.check_types(known_types(), "f").unwrap_err().to_string();
        assert!(
            e.contains("thing.a with the unknown resource type `thing`"),
            "{e}"
        );
        let ok = State::parse(
            doc("l", "3", &format!(r#""file.a": {entry}"#)).as_bytes(),
            "f",
        )
        .unwrap();
        ok.check_types(known_types(), "f").unwrap();
    }
}
