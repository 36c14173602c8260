//! Timings, buffers and reconnection of a stream.

use std::time::Duration;

/// Reconnection delays: exponential, bounded, with jitter.
///
/// The delay before attempt `n` (1-based) is drawn uniformly from `[b/2, b]`, where
/// `b = min(initial × 2^(n-1), max)`: it grows visibly, never exceeds `max`, and many clients
/// dropped at once do not come back in lock-step.
///
/// ```
/// use std::time::Duration;
/// use connect_trade::stream::Backoff;
///
/// let backoff = Backoff::default();
/// let third = backoff.delay(3);
/// assert!(third >= Duration::from_secs(1) && third <= Duration::from_secs(2));
/// assert!(backoff.delay(100) <= backoff.max);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The delay window of the first attempt (default 500 ms).
    pub initial: Duration,
    /// The largest delay window (default 30 s).
    pub max: Duration,
    /// A connection that stayed up at least this long resets the attempt count (default 30 s),
    /// so a server that accepts and then drops at once is not hammered.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before reconnection attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let window = self
            .initial
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.max);
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(nanos / 2 + fastrand::u64(0..=nanos - nanos / 2))
    }
}

/// What happens when the consumer does not keep up with the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Newest data events are dropped while the buffer is full, and the consumer then sees a
    /// `Lagged { dropped }` event at the place of the gap. Connection events and errors are
    /// kept (up to a bound) and delivered in order. The socket is always read, so pings,
    /// control replies and the idle timer keep working. The default: right for market data,
    /// where a fresh quote is worth more than an old one.
    #[default]
    Lag,
    /// Nothing is dropped: the connection task waits for the consumer, and the server sees a
    /// slow reader (TCP back-pressure). Right for brokerage updates, where every update
    /// matters, as long as the consumer is never stalled for long (a stalled consumer also
    /// stalls pings and request replies).
    Backpressure,
}

/// The configuration shared by both streams. Every timing is adjustable, so tests can run
/// in milliseconds.
///
/// ```
/// use std::time::Duration;
/// use connect_trade::stream::{Overflow, StreamConfig};
///
/// let config = StreamConfig::default()
///     .idle_timeout(Duration::from_secs(20))
///     .buffer(4096)
///     .overflow(Overflow::Backpressure);
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct StreamConfig {
    pub(crate) handshake_timeout: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) buffer: usize,
    pub(crate) overflow: Overflow,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) grace: Duration,
    pub(crate) max_message_size: usize,
    pub(crate) max_frame_size: usize,
}

/// The default [`StreamConfig::grace`]: 500 ms.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(500);

/// The default [`StreamConfig::max_message_size`] and [`StreamConfig::max_frame_size`]:
/// 4 MiB.
///
/// The largest legitimate messages are replies listing many items: a `subscriptions` reply
/// for 50,000 option symbols is about 1.5 MB, a `snapshot` of 1,000 bars about 200 KB; an
/// order update with its fills is a few KB. 4 MiB leaves room above all of them while a
/// misbehaving server (or a man in the middle) can no longer make the client buffer the
/// 64 MiB the WebSocket library would otherwise accept. Servers send a message as one frame,
/// so the frame limit is the same.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 << 20;

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(40),
            request_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            buffer: 1024,
            overflow: Overflow::Lag,
            max_attempts: None,
            grace: DEFAULT_GRACE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_frame_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// The shortest timing accepted (a zero interval would spin).
const MIN_TIMING: Duration = Duration::from_millis(1);

impl StreamConfig {
    /// How long connecting, the welcome and the authentication reply may take together
    /// (default 10 s; the server's own window to authenticate is 30 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout.max(MIN_TIMING);
        self
    }

    /// How often the client sends a WebSocket ping (default 15 s).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval.max(MIN_TIMING);
        self
    }

    /// How long the connection may stay silent (no message, no pong) before it is presumed
    /// dead and replaced (default 40 s). Keep it a few ping intervals long.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.max(MIN_TIMING);
        self
    }

    /// How long `list_subscriptions` and `snapshot` wait for their reply (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(MIN_TIMING);
        self
    }

    /// The reconnection delays (default [`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How many data events may wait for the consumer (default 1024, at least 1): at most
    /// this many, counting those the stream has already taken from the connection task but
    /// not yet handed out. Connection events and errors are never dropped for lack of room (a
    /// bounded headroom of 256 above the buffer is kept for them).
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = events.max(1);
        self
    }

    /// What happens when the buffer is full (default [`Overflow::Lag`]).
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// How long the client waits for messages Connect Trade does not document but may send
    /// (default [`DEFAULT_GRACE`]):
    ///
    /// - the welcome: `authenticate` is sent when it arrives, or after this long without one;
    /// - the reply to `authenticate`: success is an explicit reply, the first data or
    ///   subscription reply, or this long without an error or a close;
    /// - the replies to the subscriptions replayed on a (re)connect: `Connected` /
    ///   `Reconnected` is emitted when all are answered, or once this long passed without a
    ///   new reply.
    ///
    /// Each wait also ends at the handshake timeout.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace.max(MIN_TIMING);
        self
    }

    /// The largest message accepted from the server (default [`DEFAULT_MAX_MESSAGE_SIZE`], at
    /// least 1 KiB). A larger one ends the connection (the `Reconnecting` reason says so) and
    /// the stream reconnects.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes.max(1024);
        self
    }

    /// The largest WebSocket frame accepted from the server (default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`], at least 1 KiB).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes.max(1024);
        self
    }

    /// Gives up (terminally, with `StreamError::GaveUp`) after this many consecutive failed
    /// reconnection attempts (default: never). A connection that lasted less than
    /// [`Backoff::reset_after`] does not reset the count.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }
}
