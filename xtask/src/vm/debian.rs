//! Debian packages straight from the archive's own indexes, for any
//! architecture and any list of suites, leaving the host's apt sources
//! alone. Everything is verified: each suite's InRelease by gpgv against
//! the host's Debian keyring (which holds the security archive's keys too),
//! the Packages.xz by the SHA-256 that InRelease gives, each .deb by the
//! SHA-256 its index gives.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result, ensure};
use sha2::{Digest as _, Sha256};

use crate::sh::{Cmd, pipeline};

/// What fetching from the archive runs: curl, gpgv against Debian's
/// keyring, and xz for the indexes (present on Debian, named for a
/// machine that lacks one).
pub const TOOLS: [&str; 4] = ["curl", "gpgv", "xz-utils", "debian-archive-keyring"];

const ARCHIVE: &str = "https://deb.debian.org/debian";
const SECURITY_ARCHIVE: &str = "https://deb.debian.org/debian-security";
/// Indexes older than this are fetched again (kernels move in days).
const INDEX_MAX_AGE: Duration = Duration::from_secs(12 * 3600);
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The mirror that serves `suite`: `*-security` suites are in the
/// security archive.
pub fn mirror(suite: &str) -> &'static str {
    if suite.ends_with("-security") {
        SECURITY_ARCHIVE
    } else {
        ARCHIVE
    }
}

/// One package of an index: where it is and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub url: String,
    pub sha256: String,
    /// The `linux-binary-*` package it depends on, if any: newer Debian
    /// kernels (7.x) keep the image there, not in `linux-image-*`.
    pub binary: Option<String>,
}

/// The packages of `arch` (Debian's name: amd64, arm64) in all of
/// `suites`, from their verified indexes cached in `cache`.
pub fn packages(arch: &str, suites: &[&str], cache: &Path) -> Result<Vec<Package>> {
    let mut packages = Vec::new();
    for suite in suites {
        let mirror = mirror(suite);
        let index = index(arch, mirror, suite, cache)?;
        packages.extend(parse_index(&index, mirror));
    }
    Ok(packages)
}

/// The newest of `packages` whose name matches `pattern` (a POSIX
/// extended regular expression, as `apt-cache search --names-only` takes,
/// matched against the whole name): by the numbers in its name, then by
/// its version (the same name in a point release and its security update).
pub fn newest<'a>(packages: &'a [Package], pattern: &str) -> Result<&'a Package> {
    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    let matching = matching_names(&names, pattern)?;
    packages
        .iter()
        .filter(|p| matching.contains(&p.name))
        .max_by_key(|p| (version_key(&p.name), version_key(&p.version)))
        .with_context(|| format!("no Debian package matches {pattern}"))
}

/// The package that holds `package`'s files: itself, or for a 7.x kernel
/// the `linux-binary-*` package of the same version it depends on.
pub fn image_package<'a>(packages: &'a [Package], package: &'a Package) -> Result<&'a Package> {
    let Some(binary) = &package.binary else {
        return Ok(package);
    };
    packages
        .iter()
        .find(|p| &p.name == binary && p.version == package.version)
        .with_context(|| {
            format!(
                "{} depends on {binary} {}, which no index lists",
                package.name, package.version
            )
        })
}

/// Orders package names by their numbers (6.1.0-9 before 6.1.0-56).
pub fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
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

/// `pattern` for exactly the name `s`.
pub fn regex_quote(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = ".[]()*+?{}|^$\\".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// The suite's `Packages` index for `arch`, decompressed: from the cache if
/// fresh, else fetched with its InRelease, whose signature gpgv checks
/// against Debian's keyring and whose SHA256 list must name the index.
fn index(arch: &str, mirror: &str, suite: &str, cache: &Path) -> Result<String> {
    let dir = cache.join(format!("debian-{arch}"));
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{suite}.Packages"));
    let fresh = fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < INDEX_MAX_AGE);
    if !fresh {
        let member = format!("main/binary-{arch}/Packages.xz");
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

/// The packages of a `Packages` index: name, version, pool URL, SHA-256
/// and the `linux-binary-*` dependency. Stanzas without a file or hash are
/// skipped.
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
            let binary = field("Depends").and_then(|depends| {
                depends
                    .split([',', '|'])
                    .map(|d| d.split_whitespace().next().unwrap_or(""))
                    .find(|d| d.starts_with("linux-binary-"))
                    .map(str::to_string)
            });
            Some(Package {
                name: field("Package")?.to_string(),
                version: field("Version")?.to_string(),
                url: format!("{mirror}/{}", field("Filename")?),
                sha256: field("SHA256")?.to_string(),
                binary,
            })
        })
        .collect()
}

