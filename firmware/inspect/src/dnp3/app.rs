//! The DNP3 application layer: the application header (control, function code, internal
//! indications) and object headers (group, variation, qualifier, range).
//!
//! References: IEEE 1815-2012, the application layer (fragment structure, application
//! control, function codes, internal indications, object headers with their qualifier
//! and range fields) and the object library (the fixed sizes in [`object_size`]).
//!
//! A request is walked header by header: after each header come its objects, whose size
//! follows from the qualifier (index and size prefixes), the function (a read names
//! objects, it carries none) and the object library. When a request carries objects of
//! a size this module does not know (a vendor group, a variable-size object without a
//! size prefix, a function without a definition here), the walk stops there and the
//! rest of the fragment is *opaque*: the message says so ([`super::Message::opaque`]),
//! and the policy only lets such a request through where it allows opaque objects.
//! Responses are answers: their application header and the shape of their first object
//! header are checked, their objects are not walked.

use crate::macros::codes;
use crate::{Malformed, Reader};

use super::P;

codes! {
    /// Application function codes (IEEE 1815-2012).
    pub enum Function(u8) {
        Confirm = 0 => "confirm",
        Read = 1 => "read",
        Write = 2 => "write",
        Select = 3 => "select",
        Operate = 4 => "operate",
        DirectOperate = 5 => "direct-operate",
        DirectOperateNoAck = 6 => "direct-operate-no-ack",
        ImmediateFreeze = 7 => "immediate-freeze",
        ImmediateFreezeNoAck = 8 => "immediate-freeze-no-ack",
        FreezeClear = 9 => "freeze-clear",
        FreezeClearNoAck = 10 => "freeze-clear-no-ack",
        FreezeAtTime = 11 => "freeze-at-time",
        FreezeAtTimeNoAck = 12 => "freeze-at-time-no-ack",
        ColdRestart = 13 => "cold-restart",
        WarmRestart = 14 => "warm-restart",
        InitializeData = 15 => "initialize-data",
        InitializeApplication = 16 => "initialize-application",
        StartApplication = 17 => "start-application",
        StopApplication = 18 => "stop-application",
        SaveConfiguration = 19 => "save-configuration",
        EnableUnsolicited = 20 => "enable-unsolicited",
        DisableUnsolicited = 21 => "disable-unsolicited",
        AssignClass = 22 => "assign-class",
        DelayMeasure = 23 => "delay-measure",
        RecordCurrentTime = 24 => "record-current-time",
        OpenFile = 25 => "open-file",
        CloseFile = 26 => "close-file",
        DeleteFile = 27 => "delete-file",
        GetFileInfo = 28 => "get-file-info",
        AuthenticateFile = 29 => "authenticate-file",
        AbortFile = 30 => "abort-file",
        ActivateConfiguration = 31 => "activate-configuration",
        AuthenticateRequest = 32 => "authenticate-request",
        AuthenticateRequestNoAck = 33 => "authenticate-request-no-ack",
        Response = 129 => "response",
        UnsolicitedResponse = 130 => "unsolicited-response",
        AuthenticateResponse = 131 => "authenticate-response",
    }
}

