//! The kernel side's candidate table ([`CandidatesRecord`]), decoded.

use oomtrace_common::{CANDIDATE_ROWS, CandidateRow, CandidatesRecord, candidates_flags};

/// The OOM domain's processes at a kill, the victim's excluded, as the
/// kernel side walked them: the highest-scored ones, unordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCandidates {
    /// The victim's thread id, as its kill record gives it.
    pub victim_pid: u32,
    pub boot_ns: u64,
    /// The walk went round the whole process list: `processes` counts the
    /// domain, and `rows` are its top.
    pub complete: bool,
    /// A machine-wide OOM's domain (every process).
    pub machine: bool,
    pub processes: u32,
    pub rows: Vec<KernelCandidate>,
}

/// One process; memory in pages as the kernel counts it, except page tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCandidate {
    pub tgid: u32,
    pub comm: Vec<u8>,
    pub oom_score_adj: i16,
    pub rss_anon_pages: u64,
    pub rss_file_pages: u64,
    pub rss_shmem_pages: u64,
    pub swap_pages: u64,
    pub pgtables_bytes: u64,
}

impl KernelCandidates {
    pub(super) fn from_record(r: &CandidatesRecord) -> KernelCandidates {
        let filled = (r.rows as usize).min(CANDIDATE_ROWS);
        KernelCandidates {
            victim_pid: r.victim_pid,
            boot_ns: r.boot_ns,
            complete: r.flags & candidates_flags::COMPLETE != 0,
            machine: r.flags & candidates_flags::MACHINE != 0,
            processes: r.processes,
            rows: r.table[..filled]
                .iter()
                .map(KernelCandidate::from_row)
                .collect(),
        }
    }
}

impl KernelCandidate {
    fn from_row(row: &CandidateRow) -> KernelCandidate {
        let end = row
            .comm
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(row.comm.len());
        KernelCandidate {
            tgid: row.tgid,
            comm: row.comm[..end].to_vec(),
            oom_score_adj: row.oom_score_adj,
            rss_anon_pages: row.rss_anon_pages,
            rss_file_pages: row.rss_file_pages,
            rss_shmem_pages: row.rss_shmem_pages,
            swap_pages: row.swap_pages,
            pgtables_bytes: row.pgtables_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use oomtrace_common::kind;

    use super::*;
    use crate::decode::{Event, entry, testing::bytes_of};

    #[test]
    fn a_table_keeps_its_filled_rows_and_flags() {
        let mut record = CandidatesRecord {
            kind: kind::CANDIDATES,
            rows: 2,
            victim_pid: 42,
            flags: candidates_flags::COMPLETE,
            boot_ns: 7,
            processes: 5,
            walked: 90,
            table: [CandidateRow::default(); CANDIDATE_ROWS],
        };
        record.table[0].tgid = 10;
        record.table[0].comm[..3].copy_from_slice(b"sh\n");
        record.table[1].tgid = 11;
        record.table[1].oom_score_adj = -1000;
        record.table[1].comm = *b"0123456789abcdef";
        // A row past `rows` is the walk's leftover, not the domain's.
        record.table[2].tgid = 12;
        let Ok(Event::Candidates(table)) = entry(&bytes_of(&record)).map(|d| d.event) else {
            panic!("not a candidate table");
        };
        assert_eq!(
            (table.victim_pid, table.boot_ns, table.processes),
            (42, 7, 5)
        );
        assert!(table.complete && !table.machine);
        let tgids: Vec<u32> = table.rows.iter().map(|r| r.tgid).collect();
        assert_eq!(tgids, [10, 11]);
        assert_eq!(table.rows[0].comm, b"sh\n");
        assert_eq!(
            table.rows[1].comm, b"0123456789abcdef",
            "a full comm has no NUL"
        );
        // A count past the table (a bug on the other side) is cut to it.
        record.rows = 99;
        let Ok(Event::Candidates(table)) = entry(&bytes_of(&record)).map(|d| d.event) else {
            panic!("not a candidate table");
        };
        assert_eq!(table.rows.len(), CANDIDATE_ROWS);
    }
}
