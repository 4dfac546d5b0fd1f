//! Tests of the embedded DNS resolver: `answer` on messages, then a real resolver in a namespace queried with dig.
//!
//! The resolver tests need root (they create network namespaces) and dig
//! (Debian's bind9-dnsutils); they fail loudly without either. Nothing is bound
//! or configured in the namespace the tests run in: every socket lives in a
//! namespace a test made, and every query goes to a loopback address there.

use std::collections::HashSet;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use shoal_dataplane::dns::{
    answer, parse_resolv_conf, task_resolv_conf, DnsError, DnsView, Resolver, Upstreams,
    DEFAULT_TTL,
};
use shoal_dataplane::net::{task_netns_create, task_netns_delete};
use tokio::sync::watch;

// ---------------------------------------------------------------- answer()

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// web (vip), its tasks (shuffled), an alias, and a dnsrr service with 8 tasks.
fn sample_view() -> DnsView {
    let mut view = DnsView {
        ttl: 7,
        ..DnsView::default()
    };
    view.names.insert("web".into(), vec![ip("10.0.1.5")]);
    view.names.insert("app_web".into(), vec![ip("10.0.1.5")]);
    view.names.insert("frontend".into(), vec![ip("10.0.1.5")]);
    view.names
        .insert("tasks.web".into(), vec![ip("10.0.1.6"), ip("10.0.1.7")]);
    view.names.insert(
        "ordered".into(),
        vec![ip("10.0.3.3"), ip("10.0.3.1"), ip("10.0.3.2")],
    );
    let rr: Vec<_> = (1..=8).map(|i| Ipv4Addr::new(10, 0, 2, i)).collect();
    view.names.insert("rr".into(), rr.clone());
    view.names.insert("tasks.rr".into(), rr);
    view.names.insert("idle".into(), vec![]);
    for name in ["tasks.web", "rr", "tasks.rr"] {
        view.shuffle.insert(name.into());
    }
    view
}

fn query(name: &str, record_type: RecordType) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    message.to_vec().unwrap()
}

fn ask(view: &DnsView, name: &str, record_type: RecordType) -> Message {
    let reply = answer(view, &query(name, record_type)).expect("answered locally");
    Message::from_vec(&reply).expect("a well-formed response")
}

fn a_records(message: &Message) -> Vec<Ipv4Addr> {
    message
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0,
            other => panic!("not an A record: {other:?}"),
        })
        .collect()
}

/// A known service name gets its VIP as an A record with the view's TTL, for the
/// name as asked, in a response that echoes the id and question.
#[test]
fn known_name_gets_a_record_with_view_ttl() {
    let view = sample_view();
    let request = query("web", RecordType::A);
    let reply = Message::from_vec(&answer(&view, &request).unwrap()).unwrap();
    assert_eq!(
        reply.metadata.id,
        Message::from_vec(&request).unwrap().metadata.id
    );
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.recursion_desired && reply.metadata.recursion_available);
    assert_eq!(reply.queries.len(), 1);
    assert_eq!(a_records(&reply), vec![ip("10.0.1.5")]);
    assert_eq!(reply.answers[0].ttl, 7);
    assert_eq!(reply.answers[0].name, Name::from_ascii("web.").unwrap());
    for name in ["app_web", "frontend", "web."] {
        assert_eq!(
            a_records(&ask(&view, name, RecordType::A)),
            vec![ip("10.0.1.5")],
            "{name}"
        );
    }
}

/// The default view answers with the short default TTL (5 s), not swarm's 600 s.
#[test]
fn default_ttl_is_short() {
    assert_eq!(DnsView::default().ttl, DEFAULT_TTL);
    assert_eq!(DEFAULT_TTL, 5);
    let mut view = DnsView::default();
    view.names.insert("web".into(), vec![ip("10.0.1.5")]);
    assert_eq!(ask(&view, "web", RecordType::A).answers[0].ttl, 5);
}

/// Names match whatever their case; the answer keeps the case of the question
/// (resolvers using 0x20 randomisation check it).
#[test]
fn names_match_case_insensitively() {
    let view = sample_view();
    let reply = ask(&view, "WeB", RecordType::A);
    assert_eq!(a_records(&reply), vec![ip("10.0.1.5")]);
    assert_eq!(reply.answers[0].name.to_ascii(), "WeB.");
    let mut tasks = a_records(&ask(&view, "TASKS.Web", RecordType::A));
    tasks.sort();
    assert_eq!(tasks, vec![ip("10.0.1.6"), ip("10.0.1.7")]);
}

/// An unknown name without a dot can only be a service not on the task's
/// networks: NXDOMAIN, answered here, never forwarded.
#[test]
fn unknown_single_label_is_nxdomain() {
    let view = sample_view();
    for name in ["nope", "nope.", "NOPE"] {
        let reply = ask(&view, name, RecordType::A);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NXDomain,
            "{name}"
        );
        assert!(reply.answers.is_empty());
    }
    let reply = ask(&view, "nope", RecordType::AAAA);
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
}

