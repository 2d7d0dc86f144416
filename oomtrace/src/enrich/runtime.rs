//! Which language runtime the victim was, and the memory cap it was told
//! to keep: a JVM's -Xmx, Node's --max-old-space-size, Go's GOMEMLIMIT,
//! .NET's GCHeapHardLimit. Read from the command line and environment the
//! kernel side copied; only the setting is reported, never the rest of
//! the environment (it holds secrets).

use crate::{
    decode::Cmdline,
    report::{RuntimeKind, RuntimeReport, SettingSource},
};

pub use crate::report::CapturedAt;

/// The JVM's default MaxRAMPercentage since JDK 10 and 8u191.
const JVM_DEFAULT_PERCENT: f64 = 25.0;
/// .NET's default GC heap hard limit under a container memory limit.
const DOTNET_DEFAULT_PERCENT: f64 = 75.0;

/// A cap and where it came from.
#[derive(Debug, Clone, PartialEq)]
struct Setting {
    bytes: Option<u64>,
    percent: Option<f64>,
    text: String,
    source: SettingSource,
}

pub fn analyze(cmdline: &Cmdline, at: CapturedAt) -> RuntimeReport {
    let args: Vec<&str> = strings(&cmdline.args);
    // Split, not validated: only the values looked up need to be UTF-8
    // (the environment is up to 8 KiB, most of it never read).
    let env: Vec<(&[u8], &[u8])> = cmdline
        .env
        .split(|b| *b == 0)
        .filter_map(|e| {
            let eq = e.iter().position(|b| *b == b'=')?;
            Some((&e[..eq], &e[eq + 1..]))
        })
        .collect();
    // getenv() returns the first of duplicate names.
    let getenv = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name.as_bytes())
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    let program = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or("");

    let (kind, setting) = if program == "java" {
        (Some(RuntimeKind::Jvm), Some(jvm(&args[1..], &getenv)))
    } else if program == "node" || program == "nodejs" {
        (Some(RuntimeKind::Node), node(&args[1..], &getenv))
    } else if program == "dotnet"
        || getenv("DOTNET_GCHeapHardLimit").is_some()
        || getenv("DOTNET_GCHeapHardLimitPercent").is_some()
    {
        (Some(RuntimeKind::Dotnet), Some(dotnet(&getenv)))
    } else if let Some(interpreter) = interpreter(program) {
        (Some(interpreter), None)
    } else if let Some(limit) = getenv("GOMEMLIMIT") {
        // Only the Go runtime reads GOMEMLIMIT.
        (Some(RuntimeKind::Go), Some(go(limit)))
    } else {
        (None, None)
    };
    RuntimeReport {
        heap_limit_bytes: setting.as_ref().and_then(|s| s.bytes),
        heap_limit_percent: setting.as_ref().and_then(|s| s.percent),
        setting: setting.as_ref().map(|s| s.text.clone()),
        setting_source: setting.map(|s| s.source),
        args_truncated: cmdline.args_truncated,
        env_truncated: cmdline.env_truncated,
        // Weighed against the limit by the caller, who knows it.
        ..RuntimeReport::new(kind, at)
    }
}

/// NUL-separated strings; a string that is not UTF-8 cannot be a setting
/// we parse and is skipped.
fn strings(bytes: &[u8]) -> Vec<&str> {
    bytes
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| std::str::from_utf8(s).ok())
        .collect()
}

fn interpreter(program: &str) -> Option<RuntimeKind> {
    [
        ("python", RuntimeKind::Python),
        ("ruby", RuntimeKind::Ruby),
        ("perl", RuntimeKind::Perl),
        ("php", RuntimeKind::Php),
    ]
    .into_iter()
    .find(|(prefix, _)| program.starts_with(prefix))
    .map(|(_, kind)| kind)
}

