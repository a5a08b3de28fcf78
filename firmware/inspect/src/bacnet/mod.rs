//! BACnet/IP: the BVLC header (Annex J), the NPDU (clause 6) and the APDU (clause 20) of
//! every UDP datagram, with the objects and properties a request names.
//!
//! References: ANSI/ASHRAE Standard 135 (*BACnet — A Data Communication Protocol for
//! Building Automation and Control Networks*): Annex J (BACnet/IP, the BVLL), clause 6
//! (network layer: NPCI and network-layer messages), clause 20 (APDU headers and the
//! tag encoding, see [`tags`]), clauses 13-17 and 21 (the services and their ASN.1).
//!
//! Each datagram is one message: a BVLC function, and for the functions that carry one
//! (original-unicast/-broadcast, forwarded, distribute-broadcast) an NPDU holding either
//! a network-layer message or an APDU. Everything is checked against the standard: the
//! BVLC length equals the datagram's, table entries have their size, the NPCI's
//! addresses fit, APDU headers have the length of their type, and the tagged service
//! parameters of unsegmented requests, complex ACKs and errors are well formed
//! throughout. Codes without a name here (vendor services, object types, properties)
//! are data, judged by the policy.
//!
//! What is a request ([`Message::is_request`]) follows the PDU, not the direction:
//! BACnet devices are clients and servers at once, and a device answers a subscription
//! with notifications of its own. Requests are confirmed and unconfirmed service
//! requests, the BVLC functions that ask a BBMD for something, and the network-layer
//! messages except the routing-table ACK and reject-message-to-network.

mod emit;
pub mod names;
pub(crate) mod tags;

use core::fmt;

use crate::macros::codes;
use crate::{code_field, Dir, Fields, Malformed, Protocol, Reader};

pub use emit::{Body, Carrier, Encoder, NpciRepr, Repr, Segment};
pub use names::{ErrorCode, ObjectType, PropertyId};
use tags::{Item, Layout, Walk};

const P: Protocol = Protocol::Bacnet;

/// BVLC type of BACnet/IP (Annex J.2).
pub const BVLC_TYPE: u8 = 0x81;
/// The BVLC header: type, function, length.
pub const BVLC_LEN: usize = 4;
/// The highest instance number of an object (22 bits).
pub const MAX_INSTANCE: u32 = 0x3f_ffff;
/// The highest property identifier (22 bits).
pub const MAX_PROPERTY: u32 = 0x3f_ffff;

codes! {
    /// BVLC functions (Annex J.2).
    pub enum BvlcFunction(u8) {
        Result = 0x00 => "result",
        WriteBdt = 0x01 => "write-broadcast-distribution-table",
        ReadBdt = 0x02 => "read-broadcast-distribution-table",
        ReadBdtAck = 0x03 => "read-broadcast-distribution-table-ack",
        ForwardedNpdu = 0x04 => "forwarded-npdu",
        RegisterForeignDevice = 0x05 => "register-foreign-device",
        ReadFdt = 0x06 => "read-foreign-device-table",
        ReadFdtAck = 0x07 => "read-foreign-device-table-ack",
        DeleteFdtEntry = 0x08 => "delete-foreign-device-table-entry",
        DistributeBroadcast = 0x09 => "distribute-broadcast-to-network",
        OriginalUnicastNpdu = 0x0a => "original-unicast-npdu",
        OriginalBroadcastNpdu = 0x0b => "original-broadcast-npdu",
        SecureBvll = 0x0c => "secure-bvll",
    }
}

codes! {
    /// BVLC-Result codes (Annex J.2.1.1).
    pub enum BvlcResult(u16) {
        Successful = 0x0000 => "successful-completion",
        WriteBdtNak = 0x0010 => "write-broadcast-distribution-table-nak",
        ReadBdtNak = 0x0020 => "read-broadcast-distribution-table-nak",
        RegisterForeignDeviceNak = 0x0030 => "register-foreign-device-nak",
        ReadFdtNak = 0x0040 => "read-foreign-device-table-nak",
        DeleteFdtEntryNak = 0x0050 => "delete-foreign-device-table-entry-nak",
        DistributeBroadcastNak = 0x0060 => "distribute-broadcast-to-network-nak",
    }
}

codes! {
    /// Network-layer message types (clause 6.2.4; 0x80-0xFF are proprietary).
    pub enum NetworkMessage(u8) {
        WhoIsRouterToNetwork = 0x00 => "who-is-router-to-network",
        IAmRouterToNetwork = 0x01 => "i-am-router-to-network",
        ICouldBeRouterToNetwork = 0x02 => "i-could-be-router-to-network",
        RejectMessageToNetwork = 0x03 => "reject-message-to-network",
        RouterBusyToNetwork = 0x04 => "router-busy-to-network",
        RouterAvailableToNetwork = 0x05 => "router-available-to-network",
        InitializeRoutingTable = 0x06 => "initialize-routing-table",
        InitializeRoutingTableAck = 0x07 => "initialize-routing-table-ack",
        EstablishConnectionToNetwork = 0x08 => "establish-connection-to-network",
        DisconnectConnectionToNetwork = 0x09 => "disconnect-connection-to-network",
        ChallengeRequest = 0x0a => "challenge-request",
        SecurityPayload = 0x0b => "security-payload",
        SecurityResponse = 0x0c => "security-response",
        RequestKeyUpdate = 0x0d => "request-key-update",
        UpdateKeySet = 0x0e => "update-key-set",
        UpdateDistributionKey = 0x0f => "update-distribution-key",
        RequestMasterKey = 0x10 => "request-master-key",
        SetMasterKey = 0x11 => "set-master-key",
        WhatIsNetworkNumber = 0x12 => "what-is-network-number",
        NetworkNumberIs = 0x13 => "network-number-is",
    }
}

