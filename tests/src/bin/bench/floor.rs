//! The floor under any per-exit cost: what the kernel's bpf_stats count for
//! a program on `sched_process_exit` that does nothing, and for one that
//! does what an exit oomtrace ignores should cost (one hash-map miss by
//! thread id). Both are loaded here by raw bpf(2) calls, a handful of
//! instructions each, and detached when dropped; on this kind of VM the
//! statistics' own clock reads are most of the floor.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use anyhow::{Result, bail};

use crate::bpf_stats::Counters;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_GET_CURRENT_PID_TGID: i32 = 14;

/// Programs attached to `sched_process_exit` while this lives.
pub struct Floor {
    /// (program, its attachment), by what it does.
    pub programs: Vec<(&'static str, OwnedFd, OwnedFd)>,
    _map: OwnedFd,
}

impl Floor {
    pub fn attach() -> Result<Floor> {
        let map = map_create()?;
        let empty = [mov_r0_0(), exit()];
        let m = map.as_raw_fd();
        let miss = [
            call(HELPER_GET_CURRENT_PID_TGID),
            insn(0x63, 10, 0, -4, 0), // *(u32 *)(r10 - 4) = r0
            insn(0xbf, 2, 10, 0, 0),  // r2 = r10
            insn(0x07, 2, 0, 0, -4),  // r2 += -4
            insn(0x18, 1, 1, 0, m),   // r1 = map (ld_imm64, pseudo map fd)
            0,
            call(HELPER_MAP_LOOKUP_ELEM),
            mov_r0_0(),
            exit(),
        ];
        let mut programs = Vec::new();
        for (name, insns) in [("empty", &empty[..]), ("hash_miss", &miss[..])] {
            let prog = prog_load(insns)?;
            let link = raw_tracepoint_open(&prog, c"sched_process_exit")?;
            programs.push((name, prog, link));
        }
        Ok(Floor {
            programs,
            _map: map,
        })
    }

    /// Each program's counters so far.
    pub fn counters(&self) -> Vec<(&'static str, Counters)> {
        self.programs
            .iter()
            .map(|(name, prog, _)| {
                let text =
                    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", prog.as_raw_fd()))
                        .unwrap_or_default();
                let value = |key: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(key))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                (
                    *name,
                    Counters {
                        run_time_ns: value("run_time_ns:"),
                        run_cnt: value("run_cnt:"),
                    },
                )
            })
            .collect()
    }
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | (u64::from((src << 4) | (dst & 0xf)) << 8)
        | (u64::from(off as u16) << 16)
        | (u64::from(imm as u32) << 32)
}

fn call(helper: i32) -> u64 {
    insn(0x85, 0, 0, 0, helper)
}

fn mov_r0_0() -> u64 {
    insn(0xb7, 0, 0, 0, 0)
}

fn exit() -> u64 {
    insn(0x95, 0, 0, 0, 0)
}

fn bpf(cmd: libc::c_long, attr: &[u8]) -> Result<OwnedFd> {
    // SAFETY: attr is a zero-padded union bpf_attr that lives on our stack.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), attr.len()) };
    if fd < 0 {
        bail!("bpf({cmd}): {}", std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor bpf(2) just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn put(attr: &mut [u8], offset: usize, bytes: &[u8]) {
    attr[offset..offset + bytes.len()].copy_from_slice(bytes);
}

fn map_create() -> Result<OwnedFd> {
    let mut attr = [0u8; 128];
    put(&mut attr, 0, &BPF_MAP_TYPE_HASH.to_ne_bytes());
    put(&mut attr, 4, &4u32.to_ne_bytes()); // key: a thread id
    put(&mut attr, 8, &8u32.to_ne_bytes());
    put(&mut attr, 12, &1024u32.to_ne_bytes());
    bpf(BPF_MAP_CREATE, &attr)
}

fn prog_load(insns: &[u64]) -> Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = [0u8; 128];
    put(&mut attr, 0, &BPF_PROG_TYPE_RAW_TRACEPOINT.to_ne_bytes());
    put(&mut attr, 4, &(insns.len() as u32).to_ne_bytes());
    put(&mut attr, 8, &(insns.as_ptr() as u64).to_ne_bytes());
    put(&mut attr, 16, &(license.as_ptr() as u64).to_ne_bytes());
    put(&mut attr, 48, b"oomtrace_floor");
    bpf(BPF_PROG_LOAD, &attr)
}

fn raw_tracepoint_open(prog: &OwnedFd, name: &std::ffi::CStr) -> Result<OwnedFd> {
    let mut attr = [0u8; 128];
    put(&mut attr, 0, &(name.as_ptr() as u64).to_ne_bytes());
    put(&mut attr, 8, &(prog.as_raw_fd() as u32).to_ne_bytes());
    bpf(BPF_RAW_TRACEPOINT_OPEN, &attr)
}

#[cfg(test)]
mod tests {
    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        // r2 += -4: BPF_ALU64 | BPF_ADD | BPF_K, dst 2, imm -4.
        assert_eq!(super::insn(0x07, 2, 0, 0, -4), 0xffff_fffc_0000_0207);
        // *(u32 *)(r10 - 4) = r0: off -4 in bits 16..32, dst 10.
        assert_eq!(super::insn(0x63, 10, 0, -4, 0), 0x0000_0000_fffc_0a63);
        assert_eq!(super::exit(), 0x95);
    }
}
