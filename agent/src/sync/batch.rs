//! Turns a page of outbox rows into MQTT messages: events of one stream are batched into one
//! message (fewer packets on thin links), bounded by an event count and the packet size limit;
//! component publishes go out one by one, as the component asked.

use std::collections::BTreeMap;

use crate::runtime::{Outbound, SendCheck, Unsendable};
use crate::store::{OutboxEntry, RecordBody};

use super::anchor::{self, ClockNow};
use super::wire::{self, Origin, WireEvent, WireFormat};

/// One message to publish and the outbox rows it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Where it goes.
    pub topic: String,
    /// The encoded body.
    pub payload: Vec<u8>,
    /// 0 or 1.
    pub qos: u8,
    /// Whether the broker retains it.
    pub retain: bool,
    /// Outbox rows to delete once the broker acknowledges it.
    pub seqs: Vec<u64>,
}

/// A row that can never be sent because it is larger than the packet limit. Commit-time
/// checks ([`SendCheck`]) keep such rows out of the outbox; one can still appear when the
/// limit was lowered, the wire format or device id changed, or an older agent committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversize {
    /// Its sequence number.
    pub seq: u64,
    /// The packet it needs.
    pub bytes: usize,
}

/// How messages are shaped.
#[derive(Debug, Clone)]
pub struct Planner {
    /// This device's id.
    pub device: String,
    /// The incarnation of the device's store (see docs/WIRE.md); empty if unknown.
    pub incarnation: String,
    /// Topic prefix, e.g. `outpost`.
    pub prefix: String,
    /// Event encoding.
    pub format: WireFormat,
    /// Most events in one message.
    pub max_events: usize,
    /// Largest MQTT packet the broker and client accept.
    pub max_packet_bytes: usize,
}

/// Bytes an MQTT PUBLISH needs besides topic and payload (fixed header, lengths, packet id).
pub const PACKET_OVERHEAD: usize = 16;

/// What the device's defaults are for (`mqtt.max_packet_bytes`); also in `config.rs`.
const DEFAULT_PACKET_BYTES: usize = 256 * 1024;

impl Planner {
    /// The planner of a device with every default setting and the longest device id allowed
    /// (64 characters), for `outpost up` and `outpost invoke`, which have no `agent.toml`: what
    /// they accept, a device with default settings can send.
    pub fn assumed_default() -> Planner {
        Planner {
            device: "d".repeat(64),
            incarnation: "0".repeat(32),
            prefix: "outpost".into(),
            format: WireFormat::Json,
            max_events: 64,
            max_packet_bytes: DEFAULT_PACKET_BYTES,
        }
    }