codes! {
    /// APDU types (clause 20.1.1; 8-15 are reserved and malformed).
    pub enum PduType(u8) {
        ConfirmedRequest = 0 => "confirmed-request",
        UnconfirmedRequest = 1 => "unconfirmed-request",
        SimpleAck = 2 => "simple-ack",
        ComplexAck = 3 => "complex-ack",
        SegmentAck = 4 => "segment-ack",
        Error = 5 => "error",
        Reject = 6 => "reject",
        Abort = 7 => "abort",
    }
}

codes! {
    /// `BACnetConfirmedServiceChoice` (clause 21).
    pub enum ConfirmedService(u8) {
        AcknowledgeAlarm = 0 => "acknowledge-alarm",
        ConfirmedCovNotification = 1 => "confirmed-cov-notification",
        ConfirmedEventNotification = 2 => "confirmed-event-notification",
        GetAlarmSummary = 3 => "get-alarm-summary",
        GetEnrollmentSummary = 4 => "get-enrollment-summary",
        SubscribeCov = 5 => "subscribe-cov",
        AtomicReadFile = 6 => "atomic-read-file",
        AtomicWriteFile = 7 => "atomic-write-file",
        AddListElement = 8 => "add-list-element",
        RemoveListElement = 9 => "remove-list-element",
        CreateObject = 10 => "create-object",
        DeleteObject = 11 => "delete-object",
        ReadProperty = 12 => "read-property",
        ReadPropertyConditional = 13 => "read-property-conditional",
        ReadPropertyMultiple = 14 => "read-property-multiple",
        WriteProperty = 15 => "write-property",
        WritePropertyMultiple = 16 => "write-property-multiple",
        DeviceCommunicationControl = 17 => "device-communication-control",
        ConfirmedPrivateTransfer = 18 => "confirmed-private-transfer",
        ConfirmedTextMessage = 19 => "confirmed-text-message",
        ReinitializeDevice = 20 => "reinitialize-device",
        VtOpen = 21 => "vt-open",
        VtClose = 22 => "vt-close",
        VtData = 23 => "vt-data",
        Authenticate = 24 => "authenticate",
        RequestKey = 25 => "request-key",
        ReadRange = 26 => "read-range",
        LifeSafetyOperation = 27 => "life-safety-operation",
        SubscribeCovProperty = 28 => "subscribe-cov-property",
        GetEventInformation = 29 => "get-event-information",
        SubscribeCovPropertyMultiple = 30 => "subscribe-cov-property-multiple",
        ConfirmedCovNotificationMultiple = 31 => "confirmed-cov-notification-multiple",
        ConfirmedAuditNotification = 32 => "confirmed-audit-notification",
        AuditLogQuery = 33 => "audit-log-query",
    }
}

codes! {
    /// `BACnetUnconfirmedServiceChoice` (clause 21).
    pub enum UnconfirmedService(u8) {
        IAm = 0 => "i-am",
        IHave = 1 => "i-have",
        UnconfirmedCovNotification = 2 => "unconfirmed-cov-notification",
        UnconfirmedEventNotification = 3 => "unconfirmed-event-notification",
        UnconfirmedPrivateTransfer = 4 => "unconfirmed-private-transfer",
        UnconfirmedTextMessage = 5 => "unconfirmed-text-message",
        TimeSynchronization = 6 => "time-synchronization",
        WhoHas = 7 => "who-has",
        WhoIs = 8 => "who-is",
        UtcTimeSynchronization = 9 => "utc-time-synchronization",
        WriteGroup = 10 => "write-group",
        UnconfirmedCovNotificationMultiple = 11 => "unconfirmed-cov-notification-multiple",
        UnconfirmedAuditNotification = 12 => "unconfirmed-audit-notification",
        WhoAmI = 13 => "who-am-i",
        YouAre = 14 => "you-are",
    }
}

codes! {
    /// `BACnetErrorClass`.
    pub enum ErrorClass(u16) {
        Device = 0 => "device",
        Object = 1 => "object",
        Property = 2 => "property",
        Resources = 3 => "resources",
        Security = 4 => "security",
        Services = 5 => "services",
        Vt = 6 => "vt",
        Communication = 7 => "communication",
    }
}

codes! {
    /// `BACnetRejectReason` (64-255 are proprietary).
    pub enum RejectReason(u8) {
        Other = 0 => "other",
        BufferOverflow = 1 => "buffer-overflow",
        InconsistentParameters = 2 => "inconsistent-parameters",
        InvalidParameterDataType = 3 => "invalid-parameter-data-type",
        InvalidTag = 4 => "invalid-tag",
        MissingRequiredParameter = 5 => "missing-required-parameter",
        ParameterOutOfRange = 6 => "parameter-out-of-range",
        TooManyArguments = 7 => "too-many-arguments",
        UndefinedEnumeration = 8 => "undefined-enumeration",
        UnrecognizedService = 9 => "unrecognized-service",
        InvalidDataEncoding = 10 => "invalid-data-encoding",
    }
}

codes! {
    /// `BACnetAbortReason` (64-255 are proprietary).
    pub enum AbortReason(u8) {
        Other = 0 => "other",
        BufferOverflow = 1 => "buffer-overflow",
        InvalidApduInThisState = 2 => "invalid-apdu-in-this-state",
        PreemptedByHigherPriorityTask = 3 => "preempted-by-higher-priority-task",
        SegmentationNotSupported = 4 => "segmentation-not-supported",
        SecurityError = 5 => "security-error",
        InsufficientSecurity = 6 => "insufficient-security",
        WindowSizeOutOfRange = 7 => "window-size-out-of-range",
        ApplicationExceededReplyTime = 8 => "application-exceeded-reply-time",
        OutOfResources = 9 => "out-of-resources",
        TsmTimeout = 10 => "tsm-timeout",
        ApduTooLong = 11 => "apdu-too-long",
    }
}

