//! One `[[component]]`: paths, build step, grants and limits (triggers are in `trigger`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::rules::{check_name, check_slug, check_stream};
use super::trigger;
use crate::model::{BuildSpec, ComponentSpec, Grants, Limits};
use crate::schema_v1 as raw;
use crate::size::ByteSize;
use crate::topic::TopicFilter;

const KIB: u64 = 1 << 10;
const GIB: u64 = 1 << 30;
/// wasm32 cannot address more than 4 GiB, so a larger cap can only be a mistake.
const MAX_MEMORY: u64 = 4 * GIB;
/// One wasm page: any module with a memory needs at least this much.
const MIN_MEMORY: u64 = 64 * KIB;
/// Generous for stack and output on a Pi-class board; anything larger is a typo.
const MAX_OTHER_SIZE: u64 = GIB;

/// Converts one component; `base_dir` is the manifest's directory.
pub(crate) fn component(
    raw: raw::Component,
    base_dir: &Path,
    variables: &BTreeMap<String, String>,
) -> Result<ComponentSpec, String> {
    check_slug("component id", &raw.id)?;
    let id = raw.id;
    let context = format!("component '{id}'");
    if raw.source.trim().is_empty() {
        return Err(format!("{context}: `source` is empty"));
    }
    let build = match raw.build {
        None => None,
        Some(build) => {
            if build.command.trim().is_empty() {
                return Err(format!("{context}: `build.command` is empty"));
            }
            Some(BuildSpec {
                command: build.command,
                workdir: resolve(base_dir, build.workdir.as_deref().unwrap_or(".")),
            })
        }
    };
    let grants = grants(raw.grants, variables).map_err(|e| format!("{context}, grants.{e}"))?;
    let limits = limits(raw.limits).map_err(|e| format!("{context}, limits.{e}"))?;
    let triggers = raw
        .triggers
        .into_iter()
        .enumerate()
        .map(|(index, raw)| trigger::trigger(&id, index + 1, raw))
        .collect::<Result<Vec<_>, _>>()?;
    // The one read of the environment in a manifest: where a build tool put its output.
    let source = super::env_path::expand(&raw.source, |name| std::env::var(name).ok())
        .map_err(|e| format!("{context}: `source`: {e}"))?;
    Ok(ComponentSpec {
        source: resolve(base_dir, &source),
        id,
        build,
        grants,
        limits,
        triggers,
    })
}

/// Joins a manifest-relative path onto the manifest's directory (absolute paths stay as they
/// are). Rebuilding from components drops `.` segments so `workdir = "."` reads as the directory
/// itself; `..` is kept, since resolving it lexically would be wrong across symlinks.
fn resolve(base_dir: &Path, relative: &str) -> PathBuf {
    base_dir.join(relative).components().collect()
}

