//! CIP (Common Industrial Protocol) explicit messages: Message Router requests and
//! responses, padded EPATHs, service and class codes, and the Connection Manager's
//! Unconnected Send, Forward Open and Forward Close.
//!
//! References: *The CIP Networks Library, Volume 1: Common Industrial Protocol* —
//! chapter 2 (Message Router request/response format, 2-4), chapter 3 (Connection
//! Manager: Forward Open 3-5.5.2, Forward Close 3-5.5.3, Unconnected Send 3-5.5.4),
//! appendix A (common services, the Multiple Service Packet ), appendix B
//! (general status codes), appendix C (path segments: port C-1.3, logical C-1.4,
//! network C-1.5, symbolic C-1.6, data C-1.7); Rockwell Automation publication
//! 1756-PM020 *Logix 5000 Controllers Data Access* (tag services and symbolic paths).
//!
//! A request is checked for structure all the way down: every path segment, the
//! embedded requests of a Multiple Service Packet and of an Unconnected Send (to
//! [`MAX_DEPTH`] levels), the fixed fields and the connection path of Forward Open and
//! Forward Close. The data of other services is opaque: it is the object's business.

use crate::macros::codes;
use crate::{Malformed, Protocol, Reader};

const P: Protocol = Protocol::Enip;

/// How deeply requests may nest (Unconnected Send and Multiple Service Packet inside
/// each other); deeper is malformed.
pub const MAX_DEPTH: u8 = 4;

/// Codes 0x4B–0x63 are object-specific: their meaning depends on the class.
pub const OBJECT_SPECIFIC: core::ops::RangeInclusive<u8> = 0x4b..=0x63;

codes! {
    /// Common services (Volume 1, appendix A, table ): the same meaning on every
    /// class.
    pub enum Service(u8) {
        GetAttributesAll = 0x01 => "get-attributes-all",
        SetAttributesAll = 0x02 => "set-attributes-all",
        GetAttributeList = 0x03 => "get-attribute-list",
        SetAttributeList = 0x04 => "set-attribute-list",
        Reset = 0x05 => "reset",
        Start = 0x06 => "start",
        Stop = 0x07 => "stop",
        Create = 0x08 => "create",
        Delete = 0x09 => "delete",
        MultipleServicePacket = 0x0a => "multiple-service-packet",
        ApplyAttributes = 0x0d => "apply-attributes",
        GetAttributeSingle = 0x0e => "get-attribute-single",
        SetAttributeSingle = 0x10 => "set-attribute-single",
        FindNextObjectInstance = 0x11 => "find-next-object-instance",
        Restore = 0x15 => "restore",
        Save = 0x16 => "save",
        Nop = 0x17 => "nop",
        GetMember = 0x18 => "get-member",
        SetMember = 0x19 => "set-member",
        InsertMember = 0x1a => "insert-member",
        RemoveMember = 0x1b => "remove-member",
        GroupSync = 0x1c => "group-sync",
    }
}

codes! {
    /// Object-specific services of the Connection Manager (class 0x06; Volume 1, 3-5.5).
    pub enum ConnectionManagerService(u8) {
        ForwardClose = 0x4e => "forward-close",
        UnconnectedSend = 0x52 => "unconnected-send",
        ForwardOpen = 0x54 => "forward-open",
        GetConnectionData = 0x56 => "get-connection-data",
        SearchConnectionData = 0x57 => "search-connection-data",
        GetConnectionOwner = 0x5a => "get-connection-owner",
        LargeForwardOpen = 0x5b => "large-forward-open",
    }
}

codes! {
    /// Logix tag services (1756-PM020): on symbolic paths and on the Symbol (0x6B) and
    /// Template (0x6C) classes.
    pub enum TagService(u8) {
        ReadTag = 0x4c => "read-tag",
        WriteTag = 0x4d => "write-tag",
        ReadModifyWriteTag = 0x4e => "read-modify-write-tag",
        ReadTagFragmented = 0x52 => "read-tag-fragmented",
        WriteTagFragmented = 0x53 => "write-tag-fragmented",
        GetInstanceAttributeList = 0x55 => "get-instance-attribute-list",
    }
}

codes! {
    /// Object-specific services of the File object (class 0x37; Volume 1, 5-42).
    pub enum FileService(u8) {
        InitiateUpload = 0x4b => "initiate-upload",
        InitiateDownload = 0x4c => "initiate-download",
        InitiatePartialRead = 0x4d => "initiate-partial-read",
        InitiatePartialWrite = 0x4e => "initiate-partial-write",
        UploadTransfer = 0x4f => "upload-transfer",
        DownloadTransfer = 0x50 => "download-transfer",
        ClearFile = 0x51 => "clear-file",
    }
}

codes! {
    /// The PCCC object (class 0x67, Rockwell): PLC-5/SLC commands tunnelled in CIP.
    pub enum PcccService(u8) {
        ExecutePccc = 0x4b => "execute-pccc",
    }
}