/// An unknown name with a dot is for the node's resolvers: None (forward).
#[test]
fn unknown_multi_label_is_forwarded() {
    let view = sample_view();
    for name in ["example.com", "tasks.nope", "web.example.com", "."] {
        assert!(
            answer(&view, &query(name, RecordType::A)).is_none(),
            "{name}"
        );
    }
}

/// Two networks, as a task on both sees them: `web` (VIP) and a task of it on
/// `app`, `web` (another VIP), `tasks.web` and a task of another service on
/// `my.net` (a network name with a dot).
fn network_view() -> DnsView {
    let mut view = DnsView::default();
    let app: [(&str, &[&str]); 5] = [
        ("web", &["10.0.1.2"]),
        ("tasks.web", &["10.0.1.4"]),
        ("web.1.qw3jzl5x0nbq8eh2k4c9m7tpa", &["10.0.1.4"]),
        ("qw3jzl5x0nbq", &["10.0.1.4"]),
        ("webhost", &["10.0.1.4"]),
    ];
    let other: [(&str, &[&str]); 4] = [
        ("web", &["10.0.2.2"]),
        ("tasks.web", &["10.0.2.5"]),
        ("db.3.x8k2m4n6p8q0r2s4t6v8w0y2z", &["10.0.2.9"]),
        (
            "db.rgmxsgqhbjmqdbbjh58n5fbh9.r2d2c3po4bb8k2so5x1y9z0wq",
            &["10.0.2.7"],
        ),
    ];
    for (network, names) in [("app", &app[..]), ("my.net", &other[..])] {
        let on = view.networks.entry(network.into()).or_default();
        for (name, addrs) in names {
            let addrs: Vec<Ipv4Addr> = addrs.iter().map(|a| ip(a)).collect();
            on.insert(name.to_string(), addrs.clone());
            view.names
                .entry(name.to_string())
                .or_default()
                .extend(addrs);
        }
    }
    view.networks.insert("ingress".into(), Default::default());
    view.shuffle.insert("tasks.web".into());
    view
}

fn sorted_a(view: &DnsView, name: &str) -> Vec<Ipv4Addr> {
    let mut addrs = a_records(&ask(view, name, RecordType::A));
    addrs.sort();
    addrs
}

/// Task names (container name, short ID, hostname) answer like service names,
/// on every network of the task; `<name>.<network>` (what a reverse lookup
/// gives) answers the name on that network alone, as docker's resolver does:
/// the whole name first, then shorter names on longer network names; a name
/// in any case, a network name as spelled.
#[test]
fn names_with_a_network_answer_on_that_network() {
    let view = network_view();
    let task = "web.1.qw3jzl5x0nbq8eh2k4c9m7tpa";
    for name in [
        task,
        "Web.1.QW3jzl5x0nbq8eh2k4c9m7tpa",
        &format!("{task}.app"),
        &format!("{task}.app."),
        "qw3jzl5x0nbq",
        "qw3jzl5x0nbq.app",
        "webhost",
        "WEBHOST.app",
    ] {
        assert_eq!(sorted_a(&view, name), [ip("10.0.1.4")], "{name}");
        let reply = ask(&view, name, RecordType::A);
        assert!(reply.metadata.authoritative, "{name}");
        assert_eq!(
            reply.answers[0].name.to_ascii(),
            name.trim_end_matches('.').to_string() + "."
        );
    }
    // Services too: the name alone gives both networks' VIPs, with a network
    // that network's.
    assert_eq!(sorted_a(&view, "web"), [ip("10.0.1.2"), ip("10.0.2.2")]);
    assert_eq!(sorted_a(&view, "web.app"), [ip("10.0.1.2")]);
    assert_eq!(sorted_a(&view, "web.my.net"), [ip("10.0.2.2")]);
    assert_eq!(sorted_a(&view, "tasks.web.my.net"), [ip("10.0.2.5")]);
    assert_eq!(
        sorted_a(&view, "db.3.x8k2m4n6p8q0r2s4t6v8w0y2z.my.net"),
        [ip("10.0.2.9")]
    );
    // A global task: `<service>.<node id>.<task id>`.
    let global = "db.rgmxsgqhbjmqdbbjh58n5fbh9.r2d2c3po4bb8k2so5x1y9z0wq";
    assert_eq!(sorted_a(&view, global), [ip("10.0.2.7")]);
    assert_eq!(
        sorted_a(&view, &format!("{global}.my.net")),
        [ip("10.0.2.7")]
    );
    // Other types of a known name: NOERROR, no records.
    let reply = ask(&view, &format!("{task}.app"), RecordType::AAAA);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
}

