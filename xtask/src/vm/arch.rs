//! What differs between the architectures the VM matrix boots: the Rust
//! target of the guest's static binaries, qemu and its machine, the serial
//! ports, the capture paths a slow emulation has time for, and, for an
//! architecture the host's apt does not serve, Debian packages fetched from
//! the archive's own indexes (see debian.rs).

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};

use super::debian::{self, Package, download_package, regex_quote};
use crate::sh::{Cmd, pipeline};

/// A guest architecture (the optional third column of tests/vm/kernels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn parse(name: &str) -> Result<Arch> {
        match name {
            "x86_64" => Ok(Arch::X86_64),
            "aarch64" => Ok(Arch::Aarch64),
            _ => bail!("unknown architecture `{name}` (x86_64 or aarch64)"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The Rust target of the guest's static binaries.
    pub fn musl_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    /// Debian's name for it.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// Whether the host's apt serves its packages (it is amd64-only).
    pub fn is_host(self) -> bool {
        self == Arch::X86_64
    }

    pub fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// The Debian package with that qemu.
    pub fn qemu_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86",
            Arch::Aarch64 => "qemu-system-arm",
        }
    }

    /// The machine: software emulation (KVM is not usable on these hosts),
    /// two vCPUs on one host thread (multi-threaded TCG let a guest CPU run
    /// code the other was patching: an int3 oops in 6.12 x86).
    pub fn machine(self) -> Vec<&'static str> {
        // No network: the guests need none, and the default NIC's option
        // ROM comes from ipxe-qemu, which qemu-system-arm does not pull in.
        const COMMON: [&str; 10] = [
            "-accel",
            "tcg,thread=single",
            "-cpu",
            "max",
            "-smp",
            "2",
            "-m",
            "512",
            "-nic",
            "none",
        ];
        match self {
            Arch::X86_64 => COMMON.to_vec(),
            // `virt` has one UART; the evidence port is a 16550 on PCI.
            Arch::Aarch64 => [&["-M", "virt"][..], &COMMON].concat(),
        }
    }

    /// Those of the capture paths `all` its guests run every memcg scenario
    /// with. Emulating arm64 is slow (each start verifies the programs for
    /// tens of seconds), so there: the richest path (fentry) and the stack
    /// search (btf), the architecture-dependent one. The tracepoint path
    /// reads tracefs offsets only; it still runs there without BTF.
    pub fn captures(self, all: &[&'static str]) -> Vec<&'static str> {
        match self {
            Arch::X86_64 => all.to_vec(),
            Arch::Aarch64 => all
                .iter()
                .copied()
                .filter(|c| ["fentry", "btf"].contains(c))
                .collect(),
        }
    }

    /// One VM's whole run, boot to power-off, under software emulation.
    pub fn vm_timeout(self) -> Duration {
        match self {
            Arch::X86_64 => Duration::from_secs(600),
            Arch::Aarch64 => Duration::from_secs(900),
        }
    }

    /// How long the guest waits for oomtrace's ready line: loading and
    /// verifying the programs is far slower when another architecture is
    /// emulated.
    pub fn ready_secs(self) -> u32 {
        match self {
            Arch::X86_64 => 20,
            Arch::Aarch64 => 180,
        }
    }

    /// The guest's console, and the serial port the evidence goes to.
    pub fn ttys(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("ttyS0", "ttyS1"),
            // The PL011 is ttyAMA0; the PCI 16550 is the first 8250.
            Arch::Aarch64 => ("ttyAMA0", "ttyS0"),
        }
    }

    /// The qemu arguments that connect the evidence port to `file`.
    pub fn evidence_port(self, file: &Path) -> Vec<String> {
        let chardev = format!("file,id=evidence,path={}", file.display());
        match self {
            Arch::X86_64 => vec!["-serial".into(), format!("file:{}", file.display())],
            Arch::Aarch64 => vec![
                "-chardev".into(),
                chardev,
                "-device".into(),
                "pci-serial,chardev=evidence".into(),
            ],
        }
    }
}

/// The Debian suites whose indexes are searched for a foreign
/// architecture's packages: what the host's sources.list has, plus
/// backports (6.12 came to bookworm through it before security updates).
const SUITES: [&str; 4] = [
    "bookworm",
    "bookworm-updates",
    "bookworm-backports",
    "bookworm-security",
];

/// The newest `arch` package whose name matches `pattern` (a POSIX
/// extended regular expression, as `apt-cache search --names-only` takes),
/// from the suites' verified indexes cached in `cache`.
fn find_package(arch: Arch, pattern: &str, cache: &Path) -> Result<Package> {
    let packages = debian::packages(arch.debian(), &SUITES, cache)?;
    debian::newest(&packages, pattern)
        .cloned()
        .with_context(|| format!("in the {} indexes", arch.debian()))
}

/// The newest kernel image of `arch` whose package name matches
/// `pattern`, extracted once into work/cache/PACKAGE/vmlinuz (with its
/// config beside it: what the kernel was built with).
pub(super) fn kernel_image(kernel: &super::Kernel, pattern: &str, work: &Path) -> Result<PathBuf> {
    let cache = work.join("cache");
    let package = find_package(kernel.arch, pattern, &cache)
        .with_context(|| format!("kernel {}", kernel.name))?;
    let dir = cache.join(&package.name);
    let image = dir.join("vmlinuz");
    if image.is_file() {
        return Ok(image);
    }
    let deb = download_package(&package, &dir)?;
    // Into temporary files first: a failed extraction must not leave an
    // empty image that the next run takes for a cached one.
    let partial = dir.join("partial");
    pipeline(&format!(
        "dpkg-deb --fsys-tarfile '{deb}' | tar -xO --wildcards './boot/config-*' > '{dir}/config' && \
         dpkg-deb --fsys-tarfile '{deb}' | tar -xO --wildcards './boot/vmlinuz-*' > '{partial}'",
        deb = deb.display(),
        dir = dir.display(),
        partial = partial.display()
    ))?;
    fs::rename(&partial, &image)?;
    fs::remove_file(&deb)?;
    Ok(image)
}

