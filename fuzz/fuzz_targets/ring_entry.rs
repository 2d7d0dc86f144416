//! Ring buffer entries (decode.rs `entry`, then the typed events): the
//! kernel side writes them, but a loader and object that disagree, or a
//! bug in either, must give an error, never a panic or a misread.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace::{
    decode::{self, BadEntry, Cmdline, Entry, OomKill, Sigkill},
    enrich::runtime::{CapturedAt, analyze},
};
use oomtrace_common::{
    CmdlineHeader, IncidentRecord, OomKillRecord, OutcomeRecord, PressureRecord, SigkillRecord,
    TASK_COMM_LEN, kind,
};

/// The command line after a record: header, then args and env bytes.
fn check_cmdline(record_size: usize, bytes: &[u8], cmdline: Option<&Cmdline>) {
    let Some(cmdline) = cmdline else {
        assert_eq!(
            bytes.len(),
            record_size,
            "no command line but trailing bytes"
        );
        return;
    };
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
        _ => None,
    };
    let entry = match result {
        Ok(entry) => entry,
        Err(BadEntry::Kind(other)) => {
            assert_eq!((other, fixed), (kind, None));
            return;
        }
        Err(BadEntry::Size {
            kind: k,
            got,
            expected,
        }) => {
            assert_eq!((k, got, Some(expected)), (kind, bytes.len(), fixed));
            return;
        }
        Err(BadEntry::Short(_)) => panic!("short error for {} bytes", bytes.len()),
    };
    let size = fixed.expect("a decoded entry has a known kind");
    assert!(bytes.len() >= size);
    match entry {
        Entry::Kill(record, cmdline) => {
            check_cmdline(size, bytes, cmdline.as_ref());
            let kill = OomKill::from_record(&record);
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
        Entry::Outcome(_, cmdline) => check_cmdline(size, bytes, cmdline.as_ref()),
        Entry::Sigkill(record) => {
            assert_eq!(bytes.len(), size);
            let sigkill = Sigkill::from_record(&record);
            assert!(
                sigkill
                    .sender
                    .comm
                    .as_ref()
                    .is_none_or(|c| c.len() <= TASK_COMM_LEN)
            );
            check_memcg_path(sigkill.target.memcg.as_ref().and_then(|m| m.path.as_ref()));
        }
        Entry::Pressure(_) | Entry::Incident(_) => assert_eq!(bytes.len(), size),
    }
});