/// A task name the view does not hold is NXDOMAIN, answered here: a task on a
/// network the asker is not on (or not named any more), with or without one
/// of the asker's networks after it; a name on the wrong network too. Other
/// unknown names with a dot are still forwarded, names with a network the
/// asker is not on, or spelled in another case, as well.
#[test]
fn unknown_task_names_are_nxdomain_others_forwarded() {
    let view = network_view();
    for name in [
        "far.1.r2d2c3po4bb8k2so5x1y9z0wq",
        "far.12.R2D2C3PO4BB8K2SO5X1Y9Z0WQ.",
        "far.rgmxsgqhbjmqdbbjh58n5fbh9.r2d2c3po4bb8k2so5x1y9z0wq",
        "far.1.r2d2c3po4bb8k2so5x1y9z0wq.app",
        "far.1.r2d2c3po4bb8k2so5x1y9z0wq.ingress",
        "db.3.x8k2m4n6p8q0r2s4t6v8w0y2z.app",
        "web.1.qw3jzl5x0nbq8eh2k4c9m7tpa.my.net",
    ] {
        let reply = ask(&view, name, RecordType::A);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NXDomain,
            "{name}"
        );
        assert!(reply.metadata.authoritative, "{name}");
        assert!(reply.answers.is_empty(), "{name}");
    }
    for name in [
        "far.1.r2d2c3po4bb8k2so5x1y9z0wq.other",
        "web.1.qw3jzl5x0nbq8eh2k4c9m7tpa.APP",
        "web.APP",
        "webhost.my",
        "qw3jzl5x0nbq.example.com",
        "far.1.short.app",
        "far.x.r2d2c3po4bb8k2so5x1y9z0wq",
        "a.far.1.r2d2c3po4bb8k2so5x1y9z0wq",
        "web.example.com",
    ] {
        assert!(
            answer(&view, &query(name, RecordType::A)).is_none(),
            "{name}"
        );
    }
}

/// Other record types of a known name: NOERROR with no answers, so a client
/// asking AAAA and A in parallel still uses the A answer.
#[test]
fn known_name_other_types_are_noerror_without_answers() {
    let view = sample_view();
    for record_type in [
        RecordType::AAAA,
        RecordType::MX,
        RecordType::TXT,
        RecordType::SRV,
    ] {
        let reply = ask(&view, "web", record_type);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NoError,
            "{record_type}"
        );
        assert!(reply.answers.is_empty(), "{record_type}");
    }
    // A service whose tasks are all gone still exists: NOERROR, no addresses.
    let reply = ask(&view, "idle", RecordType::A);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
}

/// Shuffle names come back in varying orders, always the same set; other names
/// keep the view's order.
#[test]
fn shuffle_names_change_order_across_queries() {
    let view = sample_view();
    let mut expected = view.names["rr"].clone();
    expected.sort();
    let mut orders = HashSet::new();
    for _ in 0..50 {
        let got = a_records(&ask(&view, "rr", RecordType::A));
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, expected);
        orders.insert(got);
    }
    // 50 draws from 8! = 40320 orders: fewer than 10 distinct is (practically) impossible.
    assert!(
        orders.len() >= 10,
        "only {} orders in 50 queries",
        orders.len()
    );
    for _ in 0..20 {
        assert_eq!(
            a_records(&ask(&view, "ordered", RecordType::A)),
            view.names["ordered"]
        );
    }
}

/// Queries with EDNS get EDNS back; the response is never truncated by `answer`.
#[test]
fn edns_is_echoed() {
    let view = sample_view();
    let mut message = Message::query();
    message.add_query(Query::query(
        Name::from_ascii("web").unwrap(),
        RecordType::A,
    ));
    message.set_edns(Edns::new());
    let reply = Message::from_vec(&answer(&view, &message.to_vec().unwrap()).unwrap()).unwrap();
    assert!(reply.edns.is_some());
    assert_eq!(a_records(&reply), vec![ip("10.0.1.5")]);
}

