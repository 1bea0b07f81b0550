//! The one reference resolver: what `${type.name.attr}` means at each stage.
//!
//! A reference takes its value from the first source that has it: the
//! planned `after` of the referenced object (while planning), the state
//! (what apply just recorded, or what an earlier run applied), then the
//! live object seen by refresh (also for a secret the state holds only as
//! a keyed hash). Anything else is unknown — "(known after
//! apply)" in a plan, an error at apply time.
//!
//! Lookups never clone attribute maps: a reference costs O(path length)
//! (but for a whole object, which a provider's read asks for).

use super::Observed;
use crate::config::template::ResRef;
use crate::plan::Action;
use crate::state::State;
use claw_provider::value::{split_path, PathSeg};
use claw_provider::{Attrs, Value};
use std::collections::BTreeMap;

/// The sources a reference may read, in order.
#[derive(Clone, Copy, Default)]
pub struct Sources<'a> {
    pub after: Option<&'a BTreeMap<String, (Action, Attrs)>>,
    pub state: Option<&'a State>,
    pub observed: Option<&'a BTreeMap<String, Observed>>,
}

impl<'a> Sources<'a> {
    pub fn value(&self, r: &ResRef) -> Value {
        let addr = r.instance();
        if r.attr.is_empty() {
            return self.object(&addr);
        }
        if let Some(after) = self.after {
            if let Some((_, attrs)) = after.get(&addr) {
                // The planned value is authoritative: unknown stays unknown.
                return get_in(attrs, &r.attr).cloned().unwrap_or(Value::Unknown);
            }
        }
        let live = self
            .observed
            .and_then(|o| o.get(&addr))
            .and_then(|o| o.live.as_ref())
            .and_then(|l| get_in(&l.attrs, &r.attr));
        if let Some(v) = self
            .state
            .and_then(|s| s.resources.get(&addr))
            .and_then(|e| get_in(&e.attrs, &r.attr))
        {
            // A state file keeps only a secret's keyed hash: a sensitive
            // computed attribute (an ssh_key's `private_key`) recorded by an
            // earlier run takes its clear text from the live object.
            let hash_only = matches!(v, Value::Secret(s) if s.expose().is_none());
            match live {
                Some(l @ Value::Secret(_)) if hash_only => return l.clone(),
                _ => return v.clone(),
            }
        }
        live.cloned().unwrap_or(Value::Unknown)
    }
}

impl Sources<'_> {
    /// The whole object at `addr` (a provider's [`claw_provider::Read`]),
    /// from the first source that has it; the one lookup that clones.
    pub fn object(&self, addr: &str) -> Value {
        if let Some((_, attrs)) = self.after.and_then(|a| a.get(addr)) {
            return Value::Map(attrs.clone());
        }
        if let Some(e) = self.state.and_then(|s| s.resources.get(addr)) {
            return Value::Map(e.attrs.clone());
        }
        self.observed
            .and_then(|o| o.get(addr))
            .and_then(|o| o.live.as_ref())
            .map_or(Value::Unknown, |l| Value::Map(l.attrs.clone()))
    }
}

/// Follows a dotted path into an attribute map without cloning it.
pub fn get_in<'v>(attrs: &'v Attrs, path: &str) -> Option<&'v Value> {
    // Most references name a top-level attribute: no path to split.
    if claw_provider::value::is_plain_key(path) {
        return attrs.get(path);
    }
    let mut segs = split_path(path).into_iter();
    let mut cur = match segs.next()? {
        PathSeg::Key(k) => attrs.get(&k)?,
        PathSeg::Index(_) => return None,
    };
    for seg in segs {
        cur = match seg {
            PathSeg::Key(k) => cur.as_map()?.get(&k)?,
            PathSeg::Index(i) => cur.as_list()?.get(i)?,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_in_follows_paths() {
        let mut a = Attrs::new();
        a.insert(
            "env".into(),
            Value::Map([("A".to_string(), Value::str("1"))].into_iter().collect()),
        );
        a.insert("ports".into(), Value::List(vec![Value::str("80:80")]));
        assert_eq!(get_in(&a, "env.A"), Some(&Value::str("1")));
        assert_eq!(get_in(&a, "ports[0]"), Some(&Value::str("80:80")));
        assert_eq!(get_in(&a, "env.B"), None);
    }
}
