//! Round trips for every kind and every rejection the decoder makes.

use super::*;
use proptest::prelude::*;
use std::string::String;
use std::vec;
use std::vec::Vec;

fn pid() -> impl Strategy<Value = Pid> {
    (0u16..256, 1u32..=Pid::MAX_LOCAL).prop_map(|(c, l)| Pid::new(ClusterId(c), l).unwrap())
}

fn cluster() -> impl Strategy<Value = ClusterId> {
    any::<u16>().prop_map(ClusterId)
}

fn reason() -> impl Strategy<Value = Reason> {
    prop_oneof![
        Just(Reason::Busy),
        Just(Reason::NoMemory),
        Just(Reason::Exists),
        Just(Reason::Refusing),
        Just(Reason::BadImage),
        Just(Reason::Timeout),
    ]
}

/// A string of at most `max` bytes (multi-byte characters included).
fn text(max: usize, min: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![Just('a'), Just('\0'), Just('é'), Just('→')],
        0..max,
    )
    .prop_map(move |chars| {
        let mut s = String::new();
        for c in chars {
            if s.len() + c.len_utf8() <= max {
                s.push(c);
            }
        }
        s
    })
    .prop_filter("too short", move |s| s.len() >= min)
}

fn offer() -> impl Strategy<Value = Message> {
    (
        pid(),
        cluster(),
        cluster(),
        0u32..=4096,
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(
            |(pid, source, destination, uarea_len, page_count, sequence, direct)| Message::Offer {
                sequence,
                manifest: Manifest {
                    pid,
                    source,
                    destination,
                    uarea_len,
                    page_count,
                    sequence,
                    transport: if direct {
                        uarea::image::PageTransport::Direct
                    } else {
                        uarea::image::PageTransport::Inline
                    },
                },
            },
        )
}

pub(crate) fn message() -> impl Strategy<Value = Message> {
    let seq = any::<u32>();
    prop_oneof![
        offer(),
        seq.prop_map(|sequence| Message::Accept { sequence }),
        (seq, reason()).prop_map(|(sequence, reason)| Message::Refuse { sequence, reason }),
        (seq, any::<u32>()).prop_map(|(sequence, crc)| Message::Done { sequence, crc }),
        seq.prop_map(|sequence| Message::Committed { sequence }),
        (seq, reason()).prop_map(|(sequence, reason)| Message::Failed { sequence, reason }),
        seq.prop_map(|sequence| Message::Prepared { sequence }),
        (seq, proptest::option::of(any::<i32>()))
            .prop_map(|(sequence, kill)| Message::Commit { sequence, kill }),
        seq.prop_map(|sequence| Message::Abort { sequence }),
        (pid(), cluster()).prop_map(|(pid, cluster)| Message::Located { pid, cluster }),
        (pid(), any::<i32>()).prop_map(|(pid, code)| Message::Exited { pid, code }),
        (pid(), cluster(), 0u64..2, 0u32..=64, any::<u32>()).prop_map(
            |(pid, destination, strategy, max_rounds, stop_pages)| Message::MigrateRequest {
                pid,
                destination,
                options: abi::MigrateOptions {
                    strategy: abi::Strategy::from_number(strategy).unwrap(),
                    max_rounds,
                    stop_pages,
                    throttle_max_pct: stop_pages % 100,
                    throttle_step_pct: max_rounds % 100,
                },
            }
        ),
        any::<bool>().prop_map(|on| Message::SetRefusing { on }),
        pid().prop_map(|pid| Message::Kill { pid }),
        (pid(), 0u64..(abi::types::USER_END / 4096)).prop_map(|(pid, page)| Message::PageRequest {
            pid,
            page: page * 4096
        }),
        pid().prop_map(|pid| Message::PostCopyDone { pid }),
        (
            pid(),
            any::<bool>(),
            proptest::array::uniform5(any::<u64>())
        )
            .prop_map(
                |(pid, whole, [pulled, pushed, wait, residual_ns, link_bytes])| {
                    Message::PostCopyReport(PostCopyReport {
                        pid,
                        whole,
                        pulled,
                        pushed,
                        // A wait only with a pulled page (the decoder's rule).
                        fault_wait_ns: if pulled == 0 { 0 } else { wait },
                        residual_ns,
                        link_bytes,
                    })
                }
            ),
        Just(Message::ListRequest),
        proptest::array::uniform32(any::<u8>()).prop_flat_map(|a| {
            proptest::array::uniform32(any::<u8>()).prop_map(move |b| {
                let mut record = [0u8; 64];
                record[..32].copy_from_slice(&a);
                record[32..].copy_from_slice(&b);
                Message::ListEntry { record }
            })
        }),
        (pid(), text(32, 1), any::<bool>()).prop_map(|(pid, name, link)| {
            let name = heapless_str::Name::try_from(name.as_str()).unwrap();
            if link {
                Message::NameLink { pid, name }
            } else {
                Message::NameUnlink { pid, name }
            }
        }),
        (pid(), pid(), text(32, 0), text(64, 0)).prop_map(|(pid, parent, program, args)| {
            Message::Spawn {
                pid,
                parent,
                program: heapless_str::Name::try_from(program.as_str()).unwrap(),
                args: heapless_str::Args::try_from(args.as_str()).unwrap(),
            }
        }),
    ]
}

/// Byte offsets a kind uses (header included); every other byte must be zero.
fn used_bytes(message: &Message) -> Vec<usize> {
    let fields: &[(usize, usize)] = match message {
        Message::Offer { .. } => &[(8, 56)],
        Message::Refuse { .. } | Message::Failed { .. } | Message::Done { .. } => &[(8, 12)],
        Message::Commit { .. } => &[(8, 9), (12, 16)],
        Message::Located { .. } => &[(8, 14)],
        Message::MigrateRequest { .. } => &[(8, 14), (16, 40)],
        Message::Exited { .. } | Message::Kill { .. } => &[(8, 16)],
        Message::PageRequest { .. } => &[(8, 12), (16, 24)],
        Message::PostCopyDone { .. } => &[(8, 12)],
        Message::PostCopyReport(..) => &[(8, 13), (16, 56)],
        Message::SetRefusing { .. } => &[(8, 9)],
        Message::ListEntry { .. } => &[(8, 72)],
        Message::NameLink { .. } | Message::NameUnlink { .. } => &[(8, 13), (16, 48)],
        Message::Spawn { .. } => &[(8, 18), (18, 50), (50, 114)],
        _ => &[],
    };
    let mut used: Vec<usize> = (0..8).collect();
    for &(start, end) in fields {
        used.extend(start..end);
    }
    used
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips(message in message()) {
        let bytes = message.encode();
        prop_assert_eq!(Message::decode(&bytes), Ok(message));
    }

    #[test]
    fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..130)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn accepted_bytes_are_canonical(bytes in proptest::array::uniform32(any::<u8>()), kind in 1u8..=22) {
        let mut payload = [0u8; PAYLOAD];
        payload[..32].copy_from_slice(&bytes);
        payload[0] = kind;
        payload[1] = WIRE_VERSION;
        if let Ok(message) = Message::decode(&payload) {
            prop_assert_eq!(message.encode(), payload);
        }
    }

    #[test]
    fn a_nonzero_unused_byte_is_rejected(message in message(), at in 8usize..PAYLOAD, value in 1u8..) {
        prop_assume!(!used_bytes(&message).contains(&at));
        let mut bytes = message.encode();
        bytes[at] = value;
        prop_assert_eq!(Message::decode(&bytes), Err(DecodeError::ReservedNotZero));
    }

    #[test]
    fn a_nonzero_reserved_header_byte_is_rejected(message in message(), at in 2usize..4, value in 1u8..) {
        let mut bytes = message.encode();
        bytes[at] = value;
        prop_assert_eq!(Message::decode(&bytes), Err(DecodeError::ReservedNotZero));
    }

    #[test]
    fn a_truncated_or_long_payload_is_rejected(message in message(), len in 0usize..PAYLOAD) {
        let bytes = message.encode();
        prop_assert_eq!(Message::decode(&bytes[..len]), Err(DecodeError::Truncated(len)));
        let mut long = bytes.to_vec();
        long.push(0);
        prop_assert_eq!(Message::decode(&long), Err(DecodeError::TooLong(PAYLOAD + 1)));
    }

    #[test]
    fn an_unknown_kind_is_rejected(message in message(), kind in prop_oneof![Just(0u8), 23u8..]) {
        let mut bytes = message.encode();
        bytes[0] = kind;
        prop_assert_eq!(Message::decode(&bytes), Err(DecodeError::UnknownKind(kind)));
    }

    #[test]
    fn another_wire_version_is_rejected(message in message(), version in any::<u8>()) {
        prop_assume!(version != WIRE_VERSION);
        let mut bytes = message.encode();
        bytes[1] = version;
        prop_assert_eq!(Message::decode(&bytes), Err(DecodeError::UnsupportedVersion(version)));
    }

    #[test]
    fn an_unknown_reason_is_rejected(sequence in any::<u32>(), raw in prop_oneof![Just(0u32), 7u32..], failed in any::<bool>()) {
        let mut bytes = if failed {
            Message::Failed { sequence, reason: Reason::Busy }.encode()
        } else {
            Message::Refuse { sequence, reason: Reason::Busy }.encode()
        };
        bytes[8..12].copy_from_slice(&raw.to_le_bytes());
        prop_assert_eq!(Message::decode(&bytes), Err(DecodeError::BadField("reason")));
    }

    #[test]
    fn a_zero_pid_is_rejected(message in message()) {
        let mut bytes = message.encode();
        let pid_at = match message {
            Message::Located { .. } | Message::Exited { .. } | Message::MigrateRequest { .. }
            | Message::Kill { .. } | Message::NameLink { .. } | Message::NameUnlink { .. }
            | Message::PageRequest { .. } | Message::PostCopyDone { .. }
            | Message::PostCopyReport(..) | Message::Spawn { .. } => 8,
            _ => return Ok(()),
        };
        bytes[pid_at..pid_at + 3].copy_from_slice(&[0, 0, 0]);
        prop_assert_eq!(Message::decode(&bytes), Err(DecodeError::BadPid));
    }
}

