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
//! subscriptions you asked for; on every (re)connect it does connect → welcome → authenticate
//! → replay the subscriptions. Reconnection uses exponential backoff with jitter
//! ([`Backoff`]) and is never silent: the stream yields [`ConnectionEvent`]s
//! (`Connected`, `Reconnecting { attempt, delay, reason }`, `Reconnected { gap }`). The
//! client pings and replaces a connection that stays silent for the idle timeout. Buffers
//! are bounded: a consumer that falls behind sees `Lagged { dropped }` (or, configured with
//! [`Overflow::Backpressure`], slows the socket down instead). Refused authentication and a
//! replaced session end the stream with `ConnectionEvent::Terminated` and a clear
//! [`StreamError`], with no reconnect storm. A frame that cannot be decoded is an `Error`
//! event and the stream goes on; a message type this SDK does not know is an `Unknown`
//! event holding the JSON.
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
pub use config::{Backoff, Overflow, StreamConfig};
pub use error::StreamError;
pub use market_data::{
    MarketDataEvent, MarketDataHandle, MarketDataStream, MarketDataStreamBuilder, SnapshotRequest,
};

/// The production brokerage stream.
pub const BROKERAGE_STREAM_URL: &str = "wss://stream.connecttrade.com";
/// The production market data stream.
pub const MARKET_DATA_STREAM_URL: &str = "wss://mdstream.connecttrade.com";

/// The life of a stream's connection, delivered in order with the data.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The first session is up: authenticated and subscriptions sent.
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
    /// A session is up again: authenticated and every subscription replayed. Data of the
    /// `gap` was missed (brokerage: refetch from REST what matters).
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
