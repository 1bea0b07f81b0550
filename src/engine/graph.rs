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
    /// Nodes are added in address order, so a node's index orders like its address.
    pub fn new(mut nodes: Vec<(String, Vec<String>)>) -> Graph {
        nodes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut g = DiGraph::with_capacity(nodes.len(), nodes.len());
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

    /// Dependencies first; ties broken by address (the one walker's order,
    /// on node indices: they order like the addresses).
    pub fn order(&self) -> Vec<&str> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut waiting: Vec<usize> = self
            .g
            .node_indices()
            .map(|i| {
                self.g
                    .neighbors_directed(i, petgraph::Incoming)
                    .filter(|d| *d != i)
                    .count()
            })
            .collect();
        let mut ready: BinaryHeap<Reverse<NodeIndex>> = self
            .g
            .node_indices()
            .filter(|i| waiting[i.index()] == 0)
            .map(Reverse)
            .collect();
        let mut out = Vec::with_capacity(waiting.len());
        while let Some(Reverse(i)) = ready.pop() {
            out.push(self.g[i].as_str());
            for d in self.g.neighbors_directed(i, petgraph::Outgoing) {
                if d == i {
                    continue;
                }
                let n = &mut waiting[d.index()];
                *n -= 1;
                if *n == 0 {
                    ready.push(Reverse(d));
                }
            }
        }
        out
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

    /// The index walk gives the walker's order (smallest ready address
    /// first) on random graphs, whatever order the nodes come in.
    #[test]
    fn order_matches_the_walker_on_random_graphs() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let n = 1 + rand(40) as usize;
            // Names that sort differently from their creation order.
            let name = |i: usize| format!("r{}", (i * 7919) % 1000);
            let mut nodes: Vec<(String, Vec<String>)> = (0..n)
                .map(|i| {
                    let mut deps: Vec<String> = (0..i).filter(|_| rand(4) == 0).map(name).collect();
                    if rand(8) == 0 {
                        deps.push("missing".to_string());
                    }
                    (name(i), deps)
                })
                .collect();
            nodes.reverse();
            let walker = crate::engine::walk::Walker::new(
                nodes
                    .iter()
                    .map(|(a, d)| (a.clone(), d.iter().cloned().collect()))
                    .collect(),
            )
            .order();
            assert_eq!(Graph::new(nodes).order(), walker);
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
