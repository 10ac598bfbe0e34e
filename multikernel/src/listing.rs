//! The machine-wide process listing (`ps all`): every cluster answers with one record per
//! process, which the asking cluster prints tagged with the answering cluster.

use abi::ClusterId;
use abi::ProcessInfo;
use kernel::process::with_table;

use crate::outbox::Outbox;
use multikernel_proto::message::Message;

#[derive(Default)]
pub struct Listing;

impl Listing {
    /// Asks every other cluster for its processes.
    pub fn ask_all(&mut self, out: &mut Outbox) {
        out.broadcast(Message::ListRequest);
    }

    /// `from` asks for ours.
    pub fn on_request(&mut self, from: ClusterId, out: &mut Outbox) {
        for record in with_table(|table| table.list()) {
            out.send(
                from,
                Message::ListEntry {
                    record: record.to_bytes(),
                },
            );
        }
    }

    /// One of `from`'s processes.
    pub fn on_entry(&mut self, from: ClusterId, record: &[u8; 64]) {
        let tag = alloc::format!("[c{}] ", from.0);
        kernel::monitor::print_record(&ProcessInfo::from_bytes(record), &tag);
    }
}
