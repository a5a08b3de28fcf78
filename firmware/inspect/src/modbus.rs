//! Modbus/TCP: the MBAP header and the PDU of every public function code, requests,
//! responses and exception responses.
//!
//! References: *MODBUS Application Protocol Specification V1.1b3* (function codes,
//! quantities, byte counts; the examples in its section 6 are the fixtures below) and
//! *MODBUS Messaging on TCP/IP Implementation Guide V1.0b* (the MBAP header).
//!
//! A request is checked as the specification defines it (quantities in range, byte
//! counts that agree with quantities and with the length, coil values 0x0000 or 0xFF00);
//! a function code without a definition here is data, judged by the policy. Responses
//! are checked for the shape of their function code.

use core::fmt;

use crate::macros::codes;
use crate::{code_field, Dir, Fields, Framing, Malformed, Protocol, Reader};

/// MBAP header: transaction id, protocol id, length, unit id.
pub const MBAP_LEN: usize = 7;
/// The largest ADU: the MBAP header and a 253-byte PDU.
pub const MAX_ADU: usize = 260;
const MAX_PDU: usize = 253;

const P: Protocol = Protocol::Modbus;

codes! {
    /// Function codes (specification, section 5.1), with the vendor codes that matter to
    /// a firewall.
    pub enum Function(u8) {
        ReadCoils = 1 => "read-coils",
        ReadDiscreteInputs = 2 => "read-discrete-inputs",
        ReadHoldingRegisters = 3 => "read-holding-registers",
        ReadInputRegisters = 4 => "read-input-registers",
        WriteSingleCoil = 5 => "write-single-coil",
        WriteSingleRegister = 6 => "write-single-register",
        ReadExceptionStatus = 7 => "read-exception-status",
        Diagnostics = 8 => "diagnostics",
        GetCommEventCounter = 11 => "get-comm-event-counter",
        GetCommEventLog = 12 => "get-comm-event-log",
        WriteMultipleCoils = 15 => "write-multiple-coils",
        WriteMultipleRegisters = 16 => "write-multiple-registers",
        ReportServerId = 17 => "report-server-id",
        ReadFileRecord = 20 => "read-file-record",
        WriteFileRecord = 21 => "write-file-record",
        MaskWriteRegister = 22 => "mask-write-register",
        ReadWriteMultipleRegisters = 23 => "read-write-multiple-registers",
        ReadFifoQueue = 24 => "read-fifo-queue",
        EncapsulatedInterface = 43 => "encapsulated-interface-transport",
        /// Schneider Electric's UMAS (programming of Modicon PLCs over function 90).
        Umas = 90 => "umas",
    }
}

codes! {
    /// Diagnostics (function 8) sub-functions (specification, section 6.8.1).
    pub enum Diagnostic(u16) {
        ReturnQueryData = 0 => "return-query-data",
        RestartCommunications = 1 => "restart-communications-option",
        ReturnDiagnosticRegister = 2 => "return-diagnostic-register",
        ChangeAsciiDelimiter = 3 => "change-ascii-input-delimiter",
        ForceListenOnly = 4 => "force-listen-only-mode",
        ClearCounters = 10 => "clear-counters-and-diagnostic-register",
        BusMessageCount = 11 => "return-bus-message-count",
        BusCommunicationErrorCount = 12 => "return-bus-communication-error-count",
        BusExceptionErrorCount = 13 => "return-bus-exception-error-count",
        ServerMessageCount = 14 => "return-server-message-count",
        ServerNoResponseCount = 15 => "return-server-no-response-count",
        ServerNakCount = 16 => "return-server-nak-count",
        ServerBusyCount = 17 => "return-server-busy-count",
        BusCharacterOverrunCount = 18 => "return-bus-character-overrun-count",
        ClearOverrun = 20 => "clear-overrun-counter-and-flag",
    }
}

codes! {
    /// MEI types of function 43.
    pub enum MeiType(u8) {
        CanOpenGeneralReference = 13 => "canopen-general-reference",
        ReadDeviceIdentification = 14 => "read-device-identification",
    }
}

codes! {
    /// Exception codes (specification, section 7).
    pub enum Exception(u8) {
        IllegalFunction = 1 => "illegal-function",
        IllegalDataAddress = 2 => "illegal-data-address",
        IllegalDataValue = 3 => "illegal-data-value",
        ServerDeviceFailure = 4 => "server-device-failure",
        Acknowledge = 5 => "acknowledge",
        ServerDeviceBusy = 6 => "server-device-busy",
        MemoryParityError = 8 => "memory-parity-error",
        GatewayPathUnavailable = 10 => "gateway-path-unavailable",
        GatewayTargetFailed = 11 => "gateway-target-device-failed-to-respond",
    }
}

