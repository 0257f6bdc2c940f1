//! Placeholders in `mqtt` trigger filters and `publish` grants, filled in by each device, so
//! one fleet app can take commands and publish per device:
//!
//! | placeholder  | becomes                                                            |
//! |--------------|--------------------------------------------------------------------|
//! | `{device}`   | the device id                                                      |
//! | `{prefix}`   | the device's topic prefix (`outpost`)                              |
//! | `{app}`      | the app's name                                                     |
//! | `{group}`    | each fleet group the device follows (one filter per group)         |
//! | `{commands}` | `{prefix}/{device}/commands/{app}` and, per group, `{prefix}/fleet/{group}/commands/{app}` |
//!
//! So `mqtt = "{commands}/set"` receives `outpost fleet send --device D APP set …` and
//! `--group G APP set …` alike. A filter whose `{group}` has no group to become (a device in no
//! group, `outpost up`) expands to nothing. Unknown placeholders are refused when the
//! manifest is parsed, so a typo fails at `outpost build`, not on the device.

/// The placeholders a manifest may use.
pub const NAMES: [&str; 5] = ["device", "prefix", "app", "group", "commands"];

/// What a device fills placeholders with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Values<'a> {
    /// The device id.
    pub device: &'a str,
    /// The topic prefix.
    pub prefix: &'a str,
    /// The app's name.
    pub app: &'a str,
    /// The fleet groups the device follows.
    pub groups: &'a [String],
}

/// Checks that every `{…}` in `text` names a known placeholder and braces pair up.
pub fn check(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("a `}` without its `{`".into());
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "a `{` without its `}`".to_string())?;
        let name = &after[..close];
        if !NAMES.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} (known: {})",
                NAMES.map(|n| format!("{{{n}}}")).join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// The command topic of `app` on `device` (what `{commands}` becomes for the device itself).
pub fn device_commands(prefix: &str, device: &str, app: &str) -> String {
    format!("{prefix}/{device}/commands/{app}")
}

/// The command topic of `app` on every device of `group`.
pub fn group_commands(prefix: &str, group: &str, app: &str) -> String {
    format!("{prefix}/fleet/{group}/commands/{app}")
}

/// Every topic (filter) `text` becomes on a device with `values`: one, or one per group for
/// `{group}` and `{commands}` (plus the per-device one for `{commands}`), or none.
pub fn expand(text: &str, values: &Values<'_>) -> Vec<String> {
    let fill = |text: &str, group: Option<&str>| -> String {
        let mut out = text
            .replace(
                "{commands}",
                &match group {
                    Some(group) => group_commands(values.prefix, group, values.app),
                    None => device_commands(values.prefix, values.device, values.app),
                },
            )
            .replace("{device}", values.device)
            .replace("{prefix}", values.prefix)
            .replace("{app}", values.app);
        if let Some(group) = group {
            out = out.replace("{group}", group);
        }
        out
    };
    let mut topics = Vec::new();
    let per_group = text.contains("{group}") || text.contains("{commands}");
    if !text.contains("{group}") {
        topics.push(fill(text, None));
    }
    if per_group {
        for group in values.groups {
            topics.push(fill(text, Some(group)));
        }
    }
    topics.sort();
    topics.dedup();
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(groups: &[String]) -> Values<'_> {
        Values {
            device: "pi-7",
            prefix: "farm",
            app: "pump",
            groups,
        }
    }

    #[test]
    fn commands_become_the_device_and_each_group_topic() {
        let groups = ["north".to_string(), "all".to_string()];
        assert_eq!(
            expand("{commands}/set/#", &values(&groups)),
            [
                "farm/fleet/all/commands/pump/set/#",
                "farm/fleet/north/commands/pump/set/#",
                "farm/pi-7/commands/pump/set/#",
            ]
        );
        assert_eq!(
            expand("{commands}/set", &values(&[])),
            ["farm/pi-7/commands/pump/set"]
        );
    }

    #[test]
    fn device_prefix_and_app_are_filled_and_group_repeats() {
        let groups = ["north".to_string()];
        assert_eq!(
            expand("alerts/{device}/{app}", &values(&groups)),
            ["alerts/pi-7/pump"]
        );
        assert_eq!(
            expand("{prefix}/{group}/x", &values(&groups)),
            ["farm/north/x"]
        );
        assert!(
            expand("{group}/x", &values(&[])).is_empty(),
            "no group, no filter"
        );
        assert_eq!(expand("plain/topic", &values(&groups)), ["plain/topic"]);
    }

    #[test]
    fn unknown_or_unpaired_placeholders_are_refused() {
        assert!(check("{commands}/set").is_ok());
        assert!(check("a/{device}/{app}").is_ok());
        assert!(
            check("a/{dev}")
                .expect_err("typo")
                .contains("unknown placeholder {dev}")
        );
        assert!(check("a/{device").is_err());
        assert!(check("a/device}").is_err());
    }
}
