//! `noc` and `topology`: the mesh drawn as text, each link's load as a heat symbol, from
//! noc-sim's per-link counters (the `links` of its control socket's `stats`).
//!
//! The mesh shape and the link names are noc-sim's (`noc-sim/src/topology.rs`,
//! `routing.rs`): node k sits at (k % W, k / W); links are `inject(x,y)`, `eject(x,y)` and
//! `(x,y)->(x',y')`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::Value;

/// Heat symbols, from idle to the busiest link.
const HEAT: &[u8] = b" .:-=+*#%@";

/// noc-sim's default mesh for n clusters: H = floor(sqrt(n)) rows.
pub fn mesh(n: usize) -> (usize, usize) {
    let n = n.max(1);
    let mut h = 1;
    while (h + 1) * (h + 1) <= n {
        h += 1;
    }
    (n.div_ceil(h), h)
}

fn coord(w: usize, k: usize) -> String {
    format!("({},{})", k % w, k / w)
}

/// The links of the XY route from `src` to `dst` (noc-sim's names).
pub fn xy_path(n: usize, src: usize, dst: usize) -> Vec<String> {
    let (w, _) = mesh(n);
    let mut path = vec![format!("inject{}", coord(w, src))];
    let (mut x, mut y) = (src % w, src / w);
    let (tx, ty) = (dst % w, dst / w);
    while (x, y) != (tx, ty) {
        let (nx, ny) = if x != tx {
            (if x < tx { x + 1 } else { x - 1 }, y)
        } else {
            (x, if y < ty { y + 1 } else { y - 1 })
        };
        path.push(format!("({x},{y})->({nx},{ny})"));
        (x, y) = (nx, ny);
    }
    path.push(format!("eject{}", coord(w, dst)));
    path
}

/// noc-sim's `stats` JSON.
pub fn stats(control: &Path) -> Result<Value, String> {
    let ask = || -> std::io::Result<String> {
        let mut socket = UnixStream::connect(control)?;
        socket.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        writeln!(socket, "stats")?;
        let mut line = String::new();
        BufReader::new(socket).read_line(&mut line)?;
        Ok(line)
    };
    let line = ask().map_err(|e| format!("noc-sim's control socket {}: {e}", control.display()))?;
    serde_json::from_str(&line).map_err(|e| format!("noc-sim's stats are not JSON: {e}"))
}

/// (messages, bytes) per link name.
pub fn link_counters(stats: &Value) -> HashMap<String, (u64, u64)> {
    let mut links = HashMap::new();
    for link in stats["links"].as_array().into_iter().flatten() {
        if let Some(name) = link["link"].as_str() {
            let n = |k: &str| link[k].as_u64().unwrap_or(0);
            links.insert(name.to_string(), (n("messages"), n("bytes")));
        }
    }
    links
}

fn clusters_of(stats: &Value) -> usize {
    stats["clusters"].as_array().map_or(1, Vec::len)
}

/// The heat map and the busiest links.
pub fn render(stats: &Value) -> String {
    let n = clusters_of(stats);
    let (w, h) = mesh(n);
    let links = link_counters(stats);
    let max = links.values().map(|(m, _)| *m).max().unwrap_or(0).max(1);
    let heat = |name: &str| -> char {
        let m = links.get(name).map_or(0, |(m, _)| *m);
        if m == 0 {
            return '·';
        }
        HEAT[1 + ((m * (HEAT.len() as u64 - 2)) / max) as usize] as char
    };
    let hop = |a: usize, b: usize| format!("{}->{}", coord(w, a), coord(w, b));
    let mut text = format!(
        "NoC {w}x{h} mesh, messages per link since boot (heat `{}`, · = none); `>`/`<` east/west, `v`/`^` south/north; [in out] = inject/eject\n",
        std::str::from_utf8(&HEAT[1..]).unwrap_or("")
    );
    for y in 0..h {
        let mut row = String::new();
        let mut below = String::new();
        for x in 0..w {
            let k = y * w + x;
            if k >= n {
                break;
            }
            let io = format!(
                "{}{}",
                heat(&format!("inject{}", coord(w, k))),
                heat(&format!("eject{}", coord(w, k)))
            );
            row.push_str(&format!("c{k:<2}[{io}]"));
            if x + 1 < w && k + 1 < n {
                row.push_str(&format!(
                    " >{}{}< ",
                    heat(&hop(k, k + 1)),
                    heat(&hop(k + 1, k))
                ));
            }
            if y + 1 < h && k + w < n {
                below.push_str(&format!(
                    " v{}{}^      ",
                    heat(&hop(k, k + w)),
                    heat(&hop(k + w, k))
                ));
            } else {
                below.push_str("           ");
            }
            if x + 1 < w {
                below.push(' ');
            }
        }
        text.push_str(&format!("  {row}\n"));
        if y + 1 < h {
            text.push_str(&format!("  {}\n", below.trim_end()));
        }
    }
    let mut busy: Vec<_> = links.iter().filter(|(_, (m, _))| *m > 0).collect();
    busy.sort_by_key(|(name, (m, _))| (std::cmp::Reverse(*m), (*name).clone()));
    text.push_str(&format!(
        "{:<16} {:>10} {:>12}\n",
        "LINK", "MESSAGES", "BYTES"
    ));
    for (name, (m, b)) in busy {
        text.push_str(&format!("{name:<16} {m:>10} {b:>12}\n"));
    }
    text
}

/// `topology`: where each cluster sits.
pub fn topology(n: usize) -> String {
    let (w, h) = mesh(n);
    let mut text = format!("{n} clusters on a {w}x{h} mesh (XY routing):\n");
    for y in 0..h {
        let row: Vec<String> = (0..w)
            .map(|x| y * w + x)
            .filter(|k| *k < n)
            .map(|k| format!("c{k:<2} {}", coord(w, k)))
            .collect();
        text.push_str(&format!("  {}\n", row.join(" ── ")));
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_shapes_match_noc_sim() {
        assert_eq!(mesh(4), (2, 2));
        assert_eq!(mesh(16), (4, 4));
        assert_eq!(mesh(20), (5, 4));
        assert_eq!(
            xy_path(4, 0, 2),
            ["inject(0,0)", "(0,0)->(0,1)", "eject(0,1)"]
        );
        assert_eq!(
            xy_path(4, 3, 0),
            ["inject(1,1)", "(1,1)->(0,1)", "(0,1)->(0,0)", "eject(0,0)"]
        );
    }

    #[test]
    fn renders_busy_links() {
        let stats: Value = serde_json::from_str(
            r#"{"clusters":[{},{},{},{}],"links":[{"link":"(0,0)->(0,1)","messages":9,"bytes":900},{"link":"inject(0,0)","messages":3,"bytes":30}]}"#,
        )
        .unwrap();
        let text = render(&stats);
        let row =
            |l: &str| l.split_whitespace().collect::<Vec<_>>() == ["(0,0)->(0,1)", "9", "900"];
        assert!(text.lines().any(row), "{text}");
        assert!(text.contains("v@·^"), "{text}");
    }
}
