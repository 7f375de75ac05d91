//! A framed, buffered TCP connection with timeouts on both directions:
//! on the plain socket in an open swarm, or on the sealed channel a
//! swarm secret sets up (`handshake`), with the same frames above.

use super::handshake;
use crate::error::{Error, Result};
use crate::secure::{self, channel};
use crate::wire::message::{Answer, Decode, Encode};
use crate::wire::FrameReader;
use log::debug;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request/answer exchange may stay silent.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection's read buffer: also the most that can follow a handshake
/// message in one read (fuzz/src/bin/handshake_surplus.rs feeds that much).
pub const READ_BUFFER: usize = 256 << 10;
const WRITE_BUFFER: usize = 256 << 10;

/// How often `wait_sent` looks at the socket's queue: a 1 MiB record
/// takes 100 ms on a 10 MiB/s link.
const SENT_POLL: Duration = Duration::from_millis(2);

/// Bytes written to `stream` that the kernel has not sent yet.
#[cfg(target_os = "linux")]
fn unsent(stream: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQNSD writes one int through the pointer given.
    let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::SIOCOUTQNSD as _, &mut n) };
    if r < 0 {
        0
    } else {
        n.max(0) as usize
    }
}

#[cfg(not(target_os = "linux"))]
fn unsent(_stream: &TcpStream) -> usize {
    0
}

pub struct Conn {
    reader: FrameReader<BufReader<Inbound>>,
    writer: BufWriter<Outbound>,
    out: Vec<u8>,
    peer: SocketAddr,
    max_frame: usize,
}

/// A connection's read side: the socket itself (an open swarm), or the
/// sealed channel over it (a swarm secret). The frames above are the same.
pub enum Inbound {
    /// `now`: reads return what has arrived and never wait (`try_fill`).
    Plain {
        stream: TcpStream,
        now: bool,
    },
    Sealed(channel::SealedReader<TcpStream>),
}

/// A connection's write side, as `Inbound`.
pub enum Outbound {
    Plain(TcpStream),
    Sealed(channel::SealedWriter<TcpStream>),
}

impl Read for Inbound {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Inbound::Plain { stream, now: false } => stream.read(buf),
            Inbound::Plain { stream, now: true } => recv_now(stream, buf),
            Inbound::Sealed(s) => s.read(buf),
        }
    }
}

/// One read that does not wait (MSG_DONTWAIT): one system call, where
/// switching the socket to non-blocking and back costs two more.
fn recv_now(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call,
    // and the descriptor is owned by `stream`, open while it lives.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl Inbound {
    /// Data a read would return without waiting on the socket.
    fn has_data(&self) -> bool {
        match self {
            Inbound::Plain { .. } => false,
            Inbound::Sealed(s) => s.has_data(),
        }
    }
}

impl Write for Outbound {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Outbound::Plain(s) => s.write(buf),
            Outbound::Sealed(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        match self {
            Outbound::Plain(s) => s.write_vectored(bufs),
            Outbound::Sealed(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Outbound::Plain(s) => s.flush(),
            Outbound::Sealed(s) => s.flush(),
        }
    }
}

impl Outbound {
    /// The socket, for its options and shutdown.
    pub fn stream(&self) -> &TcpStream {
        match self {
            Outbound::Plain(s) => s,
            Outbound::Sealed(s) => s.get_ref(),
        }
    }
}

impl Conn {
    /// Connects to `addr` (`host:port`), trying each resolved address;
    /// in a swarm with a secret, then shakes hands (see `initiate`).
    pub fn connect(addr: &str, max_frame: usize) -> Result<Conn> {
        let mut conn = Conn::dial(addr, max_frame)?;
        if let Some(keys) = secure::swarm() {
            conn.initiate(keys.psk(), addr)?;
        }
        Ok(conn)
    }

