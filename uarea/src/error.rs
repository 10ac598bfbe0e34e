//! Why an image was rejected, precisely.

use core::fmt;

use abi::{ClusterId, Tid};

/// An encoding or decoding failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UAreaError {
    /// The buffer ends before the envelope header or the declared payload.
    Truncated {
        /// Bytes the image needs.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// Not a UArea image (foreign or garbage bytes).
    BadMagic {
        /// The first eight bytes found.
        found: [u8; 8],
    },
    /// A format version this build cannot read (older or newer).
    UnsupportedVersion {
        /// Version in the image.
        found: u16,
        /// Oldest version this build reads.
        oldest: u16,
        /// Newest version this build reads.
        newest: u16,
    },
    /// The reserved header field is not zero.
    ReservedNonZero {
        /// Its value.
        value: u16,
    },
    /// The declared payload length disagrees with the bytes: larger than
    /// the limit, non-zero bytes after the image, or a payload that decodes
    /// without using all of its declared bytes.
    LengthMismatch {
        /// Payload length in the header.
        declared: usize,
        /// What was found instead.
        actual: usize,
    },
    /// The CRC-32 over header and payload does not match.
    ChecksumMismatch {
        /// Checksum in the header.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// The payload is not a well-formed postcard encoding of a [`crate::UArea`].
    Decode(postcard::Error),
    /// The payload decoded but its content breaks an invariant.
    Invalid(Invariant),
    /// `encode_into`: the buffer is too small.
    BufferTooSmall {
        /// Bytes the image needs.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// Serialization failed (cannot happen with a large enough buffer).
    Encode(postcard::Error),
}

impl From<Invariant> for UAreaError {
    fn from(invariant: Invariant) -> Self {
        UAreaError::Invalid(invariant)
    }
}

impl fmt::Display for UAreaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UAreaError::Truncated { needed, got } => {
                write!(f, "truncated UArea image: need {needed} bytes, got {got}")
            }
            UAreaError::BadMagic { found } => write!(f, "not a UArea image (magic {found:02x?})"),
            UAreaError::UnsupportedVersion {
                found,
                oldest,
                newest,
            } => write!(
                f,
                "UArea format version {found} unsupported (this build reads {oldest}..={newest})"
            ),
            UAreaError::ReservedNonZero { value } => {
                write!(f, "UArea header reserved field is {value:#x}, not 0")
            }
            UAreaError::LengthMismatch { declared, actual } => {
                write!(
                    f,
                    "UArea payload length {declared} declared, {actual} found"
                )
            }
            UAreaError::ChecksumMismatch { stored, computed } => write!(
                f,
                "UArea checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            UAreaError::Decode(err) => write!(f, "UArea payload does not decode: {err}"),
            UAreaError::Invalid(invariant) => write!(f, "invalid UArea: {invariant}"),
            UAreaError::BufferTooSmall { needed, got } => {
                write!(
                    f,
                    "buffer too small for UArea: need {needed} bytes, got {got}"
                )
            }
            UAreaError::Encode(err) => write!(f, "UArea encoding failed: {err}"),
        }
    }
}

/// Why an address is not a valid user address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressFault {
    /// Below the first page (the null page is never mapped).
    NullPage,
    /// Between the two canonical halves.
    NonCanonical,
    /// In the kernel half.
    KernelHalf,
    /// Not aligned as required.
    Unaligned,
    /// `start + len` overflows or crosses the end of the user half.
    CrossesUserEnd,
}

