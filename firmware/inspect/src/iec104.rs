//! IEC 60870-5-104: the APCI (I, S and U frames) and the ASDU of every type the
//! companion standards define, in both directions.
//!
//! References: IEC 60870-5-104:2006 (the APCI and its control field, clause 5; the ASDU
//! fields' sizes on TCP: cause of transmission 2 octets with the originator address,
//! common address 2 octets, information object address 3 octets) and
//! IEC 60870-5-101:2003 (the ASDU, 7.2: type identification, variable structure
//! qualifier, cause of transmission; the information elements of each type, 7.3).
//! The element sizes below are those of 7.3; the fixtures in the tests are built from
//! the byte layouts the standard gives.
//!
//! What is checked, so that what reaches the controlled station is what the policy saw:
//! - the APCI: start byte 0x68, length 4-253, the control field of each format (an
//!   S-frame is exactly `01 00 xx xx`, a U-frame sets exactly one function bit, the
//!   reserved bit of octet 3 is 0), S- and U-frames carry no ASDU;
//! - per direction of a connection ([`Session`]), the send sequence numbers of I-frames
//!   run 0, 1, 2 … (mod 32768) as the standard requires of a new connection: a gap or a
//!   repeat is an injected, replayed or lost frame;
//! - the ASDU: its length agrees with the type's element size and the number of objects
//!   (SQ = 0: address and element per object; SQ = 1: one address, then the elements);
//!   commands, system commands, parameters and file transfer carry one object (SQ = 0);
//!   addresses of a sequence stay below 2^24; double and regulating step commands use a
//!   permitted state (1 or 2).
//!
//! A type identification without a definition here (reserved, private, IEC 62351-5
//! security types) is data: its ASDU is accepted when its header is whole and its
//! length fits the object count (at least an address per object; with SQ = 1 equal
//! elements), and the policy decides. Its information object addresses are known when
//! it has one object or is a sequence (SQ = 1); otherwise [`Asdu::addresses`] says they
//! cannot be known, and a rule that limits addresses refuses it.

use core::fmt;

use crate::macros::codes;
use crate::{code_field, Dir, Fields, Framing, Malformed, Protocol};

/// The start byte of every APDU.
pub const START: u8 = 0x68;
/// Start byte, length, four control octets.
pub const APCI_LEN: usize = 6;
/// Start byte, length byte and up to 253 bytes of APCI control field and ASDU.
pub const MAX_APDU: usize = 255;
/// Type identification, variable structure qualifier, cause of transmission (with the
/// originator address), common address (2 octets).
pub const ASDU_HEADER_LEN: usize = 6;
/// An information object address: 3 octets, little-endian.
pub const IOA_LEN: usize = 3;
/// The largest information object address.
pub const MAX_IOA: u32 = 0xff_ffff;
/// The largest object count of a variable structure qualifier.
pub const MAX_OBJECTS: u8 = 127;
/// The largest ASDU on TCP.
pub const MAX_ASDU: usize = MAX_APDU - APCI_LEN;

const MIN_LENGTH: u8 = 4;
const MAX_LENGTH: u8 = 253;
/// Sequence numbers count modulo 2^15.
const SEQ_MASK: u16 = 0x7fff;

const P: Protocol = Protocol::Iec104;

fn malformed(what: &'static str) -> Malformed {
    Malformed::new(P, what)
}

codes! {
    /// Type identification (IEC 60870-5-101 7.2.1.1, IEC 60870-5-104 clause 8): the
    /// standard mnemonics in kebab-case. `*-ta-1` types with CP24Time2a (2-19) belong to
    /// IEC 60870-5-101; 104 uses the CP56Time2a types (30-40, 58-64, 107).
    pub enum TypeId(u8) {
        MSpNa1 = 1 => "m-sp-na-1",
        MSpTa1 = 2 => "m-sp-ta-1",
        MDpNa1 = 3 => "m-dp-na-1",
        MDpTa1 = 4 => "m-dp-ta-1",
        MStNa1 = 5 => "m-st-na-1",
        MStTa1 = 6 => "m-st-ta-1",
        MBoNa1 = 7 => "m-bo-na-1",
        MBoTa1 = 8 => "m-bo-ta-1",
        MMeNa1 = 9 => "m-me-na-1",
        MMeTa1 = 10 => "m-me-ta-1",
        MMeNb1 = 11 => "m-me-nb-1",
        MMeTb1 = 12 => "m-me-tb-1",
        MMeNc1 = 13 => "m-me-nc-1",
        MMeTc1 = 14 => "m-me-tc-1",
        MItNa1 = 15 => "m-it-na-1",
        MItTa1 = 16 => "m-it-ta-1",
        MEpTa1 = 17 => "m-ep-ta-1",
        MEpTb1 = 18 => "m-ep-tb-1",
        MEpTc1 = 19 => "m-ep-tc-1",
        MPsNa1 = 20 => "m-ps-na-1",
        MMeNd1 = 21 => "m-me-nd-1",
        MSpTb1 = 30 => "m-sp-tb-1",
        MDpTb1 = 31 => "m-dp-tb-1",
        MStTb1 = 32 => "m-st-tb-1",
        MBoTb1 = 33 => "m-bo-tb-1",
        MMeTd1 = 34 => "m-me-td-1",
        MMeTe1 = 35 => "m-me-te-1",
        MMeTf1 = 36 => "m-me-tf-1",
        MItTb1 = 37 => "m-it-tb-1",
        MEpTd1 = 38 => "m-ep-td-1",
        MEpTe1 = 39 => "m-ep-te-1",
        MEpTf1 = 40 => "m-ep-tf-1",
        CScNa1 = 45 => "c-sc-na-1",
        CDcNa1 = 46 => "c-dc-na-1",
        CRcNa1 = 47 => "c-rc-na-1",
        CSeNa1 = 48 => "c-se-na-1",
        CSeNb1 = 49 => "c-se-nb-1",
        CSeNc1 = 50 => "c-se-nc-1",
        CBoNa1 = 51 => "c-bo-na-1",
        CScTa1 = 58 => "c-sc-ta-1",
        CDcTa1 = 59 => "c-dc-ta-1",
        CRcTa1 = 60 => "c-rc-ta-1",
        CSeTa1 = 61 => "c-se-ta-1",
        CSeTb1 = 62 => "c-se-tb-1",
        CSeTc1 = 63 => "c-se-tc-1",
        CBoTa1 = 64 => "c-bo-ta-1",
        MEiNa1 = 70 => "m-ei-na-1",
        CIcNa1 = 100 => "c-ic-na-1",
        CCiNa1 = 101 => "c-ci-na-1",
        CRdNa1 = 102 => "c-rd-na-1",
        CCsNa1 = 103 => "c-cs-na-1",
        CTsNa1 = 104 => "c-ts-na-1",
        CRpNa1 = 105 => "c-rp-na-1",
        CCdNa1 = 106 => "c-cd-na-1",
        CTsTa1 = 107 => "c-ts-ta-1",
        PMeNa1 = 110 => "p-me-na-1",
        PMeNb1 = 111 => "p-me-nb-1",
        PMeNc1 = 112 => "p-me-nc-1",
        PAcNa1 = 113 => "p-ac-na-1",
        FFrNa1 = 120 => "f-fr-na-1",
        FSrNa1 = 121 => "f-sr-na-1",
        FScNa1 = 122 => "f-sc-na-1",
        FLsNa1 = 123 => "f-ls-na-1",
        FAfNa1 = 124 => "f-af-na-1",
        FSgNa1 = 125 => "f-sg-na-1",
        FDrTa1 = 126 => "f-dr-ta-1",
        FScNb1 = 127 => "f-sc-nb-1",
    }
}