codes! {
    /// Object classes (Volume 1, table 5-1.1, and the Rockwell classes Logix clients use).
    pub enum Class(u16) {
        Identity = 0x01 => "identity",
        MessageRouter = 0x02 => "message-router",
        DeviceNet = 0x03 => "devicenet",
        Assembly = 0x04 => "assembly",
        Connection = 0x05 => "connection",
        ConnectionManager = 0x06 => "connection-manager",
        Register = 0x07 => "register",
        DiscreteInputPoint = 0x08 => "discrete-input-point",
        DiscreteOutputPoint = 0x09 => "discrete-output-point",
        AnalogInputPoint = 0x0a => "analog-input-point",
        AnalogOutputPoint = 0x0b => "analog-output-point",
        PresenceSensing = 0x0e => "presence-sensing",
        Parameter = 0x0f => "parameter",
        ParameterGroup = 0x10 => "parameter-group",
        Group = 0x12 => "group",
        DiscreteInputGroup = 0x1d => "discrete-input-group",
        DiscreteOutputGroup = 0x1e => "discrete-output-group",
        DiscreteGroup = 0x1f => "discrete-group",
        AnalogInputGroup = 0x20 => "analog-input-group",
        AnalogOutputGroup = 0x21 => "analog-output-group",
        AnalogGroup = 0x22 => "analog-group",
        PositionSensor = 0x23 => "position-sensor",
        PositionControllerSupervisor = 0x24 => "position-controller-supervisor",
        PositionController = 0x25 => "position-controller",
        BlockSequencer = 0x26 => "block-sequencer",
        CommandBlock = 0x27 => "command-block",
        MotorData = 0x28 => "motor-data",
        ControlSupervisor = 0x29 => "control-supervisor",
        AcDcDrive = 0x2a => "ac-dc-drive",
        AcknowledgeHandler = 0x2b => "acknowledge-handler",
        Overload = 0x2c => "overload",
        Softstart = 0x2d => "softstart",
        Selection = 0x2e => "selection",
        SDeviceSupervisor = 0x30 => "s-device-supervisor",
        SAnalogSensor = 0x31 => "s-analog-sensor",
        SAnalogActuator = 0x32 => "s-analog-actuator",
        SSingleStageController = 0x33 => "s-single-stage-controller",
        SGasCalibration = 0x34 => "s-gas-calibration",
        TripPoint = 0x35 => "trip-point",
        File = 0x37 => "file",
        SPartialPressure = 0x38 => "s-partial-pressure",
        SafetySupervisor = 0x39 => "safety-supervisor",
        SafetyValidator = 0x3a => "safety-validator",
        SafetyDiscreteOutputPoint = 0x3b => "safety-discrete-output-point",
        SafetyDiscreteOutputGroup = 0x3c => "safety-discrete-output-group",
        SafetyDiscreteInputPoint = 0x3d => "safety-discrete-input-point",
        SafetyDiscreteInputGroup = 0x3e => "safety-discrete-input-group",
        SafetyDualChannelOutput = 0x3f => "safety-dual-channel-output",
        SSensorCalibration = 0x40 => "s-sensor-calibration",
        EventLog = 0x41 => "event-log",
        MotionAxis = 0x42 => "motion-axis",
        TimeSync = 0x43 => "time-sync",
        Modbus = 0x44 => "modbus",
        ModbusSerialLink = 0x46 => "modbus-serial-link",
        Qos = 0x48 => "qos",
        /// Rockwell: the controller's program name (Rockwell KB 23341).
        ProgramName = 0x64 => "program-name",
        /// Rockwell: PLC-5/SLC (PCCC) commands.
        Pccc = 0x67 => "pccc",
        /// Rockwell Logix: tags (symbol instances).
        Symbol = 0x6b => "symbol",
        /// Rockwell Logix: structure templates.
        Template = 0x6c => "template",
        /// Rockwell: the controller's clock.
        WallClockTime = 0x8b => "wall-clock-time",
        ControlNet = 0xf0 => "controlnet",
        ControlNetKeeper = 0xf1 => "controlnet-keeper",
        ControlNetScheduling = 0xf2 => "controlnet-scheduling",
        ConnectionConfiguration = 0xf3 => "connection-configuration",
        Port = 0xf4 => "port",
        TcpIpInterface = 0xf5 => "tcp-ip-interface",
        EthernetLink = 0xf6 => "ethernet-link",
        CompoNetLink = 0xf7 => "componet-link",
        CompoNetRepeater = 0xf8 => "componet-repeater",
    }
}

codes! {
    /// General status codes of responses (Volume 1, appendix B-1).
    pub enum GeneralStatus(u8) {
        Success = 0x00 => "success",
        ConnectionFailure = 0x01 => "connection-failure",
        ResourceUnavailable = 0x02 => "resource-unavailable",
        InvalidParameterValue = 0x03 => "invalid-parameter-value",
        PathSegmentError = 0x04 => "path-segment-error",
        PathDestinationUnknown = 0x05 => "path-destination-unknown",
        PartialTransfer = 0x06 => "partial-transfer",
        ConnectionLost = 0x07 => "connection-lost",
        ServiceNotSupported = 0x08 => "service-not-supported",
        InvalidAttributeValue = 0x09 => "invalid-attribute-value",
        AttributeListError = 0x0a => "attribute-list-error",
        AlreadyInRequestedMode = 0x0b => "already-in-requested-mode",
        ObjectStateConflict = 0x0c => "object-state-conflict",
        ObjectAlreadyExists = 0x0d => "object-already-exists",
        AttributeNotSettable = 0x0e => "attribute-not-settable",
        PrivilegeViolation = 0x0f => "privilege-violation",
        DeviceStateConflict = 0x10 => "device-state-conflict",
        ReplyDataTooLarge = 0x11 => "reply-data-too-large",
        FragmentationOfPrimitive = 0x12 => "fragmentation-of-a-primitive-value",
        NotEnoughData = 0x13 => "not-enough-data",
        AttributeNotSupported = 0x14 => "attribute-not-supported",
        TooMuchData = 0x15 => "too-much-data",
        ObjectDoesNotExist = 0x16 => "object-does-not-exist",
        ServiceFragmentation = 0x17 => "service-fragmentation-sequence-not-in-progress",
        NoStoredAttributeData = 0x18 => "no-stored-attribute-data",
        StoreOperationFailure = 0x19 => "store-operation-failure",
        RequestTooLarge = 0x1a => "routing-failure-request-too-large",
        ResponseTooLarge = 0x1b => "routing-failure-response-too-large",
        MissingAttributeListEntry = 0x1c => "missing-attribute-list-entry-data",
        InvalidAttributeValueList = 0x1d => "invalid-attribute-value-list",
        EmbeddedServiceError = 0x1e => "embedded-service-error",
        VendorSpecific = 0x1f => "vendor-specific-error",
        InvalidParameter = 0x20 => "invalid-parameter",
        WriteOnceValue = 0x21 => "write-once-value-or-medium-already-written",
        InvalidReplyReceived = 0x22 => "invalid-reply-received",
        BufferOverflow = 0x23 => "buffer-overflow",
        MessageFormatError = 0x24 => "message-format-error",
        KeyFailureInPath = 0x25 => "key-failure-in-path",
        PathSizeInvalid = 0x26 => "path-size-invalid",
        UnexpectedAttribute = 0x27 => "unexpected-attribute-in-list",
        InvalidMemberId = 0x28 => "invalid-member-id",
        MemberNotSettable = 0x29 => "member-not-settable",
    }
}

codes! {
    /// The connection type of Forward Open network connection parameters.
    pub enum ConnectionType(u8) {
        Null = 0 => "null",
        Multicast = 1 => "multicast",
        PointToPoint = 2 => "point-to-point",
    }
}

