//! This cluster and the others, and the router's view of who is alive.

use abi::ClusterId;
use kernel::noc;

/// This cluster.
pub fn here() -> ClusterId {
    ClusterId(noc::cluster().0)
}

/// True while the router counts `cluster` as connected (it tells every cluster when one
/// leaves, so this is a reliable failure detector for a cluster that powered off).
pub fn alive(cluster: ClusterId) -> bool {
    hal::noc::live_clusters() & (1u64 << cluster.0) != 0
}

/// Every other cluster of the machine.
pub fn others() -> impl Iterator<Item = ClusterId> {
    let me = here();
    (0..noc::cluster_count())
        .map(ClusterId)
        .filter(move |c| *c != me)
}
