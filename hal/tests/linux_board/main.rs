//! The Linux board against fake sysfs and `/proc` trees in temp dirs: discovery, names, unit
//! conversion. `errors` covers what discovery and reads say when files are missing or garbled,
//! `gpio` the GPIO boards.

mod errors;
mod fake;
mod gpio;

use std::path::Path;

use fake::{FakeRoot, assert_reads, info, names, unavailable};
use outpost_hal::{LinuxBoard, SensorBoard, SensorError, describe};

#[test]
fn thermal_zone_reads_degrees_celsius() {
    let root = FakeRoot::new();
    root.thermal_zone(0, "cpu-thermal", 48312)
        .file("sys/class/thermal/cooling_device0/type", "gpio-fan\n");
    let board = root.board();
    assert_eq!(names(&board), ["thermal/cpu-thermal"]);
    assert_reads(&board, "thermal/cpu-thermal", 48.312, "°C");
    let source = info(&board, "thermal/cpu-thermal").source;
    assert_eq!(
        source,
        root.at("sys/class/thermal/thermal_zone0/temp")
            .display()
            .to_string()
    );

    root.file("sys/class/thermal/thermal_zone0/temp", "-5250\n");
    assert_reads(&board, "thermal/cpu-thermal", -5.25, "°C");
}

#[test]
fn zones_sharing_a_type_get_their_index() {
    let root = FakeRoot::new();
    root.thermal_zone(10, "acpitz", 30000)
        .thermal_zone(2, "acpitz", 40000)
        .thermal_zone(1, "x86_pkg_temp", 50000);
    let board = root.board();
    assert_eq!(
        names(&board),
        [
            "thermal/x86_pkg_temp",
            "thermal/acpitz.2",
            "thermal/acpitz.10"
        ]
    );
    assert_reads(&board, "thermal/acpitz.10", 30.0, "°C");
}

#[test]
fn hwmon_channels_are_named_by_label_and_converted() {
    let root = FakeRoot::new();
    root.hwmon(
        0,
        "rpi_volt",
        &[("in0_input", "872"), ("in0_lcrit_alarm", "0")],
    )
    .hwmon(
        1,
        "coretemp",
        &[
            ("temp1_input", "45000"),
            ("temp1_label", "Package id 0"),
            ("temp1_max", "80000"),
            ("temp2_input", "43500"),
        ],
    )
    .hwmon(
        2,
        "ina219",
        &[
            ("curr1_input", "1500"),
            ("power1_input", "2500000"),
            ("fan1_input", "1200"),
            ("humidity1_input", "45500"),
        ],
    );
    let board = root.board();
    assert_eq!(
        names(&board),
        [
            "hwmon/rpi_volt/in0",
            "hwmon/coretemp/Package id 0",
            "hwmon/coretemp/temp2",
            "hwmon/ina219/curr1",
            "hwmon/ina219/power1",
            "hwmon/ina219/fan1",
            "hwmon/ina219/humidity1",
        ]
    );
    assert_reads(&board, "hwmon/rpi_volt/in0", 0.872, "V");
    assert_reads(&board, "hwmon/coretemp/Package id 0", 45.0, "°C");
    assert_reads(&board, "hwmon/coretemp/temp2", 43.5, "°C");
    assert_reads(&board, "hwmon/ina219/curr1", 1.5, "A");
    assert_reads(&board, "hwmon/ina219/power1", 2.5, "W");
    assert_reads(&board, "hwmon/ina219/fan1", 1200.0, "RPM");
    assert_reads(&board, "hwmon/ina219/humidity1", 45.5, "%");
}

#[test]
fn hwmon_duplicates_fall_back_to_channel_and_device_index() {
    let root = FakeRoot::new();
    let nvme = [("temp1_input", "38850"), ("temp1_label", "Composite")];
    root.hwmon(3, "nvme", &nvme).hwmon(4, "nvme", &nvme).hwmon(
        5,
        "board",
        &[
            ("temp1_input", "1000"),
            ("temp1_label", "ambient"),
            ("temp2_input", "2000"),
            ("temp2_label", "ambient"),
            ("temp3_input", "3000"),
            ("temp3_label", "a/b"),
        ],
    );
    let board = root.board();
    assert_eq!(
        names(&board),
        [
            "hwmon/nvme.3/Composite",
            "hwmon/nvme.4/Composite",
            "hwmon/board/temp1",
            "hwmon/board/temp2",
            "hwmon/board/a_b",
        ]
    );
    assert_reads(&board, "hwmon/board/temp2", 2.0, "°C");
}

#[test]
fn iio_temperature_applies_offset_then_scale() {
    let root = FakeRoot::new();
    root.iio(
        0,
        "mcp9808",
        &[
            ("in_temp_raw", "2400"),
            ("in_temp_offset", "-400"),
            ("in_temp_scale", "12.5"),
            ("sampling_frequency", "1"),
        ],
    )
    .file("sys/bus/iio/devices/trigger0/name", "sysfstrig0\n");
    let board = root.board();
    assert_eq!(names(&board), ["iio/mcp9808/temp"]);
    // (2400 - 400) × 12.5 = 25000 m°C
    assert_reads(&board, "iio/mcp9808/temp", 25.0, "°C");
}