/// Which table names an object-specific service code (0x4B–0x63): the class decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The Connection Manager (class 0x06).
    ConnectionManager,
    /// Logix tags: a symbolic path, or the Symbol (0x6B) or Template (0x6C) class.
    Tag,
    /// The File object (class 0x37).
    File,
    /// The PCCC object (class 0x67).
    Pccc,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::ConnectionManager,
        Scope::Tag,
        Scope::File,
        Scope::Pccc,
    ];

    /// The scope of a request to `class`, or (no class) by symbolic path.
    pub fn of(class: Option<u32>, symbolic: bool) -> Option<Scope> {
        match class {
            Some(0x06) => Some(Scope::ConnectionManager),
            Some(0x37) => Some(Scope::File),
            Some(0x67) => Some(Scope::Pccc),
            Some(0x6b | 0x6c) => Some(Scope::Tag),
            None if symbolic => Some(Scope::Tag),
            _ => None,
        }
    }

    /// Every named object-specific service of this scope, as (name, code).
    pub fn names(self) -> &'static [(&'static str, u8)] {
        match self {
            Scope::ConnectionManager => ConnectionManagerService::NAMES,
            Scope::Tag => TagService::NAMES,
            Scope::File => FileService::NAMES,
            Scope::Pccc => PcccService::NAMES,
        }
    }
}

/// The name of service `code` on an object of `scope`: common services by their code,
/// object-specific ones (0x4B–0x63) by the table of their class. `None` for a code
/// without a name there.
pub fn service_name(code: u8, scope: Option<Scope>) -> Option<&'static str> {
    if !OBJECT_SPECIFIC.contains(&code) {
        return Service::from(code).name();
    }
    let scope = scope?;
    scope
        .names()
        .iter()
        .find(|&&(_, c)| c == code)
        .map(|&(n, _)| n)
}

/// The class that a symbolic path addresses when it names no class: the Symbol object.
pub const SYMBOL_CLASS: u32 = 0x6b;

/// Kinds of logical segment that carry a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Logical {
    Class,
    Instance,
    /// A member id; Logix uses it for array elements (`Tag[3]`).
    Member,
    ConnectionPoint,
    Attribute,
}

/// One segment of an EPATH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Route through `port` to the node at `link` (a slot, a node address, an IP address
    /// as text).
    Port {
        port: u16,
        link: &'a [u8],
    },
    Logical {
        kind: Logical,
        value: u32,
    },
    /// An electronic key (format 4: vendor, device type, product code, revision).
    ElectronicKey(&'a [u8]),
    ServiceId(u8),
    Network {
        kind: u8,
        data: &'a [u8],
    },
    /// A name: ANSI extended symbol (0x91) or a symbolic segment of ASCII characters.
    Symbol(&'a [u8]),
    /// A symbolic segment of double- or triple-byte characters, or a numeric symbol.
    ExtendedSymbol(&'a [u8]),
    /// A simple data segment (0x80): configuration data in a connection path.
    Data(&'a [u8]),
}

/// A checked, padded EPATH: after [`Path::new_checked`] every segment parses and the
/// segments cover the bytes exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Path<'a> {
    bytes: &'a [u8],
}

/// What a path addresses: the first of each kind of logical segment, and whether it
/// names a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Target {
    pub class: Option<u32>,
    pub instance: Option<u32>,
    pub attribute: Option<u32>,
    pub member: Option<u32>,
    pub connection_point: Option<u32>,
    pub symbolic: bool,
}

impl Target {
    /// The class of the object addressed: the class segment, else the Symbol class for
    /// a symbolic path.
    pub fn object(&self) -> Option<u32> {
        self.class.or(self.symbolic.then_some(SYMBOL_CLASS))
    }

    /// The table that names object-specific services on this object.
    pub fn scope(&self) -> Option<Scope> {
        Scope::of(self.class, self.symbolic)
    }
}

/// Reads one segment at the start of `bytes`; returns it and how many bytes it took
/// (padding included).
fn segment(bytes: &[u8]) -> Result<(Segment<'_>, usize), Malformed> {
    let mut r = Reader::new(P, bytes);
    let short = "path segment truncated";
    let first = r.u8(short)?;
    let seg = match first {
        0x00..=0x1f => {
            let link_len = if first & 0x10 != 0 {
                usize::from(r.u8(short)?)
            } else {
                1
            };
            let port = match first & 0x0f {
                0 => return Err(r.error("port segment with port 0")),
                15 => r.le_u16(short)?,
                p => u16::from(p),
            };
            let link = r.take(link_len, short)?;
            Segment::Port { port, link }
        }
        0x34 => {
            if r.u8(short)? != 4 {
                return Err(r.error("electronic key format is not 4"));
            }
            Segment::ElectronicKey(r.take(8, short)?)
        }
        0x38 => Segment::ServiceId(r.u8(short)?),
        0x35..=0x37 | 0x39..=0x3b => return Err(r.error("reserved logical segment")),
        0x3c..=0x3f => return Err(r.error("extended logical segment not supported")),
        0x20..=0x33 => {
            let value = match first & 3 {
                0 => u32::from(r.u8(short)?),
                1 => {
                    r.skip(1, short)?;
                    u32::from(r.le_u16(short)?)
                }
                2 => {
                    r.skip(1, short)?;
                    r.le_u32(short)?
                }
                _ => return Err(r.error("reserved logical segment format")),
            };
            let kind = match (first >> 2) & 7 {
                0 => Logical::Class,
                1 => Logical::Instance,
                2 => Logical::Member,
                3 => Logical::ConnectionPoint,
                _ => Logical::Attribute,
            };
            Segment::Logical { kind, value }
        }
        0x40..=0x5f => {
            let data = if first & 0x10 != 0 {
                let words = usize::from(r.u8(short)?);
                r.take(2 * words, short)?
            } else {
                r.take(1, short)?
            };
            Segment::Network {
                kind: first & 0x1f,
                data,
            }
        }
        0x61..=0x7f => Segment::Symbol(r.take(usize::from(first & 0x1f), short)?),
        0x60 => {
            let ext = r.u8(short)?;
            let n = usize::from(ext & 0x1f);
            let len = match (ext >> 5, n) {
                (1, _) => 2 * n,
                (2, _) => 3 * n,
                (6, 6) => 1,
                (6, 7) => 2,
                (6, 8) => 4,
                _ => return Err(r.error("reserved extended symbol format")),
            };
            Segment::ExtendedSymbol(r.take(len, short)?)
        }
        0x80 => {
            let words = usize::from(r.u8(short)?);
            Segment::Data(r.take(2 * words, short)?)
        }
        0x91 => {
            let len = usize::from(r.u8(short)?);
            if len == 0 {
                return Err(r.error("empty symbol"));
            }
            Segment::Symbol(r.take(len, short)?)
        }
        0x81..=0x9f => return Err(r.error("reserved data segment")),
        0xa0..=0xdf => return Err(r.error("data type segment in a path")),
        0xe0..=0xff => return Err(r.error("reserved segment type")),
    };
    // Padded EPATH: every segment ends on a 16-bit boundary.
    if r.position() % 2 == 1 && r.u8(short)? != 0 {
        return Err(r.error("path pad byte is not 0"));
    }
    Ok((seg, r.position()))
}

impl<'a> Path<'a> {
    /// Checks every segment of a padded EPATH.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Path<'a>, Malformed> {
        let mut pos = 0;
        while pos < bytes.len() {
            let (_, used) = segment(&bytes[pos..])?;
            pos += used;
        }
        Ok(Path { bytes })
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Length in 16-bit words.
    pub fn words(&self) -> usize {
        self.bytes.len() / 2
    }

    pub fn segments(&self) -> Segments<'a> {
        Segments {
            bytes: self.bytes,
            pos: 0,
        }
    }

    /// What the path addresses.
    pub fn target(&self) -> Target {
        let mut t = Target::default();
        for seg in self.segments() {
            match seg {
                Segment::Logical { kind, value } => {
                    let slot = match kind {
                        Logical::Class => &mut t.class,
                        Logical::Instance => &mut t.instance,
                        Logical::Attribute => &mut t.attribute,
                        Logical::Member => &mut t.member,
                        Logical::ConnectionPoint => &mut t.connection_point,
                    };
                    slot.get_or_insert(value);
                }
                Segment::Symbol(_) | Segment::ExtendedSymbol(_) => t.symbolic = true,
                _ => {}
            }
        }
        t
    }

    /// Whether every segment is a port segment (a route path).
    pub fn is_route(&self) -> bool {
        self.segments().all(|s| matches!(s, Segment::Port { .. }))
    }

    /// Writes the tag name the path spells into `out`: symbols joined with `.`, and,
    /// with `indices`, the member ids that follow a symbol as `[1,2]`. Characters other
    /// than printable ASCII are written as `?`; an extended symbol as `?`. Returns the
    /// length written and whether the whole name fitted.
    pub fn tag(&self, out: &mut [u8], indices: bool) -> (usize, bool) {
        let mut w = TagWriter {
            out,
            n: 0,
            full: false,
        };
        let mut symbols = 0usize;
        let mut after_symbol = false;
        let mut open = false;
        for seg in self.segments() {
            match seg {
                Segment::Symbol(name) | Segment::ExtendedSymbol(name) => {
                    if open {
                        w.put(b']');
                        open = false;
                    }
                    if symbols > 0 {
                        w.put(b'.');
                    }
                    symbols += 1;
                    if matches!(seg, Segment::ExtendedSymbol(_)) {
                        w.put(b'?');
                    } else {
                        for &c in name {
                            w.put(if (0x21..0x7f).contains(&c) { c } else { b'?' });
                        }
                    }
                    after_symbol = true;
                }
                Segment::Logical {
                    kind: Logical::Member,
                    value,
                } if after_symbol => {
                    if indices {
                        w.put(if open { b',' } else { b'[' });
                        w.number(value);
                        open = true;
                    }
                }
                _ => {
                    if open {
                        w.put(b']');
                        open = false;
                    }
                    after_symbol = false;
                }
            }
        }
        if open {
            w.put(b']');
        }
        (w.n, !w.full)
    }
}

