use super::*;
use std::vec::Vec;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn msg(bytes: &[u8]) -> Message<'_> {
    parse(bytes, Dir::Request).unwrap_or_else(|e| panic!("{e}: {bytes:02x?}"))
}

fn err(bytes: &[u8]) -> &'static str {
    match parse(bytes, Dir::Request) {
        Ok(m) => panic!("parsed: {:?}", m.op()),
        Err(e) => e.what,
    }
}

fn line(m: &Message<'_>) -> std::string::String {
    std::format!("{}", crate::Op::Bacnet(m.op()))
}

fn targets(m: &Message<'_>) -> Vec<Target> {
    m.targets().collect()
}

fn obj(t: ObjectType, i: u32) -> ObjectId {
    ObjectId::new(t.into(), i).unwrap()
}

/// A datagram around an NPDU: BVLC original-unicast and the right length.
fn unicast(npdu: &[u8]) -> Vec<u8> {
    let mut v = std::vec![0x81, 0x0a];
    v.extend_from_slice(&((npdu.len() + 4) as u16).to_be_bytes());
    v.extend_from_slice(npdu);
    v
}

/// A datagram with a plain NPCI (version 1, control 0x04) around an APDU.
fn with_apdu(apdu: &[u8]) -> Vec<u8> {
    let mut n = std::vec![0x01, 0x04];
    n.extend_from_slice(apdu);
    unicast(&n)
}

#[test]
fn read_property_of_a_device_from_a_capture() {
    // A ReadProperty of device 245's model-name as captured on BACnet/IP, from the
    // dissection at jdearden.org ("BACnet message formats: confirmed request").
    let b = hex("810a001101040005c40c0c020000f51946");
    let m = msg(&b);
    assert!(m.is_request());
    assert_eq!(m.bvlc_function(), BvlcFunction::OriginalUnicastNpdu);
    assert!(m.npci().unwrap().expecting_reply());
    assert_eq!(
        m.service(),
        Some(Service::Confirmed(ConfirmedService::ReadProperty))
    );
    assert_eq!(m.invoke_id(), Some(0xc4));
    assert_eq!(
        targets(&m),
        [
            Target::Object(obj(ObjectType::Device, 245)),
            Target::Property(PropertyId::ModelName)
        ]
    );
    assert_eq!(
        line(&m),
        "bacnet bvlc=original-unicast-npdu apdu=confirmed-request service=read-property \
         invoke_id=196 object_type=device instance=245 property=model-name"
    );
}

// Datagrams encoded by bacpypes3 0.0.110 (an independent implementation), addressed to
// 10.10.0.10; the NPCI control octet is 0 there.
const RP: &str = "810a001101000205010c0c000000051955";
const WP: &str = "810a001a01000205020f0c0080000119553e44429100003f4908";
const WHO_IS: &str = "810b000801001008";
const WHO_IS_RANGE: &str = "810b000e010010080a03e81a07cf";
const I_AM: &str = "810b001401001000c4020004d22205c49100210f";
const REINIT: &str = "810a001501000205031409011d0700736563726574";
const DCC: &str = "810a000e01000205041109051901";
const RPM: &str = "810a002001000205050e0c000000011e0955096f1f0c010000071e095719081f";
const WPM: &str = "810a00210100020506100c008000021e09552e4441a800002f390a09512e112f1f";
const SUBSCRIBE_COV: &str = "810a001601000205070509121c0000000a29013a0258";
const CREATE: &str = "810a001701000205080a0e09020f1e094d2e7200782f1f";
const DELETE: &str = "810a000f01000205090bc400800009";
const RP_ACK: &str = "810a0017010030010c0c0000000519553e44429000003f";
const SIMPLE_ACK: &str = "810a0009010020020f";
const ERROR: &str = "810a000d010050020f91029128";
const UCOV: &str =
    "810a00280100100209121c020004d22c0000000a39004e09552e443f8000002f096f2e8204002f4f";
const TIME_SYNC: &str = "810b001201001006a47c050601b40c000000";
const WHO_HAS: &str = "810b000d010010072c00800003";