/// Checks every grant list. Errors start with the grant key, for the caller to prefix.
fn grants(raw: raw::Grants, variables: &BTreeMap<String, String>) -> Result<Grants, String> {
    for (key, list) in [
        ("kv", &raw.kv),
        ("streams", &raw.streams),
        ("sensors", &raw.sensors),
        ("config", &raw.config),
        ("publish", &raw.publish),
    ] {
        // A repeated entry is harmless to enforce but usually a copy-paste slip worth showing.
        let mut seen = BTreeSet::new();
        if let Some(repeated) = list.iter().find(|entry| !seen.insert(entry.as_str())) {
            return Err(format!("{key}: {repeated:?} is listed twice"));
        }
    }
    for namespace in &raw.kv {
        check_name("kv: namespace", namespace)?;
    }
    for stream in &raw.streams {
        check_stream("streams: stream", stream)?;
    }
    for sensor in &raw.sensors {
        check_name("sensors: sensor", sensor)?;
    }
    for variable in &raw.config {
        if !variables.contains_key(variable) {
            return Err(format!(
                "config: variable {variable:?} is not declared in [variables]"
            ));
        }
    }
    let publish = raw
        .publish
        .iter()
        .map(|filter| {
            crate::placeholders::check(filter).map_err(|e| format!("publish {filter:?}: {e}"))?;
            reaches_agent_topics(filter)?;
            TopicFilter::new(filter).map_err(|e| format!("publish: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Grants {
        kv: raw.kv,
        streams: raw.streams,
        sensors: raw.sensors,
        config: raw.config,
        publish,
        gpio: raw.gpio.0,
    })
}

/// Refuses a publish grant that could reach the agent's own topics under `{prefix}/` on some
/// device: one starting with `{prefix}` or `{commands}` (which lies under it), or with a
/// wildcard level (which matches any prefix). Each device checks the filled grants against its
/// own prefix too (`outpost::policy`).
fn reaches_agent_topics(filter: &str) -> Result<(), String> {
    let first = filter.split('/').next().unwrap_or_default();
    if matches!(first, "+" | "#" | "{prefix}" | "{commands}") {
        return Err(format!(
            "publish {filter:?}: could reach the agent's own topics under {{prefix}}/ (status, \
             events, commands, fleet offers); start with a topic level of the app's own"
        ));
    }
    Ok(())
}

/// Applies defaults and range checks. Errors start with the limit key, for the caller to prefix.
fn limits(raw: raw::Limits) -> Result<Limits, String> {
    let defaults = Limits::default();
    let fuel = raw.fuel.unwrap_or(defaults.fuel);
    if fuel == 0 {
        return Err("fuel: 0 would stop every invocation before its first instruction".into());
    }
    let table_elements = raw.table_elements.unwrap_or(defaults.table_elements);
    if table_elements == 0 {
        return Err("table_elements: must be at least 1".into());
    }
    let memory_bytes = size(
        "memory",
        raw.memory,
        defaults.memory_bytes,
        MIN_MEMORY,
        MAX_MEMORY,
    )?;
    let stack_bytes = size("stack", raw.stack, defaults.stack_bytes, 1, MAX_OTHER_SIZE)?;
    let output_bytes = size(
        "output",
        raw.output,
        defaults.output_bytes,
        1,
        MAX_OTHER_SIZE,
    )?;
    let timeout = raw
        .timeout
        .map_or(defaults.timeout, |crate::values::HumanDuration(d)| d);
    if timeout.is_zero() || timeout > crate::model::MAX_TIMEOUT {
        return Err(format!(
            "timeout: must be between 1ms and {}s",
            crate::model::MAX_TIMEOUT.as_secs()
        ));
    }
    Ok(Limits {
        fuel,
        memory_bytes,
        table_elements,
        stack_bytes,
        output_bytes,
        timeout,
    })
}

fn size(key: &str, raw: Option<ByteSize>, default: u64, min: u64, max: u64) -> Result<u64, String> {
    let Some(ByteSize(bytes)) = raw else {
        return Ok(default);
    };
    if (min..=max).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!(
            "{key}: {} is out of range; it must be between {} and {}",
            human(bytes),
            human(min),
            human(max)
        ))
    }
}

/// Renders a byte count in the largest unit that divides it, the way a manifest would spell it.
fn human(bytes: u64) -> String {
    for (unit, size) in [("GiB", GIB), ("MiB", 1 << 20), ("KiB", KIB)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        let cases = [
            (0, "0 bytes"),
            (1, "1 bytes"),
            (1536, "1536 bytes"),
            (64 * KIB, "64 KiB"),
            (4 * GIB, "4 GiB"),
            (3 << 20, "3 MiB"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(human(bytes), expected);
        }
    }

    #[test]
    fn limits_default_and_range_check() {
        assert_eq!(limits(raw::Limits::default()), Ok(Limits::default()));
        let cases = [
            (
                raw::Limits {
                    fuel: Some(0),
                    ..Default::default()
                },
                "fuel: 0 would stop",
            ),
            (
                raw::Limits {
                    table_elements: Some(0),
                    ..Default::default()
                },
                "table_elements: must be at least 1",
            ),
            (
                raw::Limits {
                    memory: Some(ByteSize(8 * GIB)),
                    ..Default::default()
                },
                "memory: 8 GiB is out of range; it must be between 64 KiB and 4 GiB",
            ),
            (
                raw::Limits {
                    memory: Some(ByteSize(0)),
                    ..Default::default()
                },
                "memory: 0 bytes is out of range",
            ),
            (
                raw::Limits {
                    stack: Some(ByteSize(0)),
                    ..Default::default()
                },
                "stack: 0 bytes is out of range",
            ),
            (
                raw::Limits {
                    output: Some(ByteSize(2 * GIB)),
                    ..Default::default()
                },
                "output: 2 GiB is out of range",
            ),
        ];
        for (raw, expected) in cases {
            let error = limits(raw).expect_err(expected);
            assert!(error.starts_with(expected), "{error}");
        }
    }
}