struct TagWriter<'o> {
    out: &'o mut [u8],
    n: usize,
    full: bool,
}

impl TagWriter<'_> {
    fn put(&mut self, c: u8) {
        match self.out.get_mut(self.n) {
            Some(slot) => {
                *slot = c;
                self.n += 1;
            }
            None => self.full = true,
        }
    }

    fn number(&mut self, mut v: u32) {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            self.put(d);
        }
    }
}

/// The segments of a checked path.
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let rest = self.bytes.get(self.pos..).filter(|r| !r.is_empty())?;
        match segment(rest) {
            Ok((seg, used)) => {
                self.pos += used;
                Some(seg)
            }
            // Cannot happen on a checked path; ends the walk rather than panicking.
            Err(_) => {
                self.pos = self.bytes.len();
                None
            }
        }
    }
}

/// Which structure a request's data has, decided by its service and class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Opaque service data.
    Plain,
    /// Multiple Service Packet (0x0A): embedded requests.
    Multiple,
    /// Connection Manager Unconnected Send (0x52): one embedded request and a route.
    UnconnectedSend,
    /// Connection Manager Forward Open (0x54) or Large Forward Open (0x5B).
    ForwardOpen { large: bool },
    /// Connection Manager Forward Close (0x4E).
    ForwardClose,
}

/// A checked Message Router request: service, path, data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    service: u8,
    path: Path<'a>,
    data: &'a [u8],
    /// The data goes on beyond the inspection buffer.
    cut: bool,
    kind: Kind,
    /// Some embedded request, at any depth, lies beyond the inspection buffer.
    unseen: bool,
}

/// Network connection parameters of a Forward Open (Volume 1, 3-5.5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params {
    /// Requested packet interval, in microseconds.
    pub rpi: u32,
    /// Connection size in bytes.
    pub size: u16,
    pub kind: u8,
    pub priority: u8,
    pub variable: bool,
    pub redundant_owner: bool,
}

impl Params {
    fn from_u16(rpi: u32, p: u16) -> Params {
        Params {
            rpi,
            size: p & 0x01ff,
            kind: ((p >> 13) & 3) as u8,
            priority: ((p >> 10) & 3) as u8,
            variable: p & 0x0200 != 0,
            redundant_owner: p & 0x8000 != 0,
        }
    }

    fn from_u32(rpi: u32, p: u32) -> Params {
        Params {
            rpi,
            size: (p & 0xffff) as u16,
            kind: ((p >> 29) & 3) as u8,
            priority: ((p >> 26) & 3) as u8,
            variable: p & 0x0200_0000 != 0,
            redundant_owner: p & 0x8000_0000 != 0,
        }
    }

    pub fn connection_type(&self) -> ConnectionType {
        ConnectionType::from(self.kind)
    }
}

/// The fixed fields of a Forward Open request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ForwardOpen {
    pub large: bool,
    pub o_t_connection: u32,
    pub t_o_connection: u32,
    pub serial: u16,
    pub vendor: u16,
    pub originator_serial: u32,
    pub timeout_multiplier: u8,
    pub o_t: Params,
    pub t_o: Params,
    /// Transport class and trigger: direction (bit 7), trigger (bits 6-4), class (3-0).
    pub transport: u8,
}