#[test]
fn requests_encoded_by_bacpypes3() {
    use ConfirmedService as C;
    use UnconfirmedService as U;
    let ai5 = obj(ObjectType::AnalogInput, 5);
    let av1 = obj(ObjectType::AnalogValue, 1);
    let cases: &[(&str, Service, &[Target])] = &[
        (
            RP,
            Service::Confirmed(C::ReadProperty),
            &[
                Target::Object(ai5),
                Target::Property(PropertyId::PresentValue),
            ],
        ),
        (
            WP,
            Service::Confirmed(C::WriteProperty),
            &[
                Target::Object(av1),
                Target::Property(PropertyId::PresentValue),
            ],
        ),
        (WHO_IS, Service::Unconfirmed(U::WhoIs), &[]),
        (WHO_IS_RANGE, Service::Unconfirmed(U::WhoIs), &[]),
        (
            I_AM,
            Service::Unconfirmed(U::IAm),
            &[Target::Object(obj(ObjectType::Device, 1234))],
        ),
        (REINIT, Service::Confirmed(C::ReinitializeDevice), &[]),
        (DCC, Service::Confirmed(C::DeviceCommunicationControl), &[]),
        (
            RPM,
            Service::Confirmed(C::ReadPropertyMultiple),
            &[
                Target::Object(obj(ObjectType::AnalogInput, 1)),
                Target::Property(PropertyId::PresentValue),
                Target::Property(PropertyId::StatusFlags),
                Target::Object(obj(ObjectType::BinaryOutput, 7)),
                Target::Property(PropertyId::PriorityArray),
            ],
        ),
        (
            WPM,
            Service::Confirmed(C::WritePropertyMultiple),
            &[
                Target::Object(obj(ObjectType::AnalogValue, 2)),
                Target::Property(PropertyId::PresentValue),
                Target::Property(PropertyId::OutOfService),
            ],
        ),
        (
            SUBSCRIBE_COV,
            Service::Confirmed(C::SubscribeCov),
            &[Target::Object(obj(ObjectType::AnalogInput, 10))],
        ),
        (
            CREATE,
            Service::Confirmed(C::CreateObject),
            &[
                Target::ObjectType(ObjectType::AnalogValue),
                Target::Property(PropertyId::ObjectName),
            ],
        ),
        (
            DELETE,
            Service::Confirmed(C::DeleteObject),
            &[Target::Object(obj(ObjectType::AnalogValue, 9))],
        ),
        (
            UCOV,
            Service::Unconfirmed(U::UnconfirmedCovNotification),
            &[
                Target::Object(obj(ObjectType::AnalogInput, 10)),
                Target::Property(PropertyId::PresentValue),
                Target::Property(PropertyId::StatusFlags),
            ],
        ),
        (TIME_SYNC, Service::Unconfirmed(U::TimeSynchronization), &[]),
        (
            WHO_HAS,
            Service::Unconfirmed(U::WhoHas),
            &[Target::Object(obj(ObjectType::AnalogValue, 3))],
        ),
    ];
    for (bytes, service, expected) in cases {
        let b = hex(bytes);
        let m = msg(&b);
        assert!(m.is_request(), "{bytes}");
        assert_eq!(m.service(), Some(*service), "{bytes}");
        assert_eq!(targets(&m), *expected, "{bytes}");
    }
}

