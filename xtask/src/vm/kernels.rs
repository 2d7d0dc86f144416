//! The kernel matrix (tests/vm/kernels) and the images it names: a path
//! in the tree, or the newest Debian kernel package matching a pattern,
//! from the host's apt sources, from other Debian suites (bullseye,
//! trixie-backports, ...) whose verified package indexes are read straight
//! from deb.debian.org (debian.rs), leaving the host's apt sources alone,
//! or of another architecture (from the archive's arm64 indexes, arch.rs).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::{Kernel, arch::Arch, debian};
use crate::sh::{Cmd, pipeline, workspace_root};

/// `name source [arch]` per line (arch defaults to x86_64); `#` starts a
/// comment.
pub fn read_matrix(path: &Path) -> Result<Vec<Kernel>> {
    let text = fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut fields = l.split_whitespace();
            match (fields.next(), fields.next(), fields.next(), fields.next()) {
                (Some(name), Some(source), arch, None) => Ok(Kernel {
                    name: name.to_string(),
                    source: source.to_string(),
                    arch: arch.map_or(Ok(Arch::X86_64), Arch::parse)?,
                }),
                _ => bail!("{}: `{l}` is not `name source [arch]`", path.display()),
            }
        })
        .collect()
}

/// The kernel image: a path as given, or the newest Debian package whose
/// name matches `debian:REGEX`, downloaded once into target/vm/cache.
pub fn image(kernel: &Kernel, work: &Path) -> Result<PathBuf> {
    let Some(spec) = kernel.source.strip_prefix("debian:") else {
        let path = workspace_root().join(&kernel.source);
        if !path.is_file() {
            bail!("kernel {}: {} does not exist", kernel.name, path.display());
        }
        return Ok(path);
    };
    // `debian:SUITE[,SUITE...]:REGEX`: another suite's index, not apt's.
    if let Some((suites, pattern)) = spec.split_once(':') {
        return from_suites(kernel, suites, pattern, work);
    }
    let pattern = spec;
    if !kernel.arch.is_host() {
        return super::arch::kernel_image(kernel, pattern, work);
    }
    let search = || {
        Cmd::new("apt-cache")
            .args(["search", "--names-only", pattern])
            .stdout()
    };
    let mut found = search()?;
    if found.trim().is_empty() {
        Cmd::new("apt-get").args(["update", "-qq"]).run()?;
        found = search()?;
    }
    let mut packages: Vec<&str> = found.lines().filter_map(|l| l.split(' ').next()).collect();
    packages.sort_by_key(|p| debian::version_key(p));
    let package = packages.last().with_context(|| {
        format!(
            "kernel {}: no Debian package matches {pattern}",
            kernel.name
        )
    })?;
    let dir = work.join("cache").join(package);
    let image = dir.join("vmlinuz");
    if image.is_file() {
        return Ok(image);
    }
    fs::create_dir_all(&dir)?;
    eprintln!("xtask: downloading {package}");
    // As root into a directory _apt cannot write: no sandbox user.
    let status = Command::new("apt-get")
        .args(["-o", "APT::Sandbox::User=root", "download", package])
        .current_dir(&dir)
        .status()
        .context("apt-get download")?;
    if !status.success() {
        bail!("apt-get download {package} failed ({status})");
    }
    let deb = fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    extract(&deb, &dir)
}

/// The kernel image out of `deb`, as `dir`/vmlinuz; the .deb is removed.
fn extract(deb: &Path, dir: &Path) -> Result<PathBuf> {
    let image = dir.join("vmlinuz");
    // Only the image: the modules are not needed (BPF, memcg, tracefs and
    // the serial console are built in).
    // Into a temporary file first: a failed extraction must not leave an
    // empty image that the next run takes for a cached one.
    let partial = dir.join("vmlinuz.partial");
    // /boot/vmlinuz-RELEASE, or /usr/lib/modules/RELEASE/vmlinuz (7.x).
    let listing = Cmd::new("dpkg-deb").arg("-c").arg(deb).stdout()?;
    let member = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|path| {
            path.starts_with("./boot/vmlinuz-")
                || (path.starts_with("./usr/lib/modules/") && path.ends_with("/vmlinuz"))
        })
        .with_context(|| format!("{} holds no kernel image", deb.display()))?;
    let script = format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -xO '{member}' > '{}'",
        deb.display(),
        partial.display()
    );
    pipeline(&script)?;
    fs::rename(&partial, &image)?;
    fs::remove_file(deb)?;
    Ok(image)
}

/// The newest package matching `pattern` in any of `suites` (comma
/// separated; see debian.rs), its image downloaded and verified once.
fn from_suites(kernel: &Kernel, suites: &str, pattern: &str, work: &Path) -> Result<PathBuf> {
    let cache = work.join("cache");
    let suites: Vec<&str> = suites.split(',').filter(|s| !s.is_empty()).collect();
    let packages = debian::packages(kernel.arch.debian(), &suites, &cache)?;
    let package = debian::newest(&packages, pattern)
        .with_context(|| format!("kernel {}: in {}", kernel.name, suites.join(",")))?;
    let dir = cache.join(&package.name);
    let image = dir.join("vmlinuz");
    if image.is_file() {
        return Ok(image);
    }
    // The image itself, wherever this generation of packages keeps it.
    let holder = debian::image_package(&packages, package)?;
    let deb = debian::download_package(holder, &dir)?;
    extract(&deb, &dir)
}
