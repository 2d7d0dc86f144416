//! The victim's command line and environment (enrich/runtime.rs): bytes
//! the victim wrote itself. The report may name the runtime and its heap
//! setting, never anything else of the environment (it holds secrets).
#![no_main]

use libfuzzer_sys::{
    arbitrary::{self, Arbitrary, Unstructured},
    fuzz_target,
};
use oomtrace::{
    decode::Cmdline,
    enrich::runtime::{CapturedAt, analyze},
};

/// Variables the runtime parser may read (and so may quote).
const SETTINGS: [&str; 7] = [
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
    "NODE_OPTIONS",
    "GOMEMLIMIT",
    "DOTNET_GCHeapHardLimit",
    "DOTNET_GCHeapHardLimitPercent",
];
const SECRET: &str = "oomtrace-fuzz-secret-7f3a9c";

#[derive(Debug, Arbitrary)]
struct Input {
    /// Often a runtime's name, else anything.
    program: u8,
    args: Vec<String>,
    /// (index into SETTINGS or any name, value)
    env: Vec<(u8, String, String)>,
    args_truncated: bool,
    env_truncated: bool,
    at_exit: bool,
}

fn nul_joined<'a>(items: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        out.extend_from_slice(item.as_bytes());
        out.push(0);
    }
    out
}

fn check(input: Input) {
    let programs = [
        "java",
        "/usr/bin/java",
        "node",
        "dotnet",
        "python3",
        "./app",
    ];
    let program = programs[usize::from(input.program) % programs.len()];
    let mut args: Vec<&str> = vec![program];
    args.extend(input.args.iter().map(String::as_str));
    let mut env: Vec<String> = input
        .env
        .iter()
        .map(|(which, name, value)| {
            let name = SETTINGS.get(usize::from(*which)).copied().unwrap_or(name);
            format!("{name}={value}")
        })
        .collect();
    env.push(format!("AWS_SECRET_ACCESS_KEY={SECRET}"));
    let cmdline = Cmdline {
        args: nul_joined(args.iter().copied()),
        env: nul_joined(env.iter().map(String::as_str)),
        args_truncated: input.args_truncated,
        env_truncated: input.env_truncated,
    };
    let at = if input.at_exit {
        CapturedAt::Exit
    } else {
        CapturedAt::Kill
    };
    let report = serde_json::to_value(analyze(&cmdline, at)).expect("serializes");
    let text = report.to_string();
    // The secret is reported only if a setting's own text holds it.
    let quoted = args.iter().any(|a| a.contains(SECRET))
        || env[..env.len() - 1].iter().any(|e| e.contains(SECRET));
    assert!(quoted || !text.contains(SECRET), "{report}");
    if let Some(source) = report["setting_source"].as_str() {
        assert!(
            ["argv", "default"].contains(&source) || SETTINGS.contains(&source),
            "{report}"
        );
    }
    if let Some(percent) = report["heap_limit_percent"].as_f64() {
        assert!((0.0..=100.0).contains(&percent), "{report}");
    }
    if !report["kind"].is_null() {
        let kinds = [
            "jvm", "node", "go", "dotnet", "python", "ruby", "perl", "php",
        ];
        assert!(
            kinds.contains(&report["kind"].as_str().unwrap_or("")),
            "{report}"
        );
    }
    assert_eq!(
        report["captured_at"],
        if input.at_exit { "exit" } else { "kill" }
    );
    assert_eq!(report["args_truncated"], input.args_truncated);
    assert_eq!(report["env_truncated"], input.env_truncated);
}

fuzz_target!(|data: &[u8]| {
    // Raw bytes as the kernel side copies them: args, NUL NUL, env.
    let (args, env) = match data.windows(2).position(|w| w == [0, 0]) {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let cmdline = Cmdline {
        args: args.to_vec(),
        env: env.to_vec(),
        args_truncated: false,
        env_truncated: true,
    };
    let report = serde_json::to_value(analyze(&cmdline, CapturedAt::Kill)).expect("serializes");
    if let Some(percent) = report["heap_limit_percent"].as_f64() {
        assert!((0.0..=100.0).contains(&percent), "{report}");
    }
    if let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) {
        check(input);
    }
});