codes! {
    /// Cause of transmission, the six low bits of its first octet (IEC 60870-5-101
    /// 7.2.3; 14-16 from IEC 62351-5 secure authentication).
    pub enum Cause(u8) {
        Periodic = 1 => "periodic",
        Background = 2 => "background",
        Spontaneous = 3 => "spontaneous",
        Initialized = 4 => "initialized",
        Request = 5 => "request",
        Activation = 6 => "activation",
        ActivationCon = 7 => "activation-con",
        Deactivation = 8 => "deactivation",
        DeactivationCon = 9 => "deactivation-con",
        ActivationTermination = 10 => "activation-termination",
        ReturnRemote = 11 => "return-remote",
        ReturnLocal = 12 => "return-local",
        FileTransfer = 13 => "file-transfer",
        Authentication = 14 => "authentication",
        SessionKeyMaintenance = 15 => "session-key-maintenance",
        UpdateKeyMaintenance = 16 => "update-key-maintenance",
        InterrogatedByStation = 20 => "interrogated-by-station",
        InterrogatedByGroup1 = 21 => "interrogated-by-group-1",
        InterrogatedByGroup2 = 22 => "interrogated-by-group-2",
        InterrogatedByGroup3 = 23 => "interrogated-by-group-3",
        InterrogatedByGroup4 = 24 => "interrogated-by-group-4",
        InterrogatedByGroup5 = 25 => "interrogated-by-group-5",
        InterrogatedByGroup6 = 26 => "interrogated-by-group-6",
        InterrogatedByGroup7 = 27 => "interrogated-by-group-7",
        InterrogatedByGroup8 = 28 => "interrogated-by-group-8",
        InterrogatedByGroup9 = 29 => "interrogated-by-group-9",
        InterrogatedByGroup10 = 30 => "interrogated-by-group-10",
        InterrogatedByGroup11 = 31 => "interrogated-by-group-11",
        InterrogatedByGroup12 = 32 => "interrogated-by-group-12",
        InterrogatedByGroup13 = 33 => "interrogated-by-group-13",
        InterrogatedByGroup14 = 34 => "interrogated-by-group-14",
        InterrogatedByGroup15 = 35 => "interrogated-by-group-15",
        InterrogatedByGroup16 = 36 => "interrogated-by-group-16",
        RequestedByGeneralCounter = 37 => "requested-by-general-counter",
        RequestedByGroup1Counter = 38 => "requested-by-group-1-counter",
        RequestedByGroup2Counter = 39 => "requested-by-group-2-counter",
        RequestedByGroup3Counter = 40 => "requested-by-group-3-counter",
        RequestedByGroup4Counter = 41 => "requested-by-group-4-counter",
        UnknownType = 44 => "unknown-type",
        UnknownCause = 45 => "unknown-cause",
        UnknownCommonAddress = 46 => "unknown-common-address",
        UnknownIoa = 47 => "unknown-ioa",
    }
}

codes! {
    /// U-frame functions: the first control octet as a whole (IEC 60870-5-104 5.3).
    pub enum UFunction(u8) {
        StartDtAct = 0x07 => "startdt-act",
        StartDtCon = 0x0b => "startdt-con",
        StopDtAct = 0x13 => "stopdt-act",
        StopDtCon = 0x23 => "stopdt-con",
        TestFrAct = 0x43 => "testfr-act",
        TestFrCon = 0x83 => "testfr-con",
    }
}

/// How the information elements of a type are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Every element (the object after its address) has this many octets.
    Fixed(u8),
    /// F_SG_NA_1: name of file (2), name of section (1), length of segment (1), then
    /// that many octets.
    Segment,
    /// No definition here: the objects cannot be walked.
    Unknown,
}

impl TypeId {
    /// The size of the type's information elements (IEC 60870-5-101 7.3; CP24Time2a is
    /// 3 octets, CP56Time2a 7, CP16Time2a 2).
    pub fn layout(self) -> Layout {
        use TypeId as T;
        let size = match self {
            T::MSpNa1 | T::MDpNa1 => 1,
            T::MSpTa1 | T::MDpTa1 => 4,
            T::MStNa1 => 2,
            T::MStTa1 => 5,
            T::MBoNa1 => 5,
            T::MBoTa1 => 8,
            T::MMeNa1 | T::MMeNb1 => 3,
            T::MMeTa1 | T::MMeTb1 => 6,
            T::MMeNc1 => 5,
            T::MMeTc1 => 8,
            T::MItNa1 => 5,
            T::MItTa1 => 8,
            T::MEpTa1 => 6,
            T::MEpTb1 | T::MEpTc1 => 7,
            T::MPsNa1 => 5,
            T::MMeNd1 => 2,
            T::MSpTb1 | T::MDpTb1 => 8,
            T::MStTb1 => 9,
            T::MBoTb1 => 12,
            T::MMeTd1 | T::MMeTe1 => 10,
            T::MMeTf1 => 12,
            T::MItTb1 => 12,
            T::MEpTd1 => 10,
            T::MEpTe1 | T::MEpTf1 => 11,
            T::CScNa1 | T::CDcNa1 | T::CRcNa1 => 1,
            T::CSeNa1 | T::CSeNb1 => 3,
            T::CSeNc1 => 5,
            T::CBoNa1 => 4,
            T::CScTa1 | T::CDcTa1 | T::CRcTa1 => 8,
            T::CSeTa1 | T::CSeTb1 => 10,
            T::CSeTc1 => 12,
            T::CBoTa1 => 11,
            T::MEiNa1 => 1,
            T::CIcNa1 | T::CCiNa1 => 1,
            T::CRdNa1 => 0,
            T::CCsNa1 => 7,
            T::CTsNa1 => 2,
            T::CRpNa1 => 1,
            T::CCdNa1 => 2,
            T::CTsTa1 => 9,
            T::PMeNa1 | T::PMeNb1 => 3,
            T::PMeNc1 => 5,
            T::PAcNa1 => 1,
            T::FFrNa1 => 6,
            T::FSrNa1 => 7,
            T::FScNa1 => 4,
            T::FLsNa1 => 5,
            T::FAfNa1 => 4,
            T::FSgNa1 => return Layout::Segment,
            T::FDrTa1 => 13,
            T::FScNb1 => 16,
            T::Unknown(_) => return Layout::Unknown,
        };
        Layout::Fixed(size)
    }

