//! The migration daemon, both ends of every migration, stepped from the scheduler loop so
//! user threads keep running while a migration is in flight.

pub mod destination;
pub mod source;
pub mod stats;

pub use destination::MigrationDestination;
pub use source::MigrationSource;
