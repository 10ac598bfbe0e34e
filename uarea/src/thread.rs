//! The thread table: ids, states and saved user contexts.
//!
//! Only *user* state is saved: threads are frozen at the user/kernel
//! boundary, so no kernel stack holds anything worth moving. A thread that was
//! blocked in a syscall is rewound (`rip -= abi::conv::SYSCALL_INSN_LEN`,
//! arguments kept) and marked [`Thread::restart_syscall`], so it re-issues the
//! call after restore.

use core::fmt;

use abi::{ClusterId, Pid, Tid};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One thread of the process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    /// Id within the process.
    pub tid: Tid,
    /// Scheduling state.
    pub state: ThreadState,
    /// Saved user registers and FPU/SSE state.
    pub context: Context,
    /// The thread's syscall was interrupted and rewound; it re-issues it when
    /// it next runs. Only a `Ready` thread can carry it.
    pub restart_syscall: bool,
    /// The thread's user stack.
    pub stack: StackExtent,
}

/// Where a thread is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThreadState {
    /// In the run queue.
    Ready,
    /// On a core now (never in a frozen UArea).
    Running,
    /// Waiting in a syscall.
    Blocked(BlockReason),
    /// Finished with `thread_exit(code)`, waiting to be joined.
    Exited {
        /// The value passed to `thread_exit`.
        code: u64,
    },
}

/// Why a thread is blocked. Endpoints are named by the descriptor the
/// process holds (see [`crate::Endpoint::descriptor`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockReason {
    /// `sleep`: until the monotonic clock reaches `deadline_ns`.
    Sleep {
        /// `ClockId::Monotonic` deadline.
        deadline_ns: u64,
    },
    /// `thread_join(tid)`.
    Join {
        /// The thread waited for.
        tid: Tid,
    },
    /// `futex_wait` on the user word at `uaddr`.
    FutexWait {
        /// User virtual address of the futex word.
        uaddr: u64,
    },
    /// `mailbox_read` on an inbox.
    MailboxRead {
        /// Descriptor of the mailbox.
        descriptor: u32,
    },
    /// `mailbox_write` with the remote inbox full.
    MailboxWrite {
        /// Descriptor of the mailbox.
        descriptor: u32,
    },
    /// `portal_read`.
    PortalRead {
        /// Descriptor of the portal.
        descriptor: u32,
    },
    /// `portal_write` waiting for the receiver's `allow`.
    PortalWrite {
        /// Descriptor of the portal.
        descriptor: u32,
    },
    /// `sync_wait`.
    SyncWait {
        /// Descriptor of the sync point.
        descriptor: u32,
    },
    /// `wait` for a child (`None`: any child).
    ChildWait {
        /// The child waited for.
        pid: Option<Pid>,
    },
    /// Post-copy: waiting for a page still at the cluster the process left. Never in an
    /// image (a process with remote pages does not migrate; validation refuses it).
    RemotePage {
        /// The page.
        page: u64,
        /// The thread was in a system call that touched the page (it re-issues the call),
        /// rather than faulting on it (it re-executes the faulting instruction).
        syscall: bool,
    },
    /// `portal_write` to another cluster: the NoC's DMA engine reads the writer's own pages
    /// (held by the kernel) and the call returns with the engine's completion. Format 3.
    /// Never in a frozen image: a freeze waits until the write completed or failed.
    PortalDma {
        /// Descriptor of the portal.
        descriptor: u32,
    },
    /// `migrate` of the caller's own process: returns 0 on the destination once it moved,
    /// or the error at the source. The one blocked state a freeze keeps (format 3).
    Migrating {
        /// Where the call asked to go.
        destination: ClusterId,
    },
}

/// The user stack of a thread: `[base, base + size)` is mapped,
/// `[base - guard, base)` is left unmapped to catch overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackExtent {
    /// Lowest mapped address (page-aligned).
    pub base: u64,
    /// Mapped bytes (page multiple, non-zero).
    pub size: u64,
    /// Unmapped guard bytes below `base` (page multiple).
    pub guard: u64,
}

impl StackExtent {
    /// One past the highest stack address: the initial `rsp`.
    pub const fn top(&self) -> u64 {
        self.base.wrapping_add(self.size)
    }
}

