//! The two WebSocket streams: brokerage updates and market data.
//!
//! - [`BrokerageStream`] (`wss://stream.connecttrade.com`): order, position and balance
//!   updates of every user of the platform, on one connection authenticated with the
//!   platform credentials.
//! - [`MarketDataStream`] (`wss://mdstream.connecttrade.com`): quotes, trades, bars, depth and
//!   options chains from one user's broker connection, authenticated with the token of
//!   `GET /connections/{connection_id}/token`.
//!
//! Both are built to survive real networks. One task owns the socket and keeps the set of
//! subscriptions you asked for (`subscriptions()` on either stream). Reconnection uses
//! exponential backoff with jitter ([`Backoff`]) and is never silent: the stream yields
//! [`ConnectionEvent`]s (`Connected`, `Reconnecting { attempt, delay, reason }`,
//! `Reconnected { gap }`). The client pings and replaces a connection that stays silent for
//! the idle timeout. Buffers are bounded: at most [`StreamConfig::buffer`] data events wait,
//! and a consumer that falls behind sees `Lagged { dropped }` (or, configured with
//! [`Overflow::Backpressure`], slows the socket down instead). Refused authentication and a
//! replaced session end the stream with `ConnectionEvent::Terminated` and a clear
//! [`StreamError`], with no reconnect storm.
//!
//! # The handshake, and the order of events
//!
//! Connect Trade documents a welcome on the brokerage stream only and a reply to
//! `authenticate` on neither, so nothing here waits for either. On every (re)connect:
//!
//! 1. connect; wait for the welcome at most [`StreamConfig::grace`] (default 500 ms);
//! 2. send `authenticate`; it is accepted on an explicit reply, on the first data or
//!    subscription reply, or after a quiet grace period. An `error` message or close code
//!    4001 in reply is a refusal: terminal (`connect()` fails on the first attempt,
//!    `Terminated(AuthRejected)` later). `connect()` returns here, on the first session;
//! 3. replay the subscriptions: every brokerage topic in a frame of its own, market data
//!    symbols in frames of [`DEFAULT_SYMBOLS_PER_FRAME`];
//! 4. emit `Connected` (first session) or `Reconnected` once every replayed frame is
//!    answered, or once a grace period passed without a new answer. Messages that arrive
//!    before are delivered before it, in the order received: a REST read started on
//!    `Reconnected` covers them.
//!
//! What the consumer sees for one connection, then: [`Subscribed`/`Refused`/data in the order
//! received] → `Connected` or `Reconnected` → data …; after a drop, `Reconnecting`, then the
//! same again. A server without a welcome or an authentication reply only adds the grace
//! periods.
//!
//! # What the server refuses
//!
//! An `error` (code `invalid_request`, or no code) answers the oldest unanswered subscribe
//! frame: servers answer a connection's requests in order. A refused topic, or a refused
//! frame of one symbol, leaves the subscription set and is reported as a `Refused` event with
//! the server's message. A refused frame of several symbols is sent again without the symbols
//! the message names, or, if it names none, in two halves, until the refused symbols are
//! alone: one bad item never takes good ones with it, and nothing the server accepted is
//! ever dropped from the replay.
//!
//! # Decoding
//!
//! Our reconstruction of the messages may be wrong, so it never hides data: a message whose
//! `type` is unknown, or known but with a body of another shape, is an `Unknown` event holding
//! the JSON (the latter with a `tracing` warning). Only a frame that is not JSON or has no
//! `type` is an `Error` event, and the stream goes on.
//!
//! # Security
//!
//! `wss://` verifies certificates with the platform's verifier, as the REST client does.
//! Messages and frames are limited (default [`DEFAULT_MAX_MESSAGE_SIZE`]). At TRACE level the
//! WebSocket library logs every frame, secrets included: the streams warn once when that level
//! is on; set the filter `tungstenite=debug`.
//!
//! Streams are `futures::Stream`s of events, and also have an inherent `next()`. Their
//! subscribe/unsubscribe methods work at any time, connected or not, and a cloneable handle
//! controls a stream from another task.
//!
//! The messages on the wire are in [`protocol`] (our reconstruction: Connect Trade does not
//! publish them where we can read them).

mod brokerage;
mod config;
mod connection;
mod error;
mod market_data;
pub mod protocol;
mod queue;

use std::time::Duration;

pub use brokerage::{BrokerageEvent, BrokerageHandle, BrokerageStream, BrokerageStreamBuilder};
pub use config::{Backoff, DEFAULT_GRACE, DEFAULT_MAX_MESSAGE_SIZE, Overflow, StreamConfig};
pub use error::StreamError;
pub use market_data::{
    DEFAULT_SYMBOLS_PER_FRAME, MarketDataEvent, MarketDataHandle, MarketDataStream,
    MarketDataStreamBuilder, SnapshotRequest,
};

/// The production brokerage stream.
pub const BROKERAGE_STREAM_URL: &str = "wss://stream.connecttrade.com";
/// The production market data stream.
pub const MARKET_DATA_STREAM_URL: &str = "wss://mdstream.connecttrade.com";

/// The life of a stream's connection, delivered in order with the data.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The first session is up: authenticated, and every subscription answered by the
    /// server (or a grace period passed without an answer).
    Connected,
    /// The connection ended; the next attempt starts after `delay`.
    Reconnecting {
        /// Consecutive attempts so far (1 for the first retry).
        attempt: u32,
        /// How long until the attempt.
        delay: Duration,
        /// Why the connection ended (or the previous attempt failed).
        reason: StreamError,
    },
    /// A session is up again: authenticated, and every subscription replayed and answered
    /// (or a grace period passed without an answer), so a REST read started now does not
    /// race the replay. Data of the `gap` was missed (brokerage: refetch from REST what
    /// matters).
    Reconnected {
        /// How long the stream was down.
        gap: Duration,
    },
    /// Closed by `close()`, or because every handle was dropped. The last event.
    Closed,
    /// Ended by a terminal error (authentication refused, session replaced, …). The last
    /// event.
    Terminated(StreamError),
}

/// Checks a stream URL: `wss://`, or `ws://` to loopback only.
fn stream_url(text: &str) -> Result<url::Url, StreamError> {
    let url = crate::client::parse_base_url(text).map_err(|error| match error {
        crate::Error::Config(message) => StreamError::Config(message),
        other => StreamError::Config(other.to_string()),
    })?;
    match url.scheme() {
        "wss" | "ws" => Ok(url),
        other => Err(StreamError::Config(format!(
            "stream URL {text:?} has scheme {other:?}; expected wss (or ws to loopback)"
        ))),
    }
}

/// Encodes a message we built; they contain only strings, numbers and maps with string
/// keys, so encoding cannot fail.
fn encode<T: serde::Serialize>(message: &T) -> String {
    serde_json::to_string(message).unwrap_or_default()
}