#[test]
fn bad_flags_are_rejected() {
    let mut bytes = Message::SetRefusing { on: true }.encode();
    bytes[8] = 2;
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::BadField("refusing flag"))
    );
    let mut bytes = Message::Commit {
        sequence: 3,
        kill: None,
    }
    .encode();
    bytes[8] = 7;
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::BadField("kill flag"))
    );
}

/// A well-formed report: 3 pages pulled, 10 pushed.
fn a_report() -> PostCopyReport {
    PostCopyReport {
        pid: Pid::new(ClusterId(1), 5).unwrap(),
        whole: true,
        pulled: 3,
        pushed: 10,
        fault_wait_ns: 1_000,
        residual_ns: 9_000,
        link_bytes: 60_000,
    }
}

#[test]
fn a_malformed_postcopy_report_is_rejected() {
    let report = a_report();
    let good = Message::PostCopyReport(report).encode();
    assert_eq!(Message::decode(&good), Ok(Message::PostCopyReport(report)));
    let mut bad_flag = good;
    bad_flag[12] = 2;
    assert_eq!(
        Message::decode(&bad_flag),
        Err(DecodeError::BadField("whole flag"))
    );
    let waited_for_nothing = Message::PostCopyReport(PostCopyReport {
        pulled: 0,
        ..report
    })
    .encode();
    assert_eq!(
        Message::decode(&waited_for_nothing),
        Err(DecodeError::BadField("fault wait without a pulled page"))
    );
}

