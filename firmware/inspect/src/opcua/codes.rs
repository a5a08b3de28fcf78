//! The code tables of OPC UA binary: message and chunk types, services (by the NodeId
//! of their binary encoding), security policies and modes.
//!
//! Service ids are the `*_Encoding_DefaultBinary` NodeIds of namespace 0 (OPC 10000-6,
//! A.3, and the NodeIds.csv the OPC Foundation publishes): the request's id is what a
//! MSG body starts with. Responses are the request's id + 3, except for the two
//! services added in 1.03 (FindServersOnNetwork, RegisterServer2), whose responses
//! follow their requests directly.

use core::fmt;

use crate::macros::codes;

codes! {
    /// Message types (OPC 10000-6, 7.1.2.2 and 6.7.2.2): the three ASCII bytes, read as a
    /// big-endian number (`b"HEL"` is 0x48454c).
    pub enum MessageType(u32) {
        Hello = 0x48454c => "hel",
        Acknowledge = 0x41434b => "ack",
        Error = 0x455252 => "err",
        ReverseHello = 0x524845 => "rhe",
        Open = 0x4f504e => "opn",
        Message = 0x4d5347 => "msg",
        Close = 0x434c4f => "clo",
    }
}

impl MessageType {
    /// The type of the three bytes at the start of a message.
    pub fn of(bytes: [u8; 3]) -> MessageType {
        MessageType::from(u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]))
    }

    /// The three ASCII bytes on the wire.
    pub fn bytes(self) -> [u8; 3] {
        let b = u32::from(self).to_be_bytes();
        [b[1], b[2], b[3]]
    }

    /// Whether the message belongs to a secure channel (OPN, MSG, CLO) rather than to
    /// the connection protocol (HEL, ACK, ERR, RHE).
    pub fn is_secure_channel(self) -> bool {
        matches!(
            self,
            MessageType::Open | MessageType::Message | MessageType::Close
        )
    }
}

codes! {
    /// The chunk type byte after the message type (`IsFinal`, OPC 10000-6, 6.7.2.2); only
    /// MSG chunks use other values than `F`.
    pub enum ChunkType(u8) {
        Final = b'F' => "final",
        Intermediate = b'C' => "intermediate",
        Abort = b'A' => "abort",
    }
}

codes! {
    /// Services, by the id of their request's binary encoding in namespace 0
    /// (OPC 10000-4 defines the services; OPC 10000-6, A.3, their encodings).
    pub enum Service(u32) {
        FindServers = 422 => "find-servers",
        FindServersOnNetwork = 12208 => "find-servers-on-network",
        GetEndpoints = 428 => "get-endpoints",
        RegisterServer = 437 => "register-server",
        RegisterServer2 = 12211 => "register-server2",
        OpenSecureChannel = 446 => "open-secure-channel",
        CloseSecureChannel = 452 => "close-secure-channel",
        CreateSession = 461 => "create-session",
        ActivateSession = 467 => "activate-session",
        CloseSession = 473 => "close-session",
        Cancel = 479 => "cancel",
        AddNodes = 488 => "add-nodes",
        AddReferences = 494 => "add-references",
        DeleteNodes = 500 => "delete-nodes",
        DeleteReferences = 506 => "delete-references",
        Browse = 527 => "browse",
        BrowseNext = 533 => "browse-next",
        TranslateBrowsePaths = 554 => "translate-browse-paths-to-node-ids",
        RegisterNodes = 560 => "register-nodes",
        UnregisterNodes = 566 => "unregister-nodes",
        QueryFirst = 615 => "query-first",
        QueryNext = 621 => "query-next",
        Read = 631 => "read",
        HistoryRead = 664 => "history-read",
        Write = 673 => "write",
        HistoryUpdate = 700 => "history-update",
        Call = 712 => "call",
        CreateMonitoredItems = 751 => "create-monitored-items",
        ModifyMonitoredItems = 763 => "modify-monitored-items",
        SetMonitoringMode = 769 => "set-monitoring-mode",
        SetTriggering = 775 => "set-triggering",
        DeleteMonitoredItems = 781 => "delete-monitored-items",
        CreateSubscription = 787 => "create-subscription",
        ModifySubscription = 793 => "modify-subscription",
        SetPublishingMode = 799 => "set-publishing-mode",
        Publish = 826 => "publish",
        Republish = 832 => "republish",
        TransferSubscriptions = 841 => "transfer-subscriptions",
        DeleteSubscriptions = 847 => "delete-subscriptions",
    }
}

/// `ServiceFault_Encoding_DefaultBinary`: the answer to any request that failed as a
/// whole.
pub const SERVICE_FAULT: u32 = 397;