codes! {
    /// Object groups (the IEEE 1815-2012 object library), by what they hold.
    pub enum Group(u8) {
        DeviceAttributes = 0 => "device-attributes",
        BinaryInput = 1 => "binary-input",
        BinaryInputEvent = 2 => "binary-input-event",
        DoubleBitBinaryInput = 3 => "double-bit-binary-input",
        DoubleBitBinaryInputEvent = 4 => "double-bit-binary-input-event",
        BinaryOutput = 10 => "binary-output",
        BinaryOutputEvent = 11 => "binary-output-event",
        BinaryOutputCommand = 12 => "binary-output-command",
        BinaryOutputCommandEvent = 13 => "binary-output-command-event",
        Counter = 20 => "counter",
        FrozenCounter = 21 => "frozen-counter",
        CounterEvent = 22 => "counter-event",
        FrozenCounterEvent = 23 => "frozen-counter-event",
        AnalogInput = 30 => "analog-input",
        FrozenAnalogInput = 31 => "frozen-analog-input",
        AnalogInputEvent = 32 => "analog-input-event",
        FrozenAnalogInputEvent = 33 => "frozen-analog-input-event",
        AnalogInputDeadband = 34 => "analog-input-deadband",
        AnalogOutputStatus = 40 => "analog-output-status",
        AnalogOutput = 41 => "analog-output",
        AnalogOutputEvent = 42 => "analog-output-event",
        AnalogOutputCommandEvent = 43 => "analog-output-command-event",
        TimeAndDate = 50 => "time-and-date",
        CommonTimeOfOccurrence = 51 => "common-time-of-occurrence",
        TimeDelay = 52 => "time-delay",
        ClassData = 60 => "class-data",
        FileControl = 70 => "file-control",
        InternalIndications = 80 => "internal-indications",
        ApplicationIdentifier = 90 => "application-identifier",
        StatusOfRequestedOperation = 91 => "status-of-requested-operation",
        OctetString = 110 => "octet-string",
        OctetStringEvent = 111 => "octet-string-event",
        VirtualTerminalOutput = 112 => "virtual-terminal-output",
        VirtualTerminalEvent = 113 => "virtual-terminal-event",
        Authentication = 120 => "authentication",
        SecurityStatistic = 121 => "security-statistic",
        SecurityStatisticEvent = 122 => "security-statistic-event",
    }
}

impl Group {
    /// Whether the group's objects are points with indices (inputs, outputs, counters,
    /// strings …) rather than classes, times, files, IIN bits, attributes or
    /// authentication objects.
    pub fn has_points(self) -> bool {
        use Group as G;
        !matches!(
            self,
            G::DeviceAttributes
                | G::TimeAndDate
                | G::CommonTimeOfOccurrence
                | G::TimeDelay
                | G::ClassData
                | G::FileControl
                | G::InternalIndications
                | G::ApplicationIdentifier
                | G::StatusOfRequestedOperation
                | G::Authentication
        )
    }
}

impl Function {
    /// Responses carry internal indications after the function code.
    pub fn is_response(self) -> bool {
        matches!(
            self,
            Function::Response | Function::UnsolicitedResponse | Function::AuthenticateResponse
        )
    }

    /// What the objects after each header of a request of this function are.
    fn carries(self) -> Carries {
        use Function as F;
        match self {
            F::Read
            | F::ImmediateFreeze
            | F::ImmediateFreezeNoAck
            | F::FreezeClear
            | F::FreezeClearNoAck
            | F::ColdRestart
            | F::WarmRestart
            | F::InitializeData
            | F::InitializeApplication
            | F::StartApplication
            | F::StopApplication
            | F::SaveConfiguration
            | F::EnableUnsolicited
            | F::DisableUnsolicited
            | F::AssignClass
            | F::DelayMeasure
            | F::RecordCurrentTime => Carries::Nothing,
            F::FreezeAtTime | F::FreezeAtTimeNoAck => Carries::TimeOnly,
            F::Write
            | F::Select
            | F::Operate
            | F::DirectOperate
            | F::DirectOperateNoAck
            | F::OpenFile
            | F::CloseFile
            | F::DeleteFile
            | F::GetFileInfo
            | F::AuthenticateFile
            | F::AbortFile
            | F::ActivateConfiguration
            | F::AuthenticateRequest
            | F::AuthenticateRequestNoAck => Carries::Values,
            F::Confirm
            | F::Response
            | F::UnsolicitedResponse
            | F::AuthenticateResponse
            | F::Unknown(_) => Carries::Unknown,
        }
    }
}

/// What follows an object header in a request, by function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carries {
    /// Headers name objects (reads, freezes, class assignments): no values follow,
    /// only index prefixes and size-prefixed objects.
    Nothing,
    /// Freeze-at-time: the time-and-interval object (group 50) carries its value; the
    /// counters named after it do not.
    TimeOnly,
    /// Values follow each header (writes, controls, file and authentication objects).
    Values,
    /// A function without a definition here.
    Unknown,
}

