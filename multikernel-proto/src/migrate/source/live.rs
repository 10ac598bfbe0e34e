//! The live strategies' steps at the source (pre-copy, hybrid). The process is offered while
//! it still runs: after `Accept` the driver copies pages while it runs
//! ([`Action::StartPreCopy`]), and only then is it frozen for the final copy, which follows
//! the same path as stop-and-copy from the transfer on. Until the freeze nothing is held: a
//! kill or mail reaches the running process as usual, and a process that ends meanwhile ends
//! the migration (the driver reports it gone).

use alloc::vec::Vec;

use uarea::image::Manifest;

use super::{Phase, Source};
use crate::migrate::{Action, MigrateError};

impl Source {
    /// Live: the driver measured the running process for its offer (`Ok(manifest)`), or
    /// could not (it is gone, no memory...).
    pub fn on_surveyed(
        &mut self,
        sequence: u32,
        surveyed: Result<Manifest, MigrateError>,
        now_ns: u64,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(flight) = self.in_phase(sequence, Phase::Surveying) else {
            return actions;
        };
        match surveyed {
            Ok(manifest) => actions.push(flight.offer(manifest, now_ns)),
            Err(error) => self.abort(error, now_ns, &mut actions),
        }
        actions
    }

    /// Live: the copy while the process ran is over (`Ok`: freeze it for the final copy),
    /// or failed (the process ended, the link failed...).
    pub fn on_precopy_done(
        &mut self,
        sequence: u32,
        result: Result<(), MigrateError>,
        now_ns: u64,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(flight) = self.in_phase(sequence, Phase::PreCopying) else {
            return actions;
        };
        match result {
            Ok(()) => {
                flight.phase = Phase::Freezing;
                flight.progress_ns = now_ns;
                actions.push(Action::Freeze {
                    pid: flight.request.pid,
                    to: flight.request.to,
                    sequence,
                });
            }
            Err(error) => self.abort(error, now_ns, &mut actions),
        }
        actions
    }
}