/// The four data tables a function reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Coils,
    DiscreteInputs,
    HoldingRegisters,
    InputRegisters,
}

/// A contiguous block of data addresses a request touches. `start + count` can reach
/// 65536 (the last address is 65535); a request that would run past it is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Range {
    pub table: Table,
    pub start: u16,
    pub count: u16,
    pub write: bool,
}

impl Range {
    /// The last address touched.
    pub fn last(&self) -> u16 {
        self.start.wrapping_add(self.count.saturating_sub(1))
    }
}

/// How long the ADU at the start of `head` is, from its MBAP header.
pub fn frame(head: &[u8]) -> Framing {
    if head.len() < MBAP_LEN - 1 {
        return Framing::NeedMore(MBAP_LEN - 1);
    }
    if head[2..4] != [0, 0] {
        return Framing::Invalid(Malformed::new(P, "protocol id is not 0"));
    }
    let length = usize::from(u16::from_be_bytes([head[4], head[5]]));
    // The length counts the unit id and the PDU, which has at least its function code.
    if !(2..=MAX_PDU + 1).contains(&length) {
        return Framing::Invalid(Malformed::new(P, "MBAP length out of range (2-254)"));
    }
    Framing::Length(MBAP_LEN - 1 + length)
}

/// What a stream remembers between Modbus messages: nothing (each ADU stands alone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session;

impl Session {
    /// One framed ADU of the stream (see `stream.rs`).
    pub fn message<'s>(
        &mut self,
        bytes: &'s [u8],
        total: usize,
        dir: Dir,
        _scratch: &'s mut [u8],
    ) -> Option<Result<crate::Message<'s>, Malformed>> {
        Some(parse(bytes, total, dir).map(crate::Message::Modbus))
    }

    pub fn is_idle(&self) -> bool {
        true
    }
}

/// A checked Modbus/TCP ADU: MBAP header and PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adu<'a> {
    bytes: &'a [u8],
    dir: Dir,
    /// The address blocks a request touches (at most two: function 23).
    ranges: [Option<Range>; 2],
    sub: Option<u16>,
}

/// Parses one ADU. `total` must equal `bytes.len()` (Modbus ADUs always fit the stream
/// buffer); anything else is malformed.
pub fn parse(bytes: &[u8], total: usize, dir: Dir) -> Result<Adu<'_>, Malformed> {
    if bytes.len() != total {
        return Err(Malformed::new(P, "truncated ADU"));
    }
    match frame(bytes) {
        Framing::Length(n) if n == bytes.len() => {}
        Framing::Invalid(e) => return Err(e),
        _ => {
            return Err(Malformed::new(
                P,
                "ADU length disagrees with the MBAP length",
            ))
        }
    }
    let mut adu = Adu {
        bytes,
        dir,
        ranges: [None, None],
        sub: None,
    };
    let code = adu.function_code();
    let data = adu.data();
    match dir {
        Dir::Request => {
            if code == 0 || code >= 0x80 {
                return Err(Malformed::new(
                    P,
                    "function code 0 or above 127 in a request",
                ));
            }
            adu.check_request(Function::from(code), data)?;
        }
        Dir::Response => {
            if code >= 0x80 {
                if data.len() != 1 {
                    return Err(Malformed::new(P, "exception response is not one byte"));
                }
            } else {
                check_response(Function::from(code), data)?;
            }
        }
    }
    Ok(adu)
}

impl<'a> Adu<'a> {
    pub fn transaction_id(&self) -> u16 {
        u16::from_be_bytes([self.bytes[0], self.bytes[1]])
    }

    pub fn unit(&self) -> u8 {
        self.bytes[6]
    }

    /// The function code as sent (with the 0x80 bit on exception responses).
    pub fn function_code(&self) -> u8 {
        self.bytes[7]
    }

    /// The function, without the exception bit.
    pub fn function(&self) -> Function {
        Function::from(self.function_code() & 0x7f)
    }

    pub fn dir(&self) -> Dir {
        self.dir
    }

    pub fn is_request(&self) -> bool {
        self.dir == Dir::Request
    }

    /// The exception code of an exception response.
    pub fn exception(&self) -> Option<Exception> {
        (self.dir == Dir::Response && self.function_code() >= 0x80)
            .then(|| Exception::from(self.bytes[8]))
    }

