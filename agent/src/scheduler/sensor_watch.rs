//! Decides which sensor samples fire a sensor trigger (every, change, rising, falling, crossing).

use outpost_abi::SensorPayload;
use outpost_manifest::FireRule;

/// The state of one sensor trigger between samples.
#[derive(Debug, Clone)]
pub struct SensorWatch {
    /// The manifest's rule.
    rule: FireRule,
    /// The previous sample, if any.
    previous: Option<f64>,
}

impl SensorWatch {
    /// A watch that has seen no sample yet.
    pub fn new(rule: FireRule) -> SensorWatch {
        SensorWatch {
            rule,
            previous: None,
        }
    }

    /// Takes one sample; returns the trigger payload if this sample fires.
    ///
    /// The first sample fires `every` and `change`; threshold rules need a previous sample
    /// to see a crossing.
    pub fn observe(&mut self, value: f64) -> Option<SensorPayload> {
        let previous = self.previous.replace(value);
        let fires = match (self.rule, previous) {
            (FireRule::Every, _) => true,
            (FireRule::Change { .. }, None) => true,
            (FireRule::Change { min_delta }, Some(prev)) => {
                let delta = (value - prev).abs();
                if min_delta > 0.0 {
                    delta > min_delta
                } else {
                    delta > 0.0
                }
            }
            (_, None) => false,
            (FireRule::Rising { threshold }, Some(prev)) => prev < threshold && value >= threshold,
            (FireRule::Falling { threshold }, Some(prev)) => prev >= threshold && value < threshold,
            (FireRule::Crossing { threshold }, Some(prev)) => {
                (prev < threshold) != (value < threshold)
            }
        };
        fires.then(|| SensorPayload {
            value,
            previous: previous.unwrap_or(f64::NAN),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(rule: FireRule, samples: &[f64]) -> Vec<f64> {
        let mut watch = SensorWatch::new(rule);
        samples
            .iter()
            .filter_map(|v| watch.observe(*v).map(|p| p.value))
            .collect()
    }

    #[test]
    fn each_rule_fires_on_the_right_samples() {
        let samples = [10.0, 10.0, 12.0, 31.0, 35.0, 29.0, 29.05];
        assert_eq!(fired(FireRule::Every, &samples).len(), samples.len());
        assert_eq!(
            fired(FireRule::Change { min_delta: 0.0 }, &samples),
            vec![10.0, 12.0, 31.0, 35.0, 29.0, 29.05]
        );
        assert_eq!(
            fired(FireRule::Change { min_delta: 1.0 }, &samples),
            vec![10.0, 12.0, 31.0, 35.0, 29.0]
        );
        assert_eq!(
            fired(FireRule::Rising { threshold: 30.0 }, &samples),
            vec![31.0]
        );
        assert_eq!(
            fired(FireRule::Falling { threshold: 30.0 }, &samples),
            vec![29.0]
        );
        assert_eq!(
            fired(FireRule::Crossing { threshold: 30.0 }, &samples),
            vec![31.0, 29.0]
        );
    }

    #[test]
    fn payload_carries_the_previous_sample() {
        let mut watch = SensorWatch::new(FireRule::Every);
        assert!(watch.observe(1.0).expect("fires").previous.is_nan());
        assert_eq!(watch.observe(2.0).expect("fires").previous, 1.0);
    }
}