/// HotSpot reads JAVA_TOOL_OPTIONS, then the command line (the launcher
/// puts JDK_JAVA_OPTIONS first), then _JAVA_OPTIONS; the last -Xmx wins,
/// and MaxRAMPercentage counts only without one. JVM options end at the
/// main class, `-jar FILE` or `-m MODULE`; later ones are the program's.
fn jvm<'a>(args: &[&'a str], getenv: &dyn Fn(&str) -> Option<&'a str>) -> Setting {
    let mut options: Vec<(&str, SettingSource)> = Vec::new();
    let from_env = |name: &str, options: &mut Vec<(&'a str, SettingSource)>| {
        for option in getenv(name).unwrap_or("").split_whitespace() {
            options.push((option, SettingSource::Env(name.to_string())));
        }
    };
    from_env("JAVA_TOOL_OPTIONS", &mut options);
    from_env("JDK_JAVA_OPTIONS", &mut options);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if !arg.starts_with('-') || matches!(*arg, "-jar" | "-m" | "--module") {
            break;
        }
        // Options whose value is the next argument.
        if matches!(
            *arg,
            "-cp"
                | "-classpath"
                | "--class-path"
                | "-p"
                | "--module-path"
                | "--upgrade-module-path"
                | "--add-modules"
                | "--add-reads"
                | "--add-exports"
                | "--add-opens"
                | "--limit-modules"
                | "--patch-module"
                | "--enable-native-access"
        ) {
            rest.next();
            continue;
        }
        options.push((arg, SettingSource::Argv));
    }
    from_env("_JAVA_OPTIONS", &mut options);

    let mut max: Option<Setting> = None;
    let mut percent: Option<Setting> = None;
    for (option, source) in options {
        let size = option
            .strip_prefix("-Xmx")
            .or_else(|| option.strip_prefix("-XX:MaxHeapSize="));
        if let Some(bytes) = size.and_then(jvm_size) {
            max = Some(Setting {
                bytes: Some(bytes),
                percent: None,
                text: option.to_string(),
                source,
            });
        } else if let Some(value) = option
            .strip_prefix("-XX:MaxRAMPercentage=")
            .and_then(|p| p.parse::<f64>().ok())
            .filter(|p| (0.0..=100.0).contains(p))
        {
            percent = Some(Setting {
                bytes: None,
                percent: Some(value),
                text: option.to_string(),
                source,
            });
        }
    }
    max.or(percent).unwrap_or_else(|| Setting {
        bytes: None,
        percent: Some(JVM_DEFAULT_PERCENT),
        text: "-XX:MaxRAMPercentage=25 (JVM default)".to_string(),
        source: SettingSource::Default,
    })
}

/// `4g`, `512m`, `1024k`, `1073741824`.
fn jvm_size(value: &str) -> Option<u64> {
    let (digits, unit) = match value.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&value[..i], c.to_ascii_lowercase()),
        _ => (value, 'b'),
    };
    let shift = match unit {
        'b' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        't' => 40,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// `--max-old-space-size=MiB` (or `_` for `-`, or the value as the next
/// argument) in NODE_OPTIONS and before the script; the command line wins.
fn node<'a>(args: &[&'a str], getenv: &dyn Fn(&str) -> Option<&'a str>) -> Option<Setting> {
    let find = |options: &[&str], source: SettingSource| {
        let mut found = None;
        let mut it = options.iter();
        while let Some(option) = it.next() {
            if !option.starts_with('-') {
                break;
            }
            let normalized = option.replace('_', "-");
            let value = match normalized.strip_prefix("--max-old-space-size") {
                Some(rest) if rest.starts_with('=') => rest[1..].to_string(),
                Some("") => it.next().map(|v| v.to_string()).unwrap_or_default(),
                _ => continue,
            };
            if let Ok(mib) = value.parse::<u64>() {
                found = Some(Setting {
                    bytes: mib.checked_mul(1 << 20),
                    percent: None,
                    text: format!("--max-old-space-size={mib}"),
                    source: source.clone(),
                });
            }
        }
        found
    };
    let env_options: Vec<&str> = getenv("NODE_OPTIONS")
        .unwrap_or("")
        .split_whitespace()
        .collect();
    find(args, SettingSource::Argv)
        .or_else(|| find(&env_options, SettingSource::Env("NODE_OPTIONS".into())))
}

/// Go's GOMEMLIMIT: bytes with an optional B, KiB, MiB, GiB or TiB suffix,
/// or `off`. A soft limit: the GC works harder near it, it does not cap.
fn go(value: &str) -> Setting {
    let units = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)];
    let (digits, shift) = units
        .iter()
        .find_map(|(unit, shift)| value.strip_suffix(unit).map(|d| (d, *shift)))
        .unwrap_or((value, 0));
    Setting {
        bytes: digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1 << shift)),
        percent: None,
        text: format!("GOMEMLIMIT={value}"),
        source: SettingSource::Env("GOMEMLIMIT".into()),
    }
}