impl ForwardOpen {
    /// The transport class: 0 and 1 for implicit I/O, 3 for explicit messaging.
    pub fn transport_class(&self) -> u8 {
        self.transport & 0x0f
    }
}

/// Parses one Message Router request. `cut` says the bytes are the first part of it
/// (the message is longer than the inspection buffer).
pub fn parse_request(bytes: &[u8], cut: bool) -> Result<Request<'_>, Malformed> {
    parse_request_at(bytes, cut, 0)
}

fn parse_request_at(bytes: &[u8], cut: bool, depth: u8) -> Result<Request<'_>, Malformed> {
    let mut r = Reader::new(P, bytes);
    let service = r.u8("empty CIP request")?;
    if service & 0x80 != 0 {
        return Err(r.error("response service code in a request"));
    }
    let words = usize::from(r.u8("request path size missing")?);
    if 2 * words > r.remaining() {
        return Err(r.error(if cut {
            "request path beyond the inspection buffer"
        } else {
            "request path truncated"
        }));
    }
    let path = Path::new_checked(r.take(2 * words, "request path truncated")?)?;
    let class = path.target().class;
    let kind = match (service, class) {
        (0x0a, _) => Kind::Multiple,
        (0x52, Some(0x06)) => Kind::UnconnectedSend,
        (0x54, Some(0x06)) => Kind::ForwardOpen { large: false },
        (0x5b, Some(0x06)) => Kind::ForwardOpen { large: true },
        (0x4e, Some(0x06)) => Kind::ForwardClose,
        _ => Kind::Plain,
    };
    let mut req = Request {
        service,
        path,
        data: r.rest(),
        cut,
        kind,
        unseen: false,
    };
    match kind {
        Kind::Plain => {}
        Kind::Multiple | Kind::UnconnectedSend => {
            if depth >= MAX_DEPTH {
                return Err(r.error("requests nested too deeply"));
            }
            req.check_route()?;
            let mut inner = Embedded::new(&req);
            while let Some(slot) = inner.next_slot()? {
                let e = parse_request_at(slot.0, slot.1, depth + 1)?;
                req.unseen |= e.unseen;
            }
            req.unseen |= inner.unseen;
        }
        Kind::ForwardOpen { .. } | Kind::ForwardClose => {
            req.connection_fields()?;
        }
    }
    Ok(req)
}

impl<'a> Request<'a> {
    /// The service code (bit 7 clear).
    pub fn service(&self) -> u8 {
        self.service
    }

    pub fn path(&self) -> Path<'a> {
        self.path
    }

    /// The request data (after the path), as far as it was seen.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Whether the data goes on beyond the inspection buffer.
    pub fn is_cut(&self) -> bool {
        self.cut
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether some embedded request, at any depth, lies beyond the inspection buffer
    /// (so it could not be judged).
    pub fn has_unseen(&self) -> bool {
        self.unseen
    }

    /// What the request path addresses.
    pub fn target(&self) -> Target {
        self.path.target()
    }

    /// The name of the service, resolved by the class for object-specific codes.
    pub fn service_name(&self) -> Option<&'static str> {
        service_name(self.service, self.target().scope())
    }

    /// The requests this one carries (Multiple Service Packet, Unconnected Send), as far
    /// as they were seen.
    pub fn embedded(&self) -> Embedded<'a> {
        Embedded::new(self)
    }

    /// Calls `f` for this request and then, depth first, every request it carries.
    pub fn for_each<E>(&self, f: &mut dyn FnMut(&Request<'a>) -> Result<(), E>) -> Result<(), E> {
        f(self)?;
        for inner in self.embedded() {
            // Depth is bounded: parsing refused more than MAX_DEPTH levels.
            inner.for_each(f)?;
        }
        Ok(())
    }

    /// The fixed fields of a Forward Open.
    pub fn forward_open(&self) -> Option<ForwardOpen> {
        match self.kind {
            Kind::ForwardOpen { .. } => self.connection_fields().ok().and_then(|(f, _)| f),
            _ => None,
        }
    }

    /// The connection path of a Forward Open or Forward Close: what the connection is to.
    pub fn connection_path(&self) -> Option<Path<'a>> {
        match self.kind {
            Kind::ForwardOpen { .. } | Kind::ForwardClose => {
                self.connection_fields().ok().map(|(_, p)| p)
            }
            _ => None,
        }
    }

    /// The route of an Unconnected Send (port segments), when it was seen.
    pub fn route(&self) -> Option<Path<'a>> {
        if self.kind != Kind::UnconnectedSend {
            return None;
        }
        self.route_fields().ok().flatten()
    }

    /// The object the request acts on: the connection's application object for Forward
    /// Open and Forward Close, else what the request path addresses.
    pub fn object_path(&self) -> Path<'a> {
        self.connection_path().unwrap_or(self.path)
    }

    /// Forward Open / Forward Close: the fixed fields and the connection path.
    fn connection_fields(&self) -> Result<(Option<ForwardOpen>, Path<'a>), Malformed> {
        let mut r = Reader::new(P, self.data);
        let short = if self.cut {
            "connection request beyond the inspection buffer"
        } else {
            "connection request truncated"
        };
        let _tick = r.u8(short)?;
        let _timeout = r.u8(short)?;
        let open = match self.kind {
            Kind::ForwardOpen { large } => {
                let o_t_connection = r.le_u32(short)?;
                let t_o_connection = r.le_u32(short)?;
                let serial = r.le_u16(short)?;
                let vendor = r.le_u16(short)?;
                let originator_serial = r.le_u32(short)?;
                let timeout_multiplier = r.u8(short)?;
                r.skip(3, short)?;
                let o_t_rpi = r.le_u32(short)?;
                let o_t = if large {
                    Params::from_u32(o_t_rpi, r.le_u32(short)?)
                } else {
                    Params::from_u16(o_t_rpi, r.le_u16(short)?)
                };
                let t_o_rpi = r.le_u32(short)?;
                let t_o = if large {
                    Params::from_u32(t_o_rpi, r.le_u32(short)?)
                } else {
                    Params::from_u16(t_o_rpi, r.le_u16(short)?)
                };
                let transport = r.u8(short)?;
                Some(ForwardOpen {
                    large,
                    o_t_connection,
                    t_o_connection,
                    serial,
                    vendor,
                    originator_serial,
                    timeout_multiplier,
                    o_t,
                    t_o,
                    transport,
                })
            }
            _ => {
                // Forward Close: serial, vendor, originator serial.
                r.skip(8, short)?;
                None
            }
        };
        let words = usize::from(r.u8(short)?);
        if open.is_none() {
            r.skip(1, short)?; // reserved
        }
        let path = Path::new_checked(r.take(2 * words, short)?)?;
        if !self.cut && !r.is_empty() {
            return Err(r.error("bytes after the connection path"));
        }
        Ok((open, path))
    }

    /// Unconnected Send: the route path after the embedded request, `None` when it lies
    /// beyond the inspection buffer.
    fn route_fields(&self) -> Result<Option<Path<'a>>, Malformed> {
        let mut r = Reader::new(P, self.data);
        let short = "unconnected send truncated";
        r.skip(2, short)?;
        let size = usize::from(r.le_u16(short)?);
        if size > r.remaining() {
            return if self.cut {
                Ok(None)
            } else {
                Err(r.error("embedded request truncated"))
            };
        }
        r.skip(size, short)?;
        let cut = |r: &Reader<'_>| -> Result<Option<Path<'a>>, Malformed> {
            if self.cut {
                Ok(None)
            } else {
                Err(r.error("route path truncated"))
            }
        };
        if size % 2 == 1 && r.skip(1, short).is_err() {
            return cut(&r);
        }
        let Ok(words) = r.u8(short) else {
            return cut(&r);
        };
        if r.skip(1, short).is_err() {
            return cut(&r);
        }
        let Ok(bytes) = r.take(2 * usize::from(words), short) else {
            return cut(&r);
        };
        let path = Path::new_checked(bytes)?;
        if path.is_empty() {
            return Err(r.error("empty route path"));
        }
        if !path.is_route() {
            return Err(r.error("route path holds a segment other than a port"));
        }
        if !self.cut && !r.is_empty() {
            return Err(r.error("bytes after the route path"));
        }
        Ok(Some(path))
    }

    fn check_route(&self) -> Result<(), Malformed> {
        if self.kind == Kind::UnconnectedSend {
            self.route_fields()?;
        }
        Ok(())
    }
}

