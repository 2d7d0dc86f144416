//! Debian's earlyoom for the guest's userspace-OOM-killer scenario: the
//! package's binary at /usr/bin/earlyoom, and the shared libraries it
//! links (libc and the loader) at the paths it looks for them. Downloaded
//! once into target/vm/cache. It never runs on the host: `ldd` only asks
//! the loader for its libraries.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::sh::Cmd;

const PACKAGE: &str = "earlyoom";
/// Where the guest driver looks for it.
const GUEST_PATH: &str = "usr/bin/earlyoom";

/// Puts earlyoom and its libraries into the initramfs tree `root`.
pub fn install(root: &Path, work: &Path) -> Result<()> {
    let binary = fetch(work)?;
    let target = root.join(GUEST_PATH);
    fs::create_dir_all(target.parent().context("guest path has a parent")?)?;
    fs::copy(&binary, &target).context("copy earlyoom")?;
    for library in libraries(&binary)? {
        let relative = library.strip_prefix("/").unwrap_or(&library);
        let into = root.join(relative);
        if into.exists() {
            continue;
        }
        fs::create_dir_all(into.parent().context("library path has a parent")?)?;
        // fs::copy follows symlinks: the guest gets the file itself.
        fs::copy(&library, &into).with_context(|| format!("copy {}", library.display()))?;
    }
    Ok(())
}

/// The extracted binary, downloading the package the first time.
fn fetch(work: &Path) -> Result<PathBuf> {
    let dir = work.join("cache").join(PACKAGE);
    let binary = dir.join("root").join(GUEST_PATH);
    if binary.is_file() {
        return Ok(binary);
    }
    fs::create_dir_all(&dir)?;
    eprintln!("xtask: downloading Debian's {PACKAGE}");
    let download = || {
        Command::new("apt-get")
            // As root into a directory _apt cannot write: no sandbox user.
            .args(["-o", "APT::Sandbox::User=root", "download", PACKAGE])
            .current_dir(&dir)
            .status()
            .context("apt-get download")
    };
    if !download()?.success() {
        Cmd::new("apt-get").args(["update", "-qq"]).run()?;
        let status = download()?;
        if !status.success() {
            bail!("apt-get download {PACKAGE} failed ({status})");
        }
    }
    let deb = fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    // Into a temporary tree first: a failed extraction must not look cached.
    let partial = dir.join("root.partial");
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    Cmd::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&partial)
        .run()?;
    let root = dir.join("root");
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    fs::rename(&partial, &root)?;
    fs::remove_file(&deb)?;
    if !binary.is_file() {
        bail!("{PACKAGE}'s package has no /{GUEST_PATH}");
    }
    Ok(binary)
}

/// The shared libraries `binary` links, as absolute host paths.
fn libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let listing = Cmd::new("ldd").arg(binary).stdout()?;
    Ok(parse_ldd(&listing))
}

/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file.
fn parse_ldd(listing: &str) -> Vec<PathBuf> {
    listing
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            }?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_the_files_to_copy() {
        let listing = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f00)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f01)\n\
            \tlibgone.so.1 => not found\n";
        assert_eq!(
            parse_ldd(listing),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }
}
