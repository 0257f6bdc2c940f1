//! Faults scripted in specs and injected at run time.

use std::sync::Arc;
use std::thread;

use super::{assert_near, board, secs, value};
use crate::sim::{Fault, FaultSpec, Profile, SensorSpec, SimError};
use crate::{SensorBoard, SensorError};

/// A ramp 0 → 100 over 100 s, so the value equals the seconds elapsed.
fn ramp(faults: Vec<FaultSpec>) -> SensorSpec {
    let profile = Profile::Ramp {
        from: 0.0,
        to: 100.0,
        over: secs(100),
        repeat: false,
    };
    SensorSpec {
        faults,
        ..SensorSpec::new("level", profile)
    }
}

fn window(at: u64, duration: u64, fault: Fault) -> FaultSpec {
    FaultSpec {
        at: secs(at),
        duration: secs(duration),
        fault,
    }
}

#[test]
fn scripted_unavailable_fails_reads_only_inside_its_window() {
    let reason = "cable unplugged".to_owned();
    let (clock, board) = board(&[ramp(vec![window(
        30,
        10,
        Fault::Unavailable(reason.clone()),
    )])]);
    clock.advance(secs(29));
    assert_near(value(&board, "level"), 29.0);
    clock.advance(secs(1));
    let expected = SensorError::Unavailable {
        name: "level".to_owned(),
        reason,
    };
    assert_eq!(board.read("level"), Err(expected.clone()));
    clock.advance(secs(9));
    assert_eq!(board.read("level"), Err(expected));
    clock.advance(secs(1));
    assert_near(value(&board, "level"), 40.0);
}

#[test]
fn scripted_stuck_holds_the_value_from_when_it_began() {
    let (clock, board) = board(&[ramp(vec![window(20, 10, Fault::Stuck)])]);
    clock.advance(secs(25));
    assert_near(value(&board, "level"), 20.0);
    clock.advance(secs(5));
    assert_near(value(&board, "level"), 30.0);
}

#[test]
fn scripted_spike_reports_its_value_and_first_listed_fault_wins() {
    let faults = vec![
        window(10, 5, Fault::Spike(999.0)),
        window(12, 10, Fault::Stuck),
    ];
    let (clock, board) = board(&[ramp(faults)]);
    clock.advance(secs(12));
    assert_near(value(&board, "level"), 999.0);
    clock.advance(secs(4));
    assert_near(value(&board, "level"), 12.0);
}

#[test]
fn injected_faults_last_until_cleared_and_beat_scripted_ones() {
    let (clock, board) = board(&[ramp(vec![window(50, 10, Fault::Spike(-1.0))])]);
    clock.advance(secs(10));
    board.inject_fault("level", Fault::Stuck).unwrap();
    clock.advance(secs(45));
    assert_near(value(&board, "level"), 10.0);

    board
        .inject_fault("level", Fault::Unavailable("bus error".to_owned()))
        .unwrap();
    let error = board.read("level").unwrap_err();
    assert_eq!(
        error.to_string(),
        "sensor 'level' is unavailable: bus error"
    );

    board.inject_fault("level", Fault::Spike(f64::NAN)).unwrap();
    assert!(value(&board, "level").is_nan(), "any value can be injected");

    board.clear_fault("level").unwrap();
    assert_near(value(&board, "level"), -1.0);
    clock.advance(secs(10));
    assert_near(value(&board, "level"), 65.0);
    board.clear_fault("level").unwrap();
}

#[test]
fn injecting_into_an_unknown_sensor_is_an_error() {
    let (_, board) = board(&[ramp(Vec::new())]);
    let error = board.inject_fault("nope", Fault::Stuck).unwrap_err();
    assert!(matches!(&error, SimError::UnknownSensor(name) if name == "nope"));
    assert!(matches!(
        board.clear_fault("nope"),
        Err(SimError::UnknownSensor(_))
    ));
}

#[test]
fn injection_is_seen_across_threads() {
    let (_, board) = board(&[ramp(Vec::new())]);
    let board = Arc::new(board);
    let injector = Arc::clone(&board);
    thread::spawn(move || injector.inject_fault("level", Fault::Spike(7.0)).unwrap())
        .join()
        .unwrap();
    let reader = Arc::clone(&board);
    let seen = thread::spawn(move || reader.read("level")).join().unwrap();
    assert_eq!(seen.map(|r| r.value), Ok(7.0));
}

#[test]
fn fault_windows_are_half_open() {
    let spec = window(5, 2, Fault::Stuck);
    assert!(!spec.is_active(secs(4)));
    assert!(spec.is_active(secs(5)));
    assert!(spec.is_active(secs(6)));
    assert!(!spec.is_active(secs(7)));
}
