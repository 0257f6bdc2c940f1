//! Every bundle and announcement decoder against arbitrary bytes: bundle verify (fixed trust
//! store), inspect (and inspect-then-check agreeing with verify) and announcement decode/verify,
//! with the consistency checks in `outpost_bundle::fuzzing::exercise`. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    outpost_bundle::fuzzing::exercise(data);
});
