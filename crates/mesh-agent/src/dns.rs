//! Intra-DNS: the responder that resolves `<stack>-<service>` inside one environment.
//!
//! Each environment gets its own responder whose `lookup` only knows that environment's
//! services, so a name from another environment is simply unknown here (NXDOMAIN): isolation
//! comes from what the lookup holds, not from filtering in this module.
//!
//! The wire format (RFC 1035) is handled by hand: we only ever answer one question with A
//! records, which is small enough that a DNS library would be more surface than help.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Finds the healthy instance addresses of a service name (`<stack>-<service>`, lowercase).
/// `None`: no such service in this environment; `Some(empty)`: it exists, nothing is healthy.
pub type Lookup = dyn Fn(&str) -> Option<Vec<Ipv4Addr>> + Send + Sync;

/// Kept short so that instances stop being reached soon after they turn unhealthy.
pub const TTL_SECS: u32 = 5;
/// The classic UDP message limit; we don't speak EDNS, so clients expect no more than this.
pub const MAX_UDP_MESSAGE: usize = 512;

const HEADER_LEN: usize = 12;
const MAX_NAME_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;
const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
/// Name pointer (2) + type (2) + class (2) + TTL (4) + RDLENGTH (2) + address (4).
const A_RECORD_LEN: usize = 16;
/// Every answer is about the question's name, which always sits right after the header.
const POINTER_TO_QUESTION_NAME: [u8; 2] = [0xC0, HEADER_LEN as u8];

// Header flag bits (third and fourth bytes of the header).
const FLAG_QR: u8 = 0x80;
const MASK_OPCODE: u8 = 0x78;
const FLAG_AA: u8 = 0x04;
const FLAG_TC: u8 = 0x02;
const FLAG_RD: u8 = 0x01;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rcode {
    NoError = 0,
    FormErr = 1,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

/// Why a question section was rejected with FORMERR; only ever logged.
#[derive(Debug, thiserror::Error)]
enum Malformed {
    #[error("question section is truncated")]
    Truncated,
    #[error("compression pointer in the question name")]
    Pointer,
    #[error("label longer than {MAX_LABEL_LEN} bytes")]
    LongLabel,
    #[error("name longer than {MAX_NAME_LEN} bytes")]
    LongName,
}

/// The parts of a query header a response needs.
struct Header {
    id: [u8; 2],
    /// Third header byte: QR, opcode, AA, TC, RD.
    flags: u8,
    qdcount: u16,
}

struct Question<'a> {
    /// Lowercase, dot-separated, no trailing dot; `None` when a label holds bytes no service
    /// name can have (a dot, a space, non-ASCII), so that such names are never looked up.
    name: Option<String>,
    qtype: u16,
    qclass: u16,
    /// QNAME + QTYPE + QCLASS exactly as received, echoed back in the response.
    wire: &'a [u8],
}

/// Answers one DNS query message, without any size limit (see [`serve`] for UDP's).
///
/// Returns `None` for input that isn't a query worth answering (shorter than a header, or
/// already a response), so that garbage and reflected responses get no reply.
pub fn answer(query: &[u8], lookup: &dyn Fn(&str) -> Option<Vec<Ipv4Addr>>) -> Option<Vec<u8>> {
    answer_within(query, lookup, usize::MAX)
}

/// Like [`answer`], dropping trailing A records (and setting TC) past `limit` bytes.
fn answer_within(
    query: &[u8],
    lookup: &dyn Fn(&str) -> Option<Vec<Ipv4Addr>>,
    limit: usize,
) -> Option<Vec<u8>> {
    let header = parse_header(query)?;
    if header.flags & MASK_OPCODE != 0 {
        return Some(bare_response(&header, Rcode::NotImp));
    }
    if header.qdcount != 1 {
        return Some(bare_response(&header, Rcode::FormErr));
    }
    let question = match parse_question(query.get(HEADER_LEN..)?) {
        Ok(question) => question,
        Err(error) => {
            tracing::debug!(%error, "dns: rejecting query");
            return Some(bare_response(&header, Rcode::FormErr));
        }
    };
    if question.qclass != CLASS_IN {
        return Some(response(&header, Rcode::Refused, question.wire, &[], limit));
    }
    let Some(addrs) = question.name.as_deref().and_then(lookup) else {
        return Some(response(
            &header,
            Rcode::NxDomain,
            question.wire,
            &[],
            limit,
        ));
    };
    // A known name answers every other type (AAAA included) with "exists, no such records",
    // so resolvers don't conclude the whole name is gone.
    let answers: &[Ipv4Addr] = if question.qtype == TYPE_A {
        &addrs
    } else {
        &[]
    };
    Some(response(
        &header,
        Rcode::NoError,
        question.wire,
        answers,
        limit,
    ))
}

fn parse_header(query: &[u8]) -> Option<Header> {
    let bytes: &[u8; HEADER_LEN] = query.get(..HEADER_LEN)?.try_into().ok()?;
    let header = Header {
        id: [bytes[0], bytes[1]],
        flags: bytes[2],
        qdcount: u16::from_be_bytes([bytes[4], bytes[5]]),
    };
    // Answering a response could start a loop between two responders.
    (header.flags & FLAG_QR == 0).then_some(header)
}

