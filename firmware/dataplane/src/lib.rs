//! The data plane: the per-packet pipeline, the flow table, counters, events, and the
//! ports it runs on.
//!
//! The pipeline ([`Pipeline::process`]) is sans-I/O: it takes frame bytes, the port they
//! came in on and the time, and returns a verdict. It is shared by the daemon's
//! forwarding loop ([`bridge`]) and by `gkctl replay`. After construction it does not
//! allocate: its tables are sized from the policy and reserved up front.

pub mod bridge;
pub mod counters;
pub mod event;
pub mod flow;
pub mod inspect;
mod pipeline;
pub mod port;
#[doc(hidden)]
pub mod testing;

pub use counters::Counters;
pub use event::{Event, EventFormatter, EventSink, EventVerdict, NullSink};
pub use pipeline::{describe, Now, Outcome, Pipeline, SwapReport};

/// One of the two data ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    /// The network side: HMIs, engineering workstations, the rest of the plant.
    Plant = 0,
    /// The protected workload: the PLC, RTU or HMI behind the box.
    Asset = 1,
}

impl Port {
    pub fn other(self) -> Port {
        match self {
            Port::Plant => Port::Asset,
            Port::Asset => Port::Plant,
        }
    }

    /// The name used in events and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Port::Plant => "plant",
            Port::Asset => "asset",
        }
    }
}

/// Why a frame got its verdict. The codes are stable: they appear in events, counters
/// and `gkctl replay` output (config/README.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // Reasons to forward.
    /// A rule allowed (or alerted on) a new conversation.
    Rule,
    /// Part of a conversation already allowed (either direction).
    Flow,
    /// An ICMP error about a known conversation.
    Related,
    /// A non-IP frame whose ethertype is allowed (ARP after the MAC-pin check, LLDP, …).
    L2,
    // Reasons to drop.
    /// No rule matched: the implicit default deny.
    NoRule,
    /// A `deny` rule matched (the event names it).
    DenyRule,
    Ethertype,
    Vlan,
    MacPin,
    FlowTableFull,
    Malformed,
    Fragment,
    /// A TCP segment that opens no connection (not a SYN) and belongs to none.
    TcpState,
    /// A packet of a known conversation arriving on the wrong port.
    SpoofedReply,
    /// A frame larger than the receive buffer (truncated by the kernel).
    Oversize,
    // Reasons to drop an industrial-protocol message (the event names the operation).
    /// A unit, station or device address the rule does not list.
    Unit,
    /// A function, service, command or type the rule does not allow.
    Function,
    /// A data address outside the rule's ranges.
    Address,
    /// An object, class or property the rule does not allow.
    Object,
    /// A security setting below what the rule requires.
    Security,
    /// Every inspection stream is in use: a new inspected conversation is refused.
    StreamTableFull,
    /// A TCP segment of an inspected conversation that leaves a gap: it cannot be judged
    /// before the bytes in front of it (the sender will retransmit them).
    OutOfOrder,
}

impl From<gk_policy::Violation> for Reason {
    fn from(v: gk_policy::Violation) -> Reason {
        match v {
            gk_policy::Violation::Unit => Reason::Unit,
            gk_policy::Violation::Function => Reason::Function,
            gk_policy::Violation::Address => Reason::Address,
            gk_policy::Violation::Object => Reason::Object,
            gk_policy::Violation::Security => Reason::Security,
        }
    }
}

impl Reason {
    pub const ALL: [Reason; 22] = [
        Reason::Rule,
        Reason::Flow,
        Reason::Related,
        Reason::L2,
        Reason::NoRule,
        Reason::DenyRule,
        Reason::Ethertype,
        Reason::Vlan,
        Reason::MacPin,
        Reason::FlowTableFull,
        Reason::Malformed,
        Reason::Fragment,
        Reason::TcpState,
        Reason::SpoofedReply,
        Reason::Oversize,
        Reason::Unit,
        Reason::Function,
        Reason::Address,
        Reason::Object,
        Reason::Security,
        Reason::StreamTableFull,
        Reason::OutOfOrder,
    ];

    /// The stable code used in events and counters.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Rule | Reason::DenyRule => "rule",
            Reason::Flow => "flow",
            Reason::Related => "related",
            Reason::L2 => "l2",
            Reason::NoRule => "no-rule",
            Reason::Ethertype => "ethertype",
            Reason::Vlan => "vlan",
            Reason::MacPin => "mac-pin",
            Reason::FlowTableFull => "flow-table-full",
            Reason::Malformed => "malformed",
            Reason::Fragment => "fragment",
            Reason::TcpState => "tcp-state",
            Reason::SpoofedReply => "spoofed-reply",
            Reason::Oversize => "oversize",
            Reason::Unit => "unit",
            Reason::Function => "function",
            Reason::Address => "address",
            Reason::Object => "object",
            Reason::Security => "security",
            Reason::StreamTableFull => "stream-table-full",
            Reason::OutOfOrder => "out-of-order",
        }
    }

    /// Whether this reason, when it decides a frame, drops it (in enforce mode).
    pub fn is_drop(self) -> bool {
        !matches!(
            self,
            Reason::Rule | Reason::Flow | Reason::Related | Reason::L2
        )
    }

    /// Position in [`Reason::ALL`] (the declaration order), for per-reason counters.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod test {
    use super::Reason;

    #[test]
    fn reason_index_matches_all() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }

    #[test]
    fn every_violation_has_a_reason_with_the_same_code() {
        for v in gk_policy::Violation::ALL {
            assert_eq!(Reason::from(v).code(), v.code());
        }
    }
}
