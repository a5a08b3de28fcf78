//! Arbitrary bytes as an audit log, checked with and without a recorded head.
#![no_main]

use gk_bundle::audit::{verify_log, AuditHead};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let plain = verify_log(data, None);
    let end = plain.chain_end();
    if plain.is_intact() {
        // Intact without a head: intact against its own end too.
        assert!(verify_log(data, Some(&end)).is_intact());
    }
    let _ = verify_log(data, Some(&AuditHead::default()));
});
