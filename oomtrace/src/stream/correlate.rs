//! Which records to write, and when. A pure function of typed events and
//! the time they arrive: it folds the OOM killer's own SIGKILL into its
//! kill, lets a kill wait for its victim's exit (and the command line read
//! then), fills a group kill's victim count from its end (or, without
//! fentry, ties a group kill's records into one incident from the sequence
//! of mark_victim events), and applies `--count` and the filters. The
//! ring-buffer loop only feeds it.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use crate::{
    decode::{Cmdline, IncidentEnd},
    enrich::{attach_runtime, fate},
    filter::Filter,
    report::{
        CapturedAt, IncidentBasis, IncidentReport, KillReport, OutcomeReport, PressureReport,
        RecordType, SentBy, SigkillReport,
    },
};

/// How long a kill record waits for its victim's exit when the victim did
/// not run into the OOM itself. A SIGKILLed task exits within milliseconds
/// unless stuck in the kernel, which the record must not wait for.
pub const WAIT_FOR_EXIT: Duration = Duration::from_millis(500);

/// How long a kill waits for the end of its incident from fentry (the
/// fexit of `oom_kill_process()`, which comes right after the kernel has
/// marked every victim). Normally microseconds; longer than
/// [`WAIT_FOR_EXIT`] because under emulation (the arm64 VMs) a group
/// kill's marking and logging took more than that once, and the records
/// went out without their victim count. Only a lost fexit record makes a
/// kill wait this long.
pub const WAIT_FOR_INCIDENT: Duration = Duration::from_secs(3);

/// How long a kernel SIGKILL waits for its OOM kill record. The OOM
/// killer's SIGKILL and mark_victim happen microseconds apart on one CPU;
/// records from different CPUs may reach the ring buffer out of order.
pub const HOLD: Duration = Duration::from_millis(20);

/// Without fentry, how far apart (kernel time) two mark_victim events of
/// one OOM-invoking task may be to count as one memory.oom.group kill. The
/// kernel marks the group's members in one loop under `oom_lock`, one
/// "Killed process" line each (not ratelimited; on a slow serial console
/// about 15 ms per line); a second, separate OOM kill must first wait for
/// the previous victim to exit or be reaped.
pub const GROUP_GAP_NS: u64 = 100_000_000;

/// How long a record of a possible group kill waits, after the last
/// member arrived, for more members before its incident is closed.
pub const GROUP_WINDOW: Duration = Duration::from_millis(100);

/// A record to write, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Kill(Box<KillReport>),
    Outcome(OutcomeReport),
    Sigkill(Box<SigkillReport>),
    Pressure(Box<PressureReport>),
}

pub struct Correlator {
    filter: Filter,
    /// `--count`: stop after this many kill records.
    count: Option<u64>,
    kills_written: u64,
    /// The exit hook is attached: a victim's exit will be reported.
    exits_traced: bool,
    /// SIGKILLs from the kernel, held until their OOM kill record shows
    /// they were the OOM killer's (then dropped: one kill, one record).
    held: VecDeque<Held>,
    /// Kill records in arrival order, the first ones possibly waiting for
    /// their victim's exit or their incident's end.
    kills: VecDeque<PendingKill>,
    /// A group kill seen through its mark_victim events, still open.
    group: Option<OpenGroup>,
    /// OOM victims' exits that came before their kill record: since 6.16
    /// the exit hook runs before exit_mm(), within microseconds of the
    /// SIGKILL, and can commit its record while mark_victim's programs
    /// still run. Held for their kill record, written alone after
    /// [`EARLY_EXIT_WAIT`].
    early: VecDeque<EarlyExit>,
}

/// An OOM victim's exit without its kill record yet.
struct EarlyExit {
    until: Instant,
    report: OutcomeReport,
    cmdline: Option<Cmdline>,
}

/// How long an OOM victim's exit waits for its kill record: the kernel
/// commits that within microseconds (a kill record the ring buffer refused
/// is counted as lost; its exit is then written alone).
const EARLY_EXIT_WAIT: Duration = Duration::from_millis(50);

