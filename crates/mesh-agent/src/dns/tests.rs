use std::cell::RefCell;
use std::time::Duration;

use super::*;

const TYPE_AAAA: u16 = 28;
const TYPE_MX: u16 = 15;
const CLASS_CH: u16 = 3;
const WAIT: Duration = Duration::from_secs(5);

fn web_addrs() -> Vec<Ipv4Addr> {
    vec![Ipv4Addr::new(10, 1, 0, 2), Ipv4Addr::new(10, 1, 0, 3)]
}

/// The services of one environment: `app-web` with two healthy instances, `app-worker`
/// with none.
fn env_lookup(name: &str) -> Option<Vec<Ipv4Addr>> {
    match name {
        "app-web" => Some(web_addrs()),
        "app-worker" => Some(Vec::new()),
        _ => None,
    }
}

/// The question section for `name` (dots separate labels; a trailing dot adds nothing).
fn question(name: &str, qtype: u16, qclass: u16) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&qclass.to_be_bytes());
    out
}

fn header(id: u16, flags: u8, qdcount: u16) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&[flags, 0]);
    out.extend_from_slice(&qdcount.to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    out
}

/// A standard query with RD set, as stub resolvers send it.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = header(id, FLAG_RD, 1);
    out.extend(question(name, qtype, CLASS_IN));
    out
}

#[derive(Debug)]
struct Parsed {
    id: u16,
    flags: u8,
    rcode: u8,
    question: Vec<u8>,
    answers: Vec<Ipv4Addr>,
}

/// Reads back a response as `answer` builds it, checking each record along the way.
fn parse(msg: &[u8]) -> Parsed {
    assert!(msg.len() >= HEADER_LEN, "short response: {msg:?}");
    let count = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]);
    let (qdcount, ancount) = (count(4), count(6));
    assert_eq!(
        (count(8), count(10)),
        (0, 0),
        "no authority or additional records"
    );
    let mut pos = HEADER_LEN;
    if qdcount == 1 {
        while msg[pos] != 0 {
            pos += 1 + usize::from(msg[pos]);
        }
        pos += 5;
    }
    let question = msg[HEADER_LEN..pos].to_vec();
    let mut answers = Vec::new();
    for _ in 0..ancount {
        let record = &msg[pos..pos + A_RECORD_LEN];
        assert_eq!(&record[..2], &[0xC0, 12], "name points at the question");
        assert_eq!(&record[2..6], &[0, 1, 0, 1], "type A, class IN");
        assert_eq!(&record[6..10], &5u32.to_be_bytes(), "ttl 5 s");
        assert_eq!(&record[10..12], &[0, 4], "rdlength");
        answers.push(Ipv4Addr::new(
            record[12], record[13], record[14], record[15],
        ));
        pos += A_RECORD_LEN;
    }
    assert_eq!(pos, msg.len(), "nothing after the answers");
    Parsed {
        id: count(0),
        flags: msg[2],
        rcode: msg[3] & 0x0F,
        question,
        answers,
    }
}

fn ask(query: &[u8]) -> Parsed {
    parse(&answer(query, &env_lookup).expect("a response"))
}

#[test]
fn known_name_gets_one_a_record_per_address() {
    let q = query(0xBEEF, "app-web", TYPE_A);
    let r = ask(&q);
    assert_eq!(r.id, 0xBEEF);
    assert_eq!(
        r.flags,
        FLAG_QR | FLAG_AA | FLAG_RD,
        "qr, aa, rd copied, no tc"
    );
    assert_eq!(r.rcode, Rcode::NoError as u8);
    assert_eq!(r.question, q[HEADER_LEN..], "question echoed");
    assert_eq!(r.answers, web_addrs());
}

#[test]
fn ra_is_clear_and_rd_is_copied_when_unset() {
    let mut q = query(7, "app-web", TYPE_A);
    q[2] = 0;
    let reply = answer(&q, &env_lookup).expect("a response");
    assert_eq!(reply[2], FLAG_QR | FLAG_AA);
    assert_eq!(reply[3] & 0xF0, 0, "ra and z clear");
}

#[test]
fn names_are_looked_up_lowercase_without_trailing_dot() {
    let asked = RefCell::new(Vec::new());
    let lookup = |name: &str| {
        asked.borrow_mut().push(name.to_string());
        env_lookup(name)
    };
    for name in ["APP-Web", "app-web.", "App-WEB."] {
        let r = parse(&answer(&query(1, name, TYPE_A), &lookup).expect("a response"));
        assert_eq!(r.answers, web_addrs(), "{name}");
    }
    assert_eq!(*asked.borrow(), ["app-web"; 3]);
}