/// The requests a Multiple Service Packet or an Unconnected Send carries.
#[derive(Debug, Clone)]
pub struct Embedded<'a> {
    data: &'a [u8],
    cut: bool,
    kind: Kind,
    /// Next embedded request.
    index: usize,
    count: usize,
    done: bool,
    /// A request past the inspection buffer was left out.
    unseen: bool,
}

impl<'a> Embedded<'a> {
    fn new(req: &Request<'a>) -> Embedded<'a> {
        Embedded {
            data: req.data,
            cut: req.cut,
            kind: req.kind,
            index: 0,
            count: 0,
            done: !matches!(req.kind, Kind::Multiple | Kind::UnconnectedSend),
            unseen: false,
        }
    }

    /// The bytes of the next embedded request and whether they are cut short; `None`
    /// past the last one seen.
    fn next_slot(&mut self) -> Result<Option<(&'a [u8], bool)>, Malformed> {
        if self.done {
            return Ok(None);
        }
        let mut r = Reader::new(P, self.data);
        match self.kind {
            Kind::UnconnectedSend => {
                self.done = true;
                let short = "unconnected send truncated";
                r.skip(2, short)?;
                let size = usize::from(r.le_u16(short)?);
                if size == 0 {
                    return Err(r.error("empty embedded request"));
                }
                if size <= r.remaining() {
                    Ok(Some((r.take(size, short)?, false)))
                } else if self.cut {
                    Ok(Some((r.rest(), true)))
                } else {
                    Err(r.error("embedded request truncated"))
                }
            }
            _ => {
                let short = if self.cut {
                    "multiple service packet beyond the inspection buffer"
                } else {
                    "multiple service packet truncated"
                };
                if self.index == 0 {
                    self.count = usize::from(r.le_u16(short)?);
                    if self.count == 0 {
                        return Err(r.error("multiple service packet holds no request"));
                    }
                }
                let table = 2 + 2 * self.count;
                let offset = |i: usize| -> Option<usize> {
                    let b = self.data.get(2 + 2 * i..4 + 2 * i)?;
                    Some(usize::from(u16::from_le_bytes([b[0], b[1]])))
                };
                let i = self.index;
                if i >= self.count {
                    self.done = true;
                    return Ok(None);
                }
                let Some(start) = offset(i) else {
                    // The offset table itself runs past what was seen.
                    self.done = true;
                    return if self.cut {
                        self.unseen = true;
                        Ok(None)
                    } else {
                        Err(r.error("multiple service packet offsets truncated"))
                    };
                };
                if (i == 0 && start != table) || start < table {
                    return Err(r.error("multiple service packet offset out of place"));
                }
                let end = if i + 1 < self.count {
                    match offset(i + 1) {
                        Some(end) => end,
                        None if self.cut => usize::MAX,
                        None => return Err(r.error("multiple service packet offsets truncated")),
                    }
                } else if self.cut {
                    usize::MAX
                } else {
                    self.data.len()
                };
                if end <= start {
                    return Err(r.error("multiple service packet offsets not increasing"));
                }
                if start >= self.data.len() {
                    self.done = true;
                    return if self.cut {
                        self.unseen = true;
                        Ok(None)
                    } else {
                        Err(r.error("multiple service packet offset past the end"))
                    };
                }
                if end != usize::MAX && end > self.data.len() && !self.cut {
                    return Err(r.error("multiple service packet offset past the end"));
                }
                self.index += 1;
                let seen_end = end.min(self.data.len());
                Ok(Some((&self.data[start..seen_end], end > self.data.len())))
            }
        }
    }
}

impl<'a> Iterator for Embedded<'a> {
    type Item = Request<'a>;

    fn next(&mut self) -> Option<Request<'a>> {
        // The packet was checked when its outer request was parsed: errors cannot
        // happen here, and end the walk if they did.
        match self.next_slot() {
            Ok(Some((bytes, cut))) => parse_request(bytes, cut).ok(),
            _ => {
                self.done = true;
                None
            }
        }
    }
}

/// A checked Message Router response: reply service, general and additional status,
/// data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    service: u8,
    general_status: u8,
    additional: &'a [u8],
    data: &'a [u8],
}