/// Early exits kept at most: one per victim of the kills in progress.
const EARLY_EXITS_KEPT: usize = 64;

/// An incident put together from the sequence of mark_victim events.
struct OpenGroup {
    id: u64,
    trigger_pid: u32,
    domain: Option<u64>,
    chosen_pid: u32,
    last_boot_ns: u64,
    members: u32,
    closes: Instant,
}

/// A SI_KERNEL SIGKILL waiting to see whether an OOM kill explains it.
struct Held {
    until: Instant,
    report: SigkillReport,
}

struct PendingKill {
    /// Written when its command line is in, or at `until` without it.
    ready: bool,
    until: Instant,
    /// When it came: its wait for the victim's exit ends [`WAIT_FOR_EXIT`]
    /// after, whatever its incident's end took.
    received: Instant,
    report: KillReport,
    /// The victim's exit, written right after its kill.
    outcome: Option<OutcomeReport>,
    /// The incident whose end (and victim count) it waits for.
    incident: Option<u64>,
}

impl Correlator {
    pub fn new(filter: Filter, count: Option<u64>, exits_traced: bool) -> Correlator {
        Correlator {
            filter,
            count,
            kills_written: 0,
            exits_traced,
            held: VecDeque::new(),
            kills: VecDeque::new(),
            group: None,
            early: VecDeque::new(),
        }
    }

    /// `--count` kills are written: nothing more will be.
    pub fn done(&self) -> bool {
        self.count.is_some_and(|n| self.kills_written >= n)
    }

    /// When something held is due, if anything is held.
    pub fn next_release(&self) -> Option<Instant> {
        let sigkill = self.held.front().map(|h| h.until);
        let kill = self.kills.front().map(|k| k.until);
        let group = self.group.as_ref().map(|g| g.closes);
        let early = self.early.front().map(|e| e.until);
        sigkill
            .into_iter()
            .chain(kill)
            .chain(group)
            .chain(early)
            .min()
    }

    /// An OOM kill the kernel kills no group for; `has_cmdline`: the
    /// victim's command line came with it.
    #[cfg(test)]
    pub fn kill(&mut self, now: Instant, report: KillReport, has_cmdline: bool) -> Vec<Record> {
        self.kill_in_oom(now, report, has_cmdline, Some(false))
    }

    /// An OOM kill, with what the kernel side read of memory.oom.group
    /// (`Some(false)`: the kernel does not kill the victim's group, so no
    /// other record can be of its incident).
    pub fn kill_in_oom(
        &mut self,
        now: Instant,
        mut report: KillReport,
        has_cmdline: bool,
        oom_group: Option<bool>,
    ) -> Vec<Record> {
        if report.incident.is_none() {
            self.sequence(now, &mut report, oom_group);
        }
        // Its incident's end (fexit, or the sequence closing) is awaited.
        let incident = report
            .incident
            .as_ref()
            .filter(|i| i.victims.is_none())
            .map(|i| i.id);
        // Its SIGKILL was the OOM killer's: not a second record.
        let victim = report.victim.tgid.or(report.victim.pid);
        self.held
            .retain(|h| h.report.target.tgid.is_none() || h.report.target.tgid != victim);
        // Its victim's exit may have come first (see `early`).
        let early = self
            .early
            .iter()
            .position(|e| {
                Some(e.report.victim.pid) == report.victim.pid
                    && e.report.kill_boot_ns == report.envelope.boot_ns
            })
            .and_then(|at| self.early.remove(at));
        let mut outcome = None;
        if let Some(exit) = early {
            if let Some(cmdline) = &exit.cmdline {
                attach_runtime(&mut report, cmdline, CapturedAt::Exit);
            }
            outcome = Some(exit.report);
        }
        let wait =
            outcome.is_none() && !has_cmdline && self.exits_traced && report.victim.pid.is_some();
        // A sequence incident closes by the group window: only fentry's
        // needs the longer wait.
        let from_fentry = incident.is_some()
            && report.incident.as_ref().and_then(|i| i.basis)
                == Some(IncidentBasis::OomKillProcess);
        self.kills.push_back(PendingKill {
            ready: !wait,
            until: now
                + if from_fentry {
                    WAIT_FOR_INCIDENT
                } else {
                    WAIT_FOR_EXIT
                },
            received: now,
            incident,
            report,
            outcome,
        });
        self.write_kills(now, false)
    }