    /// Types that carry one information object (SQ = 0, one object): commands, system
    /// commands, parameters, end of initialization and file transfer (except the
    /// directory, a sequence).
    pub fn single_object(self) -> bool {
        self.layout() != Layout::Unknown && matches!(u8::from(self), 45..=70 | 100..=125 | 127)
    }

    /// System commands addressed to the station as a whole, whose information object
    /// address is "irrelevant" (0): interrogation, counter interrogation, clock
    /// synchronisation, test, reset process, delay acquisition.
    pub fn station_command(self) -> bool {
        use TypeId as T;
        matches!(
            self,
            T::CIcNa1 | T::CCiNa1 | T::CCsNa1 | T::CTsNa1 | T::CRpNa1 | T::CCdNa1 | T::CTsTa1
        )
    }
}

/// Whether a type id lies in the standard's ranges for the control direction: process
/// information (45-69), system information (100-109) and parameters (110-119).
pub fn control_direction(type_id: u8) -> bool {
    matches!(type_id, 45..=69 | 100..=119)
}

/// The APCI format of a frame, with its sequence numbers or function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Information transfer: send and receive sequence numbers (15 bits each).
    I { send: u16, recv: u16 },
    /// Numbered supervisory: the receive sequence number acknowledges I-frames.
    S { recv: u16 },
    /// Unnumbered control: start/stop data transfer, test frame.
    U(UFunction),
}

impl Format {
    /// `i`, `s` or `u`, for events.
    pub fn letter(self) -> &'static str {
        match self {
            Format::I { .. } => "i",
            Format::S { .. } => "s",
            Format::U(_) => "u",
        }
    }
}

/// How long the APDU at the start of `head` is, from its start and length octets.
pub fn frame(head: &[u8]) -> Framing {
    let Some(&start) = head.first() else {
        return Framing::NeedMore(2);
    };
    if start != START {
        return Framing::Invalid(malformed("start byte is not 0x68"));
    }
    let Some(&length) = head.get(1) else {
        return Framing::NeedMore(2);
    };
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
        return Framing::Invalid(malformed("APDU length out of range (4-253)"));
    }
    Framing::Length(2 + usize::from(length))
}

/// What a stream remembers between APDUs of one direction: the send sequence number
/// the next I-frame must carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session {
    next_send: u16,
}

impl Session {
    /// One framed APDU of the stream (see `stream.rs`).
    pub fn message<'s>(
        &mut self,
        bytes: &'s [u8],
        total: usize,
        dir: Dir,
        _scratch: &'s mut [u8],
    ) -> Option<Result<crate::Message<'s>, Malformed>> {
        let parsed = parse(bytes, total, dir);
        // Every I-frame moves the sender's count on, even one whose ASDU is malformed;
        // after a gap the count follows the sender again, so one lost or injected frame
        // is reported once.
        if let Some(send) = i_send(bytes) {
            let expected = self.next_send;
            self.next_send = (send + 1) & SEQ_MASK;
            if parsed.is_ok() && send != expected {
                return Some(Err(malformed("send sequence number out of order")));
            }
        }
        Some(parsed.map(crate::Message::Iec104))
    }

    /// Nothing is ever half assembled.
    pub fn is_idle(&self) -> bool {
        true
    }
}

/// The send sequence number of an I-frame (whatever else is wrong with it).
fn i_send(bytes: &[u8]) -> Option<u16> {
    match bytes.get(2..4) {
        Some(&[lo, hi]) if lo & 1 == 0 => Some(u16::from_le_bytes([lo, hi]) >> 1),
        _ => None,
    }
}

/// A checked IEC-104 APDU: the APCI and, in an I-frame, the ASDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Apdu<'a> {
    bytes: &'a [u8],
    dir: Dir,
    format: Format,
}

/// Parses one APDU. `total` must equal `bytes.len()` (APDUs always fit the stream
/// buffer); anything else is malformed.
pub fn parse(bytes: &[u8], total: usize, dir: Dir) -> Result<Apdu<'_>, Malformed> {
    if bytes.len() != total {
        return Err(malformed("truncated APDU"));
    }
    match frame(bytes) {
        Framing::Length(n) if n == bytes.len() => {}
        Framing::Invalid(e) => return Err(e),
        _ => return Err(malformed("APDU length disagrees with its length octet")),
    }
    let c = [bytes[2], bytes[3], bytes[4], bytes[5]];
    let recv = u16::from_le_bytes([c[2], c[3]]) >> 1;
    let format = if c[0] & 0x01 == 0 {
        if c[2] & 0x01 != 0 {
            return Err(malformed("reserved bit of control octet 3 is set"));
        }
        if bytes.len() == APCI_LEN {
            return Err(malformed("I-frame without an ASDU"));
        }
        check_asdu(&bytes[APCI_LEN..])?;
        Format::I {
            send: u16::from_le_bytes([c[0], c[1]]) >> 1,
            recv,
        }
    } else if c[0] & 0x03 == 0x01 {
        if c[0] != 0x01 || c[1] != 0 || c[2] & 0x01 != 0 {
            return Err(malformed("S-frame control field has reserved bits set"));
        }
        if bytes.len() != APCI_LEN {
            return Err(malformed("S-frame carries an ASDU"));
        }
        Format::S { recv }
    } else {
        let function = UFunction::from(c[0]);
        if let UFunction::Unknown(_) = function {
            return Err(malformed("U-frame does not set exactly one function bit"));
        }
        if c[1..] != [0, 0, 0] {
            return Err(malformed("U-frame control field has reserved bits set"));
        }
        if bytes.len() != APCI_LEN {
            return Err(malformed("U-frame carries an ASDU"));
        }
        Format::U(function)
    };
    Ok(Apdu { bytes, dir, format })
}

fn le24(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], 0])
}

