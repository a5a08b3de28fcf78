//! Any byte string must dissect without panicking, and every payload slice handed out must
//! lie inside the input.
#![no_main]

use gk_packet::{dissect, L3, L4};
use libfuzzer_sys::fuzz_target;

fn within(whole: &[u8], part: &[u8]) -> bool {
    let start = whole.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    at >= start && at + part.len() <= start + whole.len()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = dissect(data) {
        match frame.l3 {
            L3::Other(payload) => assert!(within(data, payload)),
            L3::Ip(ip) => match ip.l4 {
                L4::Tcp { payload, .. } | L4::Udp { payload, .. } | L4::Other(payload) => {
                    assert!(within(data, payload))
                }
                L4::Icmp { .. } | L4::Fragment => {}
            },
            L3::Arp(_) => {}
        }
    }
});
