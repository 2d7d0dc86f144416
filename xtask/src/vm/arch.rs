//! What differs between the architectures the VM matrix boots: the Rust
//! target of the guest's static binaries, qemu and its machine, the serial
//! ports, the capture paths a slow emulation has time for, and, for an
//! architecture the host's apt does not serve, Debian packages fetched from
//! the archive's own indexes (signature-checked with the host's keyring).

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result, bail, ensure};
use sha2::{Digest as _, Sha256};

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
    pub fn machine(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &[
                "-accel",
                "tcg,thread=single",
                "-cpu",
                "max",
                "-smp",
                "2",
                "-m",
                "512",
            ],
            // `virt` has one UART; the evidence port is a 16550 on PCI.
            Arch::Aarch64 => &[
                "-M",
                "virt",
                "-accel",
                "tcg,thread=single",
                "-cpu",
                "max",
                "-smp",
                "2",
                "-m",
                "512",
            ],
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
const SUITES: [(&str, &str); 4] = [
    ("https://deb.debian.org/debian", "bookworm"),
    ("https://deb.debian.org/debian", "bookworm-updates"),
    ("https://deb.debian.org/debian", "bookworm-backports"),
    (
        "https://deb.debian.org/debian-security",
        "bookworm-security",
    ),
];
/// Indexes older than this are fetched again (kernels move in days).
const INDEX_MAX_AGE: Duration = Duration::from_secs(12 * 3600);
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// One package of an index: where it is and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub url: String,
    pub sha256: String,
}

/// The newest `arch` package whose name matches `pattern` (a POSIX
/// extended regular expression, as `apt-cache search --names-only` takes),
/// from the suites' indexes cached in `cache`.
pub fn find_package(arch: Arch, pattern: &str, cache: &Path) -> Result<Package> {
    let mut packages = Vec::new();
    for (mirror, suite) in SUITES {
        let index = index(arch, mirror, suite, cache)?;
        packages.extend(parse_index(&index, mirror));
    }
    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    let matching = matching_names(&names, pattern)?;
    let newest = matching
        .iter()
        .max_by_key(|name| super::kernels::version_key(name))
        .with_context(|| format!("no Debian {} package matches {pattern}", arch.debian()))?;
    Ok(packages
        .into_iter()
        .find(|p| &p.name == newest)
        .expect("the name came from this list"))
}

/// The names `grep -E -x` accepts: the same regex dialect as apt-cache's.
fn matching_names(names: &[&str], pattern: &str) -> Result<Vec<String>> {
    use std::{io::Write as _, process::Stdio};
    let mut grep = std::process::Command::new("grep")
        .args(["-E", "-x", "-e", pattern])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run grep")?;
    let mut stdin = grep.stdin.take().context("grep's stdin")?;
    let list = names.join("\n") + "\n";
    // From a thread: grep may fill its stdout before it has read all this.
    let writer = std::thread::spawn(move || stdin.write_all(list.as_bytes()));
    let out = grep.wait_with_output().context("grep")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writing to grep panicked"))??;
    // 1: nothing matched (an empty result); 2: a bad pattern.
    ensure!(
        out.status.code().is_some_and(|c| c <= 1),
        "grep -E rejects the pattern {pattern}"
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// The suite's `Packages` index for `arch`, decompressed: from the cache if
/// fresh, else fetched with its InRelease, whose signature gpgv checks
/// against Debian's keyring and whose SHA256 list must name the index.
fn index(arch: Arch, mirror: &str, suite: &str, cache: &Path) -> Result<String> {
    let dir = cache.join(format!("debian-{}", arch.debian()));
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{suite}.Packages"));
    let fresh = fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < INDEX_MAX_AGE);
    if !fresh {
        let member = format!("main/binary-{}/Packages.xz", arch.debian());
        let release = dir.join(format!("{suite}.InRelease"));
        download(&format!("{mirror}/dists/{suite}/InRelease"), &release)?;
        Cmd::new("gpgv")
            .args(["--quiet", "--keyring", KEYRING])
            .arg(&release)
            .run()
            .with_context(|| format!("{suite}'s InRelease is not signed by Debian"))?;
        let expected = release_sha256(&fs::read_to_string(&release)?, &member)
            .with_context(|| format!("{suite}'s InRelease does not list {member}"))?;
        let xz = dir.join(format!("{suite}.Packages.xz"));
        download(&format!("{mirror}/dists/{suite}/{member}"), &xz)?;
        check_sha256(&xz, &expected)?;
        let partial = dir.join(format!("{suite}.Packages.partial"));
        pipeline(&format!(
            "xz -dc '{}' > '{}'",
            xz.display(),
            partial.display()
        ))?;
        fs::rename(&partial, &path)?;
        fs::remove_file(&xz)?;
    }
    fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
}

/// The SHA-256 an InRelease file gives for `member` (e.g.
/// `main/binary-arm64/Packages.xz`).
fn release_sha256(release: &str, member: &str) -> Option<String> {
    release
        .lines()
        .skip_while(|l| !l.starts_with("SHA256:"))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .find_map(|l| {
            let mut fields = l.split_whitespace();
            let (hash, _size, name) = (fields.next()?, fields.next()?, fields.next()?);
            (name == member).then(|| hash.to_string())
        })
}

/// The packages of a `Packages` index: name, pool URL and SHA-256.
fn parse_index(index: &str, mirror: &str) -> Vec<Package> {
    index
        .split("\n\n")
        .filter_map(|stanza| {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
                    .map(str::trim)
            };
            Some(Package {
                name: field("Package")?.to_string(),
                url: format!("{mirror}/{}", field("Filename")?),
                sha256: field("SHA256")?.to_string(),
            })
        })
        .collect()
}

