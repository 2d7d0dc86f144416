//! Checks records against docs/oomtrace.schema.json, the published
//! contract. A small validator for the keywords that file uses; it also
//! refuses properties the schema does not declare, so the docs cannot fall
//! behind the code.

use std::sync::OnceLock;

use serde_json::Value;

const SCHEMA_TEXT: &str = include_str!("../../docs/oomtrace.schema.json");

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(SCHEMA_TEXT).expect("docs/oomtrace.schema.json is JSON")
    })
}

/// `Ok` when `record` matches one of the schema's record types.
pub fn validate(record: &Value) -> Result<(), String> {
    let root = schema();
    let variants = root["oneOf"].as_array().ok_or("schema has no oneOf")?;
    let mut errors = Vec::new();
    for variant in variants {
        match check(record, variant, "$") {
            Ok(()) => return Ok(()),
            Err(e) => errors.push(e),
        }
    }
    Err(format!("matches no record type: {}", errors.join(" | ")))
}

/// Whether the published contract gives records of `record_type` a
/// top-level `field`: tests of fields that land in parallel check them as
/// soon as the schema documents them.
pub fn documents(record_type: &str, field: &str) -> bool {
    schema()["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .map(resolve)
        .any(|variant| {
            variant["properties"]["type"]["const"] == record_type
                && variant["properties"].get(field).is_some()
        })
}

fn resolve(node: &Value) -> &Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/$defs/");
            &schema()["$defs"][name]
        }
        None => node,
    }
}

