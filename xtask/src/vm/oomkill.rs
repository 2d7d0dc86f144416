//! Debian's libbpf-tools `oomkill` (C, CO-RE, a kprobe on
//! oom_kill_process()) for the guest's peer scenario: the package's own
//! binary at /usr/sbin/oomkill, and the shared libraries it and they link
//! (its dynamic section's NEEDED names, followed to their files, and its
//! program interpreter), all from Debian 12's archive through the verified
//! indexes (debian.rs: gpgv on InRelease, the SHA-256 of the index, the
//! SHA-256 of each .deb). Extracted once into target/vm/cache; nothing of
//! it runs on the host: `readelf` only reads the files.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

use super::debian::{self, regex_quote};
use crate::sh::Cmd;

/// What a Debian 12 host installs libbpf-tools from (no backports: its
/// own default, which is what a user of the package runs).
const SUITES: [&str; 3] = ["bookworm", "bookworm-updates", "bookworm-security"];
/// The tool's package and those its Depends names (the libraries of the
/// binary: libelf, zlib, glibc and its loader).
const PACKAGES: [&str; 4] = ["libbpf-tools", "libelf1", "zlib1g", "libc6"];
/// Where the guest driver looks for it (the package's own path).
const GUEST_PATH: &str = "usr/sbin/oomkill";
/// Where those packages keep their shared libraries.
const LIBRARY_DIRS: [&str; 2] = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"];
/// Enough for any chain of symlinks a package ships.
const MAX_LINKS: usize = 8;

/// Puts oomkill and every file its loading needs into the initramfs tree
/// `root`, at the paths the packages give them (a symlink as the file it
/// names). Files already there are kept.
pub fn install(root: &Path, work: &Path) -> Result<()> {
    let tree = fetch(work)?;
    let mut files = vec![PathBuf::from(GUEST_PATH)];
    files.extend(closure(&tree, Path::new(GUEST_PATH))?);
    for file in files {
        let into = root.join(&file);
        if into.exists() {
            continue;
        }
        fs::create_dir_all(into.parent().context("a guest path has a parent")?)?;
        let from = resolve(&tree, &file)?;
        fs::copy(&from, &into).with_context(|| format!("copy {}", from.display()))?;
    }
    Ok(())
}

/// The packages' files, extracted together; downloaded the first time.
fn fetch(work: &Path) -> Result<PathBuf> {
    let cache = work.join("cache");
    let dir = cache.join("libbpf-tools");
    let tree = dir.join("root");
    if tree.join(GUEST_PATH).is_file() {
        return Ok(tree);
    }
    let packages = debian::packages("amd64", &SUITES, &cache)?;
    // Into a temporary tree first: a failed step must not look cached.
    let partial = dir.join("root.partial");
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    for name in PACKAGES {
        let package = debian::newest(&packages, &format!("^{}$", regex_quote(name)))
            .with_context(|| format!("in the amd64 indexes of {}", SUITES.join(", ")))?;
        let deb = debian::download_package(package, &dir)?;
        Cmd::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&partial)
            .run()?;
        fs::remove_file(&deb)?;
    }
    if !partial.join(GUEST_PATH).is_file() {
        bail!("libbpf-tools' package has no /{GUEST_PATH}");
    }
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    fs::rename(&partial, &tree)?;
    Ok(tree)
}

/// Every file (relative to `tree`) the loader needs to run `binary`: its
/// interpreter, and the libraries it links, theirs, and so on.
fn closure(tree: &Path, binary: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let program_headers = Cmd::new("readelf")
        .arg("--program-headers")
        .arg(tree.join(binary))
        .stdout()?;
    // Also what says readelf ran (its output is read without its status).
    let interpreter = parse_interpreter(&program_headers).with_context(|| {
        format!(
            "readelf names no program interpreter of {}",
            binary.display()
        )
    })?;
    files.push(PathBuf::from(interpreter.trim_start_matches('/')));
    let mut pending = vec![binary.to_path_buf()];
    while let Some(file) = pending.pop() {
        let dynamic = Cmd::new("readelf")
            .arg("--dynamic")
            .arg(resolve(tree, &file)?)
            .stdout()?;
        for name in parse_needed(&dynamic) {
            let library = LIBRARY_DIRS
                .iter()
                .map(|dir| Path::new(dir).join(&name))
                .find(|path| fs::symlink_metadata(tree.join(path)).is_ok())
                .with_context(|| {
                    format!(
                        "{} links {name}, which none of {PACKAGES:?} holds",
                        file.display()
                    )
                })?;
            if !files.contains(&library) {
                files.push(library.clone());
                pending.push(library);
            }
        }
    }
    Ok(files)
}

