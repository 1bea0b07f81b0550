//! What a command does with the state before and around its work: read it
//! (no lock), lock and read it (with what the backend noticed), refresh and
//! plan, and the small edits `state rm` and `state mv` make.

use super::{open_storage, Observed, Options, Workspace};
use crate::config::template::parse_address;
use crate::config::Config;
use crate::error::{closest, Error, Problem, Result};
use crate::plan::Plan;
use crate::registry::Registry;
use crate::state::{Entry, State, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Starts reading the state at its default place beside the configuration
/// file `config` while the configuration is parsed (see `state::ahead`).
pub fn read_ahead(config: &std::path::Path) {
    crate::state::ahead::start(crate::config::default_state_path(
        &crate::config::base_dir_of(config),
    ));
}

/// The state as stored now (a fresh one when there is none), without
/// locking, and what the store noticed (e.g. a journal left by a crash).
pub async fn read_state(cfg: &Config, reg: &Registry) -> Result<(State, Vec<Problem>)> {
    let store = Store::read(open_storage(cfg, reg).await?, &cfg.stack).await?;
    let notices = notices(&store);
    Ok((store.into_state(), notices))
}

/// A locked state and what the store noticed while locking (a dead
/// holder's lock taken over, a journal folded, operations left in flight).
pub struct Locked {
    pub store: Arc<Store>,
    pub notices: Vec<Problem>,
}

/// Takes the state lock for `command`, then reads the state.
pub async fn lock(cfg: &Config, reg: &Registry, command: &str) -> Result<Locked> {
    let store = Store::lock(open_storage(cfg, reg).await?, &cfg.stack, command).await?;
    Ok(Locked {
        notices: notices(&store),
        store: Arc::new(store),
    })
}

fn notices(store: &Store) -> Vec<Problem> {
    let notices = store.take_notices();
    notices
        .iter()
        .map(|d| Problem::from_diag(d, None))
        .collect()
}

/// Re-checks and records the operations a run that died left in flight;
/// one line each, to print.
pub async fn recover(ws: &Workspace, store: &Store) -> Result<Vec<String>> {
    crate::state::recover::in_flight(ws, store).await
}

/// A plan made from a fresh refresh, and what it cost.
pub struct Planned {
    pub plan: Plan,
    pub observed: BTreeMap<String, Observed>,
    /// `(provider block, counter, value)`: calls each provider made.
    pub counters: Vec<(String, String, u64)>,
    pub elapsed: Duration,
}

/// Refreshes what the plan covers (the targets, or everything) and plans.
pub async fn refresh_and_plan(ws: &Workspace, st: &State, o: &Options) -> Result<Planned> {
    let started = Instant::now();
    let only = ws.select_targets(&o.targets, st, o.destroy)?;
    let (observed, refreshed) = ws.refresh_keeping(st, only.as_ref()).await?;
    crate::util::timing::phase("refresh");
    let plan = ws.plan_reusing(st, &observed, o, refreshed).await?;
    crate::util::timing::phase("plan");
    let counters = ws
        .providers
        .iter()
        .flat_map(|(key, p)| {
            p.counters()
                .into_iter()
                .map(move |(name, n)| (key.clone(), name, n))
        })
        .collect();
    Ok(Planned {
        plan,
        observed,
        counters,
        elapsed: started.elapsed(),
    })
}

/// The entry of `address`, or an error with the closest address as a hint.
pub fn entry<'a>(st: &'a State, address: &str) -> Result<&'a Entry> {
    st.resources
        .get(address)
        .ok_or_else(|| no_such_address(address, st))
}

/// Forgets `address` (the object itself is left alone) and saves the state.
pub async fn forget(store: &Store, address: &str) -> Result<Entry> {
    let removed = store.state.lock().await.resources.remove(address);
    match removed {
        Some(e) => {
            store.save().await?;
            Ok(e)
        }
        None => Err(no_such_address(address, &store.snapshot().await)),
    }
}

