//! Dimension-ordered (XY) routing on the mesh.
//!
//! A message first travels along X to the destination column, then along Y.
//! XY routing is deterministic and deadlock-free on a mesh, and it is what
//! the MPPA's NoC routers do for unicast. A path also includes the source's
//! injection link and the destination's ejection link, so that many-to-one
//! traffic contends at the receiver's network interface as on the real chip.

use std::fmt;

use crate::topology::{Coord, Mesh};

/// A directed link of the modelled NoC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkId {
    /// Cluster's network interface → its router.
    Inject(u16),
    /// Router between two adjacent nodes, in the direction `from → to`.
    Hop { from: u16, to: u16 },
    /// Router → cluster's network interface.
    Eject(u16),
}

impl LinkId {
    /// Whether this is a router-to-router hop (pays the per-hop latency).
    pub fn is_hop(&self) -> bool {
        matches!(self, LinkId::Hop { .. })
    }
}

/// Renders a link with coordinates, e.g. `(0,0)->(1,0)`, `inject(2,1)`.
pub struct LinkName<'a>(pub &'a Mesh, pub LinkId);

impl fmt::Display for LinkName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        match self.1 {
            LinkId::Inject(n) => write!(f, "inject{}", m.coord(n)),
            LinkId::Eject(n) => write!(f, "eject{}", m.coord(n)),
            LinkId::Hop { from, to } => write!(f, "{}->{}", m.coord(from), m.coord(to)),
        }
    }
}

/// The XY path from `src` to `dst`: `Inject(src)`, the hops, `Eject(dst)`.
/// Both nodes must be in the mesh. `src == dst` gives inject + eject only.
pub fn xy_route(mesh: &Mesh, src: u16, dst: u16) -> Vec<LinkId> {
    let mut path = Vec::with_capacity(2 + mesh.manhattan(src, dst) as usize);
    path.push(LinkId::Inject(src));
    let target = mesh.coord(dst);
    let mut at: Coord = mesh.coord(src);
    while at != target {
        let next = if at.x != target.x {
            Coord {
                x: if at.x < target.x { at.x + 1 } else { at.x - 1 },
                y: at.y,
            }
        } else {
            Coord {
                x: at.x,
                y: if at.y < target.y { at.y + 1 } else { at.y - 1 },
            }
        };
        path.push(LinkId::Hop {
            from: mesh.node(at),
            to: mesh.node(next),
        });
        at = next;
    }
    path.push(LinkId::Eject(dst));
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mesh_and_pair() -> impl Strategy<Value = (Mesh, u16, u16)> {
        (1u16..7, 1u16..7).prop_flat_map(|(w, h)| {
            let n = w * h;
            (Just(Mesh::new(w, h).unwrap()), 0..n, 0..n)
        })
    }

    #[test]
    fn example() {
        let m = Mesh::new(4, 4).unwrap();
        let p = xy_route(&m, 0, 5);
        assert_eq!(
            p,
            vec![
                LinkId::Inject(0),
                LinkId::Hop { from: 0, to: 1 },
                LinkId::Hop { from: 1, to: 5 },
                LinkId::Eject(5)
            ]
        );
        assert_eq!(
            xy_route(&m, 3, 3),
            vec![LinkId::Inject(3), LinkId::Eject(3)]
        );
        assert_eq!(LinkName(&m, p[2]).to_string(), "(1,0)->(1,1)");
    }

    proptest! {
        #[test]
        fn length_is_manhattan((m, s, d) in mesh_and_pair()) {
            let p = xy_route(&m, s, d);
            prop_assert_eq!(p.iter().filter(|l| l.is_hop()).count() as u32, m.manhattan(s, d));
            prop_assert_eq!(p.first(), Some(&LinkId::Inject(s)));
            prop_assert_eq!(p.last(), Some(&LinkId::Eject(d)));
        }

        #[test]
        fn hops_are_adjacent_inside_mesh_and_x_first((m, s, d) in mesh_and_pair()) {
            let mut at = s;
            let mut moved_y = false;
            for l in xy_route(&m, s, d) {
                if let LinkId::Hop { from, to } = l {
                    prop_assert_eq!(from, at);
                    let (a, b) = (m.coord(from), m.coord(to));
                    prop_assert!(m.contains(a) && m.contains(b));
                    prop_assert_eq!(a.x.abs_diff(b.x) + a.y.abs_diff(b.y), 1);
                    if a.y != b.y { moved_y = true; } else { prop_assert!(!moved_y, "X hop after Y hop"); }
                    at = to;
                }
            }
            prop_assert_eq!(at, d);
        }
    }
}