/// Downloads `package` into `dir` and checks its hash; returns the .deb.
pub fn download_package(package: &Package, dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let deb = dir.join(format!("{}.deb", package.name));
    eprintln!("xtask: downloading {} {}", package.url, package.version);
    download(&package.url, &deb)?;
    if let Err(e) = check_sha256(&deb, &package.sha256) {
        // Not left where a later step could take it for the package.
        let _ = fs::remove_file(&deb);
        return Err(e);
    }
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
        assert_eq!(packages[0].version, "6.1.192-2");
        assert_eq!(packages[0].binary, None);
        assert_eq!(
            packages[0].url,
            "https://deb.debian.org/debian-security/pool/updates/main/l/linux-signed-arm64/linux-image-6.1.0-56-arm64_6.1.192-2_arm64.deb"
        );
        assert_eq!(
            packages[1].sha256,
            "732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5"
        );
    }

    // A 7.x kernel's meta package and the binary package with its image
    // (the shape of trixie-backports' amd64 index).
    const SPLIT: &str = "Package: linux-image-7.3.4+deb13-amd64\nVersion: 7.3.4-1~bpo13+1\n\
        Depends: dracut | initramfs-tools (>= 0.120+deb8u2), linux-base-7.3.4+deb13-amd64 \
        (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)\n\
        Filename: pool/main/l/linux-signed-amd64/meta.deb\nSHA256: aaaa\n\n\
        Package: linux-binary-7.3.4+deb13-amd64\nVersion: 7.3.4-1~bpo13+0\n\
        Filename: pool/main/l/linux/old.deb\nSHA256: bbbb\n\n\
        Package: linux-binary-7.3.4+deb13-amd64\nVersion: 7.3.4-1~bpo13+1\n\
        Filename: pool/main/l/linux-signed-amd64/binary.deb\nSHA256: cccc\n";

    #[test]
    fn a_split_image_package_leads_to_its_binary_package_of_the_same_version() {
        let packages = parse_index(SPLIT, ARCHIVE);
        assert_eq!(
            packages[0].binary.as_deref(),
            Some("linux-binary-7.3.4+deb13-amd64")
        );
        let image = image_package(&packages, &packages[0]).unwrap();
        assert_eq!(
            image.url,
            "https://deb.debian.org/debian/pool/main/l/linux-signed-amd64/binary.deb"
        );
        assert_eq!(image.sha256, "cccc");
        // Without its binary package in the indexes: an error, not the meta.
        assert!(image_package(&packages[..1], &packages[0]).is_err());
        // A package without the indirection is its own image package.
        assert_eq!(
            image_package(&packages, &packages[2]).unwrap().sha256,
            "cccc"
        );
    }

    #[test]
    fn newest_by_name_then_version() {
        let mut packages = parse_index(INDEX, ARCHIVE);
        packages.extend(parse_index(
            &INDEX
                .replace("6.1.0-56", "6.1.0-9")
                .replace("6.1.192-2", "6.1.99-1"),
            ARCHIVE,
        ));
        packages.extend(parse_index(
            &INDEX.replace("6.1.192-2", "6.1.192-3"),
            SECURITY_ARCHIVE,
        ));
        let found = newest(&packages, r"^linux-image-6\.1\.0-[0-9]+-arm64$").unwrap();
        assert_eq!(found.name, "linux-image-6.1.0-56-arm64");
        assert_eq!(found.version, "6.1.192-3");
        assert!(found.url.starts_with(SECURITY_ARCHIVE));
        assert!(newest(&packages, "^nothing$").is_err());
    }

    #[test]
    fn security_suites_come_from_the_security_archive() {
        assert_eq!(
            mirror("bullseye-security"),
            "https://deb.debian.org/debian-security"
        );
        assert_eq!(mirror("bullseye"), "https://deb.debian.org/debian");
        assert_eq!(mirror("trixie-backports"), "https://deb.debian.org/debian");
        assert_eq!(mirror("bookworm-updates"), "https://deb.debian.org/debian");
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
        assert_eq!(
            release_sha256(release, "main/binary-amd64/Packages.xz").as_deref(),
            Some("aaaa")
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
