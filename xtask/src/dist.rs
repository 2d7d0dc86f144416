//! `cargo xtask dist`: the installable artifacts, into target/dist/.
//!
//! Everything wraps one static (musl) binary: the .deb installs it as
//! /usr/bin/oomtrace, the OCI image holds it and nothing else. The same
//! binary for aarch64 (arm64 nodes) ships beside it, cross-built. The man page
//! and completions come from that same binary (`oomtrace generate-docs`),
//! so they describe exactly what ships.

use std::{
    fmt::Write as _,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::{
    setup,
    sh::{Cmd, workspace_root},
    vm::arch::{self, Arch},
};

pub const MUSL: &str = "x86_64-unknown-linux-musl";
/// Every architecture a static binary is built for.
pub const ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The binary-size goal README.md states.
const MAX_BINARY_BYTES: u64 = 10 << 20;
/// Where the binary sits in the image; the image has nothing else.
const IMAGE_BINARY: &str = "oomtrace";
/// The unit in deploy/ is for a hand install; the package's binary is here.
const HAND_INSTALLED: &str = "/usr/local/bin/oomtrace";
const PACKAGED: &str = "/usr/bin/oomtrace";

/// What `build` made, by path.
pub struct Artifacts {
    pub deb: PathBuf,
    pub image: PathBuf,
    pub sums: PathBuf,
}

pub fn dir() -> PathBuf {
    workspace_root().join("target/dist")
}

/// Builds every artifact and SHA256SUMS.
pub fn build() -> Result<Artifacts> {
    ensure_tools()?;
    let dist = dir();
    if dist.exists() {
        fs::remove_dir_all(&dist).with_context(|| format!("cannot clear {}", dist.display()))?;
    }
    fs::create_dir_all(&dist)?;
    let binary = static_binary()?;
    let aarch64 = static_binary_for(Arch::Aarch64)?;
    let staging = dist.join("staging");
    stage(&binary, &staging)?;
    let deb = deb()?;
    let image = image(&binary)?;
    let sums = checksums(&[&binary, &aarch64, &deb, &image])?;
    fs::remove_dir_all(&staging)?;
    for artifact in [&binary, &aarch64, &deb, &image, &sums] {
        eprintln!(
            "xtask: {} ({} bytes)",
            artifact.display(),
            fs::metadata(artifact)?.len()
        );
    }
    Ok(Artifacts { deb, image, sums })
}

/// The musl targets, cargo-deb, `musl-tools` (musl-gcc, for the bundled
/// SQLite), and for aarch64 clang (the C cross compiler; the headers are
/// Debian's musl-dev for arm64, see vm/arch.rs).
pub fn ensure_tools() -> Result<()> {
    setup::ensure()?;
    setup::install_missing(&["musl-tools", "binutils", "file"])
        .context("installing musl-tools, strip and file for the static binary")?;
    setup::install_missing(&arch::CROSS_PACKAGES)
        .context("installing clang for the aarch64 cross build")?;
    // The arm64 headers (and the VMs' kernels) come from Debian's archive.
    setup::install_missing(&crate::vm::debian::TOOLS)
        .context("installing curl, gpgv, xz and Debian's keyring for the archive downloads")?;
    for arch in ARCHES {
        Cmd::new("rustup")
            .args(["target", "add", arch.musl_target(), "--toolchain", "stable"])
            .run()?;
    }
    let has_deb = Cmd::new("cargo").args(["deb", "--version"]).stdout();
    if !has_deb.is_ok_and(|v| v.starts_with("3.")) {
        // 3.8 is the newest that builds with rustc 1.85+; --locked keeps
        // its dependency versions the ones it was released with.
        Cmd::new("cargo")
            .args(["install", "--locked", "cargo-deb@3.8.0"])
            .run()
            .context("installing cargo-deb")?;
    }
    Ok(())
}

/// Builds the musl release binaries (also the VM test's hog and guest) and
/// returns the stripped oomtrace, checked to be static and within the goal.
pub fn static_binary() -> Result<PathBuf> {
    static_binary_for(Arch::X86_64)
}

/// [`static_binary`] for `arch`.
pub fn static_binary_for(arch: Arch) -> Result<PathBuf> {
    // Also the VM test's hog and guest driver, for the same target. The
    // target's default is static-pie: static, and still loaded at a random
    // address, which a root daemon should keep. (`file` says "static-pie
    // linked", lintian mistakes it for a library: see lintian_warnings.)
    let target = arch.musl_target();
    let mut build = Cmd::new("cargo");
    build
        .args(["build", "--release", "--target", target])
        .args([
            "--package",
            "oomtrace",
            "--package",
            "oomtrace-tests",
            "--bins",
        ]);
    for (key, value) in arch::cross_env(arch, &workspace_root().join("target/vm/cache"))? {
        build.env(&key, value);
    }
    build.run()?;
    let built = workspace_root()
        .join("target")
        .join(target)
        .join("release/oomtrace");
    fs::create_dir_all(dir())?;
    let binary = binary_path_for(arch);
    fs::copy(&built, &binary).with_context(|| format!("copy {}", built.display()))?;
    // .comment only names the compilers. Binutils' strip knows only the
    // host's architecture; LLVM's (the one bpf-linker needs) knows all.
    let strip = if arch.is_host() {
        "strip".to_string()
    } else {
        format!("{}/llvm-strip", arch::LLVM_BIN)
    };
    Cmd::new(strip)
        .args(["--strip-all", "--remove-section=.comment"])
        .arg(&binary)
        .run()?;
    let kind = Cmd::new("file").arg("-b").arg(&binary).stdout()?;
    ensure!(
        kind.contains("static-pie linked") || kind.contains("statically linked"),
        "{} is not static: {kind}",
        binary.display()
    );
    let machine = match arch {
        Arch::X86_64 => "x86-64",
        Arch::Aarch64 => "ARM aarch64",
    };
    ensure!(
        kind.contains(machine),
        "{} is not for {machine}: {kind}",
        binary.display()
    );
    let size = fs::metadata(&binary)?.len();
    ensure!(
        size <= MAX_BINARY_BYTES,
        "{} is {size} bytes, over the {MAX_BINARY_BYTES}-byte goal",
        binary.display()
    );
    Ok(binary)
}

/// Where `static_binary_for` puts the artifact.
pub fn binary_path_for(arch: Arch) -> PathBuf {
    dir().join(format!("oomtrace-{VERSION}-{}-linux-musl", arch.name()))
}

/// What cargo-deb's assets in oomtrace/Cargo.toml name: the generated man
/// page and completions, and the unit pointed at /usr/bin.
fn stage(binary: &Path, staging: &Path) -> Result<()> {
    fs::create_dir_all(staging)?;
    // Under a fixed name: cargo-deb's asset list cannot say the version.
    fs::copy(binary, staging.join("oomtrace"))?;
    Cmd::new(binary)
        .arg("generate-docs")
        .arg(staging)
        .run()
        .context("generating the man page and completions")?;
    let unit_path = workspace_root().join("deploy/oomtrace.service");
    let unit =
        fs::read_to_string(&unit_path).with_context(|| format!("read {}", unit_path.display()))?;
    ensure!(
        unit.contains(HAND_INSTALLED),
        "{} no longer runs {HAND_INSTALLED}",
        unit_path.display()
    );
    // The hand-install instructions at its top do not apply to the package.
    let body: String = unit
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.replace(HAND_INSTALLED, PACKAGED)))
        .collect();
    let unit = format!(
        "# Installed by the oomtrace package; records also go to the journal.\n\
         # Override with `systemctl edit oomtrace`.\n{body}"
    );
    fs::write(staging.join("oomtrace.service"), unit)?;
    Ok(())
}

