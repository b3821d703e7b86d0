//! A RELP client (the Reliable Event Logging Protocol of librelp, which rsyslog's imrelp
//! serves): frames, the session's `open` and `close`, and the window of `syslog` commands sent
//! and not yet acknowledged.
//!
//! A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. The server answers every command with
//! a `rsp` frame of the same transaction number, in the order the commands came, whose data
//! begins with a status (`200` is success). Transaction numbers start at 1 in each session and
//! go back to 1 after 999,999,999; 0 is for hints, such as the server's `serverclose`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::args::RelpTarget;

/// The largest DATA of a frame that RELP version 1 servers take (librelp's default).
pub(crate) const MAX_DATA: usize = 128 * 1024;

/// The largest response this client reads (offers and human-readable text are short): more
/// is a broken or hostile peer, not a reason to allocate.
const MAX_RESPONSE_DATA: usize = 64 * 1024;

/// How long connecting, and the server's answer to `open` and `close`, may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest transaction number; the next one is 1.
const MAX_TXNR: u32 = 999_999_999;

/// What went wrong with a RELP session. Any of these ends the session: the commands not yet
/// acknowledged are to be sent again in a new one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelpError {
    /// Connecting, reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The host name has no address.
    #[error("no address found for {0}")]
    NoAddress(String),
    /// The server closed the connection (or said it would, with `serverclose`).
    #[error("the server closed the connection")]
    Closed,
    /// The server answered a command with an error status.
    #[error("the server refused {command} (txnr {txnr}): {reply}")]
    Refused {
        /// The command refused.
        command: &'static str,
        /// Its transaction number.
        txnr: u32,
        /// The status and text of the answer.
        reply: String,
    },
    /// The server's bytes are not RELP, or not the answers expected.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("no answer to {0} within {HANDSHAKE_TIMEOUT:?}")]
    Timeout(&'static str),
}

/// One frame received.
#[derive(Debug, PartialEq, Eq)]
struct Frame<'a> {
    txnr: u32,
    command: &'a [u8],
    data: &'a [u8],
}

/// Parses the frame at the start of `buf`: the frame and the bytes it took, or `None` when
/// `buf` holds only part of one.
fn parse_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, RelpError> {
    let bad = |what: &str| {
        let shown = String::from_utf8_lossy(&buf[..buf.len().min(40)]).into_owned();
        RelpError::Protocol(format!("{what} in a frame beginning {shown:?}"))
    };
    let digits = |b: u8| b.is_ascii_digit();
    let mut at = 0;
    let Some((txnr, _)) = field(buf, &mut at, 9, digits, b" ").map_err(|()| bad("a bad txnr"))?
    else {
        return Ok(None);
    };
    let Some((command, _)) = field(buf, &mut at, 32, |b| b.is_ascii_alphabetic(), b" ")
        .map_err(|()| bad("a bad command"))?
    else {
        return Ok(None);
    };
    let Some((len, after)) =
        field(buf, &mut at, 9, digits, b" \n").map_err(|()| bad("a bad data length"))?
    else {
        return Ok(None);
    };
    let number = |text: &[u8]| {
        text.iter()
            .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0'))
    };
    let (txnr, len) = (number(txnr), number(len));
    let txnr = u32::try_from(txnr).map_err(|_| bad("a txnr too large"))?;
    if len > MAX_RESPONSE_DATA {
        return Err(bad("a data length too large"));
    }
    if after == b'\n' {
        if len != 0 {
            return Err(bad("data missing"));
        }
        return Ok(Some((
            Frame {
                txnr,
                command,
                data: &[],
            },
            at,
        )));
    }
    match buf.get(at + len) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((
            Frame {
                txnr,
                command,
                data: &buf[at..at + len],
            },
            at + len + 1,
        ))),
        Some(_) => Err(bad("no LF after the data")),
    }
}

/// The field of 1 to `max` bytes passing `ok` at `*at` in `buf`, and the byte of `ends` that
/// ended it (`*at` moves past both); `None` when `buf` ends first; `Err` for anything else.
fn field<'a>(
    buf: &'a [u8],
    at: &mut usize,
    max: usize,
    ok: fn(u8) -> bool,
    ends: &[u8],
) -> Result<Option<(&'a [u8], u8)>, ()> {
    let start = *at;
    for (i, &b) in buf[start..].iter().enumerate() {
        if i > 0 && ends.contains(&b) {
            *at = start + i + 1;
            return Ok(Some((&buf[start..start + i], b)));
        }
        if i == max || !ok(b) {
            return Err(());
        }
    }
    Ok(None)
}

