//! Update reports: one JSON message per update outcome on `{prefix}/{device}/updates`, sent
//! through the outbox (QoS 1) so a device that is offline reports once it is back.

use serde::Serialize;

/// What became of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateResult {
    /// Verified and activated; its health window starts.
    Accepted,
    /// Passed its health window.
    Confirmed,
    /// Refused before or after download (signature, digest, version, manifest, compile).
    Refused,
    /// Activated, then failed its health window; the previous version runs again.
    RolledBack,
    /// The download made no progress past its deadline, or its chunks never matched.
    Abandoned,
}

impl UpdateResult {
    /// The word used in reports and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateResult::Accepted => "accepted",
            UpdateResult::Confirmed => "confirmed",
            UpdateResult::Refused => "refused",
            UpdateResult::RolledBack => "rolled-back",
            UpdateResult::Abandoned => "abandoned",
        }
    }
}

/// One update report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateReport {
    /// The device.
    pub device: String,
    /// The app.
    pub app: String,
    /// What happened.
    pub result: UpdateResult,
    /// The version running before (if any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    /// The version the update was about (if known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_version: Option<String>,
    /// Why, in words an operator can act on.
    pub reason: String,
    /// Chunk bytes received for the bundle (link cost), when a download happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_received: Option<u64>,
    /// The bundle's size, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_bytes: Option<u64>,
    /// When, ms since the epoch.
    pub time_ms: i64,
}

impl UpdateReport {
    /// The message body.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// One line for the agent's log.
    pub fn line(&self) -> String {
        let versions = match (&self.from_version, &self.to_version) {
            (Some(from), Some(to)) => format!(" {from} -> {to}"),
            (None, Some(to)) => format!(" -> {to}"),
            (Some(from), None) => format!(" {from}"),
            (None, None) => String::new(),
        };
        format!(
            "update {}: {}{versions}: {}",
            self.result.as_str(),
            self.app,
            self.reason
        )
    }

    /// The agent event that tells listeners about this report.
    pub fn event(&self) -> crate::events::AgentEvent {
        crate::events::AgentEvent::UpdateReported {
            app: self.app.clone(),
            result: self.result.as_str().to_string(),
            to_version: self.to_version.clone(),
            line: self.line(),
        }
    }
}