/// The file `relative` is in `tree`, following symlinks inside the tree
/// (an absolute target is the tree's path, as in the guest).
fn resolve(tree: &Path, relative: &Path) -> Result<PathBuf> {
    let mut path = relative.to_path_buf();
    for _ in 0..MAX_LINKS {
        let full = tree.join(&path);
        let meta = fs::symlink_metadata(&full)
            .with_context(|| format!("{} is not in the packages", path.display()))?;
        if !meta.file_type().is_symlink() {
            return Ok(full);
        }
        let target = fs::read_link(&full)?;
        path = match target.strip_prefix("/") {
            Ok(absolute) => absolute.to_path_buf(),
            Err(_) => path
                .parent()
                .context("a symlink has a directory")?
                .join(target),
        };
    }
    bail!(
        "{} is a chain of more than {MAX_LINKS} symlinks",
        relative.display()
    )
}

/// `[Requesting program interpreter: /lib64/ld-linux-x86-64.so.2]`.
fn parse_interpreter(program_headers: &str) -> Option<String> {
    program_headers.lines().find_map(|line| {
        let rest = line.split_once("program interpreter: ")?.1;
        Some(rest.trim().trim_end_matches(']').to_string())
    })
}

/// ` 0x0000000000000001 (NEEDED)  Shared library: [libelf.so.1]`.
fn parse_needed(dynamic: &str) -> Vec<String> {
    dynamic
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| {
            let name = line.split_once('[')?.1.split_once(']')?.0;
            Some(name.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readelf_gives_the_interpreter_and_the_needed_libraries() {
        // readelf 2.40's output for Debian 12's /usr/sbin/oomkill.
        let headers = "  INTERP         0x0000000000000318 0x0000000000000318\n\
            \x20     [Requesting program interpreter: /lib64/ld-linux-x86-64.so.2]\n";
        assert_eq!(
            parse_interpreter(headers).as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(parse_interpreter("  LOAD 0x0\n"), None);
        let dynamic = "Dynamic section at offset 0x56d90 contains 27 entries:\n\
            \x20 Tag        Type                         Name/Value\n\
            \x200x0000000000000001 (NEEDED)             Shared library: [libelf.so.1]\n\
            \x200x0000000000000001 (NEEDED)             Shared library: [libz.so.1]\n\
            \x200x000000000000000c (INIT)               0x4000\n\
            \x200x000000000000000e (SONAME)             Library soname: [libelf.so.1]\n";
        assert_eq!(parse_needed(dynamic), ["libelf.so.1", "libz.so.1"]);
    }

    #[test]
    fn symlinks_resolve_inside_the_tree() {
        let tree = std::env::temp_dir().join(format!("xtask-oomkill-{}", std::process::id()));
        let lib = tree.join("lib/x86_64-linux-gnu");
        fs::create_dir_all(&lib).unwrap();
        fs::create_dir_all(tree.join("lib64")).unwrap();
        fs::write(lib.join("ld-linux-x86-64.so.2"), "loader").unwrap();
        fs::write(lib.join("libz.so.1.2.13"), "zlib").unwrap();
        std::os::unix::fs::symlink("libz.so.1.2.13", lib.join("libz.so.1")).unwrap();
        std::os::unix::fs::symlink(
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            tree.join("lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        let relative = resolve(&tree, Path::new("lib/x86_64-linux-gnu/libz.so.1")).unwrap();
        let absolute = resolve(&tree, Path::new("lib64/ld-linux-x86-64.so.2")).unwrap();
        let missing = resolve(&tree, Path::new("lib/libgone.so.1"));
        let _ = fs::remove_dir_all(&tree);
        assert_eq!(relative, lib.join("libz.so.1.2.13"));
        assert_eq!(absolute, lib.join("ld-linux-x86-64.so.2"));
        assert!(missing.is_err());
    }
}
