//! Error codes and the return-value encoding.
//!
//! A syscall returns one machine word in `rax`. As on Linux, a value `>= 0` is
//! the call's result and a value `< 0` is a negated [`Errno`]. The numeric
//! values are Linux's (`asm-generic/errno-base.h`, `errno.h`) so that a
//! reader, `strace`-style tooling or a ported program recognises them.
//!
//! [`Errno::ERESTART`] is kernel-internal: it marks a blocked syscall that a
//! migration freeze interrupted. The kernel rewinds the thread to re-issue the
//! call after restore; user space never sees this code.

use core::fmt;

macro_rules! errnos {
    ($( $(#[$doc:meta])* $variant:ident = $num:literal, $text:literal; )*) => {
        /// A kernel error code. The discriminant is the positive code; the
        /// syscall returns its negation (see [`SyscallResult`]).
        #[repr(i64)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Errno {
            $( $(#[$doc])* $variant = $num, )*
        }

        impl Errno {
            /// Every error code, in numeric order.
            pub const ALL: &'static [Errno] = &[$(Errno::$variant,)*];

            /// The error with positive code `code`, if there is one.
            pub const fn from_code(code: i64) -> Option<Errno> {
                match code {
                    $( $num => Some(Errno::$variant), )*
                    _ => None,
                }
            }

            /// The symbolic name (`"EFAULT"`).
            pub const fn name(self) -> &'static str {
                match self {
                    $( Errno::$variant => stringify!($variant), )*
                }
            }

            /// A one-line description.
            pub const fn description(self) -> &'static str {
                match self {
                    $( Errno::$variant => $text, )*
                }
            }
        }
    };
}

errnos! {
    /// The caller may not do this to that target (see "privileges" in `docs/abi.md`).
    EPERM = 1, "operation not permitted";
    /// No such name (program image, service name).
    ENOENT = 2, "no such file or name";
    /// No such process or thread.
    ESRCH = 3, "no such process";
    /// The call was interrupted (a killed process's blocked threads).
    EINTR = 4, "interrupted system call";
    /// A transfer failed on its way (the NoC's DMA engine reported corruption or a vanished
    /// peer): nothing was delivered.
    EIO = 5, "input/output error";
    /// Argument block too large (spawn arguments).
    E2BIG = 7, "argument list too long";
    /// Not an open endpoint descriptor, or the wrong kind of descriptor.
    EBADF = 9, "bad descriptor";
    /// `wait`: no such child.
    ECHILD = 10, "no child processes";
    /// Try again: futex value changed, resource temporarily exhausted.
    EAGAIN = 11, "resource temporarily unavailable";
    /// Out of memory (frames, kernel heap, address space).
    ENOMEM = 12, "out of memory";
    /// A user pointer/length is not inside the caller's mappings with the needed permission.
    EFAULT = 14, "bad address";
    /// The resource is in use (port already bound, thread already joined).
    EBUSY = 16, "device or resource busy";
    /// Already exists (mailbox/portal already created on this port).
    EEXIST = 17, "already exists";
    /// An argument is out of range or inconsistent.
    EINVAL = 22, "invalid argument";
    /// No space left in a table (endpoints, threads, processes).
    ENOSPC = 28, "no space left";
    /// A name is longer than its limit.
    ENAMETOOLONG = 36, "name too long";
    /// No such syscall, or a reserved one not implemented yet.
    ENOSYS = 38, "function not implemented";
    /// A message is larger than the transport allows.
    EMSGSIZE = 90, "message too long";
    /// A timed wait expired.
    ETIMEDOUT = 110, "timed out";
    /// No inbox on that port: the receiver exists but does not listen there.
    ECONNREFUSED = 111, "no inbox on that port";
    /// The cluster a peer lived on went down (a child there is lost, a message undelivered).
    EHOSTDOWN = 112, "cluster went down";
    /// The destination cluster is not reachable over the NoC.
    EHOSTUNREACH = 113, "cluster unreachable";
    /// Kernel-internal: the syscall was interrupted by a migration freeze and
    /// will be re-issued after restore. Never returned to user space.
    ERESTART = 512, "restart syscall (kernel-internal)";
}

impl Errno {
    /// The positive code (`EFAULT.code() == 14`).
    pub const fn code(self) -> i64 {
        self as i64
    }

    /// The value returned in `rax` for this error (`-code`).
    pub const fn as_return(self) -> isize {
        -(self as i64 as isize)
    }

    /// Whether user space may ever observe this code. Only
    /// [`Errno::ERESTART`] is internal.
    pub const fn is_user_visible(self) -> bool {
        !matches!(self, Errno::ERESTART)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.description())
    }
}