fn check(value: &Value, node: &Value, at: &str) -> Result<(), String> {
    let node = resolve(node);
    if let Some(options) = node.get("anyOf").and_then(Value::as_array) {
        let errors: Vec<String> = options
            .iter()
            .filter_map(|option| check(value, option, at).err())
            .collect();
        if errors.len() == options.len() {
            return Err(format!(
                "{at}: matches none of anyOf: {}",
                errors.join(" | ")
            ));
        }
    }
    if let Some(expected) = node.get("const")
        && value != expected
    {
        return Err(format!("{at}: {value} is not {expected}"));
    }
    if let Some(options) = node.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} not in {options:?}"));
    }
    if let Some(types) = node.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let integer_as_number = actual == "integer" && allowed.contains(&"number");
        if !(allowed.contains(&actual) || integer_as_number) {
            return Err(format!("{at}: {actual} is not {allowed:?}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if node
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|min| n < min)
        {
            return Err(format!("{at}: {n} below minimum"));
        }
        if node
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|max| n > max)
        {
            return Err(format!("{at}: {n} above maximum"));
        }
    }
    // As in JSON Schema, `pattern` constrains strings only (null passes).
    if let (Some(pattern), Some(text)) =
        (node.get("pattern").and_then(Value::as_str), value.as_str())
    {
        // The patterns the schema uses, checked without a regex engine.
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        let ok = match pattern {
            "^[0-9a-f-]{36}$" => text.len() == 36 && text.bytes().all(|b| b == b'-' || hex(b)),
            "^[0-9a-f]{64}$" => text.len() == 64 && text.bytes().all(hex),
            "^0x[0-9a-f]+$" => text
                .strip_prefix("0x")
                .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(hex)),
            _ if pattern.contains("[0-9]{6}Z") => {
                crate::system::parse_rfc3339_utc(text).is_some() && text.len() == 27
            }
            _ => {
                return Err(format!(
                    "{at}: the validator does not know pattern {pattern}"
                ));
            }
        };
        if !ok {
            return Err(format!("{at}: {text:?} does not match {pattern}"));
        }
    }
    if let Value::Object(object) = value {
        let properties = node.get("properties").and_then(Value::as_object);
        // A node without properties (an anyOf wrapper) leaves the object's
        // keys to the branch that matched.
        if properties.is_none() && node.get("anyOf").is_some() {
            return Ok(());
        }
        for key in node
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().unwrap_or("");
            if !object.contains_key(key) {
                return Err(format!("{at}: missing {key}"));
            }
        }
        for (key, child) in object {
            // A map (e.g. `labels`): any key, each value as
            // `additionalProperties` says.
            let any_key = node.get("additionalProperties").filter(|a| a.is_object());
            match properties.and_then(|p| p.get(key)).or(any_key) {
                Some(child_schema) => check(child, child_schema, &format!("{at}.{key}"))?,
                None => {
                    return Err(format!(
                        "{at}.{key}: not documented in docs/oomtrace.schema.json"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kill() -> Value {
        json!({
            "type": "oom_kill", "schema": 1, "time": "2026-11-26T10:50:07.123456Z", "boot_ns": 5,
            "host": "h", "capture": "tp_btf",
            "victim": {"pid": 1, "tgid": 1, "comm": "x", "uid": 0, "oom_score_adj": 0,
                "total_vm_bytes": 1, "rss_anon_bytes": 1, "rss_file_bytes": 1, "rss_shmem_bytes": 0,
                "rss_anon_exact_bytes": null, "rss_file_exact_bytes": null, "rss_shmem_exact_bytes": null,
                "pgtables_bytes": 4096, "start_time": "2026-11-26T10:50:04.000000Z", "age_ns": 3_000_000_000_u64,
                "runtime": {"kind": "jvm", "heap_limit_bytes": null,
                    "heap_limit_percent": 25.0, "setting": "-XX:MaxRAMPercentage=25 (JVM default)",
                    "setting_source": "default", "captured_at": "exit", "args_truncated": false,
                    "env_truncated": false},
                "memcg": {"id": 7, "path": "/a", "k8s": null, "service": null, "reclaim": {
                    "last_10s": {"stalls": 1, "stall_ns": 2, "reclaimed_bytes": 4096},
                    "since_previous_kill": null,
                    "total": {"stalls": 1, "stall_ns": 2, "max_stall_ns": 2, "reclaimed_bytes": 4096}}}},
            "trigger": {"pid": 1, "tgid": 1, "comm": "x", "memcg": null, "is_victim": true},
            "constraint": "memcg",
            "oom_memcg": {"id": 7, "path": "/a", "reclaim": null, "k8s": null, "service": null, "limit_bytes": 1, "usage_bytes": 1, "max_usage_bytes": 1,
                "peak_bytes": null, "failcnt": 0, "oom_kills": 1},
            "oom_control": {"gfp_mask": "0xcc0", "order": 0, "total_bytes": 4096, "victim_points": 3},
            "history": {"workload": "memcg /a", "kills": 1, "since_previous_kill_ns": null,
                "hint": "undersized", "evidence": "first kill here"},
            "candidates": {"source": "proc", "taken_after_us": 5, "processes": 1, "top": [
                {"pid": 2, "comm": "b", "rss_bytes": 1, "rss_anon_bytes": 1, "rss_file_bytes": 0,
                 "rss_shmem_bytes": 0, "swap_bytes": 0, "pgtables_bytes": 0, "oom_score_adj": 0,
                 "badness": 1, "oom_score": 1000}]}
        })
    }

    #[test]
    fn a_complete_record_validates() {
        assert_eq!(validate(&kill()), Ok(()));
        assert_eq!(
            validate(
                &json!({"type": "lost", "schema": 1, "time": "2026-11-26T10:50:07.123456Z", "count": 2, "stage": "output"})
            ),
            Ok(())
        );
    }

    #[test]
    fn a_named_container_validates_and_its_labels_must_be_strings() {
        let mut named = kill();
        named["oom_memcg"]["service"] = json!({"kind": "docker_container", "name": "x",
            "container_name": "shop-api", "image": "shop/api:1.4",
            "labels": {"com.docker.compose.project": "shop"}});
        assert_eq!(validate(&named), Ok(()));
        named["oom_memcg"]["service"]["labels"]["com.docker.compose.project"] = json!(1);
        assert!(validate(&named).is_err());
        named["oom_memcg"]["service"]["labels"] = json!(null);
        named["oom_memcg"]["service"]
            .as_object_mut()
            .expect("object")
            .remove("image");
        // Absent from records of before the runtimes' names.
        assert_eq!(validate(&named), Ok(()), "image may be absent");
        assert!(documents("oom_kill", "oom_memcg"));
        assert!(!documents("oom_kill", "no_such_field"));
        assert!(!documents("lost", "oom_memcg"));
    }

    #[test]
    fn drift_is_caught() {
        let mut missing = kill();
        missing["victim"]
            .as_object_mut()
            .expect("object")
            .remove("uid");
        assert!(validate(&missing).is_err());
        let mut extra = kill();
        extra["victim"]["surprise"] = json!(1);
        assert!(validate(&extra).unwrap_err().contains("not documented"));
        let mut wrong = kill();
        wrong["victim"]["oom_score_adj"] = json!(1001);
        assert!(validate(&wrong).is_err());
        let mut time = kill();
        time["time"] = json!("2026-11-26T10:50:07Z");
        assert!(validate(&time).is_err());
        assert!(validate(&json!({"type": "lost", "schema": 1, "time": "2026-11-26T10:50:07.123456Z", "count": 0, "stage": "output"})).is_err());
        let mut gfp = kill();
        gfp["oom_control"]["gfp_mask"] = json!("cc0");
        assert!(validate(&gfp).is_err());
        let mut constraint = kill();
        constraint["constraint"] = json!("memory");
        assert!(validate(&constraint).is_err());
        let mut previous = kill();
        previous["victim"]["memcg"]["reclaim"]["since_previous_kill"] =
            json!({"stalls": 1, "stall_ns": 2, "reclaimed_bytes": 0});
        assert_eq!(
            validate(&previous),
            Ok(()),
            "a window after a previous kill"
        );
        previous["victim"]["memcg"]["reclaim"]["since_previous_kill"]["surprise"] = json!(1);
        assert!(validate(&previous).is_err(), "still strict inside anyOf");
        let mut reclaim = kill();
        reclaim["victim"]["memcg"]["reclaim"]["since_previous_kill"] = json!({"stalls": -1});
        assert!(validate(&reclaim).is_err());
        let mut start = kill();
        start["victim"]["start_time"] = json!("yesterday");
        assert!(validate(&start).is_err());
        start["victim"]["start_time"] = json!(null);
        assert_eq!(validate(&start), Ok(()));
        let mut hint = kill();
        hint["history"]["hint"] = json!("leak");
        assert!(validate(&hint).is_err(), "hints are an enum");
        let mut global = kill();
        global["constraint"] = json!("global");
        global["oom_memcg"] = json!(null);
        assert_eq!(validate(&global), Ok(()));
    }

    #[test]
    fn the_documented_real_record_is_valid() {
        let doc = include_str!("../../docs/schema.md");
        let start = doc
            .find("A real record")
            .expect("docs/schema.md has a real record");
        let json = doc[start..]
            .split("```json\n")
            .nth(1)
            .and_then(|block| block.split("\n```").next())
            .expect("a json block");
        let record: Value = serde_json::from_str(json).expect("the example is JSON");
        assert_eq!(validate(&record), Ok(()));
    }

    #[test]
    fn the_documented_sigkill_with_its_killer_is_valid_and_checked() {
        let doc = include_str!("../../docs/schema.md");
        let start = doc
            .find("## `sigkill` and `sigkill_outcome`")
            .expect("docs/schema.md documents sigkill");
        let json = doc[start..]
            .split("```json\n")
            .nth(1)
            .and_then(|block| block.split("\n```").next())
            .expect("a json block");
        let record: Value = serde_json::from_str(json).expect("the example is JSON");
        assert_eq!(validate(&record), Ok(()));
        let mut old = record.clone();
        let fields = old.as_object_mut().expect("object");
        fields.remove("killer");
        fields.remove("sigterm");
        assert_eq!(validate(&old), Ok(()), "records of older versions");
        let mut none = record.clone();
        none["sigterm"] = json!(null);
        assert_eq!(validate(&none), Ok(()));
        let mut kind = record.clone();
        kind["killer"]["kind"] = json!("oomd");
        assert!(validate(&kind).is_err(), "kinds are an enum");
        let mut grace = record;
        grace["sigterm"]["grace_us"] = json!(-1);
        assert!(validate(&grace).is_err());
    }

    #[test]
    fn workload_identity_is_checked() {
        let pod = json!({"level": "container", "qos": "burstable",
            "pod_uid": "0f0e7c1a-3b2d-4c5e-8f9a-0123456789ab",
            "container_id": "4f3b7d8ce2a9c1b0d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8",
            "runtime": "containerd", "cgroup_driver": "systemd",
            "namespace": "shop", "pod_name": "cart-7f9c", "container_name": null});
        let mut record = kill();
        record["victim"]["memcg"]["k8s"] = pod.clone();
        record["oom_memcg"]["service"] = json!({"kind": "systemd_service", "name": "a.service",
            "container_name": null, "image": null, "labels": null});
        assert_eq!(validate(&record), Ok(()));
        record["victim"]["memcg"]["k8s"]["pod_uid"] = json!(null);
        record["victim"]["memcg"]["k8s"]["container_id"] = json!(null);
        assert_eq!(validate(&record), Ok(()), "null passes a pattern");
        for (key, bad) in [
            ("container_id", json!("4f3b7d8ce2a9")),
            ("pod_uid", json!("0F0E7C1A-3B2D-4C5E-8F9A-0123456789AB")),
            ("qos", json!("gold")),
        ] {
            let mut record = kill();
            record["victim"]["memcg"]["k8s"] = pod.clone();
            record["victim"]["memcg"]["k8s"][key] = bad;
            assert!(validate(&record).is_err(), "{key}");
        }
    }
}
