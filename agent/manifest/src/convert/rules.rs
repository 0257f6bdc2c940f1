//! The spelling rules for names and versions, shared by every part of the conversion.

use outpost_abi::limits::MAX_NAME_LEN;

/// App names and component ids: `[a-z0-9][a-z0-9-]{0,63}`. They end up in file paths, log
/// fields and MQTT topics, so they are kept to an alphabet that is safe in all three.
pub(crate) fn check_slug(what: &str, value: &str) -> Result<(), String> {
    let mut chars = value.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if first_ok && rest_ok && value.len() <= 64 {
        Ok(())
    } else {
        Err(format!(
            "{what} {value:?} is not valid: use 1 to 64 of a-z, 0-9 and '-', not starting with '-'"
        ))
    }
}

/// Names a guest passes through the ABI (namespaces, sensors, variables, trigger names):
/// 1 to [`MAX_NAME_LEN`] bytes, as the host enforces at call time, and no control characters,
/// which would garble logs.
pub(crate) fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(format!(
            "{what} {value:?} is {} bytes long; the limit is {MAX_NAME_LEN}",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{what} {value:?} contains a control character"));
    }
    Ok(())
}

/// Stream names become MQTT topic levels when events are synced, so on top of
/// [`check_name`] they are limited to characters that mean nothing special there.
pub(crate) fn check_stream(what: &str, value: &str) -> Result<(), String> {
    check_name(what, value)?;
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        Ok(())
    } else {
        Err(format!(
            "{what} {value:?} is not valid: stream names may only use A-Z, a-z, 0-9, '_', '.' \
             and '-' (they become MQTT topic levels)"
        ))
    }
}

/// `MAJOR.MINOR.PATCH` with an optional `-pre` suffix (semver without build metadata).
pub(crate) fn check_version(value: &str) -> Result<(), String> {
    let (core, pre) = match value.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (value, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let numbers_ok = numbers.len() == 3
        && numbers.iter().all(|n| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit())
                && (*n == "0" || !n.starts_with('0'))
        });
    let pre_ok = pre.is_none_or(|pre| {
        pre.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    });
    if numbers_ok && pre_ok {
        Ok(())
    } else {
        Err(format!(
            "[app] version {value:?} is not valid: expected MAJOR.MINOR.PATCH with an optional \
             -pre suffix, like \"0.1.0\" or \"1.2.0-beta.1\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        let long = "a".repeat(65);
        for ok in ["sampler", "a", "0", "my-app-2", &long[..64]] {
            assert_eq!(check_slug("id", ok), Ok(()), "{ok}");
        }
        for bad in ["", "-a", "Sampler", "my_app", "a b", "é", long.as_str()] {
            assert!(check_slug("id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        let at_limit = "n".repeat(MAX_NAME_LEN);
        let over = "n".repeat(MAX_NAME_LEN + 1);
        assert_eq!(check_name("kv namespace", "readings"), Ok(()));
        assert_eq!(check_name("kv namespace", &at_limit), Ok(()));
        let cases = [
            ("", "is empty"),
            (over.as_str(), "the limit is 128"),
            ("a\tb", "control"),
        ];
        for (value, expected) in cases {
            let error = check_name("kv namespace", value).expect_err(value);
            assert!(error.contains(expected), "{value:?}: {error}");
        }
    }

    #[test]
    fn streams() {
        for ok in ["readings", "Temp_1.raw-v2"] {
            assert_eq!(check_stream("stream", ok), Ok(()), "{ok}");
        }
        for bad in ["a/b", "a+", "#", "a b", "température", ""] {
            assert!(check_stream("stream", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        for ok in [
            "0.1.0",
            "1.2.3",
            "10.20.30",
            "1.0.0-alpha",
            "1.0.0-beta.1",
            "1.0.0-x-y",
        ] {
            assert_eq!(check_version(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "1",
            "1.0",
            "1.0.0.0",
            "01.0.0",
            "1.0.x",
            "1.0.0-",
            "1.0.0-a..b",
            "v1.0.0",
            "1.0.0+build",
        ] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }
}
