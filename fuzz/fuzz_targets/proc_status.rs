//! /proc text (enrich/candidates.rs status, privileges.rs CapEff,
//! enrich/cgroup.rs mounts): a process's name in its status file and a
//! mount point's path are chosen by whoever made them.
#![no_main]

use std::path::Path;

use libfuzzer_sys::{
    arbitrary::{self, Unstructured},
    fuzz_target,
};
use oomtrace::{
    enrich::{candidates::ProcessMemory, cgroup},
    privileges::Privileges,
};

/// fs/proc/array.c escapes `\n` and `\` in a status file's name.
fn escape_name(comm: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in comm {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            other => out.push(other),
        }
    }
    out
}

/// A status file written the way the kernel writes it parses back.
fn status_round_trip(u: &mut Unstructured) -> arbitrary::Result<()> {
    let mut comm: Vec<u8> = u.arbitrary()?;
    comm.truncate(15);
    comm.retain(|b| *b != 0);
    // The kernel's counters are in kB and fit in bytes as u64.
    let mut kb = || u.int_in_range(0..=u64::MAX / 1024);
    let (anon, file, shmem, swap, pte) = (kb()?, kb()?, kb()?, kb()?, kb()?);
    let mut status = b"Name:\t".to_vec();
    status.extend(escape_name(&comm));
    status.extend(
        format!(
            "\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t1\nPid:\t1\nVmPTE:\t{pte:8} kB\n\
             VmSwap:\t{swap:8} kB\nRssAnon:\t{anon:8} kB\nRssFile:\t{file:8} kB\n\
             RssShmem:\t{shmem:8} kB\nCapEff:\t000001ffffffffff\n"
        )
        .bytes(),
    );
    let pid = u.arbitrary()?;
    let parsed = ProcessMemory::parse(pid, &status).expect("a user process's status parses");
    assert_eq!(
        parsed,
        ProcessMemory {
            pid,
            comm,
            rss_anon: anon * 1024,
            rss_file: file * 1024,
            rss_shmem: shmem * 1024,
            swap: swap * 1024,
            pgtables: pte * 1024,
        }
    );
    let privileges = Privileges::from_status(&String::from_utf8_lossy(&status)).expect("CapEff");
    assert!(privileges.bpf && privileges.perfmon && privileges.sys_admin);
    Ok(())
}

/// A mount point written the way fs/proc_namespace.c writes it (space, tab,
/// newline and backslash as octal escapes) parses back.
fn mounts_round_trip(u: &mut Unstructured) -> arbitrary::Result<()> {
    let mount: String = u.arbitrary()?;
    let mount = format!("/{}", mount.replace('\0', ""));
    let mut escaped = String::new();
    for c in mount.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => escaped.push_str(&format!("\\{:03o}", u32::from(c))),
            other => escaped.push(other),
        }
    }
    let v2: bool = u.arbitrary()?;
    let mounts = if v2 {
        format!("sysfs /sys sysfs rw 0 0\ncgroup2 {escaped} cgroup2 rw,nsdelegate 0 0\n")
    } else {
        format!("cgroup /cg/cpu cgroup rw,cpu 0 0\ncgroup {escaped} cgroup rw,cpu,memory 0 0\n")
    };
    let found = cgroup::find_in_mounts(&mounts, |_: &Path| v2).expect("the memory mount");
    assert_eq!(found.mount, Path::new(&mount), "{mounts}");
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let pid: u32 = u.arbitrary().unwrap_or(1);
    let adj: i64 = u.int_in_range(-1000..=1000).unwrap_or(0);
    let totalpages: u64 = u.arbitrary().unwrap_or(0);
    let page_size: u64 = *u.choose(&[4096, 16384, 65536]).unwrap_or(&4096);
    let status = u.take_rest();
    if let Some(memory) = ProcessMemory::parse(pid, status) {
        assert_eq!(memory.pid, pid);
        // Names come from one line of the file, unescaped: never longer.
        assert!(memory.comm.len() <= status.len());
        let rss = memory.rss();
        assert!(rss >= memory.rss_anon && rss >= memory.rss_file && rss >= memory.rss_shmem);
        let _ = memory.badness(adj, totalpages, page_size);
        assert_eq!(memory.badness(-1000, totalpages, page_size), None);
    }
    let text = String::from_utf8_lossy(status);
    if let Some(privileges) = Privileges::from_status(&text) {
        assert_eq!(
            privileges.can_trace(),
            (privileges.bpf && privileges.perfmon) || privileges.sys_admin
        );
        assert!(!privileges.describe().is_empty());
    }
    // /proc/self/mounts: no memory controller anywhere, no hierarchy.
    let _ = cgroup::find_in_mounts(&text, |_: &Path| true);
    assert_eq!(
        cgroup::find_in_mounts(&text.replace("memory", "mem"), |_: &Path| false),
        None
    );
    let _ = status_round_trip(&mut Unstructured::new(data));
    let _ = mounts_round_trip(&mut Unstructured::new(data));
});