#[test]
fn iio_voltage_uses_the_most_specific_scale() {
    let root = FakeRoot::new();
    root.iio(
        0,
        "ads1015",
        &[
            ("in_voltage0_raw", "1024"),
            ("in_voltage1_raw", "2048"),
            ("in_voltage1_scale", "1.5"),
            ("in_voltage0-voltage1_raw", "-100"),
            ("in_voltage-voltage_scale", "2"),
            ("in_voltage_scale", "0.805664062"),
            ("in_voltage_scale_available", "0.1 0.2"),
        ],
    );
    let board = root.board();
    assert_eq!(
        names(&board),
        [
            "iio/ads1015/voltage0",
            "iio/ads1015/voltage0-voltage1",
            "iio/ads1015/voltage1"
        ]
    );
    assert_reads(
        &board,
        "iio/ads1015/voltage0",
        1024.0 * 0.805664062 / 1000.0,
        "V",
    );
    assert_reads(&board, "iio/ads1015/voltage1", 3.072, "V");
    assert_reads(&board, "iio/ads1015/voltage0-voltage1", -0.2, "V");
}

#[test]
fn iio_input_files_are_already_processed() {
    let root = FakeRoot::new();
    root.iio(
        0,
        "bme280",
        &[
            ("in_humidityrelative_input", "45123"),
            ("in_humidityrelative_raw", "999"),
            ("in_humidityrelative_scale", "7"),
            ("in_pressure_input", "101.325"),
            ("in_temp_input", "21370"),
        ],
    )
    .iio(
        1,
        "adxl345",
        &[
            ("in_accel_x_raw", "-256"),
            ("in_accel_scale", "0.038307"),
            ("in_intensity_both_raw", "7"),
        ],
    )
    .iio(
        2,
        "bh1750",
        &[
            ("in_illuminance_raw", "300"),
            ("in_illuminance_scale", "0.5"),
        ],
    );
    let board = root.board();
    assert_reads(&board, "iio/bme280/humidityrelative", 45.123, "%");
    assert_reads(&board, "iio/bme280/pressure", 101.325, "kPa");
    assert_reads(&board, "iio/bme280/temp", 21.37, "°C");
    assert_reads(&board, "iio/adxl345/accel_x", -256.0 * 0.038307, "m/s²");
    assert_reads(&board, "iio/adxl345/intensity_both", 7.0, "");
    assert_reads(&board, "iio/bh1750/illuminance", 150.0, "lx");
}

#[test]
fn system_sensors_come_from_proc() {
    let root = FakeRoot::new();
    root.proc_files();
    let disk = tempfile::tempdir().expect("temp dir");
    let board = LinuxBoard::discover_with(root.path(), Some(disk.path())).expect("discover");
    assert_eq!(
        names(&board),
        [
            "system/cpu_load",
            "system/memory_available",
            "system/memory_used_percent",
            "system/uptime",
            "system/disk_free",
        ]
    );
    assert_reads(&board, "system/cpu_load", 0.52, "");
    assert_reads(
        &board,
        "system/memory_available",
        1_000_000.0 / 1024.0,
        "MiB",
    );
    assert_reads(&board, "system/memory_used_percent", 75.0, "%");
    assert_reads(&board, "system/uptime", 12345.67, "s");
    let free = board.read("system/disk_free").expect("disk free").value;
    assert!(free > 0.0, "free space {free}");
    assert_eq!(info(&board, "system/disk_free").unit, "MiB");
    assert_eq!(
        info(&board, "system/disk_free").source,
        disk.path().display().to_string()
    );

    let gone = disk.path().to_path_buf();
    drop(disk);
    let reason = unavailable(&board, "system/disk_free");
    assert!(reason.contains(&gone.display().to_string()), "{reason}");
}

#[test]
fn describe_pairs_each_sensor_with_a_reading() {
    let root = FakeRoot::new();
    root.thermal_zone(0, "cpu-thermal", 48312)
        .hwmon(0, "rpi_volt", &[("in0_input", "oops")]);
    let board = root.board();
    let listing = describe(&board);
    assert_eq!(listing.len(), 2);
    assert_eq!(listing[0].0.name, "thermal/cpu-thermal");
    assert_eq!(listing[0].1.as_ref().map(|r| r.value).ok(), Some(48.312));
    assert!(matches!(listing[1].1, Err(SensorError::Unavailable { .. })));
}

#[test]
fn a_real_root_discovers_without_error() {
    // Whatever this machine has; only that discovery and reads neither fail nor panic.
    let board = LinuxBoard::discover(Path::new("/")).expect("discover /");
    assert_eq!(describe(&board).len(), board.sensors().len());
}