/// Renames state entries (`claw state mv FROM TO`; the objects are left
/// alone) and saves the state: one address, or every instance of a resource
/// name (`file.a` → `file.b` moves `file.a["k"]` to `file.b["k"]`). Refused
/// when FROM is missing, TO exists, the types differ, or an operation on
/// FROM was left in flight. Returns the `(from, to)` pairs moved.
pub async fn rename(store: &Store, from: &str, to: &str) -> Result<Vec<(String, String)>> {
    let pairs = {
        let mut st = store.state.lock().await;
        let pairs = renames(&st, from, to)?;
        for (f, t) in &pairs {
            if let Some(e) = st.resources.remove(f) {
                st.resources.insert(t.clone(), e);
            }
        }
        let moved: BTreeMap<&str, &str> = pairs
            .iter()
            .map(|(f, t)| (f.as_str(), t.as_str()))
            .collect();
        for e in st.resources.values_mut() {
            for d in e.deps.iter_mut() {
                if let Some(t) = moved.get(d.as_str()) {
                    *d = t.to_string();
                }
            }
        }
        pairs
    };
    store.save().await?;
    Ok(pairs)
}

/// What `rename` would move, or why it refuses.
fn renames(st: &State, from: &str, to: &str) -> Result<Vec<(String, String)>> {
    let refuse = |p: Problem| Err(Error::one(p.detail("nothing was changed")));
    let Some((to_type, _, to_key)) = parse_address(to) else {
        return refuse(
            Problem::new(format!("`{to}` is not a resource address"))
                .hint("write TYPE.NAME or TYPE.NAME[\"KEY\"]"),
        );
    };
    let pairs: Vec<(String, String)> = if st.resources.contains_key(from) {
        vec![(from.to_string(), to.to_string())]
    } else {
        let instances: Vec<(String, String)> = st
            .resources
            .keys()
            .filter_map(|a| {
                let key = a.strip_prefix(from)?.strip_prefix('[')?;
                Some((a.clone(), format!("{to}[{key}")))
            })
            .collect();
        if instances.is_empty() {
            return Err(no_such_address(from, st));
        }
        if to_key.is_some() {
            return refuse(
                Problem::new(format!(
                    "{from} is a resource with instances; `{to}` names one instance"
                ))
                .hint(format!(
                    "move the whole resource to a resource name (TYPE.NAME), or move one instance: claw state mv '{}' ...",
                    instances[0].0
                )),
            );
        }
        instances
    };
    let from_type = parse_address(&pairs[0].0).map(|(t, _, _)| t);
    if from_type.as_deref() != Some(to_type.as_str()) {
        return refuse(
            Problem::new(format!(
                "cannot move {from} to {to}: a state entry keeps its resource type ({})",
                from_type.unwrap_or_default()
            ))
            .hint("rename within one type; a different type is a different object"),
        );
    }
    for (f, t) in &pairs {
        if f == t {
            return refuse(Problem::new(format!("{f} would move onto itself")));
        }
        if st.resources.contains_key(t) {
            return refuse(
                Problem::new(format!("{t} is already in the state")).hint(format!(
                    "`claw state show {t}` shows it; `claw state rm {t}` forgets it if it is stale"
                )),
            );
        }
        if st.in_flight.contains_key(f) {
            return refuse(
                Problem::new(format!(
                    "an operation on {f} was left in flight by a run that died"
                ))
                .hint("run `claw apply` first: it re-checks and records it"),
            );
        }
    }
    Ok(pairs)
}

fn no_such_address(address: &str, st: &State) -> Error {
    let p = Problem::new(format!("{address} is not in the state"));
    Error::one(
        match closest(address, st.resources.keys().map(String::as_str)) {
            Some(c) => p.hint(format!("did you mean `{c}`?")),
            None => p.hint("`claw state list` shows the addresses"),
        },
    )
}