#[test]
fn known_name_without_healthy_instances_has_no_answers() {
    let r = ask(&query(2, "app-worker", TYPE_A));
    assert_eq!(r.rcode, Rcode::NoError as u8);
    assert!(r.answers.is_empty());
}

#[test]
fn unknown_and_other_environments_names_are_nxdomain() {
    for name in [
        "app-api",
        "shop-web",
        "app-web.example.com",
        "www.google.com",
        "",
    ] {
        let r = ask(&query(3, name, TYPE_A));
        assert_eq!(r.rcode, Rcode::NxDomain as u8, "{name:?}");
        assert!(r.answers.is_empty());
        assert_eq!(r.flags & FLAG_AA, FLAG_AA);
    }
}

#[test]
fn other_types_exist_for_known_names_only() {
    for qtype in [TYPE_AAAA, TYPE_MX, 255] {
        let r = ask(&query(4, "app-web", qtype));
        assert_eq!(
            (r.rcode, r.answers.len()),
            (Rcode::NoError as u8, 0),
            "{qtype}"
        );
        let r = ask(&query(4, "app-api", qtype));
        assert_eq!(r.rcode, Rcode::NxDomain as u8, "{qtype}");
    }
}

#[test]
fn class_other_than_in_is_refused() {
    let mut q = header(5, 0, 1);
    q.extend(question("app-web", TYPE_A, CLASS_CH));
    let r = ask(&q);
    assert_eq!((r.rcode, r.answers.len()), (Rcode::Refused as u8, 0));
}

#[test]
fn labels_no_service_can_have_are_nxdomain_without_lookup() {
    let lookup = |name: &str| -> Option<Vec<Ipv4Addr>> { panic!("looked up {name:?}") };
    for label in [&b"app.web"[..], b"app web", b"app-w\xc3\xa9b", b"app\0web"] {
        let mut q = header(6, 0, 1);
        q.push(label.len() as u8);
        q.extend_from_slice(label);
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let r = parse(&answer(&q, &lookup).expect("a response"));
        assert_eq!(r.rcode, Rcode::NxDomain as u8, "{label:?}");
    }
}

#[test]
fn trailing_edns_record_is_ignored() {
    let mut q = query(8, "app-web", TYPE_A);
    q[11] = 1; // ARCOUNT: the OPT record below
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(ask(&q).answers, web_addrs());
}

#[test]
fn question_count_other_than_one_is_formerr() {
    let mut two = header(9, FLAG_RD, 2);
    two.extend(question("app-web", TYPE_A, CLASS_IN));
    two.extend(question("app-worker", TYPE_A, CLASS_IN));
    for q in [two, header(9, FLAG_RD, 0)] {
        let r = ask(&q);
        assert_eq!(
            (r.id, r.rcode, r.answers.len()),
            (9, Rcode::FormErr as u8, 0)
        );
        assert_eq!(r.flags, FLAG_QR | FLAG_AA | FLAG_RD);
    }
}

#[test]
fn non_standard_opcode_is_notimp() {
    let mut q = query(10, "app-web", TYPE_A);
    q[2] |= 1 << 3; // opcode 1, inverse query
    let r = ask(&q);
    assert_eq!(
        (r.id, r.rcode, r.answers.len()),
        (10, Rcode::NotImp as u8, 0)
    );
    assert_eq!(r.flags & MASK_OPCODE, 1 << 3, "opcode copied");
}

#[test]
fn malformed_questions_are_formerr() {
    // A name of labels with these lengths; the wire length is their sum + one per label + 1.
    let name = |lens: &[usize]| -> String {
        let labels: Vec<String> = lens.iter().map(|len| "a".repeat(*len)).collect();
        labels.join(".")
    };
    let q = query(11, "app-web", TYPE_A);
    let mut pointer = header(11, 0, 1);
    pointer.extend_from_slice(&[3, b'a', b'p', b'p', 0xC0, 12, 0, 1, 0, 1]);
    let cases = [
        pointer,
        query(11, &name(&[64]), TYPE_A),
        query(11, &name(&[63, 63, 63, 63]), TYPE_A),
        q[..q.len() - 1].to_vec(),
        q[..HEADER_LEN + 3].to_vec(),
        q[..HEADER_LEN].to_vec(),
    ];
    for case in cases {
        assert_eq!(ask(&case).rcode, Rcode::FormErr as u8, "{case:?}");
    }
    assert_eq!(
        ask(&query(11, &name(&[63, 63, 63, 61]), TYPE_A)).rcode,
        Rcode::NxDomain as u8,
        "255 bytes is allowed"
    );
}