/// Garbage never panics; what has a query header but no valid body gets FORMERR,
/// responses and fragments get nothing, other opcodes NOTIMP.
#[test]
fn malformed_input_never_panics() {
    let view = sample_view();
    assert!(answer(&view, &[]).is_none());
    assert!(answer(&view, &[0x12]).is_none());
    assert!(answer(&view, &[0u8; 11]).is_none());

    // A header claiming one question, and no question.
    let mut header_only = query("web", RecordType::A);
    header_only.truncate(12);
    let reply = Message::from_vec(&answer(&view, &header_only).unwrap()).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    // A response is never answered (no reflection loops).
    let mut response = Message::from_vec(&query("web", RecordType::A)).unwrap();
    response.metadata.message_type = MessageType::Response;
    assert!(answer(&view, &response.to_vec().unwrap()).is_none());

    // Two questions.
    let mut two = Message::query();
    two.add_query(Query::query(
        Name::from_ascii("web").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(Name::from_ascii("rr").unwrap(), RecordType::A));
    let reply = Message::from_vec(&answer(&view, &two.to_vec().unwrap()).unwrap()).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    // An UPDATE.
    let mut update = Message::new(7, MessageType::Query, OpCode::Update);
    update.add_query(Query::query(
        Name::from_ascii("web").unwrap(),
        RecordType::SOA,
    ));
    let reply = Message::from_vec(&answer(&view, &update.to_vec().unwrap()).unwrap()).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);

    // Random bytes, and valid queries with random bytes changed, cut or appended.
    let seeds = [
        query("web", RecordType::A),
        query("tasks.rr", RecordType::ANY),
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..20_000 {
        let mut bytes = if round % 4 == 0 {
            (0..next() % 100).map(|_| next() as u8).collect()
        } else {
            seeds[round % 2].clone()
        };
        for _ in 0..1 + next() % 4 {
            let len = bytes.len().max(1) as u64;
            match next() % 3 {
                0 if !bytes.is_empty() => {
                    let i = (next() % len) as usize;
                    bytes[i] = next() as u8;
                }
                1 => bytes.truncate((next() % len) as usize),
                _ => bytes.push(next() as u8),
            }
        }
        let _ = answer(&view, &bytes);
    }
}

/// A view with reverse names: two tasks and a VIP on 10.0.1.0/24.
fn ptr_view() -> DnsView {
    let mut view = sample_view();
    view.ptr
        .insert(ip("10.0.1.6"), "web.1.f2ghk0o3oqlg8ztxfa2yxl5u3.app".into());
    view.ptr
        .insert(ip("10.0.1.7"), "web.2.t1u5bd9s0q5hwvmjntlugs2w7.app".into());
    view.ptr.insert(ip("10.0.1.5"), "web.app".into());
    view.subnets.push((ip("10.0.1.0"), 24));
    view
}

fn ptr_targets(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::PTR(p) => p.0.to_ascii(),
            other => panic!("not a PTR record: {other:?}"),
        })
        .collect()
}

/// `dig -x` of a task's address gets its container name on the network
/// (docker's `<service>.<slot>.<task id>.<network>.`), of a VIP the service's
/// name; another address in the task's subnets is NXDOMAIN; the rest is
/// forwarded.
#[test]
fn reverse_lookups_of_cluster_addresses_are_answered_here() {
    let view = ptr_view();
    let reply = ask(&view, "6.1.0.10.in-addr.arpa", RecordType::PTR);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert_eq!(
        ptr_targets(&reply),
        ["web.1.f2ghk0o3oqlg8ztxfa2yxl5u3.app."]
    );
    assert_eq!(reply.answers[0].ttl, 7);
    assert_eq!(reply.answers[0].name.to_ascii(), "6.1.0.10.in-addr.arpa.");
    // Any case, the question's spelling kept.
    let reply = ask(&view, "7.1.0.10.IN-ADDR.Arpa.", RecordType::PTR);
    assert_eq!(
        ptr_targets(&reply),
        ["web.2.t1u5bd9s0q5hwvmjntlugs2w7.app."]
    );
    assert_eq!(reply.answers[0].name.to_ascii(), "7.1.0.10.IN-ADDR.Arpa.");
    assert_eq!(
        ptr_targets(&ask(&view, "5.1.0.10.in-addr.arpa", RecordType::PTR)),
        ["web.app."]
    );
    // Another type of a known address: NOERROR, nothing.
    let reply = ask(&view, "6.1.0.10.in-addr.arpa", RecordType::A);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
    // Unknown addresses in the subnet, the network's own and its broadcast.
    for name in [
        "99.1.0.10.in-addr.arpa",
        "0.1.0.10.in-addr.arpa",
        "255.1.0.10.in-addr.arpa",
    ] {
        let reply = ask(&view, name, RecordType::PTR);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NXDomain,
            "{name}"
        );
        assert!(reply.answers.is_empty(), "{name}");
    }
    // Outside the subnets, and names that are not addresses: forwarded.
    for name in [
        "6.2.0.10.in-addr.arpa",
        "8.8.8.8.in-addr.arpa",
        "1.0.10.in-addr.arpa",
        "x.1.0.10.in-addr.arpa",
        "256.1.0.10.in-addr.arpa",
        "6.1.0.10.in-addr.arpa.example",
    ] {
        assert!(
            answer(&view, &query(name, RecordType::PTR)).is_none(),
            "{name}"
        );
    }
    // A view without reverse names forwards them all, as before.
    assert!(answer(
        &sample_view(),
        &query("6.1.0.10.in-addr.arpa", RecordType::PTR)
    )
    .is_none());
}