codes! {
    /// ReinitializeDevice's `reinitialized-state-of-device`.
    pub enum ReinitializedState(u16) {
        Coldstart = 0 => "coldstart",
        Warmstart = 1 => "warmstart",
        StartBackup = 2 => "start-backup",
        EndBackup = 3 => "end-backup",
        StartRestore = 4 => "start-restore",
        EndRestore = 5 => "end-restore",
        AbortRestore = 6 => "abort-restore",
        ActivateChanges = 7 => "activate-changes",
    }
}

codes! {
    /// DeviceCommunicationControl's `enable-disable`.
    pub enum EnableDisable(u16) {
        Enable = 0 => "enable",
        Disable = 1 => "disable",
        DisableInitiation = 2 => "disable-initiation",
    }
}

/// A `BACnetObjectIdentifier`: a 10-bit object type and a 22-bit instance number, as
/// on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(u32);

impl ObjectId {
    /// `None` when the type is above 1023 or the instance above 4194303.
    pub const fn new(object_type: u16, instance: u32) -> Option<ObjectId> {
        if object_type > 1023 || instance > MAX_INSTANCE {
            return None;
        }
        Some(ObjectId(((object_type as u32) << 22) | instance))
    }

    pub const fn from_raw(raw: u32) -> ObjectId {
        ObjectId(raw)
    }

    /// The four octets' value: type << 22 | instance.
    pub const fn raw(self) -> u32 {
        self.0
    }

    pub const fn type_code(self) -> u16 {
        (self.0 >> 22) as u16
    }

    pub fn object_type(self) -> ObjectType {
        ObjectType::from(self.type_code())
    }

    pub const fn instance(self) -> u32 {
        self.0 & MAX_INSTANCE
    }
}

/// `analog-value:3`
impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object_type(), self.instance())
    }
}

/// A confirmed or unconfirmed service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Confirmed(ConfirmedService),
    Unconfirmed(UnconfirmedService),
}

impl Service {
    pub fn name(self) -> Option<&'static str> {
        match self {
            Service::Confirmed(s) => s.name(),
            Service::Unconfirmed(s) => s.name(),
        }
    }

    /// How the service's parameters name objects and properties.
    fn layout(self) -> Layout {
        use ConfirmedService as C;
        use UnconfirmedService as U;
        match self {
            Service::Confirmed(s) => match s {
                C::ReadProperty
                | C::WriteProperty
                | C::ReadRange
                | C::AddListElement
                | C::RemoveListElement => tags::OBJECT_PROPERTY,
                C::ReadPropertyMultiple | C::WritePropertyMultiple => tags::ACCESS_SPECS,
                C::SubscribeCov => tags::SUBSCRIBE_COV,
                C::SubscribeCovProperty => tags::SUBSCRIBE_COV_PROPERTY,
                C::AtomicReadFile | C::AtomicWriteFile | C::DeleteObject => tags::APP_OBJECTS,
                C::CreateObject => tags::CREATE_OBJECT,
                C::AcknowledgeAlarm => tags::ACKNOWLEDGE_ALARM,
                C::LifeSafetyOperation => tags::LIFE_SAFETY,
                C::ConfirmedCovNotification => tags::COV_NOTIFICATION,
                C::ConfirmedEventNotification => tags::CONTEXT_2_OBJECT,
                C::ReinitializeDevice => tags::REINITIALIZE,
                C::DeviceCommunicationControl => tags::COMMUNICATION_CONTROL,
                C::GetAlarmSummary
                | C::GetEnrollmentSummary
                | C::GetEventInformation
                | C::ConfirmedTextMessage => Layout::Nothing,
                _ => Layout::Opaque,
            },
            Service::Unconfirmed(s) => match s {
                U::IAm | U::IHave | U::YouAre => tags::APP_OBJECTS,
                U::UnconfirmedCovNotification => tags::COV_NOTIFICATION,
                U::UnconfirmedEventNotification | U::WhoHas => tags::CONTEXT_2_OBJECT,
                U::WhoIs
                | U::WhoAmI
                | U::TimeSynchronization
                | U::UtcTimeSynchronization
                | U::UnconfirmedTextMessage => Layout::Nothing,
                _ => Layout::Opaque,
            },
        }
    }

    /// How many object identifiers and property identifiers the service cannot do
    /// without (checked on complete requests).
    fn required(self) -> (u16, u16) {
        use ConfirmedService as C;
        use UnconfirmedService as U;
        match self {
            Service::Confirmed(
                C::ReadProperty
                | C::WriteProperty
                | C::ReadRange
                | C::AddListElement
                | C::RemoveListElement
                | C::ReadPropertyMultiple
                | C::WritePropertyMultiple
                | C::SubscribeCovProperty,
            ) => (1, 1),
            Service::Confirmed(
                C::SubscribeCov
                | C::AtomicReadFile
                | C::AtomicWriteFile
                | C::DeleteObject
                | C::CreateObject
                | C::AcknowledgeAlarm
                | C::ConfirmedCovNotification
                | C::ConfirmedEventNotification,
            ) => (1, 0),
            Service::Unconfirmed(
                U::IAm
                | U::IHave
                | U::YouAre
                | U::UnconfirmedCovNotification
                | U::UnconfirmedEventNotification,
            ) => (1, 0),
            _ => (0, 0),
        }
    }
}

/// The name, or the number (`unconfirmed:N` for an unconfirmed service without one).
impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Service::Confirmed(s) => s.fmt(f),
            Service::Unconfirmed(s) => match s.name() {
                Some(n) => f.write_str(n),
                None => write!(f, "unconfirmed:{}", u8::from(*s)),
            },
        }
    }
}