#[test]
fn events_show_the_operation() {
    let cases = [
        (
            WP,
            "bacnet bvlc=original-unicast-npdu apdu=confirmed-request service=write-property \
             invoke_id=2 object_type=analog-value instance=1 property=present-value",
        ),
        (
            REINIT,
            "bacnet bvlc=original-unicast-npdu apdu=confirmed-request \
             service=reinitialize-device invoke_id=3 state=warmstart",
        ),
        (
            DCC,
            "bacnet bvlc=original-unicast-npdu apdu=confirmed-request \
             service=device-communication-control invoke_id=4 enable_disable=disable",
        ),
        (
            RPM,
            "bacnet bvlc=original-unicast-npdu apdu=confirmed-request \
             service=read-property-multiple invoke_id=5 object_type=analog-input instance=1 \
             property=present-value objects=2 properties=3",
        ),
        (
            CREATE,
            "bacnet bvlc=original-unicast-npdu apdu=confirmed-request service=create-object \
             invoke_id=8 object_type=analog-value property=object-name",
        ),
        (
            WHO_IS,
            "bacnet bvlc=original-broadcast-npdu apdu=unconfirmed-request service=who-is",
        ),
        (
            RP_ACK,
            "bacnet bvlc=original-unicast-npdu apdu=complex-ack service=read-property invoke_id=1",
        ),
        (
            SIMPLE_ACK,
            "bacnet bvlc=original-unicast-npdu apdu=simple-ack service=write-property invoke_id=2",
        ),
        (
            ERROR,
            "bacnet bvlc=original-unicast-npdu apdu=error service=write-property invoke_id=2 \
             error_class=property error_code=write-access-denied",
        ),
    ];
    for (bytes, expected) in cases {
        let b = hex(bytes);
        assert_eq!(line(&msg(&b)), expected);
    }
}

#[test]
fn answers_are_not_requests() {
    for bytes in [RP_ACK, SIMPLE_ACK, ERROR] {
        let b = hex(bytes);
        let m = msg(&b);
        assert!(!m.is_request(), "{bytes}");
        assert_eq!(m.service(), None);
        assert!(m.targets().next().is_none());
    }
    let e = hex(ERROR);
    let op = msg(&e).op();
    assert_eq!(
        op.error(),
        Some((ErrorClass::Property, ErrorCode::WriteAccessDenied))
    );
    // Segment-ACK, reject, abort.
    for (apdu, text) in [
        (
            &[0x42, 7, 3, 4][..],
            "apdu=segment-ack invoke_id=7 sequence=3 nak",
        ),
        (
            &[0x60, 7, 9][..],
            "apdu=reject invoke_id=7 reject_reason=unrecognized-service",
        ),
        (
            &[0x71, 7, 4][..],
            "apdu=abort invoke_id=7 abort_reason=segmentation-not-supported",
        ),
    ] {
        let b = with_apdu(apdu);
        let m = msg(&b);
        assert!(!m.is_request());
        assert!(line(&m).ends_with(text), "{}", line(&m));
    }
}

#[test]
fn bvlc_functions() {
    let cases: &[(&[u8], bool, &str)] = &[
        // BVLC-Result: register-foreign-device NAK.
        (
            &[0x81, 0x00, 0x00, 0x06, 0x00, 0x30],
            false,
            "bvlc=result result=register-foreign-device-nak",
        ),
        // Register-Foreign-Device, TTL 300 s.
        (
            &[0x81, 0x05, 0x00, 0x06, 0x01, 0x2c],
            true,
            "bvlc=register-foreign-device",
        ),
        (
            &[0x81, 0x02, 0x00, 0x04],
            true,
            "bvlc=read-broadcast-distribution-table",
        ),
        (
            &[0x81, 0x06, 0x00, 0x04],
            true,
            "bvlc=read-foreign-device-table",
        ),
        // Write-BDT with one entry: 10.10.0.1:47808, mask 255.255.255.255.
        (
            &[
                0x81, 0x01, 0x00, 0x0e, 10, 10, 0, 1, 0xba, 0xc0, 255, 255, 255, 255,
            ],
            true,
            "bvlc=write-broadcast-distribution-table",
        ),
        (
            &[0x81, 0x03, 0x00, 0x04],
            false,
            "bvlc=read-broadcast-distribution-table-ack",
        ),
        (
            &[
                0x81, 0x07, 0x00, 0x0e, 10, 10, 0, 9, 0xba, 0xc0, 0, 60, 0, 30,
            ],
            false,
            "bvlc=read-foreign-device-table-ack",
        ),
        (
            &[0x81, 0x08, 0x00, 0x0a, 10, 10, 0, 9, 0xba, 0xc0],
            true,
            "bvlc=delete-foreign-device-table-entry",
        ),
        (
            &[0x81, 0x0c, 0x00, 0x06, 0xaa, 0xbb],
            true,
            "bvlc=secure-bvll",
        ),
        (&[0x81, 0x42, 0x00, 0x05, 0x00], true, "bvlc=66"),
    ];
    for (b, request, text) in cases {
        let m = msg(b);
        assert_eq!(m.is_request(), *request, "{text}");
        assert_eq!(line(&m), std::format!("bacnet {text}"));
        assert!(m.npci().is_none());
    }
    // Forwarded-NPDU: the original source's address, then a Who-Is.
    let b = [
        0x81, 0x04, 0x00, 0x0e, 10, 10, 0, 21, 0xba, 0xc0, 0x01, 0x00, 0x10, 0x08,
    ];
    let m = msg(&b);
    assert!(m.is_request());
    assert_eq!(m.bvlc_request(), None, "a carrier, not a BBMD request");
    assert_eq!(
        m.service(),
        Some(Service::Unconfirmed(UnconfirmedService::WhoIs))
    );
    // Distribute-Broadcast-To-Network: a BBMD request that carries a Who-Is.
    let b = [0x81, 0x09, 0x00, 0x08, 0x01, 0x00, 0x10, 0x08];
    let m = msg(&b);
    assert_eq!(m.bvlc_request(), Some(BvlcFunction::DistributeBroadcast));
    assert!(m.service().is_some());
}