/// A query of `count` questions ("a." A IN each), id 0x4242, RD set, with an
/// EDNS OPT record if `edns`: raw bytes, as a client may send them.
fn many_questions(count: u16, edns: bool) -> Vec<u8> {
    let mut q = vec![0x42, 0x42, 0x01, 0x00];
    q.extend_from_slice(&count.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 0, 0, u8::from(edns)]);
    for _ in 0..count {
        q.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
    }
    if edns {
        q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    }
    q
}

/// The 12-byte FORMERR header-only reply to `many_questions`' id.
fn assert_header_only_formerr(reply: &[u8], what: &str) {
    assert_eq!(reply.len(), 12, "{what}");
    let message = Message::from_vec(reply).unwrap();
    assert_eq!(message.metadata.id, 0x4242, "{what}");
    assert_eq!(message.metadata.message_type, MessageType::Response);
    assert_eq!(
        message.metadata.response_code,
        ResponseCode::FormErr,
        "{what}"
    );
    assert!(message.metadata.recursion_desired, "{what}");
    assert!(!message.metadata.truncation, "{what}");
    assert!(
        message.queries.is_empty() && message.edns.is_none(),
        "{what}"
    );
}

/// A query without exactly one question gets FORMERR as the header alone, as
/// CoreDNS answers it: nothing of the query is echoed, whatever its size.
#[test]
fn not_one_question_is_a_header_only_formerr() {
    let view = sample_view();
    for count in [0u16, 2, 100, 8000] {
        for edns in [false, true] {
            let reply = answer(&view, &many_questions(count, edns))
                .unwrap_or_else(|| panic!("no reply to {count} questions"));
            assert_header_only_formerr(&reply, &format!("{count} questions, edns {edns}"));
        }
    }
    // Another opcode is NOTIMP, also the header alone.
    let mut update = many_questions(100, false);
    update[2] = 0x28; // opcode UPDATE (5), RD clear
    let reply = Message::from_vec(&answer(&view, &update).unwrap()).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
    assert!(reply.queries.is_empty());
}

#[test]
fn task_resolv_conf_points_at_the_resolver() {
    let ndots = ["ndots:0".to_string()];
    assert_eq!(
        task_resolv_conf(&[], &ndots),
        "nameserver 127.0.0.11\noptions ndots:0\n"
    );
    assert_eq!(
        task_resolv_conf(&["corp.example".into(), "example".into()], &ndots),
        "nameserver 127.0.0.11\nsearch corp.example example\noptions ndots:0\n"
    );
    assert_eq!(
        task_resolv_conf(&[], &["timeout:3".into(), "ndots:0".into()]),
        "nameserver 127.0.0.11\noptions timeout:3 ndots:0\n"
    );
    assert_eq!(task_resolv_conf(&[], &[]), "nameserver 127.0.0.11\n");
}

/// The node's nameservers, minus local stubs that a task-facing resolver must not loop to.
#[test]
fn resolv_conf_parsing_skips_loopback() {
    let conf = "# generated\nsearch example\nnameserver 127.0.0.53\nnameserver 10.1.2.3 # primary\n\
                nameserver   2001:db8::1\n; nameserver 10.9.9.9\nnameserver ::1\nnameserver fe80::1%eth0\n\
                nameserver 127.0.0.11\noptions edns0\nnameserver 192.0.2.53\n";
    let expected: Vec<SocketAddr> = ["10.1.2.3:53", "[2001:db8::1]:53", "192.0.2.53:53"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(parse_resolv_conf(conf), expected);
}

// ---------------------------------------------------------------- the resolver in a namespace

static NETNS_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace at /run/netns/<unique name> (so `ip netns exec` finds
/// it), with lo up; deleted on drop, also while panicking.
struct TestNetns {
    name: String,
    path: PathBuf,
}

impl TestNetns {
    fn new(role: &str) -> TestNetns {
        require_root_and_dig();
        let name = format!(
            "shoal-dns-{role}-{}-{}",
            std::process::id(),
            NETNS_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = PathBuf::from("/run/netns").join(&name);
        task_netns_create(&path).unwrap_or_else(|e| panic!("creating netns {name}: {e}"));
        TestNetns { name, path }
    }

    /// Runs `f` on a runtime whose threads are all in this namespace, so every
    /// socket it opens (the fake upstream, the resolver's forwarding sockets) is here.
    fn run<F: std::future::Future<Output = ()>>(&self, f: impl FnOnce() -> F + Send) {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let ns = File::open(&self.path).unwrap();
                    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(f())
                })
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        if let Err(e) = task_netns_delete(&self.path) {
            eprintln!("deleting netns {}: {e}", self.name);
        }
    }
}

fn require_root_and_dig() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the DNS resolver tests create network namespaces and must run as root"
    );
    let dig = std::process::Command::new("dig").arg("-v").output();
    assert!(
        dig.is_ok_and(|o| o.status.success()),
        "dig is missing: install it (apt-get install bind9-dnsutils)"
    );
}