/// The raw value of `rax` after a syscall: `>= 0` a result, `< 0` a negated
/// [`Errno`].
///
/// Results are at most `isize::MAX`; every value a Tessera syscall returns
/// (user addresses below 2^47, counts, ids) fits. An unknown negative code
/// (kernel and userland built from different ABI versions) decodes as
/// [`Errno::ENOSYS`]; [`SyscallResult::raw`] keeps the exact value.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyscallResult(isize);

impl SyscallResult {
    /// Largest value a successful call can return.
    pub const MAX_VALUE: usize = isize::MAX as usize;

    /// A success carrying `value`. A value above [`Self::MAX_VALUE`] is an ABI
    /// violation by the kernel; it is encoded as `EINVAL` rather than being
    /// misread as an error code.
    pub const fn ok(value: usize) -> Self {
        if value > Self::MAX_VALUE {
            Self::err(Errno::EINVAL)
        } else {
            SyscallResult(value as isize)
        }
    }

    /// A failure with `errno`.
    pub const fn err(errno: Errno) -> Self {
        SyscallResult(errno.as_return())
    }

    /// Encode a kernel-side result.
    pub const fn encode(result: Result<usize, Errno>) -> Self {
        match result {
            Ok(value) => Self::ok(value),
            Err(errno) => Self::err(errno),
        }
    }

    /// Wrap the raw value of `rax`.
    pub const fn from_raw(raw: isize) -> Self {
        SyscallResult(raw)
    }

    /// The raw value for `rax`.
    pub const fn raw(self) -> isize {
        self.0
    }

    /// Whether this is a failure.
    pub const fn is_err(self) -> bool {
        self.0 < 0
    }

    /// Decode into a `Result` (user side).
    pub const fn decode(self) -> Result<usize, Errno> {
        if self.0 >= 0 {
            Ok(self.0 as usize)
        } else {
            // `wrapping_neg` so that `isize::MIN` cannot overflow.
            match Errno::from_code(self.0.wrapping_neg() as i64) {
                Some(errno) => Err(errno),
                None => Err(Errno::ENOSYS),
            }
        }
    }
}

impl From<Result<usize, Errno>> for SyscallResult {
    fn from(result: Result<usize, Errno>) -> Self {
        SyscallResult::encode(result)
    }
}

impl From<SyscallResult> for Result<usize, Errno> {
    fn from(result: SyscallResult) -> Self {
        result.decode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_errno_round_trips_through_rax() {
        for &errno in Errno::ALL {
            let encoded = SyscallResult::encode(Err(errno));
            assert!(encoded.is_err());
            assert_eq!(encoded.raw(), -(errno.code() as isize));
            assert_eq!(SyscallResult::from_raw(encoded.raw()).decode(), Err(errno));
            assert_eq!(Errno::from_code(errno.code()), Some(errno));
        }
    }

    #[test]
    fn values_round_trip() {
        for value in [0, 1, 42, 0x7fff_ffff_f000, SyscallResult::MAX_VALUE] {
            let encoded = SyscallResult::encode(Ok(value));
            assert!(!encoded.is_err());
            assert_eq!(encoded.decode(), Ok(value));
        }
    }

    #[test]
    fn oversized_value_is_not_misread_as_errno() {
        assert_eq!(SyscallResult::ok(usize::MAX).decode(), Err(Errno::EINVAL));
    }

    #[test]
    fn unknown_negative_codes_decode_as_enosys() {
        for raw in [-6, -1000, isize::MIN] {
            assert_eq!(SyscallResult::from_raw(raw).decode(), Err(Errno::ENOSYS));
            assert_eq!(SyscallResult::from_raw(raw).raw(), raw);
        }
    }

    #[test]
    fn codes_match_linux() {
        assert_eq!(Errno::EPERM.code(), 1);
        assert_eq!(Errno::EIO.code(), 5);
        assert_eq!(Errno::EFAULT.code(), 14);
        assert_eq!(Errno::EINVAL.code(), 22);
        assert_eq!(Errno::ENOSYS.code(), 38);
        assert_eq!(Errno::ETIMEDOUT.code(), 110);
        assert_eq!(Errno::ERESTART.code(), 512); // Linux ERESTARTSYS
    }

    #[test]
    fn only_restart_is_internal() {
        for &errno in Errno::ALL {
            assert_eq!(errno.is_user_visible(), errno != Errno::ERESTART);
        }
    }

    #[test]
    fn codes_are_unique_and_sorted() {
        for pair in Errno::ALL.windows(2) {
            assert!(pair[0].code() < pair[1].code());
        }
    }
}
