//! Decides what to do with one query message: answer it from the view, forward it, or drop it.

use std::net::Ipv4Addr;

use hickory_proto::op::{
    Edns, Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use rand::seq::SliceRandom;

use super::DnsView;

/// The UDP payload size we advertise in EDNS replies (the DNS flag day value:
/// no IP fragmentation on any usual path).
const EDNS_PAYLOAD: u16 = 1232;

/// A UDP reply without EDNS may be no larger than this (RFC 1035).
const CLASSIC_UDP_LIMIT: usize = 512;

/// What to do with one message from a client.
pub(super) enum Reply {
    /// Answered here. `udp_limit` is the most the client takes over UDP.
    Local { response: Message, udp_limit: usize },
    /// Not a name of the cluster: ask the upstream resolvers; if that fails, the
    /// client gets SERVFAIL for this request (see [`servfail`]).
    Forward(Message),
    /// Not a DNS query (garbage, or a response): no reply at all.
    Drop,
}

pub(super) fn reply(view: &DnsView, query: &[u8]) -> Reply {
    let Ok(request) = Message::from_vec(query) else {
        return formerr_for_header(query);
    };
    if request.metadata.message_type != MessageType::Query {
        return Reply::Drop;
    }
    let udp_limit = usize::from(request.max_payload());
    if request.metadata.op_code != OpCode::Query {
        return Reply::Local {
            response: header_only(&request.metadata, ResponseCode::NotImp),
            udp_limit,
        };
    }
    let [question] = request.queries.as_slice() else {
        // As CoreDNS (miekg/dns) does: the header alone, no question, no EDNS,
        // so the reply never grows with what the query carried.
        return Reply::Local {
            response: header_only(&request.metadata, ResponseCode::FormErr),
            udp_limit,
        };
    };
    let name = question.name();
    if let Some(reply) = reverse(view, &request, question, udp_limit) {
        return reply;
    }
    let labels = name_labels(name);
    let found = labels.as_deref().and_then(|labels| find(view, labels));
    if let Some((key, addrs)) = found {
        let mut response = response_to(&request, ResponseCode::NoError);
        response.metadata.authoritative = true;
        let wants_a = matches!(question.query_type(), RecordType::A | RecordType::ANY)
            && matches!(question.query_class(), DNSClass::IN | DNSClass::ANY);
        if wants_a {
            let mut addrs = addrs.clone();
            if view.shuffle.contains(&key) {
                addrs.shuffle(&mut rand::thread_rng());
            }
            for ip in addrs {
                // The question's own spelling: resolvers that randomise case
                // (0x20) check that it comes back unchanged.
                response.add_answer(Record::from_rdata(name.clone(), view.ttl, RData::A(A(ip))));
            }
        }
        return Reply::Local {
            response,
            udp_limit,
        };
    }
    let task_name = labels
        .as_deref()
        .is_some_and(|labels| is_task_name(view, labels));
    if name.iter().count() == 1 || task_name {
        // No dot: a service name, and no such service is on the task's networks;
        // or a task's container name, and no such task is on them: the node's
        // resolvers cannot know it either.
        let mut response = response_to(&request, ResponseCode::NXDomain);
        response.metadata.authoritative = true;
        return Reply::Local {
            response,
            udp_limit,
        };
    }
    Reply::Forward(request)
}

/// The local reply to a reverse (`in-addr.arpa`) question for an address of
/// the view: its PTR record (NOERROR without records for other types), or
/// NXDOMAIN for an address without a name in one of the view's subnets. None
/// for any other name, or an address outside the subnets (forwarded).
fn reverse(view: &DnsView, request: &Message, question: &Query, udp_limit: usize) -> Option<Reply> {
    let addr = reverse_addr(question.name())?;
    let target = view.ptr.get(&addr);
    let in_subnet = view
        .subnets
        .iter()
        .any(|&(net, len)| len <= 32 && mask(addr, len) == mask(net, len));
    let code = match target {
        Some(_) => ResponseCode::NoError,
        None if in_subnet => ResponseCode::NXDomain,
        None => return None,
    };
    let mut response = response_to(request, code);
    response.metadata.authoritative = true;
    let wants_ptr = matches!(question.query_type(), RecordType::PTR | RecordType::ANY)
        && matches!(question.query_class(), DNSClass::IN | DNSClass::ANY);
    if let (Some(target), true) = (target, wants_ptr) {
        if let Ok(mut ptr) = Name::from_ascii(target) {
            ptr.set_fqdn(true);
            response.add_answer(Record::from_rdata(
                question.name().clone(),
                view.ttl,
                RData::PTR(PTR(ptr)),
            ));
        }
    }
    Some(Reply::Local {
        response,
        udp_limit,
    })
}

/// The address of a reverse name `d.c.b.a.in-addr.arpa` (any case), if it is one.
fn reverse_addr(name: &Name) -> Option<Ipv4Addr> {
    let labels: Vec<&[u8]> = name.iter().collect();
    let [d, c, b, a, in_addr, arpa] = labels.as_slice() else {
        return None;
    };
    if !in_addr.eq_ignore_ascii_case(b"in-addr") || !arpa.eq_ignore_ascii_case(b"arpa") {
        return None;
    }
    let octet = |label: &[u8]| -> Option<u8> {
        if label.is_empty() || label.len() > 3 || !label.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(label).ok()?.parse().ok()
    };
    Some(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?))
}