#[test]
fn malformed_bvlc() {
    assert_eq!(err(&[]), "BVLC header truncated");
    assert_eq!(err(&[0x81, 0x0a, 0x00]), "BVLC header truncated");
    assert_eq!(
        err(&[0x82, 0x0a, 0x00, 0x04]),
        "BVLC type is not 0x81 (BACnet/IP)"
    );
    assert_eq!(
        err(&[0x81, 0x0a, 0x00, 0x08, 0x01, 0x00, 0x10]),
        "BVLC length disagrees with the datagram"
    );
    assert_eq!(
        err(&[0x81, 0x00, 0x00, 0x05, 0x00]),
        "BVLC-Result is not a 2-byte code"
    );
    assert_eq!(
        err(&[0x81, 0x01, 0x00, 0x07, 1, 2, 3]),
        "broadcast distribution table entries are not 10 bytes each"
    );
    assert_eq!(
        err(&[0x81, 0x02, 0x00, 0x05, 0]),
        "table read request carries data"
    );
    assert_eq!(
        err(&[0x81, 0x05, 0x00, 0x05, 0]),
        "foreign device registration is not a 2-byte time-to-live"
    );
    assert_eq!(
        err(&[0x81, 0x04, 0x00, 0x08, 10, 10, 0, 21]),
        "forwarded NPDU without its original address"
    );
    assert_eq!(err(&[0x81, 0x0a, 0x00, 0x04]), "NPDU header truncated");
}

