//! The apps a device runs, as its status lists them. Kept apart from both `sync` (which
//! publishes the list) and `fleet` (which changes it), so neither imports the other.

use serde::Serialize;

/// An installed app, as listed in the status.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppVersion {
    /// App name.
    pub name: String,
    /// App version.
    pub version: String,
    /// The version kept to roll back to (fleet-installed apps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Whether the version is still in its health window.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub on_trial: bool,
    /// The last update result, as one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
}

impl AppVersion {
    /// A locally installed app (not managed by fleet updates).
    pub fn local(name: &str, version: &str) -> AppVersion {
        AppVersion {
            name: name.to_string(),
            version: version.to_string(),
            previous: None,
            on_trial: false,
            last_update: None,
        }
    }
}
