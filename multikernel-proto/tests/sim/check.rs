//! The invariants: after every step, and once the calm phase reached quiescence.

use abi::Pid;

use super::model::*;
use super::World;

/// Never two runnable copies of a pid; a killed process never runs again.
pub fn every_step(world: &World) -> Result<(), String> {
    for (pid, info) in &world.processes {
        let running: Vec<u16> = running_on(world, *pid);
        if running.len() > 1 {
            return Err(format!(
                "two running copies of {pid}: on clusters {running:?}"
            ));
        }
        if info.ended && !running.is_empty() {
            return Err(format!("{pid} runs on c{} after it was killed", running[0]));
        }
        if info.kills_applied > 1 {
            return Err(format!(
                "a kill took effect {} times on {pid}",
                info.kills_applied
            ));
        }
    }
    Ok(())
}

fn running_on(world: &World, pid: Pid) -> Vec<u16> {
    world
        .clusters
        .iter()
        .filter(|c| {
            c.alive
                && c.processes
                    .get(&pid)
                    .is_some_and(|p| p.state == State::Running)
        })
        .map(|c| c.id.0)
        .collect()
}

/// The end of a schedule: one copy or a named loss; every request answered once; every mail
/// delivered exactly once to the survivor; every kill applied to it.
pub fn at_quiescence(world: &World) -> Result<(), String> {
    every_step(world)?;
    for (key, request) in &world.requests {
        if world.alive(key.0) && request.reports != 1 {
            return Err(format!(
                "request #{} of c{} for {} ended with {} reports",
                key.1 .0, key.0 .0, request.pid, request.reports
            ));
        }
    }
    for (pid, info) in &world.processes {
        let copies: Vec<(u16, &Copy)> = world
            .clusters
            .iter()
            .filter(|c| c.alive)
            .filter_map(|c| c.processes.get(pid).map(|p| (c.id.0, p)))
            .collect();
        let survivor = match copies.as_slice() {
            [] if info.ended => None,
            [] => match info.excuse {
                Some(_) => None,
                None => return Err(format!("{pid} lost outside the named cases")),
            },
            [(_, copy)] if copy.state == State::Running && !info.ended => Some(*copy),
            _ => return Err(format!("{pid} left as {copies:?} (ended: {})", info.ended)),
        };
        let Some(survivor) = survivor else {
            continue;
        };
        for (id, (mail_pid, whereabouts)) in &world.mails {
            if mail_pid != pid {
                continue;
            }
            let count = survivor.mail.iter().filter(|m| *m == id).count();
            let lost = *whereabouts == Whereabouts::LostWithCluster;
            if count > 1 || (count == 0 && !lost) {
                return Err(format!(
                    "mail m{id} for {pid} delivered {count} times to the survivor ({whereabouts:?})"
                ));
            }
        }
        for (id, (kill_pid, whereabouts)) in &world.kills {
            if kill_pid == pid && *whereabouts != Whereabouts::LostWithCluster {
                return Err(format!(
                    "kill k{id} for {pid} never took effect ({whereabouts:?})"
                ));
            }
        }
    }
    Ok(())
}
