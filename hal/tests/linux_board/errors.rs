//! Missing, vanished and garbled files: reads say which file and what is wrong, and never panic.

use outpost_hal::{LinuxBoard, LinuxError, SensorBoard, SensorError, describe};

use crate::fake::{FakeRoot, unavailable};

#[test]
fn meminfo_without_mem_available_is_unavailable() {
    let root = FakeRoot::new();
    root.file(
        "proc/meminfo",
        "MemTotal:        4000000 kB\nMemFree:  1 kB\n",
    );
    let board = root.board();
    let reason = unavailable(&board, "system/memory_used_percent");
    assert!(
        reason.contains("meminfo has no MemAvailable line"),
        "{reason}"
    );
}

#[test]
fn a_vanished_file_is_unavailable_naming_it() {
    let root = FakeRoot::new();
    root.thermal_zone(0, "cpu-thermal", 48312).iio(
        0,
        "mcp9808",
        &[("in_temp_raw", "2400"), ("in_temp_scale", "12.5")],
    );
    let board = root.board();
    root.remove("sys/class/thermal/thermal_zone0/temp");
    let reason = unavailable(&board, "thermal/cpu-thermal");
    let file = root.at("sys/class/thermal/thermal_zone0/temp");
    assert!(
        reason.starts_with(&format!("reading {}: ", file.display())),
        "{reason}"
    );
    assert!(reason.contains("No such file"), "{reason}");

    root.remove("sys/bus/iio/devices/iio:device0/in_temp_scale");
    let reason = unavailable(&board, "iio/mcp9808/temp");
    assert!(reason.contains("in_temp_scale"), "{reason}");
}

#[test]
fn garbage_is_unavailable_naming_the_file_and_quoting_it() {
    let root = FakeRoot::new();
    root.thermal_zone(0, "cpu-thermal", 48312);
    let board = root.board();
    let file = root.at("sys/class/thermal/thermal_zone0/temp");
    root.file("sys/class/thermal/thermal_zone0/temp", "garbage\n");
    let reason = unavailable(&board, "thermal/cpu-thermal");
    assert_eq!(
        reason,
        format!("{} holds \"garbage\", not a number", file.display())
    );

    root.file(
        "sys/class/thermal/thermal_zone0/temp",
        [0xff, 0xfe, b'1', b'\n'],
    );
    let reason = unavailable(&board, "thermal/cpu-thermal");
    assert!(
        reason.starts_with(&format!("reading {}: ", file.display())),
        "{reason}"
    );
}

#[test]
fn no_file_content_makes_a_read_panic() {
    let root = FakeRoot::new();
    root.thermal_zone(0, "z", 1)
        .hwmon(0, "h", &[("in0_input", "1")])
        .iio(
            0,
            "i",
            &[
                ("in_temp_raw", "1"),
                ("in_temp_offset", "1"),
                ("in_temp_scale", "1"),
            ],
        )
        .proc_files();
    let board = root.board();
    let files = [
        "sys/class/thermal/thermal_zone0/temp",
        "sys/class/hwmon/hwmon0/in0_input",
        "sys/bus/iio/devices/iio:device0/in_temp_raw",
        "sys/bus/iio/devices/iio:device0/in_temp_offset",
        "sys/bus/iio/devices/iio:device0/in_temp_scale",
        "proc/loadavg",
        "proc/meminfo",
        "proc/uptime",
    ];
    let long_number = "9".repeat(400);
    let huge = "1".repeat(200_000);
    let contents: [&[u8]; 15] = [
        b"",
        b"\n",
        b"-",
        b"nan\n",
        b"inf\n",
        b"1e308\n",
        b"0x10\n",
        b"\0\0\0",
        b"\xff\xfe",
        b"MemTotal: 0 kB\nMemAvailable: 5 kB\n",
        b"MemTotal:\n",
        b"MemAvailable: 1 MB\n",
        long_number.as_bytes(),
        huge.as_bytes(),
        "ünïcødé ✓\n".as_bytes(),
    ];
    for file in files {
        let original = std::fs::read(root.at(file)).expect("read fake file");
        for content in contents {
            root.file(file, content);
            for (info, reading) in describe(&board) {
                match reading {
                    Ok(reading) => assert!(reading.value.is_finite(), "{}", info.name),
                    Err(SensorError::Unavailable { .. }) => {}
                    Err(other) => panic!("{}: {other:?}", info.name),
                }
            }
        }
        root.file(file, original);
    }

    root.file("sys/bus/iio/devices/iio:device0/in_temp_raw", "1e308\n")
        .file("sys/bus/iio/devices/iio:device0/in_temp_scale", "1e308\n");
    let reason = unavailable(&board, "iio/i/temp");
    assert!(
        reason.ends_with("in_temp_raw gives a non-finite value"),
        "{reason}"
    );
}

#[test]
fn unknown_names_are_not_found() {
    let root = FakeRoot::new();
    root.thermal_zone(0, "cpu-thermal", 48312);
    let board = root.board();
    assert_eq!(
        board.read("thermal/gpu"),
        Err(SensorError::NotFound("thermal/gpu".to_owned()))
    );
}

#[test]
fn an_empty_root_has_no_sensors() {
    let root = FakeRoot::new();
    let board = root.board();
    assert!(board.sensors().is_empty());
    assert!(describe(&board).is_empty());
    assert_eq!(board.root(), root.path());
}

#[test]
fn a_root_that_is_not_a_directory_is_an_error() {
    let root = FakeRoot::new();
    let missing = root.at("nowhere");
    let error = LinuxBoard::discover(&missing).expect_err("missing root");
    assert!(matches!(error, LinuxError::Root { .. }), "{error:?}");
    assert!(error.to_string().contains("nowhere"), "{error}");

    root.file("plain", "x");
    let error = LinuxBoard::discover(&root.at("plain")).expect_err("file as root");
    assert!(matches!(error, LinuxError::Root { .. }), "{error:?}");
}