/// What a request names, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Object(ObjectId),
    /// An object type without an instance (CreateObject by type).
    ObjectType(ObjectType),
    Property(PropertyId),
    /// The request may name objects or properties that are not decoded here: a
    /// service whose parameters are opaque (private transfers, write-group …) or a
    /// segment after the first of a segmented request.
    Undecoded,
}

/// The objects and properties of a request (see [`Message::targets`]).
#[derive(Debug, Clone)]
pub struct Targets<'a> {
    walk: Option<Walk<'a>>,
    undecoded: bool,
}

impl Iterator for Targets<'_> {
    type Item = Target;

    fn next(&mut self) -> Option<Target> {
        if self.undecoded {
            self.undecoded = false;
            return Some(Target::Undecoded);
        }
        let walk = self.walk.as_mut()?;
        loop {
            match walk.next_item() {
                Ok(Some(Item::Object(o))) => return Some(Target::Object(o)),
                Ok(Some(Item::ObjectType(t))) => return Some(Target::ObjectType(t)),
                Ok(Some(Item::Property(p))) => return Some(Target::Property(p)),
                Ok(Some(Item::Value(_))) => continue,
                // A segment's prefix ends where it ends; complete requests were checked.
                Ok(None) | Err(_) => {
                    self.walk = None;
                    return None;
                }
            }
        }
    }
}

/// The network-layer header of an NPDU (clause 6.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Npci<'a> {
    control: u8,
    dnet: Option<u16>,
    dadr: &'a [u8],
    snet: Option<u16>,
    sadr: &'a [u8],
    hop_count: Option<u8>,
}

mod control {
    pub const NETWORK_MESSAGE: u8 = 0x80;
    pub const RESERVED: u8 = 0x50;
    pub const DESTINATION: u8 = 0x20;
    pub const SOURCE: u8 = 0x08;
    pub const EXPECTING_REPLY: u8 = 0x04;
}

impl<'a> Npci<'a> {
    /// Destination network (DNET), when the NPDU is routed; 65535 is the global broadcast.
    pub fn dnet(&self) -> Option<u16> {
        self.dnet
    }

    /// Destination MAC address (empty: broadcast on DNET).
    pub fn dadr(&self) -> &'a [u8] {
        self.dadr
    }

    pub fn snet(&self) -> Option<u16> {
        self.snet
    }

    pub fn sadr(&self) -> &'a [u8] {
        self.sadr
    }

    pub fn hop_count(&self) -> Option<u8> {
        self.hop_count
    }

    pub fn expecting_reply(&self) -> bool {
        self.control & control::EXPECTING_REPLY != 0
    }

    /// Network priority (0 normal, 1 urgent, 2 critical equipment, 3 life safety).
    pub fn priority(&self) -> u8 {
        self.control & 0x03
    }
}

/// What a datagram carries after its BVLC header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content<'a> {
    /// A BVLC function without an NPDU: its data (tables, a result code, a TTL …).
    Link(&'a [u8]),
    Network {
        npci: Npci<'a>,
        message: NetworkMessage,
        data: &'a [u8],
    },
    Apdu {
        npci: Npci<'a>,
        apdu: Apdu<'a>,
    },
}

/// A checked APDU header and what the walk of its parameters found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Apdu<'a> {
    pdu: PduType,
    /// The first octet (type and flags).
    flags: u8,
    invoke_id: Option<u8>,
    /// Sequence number and window size: segmented PDUs and segment ACKs.
    segment: Option<(u8, u8)>,
    /// Service choice (confirmed for ACKs and errors); for reject and abort, the reason.
    service: u8,
    data: &'a [u8],
    error: Option<(u16, u16)>,
    summary: Summary,
}

/// The first object and property a request names, how many, and a shown value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Summary {
    object: Option<ObjectId>,
    object_type: Option<ObjectType>,
    property: Option<PropertyId>,
    objects: u16,
    properties: u16,
    value: Option<u32>,
}

impl Summary {
    fn add(&mut self, item: Item) {
        match item {
            Item::Object(o) => {
                self.object.get_or_insert(o);
                self.objects = self.objects.saturating_add(1);
            }
            Item::ObjectType(t) => {
                self.object_type.get_or_insert(t);
                self.objects = self.objects.saturating_add(1);
            }
            Item::Property(p) => {
                self.property.get_or_insert(p);
                self.properties = self.properties.saturating_add(1);
            }
            Item::Value(v) => {
                self.value.get_or_insert(v);
            }
        }
    }
}

/// A checked BACnet/IP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    bytes: &'a [u8],
    dir: Dir,
    function: BvlcFunction,
    content: Content<'a>,
}

