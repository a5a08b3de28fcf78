//! The code tables of TPKT/COTP, S7comm and S7comm-plus, with their policy names.
//!
//! Values follow the Wireshark S7comm dissector (`packet-s7comm.c`, `packet-s7comm.h`,
//! Thomas Wiens) and the S7comm-plus plugin by the same author, which are the public
//! reference for this unpublished Siemens protocol; the COTP values are ISO 8073.

use crate::macros::codes;

codes! {
    /// COTP TPDU types (ISO 8073 section 13, upper nibble of the type byte). Class 0,
    /// the only class RFC 1006 uses, has CR, CC, DR, DT and ER; DC is tolerated.
    pub enum Tpdu(u8) {
        ConnectionRequest = 0xe0 => "connection-request",
        ConnectionConfirm = 0xd0 => "connection-confirm",
        DisconnectRequest = 0x80 => "disconnect-request",
        DisconnectConfirm = 0xc0 => "disconnect-confirm",
        Data = 0xf0 => "data",
        Error = 0x70 => "error",
    }
}

codes! {
    /// The S7comm PDU type (ROSCTR).
    pub enum Rosctr(u8) {
        Job = 1 => "job",
        Ack = 2 => "ack",
        AckData = 3 => "ack-data",
        Userdata = 7 => "userdata",
    }
}

codes! {
    /// Job functions: the first parameter byte of a job and of its acknowledgement.
    pub enum Function(u8) {
        SetupCommunication = 0xf0 => "setup-communication",
        ReadVar = 0x04 => "read-var",
        WriteVar = 0x05 => "write-var",
        RequestDownload = 0x1a => "request-download",
        DownloadBlock = 0x1b => "download-block",
        DownloadEnded = 0x1c => "download-ended",
        StartUpload = 0x1d => "start-upload",
        Upload = 0x1e => "upload",
        EndUpload = 0x1f => "end-upload",
        PlcControl = 0x28 => "plc-control",
        PlcStop = 0x29 => "plc-stop",
    }
}

codes! {
    /// Memory areas of an S7ANY address.
    pub enum Area(u8) {
        DataRecord = 0x01 => "data-record",
        SystemInfo200 = 0x03 => "system-info-200",
        SystemFlags200 = 0x05 => "system-flags-200",
        AnalogInputs200 = 0x06 => "analog-inputs-200",
        AnalogOutputs200 = 0x07 => "analog-outputs-200",
        Counters = 0x1c => "counters",
        Timers = 0x1d => "timers",
        IecCounters = 0x1e => "iec-counters",
        IecTimers = 0x1f => "iec-timers",
        Peripheral = 0x80 => "peripheral",
        Inputs = 0x81 => "inputs",
        Outputs = 0x82 => "outputs",
        Flags = 0x83 => "flags",
        Db = 0x84 => "db",
        InstanceDb = 0x85 => "instance-db",
        Local = 0x86 => "local",
        PreviousLocal = 0x87 => "previous-local",
    }
}

codes! {
    /// Transport sizes of an S7ANY address (what one element is).
    pub enum TransportSize(u8) {
        Bit = 1 => "bit",
        Byte = 2 => "byte",
        Char = 3 => "char",
        Word = 4 => "word",
        Int = 5 => "int",
        Dword = 6 => "dword",
        Dint = 7 => "dint",
        Real = 8 => "real",
        Date = 9 => "date",
        TimeOfDay = 10 => "time-of-day",
        Time = 11 => "time",
        S5Time = 12 => "s5time",
        DateAndTime = 15 => "date-and-time",
        Counter = 28 => "counter",
        Timer = 29 => "timer",
        IecCounter = 30 => "iec-counter",
        IecTimer = 31 => "iec-timer",
        HsCounter = 32 => "hs-counter",
    }
}

impl TransportSize {
    /// Bytes per element, where the size is fixed.
    pub fn element_bytes(self) -> Option<u32> {
        use TransportSize as T;
        Some(match self {
            T::Bit | T::Byte | T::Char => 1,
            T::Word | T::Int | T::Date | T::S5Time | T::Counter | T::Timer => 2,
            T::Dword | T::Dint | T::Real | T::TimeOfDay | T::Time => 4,
            T::DateAndTime => 8,
            _ => return None,
        })
    }
}

codes! {
    /// Syntax ids of a variable specification: how the address is written.
    pub enum SyntaxId(u8) {
        S7Any = 0x10 => "s7any",
        PbcId = 0x13 => "pbc-id",
        AlarmLockFree = 0x15 => "alarm-lockfree",
        AlarmIndication = 0x16 => "alarm-indication",
        AlarmAck = 0x19 => "alarm-ack",
        AlarmQuery = 0x1a => "alarm-query",
        NotifyIndication = 0x1c => "notify-indication",
        Nck = 0x82 => "nck",
        NckMetric = 0x83 => "nck-metric",
        NckInch = 0x84 => "nck-inch",
        DriveEsAny = 0xa2 => "drive-es-any",
        DbRead = 0xb0 => "db-read",
        Symbolic1200 = 0xb2 => "symbolic-1200",
    }
}

