//! The delivery verdict of the sync tests: every committed event arrived at least once, per
//! stream in order of first arrival, and nothing arrived that was never committed.

use std::collections::{BTreeMap, BTreeSet};

use crate::seen::Arrival;
use crate::subscriber::Subscriber;

/// Counts from a successful [`check_delivery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Events committed (and all delivered).
    pub committed: usize,
    /// Event arrivals of the device, duplicates included.
    pub arrivals: usize,
    /// Arrivals beyond the first of the same `(stream, seq)` (allowed: at least once).
    pub duplicates: usize,
}

/// Checks the arrivals of `device` against what was committed per stream:
/// 1. every committed seq arrived at least once;
/// 2. per stream, first arrivals come in strictly increasing seq order;
/// 3. nothing arrived that was not committed (for that stream).
///
/// Duplicates are allowed and counted.
pub fn check_delivery(
    device: &str,
    committed: &BTreeMap<String, Vec<u64>>,
    arrivals: &[Arrival],
) -> Result<Delivery, String> {
    let committed_sets: BTreeMap<&str, BTreeSet<u64>> = committed
        .iter()
        .map(|(stream, seqs)| (stream.as_str(), seqs.iter().copied().collect()))
        .collect();
    let mut first_seen: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    let mut last_first: BTreeMap<&str, u64> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let (mut count, mut duplicates) = (0, 0);
    for arrival in arrivals.iter().filter(|a| a.device == device) {
        count += 1;
        let stream = arrival.stream.as_str();
        if !committed_sets
            .get(stream)
            .is_some_and(|set| set.contains(&arrival.seq))
        {
            unknown.push(format!("{stream}#{}", arrival.seq));
            continue;
        }
        if !first_seen.entry(stream).or_default().insert(arrival.seq) {
            duplicates += 1;
            continue;
        }
        if let Some(previous) = last_first.insert(stream, arrival.seq)
            && previous >= arrival.seq
            && problems.len() < 20
        {
            problems.push(format!(
                "stream {stream}: seq {} first arrived after seq {previous}",
                arrival.seq
            ));
        }
    }
    for (stream, seqs) in &committed_sets {
        let got = first_seen.get(stream);
        let missing: Vec<u64> = seqs
            .iter()
            .copied()
            .filter(|s| !got.is_some_and(|g| g.contains(s)))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "stream {stream}: {} of {} committed seqs never arrived, e.g. {:?}",
                missing.len(),
                seqs.len(),
                &missing[..missing.len().min(20)]
            ));
        }
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "{} arrivals were never committed, e.g. {:?}",
            unknown.len(),
            &unknown[..unknown.len().min(20)]
        ));
    }
    if problems.is_empty() {
        Ok(Delivery {
            committed: committed.values().map(Vec::len).sum(),
            arrivals: count,
            duplicates,
        })
    } else {
        Err(problems.join("\n"))
    }
}

/// [`check_delivery`], panicking with its findings; also fails on wire-format problems.
pub fn assert_delivered(
    device: &str,
    committed: &BTreeMap<String, Vec<u64>>,
    subscriber: &Subscriber,
) -> Delivery {
    let problems = subscriber.problems();
    assert!(
        problems.is_empty(),
        "wire-format problems ({}), first: {:#?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
    let arrivals = subscriber.arrivals();
    check_delivery(device, committed, &arrivals)
        .unwrap_or_else(|problems| panic!("delivery of {device} is wrong:\n{problems}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(stream: &str, seq: u64) -> Arrival {
        Arrival {
            device: "d".into(),
            stream: stream.into(),
            seq,
            time: 0,
            event: serde_json::Value::Null,
        }
    }

    fn committed(seqs: &[u64]) -> BTreeMap<String, Vec<u64>> {
        BTreeMap::from([("s".to_string(), seqs.to_vec())])
    }

    #[test]
    fn duplicates_pass_and_are_counted() {
        let arrivals = [arrival("s", 1), arrival("s", 2), arrival("s", 1)];
        let delivery = check_delivery("d", &committed(&[1, 2]), &arrivals).expect("delivered");
        assert_eq!((delivery.arrivals, delivery.duplicates), (3, 1));
    }

    #[test]
    fn missing_reordered_and_unknown_events_fail() {
        let missing = check_delivery("d", &committed(&[1, 2]), &[arrival("s", 1)]);
        assert!(missing.is_err_and(|p| p.contains("never arrived")));
        let reordered = check_delivery(
            "d",
            &committed(&[1, 2]),
            &[arrival("s", 2), arrival("s", 1)],
        );
        assert!(reordered.is_err_and(|p| p.contains("first arrived after")));
        let unknown = check_delivery("d", &committed(&[1]), &[arrival("s", 1), arrival("s", 9)]);
        assert!(unknown.is_err_and(|p| p.contains("never committed")));
    }
}