    /// A connection a server accepted; in a swarm with a secret, once the
    /// client has shown it (see `respond`) by `deadline` (the gate's start
    /// deadline: the handshake is the connection's first message).
    /// Nothing is read as a request before that.
    pub fn accept(
        stream: TcpStream,
        max_frame: usize,
        read_timeout: Duration,
        deadline: Instant,
    ) -> Result<Conn> {
        let mut conn = Conn::new(stream, max_frame, read_timeout)?;
        if let Some(keys) = secure::swarm() {
            conn.respond(keys.psk(), deadline)?;
        }
        Ok(conn)
    }

    fn dial(addr: &str, max_frame: usize) -> Result<Conn> {
        let addrs = addr
            .to_socket_addrs()
            .map_err(|e| Error::net(format!("resolving {addr}"), e))?;
        let mut last = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(s) => return Conn::new(s, max_frame, IO_TIMEOUT),
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| std::io::Error::other("no address"));
        Err(Error::net(format!("connecting to {addr}"), e))
    }

    pub fn new(stream: TcpStream, max_frame: usize, read_timeout: Duration) -> Result<Conn> {
        let ctx = "setting up a connection";
        let peer = stream.peer_addr().map_err(|e| Error::net(ctx, e))?;
        stream.set_nodelay(true).map_err(|e| Error::net(ctx, e))?;
        stream
            .set_read_timeout(Some(read_timeout))
            .map_err(|e| Error::net(ctx, e))?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(|e| Error::net(ctx, e))?;
        let read_half = stream.try_clone().map_err(|e| Error::net(ctx, e))?;
        let mut reader = FrameReader::new(
            BufReader::with_capacity(
                READ_BUFFER,
                Inbound::Plain {
                    stream: read_half,
                    now: false,
                },
            ),
            max_frame,
        );
        reader.set_budget(Some(read_timeout));
        Ok(Conn {
            reader,
            writer: BufWriter::with_capacity(WRITE_BUFFER, Outbound::Plain(stream)),
            out: Vec::new(),
            peer,
            max_frame,
        })
    }

    /// The dialling side of the handshake (`handshake::initiate`), then
    /// onto the sealed channel.
    fn initiate(&mut self, psk: &[u8; 32], who: &str) -> Result<()> {
        let noise = handshake::initiate(self, psk, who)?;
        self.switch(noise)
    }

    /// The accepting side (`handshake::respond`), then onto the sealed
    /// channel.
    fn respond(&mut self, psk: &[u8; 32], deadline: Instant) -> Result<()> {
        let noise = handshake::respond(self, psk, deadline)?;
        self.switch(noise)
    }

