//! The man page and shell completions, generated from the clap definition
//! itself (the way bpfman and ripgrep do it) so they cannot drift from
//! `--help`. Reached through `oomtrace generate-docs DIR`, which is not in
//! the clap definition: clap_complete lists even hidden subcommands, and
//! users should not be offered a packaging step.

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::{Generator as _, Shell};

use crate::cli::Cli;

const SUBCOMMAND: &str = "generate-docs";

/// The DIR of `oomtrace generate-docs DIR`, if that is the command line.
pub fn requested() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != SUBCOMMAND {
        return None;
    }
    match (args.next(), args.next()) {
        (Some(dir), None) => Some(dir.into()),
        _ => Some(PathBuf::new()),
    }
}

/// `oomtrace generate-docs DIR`; exits 2 without exactly one DIR.
pub fn run(dir: &Path) -> ExitCode {
    if dir.as_os_str().is_empty() {
        eprintln!("usage: oomtrace {SUBCOMMAND} DIR");
        return ExitCode::from(2);
    }
    match generate(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oomtrace: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `oomtrace.1`, `oomtrace.bash`, `_oomtrace` (zsh) and
/// `oomtrace.fish` into `dir`.
pub fn generate(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut command = Cli::command();
    command.build();

    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .context("cannot render the man page")?;
    write(dir, "oomtrace.1", &page)?;

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, "oomtrace", &mut script);
        write(dir, &shell.file_name("oomtrace"), &script)?;
    }
    Ok(())
}

fn write(dir: &Path, name: &str, contents: &[u8]) -> Result<()> {
    let path = dir.join(name);
    fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_man_page_and_three_completions_without_the_hidden_subcommand() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("oomtrace-docs-{}", std::process::id()));
        generate(&dir)?;
        let page = fs::read_to_string(dir.join("oomtrace.1"))?;
        assert!(page.contains(".TH oomtrace 1"), "{page}");
        // Every flag --help shows is in the page (roff escapes each '-').
        let flags: Vec<String> = Cli::command()
            .get_arguments()
            .filter(|arg| !arg.is_hide_set())
            .filter_map(|arg| arg.get_long().map(str::to_owned))
            .collect();
        assert!(flags.len() > 5, "{flags:?}");
        for flag in &flags {
            let roff = format!("\\-\\-{}", flag.replace('-', "\\-"));
            assert!(page.contains(&roff), "--{flag} missing from the man page");
        }
        let bash = fs::read_to_string(dir.join("oomtrace.bash"))?;
        assert!(bash.contains("complete -F _oomtrace"), "{bash}");
        assert!(fs::read_to_string(dir.join("_oomtrace"))?.starts_with("#compdef oomtrace"));
        let fish = fs::read_to_string(dir.join("oomtrace.fish"))?;
        assert!(fish.contains("complete -c oomtrace"), "{fish}");
        for text in [&page, &bash, &fish] {
            assert!(!text.contains(SUBCOMMAND), "the packaging step leaked");
        }
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