codes! {
    /// Error classes in the header of an acknowledgement.
    pub enum ErrorClass(u8) {
        None = 0x00 => "none",
        ApplicationRelationship = 0x81 => "application-relationship",
        ObjectDefinition = 0x82 => "object-definition",
        NoResources = 0x83 => "no-resources",
        ServiceProcessing = 0x84 => "service-processing",
        Supplies = 0x85 => "supplies",
        Access = 0x87 => "access",
    }
}

codes! {
    /// The type of a userdata PDU (upper two bits of its type/group byte).
    pub enum UserdataType(u8) {
        Push = 0 => "push",
        Request = 1 => "request",
        Response = 2 => "response",
    }
}

codes! {
    /// Userdata function groups (lower six bits of the type/group byte).
    pub enum Group(u8) {
        ModeTransition = 0x00 => "mode-transition",
        ProgrammerCommands = 0x01 => "programmer-commands",
        CyclicData = 0x02 => "cyclic-data",
        BlockFunctions = 0x03 => "block-functions",
        CpuFunctions = 0x04 => "cpu-functions",
        Security = 0x05 => "security",
        Bsend = 0x06 => "bsend",
        TimeFunctions = 0x07 => "time-functions",
        DrRouting = 0x20 => "dr-routing",
        NcProgramming = 0x3f => "nc-programming",
    }
}

codes! {
    /// Programmer commands (group 1, "test and installation functions").
    pub enum ProgrammerCommand(u8) {
        BlockStatus = 0x01 => "block-status",
        VariableStatus = 0x02 => "variable-status",
        OutputIstack = 0x03 => "output-istack",
        OutputBstack = 0x04 => "output-bstack",
        OutputLstack = 0x05 => "output-lstack",
        TimeMeasurement = 0x06 => "time-measurement",
        ForceSelection = 0x07 => "force-selection",
        ModifyVariable = 0x08 => "modify-variable",
        Force = 0x09 => "force",
        Breakpoint = 0x0a => "breakpoint",
        ExitHold = 0x0b => "exit-hold",
        MemoryReset = 0x0c => "memory-reset",
        DisableJob = 0x0d => "disable-job",
        EnableJob = 0x0e => "enable-job",
        DeleteJob = 0x0f => "delete-job",
        ReadJobList = 0x10 => "read-job-list",
        ReadJob = 0x11 => "read-job",
        ReplaceJob = 0x12 => "replace-job",
        BlockStatus2 = 0x13 => "block-status-v2",
        FlashLed = 0x16 => "flash-led",
    }
}

codes! {
    /// Cyclic data (group 2).
    pub enum CyclicFunction(u8) {
        CyclicTransfer = 0x01 => "cyclic-transfer",
        Unsubscribe = 0x04 => "unsubscribe",
        ChangeDrivenTransfer = 0x05 => "change-driven-transfer",
        ChangeDrivenModify = 0x07 => "change-driven-transfer-modify",
        ReadRecord = 0x08 => "read-record",
    }
}

codes! {
    /// Block functions (group 3).
    pub enum BlockFunction(u8) {
        ListBlocks = 0x01 => "list-blocks",
        ListBlocksOfType = 0x02 => "list-blocks-of-type",
        GetBlockInfo = 0x03 => "get-block-info",
    }
}

codes! {
    /// CPU functions (group 4): system status lists, messages and alarms.
    pub enum CpuFunction(u8) {
        ReadSzl = 0x01 => "read-szl",
        MessageService = 0x02 => "message-service",
        DiagnosticMessage = 0x03 => "diagnostic-message",
        Alarm8Indication = 0x05 => "alarm8-indication",
        NotifyIndication = 0x06 => "notify-indication",
        Alarm8Lock = 0x07 => "alarm8-lock",
        Alarm8Unlock = 0x08 => "alarm8-unlock",
        ScanIndication = 0x09 => "scan-indication",
        AlarmAck = 0x0b => "alarm-ack",
        AlarmAckIndication = 0x0c => "alarm-ack-indication",
        AlarmLockIndication = 0x0d => "alarm-lock-indication",
        AlarmUnlockIndication = 0x0e => "alarm-unlock-indication",
        ArSendIndication = 0x10 => "ar-send-indication",
        AlarmSqIndication = 0x11 => "alarm-sq-indication",
        AlarmSIndication = 0x12 => "alarm-s-indication",
        AlarmQuery = 0x13 => "alarm-query",
        Notify8Indication = 0x16 => "notify8-indication",
    }
}

codes! {
    /// Security functions (group 5).
    pub enum SecurityFunction(u8) {
        PlcPassword = 0x01 => "plc-password",
        ClearPassword = 0x02 => "clear-password",
    }
}

codes! {
    /// Time functions (group 7).
    pub enum TimeFunction(u8) {
        ReadClock = 0x01 => "read-clock",
        SetClock = 0x02 => "set-clock",
        ReadClockFollowing = 0x03 => "read-clock-following",
        SetClock2 = 0x04 => "set-clock-2",
    }
}