#[test]
fn npci_addresses_and_network_messages() {
    // Routed to network 5, MAC 0x0a, hop count 255, from network 9 MAC 0x01 0x02.
    let b = unicast(&[
        0x01, 0x2c, 0x00, 0x05, 0x01, 0x0a, 0x00, 0x09, 0x02, 0x01, 0x02, 0xff, 0x10, 0x08,
    ]);
    let m = msg(&b);
    let n = m.npci().unwrap();
    assert_eq!(
        (n.dnet(), n.dadr(), n.hop_count()),
        (Some(5), &[0x0a][..], Some(255))
    );
    assert_eq!((n.snet(), n.sadr()), (Some(9), &[1, 2][..]));
    assert!(n.expecting_reply());
    assert!(line(&m).contains("dnet=5"));
    // Global broadcast (DNET 65535, DLEN 0).
    let b = unicast(&[0x01, 0x20, 0xff, 0xff, 0x00, 0xff, 0x10, 0x08]);
    assert_eq!(msg(&b).dnet(), Some(0xffff));

    // Who-Is-Router-To-Network, for any network and for network 3.
    for data in [&[][..], &[0x00, 0x03]] {
        let mut n = std::vec![0x01, 0x80, 0x00];
        n.extend_from_slice(data);
        let b = unicast(&n);
        let m = msg(&b);
        assert!(m.is_request());
        assert_eq!(
            m.network_request(),
            Some(NetworkMessage::WhoIsRouterToNetwork)
        );
        assert_eq!(
            line(&m),
            "bacnet bvlc=original-unicast-npdu network_message=who-is-router-to-network"
        );
    }
    // I-Am-Router-To-Network 3 and 4.
    let b = unicast(&[0x01, 0x80, 0x01, 0x00, 0x03, 0x00, 0x04]);
    assert!(msg(&b).is_request());
    // Initialize-Routing-Table with one port; its ACK, empty.
    let b = unicast(&[0x01, 0x80, 0x06, 0x01, 0x00, 0x07, 0x01, 0x02, 0xaa, 0xbb]);
    assert_eq!(
        msg(&b).network_request(),
        Some(NetworkMessage::InitializeRoutingTable)
    );
    let b = unicast(&[0x01, 0x80, 0x07]);
    assert!(!msg(&b).is_request());
    // Reject-Message-To-Network is a report, not a request.
    let b = unicast(&[0x01, 0x80, 0x03, 0x01, 0x00, 0x07]);
    assert!(!msg(&b).is_request());
    // A proprietary message, vendor 260.
    let b = unicast(&[0x01, 0x80, 0x90, 0x01, 0x04, 0xde, 0xad]);
    assert_eq!(
        msg(&b).network_request(),
        Some(NetworkMessage::Unknown(0x90))
    );
}

#[test]
fn malformed_npdus() {
    let cases: &[(&[u8], &str)] = &[
        (&[0x02, 0x00, 0x10, 0x08], "NPDU version is not 1"),
        (&[0x01, 0x40, 0x10, 0x08], "reserved NPDU control bits set"),
        (
            &[0x01, 0x20, 0x00, 0x05, 0x06, 0x01],
            "DADR runs past the end",
        ),
        (&[0x01, 0x20, 0x00, 0x05, 0x00], "hop count missing"),
        (
            &[0x01, 0x08, 0xff, 0xff, 0x01, 0x01, 0x10, 0x08],
            "SNET is the global broadcast network",
        ),
        (&[0x01, 0x08, 0x00, 0x02, 0x00, 0x10, 0x08], "SLEN is 0"),
        (&[0x01, 0x00], "APDU missing"),
        (&[0x01, 0x80], "network message type missing"),
        (
            &[0x01, 0x80, 0x00, 0x01],
            "network message data has the wrong length",
        ),
        (
            &[0x01, 0x80, 0x12, 0x01],
            "network message data has the wrong length",
        ),
        (
            &[0x01, 0x80, 0x13, 0x00, 0x05, 0x02],
            "network message data has the wrong length",
        ),
        (
            &[0x01, 0x80, 0x06, 0x02, 0x00, 0x07, 0x01, 0x00],
            "network message data has the wrong length",
        ),
        (
            &[0x01, 0x80, 0x90, 0x01],
            "proprietary network message without its vendor id",
        ),
    ];
    for (npdu, what) in cases {
        assert_eq!(err(&unicast(npdu)), *what, "{npdu:02x?}");
    }
}