/// Checks an ASDU (everything after the APCI) against its type's layout.
fn check_asdu(asdu: &[u8]) -> Result<(), Malformed> {
    if asdu.len() < ASDU_HEADER_LEN {
        return Err(malformed("ASDU header truncated"));
    }
    let type_id = TypeId::from(asdu[0]);
    let sequence = asdu[1] & 0x80 != 0;
    let count = usize::from(asdu[1] & 0x7f);
    let body = &asdu[ASDU_HEADER_LEN..];
    if count == 0 {
        if !body.is_empty() {
            return Err(malformed("ASDU without objects carries data"));
        }
        return Ok(());
    }
    if type_id.single_object() && (sequence || count != 1) {
        return Err(malformed("type carries exactly one information object"));
    }
    let fits = match type_id.layout() {
        Layout::Fixed(size) => {
            let size = usize::from(size);
            let expected = if sequence {
                IOA_LEN + count * size
            } else {
                count * (IOA_LEN + size)
            };
            body.len() == expected
        }
        Layout::Segment => {
            // Address, name of file, name of section, length of segment, segment.
            if body.len() < IOA_LEN + 4 {
                return Err(malformed("file segment truncated"));
            }
            if body.len() != IOA_LEN + 4 + usize::from(body[IOA_LEN + 3]) {
                return Err(malformed("segment length disagrees with the ASDU length"));
            }
            true
        }
        Layout::Unknown if sequence => {
            body.len() >= IOA_LEN && (body.len() - IOA_LEN).is_multiple_of(count)
        }
        Layout::Unknown => body.len() >= count * IOA_LEN,
    };
    if !fits {
        return Err(malformed(
            "ASDU length disagrees with its type and object count",
        ));
    }
    if sequence && le24(body) + (count as u32 - 1) > MAX_IOA {
        return Err(malformed("object addresses run past 16777215"));
    }
    use TypeId as T;
    match type_id {
        T::CDcNa1 | T::CDcTa1 if !matches!(body[IOA_LEN] & 0x03, 1 | 2) => {
            Err(malformed("double command state not permitted (0 or 3)"))
        }
        T::CRcNa1 | T::CRcTa1 if !matches!(body[IOA_LEN] & 0x03, 1 | 2) => {
            Err(malformed("regulating step state not permitted (0 or 3)"))
        }
        _ => Ok(()),
    }
}

impl<'a> Apdu<'a> {
    pub fn format(&self) -> Format {
        self.format
    }

    pub fn dir(&self) -> Dir {
        self.dir
    }

    /// The ASDU of an I-frame.
    pub fn asdu(&self) -> Option<Asdu<'a>> {
        match self.format {
            Format::I { .. } => Some(Asdu {
                bytes: &self.bytes[APCI_LEN..],
            }),
            _ => None,
        }
    }

    /// The whole APDU as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether the APDU asks the receiver to do something. Everything the controlling
    /// station (the initiator) sends in an I-frame is judged: a controlled station acts
    /// on what it receives. From the controlled station, only an ASDU of a
    /// control-direction type (45-69, 100-119) with cause request, activation or
    /// deactivation asks for something (a command in the reverse direction, judged with
    /// the roles swapped); monitoring data, confirmations and terminations answer.
    /// S- and U-frames are link management: checked for shape, never judged.
    pub fn is_request(&self) -> bool {
        let Some(asdu) = self.asdu() else {
            return false;
        };
        match self.dir {
            Dir::Request => true,
            Dir::Response => {
                control_direction(asdu.type_code())
                    && matches!(
                        asdu.cause(),
                        Cause::Request | Cause::Activation | Cause::Deactivation
                    )
            }
        }
    }

    pub fn op(&self) -> Op {
        Op {
            format: self.format,
            asdu: self.asdu().map(|a| a.op()),
            response: self.dir == Dir::Response,
        }
    }
}

/// A checked ASDU: header and information objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asdu<'a> {
    /// From the type identification to the end; checked by `check_asdu`.
    bytes: &'a [u8],
}

impl<'a> Asdu<'a> {
    pub fn type_code(&self) -> u8 {
        self.bytes[0]
    }

    pub fn type_id(&self) -> TypeId {
        TypeId::from(self.bytes[0])
    }

    /// SQ = 1: one address, then a sequence of elements.
    pub fn sequence(&self) -> bool {
        self.bytes[1] & 0x80 != 0
    }

    /// The number of information objects (or elements, with SQ = 1).
    pub fn count(&self) -> u8 {
        self.bytes[1] & 0x7f
    }

    pub fn cause_code(&self) -> u8 {
        self.bytes[2] & 0x3f
    }

    pub fn cause(&self) -> Cause {
        Cause::from(self.cause_code())
    }

    /// The P/N bit: a negative confirmation.
    pub fn negative(&self) -> bool {
        self.bytes[2] & 0x40 != 0
    }

    /// The T bit: a test, not to be acted on.
    pub fn test(&self) -> bool {
        self.bytes[2] & 0x80 != 0
    }

    pub fn originator(&self) -> u8 {
        self.bytes[3]
    }

    /// The common address of the ASDU (the station; 65535 is the global address).
    pub fn common_address(&self) -> u16 {
        u16::from_le_bytes([self.bytes[4], self.bytes[5]])
    }

    fn body(&self) -> &'a [u8] {
        &self.bytes[ASDU_HEADER_LEN..]
    }

    /// The address of the first information object.
    pub fn ioa(&self) -> Option<u32> {
        let body = self.body();
        (self.count() > 0 && body.len() >= IOA_LEN).then(|| le24(body))
    }

    /// The information objects, when the type's layout is known.
    pub fn objects(&self) -> Option<Objects<'a>> {
        let size = match self.type_id().layout() {
            Layout::Fixed(size) => usize::from(size),
            Layout::Segment => self.body().len().saturating_sub(IOA_LEN),
            Layout::Unknown => return None,
        };
        Some(Objects {
            body: self.body(),
            size,
            sequence: self.sequence(),
            left: self.count(),
            index: 0,
        })
    }

    /// The ranges of information object addresses the ASDU touches (inclusive), or
    /// `None` when they cannot be known (a type without a definition here, with several
    /// objects and SQ = 0). A station command addressed to IOA 0 ("irrelevant") touches
    /// none.
    pub fn addresses(&self) -> Option<Addresses<'a>> {
        let count = u32::from(self.count());
        let first = self.ioa();
        let inner = match first {
            None => AddressesInner::Done,
            Some(0) if self.type_id().station_command() => AddressesInner::Done,
            Some(ioa) if self.sequence() => AddressesInner::Range(ioa, ioa + count - 1),
            Some(ioa) if count == 1 => AddressesInner::Range(ioa, ioa),
            Some(_) => AddressesInner::Each(self.objects()?),
        };
        Some(Addresses(inner))
    }

    /// For commands with a select/execute bit (single, double, regulating step,
    /// setpoints): whether the first object selects (true) or executes (false).
    pub fn select(&self) -> Option<bool> {
        use TypeId as T;
        let offset = match self.type_id() {
            T::CScNa1 | T::CDcNa1 | T::CRcNa1 | T::CScTa1 | T::CDcTa1 | T::CRcTa1 => 0,
            T::CSeNa1 | T::CSeNb1 | T::CSeTa1 | T::CSeTb1 => 2,
            T::CSeNc1 | T::CSeTc1 => 4,
            _ => return None,
        };
        let element = self.objects()?.next()?.element;
        element.get(offset).map(|b| b & 0x80 != 0)
    }

    pub fn op(&self) -> AsduOp {
        AsduOp {
            type_id: self.type_code(),
            cause: self.cause_code(),
            negative: self.negative(),
            test: self.test(),
            originator: self.originator(),
            common_address: self.common_address(),
            objects: self.count(),
            sequence: self.sequence(),
            ioa: self.ioa(),
            select: self.select(),
        }
    }
}

