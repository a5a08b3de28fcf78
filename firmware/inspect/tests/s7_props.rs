//! S7: parse ∘ emit round trips (connection requests, read/write-var items, userdata),
//! and stream invariants: however TPKTs are cut into TCP segments, and however a PDU is
//! cut into COTP fragments, the same operations come out; no byte flip panics.

use gk_inspect::s7::{
    self, emit_data, Area, ConnectRepr, Group, Item, ItemRepr, JobRepr, RequestRepr, TransportSize,
};
use gk_inspect::stream::{StreamDir, MIN_BUFFER};
use gk_inspect::{Dir, Message, Protocol};
use proptest::prelude::*;

const AREAS: [Area; 8] = [
    Area::Peripheral,
    Area::Inputs,
    Area::Outputs,
    Area::Flags,
    Area::Db,
    Area::InstanceDb,
    Area::Counters,
    Area::Timers,
];

const SIZES: [TransportSize; 6] = [
    TransportSize::Bit,
    TransportSize::Byte,
    TransportSize::Word,
    TransportSize::Dint,
    TransportSize::Real,
    TransportSize::Char,
];

fn item() -> impl Strategy<Value = ItemRepr> {
    (
        0..AREAS.len(),
        any::<u16>(),
        0..SIZES.len(),
        1u16..200,
        0u32..0x1f_ffff,
        0u8..8,
    )
        .prop_map(|(a, db, t, count, start, bit)| ItemRepr {
            area: AREAS[a],
            db,
            transport: SIZES[t],
            count,
            start,
            bit,
        })
}

fn expected(i: &ItemRepr) -> Item {
    let address = match i.area {
        Area::Counters | Area::Timers => i.start,
        _ => (i.start << 3) | u32::from(i.bit),
    };
    Item::Any {
        area: i.area,
        db: i.db,
        transport: i.transport,
        count: i.count,
        address,
    }
}

fn emit(request: RequestRepr<'_>) -> Vec<u8> {
    let mut out = [0u8; 4096];
    let n = JobRepr {
        pdu_ref: 1,
        request,
    }
    .emit(&mut out)
    .unwrap();
    out[..n].to_vec()
}

/// The operations (as text) a stream yields from `chunks`.
fn ops(chunks: &[&[u8]]) -> Vec<String> {
    let mut buf = [0u8; MIN_BUFFER];
    let mut s = StreamDir::default();
    let mut seen = Vec::new();
    for c in chunks {
        s.feed(Protocol::S7, &mut buf, c, Dir::Request, &mut |m| {
            seen.push(match m {
                Ok(Message::S7(m)) => m.op().to_string_lossy(),
                Ok(_) => "other".to_string(),
                Err(e) => e.what.to_string(),
            })
        });
    }
    seen
}

trait Text {
    fn to_string_lossy(&self) -> String;
}

