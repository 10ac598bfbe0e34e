//! The house rule "no import cycles inside a crate", checked: each crate's top-level modules
//! and the `crate::` paths between them (comments aside) must form a graph without cycles.
//! A lower module that needs to call up takes a hook the upper one installs at boot.

use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::image::workspace_root;

/// The crates whose module graph is checked.
const CRATES: &[&str] = &[
    "abi",
    "hal",
    "kernel",
    "migration",
    "multikernel",
    "multikernel-proto",
    "noc-proto",
    "noc-sim",
    "tests",
    "uarea",
    "xtask",
    "userland/ulib",
];

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every cycle found, as `crate: a -> b -> a`.
pub fn cycles() -> Result<Vec<String>> {
    let mut found = Vec::new();
    for krate in CRATES {
        let graph = crate_graph(&workspace_root().join(krate).join("src"))
            .with_context(|| format!("reading the modules of {krate}"))?;
        for cycle in find_cycles(&graph) {
            found.push(format!("{krate}: {}", cycle.join(" -> ")));
        }
    }
    Ok(found)
}

/// Top-level module → the other top-level modules it names through `crate::`.
fn crate_graph(src: &Path) -> Result<Graph> {
    let mut files = Vec::new();
    collect(src, &mut files)?;
    let mut graph = Graph::new();
    for file in &files {
        let relative = file.strip_prefix(src).unwrap_or(file);
        let Some(first) = relative.components().next() else {
            continue;
        };
        let top = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" || top == "bin" {
            continue;
        }
        let text = std::fs::read_to_string(file)?;
        let deps = graph.entry(top.clone()).or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for name in crate_paths(line) {
                if name != top {
                    deps.insert(name);
                }
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    Ok(graph)
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The identifiers after each `crate::` on a line.
fn crate_paths(line: &str) -> impl Iterator<Item = String> + '_ {
    line.match_indices("crate::").map(move |(at, _)| {
        line[at + 7..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    })
}

/// The cycles of `graph`, each once (depth-first search, a back edge closes a cycle).
fn find_cycles(graph: &Graph) -> Vec<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        state: &mut BTreeMap<String, bool>,
        stack: &mut Vec<String>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        state.insert(node.to_string(), true);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(true) => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    cycles.push(cycle);
                }
                Some(false) => {}
                None => visit(next, graph, state, stack, cycles),
            }
        }
        stack.pop();
        state.insert(node.to_string(), false);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for node in graph.keys() {
        if !state.contains_key(node) {
            visit(node, graph, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    }

    #[test]
    fn a_cycle_is_found_and_a_tree_is_not() {
        let tree = graph(&[("trap", "frame"), ("apic", "frame"), ("trap", "apic")]);
        assert!(find_cycles(&tree).is_empty());
        let cyclic = graph(&[("ipc", "portal"), ("portal", "process"), ("process", "ipc")]);
        assert_eq!(
            find_cycles(&cyclic),
            vec![vec!["ipc", "portal", "process", "ipc"]]
        );
    }

    #[test]
    fn paths_are_read_from_code_only() {
        let names: Vec<String> =
            crate_paths("use crate::frame::{X}; crate::vectors::f()").collect();
        assert_eq!(names, ["frame", "vectors"]);
    }

    #[test]
    fn this_workspace_has_no_cycles() {
        assert_eq!(cycles().unwrap(), Vec::<String>::new());
    }
}