/// Parses one UDP datagram (the whole payload).
pub fn parse(bytes: &[u8], dir: Dir) -> Result<Message<'_>, Malformed> {
    let mut r = Reader::new(P, bytes);
    if r.u8("BVLC header truncated")? != BVLC_TYPE {
        return Err(Malformed::new(P, "BVLC type is not 0x81 (BACnet/IP)"));
    }
    let function = BvlcFunction::from(r.u8("BVLC header truncated")?);
    let length = r.be_u16("BVLC header truncated")?;
    if usize::from(length) != bytes.len() {
        return Err(Malformed::new(P, "BVLC length disagrees with the datagram"));
    }
    let data = r.rest();
    use BvlcFunction as F;
    let link = |ok: bool, what: &'static str| {
        if ok {
            Ok(Content::Link(data))
        } else {
            Err(Malformed::new(P, what))
        }
    };
    let content = match function {
        F::Result => link(data.len() == 2, "BVLC-Result is not a 2-byte code")?,
        F::WriteBdt | F::ReadBdtAck => link(
            data.len().is_multiple_of(10),
            "broadcast distribution table entries are not 10 bytes each",
        )?,
        F::ReadFdtAck => link(
            data.len().is_multiple_of(10),
            "foreign device table entries are not 10 bytes each",
        )?,
        F::ReadBdt | F::ReadFdt => link(data.is_empty(), "table read request carries data")?,
        F::RegisterForeignDevice => link(
            data.len() == 2,
            "foreign device registration is not a 2-byte time-to-live",
        )?,
        F::DeleteFdtEntry => link(
            data.len() == 6,
            "foreign device table entry address is not 6 bytes",
        )?,
        F::ForwardedNpdu => {
            if data.len() < 6 {
                return Err(Malformed::new(
                    P,
                    "forwarded NPDU without its original address",
                ));
            }
            npdu(&data[6..])?
        }
        F::DistributeBroadcast | F::OriginalUnicastNpdu | F::OriginalBroadcastNpdu => npdu(data)?,
        // Secure-BVLL wraps a whole BVLL message in a security header (clause 24): opaque.
        F::SecureBvll | F::Unknown(_) => Content::Link(data),
    };
    Ok(Message {
        bytes,
        dir,
        function,
        content,
    })
}

fn npdu(bytes: &[u8]) -> Result<Content<'_>, Malformed> {
    let mut r = Reader::new(P, bytes);
    let short = "NPDU header truncated";
    if r.u8(short)? != 1 {
        return Err(Malformed::new(P, "NPDU version is not 1"));
    }
    let ctl = r.u8(short)?;
    if ctl & control::RESERVED != 0 {
        return Err(Malformed::new(P, "reserved NPDU control bits set"));
    }
    let mut npci = Npci {
        control: ctl,
        dnet: None,
        dadr: &[],
        snet: None,
        sadr: &[],
        hop_count: None,
    };
    if ctl & control::DESTINATION != 0 {
        npci.dnet = Some(r.be_u16(short)?);
        let len = r.u8(short)?;
        npci.dadr = r.take(usize::from(len), "DADR runs past the end")?;
    }
    if ctl & control::SOURCE != 0 {
        let snet = r.be_u16(short)?;
        if snet == 0xffff {
            return Err(Malformed::new(P, "SNET is the global broadcast network"));
        }
        npci.snet = Some(snet);
        let len = r.u8(short)?;
        if len == 0 {
            return Err(Malformed::new(P, "SLEN is 0"));
        }
        npci.sadr = r.take(usize::from(len), "SADR runs past the end")?;
    }
    if ctl & control::DESTINATION != 0 {
        npci.hop_count = Some(r.u8("hop count missing")?);
    }
    if ctl & control::NETWORK_MESSAGE != 0 {
        let message = NetworkMessage::from(r.u8("network message type missing")?);
        if u8::from(message) >= 0x80 {
            r.skip(2, "proprietary network message without its vendor id")?;
        }
        let data = r.rest();
        check_network_message(message, data)?;
        return Ok(Content::Network {
            npci,
            message,
            data,
        });
    }
    let apdu = apdu(r.rest())?;
    Ok(Content::Apdu { npci, apdu })
}

/// The data of each network-layer message has the shape clause 6.4 gives it.
fn check_network_message(message: NetworkMessage, data: &[u8]) -> Result<(), Malformed> {
    use NetworkMessage as N;
    let ok = match message {
        N::WhoIsRouterToNetwork => data.is_empty() || data.len() == 2,
        N::IAmRouterToNetwork => !data.is_empty() && data.len().is_multiple_of(2),
        N::RouterBusyToNetwork | N::RouterAvailableToNetwork => data.len().is_multiple_of(2),
        N::ICouldBeRouterToNetwork | N::RejectMessageToNetwork => data.len() == 3,
        N::EstablishConnectionToNetwork => data.len() == 3,
        N::DisconnectConnectionToNetwork => data.len() == 2,
        N::WhatIsNetworkNumber => data.is_empty(),
        N::NetworkNumberIs => data.len() == 3 && data[2] <= 1,
        N::InitializeRoutingTable => routing_table(data, false),
        N::InitializeRoutingTableAck => routing_table(data, true),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(Malformed::new(
            P,
            "network message data has the wrong length",
        ))
    }
}

/// Number of ports, then per port: DNET (2), port id (1), info length (1), info.
fn routing_table(data: &[u8], may_be_empty: bool) -> bool {
    let mut r = Reader::new(P, data);
    let Ok(ports) = r.u8("") else {
        return may_be_empty;
    };
    for _ in 0..ports {
        if r.skip(3, "").is_err() {
            return false;
        }
        let Ok(len) = r.u8("") else { return false };
        if r.skip(usize::from(len), "").is_err() {
            return false;
        }
    }
    r.is_empty()
}