/// Runs dig inside `ns` against the task resolver; returns its output.
async fn dig(ns: &TestNetns, args: &[&str]) -> String {
    let output = tokio::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "dig",
            "@127.0.0.11",
            "+time=3",
            "+tries=1",
        ])
        .args(args)
        .output()
        .await
        .expect("running ip netns exec dig");
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

async fn dig_short(ns: &TestNetns, args: &[&str]) -> Vec<Ipv4Addr> {
    let output = dig(ns, &[args, &["+short"]].concat()).await;
    output
        .lines()
        .map(|l| {
            l.parse()
                .unwrap_or_else(|_| panic!("dig {args:?}: unexpected line {l:?} in:\n{output}"))
        })
        .collect()
}

/// The fake upstream's answer for www.example.com (192.0.2.1) comes back through the
/// resolver over UDP and over TCP.
async fn assert_upstream_answers(task: &TestNetns) {
    assert_eq!(
        dig_short(task, &["www.example.com"]).await,
        vec![ip("192.0.2.1")]
    );
    assert_eq!(
        dig_short(task, &["+tcp", "www.example.com"]).await,
        vec![ip("192.0.2.1")]
    );
}

fn sorted(mut ips: Vec<Ipv4Addr>) -> Vec<Ipv4Addr> {
    ips.sort();
    ips
}

fn status_of(dig_output: &str) -> &str {
    dig_output
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in dig output:\n{dig_output}"))
}

fn web_view() -> DnsView {
    let mut view = DnsView::default();
    view.names.insert("web".into(), vec![ip("10.0.1.5")]);
    view.names
        .insert("tasks.web".into(), vec![ip("10.0.1.6"), ip("10.0.1.7")]);
    view.shuffle.insert("tasks.web".into());
    view
}

/// What a task sees through dig: service VIP, task IPs, NXDOMAIN, TCP, SERVFAIL
/// without upstreams, and a swapped view at the very next query.
#[tokio::test]
async fn resolver_answers_dig_in_task_namespace() {
    let task = TestNetns::new("task");
    let (view_tx, view_rx) = watch::channel(Arc::new(web_view()));
    let resolver = Resolver::start(&task.path, view_rx, vec![])
        .await
        .expect("starting the resolver");

    assert_eq!(dig_short(&task, &["web"]).await, vec![ip("10.0.1.5")]);
    assert_eq!(
        sorted(dig_short(&task, &["tasks.web"]).await),
        vec![ip("10.0.1.6"), ip("10.0.1.7")]
    );
    let full = dig(&task, &["web"]).await;
    assert_eq!(status_of(&full), "NOERROR");
    assert!(
        full.contains("web.\t\t\t5\tIN\tA\t10.0.1.5"),
        "TTL 5 expected:\n{full}"
    );
    assert_eq!(status_of(&dig(&task, &["nope"]).await), "NXDOMAIN");
    assert!(dig_short(&task, &["web", "AAAA"]).await.is_empty());
    assert_eq!(status_of(&dig(&task, &["web", "AAAA"]).await), "NOERROR");
    assert_eq!(
        dig_short(&task, &["+tcp", "web"]).await,
        vec![ip("10.0.1.5")]
    );
    assert_eq!(
        sorted(dig_short(&task, &["+tcp", "tasks.web"]).await),
        vec![ip("10.0.1.6"), ip("10.0.1.7")]
    );
    // No upstream: names outside the cluster fail at once, not after a timeout.
    assert_eq!(status_of(&dig(&task, &["example.com"]).await), "SERVFAIL");

    // A new view is in force for the very next query.
    let mut view = DnsView::default();
    view.names.insert("web".into(), vec![ip("10.0.1.9")]);
    view.names.insert("api".into(), vec![ip("10.0.1.10")]);
    view_tx.send(Arc::new(view)).unwrap();
    assert_eq!(dig_short(&task, &["web"]).await, vec![ip("10.0.1.9")]);
    assert_eq!(
        dig_short(&task, &["+tcp", "api"]).await,
        vec![ip("10.0.1.10")]
    );
    assert_eq!(status_of(&dig(&task, &["tasks.web"]).await), "SERVFAIL");

    drop(resolver);
}

/// `dig -x` in a task: a task's address gives its name, over UDP and TCP; an
/// unknown address of the network NXDOMAIN; one outside it is forwarded
/// (SERVFAIL here, with no upstream).
#[tokio::test]
async fn dig_x_answers_task_addresses() {
    let task = TestNetns::new("task");
    let (_view_tx, view_rx) = watch::channel(Arc::new(ptr_view()));
    let _resolver = Resolver::start(&task.path, view_rx, vec![]).await.unwrap();
    for tcp in [false, true] {
        let mut args = vec!["-x", "10.0.1.6", "+short"];
        if tcp {
            args.push("+tcp");
        }
        let out = dig(&task, &args).await;
        assert_eq!(
            out.trim(),
            "web.1.f2ghk0o3oqlg8ztxfa2yxl5u3.app.",
            "{args:?}"
        );
    }
    assert_eq!(
        dig(&task, &["-x", "10.0.1.5", "+short"]).await.trim(),
        "web.app."
    );
    assert_eq!(
        status_of(&dig(&task, &["-x", "10.0.1.99"]).await),
        "NXDOMAIN"
    );
    assert_eq!(
        status_of(&dig(&task, &["-x", "192.0.2.1"]).await),
        "SERVFAIL"
    );
}