#[test]
fn malformed_apdus() {
    let cases: &[(&[u8], &str)] = &[
        (&[0x80, 0x01], "reserved APDU type"),
        (&[0xf0, 0x01], "reserved APDU type"),
        (&[0x00, 0x05, 0x01], "service choice missing"),
        (&[0x00, 0x05], "APDU header truncated"),
        (
            &[0x08, 0x05, 0x01, 0x00, 0x00, 0x0c],
            "proposed window size out of range (1-127)",
        ),
        (
            &[0x08, 0x05, 0x01, 0x00, 0x80, 0x0c],
            "proposed window size out of range (1-127)",
        ),
        (
            &[0x04, 0x05, 0x01, 0x0c],
            "more-follows set on an unsegmented APDU",
        ),
        (&[0x20, 0x01, 0x0f, 0x00], "APDU longer than its type"),
        (&[0x20, 0x01], "APDU header truncated"),
        (&[0x42, 7, 3], "APDU header truncated"),
        (&[0x40, 7, 3, 0], "actual window size out of range (1-127)"),
        (&[0x60, 7, 9, 9], "APDU longer than its type"),
        (
            &[0x50, 0x01, 0x0f, 0x91, 0x02],
            "error class and code missing",
        ),
        (&[0x50, 0x01, 0x0f, 0x91], "tag data runs past the end"),
        // ReadProperty without its property, or its object.
        (
            &[0x00, 0x05, 0x01, 0x0c, 0x0c, 0, 0, 0, 5],
            "required property identifier missing",
        ),
        (
            &[0x00, 0x05, 0x01, 0x0c, 0x19, 0x55],
            "required object identifier missing",
        ),
        // An object identifier of 3 bytes; a property of 5.
        (
            &[0x00, 0x05, 0x01, 0x0c, 0x0b, 0, 0, 5, 0x19, 0x55],
            "object identifier is not 4 bytes",
        ),
        (
            &[
                0x00, 0x05, 0x01, 0x0c, 0x0c, 0, 0, 0, 5, 0x1d, 5, 0, 0, 0, 0, 0x55,
            ],
            "property identifier is not 1-4 bytes",
        ),
        (
            &[0x00, 0x05, 0x01, 0x0c, 0x0c, 0, 0, 0, 5, 0x1b, 0x40, 0, 0],
            "property identifier above 4194303",
        ),
        // WriteProperty whose value is never closed.
        (
            &[
                0x00, 0x05, 0x02, 0x0f, 0x0c, 0, 0x80, 0, 1, 0x19, 0x55, 0x3e, 0x44, 0x42, 0x91, 0,
                0,
            ],
            "opening tag without its closing tag",
        ),
        // Who-Is with a truncated tag; a stray closing tag; an I-Am without its device.
        (&[0x10, 0x08, 0x0a, 0x03], "tag data runs past the end"),
        (&[0x10, 0x08, 0x0f], "closing tag without its opening tag"),
        (
            &[0x10, 0x00, 0x22, 0x05, 0xc4],
            "required object identifier missing",
        ),
        // A complex ACK with broken tags.
        (
            &[0x30, 0x01, 0x0c, 0x3e],
            "opening tag without its closing tag",
        ),
    ];
    for (apdu, what) in cases {
        assert_eq!(err(&with_apdu(apdu)), *what, "{apdu:02x?}");
    }
}

#[test]
fn unknown_services_are_data_and_opaque() {
    // Confirmed service 99 and unconfirmed 77 with well-formed parameters.
    let b = with_apdu(&[0x00, 0x05, 0x01, 99, 0x09, 0x01]);
    let m = msg(&b);
    assert_eq!(
        m.service(),
        Some(Service::Confirmed(ConfirmedService::Unknown(99)))
    );
    assert_eq!(targets(&m), [Target::Undecoded]);
    assert!(line(&m).contains("service=99"));
    let b = with_apdu(&[0x10, 77]);
    let m = msg(&b);
    assert_eq!(
        m.service(),
        Some(Service::Unconfirmed(UnconfirmedService::Unknown(77)))
    );
    assert_eq!(std::format!("{}", m.service().unwrap()), "unconfirmed:77");
    // A private transfer names nothing decodable.
    let b = with_apdu(&[0x00, 0x05, 0x01, 18, 0x09, 0x05, 0x19, 0x01]);
    assert_eq!(targets(&msg(&b)), [Target::Undecoded]);
    // Tags are still checked in opaque services.
    assert_eq!(
        err(&with_apdu(&[0x00, 0x05, 0x01, 18, 0x09])),
        "tag data runs past the end"
    );
}

