//! Which peer a received datagram belongs to, found with a lookup instead of asking every
//! peer's str0m: anyone can send datagrams to the UDP port, and one from a stranger must cost
//! no more than a hash lookup (no allocation, no log line, no str0m call, no HMAC).
//!
//! - A STUN Binding request names the peer in its USERNAME (`<our ufrag>:<its ufrag>`): our
//!   ufrag, random per peer, picks the peer. Once that peer's str0m has accepted the request
//!   (the ufrag matched and the message integrity checked out with the peer's password), its
//!   source address is learnt for the peer.
//! - Anything else (DTLS, SRTP, SRTCP, STUN responses) is routed by its source address, as
//!   learnt; a datagram from an address no peer has authenticated from is dropped.
//! - Except a STUN response from one of a peer's remote candidates, which may come before the
//!   browser's own request from there has been seen (our checks start as soon as the offer
//!   is in): it goes to that peer, whose str0m checks its transaction and integrity.
//!
//! A peer keeps at most [`ADDRS_PER_PEER`] learnt addresses (the oldest is forgotten first)
//! and [`MAX_REMOTE_CANDIDATES`] candidates, so the table is bounded by the number of peers.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use super::PeerId;

/// Addresses remembered per peer: a browser checks from each of its host candidates (IPv4,
/// IPv6, a VPN's), and the one that wins is all that carries media.
pub(super) const ADDRS_PER_PEER: usize = 8;

/// Remote ICE candidates a peer may have (in its offer and trickled): a browser has one or
/// two per network interface; more are refused.
pub const MAX_REMOTE_CANDIDATES: usize = 64;

#[derive(Debug, Default)]
pub(super) struct Routes {
    by_addr: HashMap<SocketAddr, PeerId>,
    by_ufrag: HashMap<String, PeerId>,
    by_candidate: HashMap<SocketAddr, PeerId>,
    peers: HashMap<PeerId, PeerRoutes>,
}

#[derive(Debug, Default)]
struct PeerRoutes {
    ufrag: String,
    addrs: VecDeque<SocketAddr>,
    candidates: Vec<SocketAddr>,
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// A STUN request for this peer's ufrag: learn the source once the peer accepts it.
    Ufrag(PeerId),
    /// From an address this peer authenticated from.
    Addr(PeerId),
    /// A STUN response from one of this peer's remote candidates.
    Candidate(PeerId),
}

impl Route {
    pub(super) fn peer(self) -> PeerId {
        match self {
            Self::Ufrag(p) | Self::Addr(p) | Self::Candidate(p) => p,
        }
    }
}

impl Routes {
    /// A new peer whose local ICE ufrag is `ufrag`.
    pub(super) fn add_peer(&mut self, id: PeerId, ufrag: String) {
        self.by_ufrag.insert(ufrag.clone(), id);
        self.peers.insert(id, PeerRoutes { ufrag, ..Default::default() });
    }

    /// A remote candidate of peer `id` at `addr`; false (nothing noted) when the peer has
    /// [`MAX_REMOTE_CANDIDATES`] already.
    pub(super) fn add_candidate(&mut self, id: PeerId, addr: SocketAddr) -> bool {
        let Some(p) = self.peers.get_mut(&id) else { return false };
        if p.candidates.len() >= MAX_REMOTE_CANDIDATES {
            return false;
        }
        p.candidates.push(addr);
        self.by_candidate.insert(addr, id);
        true
    }

    /// Forgets a peer and every address it had.
    pub(super) fn remove_peer(&mut self, id: PeerId) {
        let Some(p) = self.peers.remove(&id) else { return };
        self.by_ufrag.remove(&p.ufrag);
        for a in p.addrs {
            if self.by_addr.get(&a) == Some(&id) {
                self.by_addr.remove(&a);
            }
        }
        for a in p.candidates {
            if self.by_candidate.get(&a) == Some(&id) {
                self.by_candidate.remove(&a);
            }
        }
    }

    /// The peer a datagram from `source` belongs to, if any.
    pub(super) fn find(&self, source: SocketAddr, data: &[u8]) -> Option<Route> {
        match stun_request_ufrag(data) {
            // A request names its peer: a ufrag nobody has is nobody's, whatever the address.
            Some(ufrag) => self.by_ufrag.get(ufrag).copied().map(Route::Ufrag),
            None => self.by_addr.get(&source).copied().map(Route::Addr).or_else(|| {
                is_stun(data).then(|| self.by_candidate.get(&source).copied().map(Route::Candidate))?
            }),
        }
    }

    /// `id` accepted an authenticated request from `source`: later datagrams from there are
    /// its.
    pub(super) fn learn(&mut self, source: SocketAddr, id: PeerId) {
        if self.by_addr.get(&source) == Some(&id) {
            return;
        }
        let Some(PeerRoutes { addrs, .. }) = self.peers.get_mut(&id) else { return };
        if addrs.len() >= ADDRS_PER_PEER
            && let Some(old) = addrs.pop_front()
            && self.by_addr.get(&old) == Some(&id)
        {
            self.by_addr.remove(&old);
        }
        addrs.push_back(source);
        // The address moves from any peer that had it (a browser reusing a port).
        if let Some(prev) = self.by_addr.insert(source, id)
            && let Some(p) = self.peers.get_mut(&prev)
        {
            p.addrs.retain(|x| *x != source);
        }
    }

    /// Addresses known.
    #[cfg(test)]
    pub(super) fn addr_count(&self) -> usize {
        self.by_addr.len()
    }
}