    /// Places a kill without an incident from fentry in one from the
    /// sequence of mark_victim events: the one open if this kill follows
    /// its last member (same OOM-invoking task, same or unknown OOM domain,
    /// within [`GROUP_GAP_NS`]), else a new one with this kill as its
    /// chosen victim. Closes the open one it does not join.
    fn sequence(&mut self, now: Instant, report: &mut KillReport, oom_group: Option<bool>) {
        let boot_ns = report.envelope.boot_ns;
        let trigger_pid = report.trigger.pid;
        let domain = report.oom_memcg.as_ref().map(|m| m.id);
        let joins = self.group.as_ref().is_some_and(|g| {
            g.trigger_pid == trigger_pid
                && (g.domain.is_none() || domain.is_none() || g.domain == domain)
                && boot_ns >= g.last_boot_ns
                && boot_ns - g.last_boot_ns <= GROUP_GAP_NS
                && oom_group != Some(false)
        });
        if joins && let Some(group) = self.group.as_mut() {
            group.members += 1;
            group.last_boot_ns = boot_ns;
            group.closes = now + GROUP_WINDOW;
            group.domain = group.domain.or(domain);
            report.incident = Some(IncidentReport {
                id: group.id,
                victims: None,
                seq: group.members,
                chosen_pid: group.chosen_pid,
                group_member: true,
                basis: Some(IncidentBasis::MarkVictimSequence),
            });
            return;
        }
        self.close_group();
        let chosen_pid = report.victim.tgid.or(report.victim.pid).unwrap_or(0);
        let alone = oom_group == Some(false);
        report.incident = Some(IncidentReport {
            id: boot_ns,
            victims: alone.then_some(1),
            seq: 1,
            chosen_pid,
            group_member: false,
            basis: Some(IncidentBasis::MarkVictimSequence),
        });
        if !alone {
            self.group = Some(OpenGroup {
                id: boot_ns,
                trigger_pid,
                domain,
                chosen_pid,
                last_boot_ns: boot_ns,
                members: 1,
                closes: now + GROUP_WINDOW,
            });
        }
    }

    /// Ends the open sequence incident: its records learn the victim
    /// count, and a count above one makes each a whole group's kill.
    fn close_group(&mut self) {
        let Some(group) = self.group.take() else {
            return;
        };
        for kill in &mut self.kills {
            if kill.incident == Some(group.id) {
                kill.incident = None;
                if let Some(incident) = &mut kill.report.incident {
                    incident.victims = Some(group.members);
                }
                if group.members > 1
                    && let Some(fate) = &mut kill.report.fate
                {
                    fate::group_killed(fate);
                }
            }
        }
    }

    pub fn sigkill(&mut self, now: Instant, report: SigkillReport) -> Vec<Record> {
        if report.sent_by == SentBy::Kernel {
            self.held.push_back(Held {
                until: now + HOLD,
                report,
            });
            return Vec::new();
        }
        if self.filter.sigkill(&report) {
            vec![Record::Sigkill(Box::new(report))]
        } else {
            Vec::new()
        }
    }