#[test]
fn segmented_requests() {
    // WritePropertyMultiple in two segments: the first names analog-value 2 and is cut
    // inside its value; the second holds the rest.
    let mut data = [0u8; 64];
    let mut e = Encoder::new(&mut data);
    e.write_access(
        obj(ObjectType::AnalogValue, 2),
        &[(PropertyId::PresentValue, &[0x44, 0x41, 0xa8, 0, 0])],
    );
    e.write_access(
        obj(ObjectType::BinaryOutput, 1),
        &[(PropertyId::OutOfService, &[0x11])],
    );
    let n = e.finish().unwrap();
    let (first, second) = data[..n].split_at(12);
    let mut buf = [0u8; 128];
    let seg_of = |service, seq, more, part: &[u8], buf: &mut [u8]| {
        let repr = Repr::unicast(Body::Confirmed {
            invoke_id: 9,
            service,
            segment: Some(Segment {
                sequence: seq,
                window: 4,
                more_follows: more,
            }),
            data: part,
        });
        let len = repr.emit(buf).unwrap();
        buf[..len].to_vec()
    };
    let seg = |seq, more, part: &[u8], buf: &mut [u8]| seg_of(16, seq, more, part, buf);
    let a = seg(0, true, first, &mut buf);
    let m = msg(&a);
    assert!(m.is_segmented() && m.is_request());
    assert_eq!(
        targets(&m),
        [
            Target::Object(obj(ObjectType::AnalogValue, 2)),
            Target::Property(PropertyId::PresentValue)
        ]
    );
    assert!(
        line(&m).contains("segmented more_follows sequence=0"),
        "{}",
        line(&m)
    );
    let b = seg(1, false, second, &mut buf);
    let m = msg(&b);
    assert_eq!(m.sequence_number(), Some(1));
    assert_eq!(targets(&m), [Target::Undecoded]);
    // A segmented request in one segment is complete: checked like any other.
    let whole = seg(0, false, &data[..n], &mut buf);
    assert_eq!(targets(&msg(&whole)).len(), 4);
    let broken = seg(0, false, first, &mut buf);
    assert_eq!(err(&broken), "tag data runs past the end");
    // Segments of a service without objects (a text message) have no targets at all;
    // those of an opaque one (a private transfer) may have any.
    let b = seg_of(19, 1, false, &[0x00], &mut buf);
    assert_eq!(targets(&msg(&b)), []);
    let b = seg_of(18, 0, true, &[0x09], &mut buf);
    assert_eq!(targets(&msg(&b)), [Target::Undecoded]);
}

#[test]
fn emit_then_parse() {
    let mut data = [0u8; 64];
    let n = Encoder::new(&mut data)
        .read_property(
            obj(ObjectType::BinaryValue, 4_194_303),
            PropertyId::Unknown(600),
            Some(3),
        )
        .finish()
        .unwrap();
    let repr = Repr::Npdu {
        carrier: Carrier::Forwarded([10, 10, 0, 21, 0xba, 0xc0]),
        npci: NpciRepr {
            expecting_reply: true,
            priority: 3,
            destination: Some((7, &[0x21], 254)),
            source: Some((12, &[1, 2, 3, 4, 5, 6])),
        },
        body: Body::Confirmed {
            invoke_id: 200,
            service: 12,
            segment: None,
            data: &data[..n],
        },
    };
    let mut out = [0u8; 128];
    let len = repr.emit(&mut out).unwrap();
    let m = msg(&out[..len]);
    assert_eq!(m.bvlc_function(), BvlcFunction::ForwardedNpdu);
    let npci = m.npci().unwrap();
    assert_eq!(
        (npci.dnet(), npci.hop_count(), npci.priority()),
        (Some(7), Some(254), 3)
    );
    assert_eq!(npci.sadr(), &[1, 2, 3, 4, 5, 6]);
    assert_eq!(m.invoke_id(), Some(200));
    assert_eq!(
        targets(&m),
        [
            Target::Object(obj(ObjectType::BinaryValue, 4_194_303)),
            Target::Property(PropertyId::Unknown(600))
        ]
    );
    assert!(line(&m).contains("property=600"));
    // The bacpypes3 fixtures re-emit byte for byte.
    let mut rp = [0u8; 16];
    let n = Encoder::new(&mut rp)
        .read_property(
            obj(ObjectType::AnalogInput, 5),
            PropertyId::PresentValue,
            None,
        )
        .finish()
        .unwrap();
    let repr = Repr::Npdu {
        carrier: Carrier::OriginalUnicast,
        npci: NpciRepr::default(),
        body: Body::Confirmed {
            invoke_id: 1,
            service: 12,
            segment: None,
            data: &rp[..n],
        },
    };
    let len = repr.emit(&mut out).unwrap();
    assert_eq!(&out[..len], &hex(RP)[..]);
    let repr = Repr::Npdu {
        carrier: Carrier::OriginalUnicast,
        npci: NpciRepr::default(),
        body: Body::Error {
            invoke_id: 2,
            service: 15,
            class: 2,
            code: 40,
        },
    };
    let len = repr.emit(&mut out).unwrap();
    assert_eq!(&out[..len], &hex(ERROR)[..]);
    assert!(repr.emit(&mut out[..10]).is_none(), "too small a buffer");
}

