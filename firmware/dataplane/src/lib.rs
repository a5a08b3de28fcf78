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
mod pipeline;
pub mod port;
#[doc(hidden)]
pub mod testing;

pub use counters::Counters;
pub use event::{Event, EventFormatter, EventSink, EventVerdict, NullSink};
pub use pipeline::{describe, Now, Outcome, Pipeline};

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
}

impl Reason {
    pub const ALL: [Reason; 15] = [
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
}
