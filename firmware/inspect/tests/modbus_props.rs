//! Modbus/TCP: requests built from values parse back to the same values (parse ∘ emit),
//! and what a request says it touches is what the policy will check.

use gk_inspect::modbus::{self, Function, RequestBody, RequestRepr, Table, MAX_ADU};
use gk_inspect::Dir;
use proptest::prelude::*;

fn body() -> impl Strategy<Value = (RequestBody<'static>, Vec<u16>, Vec<u8>)> {
    // Values are leaked into 'static slices: fine for a test process.
    let leak16 = |v: Vec<u16>| -> &'static [u16] { Box::leak(v.into_boxed_slice()) };
    let leak8 = |v: Vec<u8>| -> &'static [u8] { Box::leak(v.into_boxed_slice()) };
    prop_oneof![
        (1u8..=4, any::<u16>(), 1u16..=125).prop_map(|(f, start, count)| {
            let count = if f <= 2 { count * 16 } else { count };
            let start = start.min(u16::MAX - (count - 1));
            (
                RequestBody::Read {
                    function: Function::from(f),
                    start,
                    count,
                },
                vec![],
                vec![],
            )
        }),
        (any::<u16>(), any::<bool>()).prop_map(|(address, value)| (
            RequestBody::WriteCoil { address, value },
            vec![],
            vec![]
        )),
        (any::<u16>(), any::<u16>()).prop_map(|(address, value)| {
            (
                RequestBody::WriteRegister { address, value },
                vec![],
                vec![],
            )
        }),
        (
            0u16..=65000,
            proptest::collection::vec(any::<u16>(), 1..=123)
        )
            .prop_map(move |(start, values)| {
                let start = start.min(u16::MAX - (values.len() as u16 - 1));
                let body = RequestBody::WriteRegisters {
                    start,
                    values: leak16(values.clone()),
                };
                (body, values, vec![])
            }),
        (0u16..=60000, 1u16..=1968).prop_flat_map(move |(start, count)| {
            proptest::collection::vec(any::<u8>(), usize::from(count).div_ceil(8)).prop_map(
                move |bits| {
                    let body = RequestBody::WriteCoils {
                        start,
                        count,
                        bits: leak8(bits.clone()),
                    };
                    (body, vec![], bits)
                },
            )
        }),
        (
            0u16..=60000,
            1u16..=125,
            0u16..=60000,
            proptest::collection::vec(any::<u16>(), 1..=121)
        )
            .prop_map(move |(read_start, read_count, write_start, values)| {
                let body = RequestBody::ReadWrite {
                    read_start,
                    read_count,
                    write_start,
                    values: leak16(values.clone()),
                };
                (body, values, vec![])
            }),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(tid in any::<u16>(), unit in any::<u8>(), (body, _, _) in body()) {
        let repr = RequestRepr { transaction_id: tid, unit, body: body.clone() };
        let mut out = [0u8; MAX_ADU];
        let n = repr.emit(&mut out).expect("fits");
        prop_assert_eq!(modbus::frame(&out[..n]), gk_inspect::Framing::Length(n));
        let adu = modbus::parse(&out[..n], n, Dir::Request).expect("what we emit is valid");
        prop_assert_eq!((adu.transaction_id(), adu.unit()), (tid, unit));
        let ranges: Vec<_> = adu.ranges().collect();
        match body {
            RequestBody::Read { function, start, count } => {
                prop_assert_eq!(adu.function(), function);
                prop_assert_eq!((ranges[0].start, ranges[0].count, ranges[0].write), (start, count, false));
            }
            RequestBody::WriteCoil { address, .. } => {
                prop_assert_eq!(ranges[0].table, Table::Coils);
                prop_assert_eq!((ranges[0].start, ranges[0].count), (address, 1));
            }
            RequestBody::WriteRegister { address, .. } => {
                prop_assert_eq!((ranges[0].start, ranges[0].write), (address, true));
            }
            RequestBody::WriteRegisters { start, values } => {
                prop_assert_eq!((ranges[0].start, usize::from(ranges[0].count)), (start, values.len()));
                // The values are where the specification puts them.
                let data = adu.data();
                for (i, v) in values.iter().enumerate() {
                    prop_assert_eq!(u16::from_be_bytes([data[5 + 2 * i], data[6 + 2 * i]]), *v);
                }
            }
            RequestBody::WriteCoils { start, count, bits } => {
                prop_assert_eq!((ranges[0].start, ranges[0].count), (start, count));
                prop_assert_eq!(&adu.data()[5..], bits);
            }
            RequestBody::ReadWrite { read_start, read_count, write_start, values } => {
                prop_assert_eq!(ranges.len(), 2);
                prop_assert_eq!((ranges[0].start, ranges[0].count), (read_start, read_count));
                prop_assert_eq!((ranges[1].start, usize::from(ranges[1].count)), (write_start, values.len()));
            }
            _ => {}
        }
        // Every proper prefix is refused, not misread.
        for cut in 0..n {
            prop_assert!(modbus::parse(&out[..cut], cut, Dir::Request).is_err());
        }
        // The exception answer to it parses as an exception for the same function.
        let mut ex = [0u8; 16];
        let m = modbus::emit_exception(&mut ex, &adu, modbus::Exception::IllegalDataAddress).unwrap();
        let e = modbus::parse(&ex[..m], m, Dir::Response).unwrap();
        prop_assert_eq!(e.function(), adu.function());
        prop_assert_eq!(e.transaction_id(), tid);
    }

    #[test]
    fn a_flipped_byte_never_panics_and_never_widens_a_request(
        (body, _, _) in body(), at in any::<prop::sample::Index>(), flip in 1u8..=255
    ) {
        let mut out = [0u8; MAX_ADU];
        let n = RequestRepr { transaction_id: 1, unit: 1, body }.emit(&mut out).unwrap();
        out[at.index(n)] ^= flip;
        if let Ok(adu) = modbus::parse(&out[..n], n, Dir::Request) {
            // Whatever parses, its ranges stay within the address space.
            for r in adu.ranges() {
                prop_assert!(u32::from(r.start) + u32::from(r.count) <= 0x1_0000);
                prop_assert!(r.count >= 1);
            }
        }
    }
}