impl Service {
    /// The id of the response's binary encoding; `None` for a code without a name.
    pub fn response_id(self) -> Option<u32> {
        match self {
            Service::FindServersOnNetwork => Some(12209),
            Service::RegisterServer2 => Some(12212),
            Service::Unknown(_) => None,
            known => Some(u32::from(known) + 3),
        }
    }

    /// The named service whose request has this encoding id.
    pub fn of_request(id: u32) -> Option<Service> {
        Some(Service::from(id)).filter(|s| s.name().is_some())
    }

    /// The named service whose response has this encoding id.
    pub fn of_response(id: u32) -> Option<Service> {
        Service::NAMES
            .iter()
            .map(|&(_, v)| Service::from(v))
            .find(|s| s.response_id() == Some(id))
    }

    /// Whether the service belongs to the secure channel itself (OPN and CLO carry it),
    /// not to a MSG.
    pub fn is_secure_channel(self) -> bool {
        matches!(
            self,
            Service::OpenSecureChannel | Service::CloseSecureChannel
        )
    }
}

codes! {
    /// `MessageSecurityMode` (OPC 10000-4, 7.20). 0 (`Invalid`) is always refused by
    /// servers and has no name here.
    pub enum SecurityMode(u32) {
        None = 1 => "none",
        Sign = 2 => "sign",
        SignAndEncrypt = 3 => "sign-and-encrypt",
    }
}

codes! {
    /// `SecurityTokenRequestType` of an OpenSecureChannel request (OPC 10000-4, 5.5.2).
    pub enum RequestType(u32) {
        Issue = 0 => "issue",
        Renew = 1 => "renew",
    }
}

/// The prefix every standard security policy URI shares.
pub const POLICY_URI_PREFIX: &str = "http://opcfoundation.org/UA/SecurityPolicy#";

/// Security policies of a secure channel (OPC 10000-7 defines their profiles), by the
/// URI an OPN's asymmetric security header carries. A URI without a name here is
/// `Other`: data, which no `security-policies` list can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityPolicy {
    None,
    /// Deprecated since 1.04.
    Basic128Rsa15,
    /// Deprecated since 1.04.
    Basic256,
    Basic256Sha256,
    Aes128Sha256RsaOaep,
    Aes256Sha256RsaPss,
    EccNistP256,
    EccNistP384,
    EccBrainpoolP256r1,
    EccBrainpoolP384r1,
    EccCurve25519,
    EccCurve448,
    /// A URI without a name here.
    Other,
}