    /// A victim's exit; `cmdline`: its command line, read at the exit.
    pub fn outcome(
        &mut self,
        now: Instant,
        report: OutcomeReport,
        cmdline: Option<&Cmdline>,
    ) -> Vec<Record> {
        let pid = report.victim.pid;
        let pending = self
            .kills
            .iter_mut()
            .find(|k| k.report.victim.pid == Some(pid) && k.outcome.is_none());
        match pending {
            Some(kill) => {
                if let Some(cmdline) = cmdline {
                    attach_runtime(&mut kill.report, cmdline, CapturedAt::Exit);
                }
                kill.ready = true;
                kill.outcome = Some(report);
                self.write_kills(now, false)
            }
            // An OOM victim's exit before its kill record: held for it.
            None if report.envelope.kind == RecordType::OomOutcome => {
                let mut out = Vec::new();
                if self.early.len() >= EARLY_EXITS_KEPT
                    && let Some(oldest) = self.early.pop_front()
                    && self.filter.is_empty()
                {
                    out.push(Record::Outcome(oldest.report));
                }
                self.early.push_back(EarlyExit {
                    until: now + EARLY_EXIT_WAIT,
                    report,
                    cmdline: cmdline.cloned(),
                });
                out
            }
            // Whose kill it follows is unknown: a filtered run (a sidecar,
            // say) must not show other workloads.
            None if !self.filter.is_empty() => Vec::new(),
            None => vec![Record::Outcome(report)],
        }
    }

    /// The end of an OOM kill: its records learn how many tasks it killed.
    pub fn incident_end(&mut self, now: Instant, end: IncidentEnd) -> Vec<Record> {
        for kill in &mut self.kills {
            if kill.incident == Some(end.incident_ns) {
                kill.incident = None;
                // Back to the exit's wait, now that the incident is in.
                kill.until = (kill.received + WAIT_FOR_EXIT).max(now);
                if let Some(incident) = &mut kill.report.incident {
                    incident.victims = Some(end.victims);
                }
            }
        }
        self.write_kills(now, false)
    }

    pub fn pressure(&self, report: PressureReport) -> Vec<Record> {
        if self.filter.pressure(&report) {
            vec![Record::Pressure(Box::new(report))]
        } else {
            Vec::new()
        }
    }

    /// The held kernel SIGKILLs whose wait is over (all of them with
    /// `all`, at the end): no OOM kill claimed them. Then the kills due.
    pub fn release(&mut self, now: Instant, all: bool) -> Vec<Record> {
        let mut out = Vec::new();
        if self.group.as_ref().is_some_and(|g| all || g.closes <= now) {
            self.close_group();
        }
        while let Some(held) = self.held.front() {
            if !all && held.until > now {
                break;
            }
            if let Some(held) = self.held.pop_front()
                && self.filter.sigkill(&held.report)
            {
                out.push(Record::Sigkill(Box::new(held.report)));
            }
        }
        // Exits whose kill record never came (lost): written alone, as an
        // exit whose kill is unknown is.
        while self.early.front().is_some_and(|e| all || e.until <= now) {
            if let Some(exit) = self.early.pop_front()
                && self.filter.is_empty()
            {
                out.push(Record::Outcome(exit.report));
            }
        }
        out.extend(self.write_kills(now, all));
        out
    }