impl Text for s7::Op {
    fn to_string_lossy(&self) -> String {
        gk_inspect::Op::S7(*self).to_string()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn read_var_items_round_trip(items in proptest::collection::vec(item(), 1..18)) {
        let bytes = emit(RequestRepr::ReadVar { items: &items });
        let m = s7::parse(&bytes, bytes.len(), Dir::Request).unwrap();
        let got: Vec<Item> = m.items().collect();
        let want: Vec<Item> = items.iter().map(expected).collect();
        prop_assert_eq!(got, want);
        prop_assert!(m.is_request());
    }

    #[test]
    fn write_var_round_trips(sizes in proptest::collection::vec((1u16..40, any::<u16>()), 1..6)) {
        let data: Vec<Vec<u8>> = sizes.iter().map(|&(n, _)| vec![0x5a; n as usize]).collect();
        let items: Vec<(ItemRepr, &[u8])> = sizes
            .iter()
            .zip(&data)
            .map(|(&(n, db), d)| (ItemRepr::db_bytes(db, 0, n), d.as_slice()))
            .collect();
        let bytes = emit(RequestRepr::WriteVar { items: &items });
        let m = s7::parse(&bytes, bytes.len(), Dir::Request).unwrap();
        let dbs: Vec<Option<u16>> = m.items().map(|i| i.db()).collect();
        prop_assert_eq!(dbs, sizes.iter().map(|&(_, db)| Some(db)).collect::<Vec<_>>());
        // A write whose data disagrees with its item is refused.
        let wrong: Vec<(ItemRepr, &[u8])> = items
            .iter()
            .map(|&(mut i, d)| { i.count += 1; (i, d) })
            .collect();
        let bytes = emit(RequestRepr::WriteVar { items: &wrong });
        prop_assert!(s7::parse(&bytes, bytes.len(), Dir::Request).is_err());
    }

    #[test]
    fn connection_requests_round_trip(calling in any::<[u8; 2]>(), called in any::<[u8; 2]>(), size in 7u8..=13) {
        let mut out = [0u8; 64];
        let n = ConnectRepr { confirm: false, dst_ref: 0, src_ref: 7, tpdu_size: Some(size), calling: &calling, called: &called }
            .emit(&mut out)
            .unwrap();
        let m = s7::parse(&out[..n], n, Dir::Request).unwrap();
        let c = m.control().unwrap();
        prop_assert_eq!(c.calling.number(), Some(u16::from_be_bytes(calling)));
        prop_assert_eq!(c.called.number(), Some(u16::from_be_bytes(called)));
        prop_assert_eq!(c.tpdu_size, Some(1u16 << size));
        prop_assert!(!m.is_request());
    }

    #[test]
    fn userdata_round_trips(group in 0u8..8, sub in any::<u8>(), seq in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let group = Group::from(group);
        // Cyclic subscriptions carry address items: leave them to their own test.
        prop_assume!(group != Group::CyclicData);
        let bytes = emit(RequestRepr::Userdata { group, subfunction: sub, sequence: seq, payload: &payload });
        let m = s7::parse(&bytes, bytes.len(), Dir::Request).unwrap();
        let u = m.userdata().unwrap();
        prop_assert_eq!((u.group, u.subfunction, u.sequence), (group, sub, seq));
    }

    #[test]
    fn segmentation_does_not_change_what_is_judged(cuts in proptest::collection::vec(1usize..40, 1..30)) {
        let mut all = Vec::new();
        let mut out = [0u8; 64];
        let n = ConnectRepr { confirm: false, dst_ref: 0, src_ref: 1, tpdu_size: Some(10), calling: &[1, 0], called: &[1, 2] }
            .emit(&mut out)
            .unwrap();
        all.extend_from_slice(&out[..n]);
        all.extend(emit(RequestRepr::Setup { pdu_size: 480 }));
        all.extend(emit(RequestRepr::ReadVar { items: &[ItemRepr::db_bytes(1, 2, 3)] }));
        all.extend(emit(RequestRepr::PlcStop));
        let whole = ops(&[&all]);
        prop_assert_eq!(whole.len(), 4);
        let mut chunks = Vec::new();
        let mut rest = all.as_slice();
        for c in cuts.iter().cycle() {
            if rest.is_empty() { break; }
            let (a, b) = rest.split_at((*c).min(rest.len()));
            chunks.push(a);
            rest = b;
        }
        prop_assert_eq!(ops(&chunks), whole);
    }

    #[test]
    fn cotp_fragments_yield_one_message(len in 1usize..300, cuts in proptest::collection::vec(1usize..60, 1..10)) {
        let data = vec![1u8; len];
        let mut pdu = [0u8; 1024];
        let n = JobRepr { pdu_ref: 3, request: RequestRepr::WriteVar { items: &[(ItemRepr::db_bytes(9, 0, len as u16), &data)] } }
            .emit_pdu(&mut pdu)
            .unwrap();
        let pdu = &pdu[..n];
        let single = {
            let mut out = [0u8; 1100];
            let k = emit_data(&mut out, true, pdu).unwrap();
            ops(&[&out[..k]])
        };
        // The first fragment holds the header and parameters (24 + 2 bytes here).
        let mut tpkts = Vec::new();
        let mut at = 0;
        let mut first = true;
        for c in cuts.iter().cycle() {
            let size = if first { 26 + c } else { *c };
            first = false;
            let end = (at + size).min(n);
            let mut out = [0u8; 512];
            let k = emit_data(&mut out, end == n, &pdu[at..end]).unwrap();
            tpkts.extend_from_slice(&out[..k]);
            at = end;
            if at == n { break; }
        }
        prop_assert_eq!(ops(&[&tpkts]), single);
    }

    #[test]
    fn no_byte_flip_panics(pos in any::<usize>(), value in any::<u8>()) {
        let mut bytes = emit(RequestRepr::WriteVar { items: &[(ItemRepr::db_bytes(1, 0, 3), &[1, 2, 3])] });
        let i = pos % bytes.len();
        bytes[i] = value;
        let _ = ops(&[&bytes]);
        let _ = s7::parse(&bytes, bytes.len(), Dir::Response).map(|m| m.op());
    }
}
