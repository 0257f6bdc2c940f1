//! Human-readable lines for outcomes and events, as `outpost up` and `outpost invoke` print them.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::executor::Outcome;
use crate::runtime::OutboxEffect;

/// Longest payload preview printed; the full bytes are in the outbox.
const PREVIEW_BYTES: usize = 160;

/// One line summarising an invocation.
pub fn outcome_line(outcome: &Outcome) -> String {
    let head = format!(
        "{} {} <- {} ({:?})",
        clock_time(outcome.time_ms),
        outcome.component,
        outcome.trigger,
        outcome.kind
    );
    match &outcome.result {
        Ok(receipt) => {
            let mut line = format!(
                "{head}: ok in {:.2} ms (+{:.2} ms commit), fuel {}, kv {}, events {}, publishes {}",
                outcome.duration.as_secs_f64() * 1e3,
                outcome.commit_wait.as_secs_f64() * 1e3,
                outcome.fuel_used,
                receipt.kv_writes,
                outcome.effects.event_count(),
                outcome.effects.publish_count(),
            );
            if let Some(seqs) = &receipt.seqs {
                let _ = write!(line, ", seq {}..={}", seqs.start(), seqs.end());
            }
            if receipt.dropped_records > 0 {
                let _ = write!(
                    line,
                    ", dropped {} oldest (outbox full)",
                    receipt.dropped_records
                );
            }
            line
        }
        Err(error) => format!(
            "{head}: FAILED after {:.2} ms, fuel {}: {error}; nothing committed",
            outcome.duration.as_secs_f64() * 1e3,
            outcome.fuel_used
        ),
    }
}

/// One line per committed event or publish of an outcome.
pub fn effect_lines(outcome: &Outcome) -> Vec<String> {
    let Ok(receipt) = &outcome.result else {
        return Vec::new();
    };
    let first_seq = receipt.seqs.as_ref().map(|s| *s.start()).unwrap_or(0);
    outcome
        .effects
        .records
        .iter()
        .enumerate()
        .map(|(i, record)| format!("  #{} {}", first_seq + i as u64, record_line(record)))
        .collect()
}

/// A record as text: where it goes and a preview of its payload.
pub fn record_line(record: &OutboxEffect) -> String {
    match record {
        OutboxEffect::Event { stream, data } => format!("event {stream}: {}", preview(data)),
        OutboxEffect::Publish {
            topic,
            payload,
            qos,
            retain,
        } => format!(
            "publish {topic} (qos {qos}{}): {}",
            if *retain { ", retained" } else { "" },
            preview(payload)
        ),
        OutboxEffect::Kv { ns, key, value } => match value {
            Some(value) => format!("kv {ns}/{key} = {}", preview(value)),
            None => format!("kv {ns}/{key} deleted"),
        },
    }
}

/// UTF-8 text as is (shortened), anything else as hex.
pub fn preview(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(PREVIEW_BYTES)];
    let more = if bytes.len() > PREVIEW_BYTES {
        "…"
    } else {
        ""
    };
    match std::str::from_utf8(shown) {
        Ok(text) if !text.chars().any(|c| c.is_control() && c != '\n') => format!("{text}{more}"),
        _ => {
            let mut hex = String::from("0x");
            for byte in shown {
                let _ = write!(hex, "{byte:02x}");
            }
            format!("{hex}{more}")
        }
    }
}

/// `HH:MM:SS.mmm` in UTC.
pub fn clock_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// The agent event for one invocation's outcome.
pub fn outcome_event(outcome: &Outcome) -> crate::events::AgentEvent {
    crate::events::AgentEvent::Invoked {
        component: outcome.component.to_string(),
        trigger: outcome.trigger.to_string(),
        ok: outcome.result.is_ok(),
        line: outcome_line(outcome),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_text_as_text_and_binary_as_hex() {
        assert_eq!(preview(b"{\"v\":1}"), "{\"v\":1}");
        assert_eq!(preview(&[0, 255]), "0x00ff");
        assert!(preview(&[b'a'; 500]).ends_with('…'));
    }
}