/// Application control: FIR, FIN, CON, UNS and a 4-bit sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Control(pub u8);

impl Control {
    pub const FIR: u8 = 0x80;
    pub const FIN: u8 = 0x40;
    pub const CON: u8 = 0x20;
    pub const UNS: u8 = 0x10;

    pub fn fir(self) -> bool {
        self.0 & Self::FIR != 0
    }
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn con(self) -> bool {
        self.0 & Self::CON != 0
    }
    pub fn uns(self) -> bool {
        self.0 & Self::UNS != 0
    }
    pub fn seq(self) -> u8 {
        self.0 & 0x0f
    }
}

/// The range field of an object header, as the qualifier's range specifier says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Range {
    /// Codes 0-2 (start and stop indices of 1, 2 or 4 bytes) and the obsolete virtual
    /// address codes 3-5 (read alike).
    StartStop { start: u32, stop: u32 },
    /// Code 6: every object of the group, no range field, no objects.
    All,
    /// Codes 7-9 (a count of 1, 2 or 4 bytes) and 0xB (free format: a 1-byte count of
    /// size-prefixed objects).
    Count(u32),
}

impl Range {
    /// How many objects the header names.
    pub fn count(&self) -> u64 {
        match *self {
            Range::StartStop { start, stop } => u64::from(stop) - u64::from(start) + 1,
            Range::All => 0,
            Range::Count(n) => u64::from(n),
        }
    }
}

/// The size of one object (after its prefix), as far as this module knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// The header names objects; no value follows.
    Nothing,
    /// So many bytes each.
    Fixed(u8),
    /// Packed: so many bits each, the whole rounded up to bytes.
    Bits(u8),
    /// Not known: a variable-size object without a size prefix, or an object or
    /// function without a definition here.
    Unknown,
}

/// The fixed size of an object (group, variation) that carries a value (the IEEE
/// 1815-2012 object library), as it appears in writes, controls and responses.
pub fn object_size(group: u8, variation: u8) -> Size {
    use Size::{Bits, Fixed, Nothing, Unknown};
    match (group, variation) {
        // Packed formats: binary input, binary output, pattern mask, IIN (1 bit),
        // double-bit binary input (2 bits).
        (1, 1) | (10, 1) | (12, 3) | (80, 1) => Bits(1),
        (3, 1) => Bits(2),
        // Binary values with flags; events with absolute or relative time.
        (1, 2) | (2, 1) | (3, 2) | (4, 1) | (10, 2) | (11, 1) | (13, 1) => Fixed(1),
        (2, 2) | (4, 2) | (11, 2) | (13, 2) => Fixed(7),
        (2, 3) | (4, 3) => Fixed(3),
        // Control relay output block and pattern control block.
        (12, 1) | (12, 2) => Fixed(11),
        // Counters (20), frozen counters (21), their events (22, 23).
        (20..=23, 1 | 3) => Fixed(5),
        (20..=23, 2 | 4) => Fixed(3),
        (20, 5 | 7) | (21, 9 | 11) => Fixed(4),
        (20, 6 | 8) | (21, 10 | 12) => Fixed(2),
        (21..=23, 5 | 7) => Fixed(11),
        (21..=23, 6 | 8) => Fixed(9),
        // Analog inputs (30) and frozen analog inputs (31).
        (30, 1) | (30, 5) | (31, 1) | (31, 7) => Fixed(5),
        (30, 2) | (31, 2) => Fixed(3),
        (30, 3) | (31, 5) => Fixed(4),
        (30, 4) | (31, 6) => Fixed(2),
        (30, 6) | (31, 8) => Fixed(9),
        (31, 3) => Fixed(11),
        (31, 4) => Fixed(9),
        // Analog input events (32, 33), analog output events (42), analog command
        // events (43): the same eight layouts.
        (32 | 33 | 42 | 43, 1 | 5) => Fixed(5),
        (32 | 33 | 42 | 43, 2) => Fixed(3),
        (32 | 33 | 42 | 43, 3 | 7) => Fixed(11),
        (32 | 33 | 42 | 43, 4 | 6) => Fixed(9),
        (32 | 33 | 42 | 43, 8) => Fixed(15),
        // Analog input deadbands.
        (34, 1) => Fixed(2),
        (34, 2 | 3) => Fixed(4),
        // Analog output status (40) and analog output blocks (41).
        (40 | 41, 1 | 3) => Fixed(5),
        (40 | 41, 2) => Fixed(3),
        (40 | 41, 4) => Fixed(9),
        // Time and date, common time of occurrence, time delay.
        (50, 1 | 3) | (51, 1 | 2) => Fixed(6),
        (50, 2) => Fixed(10),
        (50, 4) => Fixed(11),
        (52, 1 | 2) => Fixed(2),
        // Class objects name classes; they never carry a value.
        (60, _) => Nothing,
        // Unsigned 8-bit integer.
        (102, 1) => Fixed(1),
        // Octet strings, their events, virtual terminal output and event blocks: the
        // variation is the length.
        (110..=113, v) if v > 0 => Fixed(v),
        // Secure authentication: aggressive mode request, session key status request.
        (120, 3) => Fixed(6),
        (120, 4) => Fixed(2),
        // Security statistics.
        (121, 1) | (122, 1) => Fixed(7),
        (122, 2) => Fixed(13),
        _ => Unknown,
    }
}