const STUN_HEADER: usize = 20;
const STUN_MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const STUN_BINDING_REQUEST: u16 = 0x0001;
const STUN_USERNAME: u16 = 0x0006;

/// Whether `data` looks like a STUN message (RFC 7983: first byte 0–3; RFC 5389's magic
/// cookie).
fn is_stun(data: &[u8]) -> bool {
    data.len() >= STUN_HEADER && data[0] < 4 && data[4..8] == STUN_MAGIC
}

/// Our ufrag from a STUN Binding request's USERNAME attribute (`<ours>:<theirs>`, RFC 8445
/// 7.2.2), without allocating; `None` for anything else. The message's integrity is not
/// checked here: the peer's str0m does that.
pub(super) fn stun_request_ufrag(data: &[u8]) -> Option<&str> {
    if !is_stun(data) {
        return None;
    }
    if u16::from_be_bytes([data[0], data[1]]) != STUN_BINDING_REQUEST {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(STUN_HEADER..STUN_HEADER + len)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let n = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + n)?;
        if kind == STUN_USERNAME {
            let name = std::str::from_utf8(value).ok()?;
            let (ours, _) = name.split_once(':')?;
            return Some(ours);
        }
        rest = rest.get(4 + n.div_ceil(4) * 4..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_request(username: &str) -> Vec<u8> {
        let mut attr = vec![0x00, 0x06];
        attr.extend((username.len() as u16).to_be_bytes());
        attr.extend(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        // A PRIORITY attribute first, as browsers send.
        let mut body = vec![0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4];
        body.extend(attr);
        let mut m = vec![0x00, 0x01];
        m.extend((body.len() as u16).to_be_bytes());
        m.extend(STUN_MAGIC);
        m.extend([7; 12]);
        m.extend(body);
        m
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_ufrag_of_a_binding_request_is_found() {
        assert_eq!(stun_request_ufrag(&stun_request("abcd:wxyz")), Some("abcd"));
        assert_eq!(stun_request_ufrag(&stun_request("abc:")), Some("abc"));
        assert_eq!(stun_request_ufrag(&stun_request("nocolon")), None);
        // A response (0x0101), a truncated message, DTLS: none.
        let mut resp = stun_request("abcd:wxyz");
        resp[0] = 0x01;
        assert_eq!(stun_request_ufrag(&resp), None);
        let req = stun_request("abcd:wxyz");
        assert_eq!(stun_request_ufrag(&req[..req.len() - 4]), None);
        assert_eq!(stun_request_ufrag(&[0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), None);
        assert_eq!(stun_request_ufrag(&[]), None);
    }

    #[test]
    fn datagrams_route_by_ufrag_then_by_learnt_address() {
        let mut r = Routes::default();
        r.add_peer(PeerId(1), "one".into());
        r.add_peer(PeerId(2), "two".into());
        let a = addr("10.0.0.1:5000");
        let dtls = [0x16, 0xfe, 0xfd, 0, 0];
        assert_eq!(r.find(a, &dtls), None, "an address nobody authenticated from");
        assert_eq!(r.find(a, &stun_request("two:x")), Some(Route::Ufrag(PeerId(2))));
        assert_eq!(r.find(a, &stun_request("three:x")), None);
        r.learn(a, PeerId(2));
        assert_eq!(r.find(a, &dtls), Some(Route::Addr(PeerId(2))));
        // Peer 1 authenticates from the same address: it moves.
        r.learn(a, PeerId(1));
        assert_eq!(r.find(a, &dtls), Some(Route::Addr(PeerId(1))));
        r.remove_peer(PeerId(2));
        assert_eq!(r.find(a, &dtls), Some(Route::Addr(PeerId(1))), "not peer 2's any more");
        r.remove_peer(PeerId(1));
        assert_eq!(r.find(a, &dtls), None);
        // A STUN response from a remote candidate goes to its peer; DTLS from there does not.
        r.add_peer(PeerId(3), "three".into());
        let c = addr("10.0.0.3:6000");
        assert!(r.add_candidate(PeerId(3), c));
        let mut response = stun_request("x:y");
        response[0] = 0x01;
        assert_eq!(r.find(c, &response), Some(Route::Candidate(PeerId(3))));
        assert_eq!(r.find(c, &dtls), None);
        r.remove_peer(PeerId(3));
        assert_eq!(r.find(c, &response), None);
        assert_eq!(r.find(a, &stun_request("one:x")), None);
        assert_eq!(r.addr_count(), 0);
    }

    #[test]
    fn each_peer_keeps_a_bounded_number_of_addresses() {
        let mut r = Routes::default();
        r.add_peer(PeerId(1), "one".into());
        for port in 0..1000u16 {
            r.learn(SocketAddr::from(([10, 0, 0, 1], port)), PeerId(1));
        }
        assert_eq!(r.addr_count(), ADDRS_PER_PEER);
        let newest = SocketAddr::from(([10, 0, 0, 1], 999));
        assert_eq!(r.find(newest, &[0x80]), Some(Route::Addr(PeerId(1))));
        assert_eq!(r.find(SocketAddr::from(([10, 0, 0, 1], 0)), &[0x80]), None);
        for port in 0..100u16 {
            let added = r.add_candidate(PeerId(1), SocketAddr::from(([10, 0, 0, 2], port)));
            assert_eq!(added, usize::from(port) < MAX_REMOTE_CANDIDATES);
        }
        // Learning for a peer that is gone changes nothing.
        r.learn(addr("10.0.0.2:1"), PeerId(9));
        assert_eq!(r.addr_count(), ADDRS_PER_PEER);
    }
}
