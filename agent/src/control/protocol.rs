//! The control socket's protocol: one JSON request per line in, one JSON response per line out.
//! Pure types and their encoding, no I/O, so the rules (size bound, malformed input) are
//! unit-tested without a socket.
//!
//! A request is `{"request":"status"}`, `{"request":"kv_list","app":..,"namespace":..}`,
//! `{"request":"kv_get","app":..,"namespace":..,"key":..}` or
//! `{"request":"outbox_list","from":0,"limit":100}`; the response is
//! `{"reply":"status"|"kv"|"outbox"|"error", ...}`. Fields are only ever added.
//!
//! A request may add `"format":"text"`: the response is then `{"reply":"text","text":...}`,
//! the lines a person reads, rendered by the agent ([`super::render`]) so the CLI prints them
//! as they come.
//!
//! Size matters here (the CLI and the agent are one device binary with a 4 MiB budget): the
//! typed responses only derive `Serialize`, requests are one flat struct, and the client reads
//! back only `reply`, `text` and `message` of a response. Deriving `Deserialize` for every
//! response type, or reading them as `serde_json::Value`, measured tens of KiB more.

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The device's status: identity, uptime, apps, link, outbox and store counters.
    Status,
    /// Key-value entries, optionally of one app and namespace.
    KvList {
        /// Only this app.
        app: Option<String>,
        /// Only this namespace.
        namespace: Option<String>,
    },
    /// One key; every app's entry when `app` is not given (the client decides what several
    /// mean).
    KvGet {
        /// The app, if known.
        app: Option<String>,
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
    },
    /// Queued outbox rows, oldest first, and the outbox counters.
    OutboxList {
        /// First sequence number to show (default 0).
        from: u64,
        /// Most rows (default [`DEFAULT_OUTBOX_ROWS`], capped at [`MAX_OUTBOX_ROWS`]).
        limit: usize,
    },
}

/// How the response is to be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The typed response as JSON (scripts, `--json`).
    #[default]
    Json,
    /// `{"reply":"text","text":...}`: the lines a person reads.
    Text,
}

/// A request as it travels: one flat object, so reading it takes one small derived visitor.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RequestLine {
    request: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
}

fn malformed(message: String) -> ProtocolError {
    ProtocolError::Malformed(message)
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Response {
    /// The answer to [`Request::Status`].
    Status(StatusReport),
    /// The answer to [`Request::KvList`] and [`Request::KvGet`].
    Kv(KvReport),
    /// The answer to [`Request::OutboxList`].
    Outbox(OutboxReport),
    /// The answer rendered for a person ([`Format::Text`]).
    Text {
        /// The lines, each ending in a newline.
        text: String,
    },
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// What only the running agent knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<LiveAgent>,
    /// The apps the agent runs (empty when read from the state file).
    pub apps: Vec<AppVersion>,
    /// What the state file says.
    pub store: StoreSummary,
}

/// What a running agent knows of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Depth {
    /// Records.
    pub records: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The state file's counters, as the status and the outbox listing show them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvReport {
    /// The entries, ordered by app, namespace and key.
    pub entries: Vec<KvItem>,
}

/// One key-value entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvItem {
    /// The app that owns it.
    pub app: String,
    /// Namespace.
    pub namespace: String,
    /// Key.
    pub key: String,
    /// The value's bytes, base64 (standard alphabet, padded).
    pub value_base64: String,
    /// The value's bytes (not sent: `value_base64` carries them).
    #[serde(skip)]
    pub value: Vec<u8>,
}

impl KvItem {
    /// The entry for `value`.
    pub fn new(app: String, namespace: String, key: String, value: &[u8]) -> KvItem {
        KvItem {
            app,
            namespace,
            key,
            value_base64: BASE64.encode(value),
            value: value.to_vec(),
        }
    }

    /// The value as `outpost kv` shows it (text, or hex; cut after a few dozen bytes).
    pub fn preview(&self) -> String {
        crate::report::preview(&self.value)
    }
}

/// Queued outbox rows and the counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxReport {
    /// The rows, oldest first.
    pub entries: Vec<OutboxItem>,
    /// The store's counters.
    pub counters: StoreSummary,
}

/// One queued outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Why a line is not a request, or a response not an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The line is longer than [`MAX_REQUEST_BYTES`].
    #[error("request longer than {limit} bytes")]
    TooLong {
        /// The bound.
        limit: usize,
    },
    /// The line is not a request this agent knows (or not a response).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The agent answered with an error.
    #[error("{0}")]
    Refused(String),
}

/// Decodes one request line (with or without its newline).
pub fn decode_request(line: &[u8]) -> Result<(Request, Format), ProtocolError> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(ProtocolError::TooLong {
            limit: MAX_REQUEST_BYTES,
        });
    }
    let line: RequestLine =
        serde_json::from_slice(line.trim_ascii()).map_err(|e| malformed(e.to_string()))?;
    let required = |field: Option<String>, name: &str| {
        field.ok_or_else(|| malformed(format!("`{name}` is missing")))
    };
    let request = match line.request.as_str() {
        "status" => Request::Status,
        "kv_list" => Request::KvList {
            app: line.app,
            namespace: line.namespace,
        },
        "kv_get" => Request::KvGet {
            app: line.app,
            namespace: required(line.namespace, "namespace")?,
            key: required(line.key, "key")?,
        },
        "outbox_list" => Request::OutboxList {
            from: line.from.unwrap_or(0),
            limit: line.limit.map_or(DEFAULT_OUTBOX_ROWS, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            }),
        },
        other => return Err(malformed(format!("unknown request `{other}`"))),
    };
    let format = match line.format.as_deref() {
        None | Some("json") => Format::Json,
        Some("text") => Format::Text,
        Some(other) => return Err(malformed(format!("unknown format `{other}`"))),
    };
    Ok((request, format))
}