/// One object header and the objects after it, inside a checked fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectHeader<'a> {
    pub group: u8,
    pub variation: u8,
    pub qualifier: u8,
    pub range: Range,
    /// The objects with their prefixes; for an opaque header, the rest of the fragment.
    pub objects: &'a [u8],
    /// The size of one object after its prefix (`Unknown` for an opaque header).
    pub size: Size,
    opaque: bool,
}

/// The point indices an object header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indices<'a> {
    /// Start to stop, inclusive.
    Range(u32, u32),
    /// Qualifier 0x06: every point of the group.
    All,
    /// A count without index prefixes: the header names objects, not indices (times,
    /// events "up to N", free-format objects).
    Unnamed,
    /// Index prefixes, one per object.
    Listed(ListedIndices<'a>),
    /// Index prefixes the walk could not follow (an opaque header).
    Unknown,
}

/// The index prefixes of a header, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedIndices<'a> {
    bytes: &'a [u8],
    width: usize,
    stride: usize,
}

impl Iterator for ListedIndices<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let prefix = self.bytes.get(..self.width)?;
        let mut v = [0u8; 4];
        v[..self.width].copy_from_slice(prefix);
        self.bytes = self.bytes.get(self.stride..).unwrap_or(&[]);
        Some(u32::from_le_bytes(v))
    }
}

impl<'a> ObjectHeader<'a> {
    /// Bits 4-6 of the qualifier.
    pub fn prefix_code(&self) -> u8 {
        (self.qualifier >> 4) & 7
    }

    /// Bits 0-3 of the qualifier.
    pub fn range_code(&self) -> u8 {
        self.qualifier & 0x0f
    }

    /// Whether the walk stopped at this header: its objects' size is unknown, and
    /// `objects` holds the rest of the fragment, unread.
    pub fn is_opaque(&self) -> bool {
        self.opaque
    }

    /// The bytes of the index prefix of each object (0 without one).
    pub fn index_width(&self) -> usize {
        match self.prefix_code() {
            1 => 1,
            2 => 2,
            3 => 4,
            _ => 0,
        }
    }

