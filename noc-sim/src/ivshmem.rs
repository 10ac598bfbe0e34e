//! The ivshmem server protocol (QEMU `docs/specs/ivshmem-spec.rst`), both ends.
//!
//! Every message is one little-endian `i64`, optionally with one file
//! descriptor as `SCM_RIGHTS` ancillary data. The server sends, in order:
//! the protocol version `0`; the client's peer id (no fd); `-1` with the
//! shared-memory fd; then "peer id + eventfd" messages, one per vector, for
//! each peer the client may ring (the N-th message for a peer carries its
//! vector N-1); finally the client's own id with one eventfd per vector (the
//! fds QEMU turns into MSI-X interrupts). Later, "id + fd" announces a new
//! peer and "id without fd" says that peer left. QEMU's realize blocks until
//! it has the shared memory; the rest is processed asynchronously.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// The only protocol version QEMU accepts.
pub const PROTOCOL_VERSION: i64 = 0;

/// Sends one protocol message: `value` and at most one fd.
pub fn send_msg(sock: &UnixStream, value: i64, fd: Option<RawFd>) -> io::Result<()> {
    let bytes = value.to_le_bytes();
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // Room for one cmsg carrying one int, 8-aligned.
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(mem::size_of::<RawFd>() as u32) } as usize;
        assert!(space <= mem::size_of_val(&cbuf));
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points at `space` zeroed, aligned bytes, so the
        // first header exists and has room for one fd.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        }
    }
    loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n as usize != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short ivshmem message",
            ));
        }
        return Ok(());
    }
}

/// Receives one protocol message (client side; used by the fake client).
/// `Ok(None)` on EOF.
pub fn recv_msg(sock: &UnixStream) -> io::Result<Option<(i64, Option<OwnedFd>)>> {
    let mut bytes = [0u8; 8];
    let mut got = 0;
    let mut fd_out = None;
    while got < bytes.len() {
        let mut iov = libc::iovec {
            // SAFETY: got < 8, so the pointer stays inside `bytes`.
            iov_base: unsafe { bytes.as_mut_ptr().add(got) }.cast(),
            iov_len: bytes.len() - got,
        };
        let mut cbuf = [0u64; 8];
        // SAFETY: all-zero msghdr is valid.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&cbuf);
        // SAFETY: buffers live across the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        got += n as usize;
        // SAFETY: the kernel filled msg_control; CMSG_* walk it within
        // msg_controllen.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let nfds =
                        ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / mem::size_of::<RawFd>();
                    for i in 0..nfds {
                        let fd =
                            std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>().add(i));
                        // We own every received fd; keep the first, close others.
                        let owned = OwnedFd::from_raw_fd(fd);
                        if fd_out.is_none() {
                            fd_out = Some(owned);
                        }
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
    }
    Ok(Some((i64::from_le_bytes(bytes), fd_out)))
}

/// A non-blocking, close-on-exec eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; result checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Rings an eventfd (adds 1). A full counter (EAGAIN) still means "pending".
pub fn notify(fd: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from a live buffer.
    unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), 8) };
}

/// Clears an eventfd; returns whether it had been rung. Needs O_NONBLOCK.
pub fn drain(fd: &OwnedFd) -> bool {
    let mut v = [0u8; 8];
    // SAFETY: reads 8 bytes into a live buffer.
    let n = unsafe { libc::read(fd.as_raw_fd(), v.as_mut_ptr().cast(), 8) };
    n == 8
}

/// Waits up to `timeout_ms` for `fd` to become readable.
pub fn wait_readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    n > 0 && p.revents & libc::POLLIN != 0
}