/// One information object: its address and its element octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object<'a> {
    pub ioa: u32,
    pub element: &'a [u8],
}

/// The information objects of a checked ASDU.
#[derive(Debug, Clone)]
pub struct Objects<'a> {
    body: &'a [u8],
    size: usize,
    sequence: bool,
    left: u8,
    index: u32,
}

impl<'a> Iterator for Objects<'a> {
    type Item = Object<'a>;

    fn next(&mut self) -> Option<Object<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let object = if self.sequence {
            let ioa = le24(self.body.get(..IOA_LEN)?) + self.index;
            let at = IOA_LEN + self.index as usize * self.size;
            Object {
                ioa,
                element: self.body.get(at..at + self.size)?,
            }
        } else {
            let at = self.index as usize * (IOA_LEN + self.size);
            let object = self.body.get(at..at + IOA_LEN + self.size)?;
            Object {
                ioa: le24(object),
                element: &object[IOA_LEN..],
            }
        };
        self.index += 1;
        Some(object)
    }
}

/// Inclusive ranges of information object addresses.
#[derive(Debug, Clone)]
pub struct Addresses<'a>(AddressesInner<'a>);

#[derive(Debug, Clone)]
enum AddressesInner<'a> {
    Done,
    Range(u32, u32),
    Each(Objects<'a>),
}

impl Iterator for Addresses<'_> {
    type Item = (u32, u32);

    fn next(&mut self) -> Option<(u32, u32)> {
        match &mut self.0 {
            AddressesInner::Done => None,
            AddressesInner::Range(lo, hi) => {
                let r = (*lo, *hi);
                self.0 = AddressesInner::Done;
                Some(r)
            }
            AddressesInner::Each(objects) => objects.next().map(|o| (o.ioa, o.ioa)),
        }
    }
}

/// What an IEC-104 APDU was, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub format: Format,
    /// The ASDU of an I-frame.
    pub asdu: Option<AsduOp>,
    /// Sent by the controlled station (the responder).
    pub response: bool,
}

/// The ASDU fields events carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsduOp {
    pub type_id: u8,
    /// The six-bit cause.
    pub cause: u8,
    pub negative: bool,
    pub test: bool,
    pub originator: u8,
    pub common_address: u16,
    pub objects: u8,
    pub sequence: bool,
    /// The first information object address.
    pub ioa: Option<u32>,
    /// Select (true) or execute (false), for commands that have the bit.
    pub select: Option<bool>,
}

impl Op {
    pub fn describe(&self, out: &mut dyn Fields) {
        out.text("frame", self.format.letter());
        match self.format {
            Format::U(f) => code_field(out, "function", f.name(), u8::from(f).into()),
            Format::S { recv } => out.number("recv_seq", recv.into()),
            Format::I { .. } => {}
        }
        if let Some(a) = &self.asdu {
            let t = TypeId::from(a.type_id);
            code_field(out, "type", t.name(), a.type_id.into());
            code_field(out, "cause", Cause::from(a.cause).name(), a.cause.into());
            out.number("common_address", a.common_address.into());
            if let Some(ioa) = a.ioa {
                out.number("ioa", ioa.into());
            }
            out.number("objects", a.objects.into());
            if let Some(select) = a.select {
                out.text("command", if select { "select" } else { "execute" });
            }
            if a.originator != 0 {
                out.number("originator", a.originator.into());
            }
            // Flags appear only when set (JSON carries them as `true`).
            for (key, set) in [
                ("sequence", a.sequence),
                ("negative", a.negative),
                ("test", a.test),
            ] {
                if set {
                    out.flag(key, true);
                }
            }
        }
        if self.response {
            out.flag("response", true);
        }
    }
}

/// An APDU as values, to build frames (tests, fuzz seeds, the benchmark).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApduRepr<'v> {
    I {
        send: u16,
        recv: u16,
        asdu: AsduRepr<'v>,
    },
    S {
        recv: u16,
    },
    U(UFunction),
}

/// An ASDU as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsduRepr<'v> {
    pub type_id: TypeId,
    pub cause: Cause,
    pub negative: bool,
    pub test: bool,
    pub originator: u8,
    pub common_address: u16,
    pub objects: ObjectsRepr<'v>,
}

/// The information objects of an ASDU as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectsRepr<'v> {
    /// SQ = 0: each object with its address and element octets.
    Each(&'v [(u32, &'v [u8])]),
    /// SQ = 1: the first address and `count` elements of equal size, back to back.
    Sequence {
        ioa: u32,
        count: u8,
        elements: &'v [u8],
    },
}

impl<'v> AsduRepr<'v> {
    /// One object (SQ = 0) from the controlling station: originator 0, no flags.
    pub fn single(
        type_id: TypeId,
        cause: Cause,
        common_address: u16,
        objects: &'v [(u32, &'v [u8])],
    ) -> Self {
        AsduRepr {
            type_id,
            cause,
            negative: false,
            test: false,
            originator: 0,
            common_address,
            objects: ObjectsRepr::Each(objects),
        }
    }
}

