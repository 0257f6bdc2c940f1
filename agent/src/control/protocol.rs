//! The control socket's protocol: one JSON request per line in, one JSON response per line out.
//! Pure types and their encoding, no I/O, so the rules (size bound, malformed input) are
//! unit-tested without a socket.
//!
//! A request is `{"request":"status"}`, `{"request":"kv_list","app":..,"namespace":..}`,
//! `{"request":"kv_get","app":..,"namespace":..,"key":..}` or
//! `{"request":"outbox_list","from":0,"limit":100}`; the response is
//! `{"reply":"status"|"kv"|"outbox"|"error", ...}`. Fields are only ever added.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::apps::AppVersion;

/// Longest request line accepted, newline included: requests are small, and a bound keeps a
/// client from making the agent buffer without limit.
pub const MAX_REQUEST_BYTES: usize = 4096;

/// Most outbox rows one `outbox_list` answers with, whatever the client asks: the response is
/// built in memory on the device.
pub const MAX_OUTBOX_ROWS: usize = 10_000;

/// Rows `outbox_list` returns when the request names no limit.
pub const DEFAULT_OUTBOX_ROWS: usize = 100;

/// A question to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// The device's status: identity, uptime, apps, link, outbox and store counters.
    Status,
    /// Key-value entries, optionally of one app and namespace.
    KvList {
        /// Only this app.
        #[serde(default)]
        app: Option<String>,
        /// Only this namespace.
        #[serde(default)]
        namespace: Option<String>,
    },
    /// One key; every app's entry when `app` is not given (the client decides what several
    /// mean).
    KvGet {
        /// The app, if known.
        #[serde(default)]
        app: Option<String>,
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
    },
    /// Queued outbox rows, oldest first, and the outbox counters.
    OutboxList {
        /// First sequence number to show.
        #[serde(default)]
        from: u64,
        /// Most rows (capped at [`MAX_OUTBOX_ROWS`]).
        #[serde(default = "default_outbox_rows")]
        limit: usize,
    },
}

fn default_outbox_rows() -> usize {
    DEFAULT_OUTBOX_ROWS
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Response {
    /// The answer to [`Request::Status`].
    Status(StatusReport),
    /// The answer to [`Request::KvList`] and [`Request::KvGet`].
    Kv(KvReport),
    /// The answer to [`Request::OutboxList`].
    Outbox(OutboxReport),
    /// The request could not be answered, as one line.
    Error {
        /// What was wrong.
        message: String,
    },
}

impl Response {
    /// An error response.
    pub fn error(message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
        }
    }
}

/// A device's status. `agent` is present when a running agent answered; without it the
/// report was read from the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// What only the running agent knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<LiveAgent>,
    /// The apps: those the agent runs, or (read from the state file) the fleet-installed ones.
    pub apps: Vec<AppVersion>,
    /// What the state file says.
    pub store: StoreSummary,
}

/// What a running agent knows of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveAgent {
    /// Device id.
    pub device: String,
    /// The agent's version.
    pub agent_version: String,
    /// Seconds since the device started.
    pub uptime_s: u64,
    /// Whether a broker session is up.
    pub connected: bool,
    /// Seconds since the outbox was last drained (empty, nothing awaiting a PUBACK), if ever.
    pub last_drain_s_ago: Option<u64>,
    /// Broker sessions established since start.
    pub connects: u64,
    /// Failed connection attempts since start.
    pub connect_failures: u64,
    /// Messages published since start.
    pub published: u64,
    /// The sync engine's most recent error.
    pub last_error: Option<String>,
}

/// Records and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Depth {
    /// Records.
    pub records: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The state file's counters, as the status and the outbox listing show them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSummary {
    /// Queued for the broker.
    pub outbox: Depth,
    /// Dropped to make room (drop-oldest).
    pub dropped: Depth,
    /// Refused because the outbox was full (reject-new): records and invocations.
    pub rejected_records: u64,
    /// Invocations refused because the outbox was full.
    pub rejected_invocations: u64,
    /// Moved to the dead letters (can never be sent).
    pub dead_letters: Depth,
    /// Inbound messages waiting.
    pub inbox: Depth,
    /// Invocations that failed.
    pub failed_invocations: u64,
    /// Trigger runs skipped because the previous run was still going.
    pub skipped_runs: u64,
    /// Damaged rows set aside.
    pub quarantined_rows: u64,
    /// The store's incarnation id.
    pub incarnation: String,
    /// Notes about the store's history.
    pub notes: Vec<String>,
}

/// Key-value entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvReport {
    /// The entries, ordered by app, namespace and key.
    pub entries: Vec<KvItem>,
}

/// One key-value entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvItem {
    /// The app that owns it.
    pub app: String,
    /// Namespace.
    pub namespace: String,
    /// Key.
    pub key: String,
    /// The value's bytes, base64 (standard alphabet, padded).
    pub value_base64: String,
    /// The value as text, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl KvItem {
    /// The entry for `value`.
    pub fn new(app: String, namespace: String, key: String, value: &[u8]) -> KvItem {
        KvItem {
            app,
            namespace,
            key,
            value_base64: BASE64.encode(value),
            text: std::str::from_utf8(value).ok().map(str::to_string),
        }
    }

    /// The value's bytes.
    pub fn value(&self) -> Result<Vec<u8>, ProtocolError> {
        BASE64
            .decode(&self.value_base64)
            .map_err(|e| ProtocolError::Malformed(format!("value of {}: {e}", self.key)))
    }
}

