//! Arbitrary text as a policy: it validates or yields diagnostics, never a panic; every
//! diagnostic points inside the text.
#![no_main]

use gk_policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines = text.lines().count().max(1) + 1;
    match Policy::from_toml(text, "fuzz.toml") {
        Ok((policy, warnings)) => {
            let _ = policy.summary();
            assert!(warnings.iter().all(|w| w.line <= lines));
        }
        Err(err) => assert!(err.diagnostics.iter().all(|d| d.line <= lines), "{err}"),
    }
});
