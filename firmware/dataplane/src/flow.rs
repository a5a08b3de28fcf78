//! The flow table: a fixed-capacity connection tracker.
//!
//! All memory is reserved when the table is built from the policy's `[flows] capacity`;
//! inserting, looking up and expiring never allocate. The index is an open-addressing
//! hash table with linear probing and backward-shift deletion (no tombstones, so no
//! rehash is ever needed), at most half full, over a slab of entries with a free list.
//! Keys are hashed with a per-process random SipHash key so that an attacker cannot
//! aim collisions at the probe chains.
//!
//! A key is canonical (the two endpoints in a fixed order), so a packet and its reply
//! find the same entry with one lookup; the entry remembers which endpoint initiated.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::Duration;

use gk_inspect::Protocol;
use gk_policy::{Limits, RuleId};

use crate::{Port, Reason};

/// One side of a conversation: address and port (or ICMP echo id; 0 when the protocol
/// has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: [u8; 16],
    pub port: u16,
}

impl Endpoint {
    pub fn new(addr: IpAddr, port: u16) -> Self {
        let addr = match addr {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        Endpoint { addr, port }
    }
}

/// Canonical flow key: `lo` sorts before `hi`, so both directions map to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
    pub protocol: u8,
    /// Outer VLAN id (0 when untagged): the same addresses on two VLANs are two flows.
    pub vlan: u16,
}

impl FlowKey {
    /// The key of a packet sent from `src` to `dst`, and whether `src` is the `lo` side.
    pub fn new(src: Endpoint, dst: Endpoint, protocol: u8, vlan: u16) -> (FlowKey, bool) {
        if src <= dst {
            (
                FlowKey {
                    lo: src,
                    hi: dst,
                    protocol,
                    vlan,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    lo: dst,
                    hi: src,
                    protocol,
                    vlan,
                },
                false,
            )
        }
    }
}

/// Where a conversation stands. TCP walks the handshake; other protocols are `Open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowState {
    /// The initiator's SYN was seen.
    SynSent,
    /// The responder answered with SYN+ACK.
    SynReceived,
    Established,
    /// One side sent FIN.
    FinWait,
    /// Both sides sent FIN.
    Closing,
    /// A RST was seen: the entry lingers briefly to absorb stragglers.
    Reset,
    /// UDP, ICMP echo, other protocols: no handshake.
    Open,
}

/// How long an idle entry lives in each state, from the policy's `[flows]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_syn: u64,
    pub tcp_established: u64,
    pub tcp_closing: u64,
    pub tcp_reset: u64,
    pub udp: u64,
    pub icmp: u64,
    pub other: u64,
}

impl Timeouts {
    pub fn from_limits(limits: &Limits) -> Self {
        let ns = |d: Duration| d.as_nanos().min(u64::MAX as u128) as u64;
        Timeouts {
            tcp_syn: ns(limits.tcp_syn_timeout),
            tcp_established: ns(limits.tcp_established_timeout),
            tcp_closing: ns(limits.tcp_closing_timeout),
            // Like conntrack's CLOSE state: long enough for a retransmitted RST to pass.
            tcp_reset: ns(Duration::from_secs(10)).min(ns(limits.tcp_closing_timeout)),
            udp: ns(limits.udp_timeout),
            icmp: ns(limits.icmp_timeout),
            other: ns(limits.other_timeout),
        }
    }

    fn for_state(&self, state: FlowState, protocol: u8) -> u64 {
        match state {
            FlowState::SynSent | FlowState::SynReceived => self.tcp_syn,
            FlowState::Established => self.tcp_established,
            FlowState::FinWait | FlowState::Closing => self.tcp_closing,
            FlowState::Reset => self.tcp_reset,
            FlowState::Open => match protocol {
                17 => self.udp,
                1 | 58 => self.icmp,
                _ => self.other,
            },
        }
    }
}

/// What the policy said about the conversation when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowVerdict {
    /// Allowed by a rule (`alert` rules too: the alert was raised at the first packet).
    Allowed(RuleId),
    /// Monitor mode: enforce would have refused it (by this rule, for this reason);
    /// forwarded, and reported once.
    WouldDeny(Option<RuleId>, Reason),
    /// Allowed by an earlier policy, not by the one in force since a swap: its next
    /// packet is refused (and a TCP connection reset towards both ends).
    Revoked(Option<RuleId>, Reason),
}