/// An answer too big for the client's UDP size is truncated (TC), and dig's
/// retry over TCP gets all of it.
#[tokio::test]
async fn big_answers_truncate_over_udp_and_complete_over_tcp() {
    let task = TestNetns::new("task");
    let ips: Vec<Ipv4Addr> = (0..200u8).map(|i| Ipv4Addr::new(10, 0, 4, i)).collect();
    let mut view = DnsView::default();
    view.names.insert("tasks.big".into(), ips.clone());
    view.shuffle.insert("tasks.big".into());
    let (_view_tx, view_rx) = watch::channel(Arc::new(view));
    let _resolver = Resolver::start(&task.path, view_rx, vec![]).await.unwrap();

    let udp_only = dig(&task, &["+ignore", "+noedns", "tasks.big"]).await;
    let flags = udp_only
        .lines()
        .find(|l| l.contains("flags:"))
        .unwrap_or_else(|| panic!("no flags in:\n{udp_only}"));
    assert!(
        flags.contains(" tc"),
        "expected a truncated reply:\n{udp_only}"
    );
    assert_eq!(sorted(dig_short(&task, &["tasks.big"]).await), ips);
}

/// Over the wire: 100 questions over UDP and 8000 over TCP (a 56 KB query)
/// each get the 12-byte FORMERR header.
#[test]
fn many_questions_get_a_header_only_formerr_over_udp_and_tcp() {
    let task = TestNetns::new("task");
    task.run(|| async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (_view_tx, view_rx) = watch::channel(Arc::new(web_view()));
        let _resolver = Resolver::start(&task.path, view_rx, vec![]).await.unwrap();
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.connect("127.0.0.11:53").await.unwrap();
        udp.send(&many_questions(100, false)).await.unwrap();
        let mut buf = vec![0; 65535];
        let len = tokio::time::timeout(Duration::from_secs(3), udp.recv(&mut buf))
            .await
            .expect("a UDP reply within 3 s")
            .unwrap();
        assert_header_only_formerr(&buf[..len], "100 questions over UDP");

        let mut tcp = tokio::net::TcpStream::connect("127.0.0.11:53")
            .await
            .unwrap();
        let query = many_questions(8000, false);
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&query);
        tcp.write_all(&framed).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(3), async {
            let len = tcp.read_u16().await?;
            let mut reply = vec![0; usize::from(len)];
            tcp.read_exact(&mut reply).await?;
            std::io::Result::Ok(reply)
        })
        .await
        .expect("a TCP reply within 3 s")
        .expect("a framed reply");
        assert_header_only_formerr(&reply, "8000 questions over TCP");
    });
}