#[test]
fn short_inputs_and_responses_are_ignored() {
    let q = query(12, "app-web", TYPE_A);
    for len in 0..HEADER_LEN {
        assert_eq!(answer(&q[..len], &env_lookup), None, "{len} bytes");
    }
    let reply = answer(&q, &env_lookup).expect("a response");
    assert_eq!(
        answer(&reply, &env_lookup),
        None,
        "responses get no response"
    );
}

#[test]
fn answers_past_the_limit_are_dropped_with_tc() {
    let many: Vec<Ipv4Addr> = (0..100).map(|i| Ipv4Addr::new(10, 2, 0, i)).collect();
    let lookup = |_: &str| Some(many.clone());
    let q = query(13, "app-web", TYPE_A);
    let reply = answer_within(&q, &lookup, MAX_UDP_MESSAGE).expect("a response");
    assert!(reply.len() <= MAX_UDP_MESSAGE);
    let r = parse(&reply);
    let fits = (MAX_UDP_MESSAGE - q.len()) / A_RECORD_LEN;
    assert_eq!(r.answers, many[..fits]);
    assert_eq!(r.flags & FLAG_TC, FLAG_TC);
    let whole = parse(&answer(&q, &lookup).expect("a response"));
    assert_eq!((whole.answers.len(), whole.flags & FLAG_TC), (100, 0));
}

/// xorshift64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn check_any(input: &[u8]) {
    let Some(reply) = answer(input, &env_lookup) else {
        return;
    };
    assert!(reply.len() >= HEADER_LEN);
    assert_eq!(reply[..2], input[..2], "id copied");
    assert_eq!(reply[2] & FLAG_QR, FLAG_QR);
}

#[test]
fn no_input_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let valid = query(14, "app-web", TYPE_A);
    for len in 0..=valid.len() {
        check_any(&valid[..len]);
    }
    for _ in 0..20_000 {
        let mut input = if rng.below(2) == 0 {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            valid.clone()
        };
        // Keep most inputs looking like queries so that they reach the question parser.
        for _ in 0..rng.below(4) {
            if !input.is_empty() {
                let at = rng.below(input.len());
                input[at] = rng.next() as u8;
            }
        }
        if input.len() > 5 && rng.below(4) != 0 {
            input[2] &= !FLAG_QR & !MASK_OPCODE;
            input[4..6].copy_from_slice(&[0, 1]);
        }
        input.truncate(rng.below(input.len() + 1));
        check_any(&input);
    }
}

async fn exchange(client: &UdpSocket, msg: &[u8]) -> Vec<u8> {
    client.send(msg).await.expect("send");
    let mut buf = [0u8; 2048];
    let len = tokio::time::timeout(WAIT, client.recv(&mut buf))
        .await
        .expect("a reply in time")
        .expect("recv");
    buf[..len].to_vec()
}

#[tokio::test]
async fn serve_answers_over_udp_and_stops_on_shutdown() {
    let many: Vec<Ipv4Addr> = (0..100).map(|i| Ipv4Addr::new(10, 3, 0, i)).collect();
    let lookup: Arc<Lookup> = Arc::new(move |name: &str| match name {
        "app-many" => Some(many.clone()),
        other => env_lookup(other),
    });
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("local addr");
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(serve(socket, lookup, stopped));
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    client.connect(addr).await.expect("connect");

    // Garbage, responses and oversized datagrams get no reply and don't stop the server.
    client.send(b"junk").await.expect("send");
    client
        .send(&[0u8; MAX_UDP_MESSAGE + 1])
        .await
        .expect("send");
    let mut response = query(20, "app-web", TYPE_A);
    response[2] |= FLAG_QR;
    client.send(&response).await.expect("send");
    let r = parse(&exchange(&client, &query(21, "App-Web", TYPE_A)).await);
    assert_eq!(
        (r.id, r.answers),
        (21, web_addrs()),
        "first reply is to the real query"
    );
    assert_eq!(
        parse(&exchange(&client, &query(22, "shop-web", TYPE_A)).await).rcode,
        Rcode::NxDomain as u8
    );

    let reply = exchange(&client, &query(23, "app-many", TYPE_A)).await;
    assert!(reply.len() <= MAX_UDP_MESSAGE);
    let r = parse(&reply);
    assert_eq!(r.flags & FLAG_TC, FLAG_TC);
    assert!(!r.answers.is_empty() && r.answers.len() < 100);

    stop.send(true).expect("server listening");
    finishes(server).await;
}

async fn finishes(server: tokio::task::JoinHandle<io::Result<()>>) {
    let result = tokio::time::timeout(WAIT, server)
        .await
        .expect("stops in time")
        .expect("no panic");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn serve_stops_when_shutdown_sender_is_gone() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(serve(socket, Arc::new(env_lookup), stopped));
    drop(stop);
    finishes(server).await;
}