    /// Kill records in arrival order, each once complete or its wait is
    /// over (all of them with `all`), each followed by its victim's exit
    /// when that came first.
    fn write_kills(&mut self, now: Instant, all: bool) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some(front) = self.kills.front() {
            if self.done() {
                break;
            }
            let complete = front.ready && front.incident.is_none();
            if !(all || complete || front.until <= now) {
                break;
            }
            let Some(kill) = self.kills.pop_front() else {
                break;
            };
            if !self.filter.kill(&kill.report) {
                continue;
            }
            out.push(Record::Kill(Box::new(kill.report)));
            self.kills_written += 1;
            // The kill waited for its exit: the last one counted keeps it.
            if let Some(outcome) = kill.outcome {
                out.push(Record::Outcome(outcome));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{IncidentReport, RecordType, RuntimeKind};

    /// Real records (see tests/fixtures/README.md), as the templates.
    const RECORDED: &str = include_str!("../../tests/fixtures/records-schema1.jsonl");

    fn recorded<T: serde::de::DeserializeOwned>(kind: &str) -> T {
        let line = RECORDED
            .lines()
            .find(|l| l.contains(&format!("\"type\":\"{kind}\"")))
            .unwrap_or_else(|| panic!("a recorded {kind}"));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{kind}: {e}"))
    }

    fn kill(pid: u32) -> KillReport {
        let mut r: KillReport = recorded("oom_kill");
        r.victim.pid = Some(pid);
        r.victim.tgid = Some(pid);
        r.victim.runtime = None;
        r
    }

    fn outcome(pid: u32) -> OutcomeReport {
        let mut r: OutcomeReport = recorded("oom_outcome");
        r.victim.pid = pid;
        r
    }

    fn sigkill(tgid: u32, by: SentBy) -> SigkillReport {
        let mut r: SigkillReport = recorded("sigkill");
        r.target.tgid = Some(tgid);
        r.sent_by = by;
        r
    }

    fn kinds(records: &[Record]) -> Vec<&'static str> {
        records
            .iter()
            .map(|r| match r {
                Record::Kill(_) => "kill",
                Record::Outcome(_) => "outcome",
                Record::Sigkill(_) => "sigkill",
                Record::Pressure(_) => "pressure",
            })
            .collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_oom_killers_own_sigkill_is_folded_into_its_kill() {
        let t = Instant::now();
        let mut c = Correlator::new(Filter::default(), None, false);
        assert!(c.sigkill(t, sigkill(10, SentBy::Kernel)).is_empty());
        assert_eq!(kinds(&c.kill(t + ms(1), kill(10), false)), ["kill"]);
        assert!(c.release(t + ms(100), true).is_empty(), "no second record");
    }

    #[test]
    fn a_kernel_sigkill_nobody_claims_is_written_after_its_hold() {
        let t = Instant::now();
        let mut c = Correlator::new(Filter::default(), None, false);
        assert!(c.sigkill(t, sigkill(10, SentBy::Kernel)).is_empty());
        assert_eq!(c.next_release(), Some(t + HOLD));
        assert!(c.release(t + HOLD - ms(1), false).is_empty());
        assert_eq!(kinds(&c.release(t + HOLD, false)), ["sigkill"]);
        assert_eq!(c.next_release(), None);
        // Another kill's victim does not claim it.
        c.sigkill(t, sigkill(11, SentBy::Kernel));
        c.kill(t, kill(12), false);
        assert_eq!(kinds(&c.release(t + HOLD, false)), ["sigkill"]);
        // A process's SIGKILL is written at once.
        assert_eq!(
            kinds(&c.sigkill(t, sigkill(10, SentBy::Process))),
            ["sigkill"]
        );
    }

    #[test]
    fn a_kill_waits_for_its_victims_exit_and_carries_it() {
        let t = Instant::now();
        let mut c = Correlator::new(Filter::default(), None, true);
        assert!(c.kill(t, kill(20), false).is_empty(), "waits for the exit");
        let cmdline = Cmdline {
            args: b"java\0-Xmx48m\0Main\0".to_vec(),
            ..Cmdline::default()
        };
        let written = c.outcome(t + ms(5), outcome(20), Some(&cmdline));
        assert_eq!(kinds(&written), ["kill", "outcome"]);
        let Some(Record::Kill(k)) = written.first() else {
            panic!("a kill first");
        };
        let runtime = k.victim.runtime.as_ref().expect("read at the exit");
        assert_eq!(
            (runtime.kind, runtime.captured_at, runtime.heap_limit_bytes),
            (Some(RuntimeKind::Jvm), CapturedAt::Exit, Some(48 << 20))
        );
        assert_eq!(
            runtime.limit_bytes,
            Some(64 << 20),
            "weighed against the limit"
        );
        // An OOM victim's exit no kill waits for waits for its kill
        // record a little, then stands alone.
        assert!(c.outcome(t, outcome(99), None).is_empty());
        assert_eq!(c.next_release(), Some(t + EARLY_EXIT_WAIT));
        assert!(c.release(t + EARLY_EXIT_WAIT - ms(1), false).is_empty());
        assert_eq!(kinds(&c.release(t + EARLY_EXIT_WAIT, false)), ["outcome"]);
    }

    #[test]
    fn an_exit_before_its_kill_record_is_the_kills() {
        // Since 6.16 the exit hook can commit before mark_victim's record.
        let t = Instant::now();
        let mut c = Correlator::new(Filter::default(), None, true);
        let cmdline = Cmdline {
            args: b"java\0-Xmx48m\0Main\0".to_vec(),
            ..Cmdline::default()
        };
        let report = kill(20);
        let mut exit = outcome(20);
        exit.kill_boot_ns = report.envelope.boot_ns;
        assert!(c.outcome(t, exit, Some(&cmdline)).is_empty(), "held");
        // Another victim's early exit is not this kill's.
        let mut other = outcome(21);
        other.kill_boot_ns = report.envelope.boot_ns + 1;
        assert!(c.outcome(t, other, None).is_empty());
        let written = c.kill(t + ms(1), report, false);
        assert_eq!(kinds(&written), ["kill", "outcome"], "no wait for the exit");
        let Some(Record::Kill(k)) = written.first() else {
            panic!("a kill first");
        };
        let runtime = k.victim.runtime.as_ref().expect("read at the exit");
        assert_eq!(runtime.captured_at, CapturedAt::Exit);
        // The other exit is still held, then written alone.
        assert_eq!(kinds(&c.release(t + EARLY_EXIT_WAIT, false)), ["outcome"]);
    }

    #[test]
    fn a_kill_without_its_exit_is_written_at_its_deadline() {
        let t = Instant::now();
        let mut c = Correlator::new(Filter::default(), None, true);
        assert!(c.kill(t, kill(20), false).is_empty());
        assert_eq!(c.next_release(), Some(t + WAIT_FOR_EXIT));
        assert!(c.release(t + WAIT_FOR_EXIT - ms(1), false).is_empty());
        let written = c.release(t + WAIT_FOR_EXIT, false);
        assert!(
            matches!(written.as_slice(), [Record::Kill(k)] if k.victim.runtime.is_none()),
            "{written:?}"
        );
        // Without the exit hook nothing waits; with a command line neither.
        let mut c = Correlator::new(Filter::default(), None, false);
        assert_eq!(kinds(&c.kill(t, kill(21), false)), ["kill"]);
        let mut c = Correlator::new(Filter::default(), None, true);
        assert_eq!(kinds(&c.kill(t, kill(22), true)), ["kill"]);
    }

    /// Victim `pid`'s kill, number `seq` of fentry incident `id` whose
    /// chosen victim is `chosen`.
    fn in_incident(pid: u32, id: u64, seq: u32, chosen: u32) -> KillReport {
        let mut k = kill(pid);
        k.incident = Some(IncidentReport {
            id,
            victims: None,
            seq,
            chosen_pid: chosen,
            group_member: seq > 1,
            basis: Some(IncidentBasis::OomKillProcess),
        });
        k
    }

    /// The victim counts the written kills carry.
    fn victim_counts(written: &[Record]) -> Vec<Option<u32>> {
        written
            .iter()
            .map(|r| match r {
                Record::Kill(k) => k.incident.as_ref().and_then(|i| i.victims),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_group_kills_records_take_the_victim_count_from_its_end() {
        let t = Instant::now();
        let mut c = Correlator::new(Filter::default(), None, false);
        assert!(c.kill(t, in_incident(30, 777, 1, 30), true).is_empty());
        assert!(c.kill(t, in_incident(31, 777, 2, 30), true).is_empty());
        let written = c.incident_end(
            t,
            IncidentEnd {
                incident_ns: 777,
                victims: 2,
            },
        );
        assert_eq!(victim_counts(&written), [Some(2), Some(2)]);
    }

    #[test]
    fn an_incident_end_later_than_an_exit_wait_still_gives_the_count() {
        let t = Instant::now();
        let mut c = Correlator::new(Filter::default(), None, false);
        assert!(c.kill(t, in_incident(30, 778, 1, 30), true).is_empty());
        // Past the exit's wait, not the incident's: still held.
        let late = t + WAIT_FOR_EXIT + ms(300);
        assert!(c.release(late, false).is_empty());
        let written = c.incident_end(
            late,
            IncidentEnd {
                incident_ns: 778,
                victims: 3,
            },
        );
        assert_eq!(victim_counts(&written), [Some(3)]);
        // A lost end: written with an unknown count at the incident's wait.
        assert!(c.kill(late, in_incident(31, 779, 1, 31), true).is_empty());
        assert!(
            c.release(late + WAIT_FOR_INCIDENT - ms(1), false)
                .is_empty()
        );
        assert_eq!(
            victim_counts(&c.release(late + WAIT_FOR_INCIDENT, false)),
            [None]
        );
    }

    /// A kill as the tracepoint or stack-search path sends it: no incident,
    /// `trigger` the OOM-invoking task, at kernel time `boot_ns`.
    fn sequenced(pid: u32, trigger: u32, boot_ns: u64) -> KillReport {
        let mut k = kill(pid);
        k.incident = None;
        k.trigger.pid = trigger;
        k.envelope.boot_ns = boot_ns;
        k.fate = Some(fate::decide(fate::Facts {
            victim_tgid: Some(pid),
            ns_pid: Some(5),
            pid_ns_level: Some(1),
            ..fate::Facts::default()
        }));
        k
    }

    fn incidents(records: &[Record]) -> Vec<(u32, u64, Option<u32>, u32, bool)> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Kill(k) => k.incident.as_ref().map(|i| {
                    (
                        k.victim.pid.unwrap_or(0),
                        i.id,
                        i.victims,
                        i.seq,
                        i.group_member,
                    )
                }),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn without_fentry_consecutive_kills_of_one_trigger_are_one_group_incident() {
        let t = Instant::now();
        let mut c = Correlator::new(Filter::default(), None, false);
        let ms_ns = 1_000_000;
        assert!(
            c.kill_in_oom(t, sequenced(30, 30, 1000 * ms_ns), true, Some(true))
                .is_empty()
        );
        // Members: their own memcg's flag unset, no walk (not on the stack).
        let member = |c: &mut Correlator, at, pid, boot| {
            c.kill_in_oom(at, sequenced(pid, 30, boot), true, None)
        };
        assert!(member(&mut c, t + ms(1), 31, 1015 * ms_ns).is_empty());
        assert!(member(&mut c, t + ms(2), 32, 1030 * ms_ns).is_empty());
        assert_eq!(c.next_release(), Some(t + ms(2) + GROUP_WINDOW));
        assert!(
            c.release(t + ms(2) + GROUP_WINDOW - ms(1), false)
                .is_empty()
        );
        let written = c.release(t + ms(2) + GROUP_WINDOW, false);
        let id = 1000 * ms_ns;
        assert_eq!(
            incidents(&written),
            [
                (30, id, Some(3), 1, false),
                (31, id, Some(3), 2, true),
                (32, id, Some(3), 3, true)
            ]
        );
        for record in &written {
            let Record::Kill(k) = record else { continue };
            let fate = k.fate.expect("fate");
            assert_eq!(
                (fate.killed, fate.basis, fate.unit_exits),
                (
                    crate::report::FateKilled::WholeGroup,
                    Some(crate::report::FateBasis::MemoryOomGroup),
                    Some(true)
                )
            );
        }
        let chosen: Vec<_> = written
            .iter()
            .filter_map(|r| match r {
                Record::Kill(k) => k.incident.as_ref().map(|i| i.chosen_pid),
                _ => None,
            })
            .collect();
        assert_eq!(chosen, [30, 30, 30]);
    }

    #[test]
    fn another_trigger_a_gap_or_a_kernel_without_a_group_starts_a_new_incident() {
        let t = Instant::now();
        let ms_ns = 1_000_000;
        let mut c = Correlator::new(Filter::default(), None, false);
        let mut written = c.kill_in_oom(t, sequenced(40, 40, 1000 * ms_ns), true, None);
        // Another OOM-invoking task: another OOM.
        written.extend(c.kill_in_oom(t, sequenced(41, 99, 1001 * ms_ns), true, None));
        // The same task, after the gap: another OOM.
        let late = 1001 * ms_ns + GROUP_GAP_NS + 1;
        written.extend(c.kill_in_oom(t, sequenced(42, 99, late), true, None));
        written.extend(c.release(t + GROUP_WINDOW, true));
        let seen: Vec<_> = incidents(&written)
            .into_iter()
            .map(|(pid, _, victims, seq, member)| (pid, victims, seq, member))
            .collect();
        assert_eq!(
            seen,
            [
                (40, Some(1), 1, false),
                (41, Some(1), 1, false),
                (42, Some(1), 1, false)
            ]
        );
        for record in &written {
            let Record::Kill(k) = record else { continue };
            assert_eq!(
                k.fate.map(|f| f.killed),
                Some(crate::report::FateKilled::ChildProcess),
                "one victim: the namespace answer stands"
            );
        }
        // The kernel read no group: written at once, an incident of one,
        // and the next kill of the same task is not its member.
        let mut c = Correlator::new(Filter::default(), None, false);
        let first = c.kill_in_oom(t, sequenced(50, 50, 1000 * ms_ns), true, Some(false));
        assert_eq!(incidents(&first), [(50, 1000 * ms_ns, Some(1), 1, false)]);
        let second = c.kill_in_oom(t, sequenced(51, 50, 1001 * ms_ns), true, Some(false));
        assert_eq!(incidents(&second), [(51, 1001 * ms_ns, Some(1), 1, false)]);
    }

    #[test]
    fn count_stops_after_n_kills() {
        let t = Instant::now();
        let mut c = Correlator::new(Filter::default(), Some(1), true);
        assert!(c.kill(t, kill(40), false).is_empty());
        assert!(c.kill(t, kill(41), true).is_empty(), "in order: 40 first");
        let written = c.outcome(t, outcome(40), None);
        assert_eq!(
            kinds(&written),
            ["kill", "outcome"],
            "the last one keeps its exit"
        );
        assert!(c.done());
        assert!(c.release(t + WAIT_FOR_EXIT, true).is_empty());
    }

    #[test]
    fn filters_select_kills_sigkills_and_exits() {
        let t = Instant::now();
        let filter = Filter::new(None, Some("other".into()), None);
        let mut c = Correlator::new(filter, None, false);
        assert!(c.kill(t, kill(50), true).is_empty(), "another comm");
        let mut mine = kill(51);
        mine.victim.comm = Some("other".into());
        assert_eq!(kinds(&c.kill(t, mine, true)), ["kill"]);
        assert!(c.sigkill(t, sigkill(52, SentBy::Process)).is_empty());
        assert!(
            c.outcome(t, outcome(53), None).is_empty(),
            "an exit no kill claims may be another workload's"
        );
        let pressure = || recorded::<PressureReport>("memcg_pressure");
        assert_eq!(pressure().envelope.kind, RecordType::MemcgPressure);
        assert!(
            c.pressure(pressure()).is_empty(),
            "--comm selects tasks only"
        );
        let by_cgroup =
            |path: &str| Correlator::new(Filter::new(Some(path.into()), None, None), None, false);
        assert!(by_cgroup("/elsewhere").pressure(pressure()).is_empty());
        let path = pressure().memcg.path.unwrap_or_default();
        assert_eq!(kinds(&by_cgroup(&path).pressure(pressure())), ["pressure"]);
        let open = Correlator::new(Filter::default(), None, false);
        assert_eq!(kinds(&open.pressure(pressure())), ["pressure"]);
    }
}