#[derive(Debug, Clone, Copy)]
pub struct FlowEntry {
    pub key: FlowKey,
    /// True when the initiator is the key's `lo` endpoint.
    pub initiator_is_lo: bool,
    /// The port the initiator's packets arrive on; replies must arrive on the other one.
    pub initiator_port: Port,
    pub verdict: FlowVerdict,
    pub state: FlowState,
    /// Which sides have sent a FIN (bit 0: initiator, bit 1: responder).
    pub fins: u8,
    pub expires_at: u64,
    pub packets: u64,
    pub bytes: u64,
    /// The industrial protocol whose messages are judged one by one, if any.
    pub app: Option<Protocol>,
    /// The inspection stream of a TCP conversation ([`NO_STREAM`] when it has none).
    pub stream: u32,
}

/// `FlowEntry::stream` of a flow without a stream.
pub const NO_STREAM: u32 = u32::MAX;

impl FlowEntry {
    /// Whether a packet whose source is the key's `lo` side comes from the initiator.
    pub fn from_initiator(&self, src_is_lo: bool) -> bool {
        src_is_lo == self.initiator_is_lo
    }
}

/// A handle to a live entry, valid until the next insert or remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowHandle(u32);

const EMPTY: u32 = u32::MAX;

#[derive(Debug)]
pub struct FlowTable {
    /// Entries; `None` slots are on the free list.
    slab: Vec<Option<FlowEntry>>,
    free: Vec<u32>,
    /// Open-addressing index: slab positions, `EMPTY` where vacant. Power-of-two size,
    /// at least twice the capacity.
    index: Vec<u32>,
    /// The full hash of the entry at the same index position (for probe distances).
    hashes: Vec<u64>,
    mask: usize,
    hasher: RandomState,
    timeouts: Timeouts,
    sweep_cursor: usize,
    /// Streams of removed entries, for the owner of the stream pool to take back
    /// ([`FlowTable::take_released`]). Reserved: one per entry at most.
    released: Vec<u32>,
}

/// Why an insert failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

impl FlowTable {
    pub fn new(capacity: usize, timeouts: Timeouts) -> Self {
        let capacity = capacity.max(1);
        let index_size = (capacity * 2).next_power_of_two();
        FlowTable {
            slab: vec![None; capacity],
            free: (0..capacity as u32).rev().collect(),
            index: vec![EMPTY; index_size],
            hashes: vec![0; index_size],
            mask: index_size - 1,
            hasher: RandomState::new(),
            timeouts,
            sweep_cursor: 0,
            released: Vec::with_capacity(capacity),
        }
    }

    /// Every live entry, for a policy swap to judge again; `judge` returns false to
    /// remove the entry. Not for the packet path (it walks the whole slab).
    pub fn retain(&mut self, mut judge: impl FnMut(&mut FlowEntry) -> bool) {
        let doomed: Vec<FlowKey> = self
            .slab
            .iter_mut()
            .flatten()
            .filter_map(|e| (!judge(e)).then_some(e.key))
            .collect();
        for key in doomed {
            if let Some((pos, _)) = self.find(&key) {
                self.remove_at(pos);
            }
        }
    }

