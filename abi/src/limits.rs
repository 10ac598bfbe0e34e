//! Per-process and per-cluster quotas: every kernel object a user program can make the kernel
//! create or keep is counted against one of these, so no sequence of user requests can fill
//! a kernel heap (`docs/abi.md`, "Limits"). Reaching one is an error code, never a panic.

/// Threads of one process, live or exited but not joined (`thread_create`: `EAGAIN`).
pub const THREADS_PER_PROCESS: usize = 256;
/// Endpoints of one process: mailbox, portal and sync descriptors together (`ENOSPC`).
pub const ENDPOINTS_PER_PROCESS: usize = 256;
/// Names standing for one process (`name_link`: `ENOSPC`).
pub const NAMES_PER_PROCESS: usize = 16;
/// Names in one cluster's replica of the name service (`name_link`: `ENOSPC`).
pub const NAMES_PER_CLUSTER: usize = 4096;
/// Messages queued on one inbox; further ones are dropped and counted.
pub const INBOX_MESSAGES: usize = 1024;
/// Messages queued on all the inboxes of one process; further ones are dropped and counted.
pub const QUEUED_MESSAGES_PER_PROCESS: usize = 4096;
/// Payload bytes queued on all the inboxes of one process.
pub const QUEUED_BYTES_PER_PROCESS: usize = QUEUED_MESSAGES_PER_PROCESS * 112;
/// Messages queued on all the inboxes of one cluster.
pub const QUEUED_MESSAGES_PER_CLUSTER: usize = 32 * 1024;
/// Mappings (segments: program, stacks, `mmap` regions) of one process (`mmap`, `munmap`
/// splitting one, `thread_create`: `ENOMEM`).
pub const MAPPINGS_PER_PROCESS: usize = 1024;
/// Bytes of address space one process may map in all (`mmap`: `ENOMEM`). Pages cost a frame
/// only when touched.
pub const MAPPED_BYTES_PER_PROCESS: u64 = 1 << 44;
/// Children of one process not yet reaped, here or on other clusters (`spawn`: `EAGAIN`).
pub const CHILDREN_PER_PROCESS: usize = 64;
/// Processes on one cluster, zombies included (`spawn`: `EAGAIN`).
pub const PROCESSES_PER_CLUSTER: usize = 512;
/// Names one cluster's replica keeps in all, its own links and those arriving from the other
/// clusters together; a link announced by another cluster beyond it is not applied here (and
/// counted), so the other clusters cannot fill this kernel's heap.
pub const NAMES_PER_REPLICA: usize = 4 * NAMES_PER_CLUSTER;
/// Requests a cluster's kernel keeps queued for its daemons (`kernel::requests`). A user call
/// that would post one more (`spawn` elsewhere, `kill` elsewhere, `name_link`,
/// `name_unlink`) gets `EAGAIN`; the kernel's own (exit reports) are bounded by the processes.
pub const REQUESTS_QUEUED_PER_CLUSTER: usize = 1024;
/// Bytes of the kernel heap that user-driven objects may bring it to (of its 64 MiB): past
/// it, queueing a message, linking a name or posting a request is refused as if its quota
/// were full, so the kernel keeps a reserve for its own work (the daemons, migrations).
pub const KERNEL_HEAP_BUDGET: usize = 48 << 20;
/// Longest console line (`write`) printed as one `[pPID NAME] line`; a longer one goes on
/// in the next tagged line, none of its bytes lost.
pub const CONSOLE_LINE_BYTES: usize = 4096;
