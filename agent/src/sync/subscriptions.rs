//! Which subscribe and unsubscribe calls bring a session in line with what the routes want:
//! pure set arithmetic over [`Wanted`], apart from the engine's I/O.

use crate::inbound::Wanted;

/// The calls to make.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Filters to subscribe to: new ones, and those whose fetch generation changed (so the
    /// broker sends their retained message again).
    pub subscribe: Vec<String>,
    /// Filters no route wants any more.
    pub unsubscribe: Vec<String>,
}

/// Merges what every route wants. A filter wanted by two routes is subscribed once; its
/// generation is the sum of theirs, so a change by either asks for a new subscription.
pub fn union<'a>(routes: impl IntoIterator<Item = &'a Wanted>) -> Wanted {
    let mut all = Wanted::new();
    for wanted in routes {
        for (filter, generation) in wanted {
            let entry = all.entry(filter.clone()).or_insert(0);
            *entry = entry.wrapping_add(*generation);
        }
    }
    all
}

/// The calls that turn `subscribed` into `wanted`.
pub fn diff(wanted: &Wanted, subscribed: &Wanted) -> Changes {
    Changes {
        subscribe: wanted
            .iter()
            .filter(|(filter, generation)| subscribed.get(*filter) != Some(generation))
            .map(|(filter, _)| filter.clone())
            .collect(),
        unsubscribe: subscribed
            .keys()
            .filter(|filter| !wanted.contains_key(*filter))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(pairs: &[(&str, u32)]) -> Wanted {
        pairs.iter().map(|(f, g)| (f.to_string(), *g)).collect()
    }

    #[test]
    fn new_and_refetched_filters_are_subscribed_and_dropped_ones_unsubscribed() {
        let subscribed = wanted(&[("a", 0), ("b", 1), ("c", 0)]);
        let now = wanted(&[("a", 0), ("b", 2), ("d", 0)]);
        assert_eq!(
            diff(&now, &subscribed),
            Changes {
                subscribe: vec!["b".into(), "d".into()],
                unsubscribe: vec!["c".into()],
            }
        );
        assert_eq!(diff(&now, &now), Changes::default());
    }

    #[test]
    fn a_filter_two_routes_want_is_subscribed_once_and_follows_both_generations() {
        let fleet = wanted(&[("x/#", 1)]);
        let inbox = wanted(&[("x/#", 0), ("y", 0)]);
        let before = union([&fleet, &inbox]);
        assert_eq!(before.len(), 2);
        let fleet = wanted(&[("x/#", 2)]);
        let after = union([&fleet, &inbox]);
        assert_eq!(diff(&after, &before).subscribe, vec!["x/#".to_string()]);
    }
}