    /// The PDU: function code and data.
    pub fn pdu(&self) -> &'a [u8] {
        &self.bytes[MBAP_LEN..]
    }

    /// The PDU after the function code.
    pub fn data(&self) -> &'a [u8] {
        &self.bytes[MBAP_LEN + 1..]
    }

    /// The whole ADU as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The address blocks a request reads or writes (none for responses and for
    /// functions without data addresses).
    pub fn ranges(&self) -> impl Iterator<Item = Range> + '_ {
        self.ranges.iter().flatten().copied()
    }

    /// The diagnostics sub-function (function 8) or the MEI type (function 43).
    pub fn subfunction(&self) -> Option<u16> {
        self.sub
    }

    pub fn diagnostic(&self) -> Option<Diagnostic> {
        (self.function() == Function::Diagnostics)
            .then_some(self.sub)
            .flatten()
            .map(Diagnostic::from)
    }

    pub fn mei_type(&self) -> Option<MeiType> {
        (self.function() == Function::EncapsulatedInterface)
            .then_some(self.sub)
            .flatten()
            .map(|s| MeiType::from(s as u8))
    }

    pub fn op(&self) -> Op {
        let mut ranges = self.ranges();
        let first = ranges.next();
        let second = ranges.next();
        Op {
            unit: self.unit(),
            function: self.function_code() & 0x7f,
            response: self.dir == Dir::Response,
            exception: self.exception().map(u8::from),
            sub: self.sub,
            address: first.map(|r| r.start),
            count: first.map(|r| r.count),
            write_address: second.map(|r| r.start),
            write_count: second.map(|r| r.count),
        }
    }

    fn check_request(&mut self, function: Function, data: &[u8]) -> Result<(), Malformed> {
        let mut r = Reader::new(P, data);
        let short = "request data too short";
        use Function as F;
        use Table as T;
        let range = |table, start: u16, count: u16, write| -> Result<Range, Malformed> {
            if u32::from(start) + u32::from(count) > 0x1_0000 {
                return Err(Malformed::new(P, "address range runs past 65535"));
            }
            Ok(Range {
                table,
                start,
                count,
                write,
            })
        };
        match function {
            F::ReadCoils | F::ReadDiscreteInputs => {
                let (start, count) = (r.be_u16(short)?, r.be_u16(short)?);
                if !(1..=2000).contains(&count) {
                    return Err(Malformed::new(P, "bit quantity out of range (1-2000)"));
                }
                let table = if function == F::ReadCoils {
                    T::Coils
                } else {
                    T::DiscreteInputs
                };
                self.ranges[0] = Some(range(table, start, count, false)?);
            }
            F::ReadHoldingRegisters | F::ReadInputRegisters => {
                let (start, count) = (r.be_u16(short)?, r.be_u16(short)?);
                if !(1..=125).contains(&count) {
                    return Err(Malformed::new(P, "register quantity out of range (1-125)"));
                }
                let table = if function == F::ReadHoldingRegisters {
                    T::HoldingRegisters
                } else {
                    T::InputRegisters
                };
                self.ranges[0] = Some(range(table, start, count, false)?);
            }
            F::WriteSingleCoil => {
                let (address, value) = (r.be_u16(short)?, r.be_u16(short)?);
                if value != 0x0000 && value != 0xff00 {
                    return Err(Malformed::new(P, "coil value is neither 0x0000 nor 0xFF00"));
                }
                self.ranges[0] = Some(range(T::Coils, address, 1, true)?);
            }
            F::WriteSingleRegister => {
                let address = r.be_u16(short)?;
                r.skip(2, short)?;
                self.ranges[0] = Some(range(T::HoldingRegisters, address, 1, true)?);
            }
            F::ReadExceptionStatus
            | F::GetCommEventCounter
            | F::GetCommEventLog
            | F::ReportServerId => {}
            F::Diagnostics => {
                let sub = r.be_u16(short)?;
                if !r.remaining().is_multiple_of(2) || (sub != 0 && r.remaining() != 2) {
                    return Err(Malformed::new(P, "diagnostics data is not one register"));
                }
                r.skip(r.remaining(), short)?;
                self.sub = Some(sub);
            }
            F::WriteMultipleCoils => {
                let (start, count, bytes) = (r.be_u16(short)?, r.be_u16(short)?, r.u8(short)?);
                if !(1..=0x7b0).contains(&count) {
                    return Err(Malformed::new(P, "coil quantity out of range (1-1968)"));
                }
                if usize::from(bytes) != usize::from(count).div_ceil(8) {
                    return Err(Malformed::new(P, "byte count disagrees with the quantity"));
                }
                r.skip(usize::from(bytes), "fewer coil values than the byte count")?;
                self.ranges[0] = Some(range(T::Coils, start, count, true)?);
            }
            F::WriteMultipleRegisters => {
                let (start, count, bytes) = (r.be_u16(short)?, r.be_u16(short)?, r.u8(short)?);
                if !(1..=123).contains(&count) {
                    return Err(Malformed::new(P, "register quantity out of range (1-123)"));
                }
                if usize::from(bytes) != 2 * usize::from(count) {
                    return Err(Malformed::new(P, "byte count disagrees with the quantity"));
                }
                r.skip(
                    usize::from(bytes),
                    "fewer register values than the byte count",
                )?;
                self.ranges[0] = Some(range(T::HoldingRegisters, start, count, true)?);
            }
            F::ReadFileRecord => {
                let bytes = usize::from(r.u8(short)?);
                if !(7..=0xf5).contains(&bytes)
                    || !bytes.is_multiple_of(7)
                    || bytes != r.remaining()
                {
                    return Err(Malformed::new(P, "bad read-file-record byte count"));
                }
                while !r.is_empty() {
                    if r.u8(short)? != 6 {
                        return Err(Malformed::new(P, "file record reference type is not 6"));
                    }
                    r.skip(6, short)?;
                }
            }
            F::WriteFileRecord => {
                let bytes = usize::from(r.u8(short)?);
                if !(9..=0xfb).contains(&bytes) || bytes != r.remaining() {
                    return Err(Malformed::new(P, "bad write-file-record byte count"));
                }
                while !r.is_empty() {
                    if r.u8(short)? != 6 {
                        return Err(Malformed::new(P, "file record reference type is not 6"));
                    }
                    r.skip(4, short)?;
                    let words = usize::from(r.be_u16(short)?);
                    r.skip(2 * words, "file record data shorter than its length")?;
                }
            }
            F::MaskWriteRegister => {
                let address = r.be_u16(short)?;
                r.skip(4, short)?;
                self.ranges[0] = Some(range(T::HoldingRegisters, address, 1, true)?);
            }
            F::ReadWriteMultipleRegisters => {
                let (read_start, read_count) = (r.be_u16(short)?, r.be_u16(short)?);
                let (write_start, write_count) = (r.be_u16(short)?, r.be_u16(short)?);
                let bytes = r.u8(short)?;
                if !(1..=125).contains(&read_count) || !(1..=121).contains(&write_count) {
                    return Err(Malformed::new(P, "register quantity out of range"));
                }
                if usize::from(bytes) != 2 * usize::from(write_count) {
                    return Err(Malformed::new(P, "byte count disagrees with the quantity"));
                }
                r.skip(
                    usize::from(bytes),
                    "fewer register values than the byte count",
                )?;
                let table = T::HoldingRegisters;
                self.ranges[0] = Some(range(table, read_start, read_count, false)?);
                self.ranges[1] = Some(range(table, write_start, write_count, true)?);
            }
            F::ReadFifoQueue => {
                let address = r.be_u16(short)?;
                self.ranges[0] = Some(range(T::HoldingRegisters, address, 1, false)?);
            }
            F::EncapsulatedInterface => {
                let mei = r.u8(short)?;
                if MeiType::from(mei) == MeiType::ReadDeviceIdentification {
                    let code = r.u8(short)?;
                    r.skip(1, short)?;
                    if !(1..=4).contains(&code) {
                        return Err(Malformed::new(P, "read device id code out of range (1-4)"));
                    }
                }
                r.skip(r.remaining(), short)?;
                self.sub = Some(u16::from(mei));
            }
            // User-defined and unassigned codes: their data is the vendor's business.
            F::Umas | F::Unknown(_) => r.skip(r.remaining(), short)?,
        }
        if !r.is_empty() {
            return Err(Malformed::new(
                P,
                "request longer than its function defines",
            ));
        }
        Ok(())
    }
}