    /// Every live entry.
    pub fn entries(&self) -> impl Iterator<Item = &FlowEntry> + '_ {
        self.slab.iter().flatten()
    }

    /// The streams of entries removed since the last call (expired, replaced, removed).
    pub fn take_released(&mut self) -> std::vec::Drain<'_, u32> {
        self.released.drain(..)
    }

    pub fn capacity(&self) -> usize {
        self.slab.len()
    }

    /// New timeouts, applied from each entry's next packet.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
    }

    pub fn len(&self) -> usize {
        self.slab.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn find(&self, key: &FlowKey) -> Option<(usize, u32)> {
        let hash = self.hasher.hash_one(key);
        let mut pos = hash as usize & self.mask;
        loop {
            let slot = self.index[pos];
            if slot == EMPTY {
                return None;
            }
            if self.hashes[pos] == hash {
                if let Some(entry) = &self.slab[slot as usize] {
                    if entry.key == *key {
                        return Some((pos, slot));
                    }
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// The live entry for `key`; an entry that has expired is removed and not returned.
    pub fn lookup(&mut self, key: &FlowKey, now: u64) -> Option<FlowHandle> {
        let (pos, slot) = self.find(key)?;
        let expired = self.slab[slot as usize].is_some_and(|e| e.expires_at <= now);
        if expired {
            self.remove_at(pos);
            return None;
        }
        Some(FlowHandle(slot))
    }

    pub fn get(&self, handle: FlowHandle) -> &FlowEntry {
        self.slab[handle.0 as usize]
            .as_ref()
            .expect("live flow handle")
    }

    pub fn get_mut(&mut self, handle: FlowHandle) -> &mut FlowEntry {
        self.slab[handle.0 as usize]
            .as_mut()
            .expect("live flow handle")
    }

    /// Insert a new entry (the key must not be present). When the table is full, a
    /// bounded sweep first tries to reclaim expired entries.
    pub fn insert(&mut self, mut entry: FlowEntry, now: u64) -> Result<FlowHandle, TableFull> {
        if self.free.is_empty() {
            self.expire(now, 1024);
        }
        let slot = self.free.pop().ok_or(TableFull)?;
        entry.expires_at =
            now.saturating_add(self.timeouts.for_state(entry.state, entry.key.protocol));
        let hash = self.hasher.hash_one(entry.key);
        let mut pos = hash as usize & self.mask;
        while self.index[pos] != EMPTY {
            pos = (pos + 1) & self.mask;
        }
        self.index[pos] = slot;
        self.hashes[pos] = hash;
        self.slab[slot as usize] = Some(entry);
        Ok(FlowHandle(slot))
    }

    /// Mark activity on an entry and push its expiry out according to its state.
    pub fn touch(&mut self, handle: FlowHandle, now: u64, bytes: usize) {
        let timeouts = self.timeouts;
        let entry = self.get_mut(handle);
        entry.packets += 1;
        entry.bytes += bytes as u64;
        entry.expires_at = now.saturating_add(timeouts.for_state(entry.state, entry.key.protocol));
    }

    pub fn remove(&mut self, handle: FlowHandle) {
        let key = self.get(handle).key;
        if let Some((pos, _)) = self.find(&key) {
            self.remove_at(pos);
        }
    }

    /// Remove the index entry at `pos`, and shift later members of its probe chain back
    /// so that lookups never need tombstones.
    fn remove_at(&mut self, pos: usize) {
        let slot = self.index[pos];
        if let Some(entry) = self.slab[slot as usize].take() {
            if entry.stream != NO_STREAM && self.released.len() < self.released.capacity() {
                self.released.push(entry.stream);
            }
        }
        self.free.push(slot);
        let mut hole = pos;
        let mut next = (hole + 1) & self.mask;
        while self.index[next] != EMPTY {
            let ideal = self.hashes[next] as usize & self.mask;
            // Move `next` into the hole unless its ideal position lies cyclically in
            // (hole, next]: then it is already as close to home as it can be.
            let stays = if hole <= next {
                hole < ideal && ideal <= next
            } else {
                hole < ideal || ideal <= next
            };
            if !stays {
                self.index[hole] = self.index[next];
                self.hashes[hole] = self.hashes[next];
                hole = next;
            }
            next = (next + 1) & self.mask;
        }
        self.index[hole] = EMPTY;
    }

    /// Examine up to `budget` slab slots from where the last sweep stopped and remove
    /// the expired entries; returns how many were removed. Called a little at a time so
    /// that expiry never stalls the packet path.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let mut removed = 0;
        for _ in 0..budget.min(self.slab.len()) {
            let slot = self.sweep_cursor;
            self.sweep_cursor = (self.sweep_cursor + 1) % self.slab.len();
            let Some(entry) = self.slab[slot] else {
                continue;
            };
            if entry.expires_at <= now {
                if let Some((pos, _)) = self.find(&entry.key) {
                    self.remove_at(pos);
                    removed += 1;
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            tcp_syn: 30,
            tcp_established: 3600,
            tcp_closing: 120,
            tcp_reset: 10,
            udp: 60,
            icmp: 30,
            other: 60,
        }
    }

    fn key(n: u32) -> FlowKey {
        let a = Endpoint::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)), 40000);
        let b = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 10, 0, 10)), 502);
        FlowKey::new(a, b, 6, 0).0
    }

    fn entry(key: FlowKey, state: FlowState) -> FlowEntry {
        FlowEntry {
            key,
            initiator_is_lo: true,
            initiator_port: Port::Plant,
            verdict: FlowVerdict::Allowed(RuleId(0)),
            state,
            fins: 0,
            expires_at: 0,
            packets: 0,
            bytes: 0,
            app: None,
            stream: NO_STREAM,
        }
    }

    #[test]
    fn both_directions_share_one_key() {
        let a = Endpoint::new("10.0.0.1".parse().unwrap(), 1234);
        let b = Endpoint::new("10.0.0.2".parse().unwrap(), 80);
        let (k1, a_is_lo) = FlowKey::new(a, b, 6, 0);
        let (k2, b_is_lo) = FlowKey::new(b, a, 6, 0);
        assert_eq!(k1, k2);
        assert_ne!(a_is_lo, b_is_lo);
        let (other_vlan, _) = FlowKey::new(a, b, 6, 10);
        assert_ne!(k1, other_vlan);
    }

    #[test]
    fn full_table_refuses_then_reclaims_expired() {
        let mut table = FlowTable::new(4, timeouts());
        for n in 0..4 {
            table.insert(entry(key(n), FlowState::Open), 0).unwrap();
        }
        assert_eq!(
            table.insert(entry(key(99), FlowState::Open), 10),
            Err(TableFull)
        );
        // Existing flows still work while the table is full.
        assert!(table.lookup(&key(2), 10).is_some());
        // Once their UDP-like timeout (60) has passed, the insert sweeps them away.
        assert!(table.insert(entry(key(99), FlowState::Open), 61).is_ok());
        assert!(table.lookup(&key(99), 61).is_some());
    }

    #[test]
    fn lookup_drops_expired_entries() {
        let mut table = FlowTable::new(8, timeouts());
        let h = table
            .insert(entry(key(1), FlowState::SynSent), 100)
            .unwrap();
        assert_eq!(table.get(h).expires_at, 130);
        assert!(table.lookup(&key(1), 129).is_some());
        assert!(table.lookup(&key(1), 130).is_none());
        assert!(table.is_empty());
    }

    #[test]
    fn touch_extends_by_state() {
        let mut table = FlowTable::new(8, timeouts());
        let h = table.insert(entry(key(1), FlowState::SynSent), 0).unwrap();
        table.get_mut(h).state = FlowState::Established;
        table.touch(h, 5, 60);
        assert_eq!(table.get(h).expires_at, 3605);
        assert_eq!((table.get(h).packets, table.get(h).bytes), (1, 60));
    }

    #[test]
    fn sweep_is_incremental() {
        let mut table = FlowTable::new(100, timeouts());
        for n in 0..100 {
            table.insert(entry(key(n), FlowState::Open), 0).unwrap();
        }
        assert_eq!(table.expire(1000, 10), 10);
        assert_eq!(table.len(), 90);
        assert_eq!(table.expire(1000, 1000), 90);
        assert!(table.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
        Lookup(u32),
    }

    proptest! {
        /// The table behaves like a bounded map under any sequence of operations on a
        /// small key space (which forces long probe chains and wrap-around deletions).
        #[test]
        fn agrees_with_a_model(ops in proptest::collection::vec(
            prop_oneof![
                (0u32..40).prop_map(Op::Insert),
                (0u32..40).prop_map(Op::Remove),
                (0u32..40).prop_map(Op::Lookup),
            ], 1..400)) {
            let mut table = FlowTable::new(16, timeouts());
            let mut model: HashMap<FlowKey, ()> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(n) => {
                        let k = key(n);
                        if table.lookup(&k, 0).is_none() {
                            let r = table.insert(entry(k, FlowState::Established), 0);
                            if model.len() < 16 {
                                prop_assert!(r.is_ok());
                                model.insert(k, ());
                            } else {
                                prop_assert_eq!(r, Err(TableFull));
                            }
                        }
                    }
                    Op::Remove(n) => {
                        let k = key(n);
                        if let Some(h) = table.lookup(&k, 0) {
                            table.remove(h);
                        }
                        model.remove(&k);
                    }
                    Op::Lookup(n) => {
                        let k = key(n);
                        let found = table.lookup(&k, 0).map(|h| table.get(h).key);
                        prop_assert_eq!(found, model.contains_key(&k).then_some(k));
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
        }
    }
}