#[test]
fn a_report_fits_only_the_pages_that_stayed_behind() {
    let report = a_report();
    assert!(report.fits(13));
    assert!(report.fits(20), "fewer came: some were unmapped");
    assert!(!report.fits(12));
    let overflowing = PostCopyReport {
        pulled: u64::MAX,
        ..report
    };
    assert!(!overflowing.fits(u64::MAX));
}

#[test]
fn oversize_and_empty_strings_are_rejected() {
    let pid = Pid::new(ClusterId(1), 5).unwrap();
    let name = heapless_str::Name::try_from("srv").unwrap();
    let mut bytes = Message::NameLink {
        pid,
        name: name.clone(),
    }
    .encode();
    bytes[NAME_LEN_AT] = 33;
    assert_eq!(Message::decode(&bytes), Err(DecodeError::BadLength("name")));
    bytes[NAME_LEN_AT] = 0;
    assert_eq!(Message::decode(&bytes), Err(DecodeError::BadLength("name")));
    let spawn = Message::Spawn {
        pid,
        parent: pid,
        program: name,
        args: heapless_str::Args::new(),
    };
    let mut bytes = spawn.encode();
    bytes[PROGRAM_LEN_AT] = 33;
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::BadLength("program"))
    );
    let mut bytes = spawn.encode();
    bytes[ARGS_LEN_AT] = 65;
    assert_eq!(Message::decode(&bytes), Err(DecodeError::BadLength("args")));
}

#[test]
fn bad_utf8_is_rejected() {
    let pid = Pid::new(ClusterId(1), 5).unwrap();
    let name = heapless_str::Name::try_from("ab").unwrap();
    let mut bytes = Message::NameUnlink { pid, name }.encode();
    bytes[NAME_AT] = 0xFF;
    assert_eq!(Message::decode(&bytes), Err(DecodeError::BadUtf8("name")));
}

#[test]
fn a_bad_manifest_is_rejected() {
    let manifest = Manifest {
        pid: Pid::new(ClusterId(0), 1).unwrap(),
        source: ClusterId(0),
        destination: ClusterId(1),
        uarea_len: 10,
        page_count: 2,
        sequence: 9,
        transport: uarea::image::PageTransport::Inline,
    };
    let mut bytes = Message::Offer {
        sequence: 9,
        manifest,
    }
    .encode();
    bytes[8] ^= 1; // the manifest magic
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::BadManifest(ImageError::BadMagic))
    );
    let mut bytes = Message::Offer {
        sequence: 9,
        manifest,
    }
    .encode();
    bytes[4] = 8; // the message's sequence no longer matches the manifest's
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::BadField("manifest sequence"))
    );
}

#[test]
fn a_migrate_request_with_bad_options_is_rejected() {
    let good = Message::MigrateRequest {
        pid: Pid::new(ClusterId(1), 3).unwrap(),
        destination: ClusterId(2),
        options: abi::MigrateOptions::new(abi::Strategy::PreCopy),
    };
    let mut bytes = good.encode();
    assert_eq!(Message::decode(&bytes), Ok(good));
    bytes[20] = 9; // no strategy 9
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::BadField("migrate options"))
    );
}