/// Appends the frame `txnr command len data LF` to `out`.
fn put_frame(out: &mut Vec<u8>, txnr: u32, command: &str, data: &[u8]) {
    // Formatting into a Vec cannot fail.
    let _ = write!(out, "{txnr} {command} {}", data.len());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// What one [`Session::exchange`] brought: the token of the last command acknowledged, and
/// what broke the session, if something did (the acknowledgements that came before it
/// count).
#[derive(Debug)]
pub(crate) struct Exchanged {
    /// The token given with the last `syslog` command acknowledged in this exchange.
    pub(crate) acked: Option<u64>,
    /// The session is over: why.
    pub(crate) broken: Option<RelpError>,
}

/// An open RELP session: sends `syslog` commands without waiting for each answer, and matches
/// the answers to them in order.
pub(crate) struct Session {
    stream: TcpStream,
    next_txnr: u32,
    /// Frames not yet written, from `written` on.
    outgoing: Vec<u8>,
    written: usize,
    /// Bytes received and not yet parsed.
    incoming: Vec<u8>,
    /// The commands sent and not yet answered: their txnr and the caller's token.
    unacked: VecDeque<(u32, u64)>,
}

impl Session {
    /// Connects to `target` and opens a session that takes `syslog` commands.
    pub(crate) fn open(target: &RelpTarget) -> Result<Session, RelpError> {
        let addresses: Vec<_> = (target.host.as_str(), target.port)
            .to_socket_addrs()?
            .collect();
        let mut last = RelpError::NoAddress(target.host.clone());
        let stream = addresses.iter().find_map(|address| {
            TcpStream::connect_timeout(address, HANDSHAKE_TIMEOUT)
                .map_err(|error| last = error.into())
                .ok()
        });
        let stream = stream.ok_or(last)?;
        // Small frames go out as they are made: the window, not Nagle, batches them.
        stream.set_nodelay(true)?;
        let mut session = Session {
            stream,
            next_txnr: 1,
            outgoing: Vec::with_capacity(256 << 10),
            written: 0,
            incoming: Vec::with_capacity(64 << 10),
            unacked: VecDeque::new(),
        };
        let offers = format!(
            "relp_version=0\nrelp_software=pounds,{},https://crates.io/crates/pounds\ncommands=syslog",
            env!("CARGO_PKG_VERSION")
        );
        let reply = session.handshake("open", offers.as_bytes())?;
        // The server lists the commands it takes; without syslog there is nothing to send.
        let takes_syslog = reply.split(|&b| b == b'\n').any(|line| {
            line.strip_prefix(b"commands=")
                .is_some_and(|list| list.split(|&b| b == b',').any(|c| c == b"syslog"))
        });
        if !takes_syslog {
            return Err(RelpError::Protocol(
                "the server does not offer the syslog command".to_string(),
            ));
        }
        session.stream.set_nonblocking(true)?;
        Ok(session)
    }

    /// Sends `command` (blocking) and waits for its answer: the answer's data after the
    /// status line.
    fn handshake(&mut self, command: &'static str, data: &[u8]) -> Result<Vec<u8>, RelpError> {
        let txnr = self.take_txnr();
        let mut frame = Vec::new();
        put_frame(&mut frame, txnr, command, data);
        self.stream.set_nonblocking(false)?;
        self.stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        self.stream.write_all(&frame)?;
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let mut buf = [0u8; 4096];
        loop {
            if let Some((frame, used)) = parse_frame(&self.incoming)? {
                let reply = answer(&frame, txnr, command)?.to_vec();
                self.incoming.drain(..used);
                return Ok(reply);
            }
            if Instant::now() >= deadline {
                return Err(RelpError::Timeout(command));
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(RelpError::Closed),
                Ok(n) => self.incoming.extend_from_slice(&buf[..n]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(RelpError::Timeout(command));
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn take_txnr(&mut self) -> u32 {
        let txnr = self.next_txnr;
        self.next_txnr = if txnr >= MAX_TXNR { 1 } else { txnr + 1 };
        txnr
    }

    /// Queues a `syslog` command carrying `message` (at most [`MAX_DATA`] bytes); `token` is
    /// handed back by [`Self::exchange`] once the server acknowledged it.
    pub(crate) fn send_syslog(&mut self, message: &[u8], token: u64) {
        let txnr = self.take_txnr();
        put_frame(&mut self.outgoing, txnr, "syslog", message);
        self.unacked.push_back((txnr, token));
    }

    /// Commands sent (or queued) and not yet acknowledged.
    pub(crate) fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// Bytes queued and not yet written to the connection.
    pub(crate) fn backlog(&self) -> usize {
        self.outgoing.len() - self.written
    }

    /// Writes what the connection takes and reads the answers that came, waiting up to `wait`
    /// for the connection to be ready when neither moved.
    pub(crate) fn exchange(&mut self, wait: Duration) -> Exchanged {
        let mut acked = None;
        let broken = self.exchange_into(wait, &mut acked).err();
        Exchanged { acked, broken }
    }

    fn exchange_into(&mut self, wait: Duration, acked: &mut Option<u64>) -> Result<(), RelpError> {
        let mut moved = self.write_some()?;
        let (read, closed) = self.read_some()?;
        moved |= read;
        if !moved && !closed && !wait.is_zero() {
            self.wait_ready(wait)?;
            self.write_some()?;
            let (_, closed_now) = self.read_some()?;
            self.take_answers(acked)?;
            return if closed_now {
                Err(RelpError::Closed)
            } else {
                Ok(())
            };
        }
        self.take_answers(acked)?;
        if closed {
            return Err(RelpError::Closed);
        }
        Ok(())
    }

    /// Waits until the connection can be read (or written, with a backlog), at most `wait`.
    #[cfg(unix)]
    fn wait_ready(&self, wait: Duration) -> Result<(), RelpError> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        // Acknowledge the server's segments at once while waiting for its answers: librelp
        // leaves Nagle's algorithm on, so its next small segment of answers waits for the
        // TCP acknowledgement of the last, which a receiver that is not sending delays by up
        // to 40 ms. Linux turns quick acknowledgement off again by itself, hence at each
        // wait; elsewhere there is no such switch, and a failure only costs time.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = rustix::net::sockopt::set_tcp_quickack(&self.stream, true);
        let mut flags = PollFlags::IN;
        if self.backlog() > 0 {
            flags |= PollFlags::OUT;
        }
        let mut fds = [PollFd::new(&self.stream, flags)];
        let timeout = Timespec {
            tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) => Ok(()),
            Err(rustix::io::Errno::INTR) => Ok(()),
            Err(error) => Err(io::Error::from(error).into()),
        }
    }

    /// Waits `wait` (no readiness to ask for on this platform: the next exchange looks again).
    #[cfg(not(unix))]
    fn wait_ready(&self, wait: Duration) -> Result<(), RelpError> {
        std::thread::sleep(wait.min(Duration::from_millis(1)));
        Ok(())
    }

    /// Writes queued frames until the connection would block: whether any byte went.
    fn write_some(&mut self) -> Result<bool, RelpError> {
        let mut moved = false;
        while self.written < self.outgoing.len() {
            match self.stream.write(&self.outgoing[self.written..]) {
                Ok(0) => return Err(RelpError::Closed),
                Ok(n) => {
                    self.written += n;
                    moved = true;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
        if self.written == self.outgoing.len() {
            self.outgoing.clear();
            self.written = 0;
        } else if self.written > self.outgoing.len() / 2 {
            // Keep the queue from growing while the peer reads slowly.
            self.outgoing.drain(..self.written);
            self.written = 0;
        }
        Ok(moved)
    }

    /// Reads what came until the connection would block: whether any byte came, and whether
    /// the peer closed its side.
    fn read_some(&mut self) -> Result<(bool, bool), RelpError> {
        let mut buf = [0u8; 16 << 10];
        let mut moved = false;
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok((moved, true)),
                Ok(n) => {
                    self.incoming.extend_from_slice(&buf[..n]);
                    moved = true;
                    if self.incoming.len() > 4 * MAX_RESPONSE_DATA {
                        // Enough to parse: the rest waits in the socket.
                        return Ok((moved, false));
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((moved, false));
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Matches the answers received to the commands sent, oldest first.
    fn take_answers(&mut self, acked: &mut Option<u64>) -> Result<(), RelpError> {
        let mut used = 0;
        let outcome = loop {
            let frame = match parse_frame(&self.incoming[used..]) {
                Ok(Some((frame, len))) => {
                    used += len;
                    frame
                }
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            };
            if frame.txnr == 0 {
                if frame.command == b"serverclose" {
                    break Err(RelpError::Closed);
                }
                // Other hints are advice that this client does not take.
                continue;
            }
            let Some(&(txnr, token)) = self.unacked.front() else {
                break Err(RelpError::Protocol(format!(
                    "an answer to txnr {} with no command outstanding",
                    frame.txnr
                )));
            };
            if let Err(error) = answer(&frame, txnr, "syslog") {
                break Err(error);
            }
            self.unacked.pop_front();
            *acked = Some(token);
        };
        self.incoming.drain(..used);
        outcome
    }

    /// Ends the session: `close`, and its answer (everything sent before it was answered).
    pub(crate) fn close(mut self) -> Result<(), RelpError> {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        while self.unacked() > 0 || self.backlog() > 0 {
            if Instant::now() >= deadline {
                return Err(RelpError::Timeout("syslog"));
            }
            if let Some(error) = self.exchange(Duration::from_millis(100)).broken {
                return Err(error);
            }
        }
        self.handshake("close", b"").map(|_| ())
    }
}

/// Checks that `frame` answers command `txnr` with success: the data after the status line.
fn answer<'a>(frame: &Frame<'a>, txnr: u32, command: &'static str) -> Result<&'a [u8], RelpError> {
    if frame.command != b"rsp" {
        return Err(RelpError::Protocol(format!(
            "the server sent {:?} where an answer was due",
            String::from_utf8_lossy(frame.command)
        )));
    }
    if frame.txnr != txnr {
        return Err(RelpError::Protocol(format!(
            "an answer to txnr {} where txnr {txnr} was due",
            frame.txnr
        )));
    }
    let (status, rest) = match frame.data.iter().position(|&b| b == b'\n') {
        Some(at) => (&frame.data[..at], &frame.data[at + 1..]),
        None => (frame.data, &frame.data[frame.data.len()..]),
    };
    if !status.starts_with(b"200") {
        return Err(RelpError::Refused {
            command,
            txnr,
            reply: String::from_utf8_lossy(status).into_owned(),
        });
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(buf: &[u8]) -> Option<(Frame<'_>, usize)> {
        match parse_frame(buf) {
            Ok(found) => found,
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn frames_with_and_without_data_and_cut_anywhere() {
        let whole = b"7 rsp 6 200 OK\n0 serverclose 0\n";
        let (first, used) = frame(whole).unwrap();
        assert_eq!(
            first,
            Frame {
                txnr: 7,
                command: b"rsp",
                data: b"200 OK"
            }
        );
        assert_eq!(used, 15);
        let (second, used2) = frame(&whole[used..]).unwrap();
        assert_eq!(
            (second.txnr, second.command, second.data),
            (0, &b"serverclose"[..], &b""[..])
        );
        assert_eq!(used + used2, whole.len());
        // Any cut before the LF is a frame still coming, never an error nor a frame.
        for cut in 0..used {
            assert!(frame(&whole[..cut]).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn bad_frames_are_protocol_errors() {
        for bad in [
            &b"x rsp 6 200 OK\n"[..],
            b"1 r3p 6 200 OK\n",
            b"1 rsp 6 200 OKX",
            b"1234567890 rsp 0\n",
            b"1 rsp 99999999 ",
            b"1 rsp 3\n",
            b" rsp 0\n",
        ] {
            assert!(
                matches!(parse_frame(bad), Err(RelpError::Protocol(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn frames_are_written_as_librelp_writes_them() {
        let mut out = Vec::new();
        put_frame(&mut out, 12, "syslog", b"<14>1 hi");
        put_frame(&mut out, 13, "close", b"");
        assert_eq!(out, b"12 syslog 8 <14>1 hi\n13 close 0\n");
    }

    #[test]
    fn answers_must_be_rsp_of_the_txnr_due_with_status_200() {
        let ok = Frame {
            txnr: 3,
            command: b"rsp",
            data: b"200 OK\ncommands=syslog",
        };
        assert_eq!(answer(&ok, 3, "open").unwrap(), b"commands=syslog");
        assert!(matches!(
            answer(&ok, 4, "syslog"),
            Err(RelpError::Protocol(_))
        ));
        let refused = Frame {
            data: b"500 no",
            ..ok
        };
        assert!(matches!(
            answer(&refused, 3, "syslog"),
            Err(RelpError::Refused { txnr: 3, .. })
        ));
    }

    #[test]
    fn transaction_numbers_wrap_to_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut session = Session {
            stream,
            next_txnr: MAX_TXNR,
            outgoing: Vec::new(),
            written: 0,
            incoming: Vec::new(),
            unacked: VecDeque::new(),
        };
        assert_eq!(session.take_txnr(), MAX_TXNR);
        assert_eq!(session.take_txnr(), 1);
    }
}
