//! The boot greeting: once every cluster has joined, each cluster sends "hello" to the next
//! one (k → k+1 mod N) over a mailbox and prints what it receives — a visible end-to-end
//! check of the NoC on `cargo xtask run --clusters N`.

use hal::noc::{ClusterId, PortId};

use super::{all_joined, cluster, cluster_count, mailbox};

/// Mailbox port reserved for the greeting.
pub const GREETING_PORT: PortId = PortId(0xFFF0);

struct Greeter {
    inbox: Option<mailbox::Mailbox>,
    sent: bool,
}

static GREETER: spin::Mutex<Greeter> = spin::Mutex::new(Greeter {
    inbox: None,
    sent: false,
});

/// Advances the greeting; called from the idle loop.
pub fn poll() {
    if !hal::noc::present() || cluster_count() < 2 {
        return;
    }
    let Some(mut greeter) = GREETER.try_lock() else {
        return;
    };
    if greeter.inbox.is_none() {
        greeter.inbox = mailbox::create(GREETING_PORT).ok();
    }
    let me = cluster();
    if !greeter.sent && all_joined() {
        let next = ClusterId((me.0 + 1) % cluster_count());
        let mut payload = [0u8; noc_proto::wire::MAILBOX_PAYLOAD];
        let text = alloc::format!("hello from cluster {}", me.0);
        payload[..text.len()].copy_from_slice(text.as_bytes());
        if let Ok(to) = mailbox::open(next, GREETING_PORT) {
            greeter.sent = mailbox::write(&to, &payload).is_ok();
        }
    }
    if let Some(inbox) = greeter.inbox.as_ref() {
        while let Ok(message) = mailbox::try_read(inbox) {
            let end = message
                .payload
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(message.payload.len());
            let text = core::str::from_utf8(&message.payload[..end]).unwrap_or("<not UTF-8>");
            hal::println!(
                "cluster {}: mailbox greeting from cluster {}: \"{text}\"",
                me.0,
                message.source.0
            );
        }
    }
}
