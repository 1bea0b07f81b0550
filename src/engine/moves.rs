//! `[[moved]]`: before refresh and planning, the state entry of `from`
//! becomes `to` (SPEC §1.1a), so a rename plans a move, never a delete and a
//! create. A `from` that is not in the state is ignored (old blocks can
//! stay); a `to` that is already there is an error naming both.

use super::Workspace;
use crate::error::{Error, Problem, Result};
use crate::state::State;
use std::collections::BTreeMap;

/// The state as the configuration's `[[moved]]` blocks see it, and each
/// moved address (new → old).
pub struct Moved {
    pub state: State,
    pub from: BTreeMap<String, String>,
}

impl Workspace {
    /// Applies the configuration's `[[moved]]` blocks to a copy of `state`.
    pub fn with_moves(&self, state: &State) -> Result<Moved> {
        let mut st = state.clone();
        let mut from: BTreeMap<String, String> = BTreeMap::new();
        let mut errs = Vec::new();
        for m in &self.cfg.moved {
            let pairs: Vec<(String, String)> = if m.whole {
                let prefix = format!("{}[", m.from);
                st.resources
                    .keys()
                    .filter(|a| **a == m.from || a.starts_with(&prefix))
                    .map(|a| (a.clone(), format!("{}{}", m.to, &a[m.from.len()..])))
                    .collect()
            } else if st.resources.contains_key(&m.from) {
                vec![(m.from.clone(), m.to.clone())]
            } else {
                vec![]
            };
            for (old, new) in pairs {
                if st.resources.contains_key(&new) {
                    errs.push(
                        Problem::new(format!(
                            "[[moved]] {old} → {new}: both addresses are in the state"
                        ))
                        .at(self.cfg.loc(&m.span))
                        .hint(format!(
                            "one of them must go: `claw state rm {old}` if its object is gone, or drop this [[moved]] block"
                        )),
                    );
                    continue;
                }
                if let Some(e) = st.resources.remove(&old) {
                    st.resources.insert(new.clone(), e);
                }
                if let Some(f) = st.in_flight.remove(&old) {
                    st.in_flight.insert(new.clone(), f);
                }
                let origin = from.remove(&old).unwrap_or(old);
                from.insert(new, origin);
            }
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }
        if !from.is_empty() {
            // Deletes still run in reverse order under the new names.
            let renamed: BTreeMap<&str, &str> = from
                .iter()
                .map(|(new, old)| (old.as_str(), new.as_str()))
                .collect();
            for e in st.resources.values_mut() {
                for d in &mut e.deps {
                    if let Some(n) = renamed.get(d.as_str()) {
                        *d = n.to_string();
                    }
                }
            }
        }
        Ok(Moved { state: st, from })
    }
}
