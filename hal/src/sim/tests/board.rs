//! Building a board from specs, listing and looking up sensors.

use std::path::Path;
use std::sync::Arc;

use super::{board, value};
use crate::sim::{Fault, FaultSpec, Profile, SensorSpec, SimBoard, SimError, SpecError};
use crate::{ManualClock, SensorBoard, SensorError, SensorInfo};

fn build(specs: &[SensorSpec]) -> Result<SimBoard, SimError> {
    SimBoard::new(specs, Path::new("."), Arc::new(ManualClock::new(0)))
}

#[test]
fn lists_sensors_in_spec_order_with_their_source() {
    let temperature = SensorSpec {
        unit: "°C".to_owned(),
        ..SensorSpec::new("temperature", Profile::Constant { value: 1.0 })
    };
    let humidity = SensorSpec::new(
        "humidity",
        Profile::Noise {
            base: 1.0,
            amplitude: 1.0,
            seed: 1,
        },
    );
    let (_, board) = board(&[temperature, humidity]);
    let info = |name: &str, unit: &str, source: &str| SensorInfo {
        name: name.to_owned(),
        unit: unit.to_owned(),
        source: source.to_owned(),
    };
    assert_eq!(
        board.sensors(),
        vec![
            info("temperature", "°C", "sim:constant"),
            info("humidity", "", "sim:noise")
        ]
    );
    assert_near_one(&board);
}

fn assert_near_one(board: &SimBoard) {
    assert_eq!(value(board, "temperature"), 1.0);
}

#[test]
fn unknown_sensor_is_not_found() {
    let (_, board) = board(&[SensorSpec::new("a", Profile::Constant { value: 1.0 })]);
    assert_eq!(board.read("b"), Err(SensorError::NotFound("b".to_owned())));
}

#[test]
fn empty_board_has_no_sensors() {
    let board = SimBoard::empty(Arc::new(ManualClock::new(0)));
    assert!(board.sensors().is_empty());
    assert_eq!(board.read("x"), Err(SensorError::NotFound("x".to_owned())));
    assert!(format!("{board:?}").contains("SimBoard"));
}

#[test]
fn duplicate_names_are_rejected_by_name() {
    let spec = SensorSpec::new("twin", Profile::Constant { value: 1.0 });
    let error = build(&[spec.clone(), spec]).unwrap_err();
    assert_eq!(error.to_string(), "sensor 'twin' is defined more than once");
}

#[test]
fn specs_built_in_code_are_validated() {
    let zero_period = SensorSpec::new(
        "s",
        Profile::Sine {
            base: 0.0,
            amplitude: 1.0,
            period: Default::default(),
        },
    );
    let error = build(&[zero_period]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "sensor 's': `period` must be longer than 0s"
    );

    let unordered = SensorSpec::new(
        "s",
        Profile::Step {
            steps: vec![
                crate::sim::Step {
                    at: super::secs(5),
                    value: 1.0,
                },
                crate::sim::Step {
                    at: super::secs(5),
                    value: 2.0,
                },
            ],
        },
    );
    let error = build(&[unordered]).unwrap_err();
    assert!(matches!(
        error,
        SimError::InvalidSpec {
            problem: SpecError::StepsOutOfOrder {
                index: 1,
                previous: 0
            },
            ..
        }
    ));

    let nan_spike = SensorSpec {
        faults: vec![FaultSpec {
            at: super::secs(1),
            duration: super::secs(1),
            fault: Fault::Spike(f64::NAN),
        }],
        ..SensorSpec::new("s", Profile::Constant { value: 1.0 })
    };
    let error = build(&[nan_spike]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "sensor 's': `faults[0].value` must be a finite number, not NaN"
    );

    let nameless = SensorSpec::new("", Profile::Constant { value: 1.0 });
    assert!(matches!(
        build(&[nameless]),
        Err(SimError::InvalidSpec {
            problem: SpecError::EmptyName,
            ..
        })
    ));
}