fn apdu(bytes: &[u8]) -> Result<Apdu<'_>, Malformed> {
    let mut r = Reader::new(P, bytes);
    let b0 = r.u8("APDU missing")?;
    let pdu = PduType::from(b0 >> 4);
    let mut a = Apdu {
        pdu,
        flags: b0,
        invoke_id: None,
        segment: None,
        service: 0,
        data: &[],
        error: None,
        summary: Summary::default(),
    };
    let short = "APDU header truncated";
    let segmented = b0 & 0x08 != 0;
    let more = b0 & 0x04 != 0;
    match pdu {
        PduType::ConfirmedRequest | PduType::ComplexAck => {
            if pdu == PduType::ConfirmedRequest {
                r.skip(1, short)?; // max segments and max APDU accepted
            }
            a.invoke_id = Some(r.u8(short)?);
            if segmented {
                let (seq, window) = (r.u8(short)?, r.u8(short)?);
                if !(1..=127).contains(&window) {
                    return Err(Malformed::new(
                        P,
                        "proposed window size out of range (1-127)",
                    ));
                }
                a.segment = Some((seq, window));
            } else if more {
                return Err(Malformed::new(P, "more-follows set on an unsegmented APDU"));
            }
            a.service = r.u8("service choice missing")?;
            a.data = r.rest();
            let complete = !segmented || (a.segment.is_some_and(|(s, _)| s == 0) && !more);
            if pdu == PduType::ConfirmedRequest {
                let service = Service::Confirmed(ConfirmedService::from(a.service));
                a.summary = summarize(service, a.data, complete, a.segment)?;
            } else if complete {
                tags::check(a.data)?;
            }
        }
        PduType::UnconfirmedRequest => {
            a.service = r.u8("service choice missing")?;
            a.data = r.rest();
            let service = Service::Unconfirmed(UnconfirmedService::from(a.service));
            a.summary = summarize(service, a.data, true, None)?;
        }
        PduType::SimpleAck | PduType::Reject | PduType::Abort => {
            a.invoke_id = Some(r.u8(short)?);
            a.service = r.u8(short)?;
            if !r.is_empty() {
                return Err(Malformed::new(P, "APDU longer than its type"));
            }
        }
        PduType::SegmentAck => {
            a.invoke_id = Some(r.u8(short)?);
            let (seq, window) = (r.u8(short)?, r.u8(short)?);
            if !(1..=127).contains(&window) {
                return Err(Malformed::new(P, "actual window size out of range (1-127)"));
            }
            a.segment = Some((seq, window));
            if !r.is_empty() {
                return Err(Malformed::new(P, "APDU longer than its type"));
            }
        }
        PduType::Error => {
            a.invoke_id = Some(r.u8(short)?);
            a.service = r.u8("service choice missing")?;
            a.data = r.rest();
            tags::check(a.data)?;
            let (class, code) = tags::error_class_and_code(a.data)
                .ok_or(Malformed::new(P, "error class and code missing"))?;
            let narrow = |v: u32| {
                u16::try_from(v).map_err(|_| Malformed::new(P, "error class or code above 65535"))
            };
            a.error = Some((narrow(class)?, narrow(code)?));
        }
        PduType::Unknown(_) => return Err(Malformed::new(P, "reserved APDU type")),
    }
    Ok(a)
}

/// Walks a request's parameters: every tag checked when the request is complete, and
/// the elements its service's layout names counted.
fn summarize(
    service: Service,
    data: &[u8],
    complete: bool,
    segment: Option<(u8, u8)>,
) -> Result<Summary, Malformed> {
    let mut summary = Summary::default();
    let first_segment = segment.is_none_or(|(seq, _)| seq == 0);
    let places: &'static [tags::Place] = match service.layout() {
        Layout::Places(places) if first_segment => places,
        _ => &[],
    };
    let mut walk = Walk::new(data, places);
    loop {
        match walk.next_item() {
            Ok(Some(item)) => summary.add(item),
            Ok(None) => break,
            Err(e) if complete => return Err(e),
            // A segment ends anywhere; the rest of the request follows in later ones.
            Err(_) => break,
        }
    }
    if complete {
        let (objects, properties) = service.required();
        if summary.objects < objects {
            return Err(Malformed::new(P, "required object identifier missing"));
        }
        if summary.properties < properties {
            return Err(Malformed::new(P, "required property identifier missing"));
        }
    }
    Ok(summary)
}

impl<'a> Message<'a> {
    pub fn dir(&self) -> Dir {
        self.dir
    }