/// Saved user-mode register state of one thread.
///
/// `rsp` is the *user* stack pointer; `rip` and `rflags` are what `sysretq`
/// or `iretq` return to. `fs_base`/`gs_base` are the user TLS bases
/// (`IA32_FS_BASE`, `IA32_KERNEL_GS_BASE` while in the kernel).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Context {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    /// FPU/MMX/SSE state.
    pub fxsave: FxSave,
}

/// `rflags` bit 1: always 1.
pub const RFLAGS_RESERVED_ONE: u64 = 1 << 1;
/// `rflags.IF`: a user thread always runs with interrupts enabled.
pub const RFLAGS_IF: u64 = 1 << 9;
/// Bits a user thread may have set in `rflags`: CF, 1, PF, AF, ZF, SF, TF,
/// IF, DF, OF, RF, AC, ID. Not IOPL, NT, VM, VIF, VIP: restoring those from a
/// forged image would hand user code I/O privilege or virtual-8086 mode
/// (Intel SDM Vol. 1 §3.4.3).
pub const RFLAGS_USER_MASK: u64 = 0x0000_0000_0025_0fd7;

impl Context {
    /// Initial context of a thread that starts at `entry` with `arg` in `rdi`
    /// and `rsp` at `stack_top` (rflags = IF | bit 1, default FPU state).
    pub fn new_user(entry: u64, arg: u64, stack_top: u64) -> Context {
        Context {
            rax: 0,
            rbx: 0,
            rcx: 0,
            rdx: 0,
            rsi: 0,
            rdi: arg,
            rbp: 0,
            rsp: stack_top,
            r8: 0,
            r9: 0,
            r10: 0,
            r11: 0,
            r12: 0,
            r13: 0,
            r14: 0,
            r15: 0,
            rip: entry,
            rflags: RFLAGS_IF | RFLAGS_RESERVED_ONE,
            fs_base: 0,
            gs_base: 0,
            fxsave: FxSave::INIT,
        }
    }
}

/// The 512-byte `FXSAVE` area (Intel SDM Vol. 1 §10.5.1), saved and restored
/// as opaque bytes; serialized as one byte string.
#[derive(Clone, PartialEq, Eq)]
pub struct FxSave(pub [u8; FxSave::SIZE]);

impl FxSave {
    /// Size of the area.
    pub const SIZE: usize = 512;
    /// Byte offset of `MXCSR`.
    pub const MXCSR_OFFSET: usize = 24;

    /// The state after `fninit` + default `MXCSR`: FCW = 0x037F, MXCSR =
    /// 0x1F80 (all exceptions masked, round to nearest).
    pub const INIT: FxSave = {
        let mut area = [0u8; Self::SIZE];
        area[0] = 0x7f;
        area[1] = 0x03;
        area[Self::MXCSR_OFFSET] = 0x80;
        area[Self::MXCSR_OFFSET + 1] = 0x1f;
        FxSave(area)
    };

    /// The saved `MXCSR`. `fxrstor` faults (#GP, in the kernel) if a reserved
    /// bit (16..32) is set, so [`crate::UArea::validate`] checks it.
    pub fn mxcsr(&self) -> u32 {
        let b = &self.0[Self::MXCSR_OFFSET..Self::MXCSR_OFFSET + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl Default for FxSave {
    fn default() -> Self {
        FxSave::INIT
    }
}

impl fmt::Debug for FxSave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FxSave {{ mxcsr: {:#x}, .. }}", self.mxcsr())
    }
}

impl Serialize for FxSave {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for FxSave {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FxVisitor;

        impl<'de> Visitor<'de> for FxVisitor {
            type Value = FxSave;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} bytes of FXSAVE area", FxSave::SIZE)
            }

            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<FxSave, E> {
                let area: [u8; FxSave::SIZE] = bytes
                    .try_into()
                    .map_err(|_| E::invalid_length(bytes.len(), &self))?;
                Ok(FxSave(area))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FxSave, A::Error> {
                let mut area = [0u8; FxSave::SIZE];
                for (i, byte) in area.iter_mut().enumerate() {
                    *byte = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(FxSave(area))
            }
        }

        deserializer.deserialize_bytes(FxVisitor)
    }
}
