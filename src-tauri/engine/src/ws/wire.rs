//! What sits under tungstenite on the socket's reading side: a clock of the last byte received,
//! and a reader of frame headers that refuses an oversized frame before its payload is read.
//!
//! The clock ([`Metered`], on the TCP stream below TLS) lets liveness count a large frame that
//! arrives slowly as traffic, not silence: a whole message may take longer than the liveness
//! limit on a slow link. The frame reader ([`FrameGuard`], above TLS) holds each server frame's
//! header back until it is complete, then passes the frame on, or, when it is larger than its
//! kind's limit, drops it with its payload as the bytes arrive and records it on the [`Wire`]
//! (one text or binary message in one frame, as ComfyUI always sends them). The connection stays
//! up and nothing of the refused frame is ever held: memory is one fixed read buffer per socket.
//! A fragmented message that grows past its limit cannot be cut out (its first fragments went on
//! already), so it ends the connection. Nothing here parses a payload or allocates per frame.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

/// Bytes read from below per call; the only buffer a socket's reading side owns.
const READ_CHUNK: usize = 32 << 10;
/// Refusals kept until the supervisor reports them; more are counted, not kept.
const REFUSALS_KEPT: usize = 16;

/// What the reading side of one socket saw: when its last byte arrived, and frames it refused.
#[derive(Debug)]
pub struct Wire {
    opened: Instant,
    /// Milliseconds after `opened` at which the last byte arrived.
    last_byte_ms: AtomicU64,
    refusals: Mutex<Refusals>,
    refused: Notify,
}

#[derive(Debug, Default)]
struct Refusals {
    kept: VecDeque<String>,
    /// Refusals beyond [`REFUSALS_KEPT`] not yet reported.
    more: u64,
}

impl Wire {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            last_byte_ms: AtomicU64::new(0),
            refusals: Mutex::new(Refusals::default()),
            refused: Notify::new(),
        })
    }

    /// When the last byte arrived (when the socket opened, before any did).
    pub fn last_byte(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_byte_ms.load(Ordering::Relaxed))
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis().min(u64::MAX as u128) as u64;
        self.last_byte_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn refuse(&self, what: String) {
        {
            let mut r = self.lock();
            if r.kept.len() < REFUSALS_KEPT {
                r.kept.push_back(what);
            } else {
                r.more += 1;
            }
        }
        self.refused.notify_one();
    }

    /// Resolves when a frame was refused since the last [`Wire::take_refusals`].
    pub async fn refusal(&self) {
        self.refused.notified().await;
    }

    /// What was refused since the last call: one line per frame, the surplus summed up.
    pub fn take_refusals(&self) -> Vec<String> {
        let mut r = self.lock();
        let mut out: Vec<String> = r.kept.drain(..).collect();
        if r.more > 0 {
            out.push(format!("{} more frames refused", r.more));
            r.more = 0;
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Refusals> {
        self.refusals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A stream that notes on its [`Wire`] when bytes arrive.
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    wire: Arc<Wire>,
}

impl<S> Metered<S> {
    pub fn new(inner: S, wire: Arc<Wire>) -> Self {
        Self { inner, wire }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.wire.touch();
        }
        polled
    }
}

/// Writes go straight through a reading wrapper to the stream in its `inner`.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<S: AsyncWrite + Unpin> AsyncWrite for $wrapper<S> {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().inner).poll_flush(cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}

write_through!(Metered);

/// The largest message of each kind a [`FrameGuard`] lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub text: u64,
    pub binary: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Binary => "binary",
        }
    }
}

/// [`header_end_step`] at the end of the HTTP answer's headers.
const HEADER_END: u8 = 4;