/// The name of a userdata subfunction of `group`, if it has one.
pub fn subfunction_name(group: Group, sub: u8) -> Option<&'static str> {
    match group {
        Group::ProgrammerCommands => ProgrammerCommand::from(sub).name(),
        Group::CyclicData => CyclicFunction::from(sub).name(),
        Group::BlockFunctions => BlockFunction::from(sub).name(),
        Group::CpuFunctions => CpuFunction::from(sub).name(),
        Group::Security => SecurityFunction::from(sub).name(),
        Group::TimeFunctions => TimeFunction::from(sub).name(),
        _ => None,
    }
}

/// Every named userdata subfunction as (name, group, subfunction).
pub fn subfunctions() -> impl Iterator<Item = (&'static str, Group, u8)> {
    fn of(
        group: Group,
        names: &'static [(&'static str, u8)],
    ) -> impl Iterator<Item = (&'static str, Group, u8)> {
        names.iter().map(move |&(n, v)| (n, group, v))
    }
    of(Group::ProgrammerCommands, ProgrammerCommand::NAMES)
        .chain(of(Group::CyclicData, CyclicFunction::NAMES))
        .chain(of(Group::BlockFunctions, BlockFunction::NAMES))
        .chain(of(Group::CpuFunctions, CpuFunction::NAMES))
        .chain(of(Group::Security, SecurityFunction::NAMES))
        .chain(of(Group::TimeFunctions, TimeFunction::NAMES))
}

codes! {
    /// Block types as written in block file names (`_0A00001P`: the character after
    /// `_0`).
    pub enum BlockType(u8) {
        Ob = b'8' => "ob",
        Cmod = b'9' => "cmod",
        Db = b'A' => "db",
        Sdb = b'B' => "sdb",
        Fc = b'C' => "fc",
        Sfc = b'D' => "sfc",
        Fb = b'E' => "fb",
        Sfb = b'F' => "sfb",
    }
}

/// PI (program invocation) services of `plc-control` and `plc-stop`, by their wire
/// names. NC services (`_N_…`) and others have no name here: they are [`PiService::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiService {
    /// `_INSE`: activate (insert) downloaded blocks.
    Insert,
    /// `_INS2`: activate blocks (second form).
    Insert2,
    /// `_DELE`: delete blocks.
    Delete,
    /// `P_PROGRAM`: start the program (warm, hot or cold restart); `plc-stop` names it
    /// too, to stop.
    Start,
    /// `_MODU`: copy RAM to ROM.
    CopyRamToRom,
    /// `_GARB`: compress the memory.
    Compress,
    /// A service without a name here.
    Other,
}

impl PiService {
    /// (policy name, wire name) of every named service.
    pub const NAMES: &'static [(&'static str, &'static [u8], PiService)] = &[
        ("insert", b"_INSE", PiService::Insert),
        ("insert-2", b"_INS2", PiService::Insert2),
        ("delete", b"_DELE", PiService::Delete),
        ("start", b"P_PROGRAM", PiService::Start),
        ("copy-ram-to-rom", b"_MODU", PiService::CopyRamToRom),
        ("compress", b"_GARB", PiService::Compress),
    ];

    pub fn from_wire(name: &[u8]) -> PiService {
        PiService::NAMES
            .iter()
            .find(|(_, w, _)| *w == name)
            .map_or(PiService::Other, |&(_, _, s)| s)
    }

    pub fn name(self) -> &'static str {
        PiService::NAMES
            .iter()
            .find(|(_, _, s)| *s == self)
            .map_or("other", |&(n, _, _)| n)
    }

    /// The wire name of a named service.
    pub fn wire(self) -> Option<&'static [u8]> {
        PiService::NAMES
            .iter()
            .find(|(_, _, s)| *s == self)
            .map(|&(_, w, _)| w)
    }
}

codes! {
    /// S7comm-plus header versions (the byte after the protocol id).
    pub enum PlusVersion(u8) {
        V1 = 0x01 => "v1",
        V2 = 0x02 => "v2",
        V3 = 0x03 => "v3",
        KeepAlive = 0xff => "keep-alive",
    }
}

codes! {
    /// S7comm-plus opcodes.
    pub enum PlusOpcode(u8) {
        Request = 0x31 => "request",
        Response = 0x32 => "response",
        Notification = 0x33 => "notification",
        Response2 = 0x02 => "response2",
    }
}

codes! {
    /// S7comm-plus functions.
    pub enum PlusFunction(u16) {
        Explore = 0x04bb => "explore",
        CreateObject = 0x04ca => "create-object",
        DeleteObject = 0x04d4 => "delete-object",
        SetVariable = 0x04f2 => "set-variable",
        GetLink = 0x0524 => "get-link",
        SetMultiVariables = 0x0542 => "set-multi-variables",
        GetMultiVariables = 0x054c => "get-multi-variables",
        BeginSequence = 0x0556 => "begin-sequence",
        EndSequence = 0x0560 => "end-sequence",
        Invoke = 0x056b => "invoke",
        GetVarSubstreamed = 0x0586 => "get-var-substreamed",
    }
}
