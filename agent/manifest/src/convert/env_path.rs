//! Environment variables in a component's `source`: `${NAME}` and `${NAME:-default}`.
//!
//! Build tools put their output where the environment says: cargo under `CARGO_TARGET_DIR` when
//! it is set, else under the workspace's `target/`. A fixed `source = "../../target/…"` breaks as
//! soon as someone sets that variable; `"${CARGO_TARGET_DIR:-../../target}/…"` follows it. Pure:
//! the caller passes the lookup.

/// Expands `${NAME}` (an error when unset) and `${NAME:-default}` (the default when unset or
/// empty). `$` not followed by `{` is kept as written. Errors name the variable.
pub(crate) fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`${{` without a closing `}}` in {text:?}"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let valid = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !valid {
            return Err(format!(
                "`${{{inner}}}` is not an environment variable name"
            ));
        }
        match (lookup(name).filter(|v| !v.is_empty()), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (write `${{{name}:-default}}` for a fallback)"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(name: &str) -> Option<String> {
        match name {
            "CARGO_TARGET_DIR" => Some("/tmp/t".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn set_variables_replace_and_defaults_fill_in() {
        let source = "${CARGO_TARGET_DIR:-../../target}/wasm32-unknown-unknown/release/a.wasm";
        assert_eq!(
            expand(source, env).as_deref(),
            Ok("/tmp/t/wasm32-unknown-unknown/release/a.wasm")
        );
        assert_eq!(
            expand("${UNSET:-target}/a.wasm", env).as_deref(),
            Ok("target/a.wasm")
        );
        assert_eq!(expand("${EMPTY:-d}/x", env).as_deref(), Ok("d/x"));
        assert_eq!(expand("${CARGO_TARGET_DIR}", env).as_deref(), Ok("/tmp/t"));
        assert_eq!(
            expand("plain/$HOME.wasm", env).as_deref(),
            Ok("plain/$HOME.wasm")
        );
    }

    #[test]
    fn unset_without_default_and_bad_names_are_errors() {
        assert!(matches!(expand("${UNSET}/a", env), Err(e) if e.contains("UNSET")));
        assert!(expand("${1X}/a", env).is_err());
        assert!(expand("${OPEN/a", env).is_err());
    }
}
