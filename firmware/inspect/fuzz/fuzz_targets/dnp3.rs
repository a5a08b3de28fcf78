//! Arbitrary bytes as both directions of a Dnp3 conversation, cut at arbitrary places.
#![no_main]

use gk_inspect::Protocol;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gk_inspect::fuzzing::exercise(Protocol::Dnp3, data);
});