impl SecurityPolicy {
    /// Every named policy as (policy name, fragment of the URI after `#`).
    pub const NAMES: &'static [(&'static str, &'static str, SecurityPolicy)] = &[
        ("none", "None", SecurityPolicy::None),
        (
            "basic128rsa15",
            "Basic128Rsa15",
            SecurityPolicy::Basic128Rsa15,
        ),
        ("basic256", "Basic256", SecurityPolicy::Basic256),
        (
            "basic256sha256",
            "Basic256Sha256",
            SecurityPolicy::Basic256Sha256,
        ),
        (
            "aes128-sha256-rsaoaep",
            "Aes128_Sha256_RsaOaep",
            SecurityPolicy::Aes128Sha256RsaOaep,
        ),
        (
            "aes256-sha256-rsapss",
            "Aes256_Sha256_RsaPss",
            SecurityPolicy::Aes256Sha256RsaPss,
        ),
        ("ecc-nistp256", "ECC_nistP256", SecurityPolicy::EccNistP256),
        ("ecc-nistp384", "ECC_nistP384", SecurityPolicy::EccNistP384),
        (
            "ecc-brainpoolp256r1",
            "ECC_brainpoolP256r1",
            SecurityPolicy::EccBrainpoolP256r1,
        ),
        (
            "ecc-brainpoolp384r1",
            "ECC_brainpoolP384r1",
            SecurityPolicy::EccBrainpoolP384r1,
        ),
        (
            "ecc-curve25519",
            "ECC_curve25519",
            SecurityPolicy::EccCurve25519,
        ),
        ("ecc-curve448", "ECC_curve448", SecurityPolicy::EccCurve448),
    ];

    /// The policy a URI names (compared byte for byte, as servers do).
    pub fn from_uri(uri: &[u8]) -> SecurityPolicy {
        let Some(fragment) = uri.strip_prefix(POLICY_URI_PREFIX.as_bytes()) else {
            return SecurityPolicy::Other;
        };
        SecurityPolicy::NAMES
            .iter()
            .find(|(_, f, _)| f.as_bytes() == fragment)
            .map_or(SecurityPolicy::Other, |&(_, _, p)| p)
    }

    /// The policy's name in policies and events; `None` for `Other`.
    pub fn name(self) -> Option<&'static str> {
        SecurityPolicy::NAMES
            .iter()
            .find(|(_, _, p)| *p == self)
            .map(|&(n, _, _)| n)
    }

    pub fn from_name(name: &str) -> Option<SecurityPolicy> {
        SecurityPolicy::NAMES
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, _, p)| p)
    }

    /// The fragment of the policy's URI after `#` (`None` for `Other`).
    pub fn uri_fragment(self) -> Option<&'static str> {
        SecurityPolicy::NAMES
            .iter()
            .find(|(_, _, p)| *p == self)
            .map(|&(_, f, _)| f)
    }

    /// A small number per policy for compiled sets: 0-11 for the named ones, 255 for
    /// `Other`.
    pub fn code(self) -> u8 {
        SecurityPolicy::NAMES
            .iter()
            .position(|(_, _, p)| *p == self)
            .map_or(255, |i| i as u8)
    }

    pub fn from_code(code: u8) -> SecurityPolicy {
        SecurityPolicy::NAMES
            .get(usize::from(code))
            .map_or(SecurityPolicy::Other, |&(_, _, p)| p)
    }

    /// The symmetric cipher block size of the policies that encrypt MSG chunks with
    /// AES-CBC and padding (the RSA policies of OPC 10000-7): an encrypted chunk's
    /// encrypted part is a whole number of blocks. `None` where the policy does not
    /// pad (ECC policies may use authenticated stream ciphers) or is unknown.
    pub fn cipher_block(self) -> Option<usize> {
        match self {
            SecurityPolicy::Basic128Rsa15
            | SecurityPolicy::Basic256
            | SecurityPolicy::Basic256Sha256
            | SecurityPolicy::Aes128Sha256RsaOaep
            | SecurityPolicy::Aes256Sha256RsaPss => Some(16),
            _ => None,
        }
    }
}

impl fmt::Display for SecurityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name().unwrap_or("other"))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn message_types_are_their_ascii_bytes() {
        assert_eq!(MessageType::of(*b"HEL"), MessageType::Hello);
        assert_eq!(MessageType::of(*b"MSG"), MessageType::Message);
        assert_eq!(MessageType::Close.bytes(), *b"CLO");
        for &(_, v) in MessageType::NAMES {
            let t = MessageType::from(v);
            assert_eq!(MessageType::of(t.bytes()), t);
        }
        assert!(matches!(MessageType::of(*b"GET"), MessageType::Unknown(_)));
    }

    #[test]
    fn responses_follow_their_requests() {
        assert_eq!(Service::Read.response_id(), Some(634));
        assert_eq!(Service::of_response(634), Some(Service::Read));
        assert_eq!(
            Service::of_response(12209),
            Some(Service::FindServersOnNetwork)
        );
        assert_eq!(Service::of_response(12212), Some(Service::RegisterServer2));
        assert_eq!(Service::of_response(449), Some(Service::OpenSecureChannel));
        assert_eq!(Service::of_response(631), None);
        assert_eq!(Service::of_request(673), Some(Service::Write));
        assert_eq!(Service::of_request(674), None);
        // No request id is another service's response id.
        for &(_, v) in Service::NAMES {
            assert_eq!(Service::of_response(v), None, "{v}");
        }
    }

    #[test]
    fn policies_by_uri_and_name() {
        let uri = b"http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256";
        assert_eq!(
            SecurityPolicy::from_uri(uri),
            SecurityPolicy::Basic256Sha256
        );
        assert_eq!(
            SecurityPolicy::from_uri(b"http://opcfoundation.org/UA/SecurityPolicy#None"),
            SecurityPolicy::None
        );
        // Compared exactly: a case variant is not the policy.
        assert_eq!(
            SecurityPolicy::from_uri(b"http://opcfoundation.org/UA/SecurityPolicy#none"),
            SecurityPolicy::Other
        );
        assert_eq!(SecurityPolicy::from_uri(b""), SecurityPolicy::Other);
        for (i, &(name, _, p)) in SecurityPolicy::NAMES.iter().enumerate() {
            assert_eq!(SecurityPolicy::from_name(name), Some(p));
            assert_eq!(usize::from(p.code()), i);
            assert_eq!(SecurityPolicy::from_code(p.code()), p);
        }
        assert_eq!(SecurityPolicy::Other.code(), 255);
        assert_eq!(SecurityPolicy::Other.name(), None);
    }
}