/// The assets oomtrace/Cargo.toml's `[package.metadata.deb]` names live in
/// target/dist/staging (cargo-deb reads no paths from the command line).
fn deb() -> Result<PathBuf> {
    let deb = dir().join(format!("oomtrace_{VERSION}_amd64.deb"));
    // --no-build: the assets are the artifacts built above, not a rebuild;
    // --no-strip: the binary is stripped already, and identical to the
    // standalone artifact.
    Cmd::new("cargo")
        .args(["deb", "--package", "oomtrace", "--no-build", "--no-strip"])
        .args(["--target", MUSL, "--output"])
        .arg(&deb)
        .run()?;
    ensure!(deb.is_file(), "cargo deb wrote no {}", deb.display());
    Ok(deb)
}

/// `oomtrace:VERSION` as a docker-archive (what `docker save` writes and
/// `docker load`, podman and skopeo read): manifest.json, the config JSON
/// and one layer tar, each named by its SHA-256. Written directly: there
/// is no base image to pull, and no daemon is needed to build it.
fn image(binary: &Path) -> Result<PathBuf> {
    let layer = layer_tar(binary)?;
    let layer_digest = sha256_hex(&layer);
    let labels = json!({
        "org.opencontainers.image.title": "oomtrace",
        "org.opencontainers.image.description": "Trace Linux OOM kills from the kernel, as JSON lines",
        "org.opencontainers.image.source": "https://github.com/oomtrace/oomtrace",
        "org.opencontainers.image.version": VERSION,
        // The binary embeds the eBPF object, which is GPL-2.0-only.
        "org.opencontainers.image.licenses": "(MIT OR Apache-2.0) AND GPL-2.0-only",
    });
    // uid 0, but with only the capabilities the runtime grants (the
    // DaemonSet: BPF, PERFMON, SYS_RESOURCE). A non-root uid would need
    // those as ambient capabilities, which Kubernetes cannot set, or file
    // capabilities, which no_new_privs (allowPrivilegeEscalation: false)
    // ignores; and tracefs and the kubelet's logs are readable by root only.
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        // Fixed, so the same binary gives the same image digest.
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "User": "0:0",
            "Entrypoint": [format!("/{IMAGE_BINARY}")],
            "Cmd": ["--format=json"],
            "Labels": labels,
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_digest}")] },
        "history": [{ "created": "1970-01-01T00:00:00Z", "created_by": "cargo xtask dist" }],
    });
    let config = serde_json::to_vec(&config)?;
    let config_name = format!("{}.json", sha256_hex(&config));
    let layer_name = format!("{layer_digest}/layer.tar");
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": [format!("oomtrace:{VERSION}")],
        "Layers": [layer_name],
    }]))?;

    let path = dir().join(format!("oomtrace-{VERSION}-image.tar"));
    let file = fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut archive = tar::Builder::new(file);
    append(&mut archive, &format!("{layer_digest}/"), &[], 0o755)?;
    append(&mut archive, &layer_name, &layer, 0o644)?;
    append(&mut archive, &config_name, &config, 0o644)?;
    append(&mut archive, "manifest.json", &manifest, 0o644)?;
    archive.into_inner()?.flush()?;
    Ok(path)
}