    /// The point indices the header names.
    pub fn indices(&self) -> Indices<'a> {
        let width = self.index_width();
        match self.range {
            Range::StartStop { start, stop } => Indices::Range(start, stop),
            Range::All => Indices::All,
            Range::Count(_) if width == 0 => Indices::Unnamed,
            Range::Count(_) if self.opaque => Indices::Unknown,
            Range::Count(n) => {
                let stride = match self.size {
                    Size::Fixed(s) => width + usize::from(s),
                    _ => width,
                };
                let len = (n as usize).saturating_mul(stride).min(self.objects.len());
                Indices::Listed(ListedIndices {
                    bytes: &self.objects[..len],
                    width,
                    stride,
                })
            }
        }
    }

    /// The first index the header names, if it names any.
    pub fn first_index(&self) -> Option<u32> {
        match self.indices() {
            Indices::Range(start, _) => Some(start),
            Indices::Listed(mut l) => l.next(),
            Indices::All | Indices::Unnamed | Indices::Unknown => None,
        }
    }
}

const TRUNCATED: &str = "object header truncated";

/// Reads an object header (group, variation, qualifier, range), checking its shape.
fn header(r: &mut Reader<'_>) -> Result<(u8, u8, u8, Range), Malformed> {
    let group = r.u8(TRUNCATED)?;
    let variation = r.u8(TRUNCATED)?;
    let qualifier = r.u8(TRUNCATED)?;
    if qualifier & 0x80 != 0 {
        return Err(r.error("reserved qualifier bit set"));
    }
    let prefix = (qualifier >> 4) & 7;
    if prefix == 7 {
        return Err(r.error("reserved object prefix code"));
    }
    let range = match qualifier & 0x0f {
        0 | 3 => Range::StartStop {
            start: r.u8(TRUNCATED)?.into(),
            stop: r.u8(TRUNCATED)?.into(),
        },
        1 | 4 => Range::StartStop {
            start: r.le_u16(TRUNCATED)?.into(),
            stop: r.le_u16(TRUNCATED)?.into(),
        },
        2 | 5 => Range::StartStop {
            start: r.le_u32(TRUNCATED)?,
            stop: r.le_u32(TRUNCATED)?,
        },
        6 => Range::All,
        7 => Range::Count(r.u8(TRUNCATED)?.into()),
        8 => Range::Count(r.le_u16(TRUNCATED)?.into()),
        9 => Range::Count(r.le_u32(TRUNCATED)?),
        0xb => {
            if !(4..=6).contains(&prefix) {
                return Err(r.error("free-format qualifier without a size prefix"));
            }
            Range::Count(r.u8(TRUNCATED)?.into())
        }
        _ => return Err(r.error("reserved range specifier code")),
    };
    if let Range::StartStop { start, stop } = range {
        if start > stop {
            return Err(r.error("range start after stop"));
        }
    }
    Ok((group, variation, qualifier, range))
}

/// Reads one object header of a request of `function` and passes over its objects.
/// When their size is unknown the header is opaque and the reader is left at the end.
fn next_header<'a>(r: &mut Reader<'a>, function: Function) -> Result<ObjectHeader<'a>, Malformed> {
    let (group, variation, qualifier, range) = header(r)?;
    let count = range.count();
    let prefix = (qualifier >> 4) & 7;
    let index_width: u64 = match prefix {
        1 => 1,
        2 => 2,
        3 => 4,
        _ => 0,
    };
    let size_width: u8 = match prefix {
        4 => 1,
        5 => 2,
        6 => 4,
        _ => 0,
    };
    let mut out = ObjectHeader {
        group,
        variation,
        qualifier,
        range,
        objects: &[],
        size: Size::Nothing,
        opaque: false,
    };
    if count == 0 {
        return Ok(out);
    }
    let start = r.rest();
    if size_width > 0 {
        // Each object says how long it is.
        out.size = Size::Unknown;
        let before = r.position();
        // Each object takes at least its prefix: the loop ends with the fragment.
        for _ in 0..count {
            let len = match size_width {
                1 => usize::from(r.u8("object size prefix truncated")?),
                2 => usize::from(r.le_u16("object size prefix truncated")?),
                _ => r.le_u32("object size prefix truncated")? as usize,
            };
            r.skip(len, "object shorter than its size prefix")?;
        }
        out.objects = &start[..r.position() - before];
        return Ok(out);
    }
    let size = match function.carries() {
        Carries::Nothing => Size::Nothing,
        Carries::TimeOnly if group != 50 => Size::Nothing,
        Carries::TimeOnly | Carries::Values => object_size(group, variation),
        Carries::Unknown => Size::Unknown,
    };
    let bytes = match size {
        Size::Nothing => Some(count * index_width),
        Size::Fixed(n) => Some(count * (index_width + u64::from(n))),
        // Packed objects are addressed by a range; prefixes do not fit them.
        Size::Bits(b) if index_width == 0 => Some((count * u64::from(b)).div_ceil(8)),
        Size::Bits(_) | Size::Unknown => None,
    };
    out.size = size;
    match bytes {
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            out.objects = r.take(n, "objects truncated")?;
        }
        None => {
            out.size = Size::Unknown;
            out.opaque = true;
            out.objects = r.take(r.remaining(), "objects truncated")?;
        }
    }
    Ok(out)
}