/// Whether the kernel beside `image` can attach fentry programs, by the
/// config its package ships (ground truth oomtrace does not compute):
/// BPF trampolines attach through ftrace direct calls, which arm64 has
/// only since 6.4. `None` without a config (x86_64 images keep none).
pub fn fentry_offered(image: &Path) -> Option<bool> {
    let config = fs::read_to_string(image.with_file_name("config")).ok()?;
    Some(config_has(
        &config,
        "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
    ))
}

fn config_has(config: &str, option: &str) -> bool {
    config.lines().any(|l| l == format!("{option}=y"))
}

/// The verdict for `--capture fentry` on a kernel that cannot attach it:
/// oomtrace must refuse to start, saying fentry failed.
pub fn judge_refusal(evidence: &serde_json::Value) -> Result<String, String> {
    let error = evidence["error"].as_str().unwrap_or("");
    if error.contains("fentry on oom_kill_process() failed") {
        Ok("refused: no fentry on this kernel".to_string())
    } else if error.is_empty() {
        Err("ran, on a kernel whose config has no ftrace direct calls".to_string())
    } else {
        Err(format!("failed otherwise: {error}"))
    }
}

/// A file of a foreign architecture's Debian package, extracted once into
/// `cache/NAME/` (e.g. busybox from busybox-static): returns its path.
pub fn package_file(arch: Arch, package: &str, member: &str, cache: &Path) -> Result<PathBuf> {
    let dir = cache.join(format!("{package}-{}", arch.debian()));
    let file = dir.join(Path::new(member).file_name().context("member name")?);
    if file.is_file() {
        return Ok(file);
    }
    let found = find_package(arch, &format!("^{}$", regex_quote(package)), cache)?;
    let deb = download_package(&found, &dir)?;
    let partial = dir.join("partial");
    pipeline(&format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -xO '.{member}' > '{}'",
        deb.display(),
        partial.display()
    ))?;
    fs::rename(&partial, &file)?;
    fs::remove_file(&deb)?;
    Ok(file)
}

/// The cross toolchain for `arch`'s static binaries: cargo's environment
/// (linker, C compiler and flags for the bundled SQLite). Nothing for the
/// host's own architecture (musl-gcc from musl-tools does it).
pub fn cross_env(arch: Arch, cache: &Path) -> Result<Vec<(String, String)>> {
    if arch.is_host() {
        return Ok(Vec::new());
    }
    // Headers only: the C code compiles against Debian's musl headers for
    // the target; the libc it links is the Rust target's own (self-contained).
    let sysroot = cache.join(format!("musl-dev-{}", arch.debian()));
    let include = sysroot.join(format!("usr/include/{}-linux-musl", arch.name()));
    if !include.join("stdio.h").is_file() {
        let found = find_package(arch, "^musl-dev$", cache)?;
        let deb = download_package(&found, &sysroot)?;
        Cmd::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&sysroot)
            .run()?;
        fs::remove_file(&deb)?;
        ensure!(
            include.join("stdio.h").is_file(),
            "musl-dev has no {}",
            include.display()
        );
    }
    let target = arch.musl_target().replace('-', "_");
    Ok(vec![
        (
            format!("CARGO_TARGET_{}_LINKER", target.to_uppercase()),
            "rust-lld".into(),
        ),
        (format!("CC_{target}"), format!("{LLVM_BIN}/clang")),
        (format!("AR_{target}"), format!("{LLVM_BIN}/llvm-ar")),
        (
            format!("CFLAGS_{target}"),
            format!("-nostdlibinc -isystem {}", include.display()),
        ),
    ])
}

/// clang and llvm-ar of the LLVM that bpf-linker already needs.
pub const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";
/// What `cross_env` needs installed (clang-22 ships clang; llvm-22 llvm-ar).
pub const CROSS_PACKAGES: [&str; 2] = ["clang-22", "llvm-22"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fentry_needs_ftrace_direct_calls() {
        let arm61 =
            "CONFIG_FUNCTION_TRACER=y\nCONFIG_DYNAMIC_FTRACE_WITH_REGS=y\n# CONFIG_X is not set\n";
        assert!(!config_has(
            arm61,
            "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS"
        ));
        let arm612 = "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS=y\n";
        assert!(config_has(
            arm612,
            "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS"
        ));
        let refused = serde_json::json!({"error": "oomtrace was not ready within 180s; stderr: [\"oomtrace: cannot start tracing: fentry on oom_kill_process() failed: `bpf_raw_tracepoint_open` failed\"]"});
        assert!(judge_refusal(&refused).is_ok());
        assert!(judge_refusal(&serde_json::json!({"records": []})).is_err());
        assert!(judge_refusal(&serde_json::json!({"error": "no victim"})).is_err());
    }

    #[test]
    fn arch_column_names() {
        assert_eq!(Arch::parse("aarch64").unwrap(), Arch::Aarch64);
        assert_eq!(
            Arch::parse("x86_64").unwrap().musl_target(),
            "x86_64-unknown-linux-musl"
        );
        assert!(Arch::parse("arm64").is_err());
    }
}