fn mask(addr: Ipv4Addr, len: u8) -> u32 {
    let bits = u32::from(addr);
    match len {
        0 => 0,
        len => bits & (u32::MAX << (32 - u32::from(len.min(32)))),
    }
}

/// The reply for a forwarded request that no upstream answered.
pub(super) fn servfail(request: &Message) -> Message {
    response_to(request, ResponseCode::ServFail)
}

/// Encodes a response; one larger than `limit` (or too large to encode at all)
/// loses its records and gets the TC flag, so the client asks again over TCP.
/// If even that does not fit, the header alone goes, with TC: never more than
/// `limit` (at least 512) bytes.
pub(super) fn encode(response: &Message, limit: usize) -> Option<Vec<u8>> {
    let fits = |bytes: &Vec<u8>| bytes.len() <= limit;
    if let Some(bytes) = response.to_vec().ok().filter(fits) {
        return Some(bytes);
    }
    if let Some(bytes) = response.truncate().to_vec().ok().filter(fits) {
        return Some(bytes);
    }
    let mut header = Message::response(response.metadata.id, response.metadata.op_code);
    header.metadata = response.metadata;
    header.metadata.truncation = true;
    header.to_vec().ok()
}

/// Whether a message read back from an upstream is the response to `request_id`.
pub(super) fn is_response_to(message: &[u8], request_id: u16) -> bool {
    Header::read(&mut BinDecoder::new(message)).is_ok_and(|h| {
        h.metadata.message_type == MessageType::Response && h.metadata.id == request_id
    })
}

/// The id of a message, if it has a whole header.
pub(super) fn message_id(message: &[u8]) -> Option<u16> {
    Header::read(&mut BinDecoder::new(message))
        .ok()
        .map(|h| h.metadata.id)
}

/// The labels of a name as asked. None for names no view can hold (a label
/// with a dot or a byte that is not printable ASCII), which then are simply
/// unknown.
fn name_labels(name: &Name) -> Option<Vec<&str>> {
    name.iter()
        .map(|label| {
            if label.iter().any(|&b| b == b'.' || !b.is_ascii_graphic()) {
                return None;
            }
            std::str::from_utf8(label).ok()
        })
        .collect()
}

/// The addresses a name answers, and the view's key they were found under
/// (which says whether they are shuffled), as docker's resolver looks names
/// up: the whole name on all the task's networks; else, for `a.b.c`, `a.b` on
/// the network named `c`, then `a` on the network named `b.c`. Names match
/// in any case, network names as they are spelled (docker compares them
/// exactly).
fn find<'v>(view: &'v DnsView, labels: &[&str]) -> Option<(String, &'v Vec<Ipv4Addr>)> {
    let key = |labels: &[&str]| labels.join(".").to_ascii_lowercase();
    let whole = key(labels);
    if let Some(addrs) = view.names.get(&whole) {
        return Some((whole, addrs));
    }
    (1..labels.len()).rev().find_map(|split| {
        let names = view.networks.get(&labels[split..].join("."))?;
        let name = key(&labels[..split]);
        let addrs = names.get(&name)?;
        Some((name, addrs))
    })
}

