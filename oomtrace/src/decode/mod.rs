//! Ring buffer bytes -> typed events, with unknown values as `None`. The
//! only reader of oomtrace-common's records in the loader after capture:
//! everything downstream sees these types.

pub mod candidates;
pub mod events;
pub mod kill;

use oomtrace_common::{
    CGROUP_MAX_DEPTH, CandidatesRecord, CgroupRef, CmdlineHeader, IncidentRecord, OomKillRecord,
    OutcomeRecord, PressureRecord, SigkillRecord, TASK_COMM_LEN, TaskRef, cgroup_flags, kind,
};

/// The largest entry the kernel side sends (the ring buffer must hold it).
pub use oomtrace_common::MAX_ENTRY_BYTES;

pub use self::{
    candidates::{KernelCandidate, KernelCandidates},
    events::{IncidentEnd, KillCause, Outcome, Pressure, Sigkill, Sigterm, Task},
    kill::{Constraint, Memcg, OomControl, OomKill, OomMemcg, Reclaim},
};

/// A ring buffer entry the loader cannot read: it and the object disagree,
/// which is a bug; the stream skips it with a warning on stderr.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BadEntry {
    #[error("ring buffer entry of kind {kind} has {got} bytes, expected {expected}")]
    Size {
        kind: u32,
        got: usize,
        expected: usize,
    },
    #[error("ring buffer entry of unknown kind {0}")]
    Kind(u32),
    #[error("ring buffer entry of {0} bytes, too short for a kind")]
    Short(usize),
}

/// One decoded ring buffer entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An OOM kill, with the victim's command line when it came along.
    Kill(Box<OomKill>, Option<Cmdline>),
    Pressure(Pressure),
    /// A watched victim's exit, with its command line when read then.
    Outcome(Outcome, Option<Cmdline>),
    Sigkill(Box<Sigkill>),
    IncidentEnd(IncidentEnd),
    /// The OOM domain's processes at a kill, right after its record.
    Candidates(Box<KernelCandidates>),
}

/// An entry, and what of it could not be read but did not cost the record.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub event: Event,
    /// The command line after the record was malformed: the record is kept
    /// without it (the stream warns).
    pub bad_cmdline: Option<BadEntry>,
}

/// A victim's command line and environment as copied from its memory:
/// NUL-separated strings, possibly cut short.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    pub args: Vec<u8>,
    pub env: Vec<u8>,
    pub args_truncated: bool,
    pub env_truncated: bool,
}

/// Decodes an entry of the ring buffer, by its kind.
pub fn entry(bytes: &[u8]) -> Result<Decoded, BadEntry> {
    let kind = bytes
        .get(..4)
        .map(|k| u32::from_ne_bytes([k[0], k[1], k[2], k[3]]))
        .ok_or(BadEntry::Short(bytes.len()))?;
    let whole = |event| Decoded {
        event,
        bad_cmdline: None,
    };
    match kind {
        kind::OOM_KILL => {
            let (record, cmdline) = with_cmdline::<OomKillRecord>(kind, bytes)?;
            // Moved, not cloned: up to 16 KiB of arguments and environment.
            let (cmdline, bad_cmdline) = split(cmdline);
            Ok(Decoded {
                event: Event::Kill(Box::new(OomKill::from_record(&record)), cmdline),
                bad_cmdline,
            })
        }
        kind::MEMCG_PRESSURE => copy::<PressureRecord>(kind, bytes)
            .map(|r| whole(Event::Pressure(Pressure::from_record(&r)))),
        kind::OOM_OUTCOME => {
            let (record, cmdline) = with_cmdline::<OutcomeRecord>(kind, bytes)?;
            let (cmdline, bad_cmdline) = split(cmdline);
            Ok(Decoded {
                event: Event::Outcome(Outcome::from_record(&record), cmdline),
                bad_cmdline,
            })
        }
        kind::SIGKILL => copy::<SigkillRecord>(kind, bytes)
            .map(|r| whole(Event::Sigkill(Box::new(Sigkill::from_record(&r))))),
        kind::OOM_INCIDENT => copy::<IncidentRecord>(kind, bytes)
            .map(|r| whole(Event::IncidentEnd(IncidentEnd::from_record(&r)))),
        kind::CANDIDATES => copy::<CandidatesRecord>(kind, bytes).map(|r| {
            whole(Event::Candidates(Box::new(KernelCandidates::from_record(
                &r,
            ))))
        }),
        other => Err(BadEntry::Kind(other)),
    }
}

