//! The one DAG walker, used for plan order and for apply (Terraform's
//! `dag/walk.go`): nodes become ready when all their dependencies are done;
//! a failure skips everything downstream while independent work goes on.
//!
//! **Invariant:** the order is a pure function of the graph: among ready
//! nodes the smallest key comes first (keys sort by their `Ord`, e.g. phase
//! then address), never petgraph's or a hash map's order. Every step is
//! O(log N) (plus the node's edges), so a walk costs O(E + N log N).

use std::collections::{BTreeMap, BTreeSet};

pub struct Walker<K: Ord + Clone> {
    /// Unfinished dependencies per waiting node.
    waiting: BTreeMap<K, usize>,
    dependents: BTreeMap<K, Vec<K>>,
    ready: BTreeSet<K>,
    started: BTreeSet<K>,
}

impl<K: Ord + Clone> Walker<K> {
    /// `deps`: each node with the nodes it depends on. Dependencies that are
    /// not nodes themselves are ignored.
    pub fn new(deps: BTreeMap<K, BTreeSet<K>>) -> Walker<K> {
        let mut dependents: BTreeMap<K, Vec<K>> = BTreeMap::new();
        let mut waiting = BTreeMap::new();
        let mut ready = BTreeSet::new();
        for (k, ds) in &deps {
            let mut n = 0;
            for d in ds {
                if d != k && deps.contains_key(d) {
                    dependents.entry(d.clone()).or_default().push(k.clone());
                    n += 1;
                }
            }
            if n == 0 {
                ready.insert(k.clone());
            } else {
                waiting.insert(k.clone(), n);
            }
        }
        Walker {
            waiting,
            dependents,
            ready,
            started: BTreeSet::new(),
        }
    }

    /// Takes the smallest ready node.
    pub fn take_ready(&mut self) -> Option<K> {
        let k = self.ready.pop_first()?;
        self.started.insert(k.clone());
        Some(k)
    }

    /// Whether any node waits for `k`.
    pub fn has_dependents(&self, k: &K) -> bool {
        self.dependents.get(k).is_some_and(|d| !d.is_empty())
    }

    /// Marks a started node done: its dependents may become ready.
    pub fn done(&mut self, k: &K) {
        self.started.remove(k);
        for d in self.dependents.get(k).into_iter().flatten() {
            if let Some(n) = self.waiting.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    self.waiting.remove(d);
                    self.ready.insert(d.clone());
                }
            }
        }
    }

    /// Marks a started node failed: returns every node downstream of it that
    /// had not started, now skipped, in key order.
    pub fn failed(&mut self, k: &K) -> Vec<K> {
        self.started.remove(k);
        let mut stack = vec![k.clone()];
        let mut seen = BTreeSet::new();
        while let Some(o) = stack.pop() {
            for d in self.dependents.get(&o).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen.into_iter()
            .filter(|s| self.waiting.remove(s).is_some() || self.ready.remove(s))
            .collect()
    }

    /// Nodes not started (ready or waiting), in key order; the walker is
    /// empty afterwards.
    pub fn drain_pending(&mut self) -> Vec<K> {
        let mut rest: Vec<K> = std::mem::take(&mut self.ready).into_iter().collect();
        rest.extend(std::mem::take(&mut self.waiting).into_keys());
        rest.sort();
        rest
    }

    /// Whether nodes remain that were never reached (a cycle keeps them
    /// waiting forever).
    pub fn stuck(&self) -> bool {
        self.ready.is_empty() && self.started.is_empty() && !self.waiting.is_empty()
    }

    /// The whole order of a sequential walk where every node succeeds.
    pub fn order(mut self) -> Vec<K> {
        let mut out = Vec::new();
        while let Some(k) = self.take_ready() {
            self.done(&k);
            out.push(k);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(edges: &[(&'static str, &[&'static str])]) -> Walker<&'static str> {
        Walker::new(
            edges
                .iter()
                .map(|(a, d)| (*a, d.iter().copied().collect()))
                .collect(),
        )
    }

    #[test]
    fn order_is_deterministic_and_respects_deps() {
        let order = w(&[("c", &["a"]), ("b", &[]), ("a", &[]), ("d", &["c", "b"])]).order();
        assert_eq!(order, vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn failure_skips_downstream_only() {
        let mut g = w(&[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("x", &[])]);
        assert_eq!(g.take_ready(), Some("a"));
        assert_eq!(g.failed(&"a"), vec!["b", "c"]);
        assert_eq!(g.take_ready(), Some("x"));
        g.done(&"x");
        assert_eq!(g.take_ready(), None);
        assert!(g.drain_pending().is_empty());
    }

    #[test]
    fn pending_after_a_stop() {
        let mut g = w(&[("a", &[]), ("b", &["a"]), ("c", &[])]);
        assert_eq!(g.take_ready(), Some("a"));
        assert_eq!(g.drain_pending(), vec!["b", "c"]);
    }

    #[test]
    fn a_cycle_is_stuck() {
        let g = w(&[("a", &["b"]), ("b", &["a"])]);
        assert!(g.stuck());
    }
}