/// Parses one Message Router response (`bytes` may be its first part when `cut`).
pub fn parse_response(bytes: &[u8], cut: bool) -> Result<Response<'_>, Malformed> {
    let mut r = Reader::new(P, bytes);
    let short = "CIP response header truncated";
    let service = r.u8(short)?;
    if service & 0x80 == 0 {
        return Err(r.error("request service code in a response"));
    }
    let _reserved = r.u8(short)?;
    let general_status = r.u8(short)?;
    let words = usize::from(r.u8(short)?);
    let additional = if 2 * words <= r.remaining() {
        r.take(2 * words, short)?
    } else if cut {
        r.rest()
    } else {
        return Err(r.error("additional status truncated"));
    };
    Ok(Response {
        service: service & 0x7f,
        general_status,
        additional,
        data: r.rest(),
    })
}

impl<'a> Response<'a> {
    /// The service answered (the reply bit taken off).
    pub fn service(&self) -> u8 {
        self.service
    }

    pub fn general_status(&self) -> GeneralStatus {
        GeneralStatus::from(self.general_status)
    }

    /// Additional status words, as bytes.
    pub fn additional_status(&self) -> &'a [u8] {
        self.additional
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn tag(bytes: &[u8], indices: bool) -> std::string::String {
        let p = Path::new_checked(bytes).unwrap();
        let mut out = [0u8; 64];
        let (n, whole) = p.tag(&mut out, indices);
        assert!(whole);
        std::string::String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn logical_segments_in_every_format() {
        // Volume 1, C-1.4.2 examples: class 8-bit, instance 16-bit, attribute 8-bit.
        let p = Path::new_checked(&[0x20, 0x01, 0x25, 0x00, 0x01, 0x02, 0x30, 0x07]).unwrap();
        let t = p.target();
        assert_eq!(
            (t.class, t.instance, t.attribute),
            (Some(1), Some(0x0201), Some(7))
        );
        let p = Path::new_checked(&[0x21, 0x00, 0x6b, 0x00, 0x26, 0x00, 1, 2, 3, 4]).unwrap();
        assert_eq!(p.target().class, Some(0x6b));
        assert_eq!(p.target().instance, Some(0x0403_0201));
        assert!(Path::new_checked(&[0x23, 0x00]).is_err(), "reserved format");
        assert!(Path::new_checked(&[0x20]).is_err(), "truncated");
        assert!(
            Path::new_checked(&[0x3c, 0x00]).is_err(),
            "extended logical"
        );
        assert!(Path::new_checked(&[0xe0, 0x00]).is_err(), "reserved type");
    }

    #[test]
    fn port_segments_and_keys() {
        // Backplane port 1, slot 0; then an IP address as an extended link address.
        let p = Path::new_checked(&[
            0x01, 0x00, 0x12, 0x09, b'1', b'0', b'.', b'0', b'.', b'0', b'.', b'1', b'0', 0x00,
        ])
        .unwrap();
        let segs: std::vec::Vec<_> = p.segments().collect();
        assert_eq!(
            segs,
            [
                Segment::Port {
                    port: 1,
                    link: &[0]
                },
                Segment::Port {
                    port: 2,
                    link: b"10.0.0.10"
                }
            ]
        );
        assert!(p.is_route());
        assert!(
            Path::new_checked(&[0x10, 0x09, 0x00]).is_err(),
            "short link"
        );
        assert!(Path::new_checked(&[0x00, 0x01]).is_err(), "port 0");
        // Electronic key (format 4) before the message router.
        let key = [
            0x34, 0x04, 1, 0, 0x0e, 0, 0x36, 0, 20, 11, 0x20, 0x02, 0x24, 0x01,
        ];
        let p = Path::new_checked(&key).unwrap();
        assert_eq!(p.target().class, Some(2));
        assert!(Path::new_checked(&key[..8]).is_err());
    }

    #[test]
    fn symbolic_paths_spell_tag_names() {
        // Read of `Setpoint[0]` as cpppo 5.2 sends it (captured on loopback).
        let p = [
            0x91, 0x08, b'S', b'e', b't', b'p', b'o', b'i', b'n', b't', 0x28, 0x00,
        ];
        assert_eq!(tag(&p, true), "Setpoint[0]");
        assert_eq!(tag(&p, false), "Setpoint");
        let t = Path::new_checked(&p).unwrap().target();
        assert!(t.symbolic && t.class.is_none());
        assert_eq!(t.object(), Some(SYMBOL_CLASS));
        assert_eq!(t.scope(), Some(Scope::Tag));
        // Program-scoped, odd length (a pad byte), two-dimensional element, member.
        let mut p = std::vec![0x91, 12];
        p.extend_from_slice(b"Program:Main");
        p.extend_from_slice(&[
            0x91, 0x03, b'T', b'a', b'b', 0x00, 0x28, 2, 0x29, 0, 0x10, 0x01,
        ]);
        p.extend_from_slice(&[0x91, 0x02, b'O', b'k']);
        assert_eq!(tag(&p, true), "Program:Main.Tab[2,272].Ok");
        assert_eq!(tag(&p, false), "Program:Main.Tab.Ok");
        // A pad byte that is not 0 and an empty symbol are malformed.
        assert!(Path::new_checked(&[0x91, 0x01, b'a', 0x01]).is_err());
        assert!(Path::new_checked(&[0x91, 0x00]).is_err());
    }

    #[test]
    fn object_specific_names_depend_on_the_class() {
        assert_eq!(service_name(0x0e, None), Some("get-attribute-single"));
        assert_eq!(
            service_name(0x4e, Some(Scope::ConnectionManager)),
            Some("forward-close")
        );
        assert_eq!(
            service_name(0x4e, Some(Scope::Tag)),
            Some("read-modify-write-tag")
        );
        assert_eq!(
            service_name(0x4e, Some(Scope::File)),
            Some("initiate-partial-write")
        );
        assert_eq!(
            service_name(0x52, Some(Scope::Tag)),
            Some("read-tag-fragmented")
        );
        assert_eq!(
            service_name(0x52, Some(Scope::ConnectionManager)),
            Some("unconnected-send")
        );
        assert_eq!(service_name(0x52, None), None);
        assert_eq!(service_name(0x4b, Some(Scope::Pccc)), Some("execute-pccc"));
        assert_eq!(Scope::of(Some(0x6c), false), Some(Scope::Tag));
        assert_eq!(Scope::of(Some(0x04), true), None);
    }

    #[test]
    fn multiple_service_packet_from_cpppo() {
        // cpppo 5.2 `--multiple Setpoint[0-3] Level`, the request inside the
        // Unconnected Send (captured on loopback).
        let msp = [
            0x0a, 0x02, 0x20, 0x02, 0x24, 0x01, 0x02, 0x00, 0x06, 0x00, 0x16, 0x00, 0x4c, 0x06,
            0x91, 0x08, b'S', b'e', b't', b'p', b'o', b'i', b'n', b't', 0x28, 0x00, 0x04, 0x00,
            0x4c, 0x04, 0x91, 0x05, b'L', b'e', b'v', b'e', b'l', 0x00, 0x01, 0x00,
        ];
        let r = parse_request(&msp, false).unwrap();
        assert_eq!(r.kind(), Kind::Multiple);
        let inner: std::vec::Vec<_> = r.embedded().collect();
        assert_eq!(inner.len(), 2);
        assert_eq!(inner[0].service_name(), Some("read-tag"));
        assert_eq!(inner[1].data(), &[0x01, 0x00]);
        let mut n = 0;
        r.for_each::<()>(&mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 3);
        // Cut after the first embedded request: the second is unseen, not malformed.
        let cut = parse_request(&msp[..26], true).unwrap();
        assert!(cut.has_unseen());
        assert_eq!(cut.embedded().count(), 1);
        assert!(parse_request(&msp[..26], false).is_err());
        // Offsets out of place, not increasing, zero requests.
        let mut bad = msp;
        bad[8] = 0x08;
        assert!(parse_request(&bad, false).is_err());
        let mut bad = msp;
        bad[10] = 0x06;
        assert!(parse_request(&bad, false).is_err());
        assert!(parse_request(&[0x0a, 0x02, 0x20, 0x02, 0x24, 0x01, 0, 0], false).is_err());
    }

    #[test]
    fn unconnected_send_and_forward_open_from_pycomm3() {
        // pycomm3 1.2 `CIPDriver.open()`: Unconnected Send of Get Attributes All to the
        // identity object, route port 1 slot 0 (captured on loopback).
        let ucmm = [
            0x52, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0a, 0x05, 0x06, 0x00, 0x01, 0x02, 0x20, 0x01,
            0x24, 0x01, 0x01, 0x00, 0x01, 0x00,
        ];
        let r = parse_request(&ucmm, false).unwrap();
        assert_eq!(r.kind(), Kind::UnconnectedSend);
        assert_eq!(r.service_name(), Some("unconnected-send"));
        let inner = r.embedded().next().unwrap();
        assert_eq!(inner.service_name(), Some("get-attributes-all"));
        assert_eq!(inner.target().class, Some(1));
        assert_eq!(r.route().unwrap().as_bytes(), &[0x01, 0x00]);
        assert!(parse_request(&ucmm[..ucmm.len() - 2], false).is_err());
        let mut bad = ucmm;
        bad[18] = 0x20; // a logical segment in the route
        assert!(parse_request(&bad, false).is_err());
        // Its Large Forward Open of a class 3 connection to the message router.
        let lfo = [
            0x5b, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0a, 0x05, 0x00, 0x00, 0x00, 0x00, 0x9e, 0xe3,
            0x1a, 0xef, 0x27, 0x04, 0x09, 0x10, 0x04, 0xb3, 0xe1, 0x56, 0x07, 0x00, 0x00, 0x00,
            0x01, 0x40, 0x20, 0x00, 0xa0, 0x0f, 0x00, 0x42, 0x01, 0x40, 0x20, 0x00, 0xa0, 0x0f,
            0x00, 0x42, 0xa3, 0x03, 0x01, 0x00, 0x20, 0x02, 0x24, 0x01,
        ];
        let r = parse_request(&lfo, false).unwrap();
        let fo = r.forward_open().unwrap();
        assert!(fo.large);
        assert_eq!(fo.transport_class(), 3);
        assert_eq!(
            (fo.o_t.size, fo.o_t.connection_type()),
            (4000, ConnectionType::PointToPoint)
        );
        assert_eq!(fo.t_o_connection, 0xef1a_e39e);
        assert_eq!(r.object_path().target().class, Some(2));
        assert!(parse_request(&lfo[..lfo.len() - 1], false).is_err());
        let mut long = lfo.to_vec();
        long.push(0);
        assert!(parse_request(&long, false).is_err());
        // Its Forward Close.
        let fc = [
            0x4e, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0a, 0x05, 0x27, 0x04, 0x09, 0x10, 0x04, 0xb3,
            0xe1, 0x56, 0x03, 0x00, 0x01, 0x00, 0x20, 0x02, 0x24, 0x01,
        ];
        let r = parse_request(&fc, false).unwrap();
        assert_eq!(r.kind(), Kind::ForwardClose);
        assert_eq!(r.service_name(), Some("forward-close"));
        assert_eq!(r.connection_path().unwrap().target().class, Some(2));
    }

    #[test]
    fn nesting_is_bounded() {
        // Unconnected sends inside each other, one level too deep.
        let mut req = std::vec![0x0e, 0x03, 0x20, 0x01, 0x24, 0x01, 0x30, 0x01];
        for _ in 0..=MAX_DEPTH {
            let mut outer = std::vec![0x52, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0a, 0x05];
            outer.extend_from_slice(&(req.len() as u16).to_le_bytes());
            outer.extend_from_slice(&req);
            if req.len() % 2 == 1 {
                outer.push(0);
            }
            outer.extend_from_slice(&[0x01, 0x00, 0x01, 0x00]);
            req = outer;
        }
        assert_eq!(
            parse_request(&req, false).unwrap_err().what,
            "requests nested too deeply"
        );
    }

    #[test]
    fn responses() {
        // cpppo's answer to read-tag Setpoint[0], 4 elements: INT (0xC3), values.
        let r = parse_response(&[0xcc, 0, 0, 0, 0xc3, 0, 0, 0, 7, 0, 0, 0, 0, 0], false).unwrap();
        assert_eq!(r.service(), 0x4c);
        assert_eq!(r.general_status(), GeneralStatus::Success);
        // Path destination unknown with one additional status word.
        let r = parse_response(&[0x8e, 0, 0x05, 1, 0x00, 0x00], false).unwrap();
        assert_eq!(r.general_status(), GeneralStatus::PathDestinationUnknown);
        assert_eq!(r.additional_status(), &[0, 0]);
        assert!(parse_response(&[0x8e, 0, 0x05, 2, 0x00, 0x00], false).is_err());
        assert!(parse_response(&[0x0e, 0, 0, 0], false).is_err());
    }
}
