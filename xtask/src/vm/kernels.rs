//! The kernel matrix (tests/vm/kernels) and the images it names: a path
//! in the tree, or the newest Debian kernel package matching a pattern,
//! from the host's apt sources, from other Debian suites (bullseye,
//! trixie-backports, ...) whose package index is read straight from
//! deb.debian.org, leaving the host's apt sources alone, or of another
//! architecture (from the archive's arm64 indexes, see arch.rs).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::{Kernel, arch::Arch};
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
    packages.sort_by_key(|p| version_key(p));
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

/// Debian's archive; suites named `*-security` live in its security one.
const ARCHIVE: &str = "https://deb.debian.org/debian";
const SECURITY_ARCHIVE: &str = "https://deb.debian.org/debian-security";
/// A suite's index is read again after this long.
const INDEX_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A kernel package of a suite's index.
#[derive(Debug, PartialEq)]
struct Package {
    name: String,
    version: String,
    /// Path of the .deb below the archive's root.
    filename: String,
    /// The `linux-binary-*` package it depends on, if any: newer Debian
    /// kernels (7.x) keep the image there, not in `linux-image-*`.
    binary: Option<String>,
    archive: &'static str,
}

/// The newest package matching `pattern` in any of `suites` (comma
/// separated), downloaded from the archive's pool once.
fn from_suites(kernel: &Kernel, suites: &str, pattern: &str, work: &Path) -> Result<PathBuf> {
    let cache = work.join("cache");
    fs::create_dir_all(&cache)?;
    let mut packages = Vec::new();
    for suite in suites.split(',').filter(|s| !s.is_empty()) {
        let archive = if suite.ends_with("-security") {
            SECURITY_ARCHIVE
        } else {
            ARCHIVE
        };
        let index = suite_index(&cache, archive, suite)?;
        packages.extend(parse_index(&index, archive));
    }
    // The names that match, by grep -E: the same regex dialect as
    // `apt-cache search` (POSIX extended), without a regex crate.
    let names = cache.join("names.txt");
    let list: Vec<&str> = packages
        .iter()
        .map(|p| p.name.as_str())
        .filter(|name| name.starts_with("linux-image-"))
        .collect();
    fs::write(&names, list.join("\n") + "\n")?;
    let matching = Cmd::new("grep")
        .args(["-E", pattern])
        .arg(&names)
        .stdout()?;
    let matching: Vec<&str> = matching.lines().collect();
    let package = packages
        .iter()
        .filter(|p| matching.contains(&p.name.as_str()))
        .max_by_key(|p| (version_key(&p.name), version_key(&p.version)))
        .with_context(|| {
            format!(
                "kernel {}: no package in {suites} matches {pattern}",
                kernel.name
            )
        })?;
    let dir = cache.join(&package.name);
    let image = dir.join("vmlinuz");
    if image.is_file() {
        return Ok(image);
    }
    fs::create_dir_all(&dir)?;
    // The image itself, wherever this generation of packages keeps it.
    let package = match &package.binary {
        Some(binary) => packages
            .iter()
            .find(|p| &p.name == binary && p.version == package.version)
            .with_context(|| format!("{} depends on {binary}, not in {suites}", package.name))?,
        None => package,
    };
    let url = format!("{}/{}", package.archive, package.filename);
    eprintln!(
        "xtask: downloading {} {} ({url})",
        package.name, package.version
    );
    let deb = dir.join("kernel.deb");
    Cmd::new("curl")
        .args(["-sSfL", "--retry", "3", "-o"])
        .arg(&deb)
        .arg(&url)
        .run()?;
    extract(&deb, &dir)
}

/// `suite`'s binary-amd64 package index, as text, cached for a day.
fn suite_index(cache: &Path, archive: &str, suite: &str) -> Result<String> {
    let path = cache.join(format!("Packages-{suite}-amd64"));
    let fresh = fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < INDEX_MAX_AGE);
    if !fresh {
        let url = format!("{archive}/dists/{suite}/main/binary-amd64/Packages.xz");
        eprintln!("xtask: reading {url}");
        let partial = path.with_extension("partial");
        pipeline(&format!(
            "curl -sSfL --retry 3 '{url}' | xz -dc > '{}'",
            partial.display()
        ))?;
        fs::rename(&partial, &path)?;
    }
    fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
}

/// The `linux-image-*` stanzas of a Packages index.
fn parse_index(index: &str, archive: &'static str) -> Vec<Package> {
    index
        .split("\n\n")
        .filter_map(|stanza| {
            let field = |key: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
                    .map(str::to_string)
            };
            let name = field("Package")?;
            (name.starts_with("linux-image-") || name.starts_with("linux-binary-")).then_some(())?;
            let binary = field("Depends").and_then(|depends| {
                depends
                    .split([',', '|'])
                    .map(|d| d.split_whitespace().next().unwrap_or(""))
                    .find(|d| d.starts_with("linux-binary-"))
                    .map(str::to_string)
            });
            Some(Package {
                name,
                version: field("Version")?,
                filename: field("Filename")?,
                binary,
                archive,
            })
        })
        .collect()
}

/// Orders package names by their numbers (6.1.0-9 before 6.1.0-56).
pub(super) fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_gives_kernel_packages_with_their_pool_paths() {
        let index = "Package: linux-image-5.10.0-46-amd64\nSource: linux-signed-amd64 (5.10.251+1)\n\
                     Version: 5.10.251-1\nFilename: pool/main/l/linux-signed-amd64/x.deb\n\n\
                     Package: busybox\nVersion: 1\nFilename: pool/b.deb\n";
        assert_eq!(
            parse_index(index, ARCHIVE),
            vec![Package {
                name: "linux-image-5.10.0-46-amd64".into(),
                version: "5.10.251-1".into(),
                filename: "pool/main/l/linux-signed-amd64/x.deb".into(),
                binary: None,
                archive: ARCHIVE,
            }]
        );
    }

    #[test]
    fn a_split_image_package_names_the_binary_package_that_holds_the_image() {
        let index = "Package: linux-image-7.3.4+deb13-amd64\nVersion: 7.3.4-1~bpo13+1\n\
                     Depends: dracut | initramfs-tools (>= 0.120+deb8u2), linux-base-7.3.4+deb13-amd64 \
                     (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)\n\
                     Filename: pool/main/l/linux-signed-amd64/meta.deb\n";
        let packages = parse_index(index, ARCHIVE);
        assert_eq!(
            packages[0].binary.as_deref(),
            Some("linux-binary-7.3.4+deb13-amd64")
        );
    }

    #[test]
    fn newer_abi_numbers_sort_last() {
        assert!(
            version_key("linux-image-5.10.0-46-amd64") > version_key("linux-image-5.10.0-9-amd64")
        );
        assert!(
            version_key("linux-image-7.3.4+deb13-amd64")
                > version_key("linux-image-6.12.117+deb13-amd64")
        );
    }
}
