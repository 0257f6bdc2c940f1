//! The boards components of one app read through: the device's board seen under the app's
//! logical names. A name outside the app's bindings is not found, like on any board.

use std::collections::BTreeMap;
use std::sync::Arc;

use outpost_hal::{
    GpioBoard, GpioError, GpioLineInfo, Reading, SensorBoard, SensorError, SensorInfo,
};

use super::SensorBinding;

/// A sensor board under an app's logical sensor names, converting values as bound.
pub struct BoundSensors {
    board: Arc<dyn SensorBoard>,
    bindings: BTreeMap<String, SensorBinding>,
}

impl BoundSensors {
    /// `board` seen through `bindings` (logical name → board sensor).
    pub fn new(board: Arc<dyn SensorBoard>, bindings: BTreeMap<String, SensorBinding>) -> Self {
        BoundSensors { board, bindings }
    }
}

impl SensorBoard for BoundSensors {
    fn sensors(&self) -> Vec<SensorInfo> {
        self.bindings
            .iter()
            .map(|(name, bound)| SensorInfo {
                name: name.clone(),
                unit: bound.unit.clone(),
                source: bound.source.clone(),
            })
            .collect()
    }

    fn read(&self, name: &str) -> Result<Reading, SensorError> {
        self.read_within(name, std::time::Duration::MAX)
    }

    fn read_within(&self, name: &str, within: std::time::Duration) -> Result<Reading, SensorError> {
        let bound = self
            .bindings
            .get(name)
            .ok_or_else(|| SensorError::NotFound(name.to_string()))?;
        let reading = self.board.read_within(&bound.source, within)?;
        Ok(match bound.conversion {
            Some((scale, offset)) => Reading {
                value: reading.value * scale + offset,
            },
            None => reading,
        })
    }
}

/// A GPIO board under an app's logical line names.
pub struct BoundGpio {
    board: Arc<dyn GpioBoard>,
    lines: BTreeMap<String, String>,
}

impl BoundGpio {
    /// `board` seen through `lines` (logical name → the board's `<chip>:<offset>`).
    pub fn new(board: Arc<dyn GpioBoard>, lines: BTreeMap<String, String>) -> Self {
        BoundGpio { board, lines }
    }

    fn line(&self, name: &str) -> Result<&str, GpioError> {
        self.lines
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| GpioError::NotFound(name.to_string()))
    }
}

impl GpioBoard for BoundGpio {
    fn lines(&self) -> Vec<GpioLineInfo> {
        let board = self.board.lines();
        self.lines
            .iter()
            .filter_map(|(name, bound)| {
                let info = board.iter().find(|l| &l.name == bound)?;
                Some(GpioLineInfo {
                    line_name: Some(name.clone()),
                    ..info.clone()
                })
            })
            .collect()
    }

    fn read(&self, line: &str) -> Result<bool, GpioError> {
        self.board.read(self.line(line)?)
    }

    fn write(&self, line: &str, value: bool) -> Result<(), GpioError> {
        self.board.write(self.line(line)?, value)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use outpost_hal::sim::{Profile, SensorSpec, SimBoard};
    use outpost_hal::{ManualClock, SimGpio};

    use super::*;

    #[test]
    fn reads_go_to_the_bound_source_converted_and_other_names_are_not_found() {
        let clock = Arc::new(ManualClock::new(0));
        let specs = [SensorSpec::new(
            "thermal/cpu-thermal",
            Profile::Constant { value: 20.0 },
        )];
        let board: Arc<dyn SensorBoard> =
            Arc::new(SimBoard::new(&specs, Path::new("."), clock).expect("board"));
        let bindings = BTreeMap::from([(
            "temperature".to_string(),
            SensorBinding {
                source: "thermal/cpu-thermal".into(),
                conversion: Some((2.0, 1.0)),
                unit: "°C".into(),
                automatic: false,
            },
        )]);
        let bound = BoundSensors::new(board, bindings);
        assert_eq!(bound.read("temperature").expect("read").value, 41.0);
        assert_eq!(
            bound.read("thermal/cpu-thermal"),
            Err(SensorError::NotFound("thermal/cpu-thermal".into())),
            "only logical names are visible"
        );
        assert_eq!(bound.sensors()[0].name, "temperature");
    }

    #[test]
    fn line_writes_reach_the_bound_line() {
        let sim = Arc::new(SimGpio::new().with_chip("gpiochip0", &["", "RELAY"]));
        let bound = BoundGpio::new(
            sim.clone(),
            BTreeMap::from([("relay".to_string(), "gpiochip0:1".to_string())]),
        );
        bound.write("relay", true).expect("write");
        assert_eq!(
            sim.writes().last().map(|w| (w.line.as_str(), w.value)),
            Some(("gpiochip0:1", true))
        );
        assert!(matches!(
            bound.write("gpiochip0:1", true),
            Err(GpioError::NotFound(_))
        ));
        assert_eq!(bound.lines()[0].line_name.as_deref(), Some("relay"));
    }
}