impl ApduRepr<'_> {
    /// Writes the APDU into `out` and returns its length; `None` when it does not fit
    /// `out`, the APDU would exceed 255 octets, or a field is out of its range
    /// (sequence numbers above 32767, more than 127 objects, an address above 2^24-1).
    /// The elements are written as given, not checked against the type: tests build
    /// malformed ASDUs with it too.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let mut n = APCI_LEN;
        let mut put = |bytes: &[u8], out: &mut [u8]| -> Option<()> {
            if n + bytes.len() > MAX_APDU {
                return None;
            }
            out.get_mut(n..n + bytes.len())?.copy_from_slice(bytes);
            n += bytes.len();
            Some(())
        };
        let control = match self {
            ApduRepr::I { send, recv, asdu } => {
                if *send > SEQ_MASK || *recv > SEQ_MASK {
                    return None;
                }
                let (count, sequence) = match &asdu.objects {
                    ObjectsRepr::Each(objects) => (u8::try_from(objects.len()).ok()?, false),
                    ObjectsRepr::Sequence { count, .. } => (*count, true),
                };
                if count > MAX_OBJECTS {
                    return None;
                }
                let cot = u8::from(asdu.cause) & 0x3f
                    | if asdu.negative { 0x40 } else { 0 }
                    | if asdu.test { 0x80 } else { 0 };
                let ca = asdu.common_address.to_le_bytes();
                let vsq = count | if sequence { 0x80 } else { 0 };
                put(
                    &[
                        u8::from(asdu.type_id),
                        vsq,
                        cot,
                        asdu.originator,
                        ca[0],
                        ca[1],
                    ],
                    out,
                )?;
                let ioa =
                    |a: u32| (a <= MAX_IOA).then_some([a as u8, (a >> 8) as u8, (a >> 16) as u8]);
                match &asdu.objects {
                    ObjectsRepr::Each(objects) => {
                        for (address, element) in objects.iter() {
                            put(&ioa(*address)?, out)?;
                            put(element, out)?;
                        }
                    }
                    ObjectsRepr::Sequence {
                        ioa: a, elements, ..
                    } => {
                        put(&ioa(*a)?, out)?;
                        put(elements, out)?;
                    }
                }
                let s = (send << 1).to_le_bytes();
                let r = (recv << 1).to_le_bytes();
                [s[0], s[1], r[0], r[1]]
            }
            ApduRepr::S { recv } => {
                if *recv > SEQ_MASK {
                    return None;
                }
                let r = (recv << 1).to_le_bytes();
                [0x01, 0, r[0], r[1]]
            }
            ApduRepr::U(f) => [u8::from(*f), 0, 0, 0],
        };
        let head = out.get_mut(..APCI_LEN)?;
        head[0] = START;
        head[1] = (n - 2) as u8;
        head[2..].copy_from_slice(&control);
        Some(n)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::I { send, recv } => write!(f, "I(send {send}, recv {recv})"),
            Format::S { recv } => write!(f, "S(recv {recv})"),
            Format::U(function) => write!(f, "U({function})"),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::vec::Vec;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn req(bytes: &[u8]) -> Result<Apdu<'_>, Malformed> {
        parse(bytes, bytes.len(), Dir::Request)
    }

    fn resp(bytes: &[u8]) -> Result<Apdu<'_>, Malformed> {
        parse(bytes, bytes.len(), Dir::Response)
    }

    fn what(r: Result<Apdu<'_>, Malformed>) -> &'static str {
        r.map(|_| "ok").unwrap_or_else(|e| e.what)
    }

    #[test]
    fn framing_from_the_start_and_length_octets() {
        assert_eq!(frame(&[]), Framing::NeedMore(2));
        assert_eq!(frame(&[0x68]), Framing::NeedMore(2));
        assert_eq!(frame(&[0x68, 0x04]), Framing::Length(6));
        assert_eq!(frame(&[0x68, 0xfd]), Framing::Length(MAX_APDU));
        assert!(matches!(frame(&[0x69]), Framing::Invalid(_)));
        assert!(matches!(frame(&[0x68, 0x03]), Framing::Invalid(_)));
        assert!(matches!(frame(&[0x68, 0xfe]), Framing::Invalid(_)));
    }

    #[test]
    fn u_and_s_frames() {
        // IEC 60870-5-104 5.3: STARTDT act 68 04 07 00 00 00, con 68 04 0B 00 00 00,
        // TESTFR act 68 04 43 00 00 00, STOPDT con 68 04 23 00 00 00.
        for (b, f) in [
            (0x07, UFunction::StartDtAct),
            (0x0b, UFunction::StartDtCon),
            (0x13, UFunction::StopDtAct),
            (0x23, UFunction::StopDtCon),
            (0x43, UFunction::TestFrAct),
            (0x83, UFunction::TestFrCon),
        ] {
            let bytes = [0x68, 4, b, 0, 0, 0];
            let a = req(&bytes).unwrap();
            assert_eq!(a.format(), Format::U(f));
            assert!(!a.is_request(), "link management is not judged");
            assert!(a.asdu().is_none());
        }
        // Two function bits, reserved bits, an ASDU behind a U-frame.
        assert_eq!(
            what(req(&[0x68, 4, 0x0f, 0, 0, 0])),
            "U-frame does not set exactly one function bit"
        );
        assert_eq!(
            what(req(&[0x68, 4, 0x03, 0, 0, 0])),
            "U-frame does not set exactly one function bit"
        );
        assert_eq!(
            what(req(&[0x68, 4, 0x07, 0, 1, 0])),
            "U-frame control field has reserved bits set"
        );
        assert_eq!(
            what(req(&[0x68, 5, 0x07, 0, 0, 0, 0])),
            "U-frame carries an ASDU"
        );
        // S-frame acknowledging up to N(R) = 5: 68 04 01 00 0A 00.
        let s = resp(&[0x68, 4, 0x01, 0, 0x0a, 0]).unwrap();
        assert_eq!(s.format(), Format::S { recv: 5 });
        assert!(!s.is_request());
        assert_eq!(
            what(req(&[0x68, 4, 0x05, 0, 0x0a, 0])),
            "S-frame control field has reserved bits set"
        );
        assert_eq!(
            what(req(&[0x68, 4, 0x01, 0, 0x0b, 0])),
            "S-frame control field has reserved bits set"
        );
    }

    /// General interrogation from the controlling station, common address 1:
    /// I(0,0) C_IC_NA_1, SQ=0 1 object, COT activation, OA 0, CA 1, IOA 0, QOI 20.
    const GI: &str = "68 0e 00 00 00 00 64 01 06 00 01 00 00 00 00 14";

    #[test]
    fn general_interrogation_and_its_answers() {
        let b = hex(GI);
        let a = req(&b).unwrap();
        assert_eq!(a.format(), Format::I { send: 0, recv: 0 });
        assert!(a.is_request());
        let asdu = a.asdu().unwrap();
        assert_eq!(asdu.type_id(), TypeId::CIcNa1);
        assert_eq!(asdu.cause(), Cause::Activation);
        assert_eq!(asdu.common_address(), 1);
        assert_eq!((asdu.count(), asdu.ioa()), (1, Some(0)));
        assert_eq!(asdu.addresses().unwrap().count(), 0, "IOA 0 is irrelevant");
        // The confirmation (cause 7) and termination (10) from the controlled station.
        let con = hex("68 0e 00 00 02 00 64 01 07 00 01 00 00 00 00 14");
        assert!(!resp(&con).unwrap().is_request());
        let term = hex("68 0e 02 00 02 00 64 01 0a 00 01 00 00 00 00 14");
        assert!(!resp(&term).unwrap().is_request());
        // Interrogated data: M_SP_NA_1, SQ=1, 3 elements from IOA 100, cause 20.
        let sp = hex("68 10 04 00 02 00 01 83 14 00 01 00 64 00 00 01 00 01");
        let a = resp(&sp).unwrap();
        assert!(!a.is_request());
        let asdu = a.asdu().unwrap();
        assert_eq!(asdu.cause(), Cause::InterrogatedByStation);
        assert_eq!(asdu.addresses().unwrap().collect::<Vec<_>>(), [(100, 102)]);
        let objects: Vec<_> = asdu.objects().unwrap().collect();
        assert_eq!(objects.len(), 3);
        assert_eq!((objects[2].ioa, objects[2].element), (102, &[1u8][..]));
        // M_ME_NC_1, SQ=0, two floats with quality: 4+1 octets after each address.
        let me = hex("68 1a 06 00 02 00 0d 02 03 00 01 00 \
             e8 03 00 00 00 20 41 00 e9 03 00 00 00 a0 40 10");
        let asdu = resp(&me).unwrap().asdu().unwrap();
        assert_eq!(asdu.cause(), Cause::Spontaneous);
        assert_eq!(
            asdu.addresses().unwrap().collect::<Vec<_>>(),
            [(1000, 1000), (1001, 1001)]
        );
    }

    #[test]
    fn commands_with_select_and_execute() {
        // C_SC_NA_1 to IOA 5000 (88 13 00), SCO 0x81 = select ON, then 0x01 = execute ON.
        let select = hex("68 0e 02 00 02 00 2d 01 06 00 01 00 88 13 00 81");
        let a = req(&select).unwrap();
        assert!(a.is_request());
        let op = a.op();
        let asdu = op.asdu.unwrap();
        assert_eq!(
            (asdu.type_id, asdu.ioa, asdu.select),
            (45, Some(5000), Some(true))
        );
        assert_eq!(
            std::format!("{}", crate::Op::Iec104(op)),
            "iec104 frame=i type=c-sc-na-1 cause=activation common_address=1 ioa=5000 \
             objects=1 command=select"
        );
        let execute = hex("68 0e 04 00 02 00 2d 01 06 00 01 00 88 13 00 01");
        assert_eq!(req(&execute).unwrap().asdu().unwrap().select(), Some(false));
        // C_SE_NC_1: float 1.5 (00 00 c0 3f) and QOS 0x00 (execute).
        let setpoint = hex("68 12 00 00 00 00 32 01 06 00 01 00 10 27 00 00 00 c0 3f 00");
        let asdu = req(&setpoint).unwrap().asdu().unwrap();
        assert_eq!((asdu.ioa(), asdu.select()), (Some(10000), Some(false)));
        // C_DC_NA_1 with the state 0 or 3 is not permitted; 1 and 2 are.
        let dc = |dco: u8| {
            let mut b = hex("68 0e 00 00 00 00 2e 01 06 00 01 00 01 00 00 00");
            b[15] = dco;
            b
        };
        assert_eq!(what(req(&dc(0x02))), "ok");
        assert_eq!(
            what(req(&dc(0x03))),
            "double command state not permitted (0 or 3)"
        );
        assert_eq!(
            what(req(&dc(0x80))),
            "double command state not permitted (0 or 3)"
        );
        // A command with two objects, or as a sequence.
        let two = hex("68 12 00 00 00 00 2d 02 06 00 01 00 88 13 00 01 89 13 00 01");
        assert_eq!(
            what(req(&two)),
            "type carries exactly one information object"
        );
        let seq = hex("68 0e 00 00 00 00 2d 81 06 00 01 00 88 13 00 01");
        assert_eq!(
            what(req(&seq)),
            "type carries exactly one information object"
        );
        // C_CS_NA_1 clock synchronisation, CP56Time2a of 7 octets.
        let cs = hex("68 14 00 00 00 00 67 01 06 00 01 00 00 00 00 00 00 00 0c 01 01 18");
        let asdu = req(&cs).unwrap().asdu().unwrap();
        assert_eq!(asdu.type_id(), TypeId::CCsNa1);
        assert_eq!(asdu.addresses().unwrap().count(), 0);
    }

    #[test]
    fn direction_decides_what_asks() {
        // The same single command activation, sent by the controlled station: a
        // command in the reverse direction, judged with the roles swapped.
        let cmd = hex("68 0e 00 00 00 00 2d 01 06 00 01 00 88 13 00 01");
        assert!(resp(&cmd).unwrap().is_request());
        // Its confirmation is not.
        let con = hex("68 0e 00 00 02 00 2d 01 07 00 01 00 88 13 00 01");
        assert!(!resp(&con).unwrap().is_request());
        assert!(
            req(&con).unwrap().is_request(),
            "the initiator's I-frames are all judged"
        );
        // Monitoring data from the controlling station is judged too.
        let sp = hex("68 0e 00 00 00 00 01 01 03 00 01 00 01 00 00 01");
        assert!(req(&sp).unwrap().is_request());
        assert!(!resp(&sp).unwrap().is_request());
        // A private type from the controlled station is data.
        let private = hex("68 0e 00 00 00 00 88 01 06 00 01 00 01 00 00 01");
        assert!(!resp(&private).unwrap().is_request());
    }

    #[test]
    fn lengths_must_agree_with_the_type() {
        // M_ME_NC_1 with one octet missing, and one too many.
        let short = hex("68 11 00 00 00 00 0d 01 03 00 01 00 e8 03 00 00 00 20 41");
        assert_eq!(
            what(resp(&short)),
            "ASDU length disagrees with its type and object count"
        );
        let long = hex("68 13 00 00 00 00 0d 01 03 00 01 00 e8 03 00 00 00 20 41 00 00");
        assert_eq!(
            what(resp(&long)),
            "ASDU length disagrees with its type and object count"
        );
        assert_eq!(
            what(req(&hex("68 04 00 00 00 00"))),
            "I-frame without an ASDU"
        );
        assert_eq!(
            what(req(&hex("68 07 00 00 00 00 64 01 06"))),
            "ASDU header truncated"
        );
        assert_eq!(
            what(req(&hex("68 0e 00 00 01 00 64 01 06 00 01 00 00 00 00 14"))),
            "reserved bit of control octet 3 is set"
        );
        // No objects, and no data: accepted (the standard allows 0 objects).
        assert_eq!(what(req(&hex("68 0a 00 00 00 00 64 00 06 00 01 00"))), "ok");
        assert_eq!(
            what(req(&hex("68 0b 00 00 00 00 64 00 06 00 01 00 00"))),
            "ASDU without objects carries data"
        );
        // A sequence running past the last address.
        let past = hex("68 0f 00 00 00 00 01 82 03 00 01 00 ff ff ff 01 01");
        assert_eq!(what(resp(&past)), "object addresses run past 16777215");
        // The APDU shorter than its length octet says (the stream never does this).
        let b = hex(GI);
        assert_eq!(
            what(parse(&b[..10], b.len(), Dir::Request)),
            "truncated APDU"
        );
        assert_eq!(
            what(parse(&b[..10], 10, Dir::Request)),
            "APDU length disagrees with its length octet"
        );
    }

    #[test]
    fn file_segments_and_unknown_types() {
        // F_SG_NA_1: IOA 1, NOF 1, NOS 1, LOS 3, three octets.
        let sg = hex("68 14 00 00 00 00 7d 01 0d 00 01 00 01 00 00 01 00 01 03 aa bb cc");
        let asdu = req(&sg).unwrap().asdu().unwrap();
        assert_eq!(asdu.objects().unwrap().next().unwrap().element.len(), 7);
        let bad = hex("68 13 00 00 00 00 7d 01 0d 00 01 00 01 00 00 01 00 01 03 aa bb");
        assert_eq!(
            what(req(&bad)),
            "segment length disagrees with the ASDU length"
        );
        // An unknown type with one object: its address is known.
        let one = hex("68 0f 00 00 00 00 29 01 03 00 01 00 0a 00 00 01 02");
        let asdu = req(&one).unwrap().asdu().unwrap();
        assert_eq!(asdu.type_id(), TypeId::Unknown(41));
        assert!(asdu.objects().is_none());
        assert_eq!(asdu.addresses().unwrap().collect::<Vec<_>>(), [(10, 10)]);
        // Several objects with SQ = 0: the addresses cannot be known.
        let two = hex("68 10 00 00 00 00 29 02 03 00 01 00 0a 00 00 0b 00 00");
        assert!(req(&two).unwrap().asdu().unwrap().addresses().is_none());
        // Less than an address per object.
        let short = hex("68 0f 00 00 00 00 29 02 03 00 01 00 0a 00 00 0b 00");
        assert_eq!(
            what(req(&short)),
            "ASDU length disagrees with its type and object count"
        );
        // A sequence of 3 elements of an unknown type: 3 + 3k octets after the header.
        let seq = hex("68 13 00 00 00 00 29 83 03 00 01 00 0a 00 00 01 02 03 04 05 06");
        let asdu = req(&seq).unwrap().asdu().unwrap();
        assert_eq!(asdu.addresses().unwrap().collect::<Vec<_>>(), [(10, 12)]);
        let uneven = hex("68 12 00 00 00 00 29 83 03 00 01 00 0a 00 00 01 02 03 04 05");
        assert!(req(&uneven).is_err());
    }

    #[test]
    fn sessions_check_send_sequence_numbers() {
        let mut s = Session::default();
        let mut scratch = [0u8; 0];
        let frame = |send: u16| {
            let mut out = [0u8; MAX_APDU];
            let n = ApduRepr::I {
                send,
                recv: 0,
                asdu: AsduRepr::single(TypeId::CIcNa1, Cause::Activation, 1, &[(0, &[20])]),
            }
            .emit(&mut out)
            .unwrap();
            out[..n].to_vec()
        };
        let mut feed = |s: &mut Session, bytes: &[u8]| {
            s.message(bytes, bytes.len(), Dir::Request, &mut scratch)
                .unwrap()
                .map(|_| ())
                .map_err(|e| e.what)
        };
        assert_eq!(feed(&mut s, &frame(0)), Ok(()));
        assert_eq!(
            feed(&mut s, &[0x68, 4, 0x43, 0, 0, 0]),
            Ok(()),
            "U-frames have no number"
        );
        assert_eq!(feed(&mut s, &frame(1)), Ok(()));
        assert_eq!(
            feed(&mut s, &frame(5)),
            Err("send sequence number out of order")
        );
        assert_eq!(
            feed(&mut s, &frame(6)),
            Ok(()),
            "reported once, then followed"
        );
        assert_eq!(
            feed(&mut s, &frame(6)),
            Err("send sequence number out of order"),
            "a replay"
        );
        // The count wraps at 32768.
        let mut s = Session {
            next_send: SEQ_MASK,
        };
        assert_eq!(feed(&mut s, &frame(SEQ_MASK)), Ok(()));
        assert_eq!(feed(&mut s, &frame(0)), Ok(()));
        assert!(s.is_idle());
    }

    #[test]
    fn emit_then_parse() {
        let mut out = [0u8; MAX_APDU];
        let repr = ApduRepr::I {
            send: 7,
            recv: 3,
            asdu: AsduRepr {
                type_id: TypeId::MMeNb1,
                cause: Cause::InterrogatedByStation,
                negative: false,
                test: true,
                originator: 9,
                common_address: 0x1234,
                objects: ObjectsRepr::Sequence {
                    ioa: 0x010203,
                    count: 2,
                    elements: &[1, 2, 0, 3, 4, 0],
                },
            },
        };
        let n = repr.emit(&mut out).unwrap();
        assert_eq!(
            &out[..n],
            &hex("68 13 0e 00 06 00 0b 82 94 09 34 12 03 02 01 01 02 00 03 04 00")[..]
        );
        let a = resp(&out[..n]).unwrap();
        assert_eq!(a.format(), Format::I { send: 7, recv: 3 });
        let asdu = a.asdu().unwrap();
        assert!(asdu.test() && !asdu.negative() && asdu.sequence());
        assert_eq!((asdu.originator(), asdu.common_address()), (9, 0x1234));
        let n = ApduRepr::S { recv: 0x7fff }.emit(&mut out).unwrap();
        assert_eq!(&out[..n], &[0x68, 4, 1, 0, 0xfe, 0xff]);
        assert!(ApduRepr::S { recv: 0x8000 }.emit(&mut out).is_none());
        let n = ApduRepr::U(UFunction::StartDtCon).emit(&mut out).unwrap();
        assert_eq!(&out[..n], &[0x68, 4, 0x0b, 0, 0, 0]);
    }
}