/// The command line, or why it was left out.
fn split(cmdline: Result<Option<Cmdline>, BadEntry>) -> (Option<Cmdline>, Option<BadEntry>) {
    match cmdline {
        Ok(cmdline) => (cmdline, None),
        Err(bad) => (None, Some(bad)),
    }
}

/// A record, and the command line the kernel side may have sent after it.
/// A record too short is refused; a malformed command line after a whole
/// record costs only the command line.
fn with_cmdline<T: aya::Pod>(
    kind: u32,
    bytes: &[u8],
) -> Result<(T, Result<Option<Cmdline>, BadEntry>), BadEntry> {
    let size = size_of::<T>();
    let record = copy::<T>(kind, bytes.get(..size).unwrap_or(bytes))?;
    let rest = &bytes[size..];
    if rest.is_empty() {
        return Ok((record, Ok(None)));
    }
    Ok((record, cmdline(kind, bytes.len(), rest)))
}

fn cmdline(kind: u32, got: usize, rest: &[u8]) -> Result<Option<Cmdline>, BadEntry> {
    let header_size = size_of::<CmdlineHeader>();
    let bad = |expected| BadEntry::Size {
        kind,
        got,
        expected,
    };
    let entry_size = got - rest.len();
    let header: CmdlineHeader = copy(
        kind,
        rest.get(..header_size)
            .ok_or_else(|| bad(entry_size + header_size))?,
    )?;
    let (args_len, env_len) = (header.args_len as usize, header.env_len as usize);
    let data = &rest[header_size..];
    let expected = entry_size + header_size + args_len.saturating_add(env_len);
    if data.len() != args_len.saturating_add(env_len) {
        return Err(bad(expected));
    }
    Ok(Some(Cmdline {
        args: data[..args_len].to_vec(),
        env: data[args_len..].to_vec(),
        args_truncated: header.args_total > args_len as u64,
        env_truncated: header.env_total > env_len as u64,
    }))
}