    fn origin(&self) -> Origin<'_> {
        Origin {
            device: &self.device,
            incarnation: &self.incarnation,
        }
    }

    /// The packet a single row needs on its own.
    fn packet_len(&self, record: &Outbound<'_>) -> usize {
        let (topic, body) = match *record {
            Outbound::Event {
                app,
                component,
                stream,
                data,
            } => (
                self.event_topic(stream).len(),
                wire::max_event_len(self.format, self.origin(), stream, app, component, data),
            ),
            Outbound::Publish { topic, payload } => (topic.len(), payload.len()),
            Outbound::Kv { ns, key, value } => (self.kv_topic(ns, key).len(), value.len()),
        };
        topic + body + PACKET_OVERHEAD
    }

    /// `{prefix}/{device}/events/{stream}`.
    pub fn event_topic(&self, stream: &str) -> String {
        format!("{}/{}/events/{stream}", self.prefix, self.device)
    }

    /// Plans the messages for `rows` (in sequence order). Per stream the order of rows is kept.
    /// `now` is the clock as the page is planned: events committed before it synchronised get
    /// their true time from it where they can ([`anchor::event_time`]).
    pub fn plan(&self, rows: &[OutboxEntry], now: &ClockNow) -> (Vec<Outgoing>, Vec<Oversize>) {
        let mut out = Vec::new();
        let mut oversize = Vec::new();
        // Open batches per stream, flushed when full or at the end of the page.
        let mut open: BTreeMap<&str, Vec<&OutboxEntry>> = BTreeMap::new();
        for row in rows {
            match &row.record.body {
                RecordBody::Event { stream, .. } => {
                    let batch = open.entry(stream.as_str()).or_default();
                    let budget = self.payload_budget(stream);
                    let projected: usize =
                        batch.iter().map(|r| estimate(r)).sum::<usize>() + estimate(row);
                    if !batch.is_empty() && (batch.len() >= self.max_events || projected > budget) {
                        let full = std::mem::take(batch);
                        self.flush(stream, &full, now, &mut out, &mut oversize);
                    }
                    batch.push(row);
                }
                RecordBody::Kv { ns, key, value } => {
                    let topic = self.kv_topic(ns, key);
                    let payload = value.clone().unwrap_or_default();
                    let needed = topic.len() + payload.len() + PACKET_OVERHEAD;
                    if needed > self.max_packet_bytes {
                        oversize.push(Oversize {
                            seq: row.seq,
                            bytes: needed,
                        });
                        continue;
                    }
                    out.push(Outgoing {
                        topic,
                        payload,
                        qos: 1,
                        retain: true,
                        seqs: vec![row.seq],
                    });
                }
                RecordBody::Publish {
                    topic,
                    payload,
                    qos,
                    retain,
                } => {
                    let needed = topic.len() + payload.len() + PACKET_OVERHEAD;
                    if needed > self.max_packet_bytes {
                        oversize.push(Oversize {
                            seq: row.seq,
                            bytes: needed,
                        });
                        continue;
                    }
                    out.push(Outgoing {
                        topic: topic.clone(),
                        payload: payload.clone(),
                        qos: *qos,
                        retain: *retain,
                        seqs: vec![row.seq],
                    });
                }
            }
        }
        for (stream, batch) in open {
            self.flush(stream, &batch, now, &mut out, &mut oversize);
        }
        (out, oversize)
    }

    /// `{prefix}/{device}/kv/{ns}/{key}`; `%`, `+`, `#` and NUL in the key are percent-encoded
    /// because they may not appear in a topic name.
    pub fn kv_topic(&self, ns: &str, key: &str) -> String {
        let mut topic = format!("{}/{}/kv/{ns}/", self.prefix, self.device);
        for c in key.chars() {
            match c {
                '%' => topic.push_str("%25"),
                '+' => topic.push_str("%2B"),
                '#' => topic.push_str("%23"),
                '\0' => topic.push_str("%00"),
                other => topic.push(other),
            }
        }
        topic
    }

    fn payload_budget(&self, stream: &str) -> usize {
        self.max_packet_bytes
            .saturating_sub(self.event_topic(stream).len() + PACKET_OVERHEAD)
    }

    fn flush(
        &self,
        stream: &str,
        batch: &[&OutboxEntry],
        now: &ClockNow,
        out: &mut Vec<Outgoing>,
        oversize: &mut Vec<Oversize>,
    ) {
        if batch.is_empty() {
            return;
        }
        let events: Vec<WireEvent<'_>> = batch.iter().filter_map(|r| wire_event(r, now)).collect();
        let payload = wire::encode(self.format, self.origin(), stream, &events);
        if payload.len() > self.payload_budget(stream) {
            if batch.len() > 1 {
                // The estimate was optimistic: split in halves until each fits.
                let (a, b) = batch.split_at(batch.len() / 2);
                self.flush(stream, a, now, out, oversize);
                self.flush(stream, b, now, out, oversize);
            } else {
                oversize.push(Oversize {
                    seq: batch[0].seq,
                    bytes: payload.len() + self.event_topic(stream).len() + PACKET_OVERHEAD,
                });
            }
            return;
        }
        out.push(Outgoing {
            topic: self.event_topic(stream),
            payload,
            qos: 1,
            retain: false,
            seqs: batch.iter().map(|r| r.seq).collect(),
        });
    }
}

impl SendCheck for Planner {
    fn check(&self, record: &Outbound<'_>) -> Result<(), Unsendable> {
        let needed = self.packet_len(record);
        if needed > self.max_packet_bytes {
            return Err(Unsendable {
                needed,
                limit: self.max_packet_bytes,
            });
        }
        Ok(())
    }
}

fn wire_event<'a>(row: &'a OutboxEntry, now: &ClockNow) -> Option<WireEvent<'a>> {
    let (time, time_source) = anchor::event_time(row.record.time_ms, row.unsynced.as_ref(), now);
    match &row.record.body {
        RecordBody::Event { data, .. } => Some(WireEvent {
            seq: row.seq,
            time,
            time_source,
            app: &row.record.app,
            component: &row.record.component,
            data,
        }),
        RecordBody::Publish { .. } | RecordBody::Kv { .. } => None,
    }
}

