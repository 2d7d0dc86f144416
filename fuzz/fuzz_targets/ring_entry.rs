//! Ring buffer entries (decode.rs `entry`, then the typed events): the
//! kernel side writes them, but a loader and object that disagree, or a
//! bug in either, must give an error, never a panic or a misread.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace::{
    decode::{self, BadEntry, Cmdline, Event},
    enrich::runtime::{CapturedAt, analyze},
};
use oomtrace_common::{
    CANDIDATE_ROWS, CandidatesRecord, CmdlineHeader, IncidentRecord, OomKillRecord, OutcomeRecord,
    PressureRecord, SigkillRecord, TASK_COMM_LEN, kind,
};

/// The command line after a record: header, then args and env bytes; a
/// malformed one costs only itself (`bad`), never the record.
fn check_cmdline(
    record_size: usize,
    bytes: &[u8],
    cmdline: Option<&Cmdline>,
    bad: Option<&BadEntry>,
) {
    let Some(cmdline) = cmdline else {
        assert!(
            bytes.len() == record_size || bad.is_some(),
            "no command line but trailing bytes"
        );
        return;
    };
    assert!(bad.is_none(), "a command line and an error about it");
    let data = &bytes[record_size + size_of::<CmdlineHeader>()..];
    assert_eq!([cmdline.args.as_slice(), &cmdline.env].concat(), data);
    let _ = analyze(cmdline, CapturedAt::Exit);
}

fn check_memcg_path(path: Option<&Vec<u8>>) {
    if let Some(path) = path {
        assert!(path.starts_with(b"/"), "{path:?}");
    }
}

fuzz_target!(|bytes: &[u8]| {
    let result = decode::entry(bytes);
    let Some(kind) = bytes
        .get(..4)
        .map(|k| u32::from_ne_bytes([k[0], k[1], k[2], k[3]]))
    else {
        assert_eq!(result.err(), Some(BadEntry::Short(bytes.len())));
        return;
    };
    let fixed = match kind {
        kind::OOM_KILL => Some(size_of::<OomKillRecord>()),
        kind::MEMCG_PRESSURE => Some(size_of::<PressureRecord>()),
        kind::OOM_OUTCOME => Some(size_of::<OutcomeRecord>()),
        kind::SIGKILL => Some(size_of::<SigkillRecord>()),
        kind::OOM_INCIDENT => Some(size_of::<IncidentRecord>()),
        kind::CANDIDATES => Some(size_of::<CandidatesRecord>()),
        _ => None,
    };
    let decoded = match result {
        Ok(decoded) => decoded,
        Err(BadEntry::Kind(other)) => {
            assert_eq!((other, fixed), (kind, None));
            return;
        }
        Err(BadEntry::Size {
            kind: k,
            got,
            expected,
        }) => {
            assert_eq!(k, kind);
            assert_eq!(Some(expected), fixed);
            // Only a record cut short is refused whole.
            assert!(
                got < expected || bytes.len() != expected,
                "{got} {expected}"
            );
            return;
        }
        Err(BadEntry::Short(_)) => panic!("short error for {} bytes", bytes.len()),
    };
    let size = fixed.expect("a decoded entry has a known kind");
    assert!(bytes.len() >= size);
    let bad = decoded.bad_cmdline.as_ref();
    match decoded.event {
        Event::Kill(kill, cmdline) => {
            check_cmdline(size, bytes, cmdline.as_ref(), bad);
            assert!(
                kill.victim
                    .comm
                    .as_ref()
                    .is_none_or(|c| c.len() <= TASK_COMM_LEN)
            );
            assert!(
                kill.trigger
                    .comm
                    .as_ref()
                    .is_none_or(|c| c.len() <= TASK_COMM_LEN)
            );
            check_memcg_path(kill.victim.memcg.as_ref().and_then(|m| m.path.as_ref()));
            check_memcg_path(kill.trigger.memcg.as_ref().and_then(|m| m.path.as_ref()));
        }
        Event::Outcome(outcome, cmdline) => {
            check_cmdline(size, bytes, cmdline.as_ref(), bad);
            assert!(outcome.exit_signal.is_none_or(|s| s < 128));
        }
        Event::Sigkill(sigkill) => {
            assert_eq!(bytes.len(), size);
            assert!(
                sigkill
                    .sender
                    .comm
                    .as_ref()
                    .is_none_or(|c| c.len() <= TASK_COMM_LEN)
            );
            check_memcg_path(sigkill.target.memcg.as_ref().and_then(|m| m.path.as_ref()));
        }
        Event::Candidates(table) => {
            assert_eq!(bytes.len(), size);
            assert!(table.rows.len() <= CANDIDATE_ROWS);
            assert!(table.rows.iter().all(|r| r.comm.len() <= TASK_COMM_LEN));
        }
        Event::Pressure(_) | Event::IncidentEnd(_) => assert_eq!(bytes.len(), size),
    }
});
