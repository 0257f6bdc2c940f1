//! Each profile's value over time.

use std::f64::consts::PI;

use super::{assert_near, board, ms, secs, value};
use crate::sim::{Profile, SensorSpec, SimBoard, Step};
use crate::{Clock, ManualClock};

fn one(profile: Profile) -> (std::sync::Arc<ManualClock>, SimBoard) {
    board(&[SensorSpec::new("s", profile)])
}

#[test]
fn constant_never_moves() {
    let (clock, board) = one(Profile::Constant { value: 3.5 });
    assert_near(value(&board, "s"), 3.5);
    clock.advance(secs(3_600));
    assert_near(value(&board, "s"), 3.5);
}

#[test]
fn sine_follows_its_period() {
    let (clock, board) = one(Profile::Sine {
        base: 21.0,
        amplitude: 4.0,
        period: secs(60),
    });
    assert_near(value(&board, "s"), 21.0);
    clock.advance(secs(15));
    assert_near(value(&board, "s"), 25.0);
    clock.advance(secs(15));
    assert!((value(&board, "s") - 21.0).abs() < 1e-9);
    clock.advance(secs(15));
    assert_near(value(&board, "s"), 17.0);
    clock.advance(secs(60 * 1_000 + 5));
    let expected = 21.0 + 4.0 * (2.0 * PI * 50.0 / 60.0).sin();
    assert!(
        (value(&board, "s") - expected).abs() < 1e-6,
        "wraps after many periods"
    );
}

#[test]
fn time_counts_from_board_start_not_clock_origin() {
    let clock = std::sync::Arc::new(ManualClock::new(0));
    clock.advance(secs(15));
    let spec = SensorSpec::new(
        "s",
        Profile::Sine {
            base: 0.0,
            amplitude: 1.0,
            period: secs(60),
        },
    );
    let board = SimBoard::new(&[spec], std::path::Path::new("."), clock.clone()).unwrap();
    assert_near(value(&board, "s"), 0.0);
    clock.advance(secs(15));
    assert_near(value(&board, "s"), 1.0);
    assert_eq!(board.elapsed(), secs(15));
    assert_eq!(clock.monotonic(), secs(30));
}

#[test]
fn ramp_holds_its_end_value() {
    let (clock, board) = one(Profile::Ramp {
        from: 10.0,
        to: 20.0,
        over: secs(10),
        repeat: false,
    });
    assert_near(value(&board, "s"), 10.0);
    clock.advance(secs(5));
    assert_near(value(&board, "s"), 15.0);
    clock.advance(secs(5));
    assert_near(value(&board, "s"), 20.0);
    clock.advance(secs(100));
    assert_near(value(&board, "s"), 20.0);
}

#[test]
fn repeating_ramp_is_a_saw_tooth() {
    let (clock, board) = one(Profile::Ramp {
        from: 0.0,
        to: -8.0,
        over: secs(4),
        repeat: true,
    });
    clock.advance(secs(3));
    assert_near(value(&board, "s"), -6.0);
    clock.advance(secs(1));
    assert_near(value(&board, "s"), 0.0);
    clock.advance(ms(401_500));
    assert_near(value(&board, "s"), -3.0);
}

#[test]
fn step_reads_the_last_step_begun() {
    let steps = vec![
        Step {
            at: secs(5),
            value: 1.0,
        },
        Step {
            at: secs(10),
            value: 5.0,
        },
        Step {
            at: secs(20),
            value: -2.0,
        },
    ];
    let (clock, board) = one(Profile::Step { steps });
    assert_near(value(&board, "s"), 1.0);
    clock.advance(secs(5));
    assert_near(value(&board, "s"), 1.0);
    clock.advance(ms(4_999));
    assert_near(value(&board, "s"), 1.0);
    clock.advance(ms(1));
    assert_near(value(&board, "s"), 5.0);
    clock.advance(secs(10));
    assert_near(value(&board, "s"), -2.0);
    clock.advance(secs(1_000));
    assert_near(value(&board, "s"), -2.0);
}

#[test]
fn noise_is_bounded_and_reproducible() {
    let profile = Profile::Noise {
        base: 50.0,
        amplitude: 2.0,
        seed: 42,
    };
    let (clock_a, a) = one(profile.clone());
    let (clock_b, b) = one(profile);
    let (clock_c, c) = one(Profile::Noise {
        base: 50.0,
        amplitude: 2.0,
        seed: 43,
    });
    let mut seen = Vec::new();
    for _ in 0..500 {
        let first = value(&a, "s");
        assert_eq!(first, value(&a, "s"), "same instant, same value");
        assert_eq!(first, value(&b, "s"), "same seed, same run");
        assert!(
            (48.0..52.0).contains(&first),
            "{first} within base ± amplitude"
        );
        seen.push((first, value(&c, "s")));
        for clock in [&clock_a, &clock_b, &clock_c] {
            clock.advance(ms(7));
        }
    }
    let differ = seen.iter().filter(|(a, c)| a != c).count();
    assert!(
        differ > 490,
        "another seed gives other noise ({differ}/500 differ)"
    );
    let mean = seen.iter().map(|(a, _)| a).sum::<f64>() / 500.0;
    assert!(
        (mean - 50.0).abs() < 0.3,
        "noise is centred on base (mean {mean})"
    );
    let spread = seen
        .iter()
        .map(|(a, _)| *a)
        .fold(f64::NEG_INFINITY, f64::max)
        - seen.iter().map(|(a, _)| *a).fold(f64::INFINITY, f64::min);
    assert!(spread > 3.0, "noise uses its range (spread {spread})");
}

#[test]
fn zero_amplitude_noise_is_flat() {
    let (clock, board) = one(Profile::Noise {
        base: 1.5,
        amplitude: 0.0,
        seed: 7,
    });
    for _ in 0..10 {
        assert_near(value(&board, "s"), 1.5);
        clock.advance(ms(13));
    }
}
