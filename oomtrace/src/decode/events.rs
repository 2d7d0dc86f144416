//! The records around a kill: a SIGKILL and its sender, a victim's exit,
//! reclaim pressure, the end of a group kill.

use oomtrace_common::{
    IncidentRecord, OutcomeRecord, PressureRecord, SigkillRecord, cause, reaper, valid,
};

use super::{comm, memcg};
use crate::decode::Memcg;
pub use crate::report::Reaper;

/// A task as a SIGKILL record names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub pid: Option<u32>,
    pub tgid: Option<u32>,
    pub comm: Option<Vec<u8>>,
    pub memcg: Option<Memcg>,
}

/// A SIGKILL and who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sigkill {
    pub boot_ns: u64,
    /// `si_code`.
    pub code: i32,
    pub group: bool,
    pub target: Task,
    pub sender: Task,
    /// The last SIGTERM the target's process was sent before, if noted.
    pub sigterm: Option<Sigterm>,
}

/// A SIGTERM noted in the kernel before a SIGKILL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sigterm {
    pub boot_ns: u64,
    pub sender_pid: u32,
    pub sender_tgid: u32,
    /// Empty when the kernel could not read it.
    pub sender_comm: Vec<u8>,
}

impl Sigkill {
    pub(super) fn from_record(r: &SigkillRecord) -> Sigkill {
        let has = |bit: u32| r.valid & bit != 0;
        Sigkill {
            boot_ns: r.boot_ns,
            code: r.code,
            group: r.group != 0,
            target: Task {
                pid: has(valid::VICTIM_PID).then_some(r.target.pid),
                tgid: has(valid::VICTIM_TGID).then_some(r.target.tgid),
                comm: has(valid::VICTIM_COMM).then(|| comm(&r.target)),
                memcg: has(valid::VICTIM_MEMCG).then(|| memcg(&r.target.memcg)),
            },
            sender: Task {
                pid: Some(r.sender.pid),
                tgid: Some(r.sender.tgid),
                comm: has(valid::TRIGGER_COMM).then(|| comm(&r.sender)),
                memcg: has(valid::TRIGGER_MEMCG).then(|| memcg(&r.sender.memcg)),
            },
            sigterm: (r.sigterm_found != 0).then(|| {
                let comm = &r.sigterm.sender_comm;
                let end = comm.iter().position(|b| *b == 0).unwrap_or(comm.len());
                Sigterm {
                    boot_ns: r.sigterm.boot_ns,
                    sender_pid: r.sigterm.sender_pid,
                    sender_tgid: r.sigterm.sender_tgid,
                    sender_comm: comm[..end].to_vec(),
                }
            }),
        }
    }
}

/// Why a watched task was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillCause {
    /// The OOM killer chose it.
    Oom,
    /// A SIGKILL from elsewhere (`--sigkill`).
    Sigkill,
}

/// A watched victim's exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub pid: u32,
    pub tgid: Option<u32>,
    pub cause: KillCause,
    pub kill_boot_ns: u64,
    pub exit_boot_ns: u64,
    /// The signal that ended it; `None` when its exit code was unreadable.
    pub exit_signal: Option<u32>,
    pub reaper: Reaper,
    /// When the OOM reaper finished, if it did.
    pub reaped_boot_ns: Option<u64>,
}

impl Outcome {
    pub(super) fn from_record(o: &OutcomeRecord) -> Outcome {
        let reaper = match o.state.reaper {
            reaper::REAPED => Reaper::Reaped,
            reaper::SKIPPED => Reaper::Skipped,
            reaper::STARTED => Reaper::Started,
            _ => Reaper::NotRun,
        };
        Outcome {
            pid: o.pid,
            tgid: (o.state.tgid != 0).then_some(o.state.tgid),
            cause: if o.state.cause == cause::SIGKILL {
                KillCause::Sigkill
            } else {
                KillCause::Oom
            },
            kill_boot_ns: o.state.kill_ns,
            exit_boot_ns: o.exit_ns,
            // The low 7 bits of exit_code; u32::MAX when unreadable.
            exit_signal: (o.exit_code != u32::MAX).then_some(o.exit_code & 0x7f),
            reaper,
            reaped_boot_ns: (reaper == Reaper::Reaped).then_some(o.state.reap_end_ns),
        }
    }
}

