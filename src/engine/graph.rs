//! The dependency graph (petgraph) with a deterministic order.
//!
//! **Invariant:** `order()` is a pure function of the node set: ready nodes are
//! taken in address order, never in petgraph's internal order.

use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeMap, BTreeSet};

pub struct Graph {
    g: DiGraph<String, ()>,
    idx: BTreeMap<String, NodeIndex>,
}

impl Graph {
    /// `nodes`: (address, dependencies). Edges point from a dependency to its dependent.
    pub fn new(nodes: Vec<(String, Vec<String>)>) -> Graph {
        let mut g = DiGraph::new();
        let mut idx = BTreeMap::new();
        for (a, _) in &nodes {
            idx.insert(a.clone(), g.add_node(a.clone()));
        }
        for (a, deps) in &nodes {
            for d in deps {
                if let (Some(&from), Some(&to)) = (idx.get(d), idx.get(a)) {
                    g.update_edge(from, to, ());
                }
            }
        }
        Graph { g, idx }
    }

    /// A cycle as a list of addresses, each depending on the next (the last on the first).
    pub fn find_cycle(&self) -> Option<Vec<String>> {
        let mut sccs: Vec<Vec<NodeIndex>> = petgraph::algo::tarjan_scc(&self.g)
            .into_iter()
            .filter(|c| c.len() > 1 || self.g.contains_edge(c[0], c[0]))
            .collect();
        sccs.sort_by_key(|c| c.iter().map(|i| self.g[*i].clone()).min());
        let scc = sccs.into_iter().next()?;
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        // Walk from the smallest address along edges inside the component.
        let start = *scc.iter().min_by_key(|i| self.g[**i].clone())?;
        let mut path = vec![start];
        let mut seen = BTreeSet::from([start]);
        let mut cur = start;
        loop {
            let mut next: Vec<NodeIndex> = self
                .g
                .neighbors(cur)
                .filter(|n| members.contains(n))
                .collect();
            next.sort_by_key(|i| self.g[*i].clone());
            let Some(&n) = next.iter().find(|n| !seen.contains(n)).or(next.first()) else {
                break;
            };
            if n == start || seen.contains(&n) {
                break;
            }
            seen.insert(n);
            path.push(n);
            cur = n;
        }
        // Edges run dependency → dependent; report in "depends on" order.
        path[1..].reverse();
        Some(path.into_iter().map(|i| self.g[i].clone()).collect())
    }

    /// Dependencies first; ties broken by address (the one walker's order).
    pub fn order(&self) -> Vec<String> {
        // Walked by borrowed addresses: one copy of each, at the end.
        let deps = self
            .g
            .node_indices()
            .map(|i| {
                let ds = self
                    .g
                    .neighbors_directed(i, petgraph::Incoming)
                    .map(|d| self.g[d].as_str())
                    .collect();
                (self.g[i].as_str(), ds)
            })
            .collect();
        super::walk::Walker::new(deps)
            .order()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Every address, in order.
    pub fn addresses(&self) -> impl Iterator<Item = &String> {
        self.idx.keys()
    }

    /// Every edge as `(dependency, dependent)`, sorted.
    pub fn edges(&self) -> Vec<(String, String)> {
        let mut edges: Vec<(String, String)> = self
            .g
            .edge_indices()
            .filter_map(|e| self.g.edge_endpoints(e))
            .map(|(dep, dependent)| (self.g[dep].clone(), self.g[dependent].clone()))
            .collect();
        edges.sort();
        edges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(edges: &[(&str, &[&str])]) -> Graph {
        Graph::new(
            edges
                .iter()
                .map(|(a, d)| (a.to_string(), d.iter().map(|x| x.to_string()).collect()))
                .collect(),
        )
    }

    #[test]
    fn order_is_deterministic_and_respects_deps() {
        let gr = g(&[("c", &["a"]), ("b", &[]), ("a", &[]), ("d", &["c", "b"])]);
        assert_eq!(gr.order(), vec!["a", "b", "c", "d"]);
        for _ in 0..5 {
            assert_eq!(
                gr.order(),
                g(&[("d", &["c", "b"]), ("a", &[]), ("c", &["a"]), ("b", &[])]).order()
            );
        }
    }

    #[test]
    fn finds_the_cycle_path() {
        let gr = g(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("x", &[])]);
        let c = gr.find_cycle().unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0], "a");
        assert!(g(&[("a", &[]), ("b", &["a"])]).find_cycle().is_none());
    }
}