    /// The whole datagram as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn bvlc_function(&self) -> BvlcFunction {
        self.function
    }

    /// The BVLC function when it is itself a request to a BBMD (table reads and
    /// writes, foreign-device registration, distribute-broadcast, secure-BVLL, and
    /// functions without a name): not for the plain NPDU carriers or the answers.
    pub fn bvlc_request(&self) -> Option<BvlcFunction> {
        use BvlcFunction as F;
        match self.function {
            F::Result
            | F::ReadBdtAck
            | F::ReadFdtAck
            | F::ForwardedNpdu
            | F::OriginalUnicastNpdu
            | F::OriginalBroadcastNpdu => None,
            f => Some(f),
        }
    }

    /// The NPDU's network-layer header, for the functions that carry one.
    pub fn npci(&self) -> Option<Npci<'a>> {
        match self.content {
            Content::Link(_) => None,
            Content::Network { npci, .. } | Content::Apdu { npci, .. } => Some(npci),
        }
    }

    /// The destination network of a routed NPDU.
    pub fn dnet(&self) -> Option<u16> {
        self.npci().and_then(|n| n.dnet())
    }

    /// The network-layer message type, when the NPDU carries one.
    pub fn network_message(&self) -> Option<NetworkMessage> {
        match self.content {
            Content::Network { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The network-layer message when it is a request (every type but
    /// initialize-routing-table-ack and reject-message-to-network).
    pub fn network_request(&self) -> Option<NetworkMessage> {
        self.network_message().filter(|m| {
            !matches!(
                m,
                NetworkMessage::InitializeRoutingTableAck | NetworkMessage::RejectMessageToNetwork
            )
        })
    }

    fn apdu(&self) -> Option<&Apdu<'a>> {
        match &self.content {
            Content::Apdu { apdu, .. } => Some(apdu),
            _ => None,
        }
    }

    pub fn pdu_type(&self) -> Option<PduType> {
        self.apdu().map(|a| a.pdu)
    }

    pub fn invoke_id(&self) -> Option<u8> {
        self.apdu().and_then(|a| a.invoke_id)
    }

    /// The service a confirmed or unconfirmed request asks for.
    pub fn service(&self) -> Option<Service> {
        let a = self.apdu()?;
        match a.pdu {
            PduType::ConfirmedRequest => Some(Service::Confirmed(a.service.into())),
            PduType::UnconfirmedRequest => Some(Service::Unconfirmed(a.service.into())),
            _ => None,
        }
    }

    /// Whether the APDU is one segment of a segmented message.
    pub fn is_segmented(&self) -> bool {
        self.apdu().is_some_and(|a| {
            a.segment.is_some() && matches!(a.pdu, PduType::ConfirmedRequest | PduType::ComplexAck)
        })
    }

    /// The segment's sequence number (segmented PDUs and segment ACKs).
    pub fn sequence_number(&self) -> Option<u8> {
        self.apdu().and_then(|a| a.segment).map(|(s, _)| s)
    }

    /// The service parameters (after the service choice) of requests, complex ACKs and
    /// errors.
    pub fn service_data(&self) -> &'a [u8] {
        self.apdu().map_or(&[], |a| a.data)
    }

    /// Whether the message asks its receiver to do something (see the module docs).
    pub fn is_request(&self) -> bool {
        self.bvlc_request().is_some()
            || self.network_request().is_some()
            || self.service().is_some()
    }

    /// The objects and properties a request names, in order; [`Target::Undecoded`]
    /// when it may name some that cannot be decoded. Empty for other messages.
    pub fn targets(&self) -> Targets<'a> {
        let none = Targets {
            walk: None,
            undecoded: false,
        };
        let (Some(service), Some(a)) = (self.service(), self.apdu()) else {
            return none;
        };
        match service.layout() {
            Layout::Nothing => none,
            Layout::Opaque => Targets {
                walk: None,
                undecoded: true,
            },
            Layout::Places(_) if a.segment.is_some_and(|(seq, _)| seq != 0) => Targets {
                walk: None,
                undecoded: true,
            },
            Layout::Places(places) => Targets {
                walk: Some(Walk::new(a.data, places)),
                undecoded: false,
            },
        }
    }

    pub fn op(&self) -> Op {
        let mut op = Op {
            object: 0,
            property: 0,
            flags: 0,
            dnet: 0,
            value: 0,
            error_class: 0,
            bvlc: u8::from(self.function),
            network: 0,
            apdu: 0,
            service: 0,
            invoke_id: 0,
            sequence: 0,
            objects: 0,
            properties: 0,
        };
        if let (BvlcFunction::Result, Content::Link([a, b])) = (self.function, self.content) {
            op.set_value(u16::from_be_bytes([*a, *b]).into());
        }
        if let Some(dnet) = self.dnet() {
            op.flags |= op_flags::DNET;
            op.dnet = dnet;
        }
        if let Some(m) = self.network_message() {
            op.flags |= op_flags::NETWORK;
            op.network = m.into();
        }
        let Some(a) = self.apdu() else {
            return op;
        };
        op.flags |= op_flags::APDU;
        op.apdu = a.pdu.into();
        op.service = a.service;
        if let Some(id) = a.invoke_id {
            op.flags |= op_flags::INVOKE_ID;
            op.invoke_id = id;
        }
        if self.is_segmented() {
            op.flags |= op_flags::SEGMENTED;
            if a.flags & 0x04 != 0 {
                op.flags |= op_flags::MORE_FOLLOWS;
            }
        }
        if let Some((seq, _)) = a.segment {
            op.flags |= op_flags::SEQUENCE;
            op.sequence = seq;
        }
        if a.pdu == PduType::SegmentAck && a.flags & 0x02 != 0 {
            op.flags |= op_flags::NAK;
        }
        let s = &a.summary;
        match (s.object, s.object_type) {
            (Some(o), _) => {
                op.flags |= op_flags::OBJECT;
                op.object = o.raw();
            }
            (None, Some(t)) => {
                op.flags |= op_flags::OBJECT | op_flags::TYPE_ONLY;
                op.object = u32::from(u16::from(t)) << 22;
            }
            _ => {}
        }
        if let Some(p) = s.property {
            op.flags |= op_flags::PROPERTY;
            op.property = p.into();
        }
        op.objects = s.objects.min(255) as u8;
        op.properties = s.properties.min(255) as u8;
        if let Some(v) = s.value {
            op.set_value(v);
        }
        if let Some((class, code)) = a.error {
            op.flags |= op_flags::ERROR;
            op.error_class = class;
            op.value = code;
        }
        op
    }
}

mod op_flags {
    pub const NETWORK: u16 = 1 << 0;
    pub const APDU: u16 = 1 << 1;
    pub const INVOKE_ID: u16 = 1 << 2;
    pub const OBJECT: u16 = 1 << 3;
    pub const TYPE_ONLY: u16 = 1 << 4;
    pub const PROPERTY: u16 = 1 << 5;
    pub const DNET: u16 = 1 << 6;
    pub const VALUE: u16 = 1 << 7;
    pub const SEQUENCE: u16 = 1 << 8;
    pub const SEGMENTED: u16 = 1 << 9;
    pub const MORE_FOLLOWS: u16 = 1 << 10;
    pub const NAK: u16 = 1 << 11;
    pub const ERROR: u16 = 1 << 12;
}

/// What a BACnet datagram asked for or answered, for events: 24 bytes of plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    object: u32,
    property: u32,
    flags: u16,
    dnet: u16,
    /// BVLC result code, reinitialized state, enable-disable, or error code.
    value: u16,
    error_class: u16,
    bvlc: u8,
    network: u8,
    /// PDU type.
    apdu: u8,
    /// Service choice; for reject and abort, the reason.
    service: u8,
    invoke_id: u8,
    sequence: u8,
    objects: u8,
    properties: u8,
}

