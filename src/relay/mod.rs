//! One brokerage stream session shared by many machines, through NATS JetStream (feature
//! `relay`).
//!
//! Connect Trade allows **one brokerage stream session per credential pair**: a new session
//! ends the previous one. A backend running on several machines cannot let each open a
//! [`BrokerageStream`](crate::stream::BrokerageStream): they would knock each other off
//! forever. The relay elects one holder of the session and fans its updates out to every
//! instance:
//!
//! - **One holder.** Every [`Relay`] instance competes for a lease, one key in a JetStream
//!   key-value bucket whose entries live [`RelayConfig::ttl`]. The holder renews it well
//!   inside the TTL (every quarter of it); the others try to create the key, which succeeds
//!   only once it has lapsed. A holder that has not renewed for half the TTL closes its
//!   Connect Trade session and steps down, so the session is closed before the lease can
//!   lapse and anyone else can take over. The lease's revision at acquisition is the holder's
//!   **fencing token**; it grows with every new holder.
//! - **Every update once.** Each order, position and balance update goes to a JetStream
//!   stream on `connect-trade.<topic>.<user_id>.<account_id>` with the fencing token in the
//!   `Connect-Trade-Fence` header and a message id (`Nats-Msg-Id`) derived from its content,
//!   so a republished duplicate is dropped by JetStream.
//! - **Gaps are explicit.** After every reconnect of its session and on every change of
//!   holder, the holder publishes a [`GapMarker`] on `connect-trade.gap` (from when to when
//!   updates may be missing) before any update of the new session.
//! - **Consumers.** A [`RelayStream`] yields the same [`BrokerageEvent`]s as a
//!   `BrokerageStream`: a gap marker becomes `Reconnecting` then `Reconnected { gap }`, and
//!   messages of an older holder (a smaller fencing token) are dropped. So
//!   [`Portfolio::follow`](crate::portfolio::Portfolio::follow) takes it as it is, and
//!   re-reads REST after every gap.
//!
//! Only JetStream features of NATS server 2.9 are used (key-value buckets with a bucket-wide
//! TTL, message ids, pull consumers with one filter subject).
//!
//! ```no_run
//! # async fn demo(platform: connect_trade::ConnectTrade) -> Result<(), Box<dyn std::error::Error>> {
//! use connect_trade::relay::{Relay, RelayConfig, RelayStream};
//!
//! let nats = async_nats::connect("nats://127.0.0.1:4222").await?;
//! // On every machine: one of them holds the session, the others stand by.
//! let relay = Relay::builder(platform.credentials().clone(), nats.clone()).build();
//! tokio::spawn(relay.run(async { let _ = tokio::signal::ctrl_c().await; }));
//!
//! // Anywhere: the updates of alice, as a BrokerageStream would give them.
//! let mut updates = RelayStream::builder(nats).user("alice").connect().await?;
//! while let Some(event) = updates.next().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! [`BrokerageEvent`]: crate::stream::BrokerageEvent

mod consumer;
mod holder;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use consumer::{RelayStream, RelayStreamBuilder};
pub use holder::{Relay, RelayBuilder, RelayEvent};

use crate::stream::protocol::Topic;

/// The header carrying the publishing holder's fencing token (its lease revision).
pub const FENCE_HEADER: &str = "Connect-Trade-Fence";
/// The header naming the publishing holder (its instance name).
pub const HOLDER_HEADER: &str = "Connect-Trade-Holder";