/// One request as a line.
pub fn encode_request(request: &Request, format: Format) -> Vec<u8> {
    let mut line = match request.clone() {
        Request::Status => RequestLine {
            request: "status".into(),
            ..RequestLine::default()
        },
        Request::KvList { app, namespace } => RequestLine {
            request: "kv_list".into(),
            app,
            namespace,
            ..RequestLine::default()
        },
        Request::KvGet {
            app,
            namespace,
            key,
        } => RequestLine {
            request: "kv_get".into(),
            app,
            namespace: Some(namespace),
            key: Some(key),
            ..RequestLine::default()
        },
        Request::OutboxList { from, limit } => RequestLine {
            request: "outbox_list".into(),
            from: Some(from),
            limit: Some(limit as u64),
            ..RequestLine::default()
        },
    };
    if format == Format::Text {
        line.format = Some("text".into());
    }
    encode_line(&line)
}

/// What a client reads of a response.
#[derive(Deserialize)]
struct ReplyLine {
    reply: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    message: String,
}

/// What to print for a response line: the lines of a text reply, the JSON line itself for
/// any other; an error reply is [`ProtocolError::Refused`] with the agent's message.
pub fn decode_response(line: &[u8]) -> Result<String, ProtocolError> {
    let bad = |e: String| malformed(format!("response: {e}"));
    let reply: ReplyLine = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
    match reply.reply.as_str() {
        "error" => Err(ProtocolError::Refused(reply.message)),
        "text" => Ok(reply.text),
        _ => std::str::from_utf8(line)
            .map(|json| format!("{}\n", json.trim_end()))
            .map_err(|e| bad(e.to_string())),
    }
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
            Ok((Request::Status, Format::Json))
        );
        assert_eq!(
            decode_request(b"{\"request\":\"kv_list\",\"format\":\"text\"}\n"),
            Ok((
                Request::KvList {
                    app: None,
                    namespace: None
                },
                Format::Text
            ))
        );
        assert_eq!(
            decode_request(br#"{"request":"outbox_list","from":null,"extra":1}"#),
            Ok((
                Request::OutboxList {
                    from: 0,
                    limit: DEFAULT_OUTBOX_ROWS
                },
                Format::Json
            ))
        );
        for request in [
            Request::Status,
            Request::KvList {
                app: Some("a".into()),
                namespace: Some("n".into()),
            },
            Request::KvGet {
                app: None,
                namespace: "n\"\n".into(),
                key: "k".into(),
            },
            Request::OutboxList { from: 7, limit: 3 },
        ] {
            for format in [Format::Json, Format::Text] {
                let line = encode_request(&request, format);
                assert_eq!(line.last(), Some(&b'\n'));
                assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
                assert_eq!(decode_request(&line), Ok((request.clone(), format)));
            }
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
        let deep = "[".repeat(MAX_REQUEST_BYTES);
        for bad in [
            &b""[..],
            b"not json",
            b"{}",
            b"[1,2]",
            b"\"status\"",
            br#"{"request":"reboot"}"#,
            br#"{"request":7}"#,
            br#"{"request":"status","format":"xml"}"#,
            br#"{"request":"kv_get","namespace":"n"}"#,
            br#"{"request":"kv_list","app":3}"#,
            br#"{"request":"outbox_list","limit":-1}"#,
            br#"{"request":"outbox_list","from":"x"}"#,
            b"\xff\xfe",
            deep.as_bytes(),
        ] {
            assert!(
                matches!(decode_request(bad), Err(ProtocolError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn responses_read_back_as_text_json_or_the_agents_refusal() {
        let kv = Response::Kv(KvReport {
            entries: vec![KvItem::new("a".into(), "n".into(), "k".into(), &[0, 159])],
        });
        let line = encode_line(&kv);
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let json = decode_response(&line).expect("a kv reply");
        let doc: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(doc["reply"], "kv");
        assert_eq!(doc["entries"][0]["value_base64"], "AJ8=");
        assert!(
            doc["entries"][0].get("value").is_none(),
            "bytes go as base64"
        );

        let status = Response::Status(StatusReport {
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
            store: StoreSummary {
                outbox: Depth {
                    records: 2,
                    bytes: 32,
                },
                ..StoreSummary::default()
            },
        });
        let doc: serde_json::Value =
            serde_json::from_str(&decode_response(&encode_line(&status)).expect("status"))
                .expect("json");
        assert_eq!(doc["agent"]["device"], "d1");
        assert_eq!(doc["agent"]["last_drain_s_ago"], 1);
        assert_eq!(doc["apps"][0]["version"], "1.0.0");
        assert_eq!(doc["store"]["outbox"]["records"], 2);

        let text = Response::Text {
            text: "a \"line\"\n".into(),
        };
        assert_eq!(
            decode_response(&encode_line(&text)),
            Ok("a \"line\"\n".into())
        );
        assert_eq!(
            decode_response(&encode_line(&Response::error("no such thing"))),
            Err(ProtocolError::Refused("no such thing".into()))
        );
        for bad in [&b"{\"v\":1}\n"[..], b"", b"garbage"] {
            assert!(matches!(
                decode_response(bad),
                Err(ProtocolError::Malformed(_))
            ));
        }
    }
}