/// Parses the one question at the start of `bytes`; anything after it (such as an EDNS OPT
/// record in the additional section) is ignored.
fn parse_question(bytes: &[u8]) -> Result<Question<'_>, Malformed> {
    let (name, name_len) = parse_name(bytes)?;
    let end = name_len + 4;
    let Some(&[t0, t1, c0, c1]) = bytes.get(name_len..end) else {
        return Err(Malformed::Truncated);
    };
    Ok(Question {
        name,
        qtype: u16::from_be_bytes([t0, t1]),
        qclass: u16::from_be_bytes([c0, c1]),
        wire: bytes.get(..end).ok_or(Malformed::Truncated)?,
    })
}

/// Reads an uncompressed name; returns it in presentation form (see [`Question::name`]) and
/// its length on the wire.
fn parse_name(bytes: &[u8]) -> Result<(Option<String>, usize), Malformed> {
    let mut labels: Vec<&[u8]> = Vec::new();
    let mut pos = 0;
    loop {
        let len = usize::from(*bytes.get(pos).ok_or(Malformed::Truncated)?);
        if len == 0 {
            pos += 1;
            break;
        }
        if len & 0xC0 == 0xC0 {
            // Clients never compress a question, and following pointers invites loops.
            return Err(Malformed::Pointer);
        }
        if len > MAX_LABEL_LEN {
            return Err(Malformed::LongLabel);
        }
        let label = bytes
            .get(pos + 1..pos + 1 + len)
            .ok_or(Malformed::Truncated)?;
        labels.push(label);
        pos += 1 + len;
        // The terminating zero still has to fit.
        if pos + 1 > MAX_NAME_LEN {
            return Err(Malformed::LongName);
        }
    }
    Ok((presentation_name(&labels), pos))
}

fn presentation_name(labels: &[&[u8]]) -> Option<String> {
    let mut name = String::new();
    for (i, label) in labels.iter().enumerate() {
        // A dot inside a label would make `a.b` (one label) alias `a` + `b` (two labels).
        if !label.iter().all(|b| b.is_ascii_graphic() && *b != b'.') {
            return None;
        }
        if i > 0 {
            name.push('.');
        }
        name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
    }
    Some(name)
}

/// A response with no question section, for queries whose question we can't or won't read.
fn bare_response(header: &Header, rcode: Rcode) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    push_header(&mut out, header, rcode, false, 0, 0);
    out
}

/// A response echoing the question, with one A record per address that fits within `limit`.
fn response(
    header: &Header,
    rcode: Rcode,
    question: &[u8],
    addrs: &[Ipv4Addr],
    limit: usize,
) -> Vec<u8> {
    // ANCOUNT is 16 bits, which only matters for the unlimited `answer`.
    let room = (limit.saturating_sub(HEADER_LEN + question.len()) / A_RECORD_LEN)
        .min(usize::from(u16::MAX));
    let kept = &addrs[..addrs.len().min(room)];
    let truncated = kept.len() < addrs.len();
    let ancount = u16::try_from(kept.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + question.len() + kept.len() * A_RECORD_LEN);
    push_header(&mut out, header, rcode, truncated, 1, ancount);
    out.extend_from_slice(question);
    for addr in kept {
        push_a_record(&mut out, *addr);
    }
    out
}

fn push_header(
    out: &mut Vec<u8>,
    query: &Header,
    rcode: Rcode,
    truncated: bool,
    qdcount: u16,
    ancount: u16,
) {
    // We are the authority for these names and never recurse: AA set, RA (and Z) clear.
    let mut flags = FLAG_QR | FLAG_AA | (query.flags & (MASK_OPCODE | FLAG_RD));
    if truncated {
        flags |= FLAG_TC;
    }
    out.extend_from_slice(&query.id);
    out.extend_from_slice(&[flags, rcode as u8]);
    out.extend_from_slice(&qdcount.to_be_bytes());
    out.extend_from_slice(&ancount.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // no authority, no additional records
}

fn push_a_record(out: &mut Vec<u8>, addr: Ipv4Addr) {
    out.extend_from_slice(&POINTER_TO_QUESTION_NAME);
    out.extend_from_slice(&TYPE_A.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&TTL_SECS.to_be_bytes());
    out.extend_from_slice(&4u16.to_be_bytes());
    out.extend_from_slice(&addr.octets());
}

/// Answers queries on `socket` until `shutdown` becomes true (or its sender is dropped, since
/// then nobody could ever stop us).
///
/// `lookup` runs on the serving task, so it should be a quick in-memory read. Queries longer
/// than [`MAX_UDP_MESSAGE`] are ignored, and answers are cut to that size with TC set.
pub async fn serve(
    socket: UdpSocket,
    lookup: Arc<Lookup>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    // One byte more than allowed, to tell an oversized datagram from one that just fits.
    let mut buf = [0u8; MAX_UDP_MESSAGE + 1];
    loop {
        let (len, peer) = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(error) if is_transient(&error) => {
                    tracing::debug!(%error, "dns: receive failed, continuing");
                    continue;
                }
                Err(error) => return Err(error),
            },
        };
        if len > MAX_UDP_MESSAGE {
            continue;
        }
        let Some(query) = buf.get(..len) else {
            continue;
        };
        if let Some(reply) = answer_within(query, &*lookup, MAX_UDP_MESSAGE) {
            send(&socket, &reply, peer).await;
        }
    }
}

/// A failed reply concerns one client only, so it must not stop the server.
async fn send(socket: &UdpSocket, reply: &[u8], peer: SocketAddr) {
    if let Err(error) = socket.send_to(reply, peer).await {
        tracing::debug!(%error, %peer, "dns: reply not sent");
    }
}

/// Errors caused by one peer (an ICMP error from an earlier reply surfacing on some systems)
/// rather than by the socket itself.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
#[path = "dns/tests.rs"]
mod tests;
