//! `claw graph`: the dependency graph as Graphviz DOT.

use crate::engine::graph::Graph;

/// Edges run from each resource to what it depends on (for destroy, the
/// reverse: the order deletes run in). Sorted, so the output is stable.
pub fn dot(graph: &Graph, destroy: bool) -> String {
    let mut s = String::from("digraph claw {\n  rankdir = \"RL\";\n  node [shape = box];\n");
    for a in graph.addresses() {
        s.push_str(&format!("  {};\n", quote(a)));
    }
    let mut edges: Vec<(String, String)> = graph
        .edges()
        .into_iter()
        .map(|(dep, dependent)| {
            if destroy {
                (dep, dependent)
            } else {
                (dependent, dep)
            }
        })
        .collect();
    edges.sort();
    for (a, b) in edges {
        s.push_str(&format!("  {} -> {};\n", quote(&a), quote(&b)));
    }
    s.push_str("}\n");
    s
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