/// Plain-data records only (`Pod`): every bit pattern is a valid `T`.
fn copy<T: aya::Pod>(kind: u32, bytes: &[u8]) -> Result<T, BadEntry> {
    let expected = size_of::<T>();
    if bytes.len() != expected {
        return Err(BadEntry::Size {
            kind,
            got: bytes.len(),
            expected,
        });
    }
    // SAFETY: the length matches, `T: Pod` promises any bits are a valid
    // `T`, and read_unaligned makes no alignment demand.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// `comm` up to its NUL (the kernel always terminates it).
fn comm(task: &TaskRef) -> Vec<u8> {
    let end = task
        .comm
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(TASK_COMM_LEN);
    task.comm[..end].to_vec()
}

/// The path from the captured names: `/` for the root, else
/// `/names[depth-1]/.../names[0]`; `None` unless every level was read whole.
fn memcg(raw: &CgroupRef) -> Memcg {
    let complete = raw.flags & (cgroup_flags::PATH_TRUNCATED | cgroup_flags::PATH_UNREADABLE) == 0
        && raw.depth == raw.level
        && raw.depth <= CGROUP_MAX_DEPTH;
    let path = complete.then(|| {
        if raw.depth == 0 {
            return b"/".to_vec();
        }
        let mut path = Vec::new();
        for name in raw.names[..raw.depth as usize].iter().rev() {
            let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            path.push(b'/');
            path.extend_from_slice(&name[..end]);
        }
        path
    });
    Memcg { id: raw.id, path }
}

/// Test helpers shared by the decode tests.
#[cfg(test)]
mod testing {
    /// A plain-data record as the ring buffer carries it.
    pub fn bytes_of<T: aya::Pod>(record: &T) -> Vec<u8> {
        // SAFETY: reading a plain-data struct as bytes.
        unsafe { std::slice::from_raw_parts((record as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    /// An all-zero record.
    pub fn zeroed<T: aya::Pod>() -> T {
        // SAFETY: plain data; all zeroes is a valid record.
        unsafe { std::mem::zeroed() }
    }
}

#[cfg(test)]
mod tests {
    use super::{testing::*, *};

    fn kill_record() -> OomKillRecord {
        let mut record: OomKillRecord = zeroed();
        record.kind = kind::OOM_KILL;
        record
    }

    fn header(args_len: u32, env_len: u32, args_total: u64, env_total: u64) -> Vec<u8> {
        bytes_of(&CmdlineHeader {
            args_len,
            env_len,
            args_total,
            env_total,
        })
    }

    #[test]
    fn entries_are_read_by_kind_and_checked_for_size() {
        let mut pressure = PressureRecord {
            kind: kind::MEMCG_PRESSURE,
            memcg_id: 9,
            ..PressureRecord::default()
        };
        assert!(matches!(
            entry(&bytes_of(&pressure)).map(|d| d.event),
            Ok(Event::Pressure(p)) if p.memcg_id == 9
        ));
        let short = &bytes_of(&pressure)[..40];
        assert_eq!(
            entry(short).err(),
            Some(BadEntry::Size {
                kind: kind::MEMCG_PRESSURE,
                got: 40,
                expected: 64
            })
        );
        pressure.kind = 77;
        assert_eq!(entry(&bytes_of(&pressure)).err(), Some(BadEntry::Kind(77)));
        assert_eq!(entry(&[1, 0]).err(), Some(BadEntry::Short(2)));
        let record = kill_record();
        assert!(matches!(
            entry(&bytes_of(&record)).map(|d| d.event),
            Ok(Event::Kill(_, None))
        ));
        let cut = &bytes_of(&record)[..size_of::<OomKillRecord>() - 8];
        assert!(matches!(entry(cut), Err(BadEntry::Size { kind: 1, .. })));
    }

    #[test]
    fn a_command_line_after_the_record_is_split_into_args_and_env() {
        let mut bytes = bytes_of(&kill_record());
        bytes.extend(header(10, 6, 10, 5000));
        bytes.extend_from_slice(b"java\0-Xmx\0A=1\0B\0");
        let Ok(Decoded {
            event: Event::Kill(_, Some(cmdline)),
            bad_cmdline: None,
        }) = entry(&bytes)
        else {
            panic!("a kill with a command line");
        };
        assert_eq!(cmdline.args, b"java\0-Xmx\0");
        assert_eq!(cmdline.env, b"A=1\0B\0");
        assert!(!cmdline.args_truncated);
        assert!(cmdline.env_truncated, "5000 bytes in the process, 6 sent");
    }

    #[test]
    fn a_malformed_command_line_keeps_the_kill_without_it() {
        let record = kill_record();
        let mut too_long = bytes_of(&record);
        too_long.extend(header(10, 6, 10, 6));
        too_long.extend_from_slice(b"java\0-Xmx\0A=1\0B\0!");
        let mut header_cut = bytes_of(&record);
        header_cut.extend(&header(10, 6, 10, 6)[..10]);
        let mut absurd = bytes_of(&record);
        absurd.extend(header(u32::MAX, u32::MAX, 0, 0));
        for bytes in [too_long, header_cut, absurd] {
            let decoded = entry(&bytes).expect("the kill is kept");
            assert!(matches!(decoded.event, Event::Kill(_, None)), "{decoded:?}");
            assert!(
                matches!(decoded.bad_cmdline, Some(BadEntry::Size { kind: 1, .. })),
                "{decoded:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_ring_buffer_bytes_decode_or_are_refused_without_panicking(
            kind in 0u32..6,
            rest in proptest::collection::vec(proptest::num::u8::ANY, 0..30_000),
        ) {
            let mut bytes = kind.to_ne_bytes().to_vec();
            bytes.extend(rest);
            let _ = entry(&bytes);
        }
    }
}