/// A semantic invariant the decoded content violates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invariant {
    /// A flags field has bits no version defines.
    UnknownFlags {
        /// Which field.
        what: &'static str,
        /// Its raw bits.
        bits: u32,
    },
    /// A pid with local counter 0.
    InvalidPid {
        /// Which field.
        what: &'static str,
        /// Raw value.
        raw: u32,
    },
    /// `header.birth_cluster` is not the pid's birth cluster.
    BirthClusterMismatch {
        /// From the pid.
        pid: ClusterId,
        /// From the header.
        header: ClusterId,
    },
    /// The process is its own parent.
    ParentIsSelf,
    /// A thread waits for a post-copy page: such a process cannot travel.
    WaitsForRemotePage {
        /// The thread.
        tid: Tid,
    },
    /// The name is empty, too long or not printable ASCII.
    BadName {
        /// Its length in bytes.
        len: usize,
    },
    /// A process has at least one thread.
    NoThreads,
    /// A table exceeds its limit.
    TooMany {
        /// Which table.
        what: &'static str,
        /// Entries.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// `thread_count` differs from the table.
    ThreadCountMismatch {
        /// Stored count.
        declared: u32,
        /// Table length.
        actual: usize,
    },
    /// Two threads share a tid.
    DuplicateTid(Tid),
    /// A tid is not below `next_tid` (it could be handed out again).
    TidNotBelowNextTid {
        /// The tid.
        tid: Tid,
        /// The stored `next_tid`.
        next_tid: Tid,
    },
    /// A reference to a thread that does not exist (or is itself).
    UnknownTid {
        /// Where the reference is.
        what: &'static str,
        /// The tid.
        tid: Tid,
    },
    /// An address is not a valid user address.
    BadAddress {
        /// Which field.
        what: &'static str,
        /// Its value.
        addr: u64,
        /// Why.
        fault: AddressFault,
    },
    /// A thread's `rflags` has a privileged bit set, or lacks IF / bit 1.
    BadRflags {
        /// The thread.
        tid: Tid,
        /// The value.
        rflags: u64,
    },
    /// A thread's saved MXCSR has reserved bits set (`fxrstor` would #GP).
    BadMxcsr {
        /// The thread.
        tid: Tid,
        /// The value.
        mxcsr: u32,
    },
    /// A thread is `Running` in a frozen UArea.
    RunningWhileFrozen(Tid),
    /// `restart_syscall` on a thread that is not `Ready`.
    RestartNotReady(Tid),
    /// A runnable thread's `rip` is not in an executable segment.
    RipNotExecutable {
        /// The thread.
        tid: Tid,
        /// The value.
        rip: u64,
    },
    /// A live thread's stack is not inside one `Stack` segment.
    StackOutsideSegments(Tid),
    /// A thread's stack guard overlaps a mapped segment.
    StackGuardMapped(Tid),
    /// Two live threads' stacks overlap.
    StacksOverlap(Tid, Tid),
    /// A blocked thread refers to a descriptor that does not exist or is of
    /// the wrong kind/role.
    BadBlockedEndpoint {
        /// The thread.
        tid: Tid,
        /// The descriptor.
        descriptor: u32,
    },
    /// A thread is blocked in a portal write the DMA engine is carrying out, in a frozen
    /// image: its pages are held at the source, so a freeze waits for the write to end.
    WriteInFlightWhileFrozen(Tid),
    /// A thread waits for a migration of its process to a cluster that cannot exist.
    BadMigrationDestination {
        /// The thread.
        tid: Tid,
        /// The destination it names.
        destination: ClusterId,
    },
    /// A state the image's format version does not have (a version-2 image naming a
    /// version-3 block reason).
    NewerThanItsVersion {
        /// The image's version.
        version: u16,
    },
    /// A segment has zero length.
    EmptySegment {
        /// Its start.
        start: u64,
    },
    /// Segments are not sorted by start address.
    SegmentsUnsorted,
    /// Two segments overlap.
    SegmentsOverlap {
        /// Start of the first.
        first: u64,
        /// Start of the second.
        second: u64,
    },
    /// A segment is both writable and executable.
    WriteAndExecute {
        /// Its start.
        start: u64,
    },
    /// A segment's backing does not fit its kind or size.
    BadBacking {
        /// Its start.
        start: u64,
    },
    /// More than one heap segment.
    MultipleHeaps,
    /// The program break is outside the heap (or non-zero without heap).
    HeapBreakOutsideHeap {
        /// The value.
        heap_break: u64,
    },
    /// The run queue is not exactly the set of `Ready` threads.
    RunQueueMismatch {
        /// The offending thread.
        tid: Tid,
    },
    /// The time slice is zero.
    ZeroQuantum,
    /// `EXITING` set without exit code, or the other way round.
    ExitStateMismatch,
    /// A joiner is inconsistent (unknown thread, self-join, waiter twice).
    BadJoiner {
        /// The waiting thread.
        waiter: Tid,
    },
    /// A child is the process itself or listed twice.
    BadChild {
        /// The child's raw pid.
        pid: u32,
    },
    /// Two endpoints share a descriptor.
    DuplicateDescriptor(u32),
    /// Two receivers of the same kind share a local port.
    DuplicatePort {
        /// The descriptor of the second.
        descriptor: u32,
    },
    /// An endpoint's peer, role, kind and flags do not fit together.
    BadPeer {
        /// The descriptor.
        descriptor: u32,
    },
    /// A descriptor at or above `DESCRIPTOR_LIMIT` (the kernel never hands one out, and the
    /// next one after it could overflow).
    DescriptorOutOfRange(u32),
    /// An executable segment reaches into the last page of the user half: a `syscall` there
    /// would return to a non-canonical address and fault in ring 0.
    ExecutableAtUserTop {
        /// The segment's start.
        start: u64,
    },
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The Debug form names the field and the values; good enough for a log line.
        fmt::Debug::fmt(self, f)
    }
}