#[test]
fn object_identifiers() {
    let o = ObjectId::new(8, 1234).unwrap();
    assert_eq!(o.raw(), 0x0200_04d2);
    assert_eq!((o.object_type(), o.instance()), (ObjectType::Device, 1234));
    assert_eq!(std::format!("{o}"), "device:1234");
    assert_eq!(std::format!("{}", ObjectId::new(300, 1).unwrap()), "300:1");
    assert!(ObjectId::new(1024, 0).is_none() && ObjectId::new(0, 1 << 22).is_none());
}

#[test]
fn op_is_small() {
    assert!(
        core::mem::size_of::<Op>() <= 24,
        "{}",
        core::mem::size_of::<Op>()
    );
}

#[test]
fn a_conversation_captured_between_bacpypes3_peers() {
    // UDP payloads captured with tcpdump between a bacpypes3 0.0.110 client (10.10.0.21)
    // and device 1234 (10.10.0.10), both on port 47808: Who-Is and I-Am, a read, a
    // write, a reinitialize-device and a read of an object the device does not have.
    let capture: &[(&str, bool, &str)] = &[
        (
            "810a000801001008",
            true,
            "apdu=unconfirmed-request service=who-is",
        ),
        (
            "810a001501001000c4020004d222040091002203e7",
            true,
            "apdu=unconfirmed-request service=i-am object_type=device instance=1234",
        ),
        (
            "810a001101040244000c0c008000011955",
            true,
            "apdu=confirmed-request service=read-property invoke_id=0 \
             object_type=analog-value instance=1 property=present-value",
        ),
        (
            "810a0017010030000c0c0080000119553e44422800003f",
            false,
            "apdu=complex-ack service=read-property invoke_id=0",
        ),
        (
            "810a001a01040244000f0c0080000119553e44422800003f4908",
            true,
            "apdu=confirmed-request service=write-property invoke_id=0 \
             object_type=analog-value instance=1 property=present-value",
        ),
        (
            "810a0009010020000f",
            false,
            "apdu=simple-ack service=write-property invoke_id=0",
        ),
        (
            "810a000c0104024400140901",
            true,
            "apdu=confirmed-request service=reinitialize-device invoke_id=0 state=warmstart",
        ),
        (
            "810a00090100200014",
            false,
            "apdu=simple-ack service=reinitialize-device invoke_id=0",
        ),
        (
            "810a001101040244000c0c008000091955",
            true,
            "apdu=confirmed-request service=read-property invoke_id=0 \
             object_type=analog-value instance=9 property=present-value",
        ),
        (
            "810a000d010050000c9101911f",
            false,
            "apdu=error service=read-property invoke_id=0 error_class=object \
             error_code=unknown-object",
        ),
    ];
    for (bytes, request, text) in capture {
        let b = hex(bytes);
        let m = msg(&b);
        assert_eq!(m.is_request(), *request, "{bytes}");
        assert_eq!(
            line(&m),
            std::format!("bacnet bvlc=original-unicast-npdu {text}"),
            "{bytes}"
        );
    }
}