/// Dropping the resolver closes its sockets (queries then fail); shutdown
/// frees the address at once; a second resolver on a busy address is an error.
#[tokio::test]
async fn drop_stops_the_resolver() {
    let task = TestNetns::new("task");
    let (_view_tx, view_rx) = watch::channel(Arc::new(web_view()));
    let first = Resolver::start(&task.path, view_rx.clone(), vec![])
        .await
        .unwrap();
    match Resolver::start(&task.path, view_rx.clone(), vec![]).await {
        Err(DnsError::Bind(..)) => {}
        Err(e) => panic!("expected a bind error, got {e}"),
        Ok(_) => panic!("two resolvers bound the same address"),
    }
    first.shutdown().await;
    let second = Resolver::start(&task.path, view_rx, vec![])
        .await
        .expect("rebinding after shutdown");
    assert_eq!(dig_short(&task, &["web"]).await, vec![ip("10.0.1.5")]);

    drop(second);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let output = dig(&task, &["web"]).await;
        if !output.contains("10.0.1.5") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still answering after drop:\n{output}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fake upstream on 127.0.0.1 in the namespace it is started in, UDP and TCP
/// on one port, answering any A question with 192.0.2.1 (TTL 60). Lives as long
/// as the runtime.
async fn fake_upstream() -> SocketAddr {
    fake_upstream_at("127.0.0.1:0".parse().unwrap()).await
}

/// [`fake_upstream`] bound to `addr`.
async fn fake_upstream_at(addr: SocketAddr) -> SocketAddr {
    let udp = tokio::net::UdpSocket::bind(addr).await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
    fn respond(query: &[u8]) -> Vec<u8> {
        let request = Message::from_vec(query).unwrap();
        let mut response = Message::response(request.metadata.id, OpCode::Query);
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.add_queries(request.queries.iter().cloned());
        let name = request.queries[0].name().clone();
        response.add_answer(Record::from_rdata(
            name,
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
        response.to_vec().unwrap()
    }
    tokio::spawn(async move {
        let mut buf = vec![0; 65535];
        while let Ok((len, from)) = udp.recv_from(&mut buf).await {
            let _ = udp.send_to(&respond(&buf[..len]), from).await;
        }
    });
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = tcp.accept().await {
            tokio::spawn(async move {
                while let Ok(len) = stream.read_u16().await {
                    let mut query = vec![0; usize::from(len)];
                    if stream.read_exact(&mut query).await.is_err() {
                        return;
                    }
                    let reply = respond(&query);
                    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    if stream.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Names outside the cluster are forwarded from the node's namespace (not the
/// task's) over UDP and TCP; a silent upstream is given up after 2 s for the
/// next one; a refusing one gives SERVFAIL at once.
#[test]
fn unknown_names_are_forwarded_from_the_node_namespace() {
    let node = TestNetns::new("node");
    let task = TestNetns::new("task");
    node.run(|| async {
        let upstream = fake_upstream().await;
        // Bound, never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent_addr = silent.local_addr().unwrap();
        // Nothing listens on it: the kernel refuses at once.
        let refusing = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };

        let (_view_tx, view_rx) = watch::channel(Arc::new(web_view()));
        let resolver = Resolver::start(&task.path, view_rx.clone(), vec![upstream])
            .await
            .unwrap();
        assert_upstream_answers(&task).await;
        let full = dig(&task, &["www.example.com"]).await;
        assert!(
            full.contains("\t60\tIN\tA\t192.0.2.1"),
            "upstream's TTL passes through:\n{full}"
        );
        // Cluster names still come from the view.
        assert_eq!(dig_short(&task, &["web"]).await, vec![ip("10.0.1.5")]);
        resolver.shutdown().await;

        let resolver = Resolver::start(&task.path, view_rx.clone(), vec![silent_addr, upstream])
            .await
            .unwrap();
        let started = Instant::now();
        let output = dig(&task, &["+time=5", "www.example.com", "+short"]).await;
        let took = started.elapsed();
        assert_eq!(
            output.trim(),
            "192.0.2.1",
            "after the silent upstream:\n{output}"
        );
        assert!(
            took >= Duration::from_millis(1900),
            "answered in {took:?}: not after a timeout?"
        );
        resolver.shutdown().await;

        let _resolver = Resolver::start(&task.path, view_rx, vec![refusing])
            .await
            .unwrap();
        let started = Instant::now();
        assert_eq!(
            status_of(&dig(&task, &["www.example.com"]).await),
            "SERVFAIL"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "SERVFAIL should not wait for a timeout"
        );
        drop(silent);
    });
}

/// The node's resolv.conf is followed: a rewritten file (new nameserver) is
/// in force for the next forwarded query, without restarting anything.
#[test]
fn forwarding_follows_resolv_conf_changes() {
    let node = TestNetns::new("node");
    let task = TestNetns::new("task");
    // resolv.conf skips loopback nameservers: the fake upstream gets a
    // non-loopback address (TEST-NET-1) on the node namespace's lo, port 53.
    let added = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &node.name,
            "ip",
            "addr",
            "add",
            "192.0.2.53/32",
            "dev",
            "lo",
        ])
        .status()
        .expect("running ip");
    assert!(added.success(), "adding 192.0.2.53 to lo");
    let dir = std::env::temp_dir().join(format!("shoal-dns-resolv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("resolv.conf");
    // Replaced the way resolvconf and NetworkManager do: a new file renamed over it.
    let write = |text: &str| {
        let tmp = dir.join("resolv.conf.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &conf).unwrap();
    };
    // Nothing listens there: refused at once, SERVFAIL.
    write("nameserver 192.0.2.54\n");
    node.run(|| async {
        fake_upstream_at("192.0.2.53:53".parse().unwrap()).await;
        let (_view_tx, view_rx) = watch::channel(Arc::new(web_view()));
        let _resolver = Resolver::start(&task.path, view_rx, Upstreams::resolv_conf(&conf))
            .await
            .unwrap();
        assert_eq!(
            status_of(&dig(&task, &["www.example.com"]).await),
            "SERVFAIL"
        );
        write("# moved\nnameserver 192.0.2.53\n");
        assert_upstream_answers(&task).await;
        // Rewritten in place (same inode), too.
        std::fs::write(&conf, "nameserver 192.0.2.54\n").unwrap();
        assert_eq!(
            status_of(&dig(&task, &["www.example.com"]).await),
            "SERVFAIL"
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}
