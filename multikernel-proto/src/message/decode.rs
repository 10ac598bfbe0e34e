//! Field-by-field decoding, each check a typed [`DecodeError`]; [`Message::decode`] checks
//! the header first and canonical form (zero padding) after.

use abi::{ClusterId, Pid};
use uarea::image::{Manifest, MANIFEST_LEN};

use super::*;

fn u32_at(bytes: &[u8; PAYLOAD], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u16_at(bytes: &[u8; PAYLOAD], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn pid_at(bytes: &[u8; PAYLOAD], at: usize) -> Result<Pid, DecodeError> {
    Pid::from_raw(u32_at(bytes, at)).ok_or(DecodeError::BadPid)
}

fn reason_at(bytes: &[u8; PAYLOAD]) -> Result<Reason, DecodeError> {
    Reason::from_u32(u32_at(bytes, 8)).ok_or(DecodeError::BadField("reason"))
}

fn flag_at(bytes: &[u8; PAYLOAD], at: usize, what: &'static str) -> Result<bool, DecodeError> {
    match bytes[at] {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::BadField(what)),
    }
}

fn str_at<'a>(
    bytes: &'a [u8; PAYLOAD],
    len_at: usize,
    at: usize,
    capacity: usize,
    what: &'static str,
) -> Result<&'a str, DecodeError> {
    let len = bytes[len_at] as usize;
    if len > capacity {
        return Err(DecodeError::BadLength(what));
    }
    core::str::from_utf8(&bytes[at..at + len]).map_err(|_| DecodeError::BadUtf8(what))
}

/// The fields of `bytes` as the message its kind names (the header is checked by the caller).
pub(super) fn fields(bytes: &[u8; PAYLOAD]) -> Result<Message, DecodeError> {
    use Message::*;
    let sequence = u32_at(bytes, 4);
    Ok(match bytes[0] {
        kind::OFFER => {
            let manifest =
                Manifest::decode(&bytes[8..8 + MANIFEST_LEN]).map_err(DecodeError::BadManifest)?;
            if manifest.sequence != sequence {
                return Err(DecodeError::BadField("manifest sequence"));
            }
            Offer { sequence, manifest }
        }
        kind::ACCEPT => Accept { sequence },
        kind::REFUSE => Refuse {
            sequence,
            reason: reason_at(bytes)?,
        },
        kind::DONE => Done {
            sequence,
            crc: u32_at(bytes, 8),
        },
        kind::COMMITTED => Committed { sequence },
        kind::FAILED => Failed {
            sequence,
            reason: reason_at(bytes)?,
        },
        kind::PREPARED => Prepared { sequence },
        kind::COMMIT => Commit {
            sequence,
            kill: flag_at(bytes, 8, "kill flag")?.then(|| u32_at(bytes, 12) as i32),
        },
        kind::ABORT => Abort { sequence },
        kind::LOCATED => Located {
            pid: pid_at(bytes, 8)?,
            cluster: ClusterId(u16_at(bytes, 12)),
        },
        kind::EXITED => Exited {
            pid: pid_at(bytes, 8)?,
            code: u32_at(bytes, 12) as i32,
        },
        kind::MIGRATE_REQUEST => MigrateRequest {
            pid: pid_at(bytes, 8)?,
            destination: ClusterId(u16_at(bytes, 12)),
            options: abi::MigrateOptions::from_bytes(&bytes[16..16 + abi::MigrateOptions::SIZE_V2])
                .ok_or(DecodeError::BadField("migrate options"))?,
        },
        kind::SET_REFUSING => SetRefusing {
            on: flag_at(bytes, 8, "refusing flag")?,
        },
        kind::KILL => Kill {
            pid: pid_at(bytes, 8)?,
        },
        kind::PAGE_REQUEST => {
            let mut page = [0u8; 8];
            page.copy_from_slice(&bytes[16..24]);
            let page = u64::from_le_bytes(page);
            if page % 4096 != 0 || page >= abi::types::USER_END {
                return Err(DecodeError::BadField("page"));
            }
            PageRequest {
                pid: pid_at(bytes, 8)?,
                page,
            }
        }
        kind::POSTCOPY_DONE => PostCopyDone {
            pid: pid_at(bytes, 8)?,
        },
        kind::POSTCOPY_REPORT => {
            let at = |i: usize| {
                let mut word = [0u8; 8];
                word.copy_from_slice(&bytes[16 + 8 * i..24 + 8 * i]);
                u64::from_le_bytes(word)
            };
            let report = super::PostCopyReport {
                pid: pid_at(bytes, 8)?,
                whole: flag_at(bytes, 12, "whole flag")?,
                pulled: at(0),
                pushed: at(1),
                fault_wait_ns: at(2),
                residual_ns: at(3),
                link_bytes: at(4),
            };
            // A wait is only ever timed for a page that was pulled.
            if report.pulled == 0 && report.fault_wait_ns != 0 {
                return Err(DecodeError::BadField("fault wait without a pulled page"));
            }
            PostCopyReport(report)
        }
        kind::LIST_REQUEST => ListRequest,
        kind::LIST_ENTRY => {
            let mut record = [0u8; 64];
            record.copy_from_slice(&bytes[8..72]);
            ListEntry { record }
        }
        kind::NAME_LINK | kind::NAME_UNLINK => {
            if bytes[NAME_LEN_AT] == 0 {
                return Err(DecodeError::BadLength("name"));
            }
            let text = str_at(bytes, NAME_LEN_AT, NAME_AT, 32, "name")?;
            let name =
                heapless_str::Name::try_from(text).map_err(|_| DecodeError::BadLength("name"))?;
            let pid = pid_at(bytes, 8)?;
            if bytes[0] == kind::NAME_LINK {
                NameLink { pid, name }
            } else {
                NameUnlink { pid, name }
            }
        }
        kind::SPAWN => {
            let program = str_at(bytes, PROGRAM_LEN_AT, PROGRAM_AT, 32, "program")?;
            let args = str_at(bytes, ARGS_LEN_AT, ARGS_AT, 64, "args")?;
            Spawn {
                pid: pid_at(bytes, 8)?,
                parent: pid_at(bytes, 12)?,
                program: heapless_str::Name::try_from(program)
                    .map_err(|_| DecodeError::BadLength("program"))?,
                args: heapless_str::Args::try_from(args)
                    .map_err(|_| DecodeError::BadLength("args"))?,
            }
        }
        other => return Err(DecodeError::UnknownKind(other)),
    })
}
