//! Test victim. Waits for a line on stdin (so the test can move it into a
//! cgroup and set its oom_score_adj first), then allocates and touches
//! memory.
//!
//!   oomtrace-test-hog alloc MIB [--comm HEX]   allocate MIB, then exit 0
//!   oomtrace-test-hog hold MIB [--comm HEX]    allocate MIB, print "held", sleep
//!   oomtrace-test-hog grow MIB [--comm HEX]    allocate MIB every 100 ms until
//!                                              killed (a steady leak)
//!
//! `--comm HEX` sets the task name to the hex-encoded bytes (any bytes).

use std::io::{BufRead, Write};

const MIB: usize = 1 << 20;

fn main() {
    // A test may dress the hog up as a JVM or Node process; its real orders
    // then come from the environment.
    let args: Vec<String> = match std::env::var(oomtrace_tests::hog::ORDERS_VAR) {
        Ok(orders) => std::iter::once("hog".to_string())
            .chain(orders.split(' ').map(String::from))
            .collect(),
        Err(_) => std::env::args().collect(),
    };
    let (Some(mode), Some(mib)) = (
        args.get(1),
        args.get(2).and_then(|m| m.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: oomtrace-test-hog alloc|hold|grow MIB [--comm HEX]");
        std::process::exit(2);
    };
    if let Some(i) = args.iter().position(|a| a == "--comm") {
        let Some(name) = args.get(i + 1).and_then(|hex| decode_hex(hex)) else {
            eprintln!("--comm needs hex bytes");
            std::process::exit(2);
        };
        set_comm(&name);
    }

    // Wait for the go-ahead: the test has placed us in the cgroup.
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        std::process::exit(3);
    }

    if mode == "grow" {
        // MIB every 100 ms, at most 3000 steps: bounded if never killed.
        let mut leaked: Vec<Vec<u8>> = Vec::new();
        for _ in 0..3000 {
            for _ in 0..mib {
                leaked.push(vec![1u8; MIB]);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::hint::black_box(&leaked);
        std::process::exit(0);
    }
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(mib);
    for _ in 0..mib {
        // Non-zero fill: every page is written, so resident and charged
        // (zero-filled memory may be mapped lazily).
        chunks.push(vec![1u8; MIB]);
    }
    match mode.as_str() {
        "alloc" => {
            std::hint::black_box(&chunks);
        }
        "hold" => {
            // Sleep once first: its first call faults libc pages in (64 KiB
            // of fault-around), which must not move the RSS a test reads
            // after "held".
            std::thread::sleep(std::time::Duration::from_millis(1));
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "held");
            let _ = out.flush();
            // Sleep until killed; bounded so a leaked hog cannot live forever.
            std::thread::sleep(std::time::Duration::from_secs(300));
            std::hint::black_box(&chunks);
        }
        _ => std::process::exit(2),
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn set_comm(name: &[u8]) {
    let mut buf = [0u8; 16];
    let len = name.len().min(15);
    buf[..len].copy_from_slice(&name[..len]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr()) };
}