fn check_response(function: Function, data: &[u8]) -> Result<(), Malformed> {
    use Function as F;
    let mut r = Reader::new(P, data);
    let short = "response data too short";
    let counted = |r: &mut Reader<'_>, even: bool| -> Result<(), Malformed> {
        let bytes = usize::from(r.u8(short)?);
        if bytes != r.remaining() || (even && !bytes.is_multiple_of(2)) {
            return Err(Malformed::new(
                P,
                "response byte count disagrees with its length",
            ));
        }
        Ok(())
    };
    let fixed = |r: &Reader<'_>, n: usize| {
        if r.remaining() == n {
            Ok(())
        } else {
            Err(Malformed::new(
                P,
                "response length is wrong for its function",
            ))
        }
    };
    match function {
        F::ReadCoils | F::ReadDiscreteInputs | F::ReportServerId | F::GetCommEventLog => {
            counted(&mut r, false)
        }
        F::ReadHoldingRegisters | F::ReadInputRegisters | F::ReadWriteMultipleRegisters => {
            counted(&mut r, true)
        }
        F::ReadFileRecord | F::WriteFileRecord => counted(&mut r, false),
        F::WriteSingleCoil
        | F::WriteSingleRegister
        | F::WriteMultipleCoils
        | F::WriteMultipleRegisters
        | F::GetCommEventCounter => fixed(&r, 4),
        F::MaskWriteRegister => fixed(&r, 6),
        F::ReadExceptionStatus => fixed(&r, 1),
        F::ReadFifoQueue => {
            let bytes = usize::from(r.be_u16(short)?);
            if bytes != r.remaining() || bytes < 2 {
                return Err(Malformed::new(
                    P,
                    "FIFO byte count disagrees with its length",
                ));
            }
            Ok(())
        }
        F::Diagnostics => {
            if r.remaining() < 2 {
                return Err(Malformed::new(P, short));
            }
            Ok(())
        }
        F::EncapsulatedInterface => {
            if r.remaining() < 1 {
                return Err(Malformed::new(P, short));
            }
            Ok(())
        }
        F::Umas | F::Unknown(_) => Ok(()),
    }
}

