//! MQTT topic arithmetic the simulated broker needs: filter matching, QoS downgrade, packet size.

use crate::mqtt::QoS;

/// Whether `topic` (a topic name, no wildcards) matches `filter` (a valid topic filter).
///
/// MQTT 3.1.1 section 4.7: `+` matches exactly one level (which may be empty), `#` (last level
/// only) matches the parent level and everything below it, and a filter that starts with a
/// wildcard does not match topics starting with `$` (`$SYS/...`). rumqttc's own `matches` is not
/// used because it refuses `$` topics even for filters such as `$SYS/#`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        if level == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(_) if level == "+" => {}
            Some(name) if name == level => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

/// The lower of two QoS levels: a broker delivers at most the QoS the subscription granted.
pub fn lower(a: QoS, b: QoS) -> QoS {
    if a < b { a } else { b }
}

/// The higher of two QoS levels: overlapping subscriptions deliver once, at the highest QoS.
pub fn higher(a: QoS, b: QoS) -> QoS {
    if a < b { b } else { a }
}

/// Size in bytes of the PUBLISH packet rumqttc would write, to refuse oversize publishes as
/// [`RumqttcClient`](crate::mqtt::RumqttcClient) does: fixed header byte, remaining-length
/// varint, topic with its length prefix, packet id (QoS 1/2) and payload.
pub fn publish_size(topic: &str, qos: QoS, payload: &[u8]) -> usize {
    let packet_id = if qos == QoS::AtMostOnce { 0 } else { 2 };
    let remaining = 2 + topic.len() + packet_id + payload.len();
    let varint = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + varint + remaining
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_filters_match_only_their_topic() {
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
        assert!(!matches("a/b", "a/B"));
    }

    #[test]
    fn plus_matches_exactly_one_level() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/+/c", "a//c"), "an empty level is a level");
        assert!(!matches("a/+/c", "a/b/x/c"));
        assert!(!matches("a/+", "a"));
        assert!(matches("+", "a"));
        assert!(!matches("+", "a/b"));
        assert!(matches("+/+", "/a"));
    }

    #[test]
    fn hash_matches_the_parent_and_everything_below() {
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b"));
        assert!(matches("a/#", "a/b/c"));
        assert!(!matches("a/#", "b/a"));
        assert!(matches("#", "a/b/c"));
        assert!(matches("a/+/#", "a/b"));
        assert!(!matches("a/+/#", "a"));
    }

    #[test]
    fn dollar_topics_need_an_explicit_first_level() {
        assert!(!matches("#", "$SYS/uptime"));
        assert!(!matches("+/uptime", "$SYS/uptime"));
        assert!(matches("$SYS/#", "$SYS/uptime"));
        assert!(matches("$SYS/+", "$SYS/uptime"));
    }

    #[test]
    fn qos_is_capped_by_the_subscription() {
        assert_eq!(lower(QoS::AtLeastOnce, QoS::AtMostOnce), QoS::AtMostOnce);
        assert_eq!(lower(QoS::AtLeastOnce, QoS::ExactlyOnce), QoS::AtLeastOnce);
        assert_eq!(higher(QoS::AtMostOnce, QoS::AtLeastOnce), QoS::AtLeastOnce);
    }

    #[test]
    fn packet_size_agrees_with_rumqttc() {
        for (topic, payload_len) in [("t", 0), ("a/b/c", 100), ("long/topic", 20_000)] {
            let payload = vec![7u8; payload_len];
            for (qos, raw) in [
                (QoS::AtMostOnce, ::rumqttc::QoS::AtMostOnce),
                (QoS::AtLeastOnce, ::rumqttc::QoS::AtLeastOnce),
            ] {
                let mut packet = ::rumqttc::Publish::new(topic, raw, payload.clone());
                packet.pkid = u16::from(qos != QoS::AtMostOnce);
                assert_eq!(publish_size(topic, qos, &payload), packet.size());
            }
        }
    }
}
