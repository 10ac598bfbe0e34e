//! The chip's shape: a 2D mesh of W×H routers, one cluster per node.
//!
//! MPPA-256 connects its 16 compute clusters and 4 I/O subsystems with a 2D
//! torus-like NoC; Tessera models a plain 2D mesh, which keeps XY routing
//! deadlock-free and the distance a simple Manhattan distance. Cluster `k`
//! sits at `(k % W, k / W)` (row-major), so cluster numbering is stable for a
//! given shape.

use std::fmt;

/// A W×H mesh. Node `i` is at `(i % width, i / width)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mesh {
    pub width: u16,
    pub height: u16,
}

/// A node's mesh coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Coord {
    pub x: u16,
    pub y: u16,
}

impl fmt::Display for Coord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{})", self.x, self.y)
    }
}

impl Mesh {
    pub fn new(width: u16, height: u16) -> Result<Mesh, String> {
        if width == 0 || height == 0 {
            return Err(format!("mesh {width}x{height} has no nodes"));
        }
        Ok(Mesh { width, height })
    }

    /// The default shape for `n` clusters: the most square mesh with
    /// `H = floor(sqrt(n))` rows and enough columns (4 → 2x2, 16 → 4x4,
    /// 20 → 5x4, 2 → 2x1).
    pub fn for_clusters(n: u16) -> Mesh {
        let n = n.max(1);
        let mut h = 1u16;
        while (h + 1) * (h + 1) <= n {
            h += 1;
        }
        let w = n.div_ceil(h);
        Mesh {
            width: w,
            height: h,
        }
    }

    /// Parses `mesh:WxH`.
    pub fn parse(s: &str) -> Result<Mesh, String> {
        let dims = s
            .strip_prefix("mesh:")
            .ok_or_else(|| format!("topology {s:?}: expected mesh:WxH"))?;
        let (w, h) = dims
            .split_once('x')
            .ok_or_else(|| format!("topology {s:?}: expected mesh:WxH"))?;
        let w = w
            .parse()
            .map_err(|e| format!("topology {s:?}: width: {e}"))?;
        let h = h
            .parse()
            .map_err(|e| format!("topology {s:?}: height: {e}"))?;
        Mesh::new(w, h)
    }

    pub fn nodes(&self) -> usize {
        self.width as usize * self.height as usize
    }

    pub fn coord(&self, node: u16) -> Coord {
        Coord {
            x: node % self.width,
            y: node / self.width,
        }
    }

    pub fn node(&self, c: Coord) -> u16 {
        c.y * self.width + c.x
    }

    pub fn contains(&self, c: Coord) -> bool {
        c.x < self.width && c.y < self.height
    }

    pub fn manhattan(&self, a: u16, b: u16) -> u32 {
        let (a, b) = (self.coord(a), self.coord(b));
        a.x.abs_diff(b.x) as u32 + a.y.abs_diff(b.y) as u32
    }
}

impl fmt::Display for Mesh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mesh:{}x{}", self.width, self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_shapes() {
        assert_eq!(
            Mesh::for_clusters(1),
            Mesh {
                width: 1,
                height: 1
            }
        );
        assert_eq!(
            Mesh::for_clusters(2),
            Mesh {
                width: 2,
                height: 1
            }
        );
        assert_eq!(
            Mesh::for_clusters(4),
            Mesh {
                width: 2,
                height: 2
            }
        );
        assert_eq!(
            Mesh::for_clusters(16),
            Mesh {
                width: 4,
                height: 4
            }
        );
        assert_eq!(
            Mesh::for_clusters(20),
            Mesh {
                width: 5,
                height: 4
            }
        );
        assert_eq!(
            Mesh::for_clusters(32),
            Mesh {
                width: 7,
                height: 5
            }
        );
    }

    #[test]
    fn parse() {
        assert_eq!(
            Mesh::parse("mesh:5x4"),
            Ok(Mesh {
                width: 5,
                height: 4
            })
        );
        assert!(Mesh::parse("torus:5x4").is_err());
        assert!(Mesh::parse("mesh:0x4").is_err());
        assert!(Mesh::parse("mesh:5").is_err());
    }

    proptest! {
        #[test]
        fn default_shape_fits_and_is_near_square(n in 1u16..=32) {
            let m = Mesh::for_clusters(n);
            prop_assert!(m.nodes() >= n as usize);
            prop_assert!(m.width >= m.height && m.width <= m.height + 2 || m.height == 1);
        }

        #[test]
        fn coord_round_trip(w in 1u16..8, h in 1u16..8, node in 0u16..64) {
            let m = Mesh::new(w, h).unwrap();
            prop_assume!((node as usize) < m.nodes());
            prop_assert!(m.contains(m.coord(node)));
            prop_assert_eq!(m.node(m.coord(node)), node);
        }
    }
}