/// What a Modbus message asked for, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub unit: u8,
    /// Without the exception bit.
    pub function: u8,
    pub response: bool,
    pub exception: Option<u8>,
    /// Diagnostics sub-function or MEI type.
    pub sub: Option<u16>,
    pub address: Option<u16>,
    pub count: Option<u16>,
    /// Function 23: the written block (`address`/`count` are the read block).
    pub write_address: Option<u16>,
    pub write_count: Option<u16>,
}

impl Op {
    pub fn describe(&self, out: &mut dyn Fields) {
        let function = Function::from(self.function);
        code_field(out, "function", function.name(), u64::from(self.function));
        out.number("unit", u64::from(self.unit));
        if let Some(sub) = self.sub {
            match function {
                Function::Diagnostics => {
                    code_field(out, "subfunction", Diagnostic::from(sub).name(), sub.into())
                }
                _ => code_field(out, "mei", MeiType::from(sub as u8).name(), sub.into()),
            }
        }
        if let Some(a) = self.address {
            out.number("address", a.into());
        }
        if let Some(c) = self.count {
            out.number("count", c.into());
        }
        if let Some(a) = self.write_address {
            out.number("write_address", a.into());
        }
        if let Some(c) = self.write_count {
            out.number("write_count", c.into());
        }
        if self.response {
            out.flag("response", true);
        }
        if let Some(e) = self.exception {
            code_field(out, "exception", Exception::from(e).name(), e.into());
        }
    }
}

/// A request as values, to build ADUs (tests, fuzz seeds, the benchmark).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRepr<'v> {
    pub transaction_id: u16,
    pub unit: u8,
    pub body: RequestBody<'v>,
}

