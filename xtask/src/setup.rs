//! What a fresh machine lacks, installed once and checked quickly after.
//! See ../shared/notes/toolchain.md for why each piece and version.

use anyhow::{Context as _, Result, bail};

use crate::sh::{Cmd, is_root};

/// LLVM matching rustc's (22) for bpf-linker, and its link dependencies.
const APT_PACKAGES: [&str; 4] = [
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

pub fn ensure() -> Result<()> {
    nightly()?;
    apt_packages()?;
    bpf_linker()?;
    Ok(())
}

pub fn nightly() -> Result<()> {
    let toolchains = Cmd::new("rustup").args(["toolchain", "list"]).stdout()?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        bail!(
            "the eBPF programs build with a nightly toolchain: `rustup toolchain install nightly`"
        );
    }
    let installed = Cmd::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .stdout()?;
    // rust-src for -Z build-std=core; clippy lints the eBPF crate.
    for component in ["rust-src", "clippy"] {
        if !installed.lines().any(|l| l.starts_with(component)) {
            Cmd::new("rustup")
                .args(["component", "add", component, "--toolchain", "nightly"])
                .run()?;
        }
    }
    Ok(())
}

fn apt_packages() -> Result<()> {
    install_missing(&APT_PACKAGES).context("installing LLVM 22 for bpf-linker")
}

/// Installs those of `packages` that dpkg does not have.
pub fn install_missing(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| {
            let status = Cmd::new("dpkg-query")
                .args(["-W", "-f=${Status}", package])
                .stdout();
            !status.is_ok_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("missing packages {missing:?}: run `sudo cargo xtask setup`");
    }
    Cmd::new("apt-get").args(["update", "-qq"]).run()?;
    Cmd::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
}

fn bpf_linker() -> Result<()> {
    if Cmd::new("bpf-linker").arg("--version").succeeds() {
        return Ok(());
    }
    // bpf-linker's default features want LLVM 23; Debian has 22.
    let path = format!(
        "{LLVM_PREFIX}/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    Cmd::new("cargo")
        .args([
            "install",
            "--locked",
            "bpf-linker",
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("PATH", path)
        .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX)
        .run()
        .context("installing bpf-linker")
}

/// kubernetes-validate (PyPI) in a venv under target/, for the deploy
/// tests; returns its executable.
pub fn kubernetes_validate() -> Result<std::path::PathBuf> {
    let venv = crate::sh::workspace_root().join("target/venv");
    let tool = venv.join("bin/kubernetes-validate");
    if tool.is_file() {
        return Ok(tool);
    }
    Cmd::new("/usr/bin/python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .run()
        .context("creating a Python venv for kubernetes-validate")?;
    Cmd::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "kubernetes-validate==1.37.0"])
        .run()
        .context("installing kubernetes-validate from PyPI")?;
    Ok(tool)
}
