//! The simulated GPIO board's semantics, and the Linux GPIO board on machines without chips.

use outpost_hal::{GpioBoard, GpioDirection, GpioError, GpioLineInfo, GpioWrite, SimGpio};

fn board() -> SimGpio {
    SimGpio::new()
        .with_chip("gpiochip0", &["ID_SDA", "", "GPIO17", "LED"])
        .with_chip("gpiochip1", &["LED", "PWR"])
}

#[test]
fn sim_lines_list_ids_names_and_state() {
    let gpio = board();
    let lines = gpio.lines();
    let ids: Vec<&str> = lines.iter().map(|line| line.name.as_str()).collect();
    assert_eq!(
        ids,
        [
            "gpiochip0:0",
            "gpiochip0:1",
            "gpiochip0:2",
            "gpiochip0:3",
            "gpiochip1:0",
            "gpiochip1:1"
        ]
    );
    assert_eq!(
        lines[2],
        GpioLineInfo {
            name: "gpiochip0:2".to_owned(),
            line_name: Some("GPIO17".to_owned()),
            chip: "gpiochip0".to_owned(),
            offset: 2,
            direction: GpioDirection::Input,
            value: Some(false),
            consumer: None,
        }
    );
    assert_eq!(lines[1].line_name, None);
}

#[test]
fn sim_writes_are_read_back_and_recorded() {
    let gpio = board();
    gpio.write("GPIO17", true).expect("write by kernel name");
    gpio.write("gpiochip1:1", true).expect("write by id");
    gpio.write("gpiochip0:2", false).expect("write again");
    assert_eq!(gpio.read("gpiochip0:2"), Ok(false));
    assert_eq!(gpio.read("PWR"), Ok(true));
    assert_eq!(
        gpio.writes(),
        [
            GpioWrite {
                line: "gpiochip0:2".to_owned(),
                value: true
            },
            GpioWrite {
                line: "gpiochip1:1".to_owned(),
                value: true
            },
            GpioWrite {
                line: "gpiochip0:2".to_owned(),
                value: false
            },
        ]
    );
    let line = gpio
        .lines()
        .into_iter()
        .find(|line| line.name == "gpiochip1:1");
    let line = line.expect("listed");
    assert_eq!(line.direction, GpioDirection::Output);
    assert_eq!(line.consumer.as_deref(), Some("outpost"));
    assert_eq!(line.value, Some(true));
}

#[test]
fn sim_inputs_follow_the_outside_world() {
    let gpio = board();
    gpio.write("gpiochip0:0", true).expect("write");
    gpio.set_input("ID_SDA", false).expect("set input");
    assert_eq!(gpio.read("ID_SDA"), Ok(false));
    gpio.set_input("ID_SDA", true).expect("set input");
    assert_eq!(gpio.read("gpiochip0:0"), Ok(true));
    let line = &gpio.lines()[0];
    assert_eq!(
        (line.direction, line.consumer.clone()),
        (GpioDirection::Input, None)
    );
}

#[test]
fn sim_unknown_missing_and_ambiguous_lines_are_errors() {
    let gpio = board();
    assert_eq!(
        gpio.read("GPIO4"),
        Err(GpioError::NotFound("GPIO4".to_owned()))
    );
    assert_eq!(
        gpio.write("gpiochip0:9", true),
        Err(GpioError::NotFound("gpiochip0:9".to_owned()))
    );
    let missing = gpio.read("gpiochip7:3").expect_err("no such chip");
    assert_eq!(
        missing,
        GpioError::NoChip {
            line: "gpiochip7:3".to_owned(),
            chip: "gpiochip7".to_owned()
        }
    );
    assert!(missing.to_string().contains("gpiochip7"), "{missing}");
    let ambiguous = gpio.write("LED", true).expect_err("two LEDs");
    assert_eq!(
        ambiguous,
        GpioError::Ambiguous {
            name: "LED".to_owned(),
            lines: vec!["gpiochip0:3".to_owned(), "gpiochip1:0".to_owned()],
        }
    );
    assert!(gpio.writes().is_empty());
}

#[test]
fn sim_faults_fail_reads_and_writes_until_cleared() {
    let gpio = board();
    gpio.inject_fault("GPIO17", "line is busy").expect("inject");
    let error = gpio.read("GPIO17").expect_err("faulty");
    assert_eq!(
        error,
        GpioError::Line {
            line: "gpiochip0:2".to_owned(),
            operation: "read",
            reason: "line is busy".to_owned()
        }
    );
    assert!(gpio.write("GPIO17", true).is_err());
    assert!(gpio.writes().is_empty());
    gpio.clear_fault("GPIO17").expect("clear");
    assert_eq!(gpio.write("GPIO17", true), Ok(()));
    assert_eq!(
        gpio.inject_fault("nope", "x"),
        Err(GpioError::NotFound("nope".to_owned()))
    );
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs;

    use outpost_hal::{GpioBoard, GpioError, LinuxGpio};

    #[test]
    fn a_dir_without_chips_has_no_lines() {
        let dev = tempfile::tempdir().expect("temp dir");
        fs::write(dev.path().join("null"), "").expect("write");
        fs::write(dev.path().join("gpiochipX"), "").expect("write");
        let gpio = LinuxGpio::discover(dev.path()).expect("discover");
        assert!(gpio.lines().is_empty());
        assert_eq!(
            gpio.read("gpiochip0:17"),
            Err(GpioError::NoChip {
                line: "gpiochip0:17".to_owned(),
                chip: "gpiochip0".to_owned()
            })
        );
        assert_eq!(
            gpio.write("GPIO17", true),
            Err(GpioError::NotFound("GPIO17".to_owned()))
        );
        assert_eq!(
            gpio.release("GPIO17"),
            Err(GpioError::NotFound("GPIO17".to_owned()))
        );
    }

    #[test]
    fn a_missing_dir_or_a_fake_chip_is_a_clear_error() {
        let dev = tempfile::tempdir().expect("temp dir");
        let missing = dev.path().join("nowhere");
        let error = LinuxGpio::discover(&missing).expect_err("missing dir");
        assert!(matches!(error, GpioError::Discover { .. }), "{error:?}");
        assert!(error.to_string().contains("nowhere"), "{error}");

        fs::write(dev.path().join("gpiochip0"), "not a device").expect("write");
        let error = LinuxGpio::discover(dev.path()).expect_err("regular file");
        assert!(error.to_string().contains("gpiochip0"), "{error}");
    }

    #[test]
    fn this_machines_dev_discovers_without_panicking() {
        // A container has no chips (Ok, empty); a board has some. Either way, no panic.
        if let Ok(gpio) = LinuxGpio::discover(std::path::Path::new("/dev")) {
            for line in gpio.lines() {
                assert!(line.name.starts_with(&line.chip));
            }
        }
    }
}