/// The PDU of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestBody<'v> {
    /// Functions 1-4: read `count` items from `start`.
    Read {
        function: Function,
        start: u16,
        count: u16,
    },
    /// Function 5 (`value` true = ON) .
    WriteCoil { address: u16, value: bool },
    /// Function 6.
    WriteRegister { address: u16, value: u16 },
    /// Function 15: `count` coils from the packed `bits`.
    WriteCoils {
        start: u16,
        count: u16,
        bits: &'v [u8],
    },
    /// Function 16.
    WriteRegisters { start: u16, values: &'v [u16] },
    /// Function 23.
    ReadWrite {
        read_start: u16,
        read_count: u16,
        write_start: u16,
        values: &'v [u16],
    },
    /// Function 8.
    Diagnostics { sub: u16, data: u16 },
    /// Any function code with raw data.
    Raw { function: u8, data: &'v [u8] },
}

impl RequestRepr<'_> {
    /// Writes the ADU into `out` and returns its length; `None` when it does not fit or
    /// the PDU would exceed 253 bytes.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let mut pdu = [0u8; MAX_PDU];
        let mut n = 0;
        let mut put = |bytes: &[u8]| -> Option<()> {
            pdu.get_mut(n..n + bytes.len())?.copy_from_slice(bytes);
            n += bytes.len();
            Some(())
        };
        match &self.body {
            RequestBody::Read {
                function,
                start,
                count,
            } => {
                put(&[u8::from(*function)])?;
                put(&start.to_be_bytes())?;
                put(&count.to_be_bytes())?;
            }
            RequestBody::WriteCoil { address, value } => {
                put(&[5])?;
                put(&address.to_be_bytes())?;
                put(if *value { &[0xff, 0] } else { &[0, 0] })?;
            }
            RequestBody::WriteRegister { address, value } => {
                put(&[6])?;
                put(&address.to_be_bytes())?;
                put(&value.to_be_bytes())?;
            }
            RequestBody::WriteCoils { start, count, bits } => {
                put(&[15])?;
                put(&start.to_be_bytes())?;
                put(&count.to_be_bytes())?;
                put(&[u8::try_from(bits.len()).ok()?])?;
                put(bits)?;
            }
            RequestBody::WriteRegisters { start, values } => {
                put(&[16])?;
                put(&start.to_be_bytes())?;
                put(&u16::try_from(values.len()).ok()?.to_be_bytes())?;
                put(&[u8::try_from(values.len() * 2).ok()?])?;
                for v in values.iter() {
                    put(&v.to_be_bytes())?;
                }
            }
            RequestBody::ReadWrite {
                read_start,
                read_count,
                write_start,
                values,
            } => {
                put(&[23])?;
                put(&read_start.to_be_bytes())?;
                put(&read_count.to_be_bytes())?;
                put(&write_start.to_be_bytes())?;
                put(&u16::try_from(values.len()).ok()?.to_be_bytes())?;
                put(&[u8::try_from(values.len() * 2).ok()?])?;
                for v in values.iter() {
                    put(&v.to_be_bytes())?;
                }
            }
            RequestBody::Diagnostics { sub, data } => {
                put(&[8])?;
                put(&sub.to_be_bytes())?;
                put(&data.to_be_bytes())?;
            }
            RequestBody::Raw { function, data } => {
                put(&[*function])?;
                put(data)?;
            }
        }
        emit_adu(out, self.transaction_id, self.unit, &pdu[..n])
    }
}

/// The exception response a server would send to `request`: same transaction and unit,
/// function code with the 0x80 bit, one exception code. Returns its length (9).
pub fn emit_exception(out: &mut [u8], request: &Adu<'_>, code: Exception) -> Option<usize> {
    let pdu = [request.function_code() | 0x80, u8::from(code)];
    emit_adu(out, request.transaction_id(), request.unit(), &pdu)
}