/// The image's only layer: the binary at /oomtrace.
fn layer_tar(binary: &Path) -> Result<Vec<u8>> {
    let contents = fs::read(binary).with_context(|| format!("read {}", binary.display()))?;
    let mut layer = tar::Builder::new(Vec::new());
    append(&mut layer, IMAGE_BINARY, &contents, 0o755)?;
    Ok(layer.into_inner()?)
}

/// A root-owned entry with a fixed mtime (reproducible); a name ending in
/// `/` is a directory.
fn append<W: std::io::Write>(
    archive: &mut tar::Builder<W>,
    name: &str,
    contents: &[u8],
    mode: u32,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(if name.ends_with('/') {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    header.set_size(contents.len() as u64);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    archive
        .append_data(&mut header, name, contents)
        .with_context(|| format!("cannot add {name} to a tar"))
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// SHA256SUMS in `sha256sum --check` format.
fn checksums(artifacts: &[&Path]) -> Result<PathBuf> {
    let mut sums = String::new();
    for artifact in artifacts {
        let name = artifact
            .file_name()
            .and_then(|n| n.to_str())
            .context("artifact name")?;
        let data = fs::read(artifact).with_context(|| format!("read {}", artifact.display()))?;
        writeln!(sums, "{}  {name}", sha256_hex(&data))?;
    }
    let path = dir().join("SHA256SUMS");
    fs::write(&path, sums)?;
    Ok(path)
}

/// `cargo xtask dist`.
pub fn dist() -> Result<()> {
    let artifacts = build()?;
    if !artifacts.sums.is_file() {
        bail!("no {}", artifacts.sums.display());
    }
    println!("{}", fs::read_to_string(&artifacts.sums)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_fips_180_example() {
        // FIPS 180-2, appendix B.1: SHA-256("abc").
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