/// Queued outbox rows and the counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxReport {
    /// The rows, oldest first.
    pub entries: Vec<OutboxItem>,
    /// The store's counters.
    pub counters: StoreSummary,
}

/// One queued outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Device-wide sequence number.
    pub seq: u64,
    /// When the invocation that produced it ran, ms since the epoch.
    pub time_ms: i64,
    /// The app that produced it.
    pub app: String,
    /// The component that produced it.
    pub component: String,
    /// What it is, as one line (`event STREAM: …`, `publish TOPIC …`).
    pub line: String,
}

/// Why a line is not a request (or not a response).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The line is longer than [`MAX_REQUEST_BYTES`].
    #[error("request longer than {limit} bytes")]
    TooLong {
        /// The bound.
        limit: usize,
    },
    /// The line is not a request this agent knows.
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Decodes one request line (with or without its newline).
pub fn decode_request(line: &[u8]) -> Result<Request, ProtocolError> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(ProtocolError::TooLong {
            limit: MAX_REQUEST_BYTES,
        });
    }
    serde_json::from_slice(line.trim_ascii()).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Decodes one response line.
pub fn decode_response(line: &[u8]) -> Result<Response, ProtocolError> {
    serde_json::from_slice(line.trim_ascii())
        .map_err(|e| ProtocolError::Malformed(format!("response: {e}")))
}

/// One message as a line: compact JSON and a newline.
pub fn encode_line<T: Serialize>(message: &T) -> Vec<u8> {
    // Serialising these types cannot fail (string keys, no non-finite floats); an empty
    // object keeps the line well-formed should that ever change.
    let mut line = serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_documented_and_round_trip() {
        assert_eq!(
            decode_request(br#"{"request":"status"}"#),
            Ok(Request::Status)
        );
        assert_eq!(
            decode_request(b"{\"request\":\"kv_list\"}\n"),
            Ok(Request::KvList {
                app: None,
                namespace: None
            })
        );
        assert_eq!(
            decode_request(br#"{"request":"outbox_list"}"#),
            Ok(Request::OutboxList {
                from: 0,
                limit: DEFAULT_OUTBOX_ROWS
            })
        );
        for request in [
            Request::Status,
            Request::KvList {
                app: Some("a".into()),
                namespace: Some("n".into()),
            },
            Request::KvGet {
                app: None,
                namespace: "n".into(),
                key: "k".into(),
            },
            Request::OutboxList { from: 7, limit: 3 },
        ] {
            let line = encode_line(&request);
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
            assert_eq!(decode_request(&line), Ok(request));
        }
    }

    #[test]
    fn oversized_and_malformed_requests_are_errors_not_panics() {
        let long = format!(
            r#"{{"request":"kv_get","namespace":"n","key":"{}"}}"#,
            "k".repeat(MAX_REQUEST_BYTES)
        );
        assert_eq!(
            decode_request(long.as_bytes()),
            Err(ProtocolError::TooLong {
                limit: MAX_REQUEST_BYTES
            })
        );
        for bad in [
            &b""[..],
            b"not json",
            b"{}",
            br#"{"request":"reboot"}"#,
            br#"{"request":"kv_get","namespace":"n"}"#,
            br#"{"request":"outbox_list","limit":-1}"#,
            b"\xff\xfe",
        ] {
            assert!(
                matches!(decode_request(bad), Err(ProtocolError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn responses_round_trip_and_kv_values_keep_their_bytes() {
        let binary = KvItem::new("a".into(), "n".into(), "k".into(), &[0, 159, 146, 150]);
        assert_eq!(binary.text, None);
        assert_eq!(binary.value(), Ok(vec![0, 159, 146, 150]));
        let text = KvItem::new("a".into(), "n".into(), "t".into(), b"hello");
        assert_eq!(text.text.as_deref(), Some("hello"));
        let summary = StoreSummary {
            outbox: Depth {
                records: 2,
                bytes: 32,
            },
            incarnation: "i1".into(),
            ..StoreSummary::default()
        };
        for response in [
            Response::Kv(KvReport {
                entries: vec![binary, text],
            }),
            Response::Outbox(OutboxReport {
                entries: vec![OutboxItem {
                    seq: 1,
                    time_ms: 5,
                    app: "a".into(),
                    component: "c".into(),
                    line: "event s: x".into(),
                }],
                counters: summary.clone(),
            }),
            Response::Status(StatusReport {
                agent: Some(LiveAgent {
                    device: "d1".into(),
                    agent_version: "0.1.0".into(),
                    uptime_s: 3,
                    connected: true,
                    last_drain_s_ago: Some(1),
                    connects: 1,
                    connect_failures: 0,
                    published: 4,
                    last_error: None,
                }),
                apps: vec![AppVersion::local("a", "1.0.0")],
                store: summary,
            }),
            Response::error("no such thing"),
        ] {
            assert_eq!(decode_response(&encode_line(&response)), Ok(response));
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&encode_line(&Response::error("x"))).expect("json");
        assert_eq!(doc["reply"], "error");
        assert_eq!(doc["message"], "x");
    }
}