fn emit_adu(out: &mut [u8], transaction_id: u16, unit: u8, pdu: &[u8]) -> Option<usize> {
    if pdu.is_empty() || pdu.len() > MAX_PDU {
        return None;
    }
    let total = MBAP_LEN + pdu.len();
    let out = out.get_mut(..total)?;
    out[0..2].copy_from_slice(&transaction_id.to_be_bytes());
    out[2..4].copy_from_slice(&[0, 0]);
    out[4..6].copy_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    out[6] = unit;
    out[MBAP_LEN..].copy_from_slice(pdu);
    Some(total)
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Table::Coils => "coils",
            Table::DiscreteInputs => "discrete-inputs",
            Table::HoldingRegisters => "holding-registers",
            Table::InputRegisters => "input-registers",
        })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// An ADU around a PDU from the specification's examples: transaction 0x0001, unit 1.
    fn adu(pdu: &[u8]) -> std::vec::Vec<u8> {
        let mut v = std::vec![0x00, 0x01, 0x00, 0x00];
        v.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
        v.push(0x01);
        v.extend_from_slice(pdu);
        v
    }

    fn req(pdu: &[u8]) -> Result<Op, Malformed> {
        let b = adu(pdu);
        parse(&b, b.len(), Dir::Request).map(|a| a.op())
    }

    fn resp(pdu: &[u8]) -> Result<Op, Malformed> {
        let b = adu(pdu);
        parse(&b, b.len(), Dir::Response).map(|a| a.op())
    }

    #[test]
    fn framing_from_the_mbap_header() {
        assert_eq!(frame(&[0, 1, 0]), Framing::NeedMore(6));
        assert_eq!(frame(&[0, 1, 0, 0, 0, 6]), Framing::Length(12));
        assert!(matches!(frame(&[0, 1, 0, 1, 0, 6]), Framing::Invalid(_)));
        assert!(matches!(frame(&[0, 1, 0, 0, 0, 1]), Framing::Invalid(_)));
        assert!(matches!(frame(&[0, 1, 0, 0, 0, 255]), Framing::Invalid(_)));
        assert_eq!(frame(&[0, 1, 0, 0, 0, 254]), Framing::Length(MAX_ADU));
    }

    #[test]
    fn spec_examples_of_reads() {
        // 6.3: read holding registers 108-110 (start 0x006B, 3 registers).
        let op = req(&[0x03, 0x00, 0x6b, 0x00, 0x03]).unwrap();
        assert_eq!(op.function, 3);
        assert_eq!((op.address, op.count), (Some(0x6b), Some(3)));
        assert!(resp(&[0x03, 0x06, 0x02, 0x2b, 0x00, 0x00, 0x00, 0x64]).is_ok());
        // 6.1: read coils 20-38.
        let op = req(&[0x01, 0x00, 0x13, 0x00, 0x13]).unwrap();
        assert_eq!((op.address, op.count), (Some(0x13), Some(0x13)));
        assert!(resp(&[0x01, 0x03, 0xcd, 0x6b, 0x05]).is_ok());
        // 6.4: read input register 9.
        assert!(req(&[0x04, 0x00, 0x08, 0x00, 0x01]).is_ok());
        assert!(resp(&[0x04, 0x02, 0x00, 0x0a]).is_ok());
        // 6.2: read discrete inputs 197-218.
        assert!(req(&[0x02, 0x00, 0xc4, 0x00, 0x16]).is_ok());
        assert!(resp(&[0x02, 0x03, 0xac, 0xdb, 0x35]).is_ok());
    }

    #[test]
    fn spec_examples_of_writes() {
        // 6.5: write coil 173 ON.
        let op = req(&[0x05, 0x00, 0xac, 0xff, 0x00]).unwrap();
        assert_eq!((op.address, op.count), (Some(0xac), Some(1)));
        assert!(resp(&[0x05, 0x00, 0xac, 0xff, 0x00]).is_ok());
        // 6.6: write register 2 = 3.
        assert!(req(&[0x06, 0x00, 0x01, 0x00, 0x03]).is_ok());
        // 6.11: write 10 coils from 20.
        let op = req(&[0x0f, 0x00, 0x13, 0x00, 0x0a, 0x02, 0xcd, 0x01]).unwrap();
        assert_eq!((op.address, op.count), (Some(0x13), Some(10)));
        assert!(resp(&[0x0f, 0x00, 0x13, 0x00, 0x0a]).is_ok());
        // 6.12: write 2 registers from 2.
        let op = req(&[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0a, 0x01, 0x02]).unwrap();
        assert_eq!((op.address, op.count), (Some(1), Some(2)));
        // 6.16: mask write register 5.
        let op = req(&[0x16, 0x00, 0x04, 0x00, 0xf2, 0x00, 0x25]).unwrap();
        assert_eq!(op.address, Some(4));
        assert!(resp(&[0x16, 0x00, 0x04, 0x00, 0xf2, 0x00, 0x25]).is_ok());
        // 6.17: read 6 registers from 4, write 3 from 15.
        let op = req(&[
            0x17, 0x00, 0x03, 0x00, 0x06, 0x00, 0x0e, 0x00, 0x03, 0x06, 0x00, 0xff, 0x00, 0xff,
            0x00, 0xff,
        ])
        .unwrap();
        assert_eq!((op.address, op.count), (Some(3), Some(6)));
        assert_eq!((op.write_address, op.write_count), (Some(0x0e), Some(3)));
    }

    #[test]
    fn spec_examples_of_other_functions() {
        // 6.8: diagnostics, return query data.
        let op = req(&[0x08, 0x00, 0x00, 0xa5, 0x37]).unwrap();
        assert_eq!(op.sub, Some(0));
        // force listen only mode
        assert_eq!(req(&[0x08, 0x00, 0x04, 0x00, 0x00]).unwrap().sub, Some(4));
        // 6.14: read file record, two sub-requests.
        assert!(req(&[
            0x14, 0x0e, 0x06, 0x00, 0x04, 0x00, 0x01, 0x00, 0x02, 0x06, 0x00, 0x03, 0x00, 0x09,
            0x00, 0x02
        ])
        .is_ok());
        // 6.15: write file record.
        assert!(req(&[
            0x15, 0x0d, 0x06, 0x00, 0x04, 0x00, 0x07, 0x00, 0x03, 0x06, 0xaf, 0x04, 0xbe, 0x10,
            0x0d
        ])
        .is_ok());
        // 6.18: read FIFO queue at 0x04DE.
        assert_eq!(req(&[0x18, 0x04, 0xde]).unwrap().address, Some(0x04de));
        assert!(resp(&[0x18, 0x00, 0x06, 0x00, 0x02, 0x01, 0xb8, 0x12, 0x84]).is_ok());
        // 6.21: read device identification, basic, from object 0.
        let op = req(&[0x2b, 0x0e, 0x01, 0x00]).unwrap();
        assert_eq!(op.sub, Some(14));
        // 6.7, 6.9, 6.10, 6.13: functions without request data.
        for f in [0x07, 0x0b, 0x0c, 0x11] {
            assert!(req(&[f]).is_ok(), "function {f}");
        }
        // Vendor codes are data.
        assert_eq!(req(&[0x5a, 0x00, 0x02]).unwrap().function, 90);
        assert_eq!(req(&[0x41, 1, 2, 3]).unwrap().function, 0x41);
    }

    #[test]
    fn exceptions() {
        // Section 7: function 0x81 (read coils) with exception 02.
        let op = resp(&[0x81, 0x02]).unwrap();
        assert_eq!(op.function, 1);
        assert_eq!(op.exception, Some(2));
        assert!(resp(&[0x81]).is_err());
        assert!(resp(&[0x81, 0x02, 0x00]).is_err());
        assert!(
            req(&[0x81, 0x02]).is_err(),
            "no exception codes in requests"
        );
    }

    #[test]
    fn malformed_requests() {
        let cases: &[&[u8]] = &[
            &[0x03, 0x00, 0x00, 0x00, 0x00],       // zero quantity
            &[0x03, 0x00, 0x00, 0x00, 0x7e],       // 126 registers
            &[0x01, 0x00, 0x00, 0x07, 0xd1],       // 2001 coils
            &[0x03, 0x00, 0x00, 0x00],             // short
            &[0x03, 0x00, 0x00, 0x00, 0x01, 0x00], // long
            &[0x05, 0x00, 0x01, 0x12, 0x34],       // bad coil value
            &[0x03, 0xff, 0xff, 0x00, 0x02],       // runs past 65535
            &[0x10, 0x00, 0x01, 0x00, 0x02, 0x03, 0x00, 0x0a, 0x01], // byte count
            &[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0a], // missing values
            &[0x0f, 0x00, 0x13, 0x00, 0x0a, 0x01, 0xcd], // byte count
            &[0x2b, 0x0e, 0x05, 0x00],             // read dev id code
            &[0x14, 0x07, 0x05, 0, 0, 0, 0, 0, 0], // reference type
            &[0x00],                               // function 0
        ];
        for pdu in cases {
            assert!(req(pdu).is_err(), "{pdu:02x?}");
        }
        // MBAP problems.
        let mut b = adu(&[0x03, 0x00, 0x00, 0x00, 0x01]);
        b[3] = 1;
        assert!(parse(&b, b.len(), Dir::Request).is_err(), "protocol id");
        let b = adu(&[0x03, 0x00, 0x00, 0x00, 0x01]);
        assert!(parse(&b[..b.len() - 1], b.len(), Dir::Request).is_err());
        assert!(parse(&b[..b.len() - 1], b.len() - 1, Dir::Request).is_err());
    }

    #[test]
    fn emit_then_parse() {
        let mut out = [0u8; MAX_ADU];
        let repr = RequestRepr {
            transaction_id: 7,
            unit: 3,
            body: RequestBody::WriteRegisters {
                start: 100,
                values: &[1, 2, 3],
            },
        };
        let n = repr.emit(&mut out).unwrap();
        let a = parse(&out[..n], n, Dir::Request).unwrap();
        assert_eq!((a.transaction_id(), a.unit()), (7, 3));
        assert_eq!(
            a.ranges().next(),
            Some(Range {
                table: Table::HoldingRegisters,
                start: 100,
                count: 3,
                write: true
            })
        );
        let mut ex = [0u8; 16];
        let m = emit_exception(&mut ex, &a, Exception::IllegalDataAddress).unwrap();
        assert_eq!(&ex[..m], &[0, 7, 0, 0, 0, 3, 3, 0x90, 2]);
        let e = parse(&ex[..m], m, Dir::Response).unwrap();
        assert_eq!(e.exception(), Some(Exception::IllegalDataAddress));
    }

    #[test]
    fn op_display() {
        let op = req(&[0x06, 0x00, 0x78, 0x00, 0x03]).unwrap();
        assert_eq!(
            std::format!("{}", crate::Op::Modbus(op)),
            "modbus function=write-single-register unit=1 address=120 count=1"
        );
    }
}