/// One byte on the way to the blank line that ends HTTP headers, which ends with `\r\n\r\n`
/// or, as the HTTP parser under tungstenite also takes, bare `\n` line ends: 0 mid-line, 1 a
/// `\r` mid-line, 2 at a line's start, 3 a `\r` at a line's start, [`HEADER_END`] done.
fn header_end_step(state: u8, b: u8) -> u8 {
    match (state, b) {
        (2 | 3, b'\n') => HEADER_END,
        (_, b'\n') => 2,
        (2, b'\r') => 3,
        (_, b'\r') => 1,
        _ => 0,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// The upgrade's HTTP answer, passed on while looking for its end (`matched`: where
    /// [`header_end_step`] is).
    Handshake { matched: u8 },
    /// Collecting a frame header in `header`.
    Header,
    /// Passing on a complete header (from byte `at`), then `payload` bytes.
    Emit { at: u8, payload: u64 },
    /// `left` payload bytes to pass on, or to drop.
    Payload { left: u64, pass: bool },
}

/// Reads server frames' headers as they go by and drops the frames over their [`Limits`].
#[derive(Debug)]
pub struct FrameGuard<S> {
    inner: S,
    wire: Arc<Wire>,
    limits: Limits,
    buf: Box<[u8]>,
    /// The bytes of `buf` read from below and not yet handled.
    start: usize,
    end: usize,
    state: Read,
    header: [u8; 14],
    header_len: u8,
    /// A fragmented data message in progress: its kind and its bytes so far.
    message: Option<(Kind, u64)>,
    /// An error found after bytes were already handed up in the same read: the next read's.
    failed: Option<io::Error>,
}

impl<S> FrameGuard<S> {
    pub fn new(inner: S, wire: Arc<Wire>, limits: Limits) -> Self {
        Self {
            inner,
            wire,
            limits,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            state: Read::Handshake { matched: 0 },
            header: [0; 14],
            header_len: 0,
            message: None,
            failed: None,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The header's full length, as far as its first bytes tell.
    fn header_needed(&self) -> u8 {
        if self.header_len < 2 {
            return 2;
        }
        let b1 = self.header[1];
        let extended = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    fn payload_len(&self) -> u64 {
        match self.header[1] & 0x7F {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        }
    }

    /// A header is complete: pass its frame on, or drop it.
    fn decide(&mut self) -> io::Result<()> {
        let fin = self.header[0] & 0x80 != 0;
        let opcode = self.header[0] & 0x0F;
        let len = self.payload_len();
        let pass = Read::Emit {
            at: 0,
            payload: len,
        };
        // Control frames (close, ping, pong) are tungstenite's to judge (at most 125 bytes).
        if opcode & 0x08 != 0 {
            self.state = pass;
            return Ok(());
        }
        let (kind, so_far) = match opcode {
            0x1 => (Kind::Text, 0),
            0x2 => (Kind::Binary, 0),
            0x0 => match self.message {
                Some(m) => m,
                // A continuation of nothing: tungstenite refuses it.
                None => {
                    self.state = pass;
                    return Ok(());
                }
            },
            // Reserved opcodes: tungstenite refuses them.
            _ => {
                self.state = pass;
                return Ok(());
            }
        };
        let total = so_far.saturating_add(len);
        let limit = match kind {
            Kind::Text => self.limits.text,
            Kind::Binary => self.limits.binary,
        };
        if total <= limit {
            self.message = (!fin).then_some((kind, total));
            self.state = pass;
            return Ok(());
        }
        let what = format!(
            "{} {} of {} refused: over the {} limit",
            kind.word(),
            if opcode == 0 || !fin {
                "message"
            } else {
                "frame"
            },
            size(total),
            size(limit)
        );
        if opcode != 0 && fin {
            // A whole message in one frame: dropped as it arrives, the connection stays up.
            self.wire.refuse(what);
            self.state = Read::Payload {
                left: len,
                pass: false,
            };
            self.header_len = 0;
            if len == 0 {
                self.state = Read::Header;
            }
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::InvalidData, what))
        }
    }
}

/// "8 MiB", "64.5 MiB", "68.4 KiB", "65 bytes".
fn size(bytes: u64) -> String {
    for (unit, name) in [(1u64 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= unit {
            // Units are powers of two: whole units have no lower bits.
            return if bytes & (unit - 1) == 0 {
                format!("{} {name}", bytes / unit)
            } else {
                format!("{:.1} {name}", bytes as f64 / unit as f64)
            };
        }
    }
    format!("{bytes} bytes")
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.failed.take() {
            return Poll::Ready(Err(e));
        }
        let before = out.filled().len();
        loop {
            if out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if let Read::Emit { at, payload } = this.state {
                let held = &this.header[usize::from(at)..usize::from(this.header_len)];
                let n = held.len().min(out.remaining());
                out.put_slice(&held[..n]);
                let at = at + n as u8;
                this.state = if at < this.header_len {
                    Read::Emit { at, payload }
                } else {
                    this.header_len = 0;
                    if payload == 0 {
                        Read::Header
                    } else {
                        Read::Payload {
                            left: payload,
                            pass: true,
                        }
                    }
                };
                continue;
            }
            if this.start == this.end {
                // Never "0 bytes read" unless the stream ended: that would read as the end.
                if out.filled().len() > before {
                    return Poll::Ready(Ok(()));
                }
                let mut below = ReadBuf::new(&mut this.buf);
                match Pin::new(&mut this.inner).poll_read(cx, &mut below) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => {
                        let n = below.filled().len();
                        if n == 0 {
                            return Poll::Ready(Ok(()));
                        }
                        this.start = 0;
                        this.end = n;
                    }
                }
                continue;
            }
            let input = &this.buf[this.start..this.end];
            match this.state {
                Read::Handshake { mut matched } => {
                    let take = input.len().min(out.remaining());
                    let mut used = take;
                    for (i, &b) in input[..take].iter().enumerate() {
                        matched = header_end_step(matched, b);
                        if matched == HEADER_END {
                            used = i + 1;
                            break;
                        }
                    }
                    out.put_slice(&input[..used]);
                    this.start += used;
                    this.state = if matched == HEADER_END {
                        Read::Header
                    } else {
                        Read::Handshake { matched }
                    };
                }
                Read::Header => {
                    let need = this.header_needed();
                    let n = usize::from(need - this.header_len).min(input.len());
                    let at = usize::from(this.header_len);
                    this.header[at..at + n].copy_from_slice(&input[..n]);
                    this.header_len += n as u8;
                    this.start += n;
                    // The first two bytes may tell that more header follows.
                    if this.header_len == need && this.header_needed() == need {
                        if let Err(e) = this.decide() {
                            if out.filled().len() == before {
                                return Poll::Ready(Err(e));
                            }
                            this.failed = Some(e);
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
                Read::Payload { left, pass } => {
                    let mut n = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    if pass {
                        n = n.min(out.remaining());
                        out.put_slice(&input[..n]);
                    }
                    this.start += n;
                    let left = left - n as u64;
                    this.state = if left == 0 {
                        Read::Header
                    } else {
                        Read::Payload { left, pass }
                    };
                }
                // Handled before any input is looked at.
                Read::Emit { .. } => {}
            }
        }
    }
}

write_through!(FrameGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const HANDSHAKE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    const LIMITS: Limits = Limits {
        text: 64,
        binary: 1024,
    };

    /// A server frame: FIN set, unmasked, with the shortest length encoding.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= usize::from(u16::MAX) => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    /// Gives its bytes `step` at a time, as a slow link does.
    struct Dribble<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl AsyncRead for Dribble<'_> {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let n = this.step.min(this.bytes.len()).min(buf.remaining());
            buf.put_slice(&this.bytes[..n]);
            this.bytes = &this.bytes[n..];
            Poll::Ready(Ok(()))
        }
    }

    async fn through(input: &[u8], step: usize) -> (io::Result<Vec<u8>>, Vec<String>) {
        let wire = Wire::new();
        let mut guard = FrameGuard::new(Dribble { bytes: input, step }, wire.clone(), LIMITS);
        let mut out = Vec::new();
        let read = guard.read_to_end(&mut out).await.map(|_| out);
        (read, wire.take_refusals())
    }

    #[tokio::test]
    async fn frames_within_their_limits_pass_unchanged_however_the_bytes_arrive() {
        let mut input = HANDSHAKE.to_vec();
        input.extend(frame(true, 0x1, &[b'a'; 64]));
        input.extend(frame(false, 0x2, &[1; 600]));
        input.extend(frame(true, 0x9, b"ping"));
        input.extend(frame(true, 0x0, &[2; 424]));
        input.extend(frame(true, 0x1, b""));
        for step in [1, 2, 3, 7, 100, 1 << 20] {
            let (out, refused) = through(&input, step).await;
            assert_eq!(out.unwrap(), input, "step {step}");
            assert!(refused.is_empty());
        }
    }

    #[tokio::test]
    async fn an_answer_whose_headers_end_in_bare_line_feeds_still_has_its_frames_guarded() {
        let handshake: &[u8] = b"HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n";
        let small = frame(true, 0x1, b"{}");
        let mut input = handshake.to_vec();
        input.extend(frame(true, 0x1, &[b'x'; 65]));
        input.extend(&small);
        let mut expected = handshake.to_vec();
        expected.extend(&small);
        for step in [1, 3, 1 << 20] {
            let (out, refused) = through(&input, step).await;
            assert_eq!(out.unwrap(), expected, "step {step}");
            assert_eq!(refused.len(), 1, "step {step}");
        }
        // A line end inside the headers ends nothing; a mixed blank line does.
        let end = |bytes: &[u8]| {
            bytes
                .iter()
                .try_fold(0, |state, &b| match header_end_step(state, b) {
                    HEADER_END => Err(()),
                    next => Ok(next),
                })
                .is_err()
        };
        assert!(!end(b"HTTP/1.1 101 OK\r\nA: b\r\n"));
        assert!(!end(b"A: b\r\r\n"));
        assert!(end(b"A: b\r\n\r\n"));
        assert!(end(b"A: b\n\n"));
        assert!(end(b"A: b\r\n\n"));
        assert!(end(b"A: b\n\r\n"));
    }

    #[tokio::test]
    async fn a_frame_over_its_limit_is_dropped_unread_and_the_next_one_passes() {
        let mut input = HANDSHAKE.to_vec();
        let small = frame(true, 0x1, b"{}");
        input.extend(frame(true, 0x1, &[b'x'; 65]));
        input.extend(&small);
        input.extend(frame(true, 0x2, &[0; 70_000]));
        input.extend(&small);
        let mut expected = HANDSHAKE.to_vec();
        expected.extend(&small);
        expected.extend(&small);
        for step in [1, 5, 4096, 1 << 20] {
            let (out, refused) = through(&input, step).await;
            assert_eq!(out.unwrap(), expected, "step {step}");
            assert_eq!(
                refused,
                [
                    "text frame of 65 bytes refused: over the 64 bytes limit",
                    "binary frame of 68.4 KiB refused: over the 1 KiB limit"
                ],
                "step {step}"
            );
        }
    }

    #[tokio::test]
    async fn a_fragmented_message_that_grows_past_its_limit_ends_the_connection() {
        let mut input = HANDSHAKE.to_vec();
        input.extend(frame(false, 0x1, &[b'a'; 40]));
        input.extend(frame(true, 0x0, &[b'a'; 40]));
        let (out, _) = through(&input, 1 << 20).await;
        let e = out.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("text message"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn every_byte_read_moves_the_clock() {
        let wire = Wire::new();
        let bytes = [0u8; 10];
        let mut metered = Metered::new(&bytes[..], wire.clone());
        tokio::time::advance(Duration::from_secs(5)).await;
        let mut buf = [0u8; 4];
        metered.read_exact(&mut buf).await.unwrap();
        assert_eq!(wire.last_byte().elapsed(), Duration::ZERO);
    }
}