/// A memcg whose tasks stalled in reclaim past the `--pressure` threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pressure {
    pub boot_ns: u64,
    pub memcg_id: u64,
    /// In the current one-second bucket.
    pub stalls: u64,
    pub stall_ns: u64,
    pub reclaimed_pages: u64,
    pub threshold_ns: u64,
}

impl Pressure {
    pub(super) fn from_record(p: &PressureRecord) -> Pressure {
        Pressure {
            boot_ns: p.boot_ns,
            memcg_id: p.memcg_id,
            stalls: p.stalls,
            stall_ns: p.stall_ns,
            reclaimed_pages: p.reclaimed_pages,
            threshold_ns: p.threshold_ns,
        }
    }
}

/// The end of one OOM kill (`oom_kill_process()` returned): how many tasks
/// it killed, its memory.oom.group included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentEnd {
    /// The `IncidentRef::id` of its kill records.
    pub incident_ns: u64,
    pub victims: u32,
}

impl IncidentEnd {
    pub(super) fn from_record(r: &IncidentRecord) -> IncidentEnd {
        IncidentEnd {
            incident_ns: r.incident_ns,
            victims: r.victims,
        }
    }
}

#[cfg(test)]
mod tests {
    use oomtrace_common::{VictimState, kind};

    use super::{super::testing::*, *};
    use crate::decode::{Event, entry};

    fn outcome(state: VictimState, exit_code: u32) -> Outcome {
        let record = OutcomeRecord {
            kind: kind::OOM_OUTCOME,
            state,
            exit_ns: 5_000,
            pid: 42,
            exit_code,
            ..OutcomeRecord::default()
        };
        match entry(&bytes_of(&record)).map(|d| d.event) {
            Ok(Event::Outcome(o, None)) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_exit_reads_its_signal_reaper_and_cause() {
        let reaped = outcome(
            VictimState {
                kill_ns: 1_000,
                reap_end_ns: 3_000,
                tgid: 42,
                reaper: reaper::REAPED,
                cause: cause::OOM_KILL,
                ..VictimState::default()
            },
            9 | 0x80,
        );
        assert_eq!(
            reaped,
            Outcome {
                pid: 42,
                tgid: Some(42),
                cause: KillCause::Oom,
                kill_boot_ns: 1_000,
                exit_boot_ns: 5_000,
                exit_signal: Some(9),
                reaper: Reaper::Reaped,
                reaped_boot_ns: Some(3_000),
            },
            "the core-dump bit is not the signal"
        );
        let other = outcome(
            VictimState {
                reap_end_ns: 3_000,
                reaper: reaper::SKIPPED,
                cause: cause::SIGKILL,
                ..VictimState::default()
            },
            u32::MAX,
        );
        assert_eq!(
            (
                other.tgid,
                other.cause,
                other.exit_signal,
                other.reaper,
                other.reaped_boot_ns
            ),
            (None, KillCause::Sigkill, None, Reaper::Skipped, None)
        );
        for (raw, reaper) in [(reaper::STARTED, Reaper::Started), (7, Reaper::NotRun)] {
            let state = VictimState {
                reaper: raw,
                ..VictimState::default()
            };
            assert_eq!(outcome(state, 9).reaper, reaper);
        }
    }

    #[test]
    fn pressure_and_incident_ends_carry_their_figures() {
        let p = PressureRecord {
            kind: kind::MEMCG_PRESSURE,
            boot_ns: 7,
            memcg_id: 9,
            stalls: 3,
            stall_ns: 150_000_000,
            reclaimed_pages: 12,
            threshold_ns: 100_000_000,
            ..PressureRecord::default()
        };
        assert_eq!(
            entry(&bytes_of(&p)).map(|d| d.event),
            Ok(Event::Pressure(Pressure {
                boot_ns: 7,
                memcg_id: 9,
                stalls: 3,
                stall_ns: 150_000_000,
                reclaimed_pages: 12,
                threshold_ns: 100_000_000,
            }))
        );
        let end = IncidentRecord {
            kind: kind::OOM_INCIDENT,
            victims: 3,
            incident_ns: 14_533_472_050,
        };
        assert_eq!(
            entry(&bytes_of(&end)).map(|d| d.event),
            Ok(Event::IncidentEnd(IncidentEnd {
                incident_ns: 14_533_472_050,
                victims: 3
            }))
        );
    }
}