/// Whether a name can only be a task's container name,
/// `<service>.<slot or node id>.<task id>` (IDs are 25 base36 characters, a
/// service name is one label), alone or followed by the name of one of the
/// task's networks. No other resolver can know such a name, so one the view
/// does not hold is NXDOMAIN here, never forwarded.
fn is_task_name(view: &DnsView, labels: &[&str]) -> bool {
    let is_id = |l: &str| l.len() == 25 && l.bytes().all(|b| b.is_ascii_alphanumeric());
    let is_slot = |l: &str| (1..=20).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_digit());
    let [_, slot, id, network @ ..] = labels else {
        return false;
    };
    (is_slot(slot) || is_id(slot))
        && is_id(id)
        && (network.is_empty() || view.networks.contains_key(&network.join(".")))
}

/// A response echoing the request's id, flags that are copied (RD, CD) and
/// question, with EDNS if the request had it.
fn response_to(request: &Message, code: ResponseCode) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata = Metadata::response_from_request(&request.metadata);
    // Recursion is available: unknown names are forwarded.
    response.metadata.recursion_available = true;
    response.metadata.response_code = code;
    response.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.set_edns(edns);
    }
    response
}

/// A response that is a header only (no question, no records, no EDNS): the
/// request's id, opcode and RD, with `code`.
fn header_only(request: &Metadata, code: ResponseCode) -> Message {
    let mut response = Message::response(request.id, request.op_code);
    response.metadata = Metadata::response_from_request(request);
    response.metadata.recursion_available = true;
    response.metadata.response_code = code;
    response
}

/// FORMERR for a message whose header parses as a query but whose body does
/// not; anything else is dropped.
fn formerr_for_header(message: &[u8]) -> Reply {
    let Ok(header) = Header::read(&mut BinDecoder::new(message)) else {
        return Reply::Drop;
    };
    if header.metadata.message_type != MessageType::Query {
        return Reply::Drop;
    }
    let mut response = Message::error_msg(
        header.metadata.id,
        header.metadata.op_code,
        ResponseCode::FormErr,
    );
    response.metadata.recursion_desired = header.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    Reply::Local {
        response,
        udp_limit: CLASSIC_UDP_LIMIT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many records and questions a response carries, what goes over
    /// UDP fits the limit: records go first (TC), then everything but the header.
    #[test]
    fn truncated_replies_never_exceed_the_limit() {
        let mut response = Message::response(7, OpCode::Query);
        response.metadata.response_code = ResponseCode::FormErr;
        for i in 0..100 {
            let name = Name::from_ascii(format!("name-{i}.example")).unwrap();
            response.add_query(Query::query(name, RecordType::A));
        }
        let name = Name::from_ascii("web").unwrap();
        for i in 0..200u8 {
            let a = RData::A(A(std::net::Ipv4Addr::new(10, 0, 0, i)));
            response.add_answer(Record::from_rdata(name.clone(), 5, a));
        }
        for limit in [CLASSIC_UDP_LIMIT, usize::from(EDNS_PAYLOAD)] {
            let bytes = encode(&response, limit).expect("a reply");
            assert!(bytes.len() <= limit, "{} bytes over {limit}", bytes.len());
            let back = Message::from_vec(&bytes).unwrap();
            assert!(back.metadata.truncation);
            assert_eq!(back.metadata.id, 7);
            assert_eq!(back.metadata.response_code, ResponseCode::FormErr);
        }
        // What fits is sent whole.
        let mut small = Message::response(8, OpCode::Query);
        small.add_query(Query::query(name, RecordType::A));
        let bytes = encode(&small, CLASSIC_UDP_LIMIT).unwrap();
        assert!(!Message::from_vec(&bytes).unwrap().metadata.truncation);
    }
}