/// Downloads `package` into `dir` and checks its hash; returns the .deb.
pub fn download_package(package: &Package, dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let deb = dir.join(format!("{}.deb", package.name));
    eprintln!("xtask: downloading {}", package.url);
    download(&package.url, &deb)?;
    check_sha256(&deb, &package.sha256)?;
    Ok(deb)
}

fn download(url: &str, to: &Path) -> Result<()> {
    Cmd::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--location",
            "--retry",
            "3",
        ])
        .arg("--output")
        .arg(to)
        .arg(url)
        .run()
        .with_context(|| format!("downloading {url}"))
}

fn check_sha256(file: &Path, expected: &str) -> Result<()> {
    let data = fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let actual: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ensure!(
        actual == expected,
        "{} has SHA-256 {actual}, its index says {expected}",
        file.display()
    );
    Ok(())
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
pub const CROSS_PACKAGES: [&str; 3] = ["clang-22", "llvm-22", "curl"];

fn regex_quote(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = ".[]()*+?{}|^$\\".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape of Debian's indexes (from bookworm-security's arm64 one).
    const INDEX: &str = "Package: linux-image-6.1.0-56-arm64\nSource: linux-signed-arm64 (6.1.192+2)\nVersion: 6.1.192-2\nFilename: pool/updates/main/l/linux-signed-arm64/linux-image-6.1.0-56-arm64_6.1.192-2_arm64.deb\nSize: 59812568\nSHA256: 6f4ed2d1cb9106bc977c2b1960008f175e2eed5740340634b7894e65ef5acc82\n\nPackage: busybox-static\nVersion: 1:1.35.0-4+deb12u1+b1\nFilename: pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_arm64.deb\nSHA256: 732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5\n\nPackage: no-file\nVersion: 1\n";

    #[test]
    fn index_stanzas_give_name_url_and_hash() {
        let packages = parse_index(INDEX, "https://deb.debian.org/debian-security");
        assert_eq!(packages.len(), 2, "a stanza without Filename is skipped");
        assert_eq!(packages[0].name, "linux-image-6.1.0-56-arm64");
        assert_eq!(
            packages[0].url,
            "https://deb.debian.org/debian-security/pool/updates/main/l/linux-signed-arm64/linux-image-6.1.0-56-arm64_6.1.192-2_arm64.deb"
        );
        assert_eq!(
            packages[1].sha256,
            "732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5"
        );
    }

    #[test]
    fn release_names_the_index_hash() {
        let release = "Origin: Debian\nMD5Sum:\n 0123 10 main/binary-arm64/Packages.xz\nSHA256:\n aaaa 5 main/binary-amd64/Packages.xz\n bbbb 7 main/binary-arm64/Packages.xz\n";
        assert_eq!(
            release_sha256(release, "main/binary-arm64/Packages.xz").as_deref(),
            Some("bbbb")
        );
        assert_eq!(
            release_sha256(release, "main/binary-i386/Packages.xz"),
            None
        );
    }

    #[test]
    fn names_match_as_apt_cache_would() {
        let names = [
            "linux-image-6.1.0-9-arm64",
            "linux-image-6.1.0-56-arm64",
            "linux-image-6.1.0-56-arm64-unsigned",
            "linux-image-6.12.117+deb12-arm64",
            "linux-image-6.12.117+deb12-arm64-16k",
        ];
        let found = matching_names(&names, r"^linux-image-6\.1\.0-[0-9]+-arm64$").unwrap();
        assert_eq!(
            found,
            ["linux-image-6.1.0-9-arm64", "linux-image-6.1.0-56-arm64"]
        );
        let found = matching_names(&names, r"^linux-image-6\.12\.[0-9]+\+deb12-arm64$").unwrap();
        assert_eq!(found, ["linux-image-6.12.117+deb12-arm64"]);
        assert!(matching_names(&names, "^nothing$").unwrap().is_empty());
    }

    #[test]
    fn quoting_matches_only_the_name() {
        let quoted = format!("^{}$", regex_quote("libstdc++6"));
        assert_eq!(
            matching_names(&["libstdc++6", "libstdcxx6"], &quoted).unwrap(),
            ["libstdc++6"]
        );
    }

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
