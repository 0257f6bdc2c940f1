//! The `csv` profile: loading traces and replaying them against board time.

use std::path::Path;
use std::sync::Arc;

use super::{TempDir, assert_near, board_in, ms, secs, value};
use crate::ManualClock;
use crate::sim::{Profile, SensorSpec, SimBoard, SimError, TraceError};

fn csv(path: &str, column: Option<&str>, time_column: Option<&str>, repeat: bool) -> SensorSpec {
    SensorSpec::new(
        "trace",
        Profile::Csv {
            path: path.into(),
            column: column.map(str::to_owned),
            time_column: time_column.map(str::to_owned),
            repeat,
        },
    )
}

/// Builds a one-sensor board over `spec` in `dir`, returning the error message on failure.
fn try_build(dir: &TempDir, spec: SensorSpec) -> Result<SimBoard, String> {
    SimBoard::new(&[spec], &dir.0, Arc::new(ManualClock::new(0))).map_err(|e| e.to_string())
}

const TRACE: &str = "\u{feff}seconds, temp ,humidity\n\
                     # warm-up\n\
                     2.0,20.5,40\n\
                     \n\
                     4.5,21.0,41\n\
                     6,19.0,42\n";

#[test]
fn default_columns_step_hold_and_hold_last_row() {
    let dir = TempDir::new();
    dir.write("t.csv", TRACE);
    let (clock, board) = board_in(&[csv("t.csv", None, None, false)], &dir.0);
    assert_near(value(&board, "trace"), 20.5);
    clock.advance(ms(4_499));
    assert_near(value(&board, "trace"), 20.5);
    clock.advance(ms(1));
    assert_near(value(&board, "trace"), 21.0);
    clock.advance(secs(1_000));
    assert_near(value(&board, "trace"), 19.0);
}

#[test]
fn named_columns_and_repeat_loop_with_the_last_gap() {
    let dir = TempDir::new();
    dir.write("t.csv", "humidity,t\n50,0\n60,1\n70,2\n");
    let spec = csv("t.csv", Some("humidity"), Some("t"), true);
    let (clock, board) = board_in(&[spec], &dir.0);
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(value(&board, "trace"));
        clock.advance(secs(1));
    }
    assert_eq!(seen, [50.0, 60.0, 70.0, 50.0, 60.0, 70.0, 50.0]);
}

#[test]
fn default_value_column_skips_a_named_time_column() {
    let dir = TempDir::new();
    dir.write("t.csv", "v,t\n7,0\n8,3\n");
    let (clock, board) = board_in(&[csv("t.csv", None, Some("t"), false)], &dir.0);
    clock.advance(secs(3));
    assert_near(value(&board, "trace"), 8.0);
}

#[test]
fn missing_file_names_sensor_and_path() {
    let dir = TempDir::new();
    let error = SimBoard::new(
        &[csv("absent.csv", None, None, false)],
        &dir.0,
        Arc::new(ManualClock::new(0)),
    )
    .unwrap_err();
    let SimError::Trace {
        name,
        problem: TraceError::Io { path, .. },
    } = &error
    else {
        panic!("expected an I/O trace error, got {error:?}");
    };
    assert_eq!(name, "trace");
    assert_eq!(path, &dir.0.join("absent.csv"));
    assert!(error.to_string().contains("absent.csv"), "{error}");
}

#[test]
fn parse_errors_name_file_line_and_problem() {
    let dir = TempDir::new();
    let cases = [
        (
            "t,v\n0,1\n1,x\n",
            None,
            ":3: 'x' in column 'v' is not a finite number",
        ),
        (
            "t,v\n0,1\n1,nan\n",
            None,
            ":3: 'nan' in column 'v' is not a finite number",
        ),
        (
            "t,v\n0,1\n1,2,3\n",
            None,
            ":3: expected 2 fields as in the header, found 3",
        ),
        (
            "t,v\n0,1\n0,2\n",
            None,
            ":3: time 0 is not after the previous row's",
        ),
        ("t,v\n-1,1\n", None, ":2: time -1 is negative"),
        (
            "t,v\n0,1\n",
            Some("w"),
            ":1: no value column 'w' (columns: t, v)",
        ),
        ("t\n0\n", None, ":1: need a time column and a value column"),
        (
            "t,v\n",
            None,
            ": a trace needs a header line and at least one data row",
        ),
        (
            "",
            None,
            ": a trace needs a header line and at least one data row",
        ),
    ];
    for (index, (text, column, expected)) in cases.into_iter().enumerate() {
        let file = format!("bad{index}.csv");
        let path = dir.write(&file, text);
        let error = try_build(&dir, csv(&file, column, None, false)).unwrap_err();
        let expected = format!("sensor 'trace': {}{expected}", path.display());
        assert!(
            error.starts_with(&expected),
            "case {index}: {error}\n  expected {expected}"
        );
    }
}

#[test]
fn source_names_the_trace() {
    let dir = TempDir::new();
    dir.write("t.csv", "t,v\n0,1\n");
    let (_, board) = board_in(&[csv("t.csv", None, None, false)], &dir.0);
    let sensors = crate::SensorBoard::sensors(&board);
    assert_eq!(
        sensors[0].source,
        format!("sim:csv:{}", Path::new("t.csv").display())
    );
}
