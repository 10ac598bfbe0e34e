//! The daemons' NoC ports.

use hal::noc::PortId;

/// Mailbox port of every cluster's daemons.
pub const DAEMON_PORT: PortId = PortId(0xFF00);
/// Portal port migration images arrive on.
pub const IMAGE_PORT: PortId = PortId(0xFF01);