/// The object headers of a fragment, in order. Built only over fragments that
/// [`parse`] accepted, so it yields exactly what the parser walked.
#[derive(Debug, Clone, Copy)]
pub struct Objects<'a> {
    r: Reader<'a>,
    function: Function,
    /// Responses: only the first header is read, as opaque.
    response: bool,
    done: bool,
}

impl<'a> Objects<'a> {
    pub(super) fn new(objects: &'a [u8], function: Function) -> Objects<'a> {
        Objects {
            r: Reader::new(P, objects),
            function,
            response: function.is_response(),
            done: false,
        }
    }
}

impl<'a> Iterator for Objects<'a> {
    type Item = ObjectHeader<'a>;

    fn next(&mut self) -> Option<ObjectHeader<'a>> {
        if self.done || self.r.is_empty() {
            return None;
        }
        let item = if self.response {
            first_response_header(&mut self.r)
        } else {
            next_header(&mut self.r, self.function)
        };
        match item {
            Ok(h) => {
                self.done = h.opaque;
                Some(h)
            }
            Err(_) => {
                self.done = true;
                None
            }
        }
    }
}

fn first_response_header<'a>(r: &mut Reader<'a>) -> Result<ObjectHeader<'a>, Malformed> {
    let (group, variation, qualifier, range) = header(r)?;
    let rest = r.take(r.remaining(), TRUNCATED)?;
    Ok(ObjectHeader {
        group,
        variation,
        qualifier,
        range,
        objects: rest,
        size: Size::Unknown,
        opaque: true,
    })
}

/// What a checked fragment holds, found once by [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Summary {
    pub control: Control,
    pub function: Function,
    /// Internal indications (IIN1, IIN2) of a response.
    pub iin: Option<[u8; 2]>,
    /// Where the object headers start.
    pub objects_at: u8,
    /// Object headers walked (an opaque one included).
    pub headers: u16,
    pub opaque: bool,
}

/// Checks an application fragment: the header for its function, and for a request
/// every object header and the objects after it.
pub(super) fn parse(fragment: &[u8]) -> Result<Summary, Malformed> {
    let mut r = Reader::new(P, fragment);
    let short = "application header truncated";
    let control = Control(r.u8(short)?);
    let function = Function::from(r.u8(short)?);
    let mut s = Summary {
        control,
        function,
        iin: None,
        objects_at: 2,
        headers: 0,
        opaque: false,
    };
    if function.is_response() {
        s.iin = Some([r.u8(short)?, r.u8(short)?]);
        s.objects_at = 4;
        if !r.is_empty() {
            first_response_header(&mut r)?;
            s.headers = 1;
            s.opaque = true;
        }
        return Ok(s);
    }
    if !(control.fir() && control.fin()) {
        return Err(r.error("request is not a single fragment"));
    }
    if function == Function::Confirm {
        if !r.is_empty() {
            return Err(r.error("confirm carries objects"));
        }
        return Ok(s);
    }
    while !r.is_empty() {
        let h = next_header(&mut r, function)?;
        s.headers = s.headers.saturating_add(1);
        if h.opaque {
            s.opaque = true;
            break;
        }
    }
    Ok(s)
}