/// A generous estimate of an event's encoded size (base64, field names); the flush checks the
/// real size and splits a batch the estimate got wrong.
fn estimate(row: &OutboxEntry) -> usize {
    let names = row.record.app.len() + row.record.component.len();
    match &row.record.body {
        RecordBody::Event { stream, data } => 2 * data.len() + names + stream.len() + 160,
        RecordBody::Publish { payload, .. } => payload.len() + names,
        RecordBody::Kv { key, value, .. } => key.len() + value.as_ref().map_or(0, Vec::len) + names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RecordV1;

    #[test]
    fn kv_changes_are_retained_on_their_own_topic_and_deletes_are_empty() {
        let kv = |seq, value: Option<&[u8]>| OutboxEntry {
            seq,
            unsynced: None,
            record: RecordV1 {
                time_ms: 5,
                app: "app".into(),
                component: "c".into(),
                body: RecordBody::Kv {
                    ns: "readings".into(),
                    key: "t/latest+#".into(),
                    value: value.map(<[u8]>::to_vec),
                },
            },
        };
        let (out, _) = planner(10, 10_000).plan(
            &[kv(1, Some(b"21.5")), kv(2, None)],
            &ClockNow::assume_synced(),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].topic, "outpost/d1/kv/readings/t/latest%2B%23");
        assert_eq!(
            (out[0].payload.as_slice(), out[0].retain, out[0].qos),
            (&b"21.5"[..], true, 1)
        );
        assert!(
            out[1].payload.is_empty() && out[1].retain,
            "a delete clears the retained value"
        );
    }

    fn row(seq: u64, stream: &str, data: &[u8]) -> OutboxEntry {
        OutboxEntry {
            seq,
            unsynced: None,
            record: RecordV1 {
                time_ms: 5,
                app: "app".into(),
                component: "c".into(),
                body: RecordBody::Event {
                    stream: stream.into(),
                    data: data.to_vec(),
                },
            },
        }
    }

    fn planner(max_events: usize, max_packet_bytes: usize) -> Planner {
        Planner {
            device: "d1".into(),
            incarnation: "0f3c".into(),
            prefix: "outpost".into(),
            format: WireFormat::Json,
            max_events,
            max_packet_bytes,
        }
    }

    #[test]
    fn events_of_a_stream_are_batched_in_order_up_to_the_event_limit() {
        let rows: Vec<_> = (1..=5)
            .map(|s| row(s, if s % 2 == 0 { "b" } else { "a" }, b"1"))
            .collect();
        let (out, oversize) = planner(2, 10_000).plan(&rows, &ClockNow::assume_synced());
        assert!(oversize.is_empty());
        let shape: Vec<(&str, Vec<u64>)> = out
            .iter()
            .map(|o| (o.topic.as_str(), o.seqs.clone()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("outpost/d1/events/a", vec![1, 3]),
                ("outpost/d1/events/a", vec![5]),
                ("outpost/d1/events/b", vec![2, 4]),
            ]
        );
        assert!(out.iter().all(|o| o.qos == 1 && !o.retain));
    }

    #[test]
    fn batches_respect_the_packet_limit_and_oversize_rows_are_reported() {
        let big = vec![b'x'; 600];
        let rows: Vec<_> = (1..=6).map(|s| row(s, "a", &big)).collect();
        let limit = 2_000;
        let (out, oversize) = planner(100, limit).plan(&rows, &ClockNow::assume_synced());
        assert!(oversize.is_empty());
        assert!(out.len() > 1, "split into several messages");
        assert!(
            out.iter()
                .all(|o| o.payload.len() + o.topic.len() + PACKET_OVERHEAD <= limit)
        );
        let seqs: Vec<u64> = out.iter().flat_map(|o| o.seqs.clone()).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);

        let (out, oversize) =
            planner(100, 500).plan(&[row(9, "a", &big)], &ClockNow::assume_synced());
        assert!(out.is_empty());
        assert_eq!(oversize.len(), 1);
        assert_eq!(oversize[0].seq, 9);
    }

    #[test]
    fn a_row_that_passed_the_commit_check_always_plans_into_a_message() {
        let limit = 70_000;
        let p = planner(64, limit);
        for data in [vec![1u8; 52_000], vec![0xffu8; 52_000], vec![b'x'; 69_000]] {
            let outbound = Outbound::Event {
                app: "app",
                component: "c",
                stream: "a",
                data: &data,
            };
            let fits = p.check(&outbound).is_ok();
            let (out, oversize) = p.plan(&[row(1, "a", &data)], &ClockNow::assume_synced());
            assert_eq!(fits, oversize.is_empty(), "{} bytes", data.len());
            assert_eq!(fits, out.len() == 1);
        }
        let big = vec![0u8; 80_000];
        let refused = p
            .check(&Outbound::Publish {
                topic: "t",
                payload: &big,
            })
            .expect_err("too large");
        assert_eq!(refused.limit, limit);
        assert!(refused.needed > 80_000);
        assert!(
            p.check(&Outbound::Kv {
                ns: "n",
                key: "k",
                value: &big[..60_000]
            })
            .is_ok()
        );
    }

    #[test]
    fn a_64_kib_binary_event_fits_the_default_packet_limit_in_every_format() {
        let data: Vec<u8> = (0..65_536u32).map(|i| (i % 32) as u8).collect();
        for format in [WireFormat::Json, WireFormat::Postcard] {
            let p = Planner {
                format,
                ..Planner::assumed_default()
            };
            let event = Outbound::Event {
                app: &"a".repeat(128),
                component: &"c".repeat(128),
                stream: &"s".repeat(128),
                data: &data,
            };
            assert_eq!(p.check(&event), Ok(()), "{format:?}");
        }
    }
}