/// .NET reads its GC settings as hexadecimal numbers.
fn dotnet<'a>(getenv: &dyn Fn(&str) -> Option<&'a str>) -> Setting {
    let hex = |v: &str| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok();
    if let Some(value) = getenv("DOTNET_GCHeapHardLimit") {
        return Setting {
            bytes: hex(value),
            percent: None,
            text: format!("DOTNET_GCHeapHardLimit={value}"),
            source: SettingSource::Env("DOTNET_GCHeapHardLimit".into()),
        };
    }
    if let Some(value) = getenv("DOTNET_GCHeapHardLimitPercent") {
        return Setting {
            bytes: None,
            // A percentage: a value past 100 is no cap we can state
            // (found by the runtime_cmdline fuzz target).
            percent: hex(value).filter(|p| *p <= 100).map(|p| p as f64),
            text: format!("DOTNET_GCHeapHardLimitPercent={value}"),
            source: SettingSource::Env("DOTNET_GCHeapHardLimitPercent".into()),
        };
    }
    Setting {
        bytes: None,
        percent: Some(DOTNET_DEFAULT_PERCENT),
        text: "GCHeapHardLimitPercent=75 (.NET default in a container)".to_string(),
        source: SettingSource::Default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[&str]) -> RuntimeReport {
        let join = |items: &[&str]| {
            items
                .iter()
                .flat_map(|s| s.bytes().chain([0]))
                .collect::<Vec<u8>>()
        };
        analyze(
            &Cmdline {
                args: join(args),
                env: join(env),
                args_truncated: false,
                env_truncated: false,
            },
            CapturedAt::Kill,
        )
    }

    fn cap(r: &RuntimeReport) -> (Option<&str>, Option<u64>, Option<&str>, Option<&str>) {
        (
            r.kind.map(RuntimeKind::name),
            r.heap_limit_bytes,
            r.setting.as_deref(),
            r.setting_source.as_ref().map(SettingSource::name),
        )
    }

    #[test]
    fn jvm_heap_caps_in_hotspot_order() {
        let r = run(
            &[
                "/usr/lib/jvm/bin/java",
                "-Xms1g",
                "-Xmx4g",
                "-jar",
                "app.jar",
                "-Xmx1g",
            ],
            &["JAVA_TOOL_OPTIONS=-Xmx2g"],
        );
        assert_eq!(
            cap(&r),
            (Some("jvm"), Some(4 << 30), Some("-Xmx4g"), Some("argv")),
            "argv beats JAVA_TOOL_OPTIONS; program args are not JVM options"
        );
        let r = run(&["java", "-Xmx4g", "Main"], &["_JAVA_OPTIONS=-Xmx512m"]);
        assert_eq!(
            cap(&r),
            (
                Some("jvm"),
                Some(512 << 20),
                Some("-Xmx512m"),
                Some("_JAVA_OPTIONS")
            )
        );
        let r = run(&["java", "-cp", "-Xmx9g", "Main"], &[]);
        assert_eq!(
            r.setting_source.as_ref().map(SettingSource::name),
            Some("default"),
            "-cp takes a value"
        );
        let r = run(&["java", "-XX:MaxRAMPercentage=75.0", "-jar", "a.jar"], &[]);
        assert_eq!(
            (r.heap_limit_percent, r.heap_limit_bytes),
            (Some(75.0), None)
        );
        let r = run(
            &[
                "java",
                "-XX:MaxRAMPercentage=75",
                "-XX:MaxHeapSize=1073741824",
                "M",
            ],
            &[],
        );
        assert_eq!(
            r.heap_limit_bytes,
            Some(1 << 30),
            "a size beats a percentage"
        );
        let r = run(&["java", "-jar", "app.jar"], &["JDK_JAVA_OPTIONS=-Xmx3G"]);
        assert_eq!(r.heap_limit_bytes, Some(3 << 30));
        let r = run(&["java", "Main"], &[]);
        assert_eq!(
            (
                r.heap_limit_percent,
                r.setting_source.as_ref().map(SettingSource::name)
            ),
            (Some(25.0), Some("default"))
        );
    }

    #[test]
    fn jvm_sizes() {
        assert_eq!(jvm_size("4g"), Some(4 << 30));
        assert_eq!(jvm_size("512M"), Some(512 << 20));
        assert_eq!(jvm_size("1024k"), Some(1 << 20));
        assert_eq!(jvm_size("1048576"), Some(1 << 20));
        assert_eq!(jvm_size("4x"), None);
        assert_eq!(jvm_size("g"), None);
        assert_eq!(jvm_size(""), None);
    }

    #[test]
    fn node_go_dotnet_and_interpreters() {
        let r = run(
            &[
                "node",
                "--max-old-space-size=4096",
                "server.js",
                "--max-old-space-size=1",
            ],
            &["NODE_OPTIONS=--max-old-space-size=512"],
        );
        assert_eq!(
            cap(&r),
            (
                Some("node"),
                Some(4 << 30),
                Some("--max-old-space-size=4096"),
                Some("argv")
            )
        );
        let r = run(
            &["node", "server.js"],
            &["NODE_OPTIONS=--max_old_space_size 512"],
        );
        assert_eq!(r.heap_limit_bytes, Some(512 << 20));
        assert_eq!(
            r.setting_source.as_ref().map(SettingSource::name),
            Some("NODE_OPTIONS")
        );
        assert_eq!(
            cap(&run(&["node", "a.js"], &[])),
            (Some("node"), None, None, None)
        );

        for (value, bytes) in [
            ("3GiB", Some(3 << 30)),
            ("512MiB", Some(512 << 20)),
            ("1048576", Some(1 << 20)),
            ("100B", Some(100)),
            ("off", None),
        ] {
            let r = run(
                &["/app/server"],
                &["HOME=/", &format!("GOMEMLIMIT={value}")],
            );
            assert_eq!(
                (r.kind, r.heap_limit_bytes),
                (Some(RuntimeKind::Go), bytes),
                "{value}"
            );
        }
        let r = run(&["python3.12", "app.py"], &["GOMEMLIMIT=1GiB"]);
        assert_eq!(cap(&r), (Some("python"), None, None, None), "inherited env");

        let r = run(
            &["dotnet", "app.dll"],
            &["DOTNET_GCHeapHardLimit=0xC800000"],
        );
        assert_eq!(r.heap_limit_bytes, Some(200 << 20));
        let r = run(&["dotnet", "app.dll"], &[]);
        assert_eq!(r.heap_limit_percent, Some(75.0));
        assert_eq!(
            cap(&run(&["/bin/sleep", "1"], &[])),
            (None, None, None, None)
        );
        assert_eq!(run(&[], &[]).kind, None);
    }

    #[test]
    fn dotnet_percent_past_100_is_not_reported_as_a_percentage() {
        // Hex, as .NET reads it: 0x64 is 100 %, 0xea would be 234 %.
        let percent = |value: &str| {
            run(
                &["dotnet", "app.dll"],
                &[&format!("DOTNET_GCHeapHardLimitPercent={value}")],
            )
            .heap_limit_percent
        };
        assert_eq!(percent("0x32"), Some(50.0));
        assert_eq!(percent("64"), Some(100.0));
        assert_eq!(percent("ea"), None);
        assert_eq!(percent("0xffffffff"), None);
    }

    #[test]
    fn duplicate_variables_use_the_first_like_getenv() {
        let r = run(&["/srv/x"], &["GOMEMLIMIT=1GiB", "GOMEMLIMIT=2GiB"]);
        assert_eq!(r.heap_limit_bytes, Some(1 << 30));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_analyzed_without_panicking(
            args in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            env in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
        ) {
            let cmdline = Cmdline { args, env, args_truncated: false, env_truncated: true };
            let report = analyze(&cmdline, CapturedAt::Exit);
            proptest::prop_assert!(report.env_truncated);
        }

        #[test]
        fn jvm_sizes_give_back_their_bytes(n in 0u64..1 << 20, unit in 0usize..5) {
            let (suffix, shift) = [("", 0), ("k", 10), ("M", 20), ("g", 30), ("T", 40)][unit];
            proptest::prop_assert_eq!(jvm_size(&format!("{n}{suffix}")), Some(n << shift));
            let r = run(&["java", &format!("-Xmx{n}{suffix}"), "Main"], &[]);
            proptest::prop_assert_eq!(r.heap_limit_bytes, Some(n << shift));
        }
    }
}
