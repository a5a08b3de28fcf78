//! The names a policy may use for ethertypes and ICMP types, and back again for display.

/// Ethertype names. Aliases follow their canonical name, so reverse look-ups find the
/// canonical one first.
pub(crate) const ETHERTYPES: &[(&str, u16)] = &[
    ("ipv4", 0x0800),
    ("arp", 0x0806),
    ("ipv6", 0x86dd),
    ("lldp", 0x88cc),
    ("profinet", 0x8892),
    ("goose", 0x88b8),
    ("sv", 0x88ba),
    ("sampled-values", 0x88ba),
    ("ptp", 0x88f7),
    ("mrp", 0x88e3),
    ("hsr", 0x892f),
    ("ethercat", 0x88a4),
    ("powerlink", 0x88ab),
    ("slow", 0x8809),
    ("lacp", 0x8809),
];

/// Tag protocol identifiers: tags are judged by `l2.vlans`, never as ethertypes.
pub(crate) const VLAN_TPIDS: &[u16] = &[0x8100, 0x88a8, 0x9100];

pub(crate) const ICMPV4: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp", 13),
    ("timestamp-reply", 14),
];

pub(crate) const ICMPV6: &[(&str, u8)] = &[
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("mld-query", 130),
    ("mld-report", 131),
    ("mld-done", 132),
    ("router-solicitation", 133),
    ("router-advertisement", 134),
    ("neighbor-solicitation", 135),
    ("neighbor-advertisement", 136),
    ("redirect", 137),
    ("mldv2-report", 143),
];

pub(crate) fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}

pub(crate) fn name_of<T: Copy + PartialEq>(
    table: &[(&'static str, T)],
    value: T,
) -> Option<&'static str> {
    table.iter().find(|&&(_, v)| v == value).map(|&(n, _)| n)
}

/// "a, b, c" for error messages that list what would have been accepted.
pub(crate) fn list<T>(table: &[(&str, T)]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in table {
        if !names.contains(n) {
            names.push(n);
        }
    }
    names.join(", ")
}