#[cfg(test)]
mod test {
    use super::*;
    use std::vec::Vec;

    fn walk(fragment: &[u8]) -> Result<(Summary, Vec<ObjectHeader<'_>>), Malformed> {
        let s = parse(fragment)?;
        let headers = Objects::new(&fragment[usize::from(s.objects_at)..], s.function).collect();
        Ok((s, headers))
    }

    #[test]
    fn class_poll_names_four_classes() {
        // Integrity poll: read class 1, 2, 3, 0 (g60v2..v4, v1), qualifier 0x06.
        let f = [0xc0, 0x01, 60, 2, 6, 60, 3, 6, 60, 4, 6, 60, 1, 6];
        let (s, h) = walk(&f).unwrap();
        assert_eq!(s.function, Function::Read);
        assert_eq!(s.headers, 4);
        assert!(!s.opaque);
        assert_eq!(
            h.iter().map(|h| (h.group, h.variation)).collect::<Vec<_>>(),
            [(60, 2), (60, 3), (60, 4), (60, 1)]
        );
        assert!(h
            .iter()
            .all(|h| h.range == Range::All && h.objects.is_empty()));
    }

    #[test]
    fn crob_direct_operate_is_walked() {
        // Direct operate, g12v1, qualifier 0x28 (2-byte count, 2-byte index), index 3,
        // latch on, count 1, on 100 ms, off 0, status 0.
        let f = [
            0xc3, 0x05, 12, 1, 0x28, 1, 0, 3, 0, 0x03, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let (s, h) = walk(&f).unwrap();
        assert_eq!(
            (s.function, s.headers, s.opaque),
            (Function::DirectOperate, 1, false)
        );
        assert_eq!(h[0].range, Range::Count(1));
        assert_eq!(h[0].size, Size::Fixed(11));
        assert_eq!(h[0].first_index(), Some(3));
        // One byte short of the CROB.
        assert_eq!(
            parse(&f[..f.len() - 1]).unwrap_err().what,
            "objects truncated"
        );
        // One byte too many: a header that cannot be read.
        let mut long = f.to_vec();
        long.push(0);
        assert_eq!(parse(&long).unwrap_err().what, "object header truncated");
    }

    #[test]
    fn writes_of_time_and_iin() {
        // Write g50v1 (count 1, 6 bytes of time) then g80v1 index 7 (clear restart).
        let f = [
            0xc1, 0x02, 50, 1, 0x07, 1, 1, 2, 3, 4, 5, 6, 80, 1, 0x00, 7, 7, 0,
        ];
        let (s, h) = walk(&f).unwrap();
        assert_eq!(s.headers, 2);
        assert_eq!(h[1].size, Size::Bits(1));
        assert_eq!(h[1].objects, &[0]);
        assert_eq!(h[1].indices(), Indices::Range(7, 7));
        assert_eq!(h[0].indices(), Indices::Unnamed);
    }

    #[test]
    fn reads_of_indices_carry_prefixes_only() {
        // Read g30v1 at indices 3 and 9 (qualifier 0x17: 1-byte count, 1-byte index).
        let f = [0xc2, 0x01, 30, 1, 0x17, 2, 3, 9];
        let (_, h) = walk(&f).unwrap();
        let Indices::Listed(l) = h[0].indices() else {
            panic!()
        };
        assert_eq!(l.collect::<Vec<_>>(), [3, 9]);
        // A huge range in a read carries nothing.
        let f = [0xc2, 0x01, 1, 2, 0x02, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(walk(&f).unwrap().1[0].range.count(), 1 << 32);
    }

    #[test]
    fn free_format_objects_are_size_prefixed() {
        // Open file: g70v3 qualifier 0x5B, one object of 4 bytes.
        let f = [0xc4, 25, 70, 3, 0x5b, 1, 4, 0, 1, 2, 3, 4];
        let (s, h) = walk(&f).unwrap();
        assert_eq!((s.headers, s.opaque), (1, false));
        assert_eq!(h[0].objects.len(), 6);
        assert_eq!(
            parse(&f[..11]).unwrap_err().what,
            "object shorter than its size prefix"
        );
        // 0x0B needs a size prefix.
        let f = [0xc4, 25, 70, 3, 0x0b, 1];
        assert!(parse(&f).is_err());
    }

    #[test]
    fn objects_of_unknown_size_make_the_rest_opaque() {
        // Write of a vendor group, then a cold-restart-looking header hidden behind it.
        let f = [0xc0, 0x02, 200, 1, 0x00, 0, 0, 0xaa, 12, 1, 0x17, 1, 0];
        let (s, h) = walk(&f).unwrap();
        assert_eq!((s.headers, s.opaque), (1, true));
        assert_eq!(h.len(), 1);
        assert!(h[0].is_opaque());
        assert_eq!(h[0].objects.len(), 6);
        // Unknown functions: any header with objects is opaque.
        let f = [0xc0, 0x40, 1, 2, 0x00, 0, 1];
        assert!(parse(&f).unwrap().opaque);
        // ... but one that names every object is not.
        let f = [0xc0, 0x40, 60, 1, 0x06];
        assert!(!parse(&f).unwrap().opaque);
    }

    #[test]
    fn malformed_headers() {
        let bad: &[(&[u8], &str)] = &[
            (&[0xc0], "application header truncated"),
            (&[0x80, 0x01, 60, 1, 6], "request is not a single fragment"),
            (&[0xc0, 0x01, 60, 1], "object header truncated"),
            (&[0xc0, 0x01, 60, 1, 0x86], "reserved qualifier bit set"),
            (&[0xc0, 0x01, 60, 1, 0x76], "reserved object prefix code"),
            (&[0xc0, 0x01, 60, 1, 0x0a], "reserved range specifier code"),
            (&[0xc0, 0x01, 1, 2, 0x00, 5, 4], "range start after stop"),
            (&[0xc0, 0x01, 1, 2, 0x01, 5, 0], "object header truncated"),
            (&[0xc0, 0x00, 1], "confirm carries objects"),
            (&[0xc0, 0x81, 0], "application header truncated"),
            (&[0xc0, 0x81, 0, 0, 1, 2], "object header truncated"),
        ];
        for (f, what) in bad {
            assert_eq!(parse(f).unwrap_err().what, *what, "{f:02x?}");
        }
    }

    #[test]
    fn responses_check_the_header_and_the_first_object_header() {
        // Null response with IIN1.7 (device restart).
        let s = parse(&[0xc0, 0x81, 0x80, 0x00]).unwrap();
        assert_eq!((s.iin, s.headers), (Some([0x80, 0]), 0));
        // Response with g1v2 0-1: the objects are not walked.
        let f = [0xc0, 0x81, 0, 0, 1, 2, 0, 0, 1, 0x81, 0x01];
        let (s, h) = walk(&f).unwrap();
        assert_eq!((s.headers, s.opaque), (1, true));
        assert_eq!(h[0].objects, &[0x81, 0x01]);
        // Unsolicited responses may be one of several fragments.
        assert!(parse(&[0x90, 0x82, 0, 0]).is_ok());
    }

    #[test]
    fn sizes_follow_the_library() {
        assert_eq!(object_size(12, 1), Size::Fixed(11));
        assert_eq!(object_size(41, 1), Size::Fixed(5));
        assert_eq!(object_size(41, 4), Size::Fixed(9));
        assert_eq!(object_size(110, 8), Size::Fixed(8));
        assert_eq!(object_size(110, 0), Size::Unknown);
        assert_eq!(object_size(70, 3), Size::Unknown);
        assert_eq!(object_size(60, 2), Size::Nothing);
        assert_eq!(Function::from(13).name(), Some("cold-restart"));
        assert_eq!(Function::from_name("open-file"), Some(Function::OpenFile));
    }
}