    /// Reads one whole frame by `deadline` (the socket's read timeout may
    /// be shorter: a server polls).
    fn fill_by(&mut self, deadline: Instant) -> Result<()> {
        loop {
            match self.reader.fill_buffered() {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    return Err(Error::protocol(format!(
                        "{} closed the connection during the handshake",
                        self.peer
                    )))
                }
                Err(Error::Timeout(_)) if Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// One frame of type `ty` with `body`, sent now.
    fn send_raw(&mut self, ty: u8, body: &[u8]) -> Result<()> {
        let ctx = || format!("sending to {}", self.peer);
        crate::wire::frame::write_header(&mut self.writer, ty, body.len())
            .and_then(|()| self.writer.write_all(body))
            .map_err(|e| Error::net(ctx(), e))?;
        self.flush()
    }

    /// From the plain socket to the sealed channel, after the handshake.
    /// Bytes already read past the handshake are ciphertext: they move
    /// into the channel.
    fn switch(&mut self, noise: channel::Shared) -> Result<()> {
        let ctx = "setting up the sealed channel";
        self.flush()?;
        let write_half = self.stream().try_clone().map_err(|e| Error::net(ctx, e))?;
        let read_half = self.stream().try_clone().map_err(|e| Error::net(ctx, e))?;
        self.reader.settle();
        let buffered = self.reader.get_mut();
        let already = buffered.buffer().to_vec();
        buffered.consume(already.len());
        *buffered.get_mut() = Inbound::Sealed(channel::SealedReader::new(
            read_half,
            noise.clone(),
            &already,
        ));
        *self.writer.get_mut() = Outbound::Sealed(channel::SealedWriter::new(write_half, noise));
        debug!("{}: sealed channel up", self.peer);
        Ok(())
    }

    fn stream(&self) -> &TcpStream {
        self.writer.get_ref().stream()
    }

    /// Ciphertext the sealed channel holds unopened.
    #[cfg(test)]
    fn sealed_backlog(&self) -> usize {
        match self.reader.get_ref().get_ref() {
            Inbound::Sealed(s) => s.backlog(),
            Inbound::Plain { .. } => 0,
        }
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The socket's read timeout, which is also how long one `fill` may
    /// keep reading a frame that trickles in.
    pub fn set_read_timeout(&mut self, t: Duration) {
        let _ = self.stream().set_read_timeout(Some(t));
        self.reader.set_budget(Some(t));
    }

    /// Buffers a message without flushing (for pipelining several).
    pub fn queue(&mut self, msg: &impl Encode) -> Result<()> {
        self.out.clear();
        msg.encode(&mut self.out);
        debug!("-> {} {} ({} bytes)", self.peer, msg.kind(), self.out.len());
        self.writer
            .write_all(&self.out)
            .map_err(|e| Error::net(format!("sending to {}", self.peer), e))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.writer
            .flush()
            .map_err(|e| Error::net(format!("sending to {}", self.peer), e))
    }

    pub fn send(&mut self, msg: &impl Encode) -> Result<()> {
        self.queue(msg)?;
        self.flush()
    }

    /// The write side, for frames written in place (BLOCK).
    pub fn writer(&mut self) -> &mut BufWriter<Outbound> {
        &mut self.writer
    }

    /// Writes `parts` in order, after what is queued. On a plain socket
    /// in one gathered write (`writev`) from where they are, where copying
    /// each block into the write buffer cost a seeder a tenth of its CPU;
    /// a sealed channel seals whole messages, so its parts go through the
    /// write buffer as before.
    pub fn write_parts(&mut self, parts: &mut [std::io::IoSlice<'_>]) -> std::io::Result<()> {
        if matches!(self.writer.get_ref(), Outbound::Sealed(_)) {
            return parts.iter().try_for_each(|p| self.writer.write_all(p));
        }
        self.writer.flush()?;
        let mut parts = &mut parts[..];
        // At most IOV_MAX (1024) parts per call.
        while !parts.is_empty() {
            let end = parts.len().min(1024);
            match self.writer.get_mut().write_vectored(&parts[..end]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => std::io::IoSlice::advance_slices(&mut parts, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// True when no received bytes wait in the read buffer, i.e. the next
    /// `recv` will block on the socket: the moment to flush pending writes.
    pub fn read_buffer_empty(&self) -> bool {
        self.reader.unread() == 0 && !self.reader.get_ref().get_ref().has_data()
    }

    /// Reads until a whole message is buffered (`true`) or the other side
    /// closed cleanly (`false`); `Error::Timeout` when the read timeout
    /// passes first, after which calling again continues the same frame.
    pub fn fill(&mut self) -> Result<bool> {
        self.reader.fill_buffered()
    }

    /// Like `fill`, but never waits: `Error::Timeout` when no whole message
    /// has arrived yet (what did arrive is kept for the next call).
    pub fn try_fill(&mut self) -> Result<bool> {
        if let Inbound::Plain { now, .. } = self.reader.get_mut().get_mut() {
            *now = true;
            let got = self.reader.fill_buffered();
            if let Inbound::Plain { now, .. } = self.reader.get_mut().get_mut() {
                *now = false;
            }
            return got;
        }
        // The field, not `stream()`: the reader is borrowed below.
        let stream = self.writer.get_ref().stream();
        let ctx = || format!("polling {}", self.peer);
        stream
            .set_nonblocking(true)
            .map_err(|e| Error::net(ctx(), e))?;
        let got = self.reader.fill_buffered();
        // The flag is shared with the write half: restore it before any write.
        stream
            .set_nonblocking(false)
            .map_err(|e| Error::net(ctx(), e))?;
        got
    }

    /// Decodes the message `fill` buffered, as one this side may receive.
    pub fn take<'a, M: Decode<'a> + Encode>(&'a mut self) -> Result<M> {
        let peer = self.peer;
        let (ty, body) = self.reader.take_buffered();
        let msg = M::decode(ty, body)?;
        debug!("<- {peer} {}", msg.kind());
        Ok(msg)
    }

    /// The next message, or `None` when the other side closed cleanly.
    pub fn recv<'a, M: Decode<'a> + Encode>(&'a mut self) -> Result<Option<M>> {
        if self.fill()? {
            self.take().map(Some)
        } else {
            Ok(None)
        }
    }

    /// The next message; a close is an error and an ERROR frame becomes
    /// `Error::Remote`.
    pub fn expect<'a, M: Decode<'a> + Encode + Answer>(&'a mut self) -> Result<M> {
        let peer = self.peer;
        match self.recv::<M>()? {
            None => Err(closed(peer)),
            Some(m) => m.into_result().map_err(|e| handshake::refusal(peer, e)),
        }
    }

    /// Sends a request and waits for its answer.
    pub fn call<'a, M: Decode<'a> + Encode + Answer>(&'a mut self, msg: &impl Encode) -> Result<M> {
        self.send(msg)?;
        self.expect()
    }

    /// Closes after an ERROR frame: stop writing, then read (a bounded
    /// amount, for a bounded time) what the other side still sends, so the
    /// kernel does not reset the connection and lose the ERROR frame.
    pub fn linger_close(&mut self) {
        let _ = self.writer.flush();
        let stream = self.stream();
        drain_and_close(stream, &mut &*stream, 1 << 20);
    }

    /// Waits until everything written has left for the wire (the kernel
    /// has sent it, acknowledged or not), or until `until`: how a turn
    /// (`turns`) knows the link is free for the next reply.
    pub fn wait_sent(&mut self, until: Instant) -> Result<()> {
        self.flush()?;
        while unsent(self.stream()) > 0 && Instant::now() < until {
            std::thread::sleep(SENT_POLL);
        }
        Ok(())
    }

    pub fn shutdown(&self) {
        let _ = self.stream().shutdown(std::net::Shutdown::Both);
    }
}

/// The other side closed before answering: a network failure (it stopped,
/// restarted or dropped us), not a protocol violation.
fn closed(peer: SocketAddr) -> Error {
    Error::net(
        format!("waiting for an answer from {peer}"),
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "it closed the connection (stopped or restarting?)",
        ),
    )
}

/// Stops writing, then reads and drops up to `budget` bytes from `reader`
/// (the stream, or a buffer in front of it) for at most 2 s, so the kernel
/// does not answer the other side's unread bytes with a reset that would
/// destroy what was last written (an ERROR frame, an HTTP response).
pub fn drain_and_close(stream: &TcpStream, reader: &mut impl std::io::Read, budget: u64) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 8192];
    let mut left = budget;
    while left > 0 && Instant::now() < deadline {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n as u64),
        }
    }
}

impl handshake::Frames for Conn {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn send_frame(&mut self, ty: u8, body: &[u8]) -> Result<()> {
        self.send_raw(ty, body)
    }

    fn recv_frame_by(&mut self, deadline: Instant, max: Option<usize>) -> Result<(u8, &[u8])> {
        if let Some(max) = max {
            self.reader.set_max(max);
        }
        let got = self.fill_by(deadline);
        self.reader.set_max(self.max_frame);
        got?;
        Ok(self.reader.take_buffered())
    }

    fn close(&self) {
        self.shutdown();
    }

    fn close_after_sent(&mut self) {
        self.linger_close();
    }
}

#[cfg(test)]
mod tests;
