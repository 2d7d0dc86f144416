//! Writes fuzz/seeds/ring_entry: one ring buffer entry of each kind, laid
//! out as the kernel side sends it (oomtrace-common's records, a kill's
//! command line after its record). Run after a record changes:
//! `cargo +nightly run --manifest-path fuzz/Cargo.toml --example ring_seeds`.

use std::{fs, path::Path};

use oomtrace_common::{
    CgroupRef, CmdlineHeader, IncidentRecord, OomKillRecord, OutcomeRecord, PressureRecord,
    SigkillRecord, capture, kind, valid,
};

/// The bytes of a plain-data record.
fn bytes<T: aya::Pod>(record: &T) -> Vec<u8> {
    // SAFETY: T is Pod: plain data without padding, readable as bytes.
    unsafe { std::slice::from_raw_parts((record as *const T).cast::<u8>(), size_of::<T>()) }
        .to_vec()
}

fn zeroed<T: aya::Pod>() -> T {
    // SAFETY: T is Pod: all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

/// A cgroup path as the kernel side stores it: names leaf first.
fn set_path(raw: &mut CgroupRef, id: u64, path: &str) {
    raw.id = id;
    let names: Vec<&str> = path.split('/').filter(|n| !n.is_empty()).collect();
    raw.level = names.len() as u32;
    raw.depth = names.len() as u32;
    for (slot, name) in raw.names.iter_mut().zip(names.iter().rev()) {
        slot[..name.len()].copy_from_slice(name.as_bytes());
    }
}

fn with_cmdline(mut entry: Vec<u8>, args: &[u8], env: &[u8]) -> Vec<u8> {
    let header = CmdlineHeader {
        args_len: args.len() as u32,
        env_len: env.len() as u32,
        args_total: args.len() as u64,
        env_total: env.len() as u64 + 100,
    };
    entry.extend(bytes(&header));
    entry.extend_from_slice(args);
    entry.extend_from_slice(env);
    entry
}

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/ring_entry");
    fs::create_dir_all(&dir)?;
    let path = "/oomtrace-test-18790-1-sigkill-oom";

    let mut kill: OomKillRecord = zeroed();
    kill.kind = kind::OOM_KILL;
    kill.boot_ns = 1_890_441_797_000;
    kill.capture = capture::TP_BTF;
    kill.valid = valid::VICTIM_PID
        | valid::VICTIM_TGID
        | valid::VICTIM_COMM
        | valid::VICTIM_UID
        | valid::VICTIM_OOM_SCORE_ADJ
        | valid::VICTIM_TOTAL_VM
        | valid::VICTIM_RSS
        | valid::VICTIM_PGTABLES
        | valid::VICTIM_MEMCG
        | valid::TRIGGER_COMM
        | valid::TRIGGER_MEMCG
        | valid::TRIGGER_IS_VICTIM;
    kill.victim.pid = 18805;
    kill.victim.tgid = 18805;
    kill.victim.comm[..15].copy_from_slice(b"oomtrace-test-h");
    kill.trigger = kill.victim;
    kill.victim_total_vm_bytes = 68828 << 10;
    kill.victim_rss_anon_bytes = 65536 << 10;
    kill.victim_rss_file_bytes = 1880 << 10;
    kill.victim_pgtables_bytes = 176 << 10;
    set_path(&mut kill.victim.memcg, 4242, path);
    set_path(&mut kill.trigger.memcg, 4242, path);
    let kill_bytes = bytes(&kill);
    fs::write(dir.join("kill_tp_btf"), &kill_bytes)?;
    fs::write(
        dir.join("kill_with_cmdline"),
        with_cmdline(
            kill_bytes,
            b"java\0-Xmx512m\0Main\0",
            b"HOME=/\0GOMEMLIMIT=1GiB\0",
        ),
    )?;

    let mut outcome: OutcomeRecord = zeroed();
    outcome.kind = kind::OOM_OUTCOME;
    fs::write(dir.join("outcome"), bytes(&outcome))?;
    let mut sigkill: SigkillRecord = zeroed();
    sigkill.kind = kind::SIGKILL;
    fs::write(dir.join("sigkill"), bytes(&sigkill))?;
    let mut pressure: PressureRecord = zeroed();
    pressure.kind = kind::MEMCG_PRESSURE;
    fs::write(dir.join("pressure"), bytes(&pressure))?;
    let mut incident: IncidentRecord = zeroed();
    incident.kind = kind::OOM_INCIDENT;
    fs::write(dir.join("incident"), bytes(&incident))?;
    Ok(())
}