/// Where the relay keeps its lease and its updates. Every instance and every consumer of one
/// platform must use the same values.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The first token of every subject (default `connect-trade`).
    pub prefix: String,
    /// The JetStream stream of updates (default `CONNECT_TRADE`), on subjects `<prefix>.>`.
    pub stream: String,
    /// The key-value bucket of the lease (default `connect-trade-relay`).
    pub bucket: String,
    /// The lease's key (default `holder`).
    pub key: String,
    /// How long a lease lives without renewal (default 10 s; at least 1 s). The holder renews
    /// every quarter of it and steps down after half of it without a renewal; a new holder
    /// takes over within about one TTL of the old one's death.
    pub ttl: Duration,
    /// How long the stream keeps updates (default 24 h): how far back a durable consumer can
    /// resume.
    pub max_age: Duration,
    /// How long JetStream remembers message ids to drop duplicates (default 2 min).
    pub duplicate_window: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            prefix: "connect-trade".to_string(),
            stream: "CONNECT_TRADE".to_string(),
            bucket: "connect-trade-relay".to_string(),
            key: "holder".to_string(),
            ttl: Duration::from_secs(10),
            max_age: Duration::from_secs(24 * 3600),
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl RelayConfig {
    /// The lease TTL actually used (at least 1 s).
    pub(crate) fn lease_ttl(&self) -> Duration {
        self.ttl.max(Duration::from_secs(1))
    }

    /// The subject of one update.
    pub fn update_subject(&self, topic: &Topic, user_id: &str, account_id: &str) -> String {
        format!(
            "{}.{}.{}.{}",
            self.prefix,
            subject_token(topic.as_str()),
            subject_token(user_id),
            subject_token(account_id)
        )
    }

    /// The subject of gap markers.
    pub fn gap_subject(&self) -> String {
        format!("{}.gap", self.prefix)
    }

    /// Creates the updates stream if it does not exist yet (relays and consumers both call
    /// it, whichever starts first).
    pub(crate) async fn ensure_stream(
        &self,
        js: &async_nats::jetstream::Context,
    ) -> Result<async_nats::jetstream::stream::Stream, RelayError> {
        use async_nats::jetstream::stream;
        let config = stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.prefix)],
            max_age: self.max_age,
            duplicate_window: self.duplicate_window,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        js.get_or_create_stream(config)
            .await
            .map_err(|e| RelayError::nats(format!("creating the stream {:?}", self.stream), e))
    }
}

/// A subject token for an id: characters outside `[A-Za-z0-9_-]` (dots, wildcards, spaces…)
/// are written `%XX`, so any id gives exactly one token; an empty id gives `%`.
pub fn subject_token(id: &str) -> String {
    if id.is_empty() {
        return "%".to_string();
    }
    let mut token = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            token.push(byte as char);
        } else {
            token.push_str(&format!("%{byte:02X}"));
        }
    }
    token
}

/// Why updates may be missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GapReason {
    /// A new holder took over (or the first one started).
    HolderChange,
    /// The holder's session reconnected.
    Reconnect,
    /// The holder dropped updates locally.
    Lagged,
}

/// A gap marker: updates between `from` and `to` may be missing; re-read REST.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GapMarker {
    /// Since when updates may be missing (`None`: unknown, possibly since ever).
    pub from: Option<DateTime<Utc>>,
    /// Until when: the new session is up and subscribed from here on.
    pub to: DateTime<Utc>,
    /// Why.
    pub reason: GapReason,
    /// The holder that published it.
    pub holder: String,
    /// Its fencing token.
    pub fence: u64,
}

impl GapMarker {
    /// How long the gap lasted, as far as known (zero when `from` is unknown).
    pub fn duration(&self) -> Duration {
        self.from
            .and_then(|from| (self.to - from).to_std().ok())
            .unwrap_or_default()
    }
}

/// What can go wrong in the relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// NATS or JetStream refused or failed an operation.
    #[error(
        "NATS: {what} failed: {message}. Is the server running with JetStream (`nats-server -js`)?"
    )]
    Nats {
        /// What the relay was doing.
        what: String,
        /// What NATS said.
        message: String,
    },
    /// The Connect Trade session ended for good (credentials refused, or a session outside
    /// the relay replaced it).
    #[error("the brokerage stream ended: {0}")]
    Stream(#[from] crate::stream::StreamError),
    /// The configuration cannot work.
    #[error("relay configuration error: {0}")]
    Config(String),
}

impl RelayError {
    pub(crate) fn nats(what: impl Into<String>, error: impl std::fmt::Display) -> Self {
        RelayError::Nats {
            what: what.into(),
            message: error.to_string(),
        }
    }
}

/// A 128-bit FNV-1a hash: stable across processes, machines and Rust versions, so two
/// holders derive the same message id from the same update.
pub(crate) fn fnv128(parts: &[&[u8]]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut hash = OFFSET;
    for part in parts {
        for byte in part.iter().chain(&(part.len() as u64).to_le_bytes()) {
            hash ^= u128::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_single_subject_tokens() {
        assert_eq!(subject_token("alice"), "alice");
        assert_eq!(subject_token("a.b *>"), "a%2Eb%20%2A%3E");
        assert_eq!(subject_token(""), "%");
        let config = RelayConfig::default();
        assert_eq!(
            config.update_subject(&Topic::Orders, "u.1", "acct_1"),
            "connect-trade.orders.u%2E1.acct_1"
        );
    }

    #[test]
    fn the_message_hash_is_stable_and_separates_parts() {
        assert_eq!(fnv128(&[b"ab", b"c"]), fnv128(&[b"ab", b"c"]));
        assert_ne!(fnv128(&[b"ab", b"c"]), fnv128(&[b"a", b"bc"]));
    }
}
