//! The daemons' NoC ports, from the one registry in `multikernel_proto::ports`.

use hal::noc::PortId;
use multikernel_proto::ports;

/// Mailbox port of every cluster's daemons.
pub const DAEMON_PORT: PortId = PortId(ports::DAEMON);
/// Portal port migration images arrive on.
pub const IMAGE_PORT: PortId = PortId(ports::IMAGE);
/// Portal port the pages of an image arrive on, frame to frame.
pub const IMAGE_PAGES_PORT: PortId = PortId(ports::IMAGE_PAGES);
/// Portal port post-copy's pages arrive on, frame to frame, each transfer naming its pages.
pub const POSTCOPY_PAGES_PORT: PortId = PortId(ports::POSTCOPY_PAGES);
