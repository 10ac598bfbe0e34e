//! What the monitor may ask of the multikernel daemons, which it cannot call (they sit
//! above the kernel): `multikernel` installs these functions at init, as the other upward
//! hooks are installed (`docs/architecture.md`, "Layers and crates").

use abi::{ClusterId, Pid};
use alloc::string::String;

/// The daemons' answers about migrations and locations.
#[derive(Clone, Copy)]
pub struct Queries {
    /// Where a process born here lives now (`None`: here, or gone).
    pub location: fn(Pid) -> Option<ClusterId>,
    /// The phase of the migration of `pid` leaving from here, if one is under way.
    pub phase: fn(Pid) -> Option<String>,
    /// The outcome of the latest migration of `pid` that left from here: the destination,
    /// or the error.
    pub outcome: fn(Pid) -> Option<Result<ClusterId, String>>,
}

static QUERIES: spin::Once<Queries> = spin::Once::new();

/// Installs the daemons' answers (once, by `multikernel::init`).
pub fn set_queries(queries: Queries) {
    QUERIES.call_once(|| queries);
}

/// The installed answers (`None` on a cluster without daemons).
pub fn queries() -> Option<&'static Queries> {
    QUERIES.get()
}
