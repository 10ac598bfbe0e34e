//! Kills and mail that reach the source while its process migrates: held until the outcome
//! once the process is frozen (applied to the copy that survives), handed to the driver while
//! a live strategy's process still runs.

use abi::Pid;

use super::{InFlight, Source};
use crate::migrate::MailToken;

impl InFlight {
    /// Kills and mail for the process wait for the outcome: stop-and-copy from the start
    /// (it freezes at once), a live strategy only once frozen.
    pub(super) fn is_holding(&self) -> bool {
        !self.request.is_live() || self.frozen
    }
}

impl Source {
    /// A kill for `pid` arrived here. `true`: it is migrating, frozen, and the kill is held
    /// (applied once, to the copy that survives); `false`: not migrating, or still running
    /// (live, before the freeze): the driver applies it.
    pub fn hold_kill(&mut self, pid: Pid, code: i32) -> bool {
        match self.holding(pid) {
            Some(flight) => {
                flight.held_kill.get_or_insert(code);
                true
            }
            None => false,
        }
    }

    /// User mail for `pid` arrived here. `true`: it is migrating and the mail is held;
    /// `false`: the driver delivers or forwards it as usual.
    pub fn hold_mail(&mut self, pid: Pid, mail: MailToken) -> bool {
        match self.holding(pid) {
            Some(flight) => {
                flight.held_mail.push(mail);
                true
            }
            None => false,
        }
    }

    /// Whether `pid` is migrating from here and frozen (before the decision): kills and mail
    /// for it are held.
    pub fn holds(&self, pid: Pid) -> bool {
        self.in_flight
            .as_ref()
            .is_some_and(|f| f.request.pid == pid && f.is_holding())
    }

    /// Whether `pid` has a migration from here in flight (frozen or, live, still running).
    pub fn is_migrating(&self, pid: Pid) -> bool {
        self.in_flight
            .as_ref()
            .is_some_and(|f| f.request.pid == pid)
    }

    fn holding(&mut self, pid: Pid) -> Option<&mut InFlight> {
        self.in_flight
            .as_mut()
            .filter(|f| f.request.pid == pid && f.is_holding())
    }
}
