//! Step one of loading: read only `manifest_version`, so that a file written for another schema
//! version gets a clear "unsupported version" error instead of a confusing unknown-key error.

use std::path::Path;

use serde::Deserialize;

use crate::ManifestError;

/// The manifest schema versions this agent reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// `manifest_version = 1`: [`crate::schema_v1`].
    V1,
}

/// Everything but the version is ignored here (no `deny_unknown_fields`): judging the other
/// keys is the job of the schema the version selects.
#[derive(Deserialize)]
struct Probe {
    manifest_version: Option<toml::Value>,
}

/// Reads `manifest_version` from `text`. TOML syntax errors surface here, located.
pub(crate) fn probe(text: &str, path: &Path) -> Result<Version, ManifestError> {
    let probe: Probe =
        toml::from_str(text).map_err(|error| ManifestError::from_toml(path, text, &error))?;
    match probe.manifest_version {
        None => Err(ManifestError::MissingVersion {
            path: path.to_path_buf(),
        }),
        Some(toml::Value::Integer(1)) => Ok(Version::V1),
        Some(other) => Err(ManifestError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: render(&other),
        }),
    }
}

/// Renders a scalar the way it would be written in TOML, so `"1"` and `1.0` are not shown as a
/// bare `1` (which would read as "unsupported 1, this agent reads 1").
fn render(value: &toml::Value) -> String {
    match value {
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => format!("{x:?}"),
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(_) => "(an array)".to_owned(),
        other => format!("(a {})", other.type_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<Version, String> {
        probe(text, Path::new("outpost.toml")).map_err(|error| error.to_string())
    }

    #[test]
    fn version_one_is_accepted_whatever_else_the_file_holds() {
        assert_eq!(
            run("manifest_version = 1\n[app]\ncolour = 'red'\n"),
            Ok(Version::V1)
        );
    }

    #[test]
    fn missing_and_unsupported_versions_are_reported() {
        let cases = [
            (
                "[app]\nname = 'x'\n",
                "outpost.toml: missing `manifest_version` (expected 1)",
            ),
            (
                "manifest_version = 2\n",
                "outpost.toml: unsupported manifest_version 2 (this agent reads 1)",
            ),
            (
                "manifest_version = \"1\"\n",
                "outpost.toml: unsupported manifest_version \"1\" (this agent reads 1)",
            ),
            (
                "manifest_version = 1.0\n",
                "outpost.toml: unsupported manifest_version 1.0 (this agent reads 1)",
            ),
            (
                "manifest_version = [1]\n",
                "outpost.toml: unsupported manifest_version (an array) (this agent reads 1)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(run(text), Err(expected.to_owned()), "{text}");
        }
    }

    #[test]
    fn toml_syntax_errors_are_located() {
        let error = run("manifest_version = 1\n[app\n").expect_err("bad table header");
        assert!(error.starts_with("outpost.toml:2:"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }
}
