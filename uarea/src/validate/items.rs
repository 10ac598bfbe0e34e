//! The checks of one segment and one endpoint, on their own (the UArea-level checks that
//! relate them to each other are in the parent module).

use abi::types::USER_END;
use abi::SYNC_MAX_MEMBERS;

use super::{addr, check_user_range, valid_pid, DESCRIPTOR_LIMIT, EXEC_TOP_GAP};
use crate::endpoint::{Endpoint, EndpointFlags, EndpointKind, Peer, Role, ENDPOINT_NAME_MAX};
use crate::error::Invariant;
use crate::memory::{Backing, Perms, Segment, SegmentKind};

pub(super) fn validate_segment(segment: &Segment) -> Result<(), Invariant> {
    addr(
        "segment",
        segment.start,
        check_user_range(segment.start, segment.len),
    )?;
    if segment.len == 0 {
        return Err(Invariant::EmptySegment {
            start: segment.start,
        });
    }
    if !segment.perms.is_known() {
        return Err(Invariant::UnknownFlags {
            what: "segment.perms",
            bits: segment.perms.bits() as u32,
        });
    }
    if segment.perms.contains(Perms::W.union(Perms::X)) {
        return Err(Invariant::WriteAndExecute {
            start: segment.start,
        });
    }
    // `check_user_range` above: `start + len <= USER_END`, no overflow.
    if segment.perms.contains(Perms::X) && segment.end() > USER_END - EXEC_TOP_GAP {
        return Err(Invariant::ExecutableAtUserTop {
            start: segment.start,
        });
    }
    let backing_ok = match segment.backing {
        Backing::Anonymous => true,
        Backing::Image { offset, len } => {
            matches!(segment.kind, SegmentKind::Text | SegmentKind::Data)
                && len <= segment.len
                && offset.checked_add(len).is_some()
        }
    };
    if !backing_ok {
        return Err(Invariant::BadBacking {
            start: segment.start,
        });
    }
    Ok(())
}

pub(super) fn validate_endpoint(endpoint: &Endpoint) -> Result<(), Invariant> {
    let descriptor = endpoint.descriptor;
    if descriptor >= DESCRIPTOR_LIMIT {
        return Err(Invariant::DescriptorOutOfRange(descriptor));
    }
    if !endpoint.flags.is_known() {
        return Err(Invariant::UnknownFlags {
            what: "endpoint.flags",
            bits: endpoint.flags.bits(),
        });
    }
    let bad = Err(Invariant::BadPeer { descriptor });
    let allowed = endpoint.flags.contains(EndpointFlags::ALLOWED);
    match &endpoint.peer {
        Peer::Process { pid, .. } => valid_pid("endpoint.peer", *pid)?,
        Peer::Name(name) => {
            if name.is_empty() || name.len() > ENDPOINT_NAME_MAX {
                return bad;
            }
        }
        Peer::Group { members, .. } => {
            if members.is_empty() || members.len() > SYNC_MAX_MEMBERS {
                return bad;
            }
            for (i, member) in members.iter().enumerate() {
                valid_pid("endpoint.peer.members", *member)?;
                if members[..i].contains(member) {
                    return bad;
                }
            }
        }
        Peer::None | Peer::Cluster { .. } => {}
    }
    let consistent = match (endpoint.kind, endpoint.role, &endpoint.peer) {
        (EndpointKind::Sync, _, Peer::Group { .. }) => !allowed,
        (EndpointKind::Sync, _, _) => false,
        (_, _, Peer::Group { .. }) => false,
        (EndpointKind::Mailbox, Role::Receiver, Peer::None) => !allowed,
        (EndpointKind::Mailbox, Role::Receiver, _) => false,
        (EndpointKind::Portal, Role::Receiver, Peer::None) => !allowed,
        (EndpointKind::Portal, Role::Receiver, Peer::Process { .. }) => allowed,
        (EndpointKind::Portal, Role::Receiver, _) => false,
        (_, Role::Sender, Peer::None) => false,
        (_, Role::Sender, _) => !allowed,
    };
    if consistent {
        Ok(())
    } else {
        bad
    }
}