impl Op {
    fn set_value(&mut self, v: u32) {
        self.flags |= op_flags::VALUE;
        self.value = u16::try_from(v).unwrap_or(u16::MAX);
    }

    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    pub fn bvlc(&self) -> BvlcFunction {
        self.bvlc.into()
    }

    pub fn network_message(&self) -> Option<NetworkMessage> {
        self.has(op_flags::NETWORK).then(|| self.network.into())
    }

    pub fn dnet(&self) -> Option<u16> {
        self.has(op_flags::DNET).then_some(self.dnet)
    }

    pub fn pdu_type(&self) -> Option<PduType> {
        self.has(op_flags::APDU).then(|| self.apdu.into())
    }

    /// The service of a request, or the confirmed service an ACK or error answers.
    pub fn service(&self) -> Option<Service> {
        match self.pdu_type()? {
            PduType::UnconfirmedRequest => Some(Service::Unconfirmed(self.service.into())),
            PduType::ConfirmedRequest
            | PduType::SimpleAck
            | PduType::ComplexAck
            | PduType::Error => Some(Service::Confirmed(self.service.into())),
            _ => None,
        }
    }

    pub fn invoke_id(&self) -> Option<u8> {
        self.has(op_flags::INVOKE_ID).then_some(self.invoke_id)
    }

    /// The first object the request names (for CreateObject by type, instance 0 and
    /// see [`Op::object_type_only`]).
    pub fn object(&self) -> Option<ObjectId> {
        self.has(op_flags::OBJECT)
            .then_some(ObjectId::from_raw(self.object))
    }

    pub fn object_type_only(&self) -> bool {
        self.has(op_flags::TYPE_ONLY)
    }

    pub fn property(&self) -> Option<PropertyId> {
        self.has(op_flags::PROPERTY).then(|| self.property.into())
    }

    /// How many object identifiers and property identifiers the request names (at
    /// most 255 counted).
    pub fn counts(&self) -> (u8, u8) {
        (self.objects, self.properties)
    }

    pub fn is_segmented(&self) -> bool {
        self.has(op_flags::SEGMENTED)
    }

    pub fn sequence_number(&self) -> Option<u8> {
        self.has(op_flags::SEQUENCE).then_some(self.sequence)
    }

    /// The reinitialized state of a ReinitializeDevice request.
    pub fn reinitialized_state(&self) -> Option<ReinitializedState> {
        (self.has(op_flags::VALUE)
            && self.service() == Some(Service::Confirmed(ConfirmedService::ReinitializeDevice)))
        .then(|| self.value.into())
    }

    /// The enable-disable of a DeviceCommunicationControl request.
    pub fn enable_disable(&self) -> Option<EnableDisable> {
        (self.has(op_flags::VALUE)
            && self.service()
                == Some(Service::Confirmed(
                    ConfirmedService::DeviceCommunicationControl,
                )))
        .then(|| self.value.into())
    }

    pub fn error(&self) -> Option<(ErrorClass, ErrorCode)> {
        self.has(op_flags::ERROR)
            .then(|| (self.error_class.into(), self.value.into()))
    }

    pub fn reject_reason(&self) -> Option<RejectReason> {
        (self.pdu_type() == Some(PduType::Reject)).then(|| self.service.into())
    }

    pub fn abort_reason(&self) -> Option<AbortReason> {
        (self.pdu_type() == Some(PduType::Abort)).then(|| self.service.into())
    }

    pub fn describe(&self, out: &mut dyn Fields) {
        let bvlc = self.bvlc();
        code_field(out, "bvlc", bvlc.name(), self.bvlc.into());
        if bvlc == BvlcFunction::Result && self.has(op_flags::VALUE) {
            let r = BvlcResult::from(self.value);
            code_field(out, "result", r.name(), self.value.into());
        }
        if let Some(m) = self.network_message() {
            code_field(out, "network_message", m.name(), self.network.into());
        }
        if let Some(dnet) = self.dnet() {
            out.number("dnet", dnet.into());
        }
        let Some(pdu) = self.pdu_type() else {
            return;
        };
        code_field(out, "apdu", pdu.name(), self.apdu.into());
        if let Some(s) = self.service() {
            code_field(out, "service", s.name(), self.service.into());
        }
        if let Some(id) = self.invoke_id() {
            out.number("invoke_id", id.into());
        }
        if self.is_segmented() {
            out.flag("segmented", true);
            out.flag("more_follows", self.has(op_flags::MORE_FOLLOWS));
        }
        if let Some(seq) = self.sequence_number() {
            out.number("sequence", seq.into());
        }
        if self.has(op_flags::NAK) {
            out.flag("nak", true);
        }
        if let Some(o) = self.object() {
            code_field(
                out,
                "object_type",
                o.object_type().name(),
                o.type_code().into(),
            );
            if !self.object_type_only() {
                out.number("instance", o.instance().into());
            }
        }
        if let Some(p) = self.property() {
            code_field(out, "property", p.name(), self.property.into());
        }
        if self.objects > 1 {
            out.number("objects", self.objects.into());
        }
        if self.properties > 1 {
            out.number("properties", self.properties.into());
        }
        if let Some(s) = self.reinitialized_state() {
            code_field(out, "state", s.name(), self.value.into());
        }
        if let Some(e) = self.enable_disable() {
            code_field(out, "enable_disable", e.name(), self.value.into());
        }
        if let Some((class, code)) = self.error() {
            code_field(out, "error_class", class.name(), self.error_class.into());
            code_field(out, "error_code", code.name(), self.value.into());
        }
        if let Some(r) = self.reject_reason() {
            code_field(out, "reject_reason", r.name(), self.service.into());
        }
        if let Some(r) = self.abort_reason() {
            code_field(out, "abort_reason", r.name(), self.service.into());
        }
    }
}

#[cfg(test)]
mod test;
