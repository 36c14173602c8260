//! What the mirror consumes (updates and connection events) and what it reports (changes).

use std::sync::Arc;

use crate::{
    rest::types::{Balance, Order, Position},
    stream::{
        BrokerageEvent, ConnectionEvent,
        protocol::{BrokerageMessage, UpdateMeta},
    },
};

/// One incremental update of the brokerage stream, decoded: an order, a position or a
/// balance as it is now, with whose it is.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// One changed order.
    Order {
        /// Whose, when, and its place in the session.
        meta: UpdateMeta,
        /// The order as it is now.
        order: Arc<Order>,
    },
    /// One changed position (quantity 0: closed, removed from the mirror).
    Position {
        /// Whose, when, and its place in the session.
        meta: UpdateMeta,
        /// The position as it is now.
        position: Arc<Position>,
    },
    /// One changed balance.
    Balance {
        /// Whose, when, and its place in the session.
        meta: UpdateMeta,
        /// The balance as it is now.
        balance: Arc<Balance>,
    },
}

impl Update {
    /// The update a brokerage stream message carries, if it is one (`order`, `position`,
    /// `balance`); `None` for the session's other messages.
    pub fn from_message(message: BrokerageMessage) -> Option<Update> {
        match message {
            BrokerageMessage::Order { meta, data } => Some(Update::Order {
                meta,
                order: Arc::new(*data),
            }),
            BrokerageMessage::Position { meta, data } => Some(Update::Position {
                meta,
                position: Arc::new(*data),
            }),
            BrokerageMessage::Balance { meta, data } => Some(Update::Balance {
                meta,
                balance: Arc::new(*data),
            }),
            _ => None,
        }
    }

    /// Whose, when, and its place in the session.
    pub fn meta(&self) -> &UpdateMeta {
        match self {
            Update::Order { meta, .. }
            | Update::Position { meta, .. }
            | Update::Balance { meta, .. } => meta,
        }
    }

    /// The user the update belongs to.
    pub fn user_id(&self) -> &str {
        &self.meta().user_id
    }
}

/// What the mirror is fed: updates, and the stream's connection events (so it knows when
/// updates may have been lost).
#[derive(Clone, Debug, PartialEq)]
pub enum FeedEvent {
    /// An update.
    Update(Update),
    /// The stream dropped: updates may be lost until it is back. The mirror marks every user
    /// stale.
    Disconnected,
    /// The stream is back (re-authenticated, re-subscribed). The mirror reconciles every user
    /// over REST, buffering the updates that race the reads.
    Reconnected,
    /// Updates were dropped on the way (a consumer fell behind) while the connection stayed
    /// up. The mirror marks every user stale and reconciles as after a reconnect.
    Lagged,
}

impl FeedEvent {
    /// What a [`BrokerageStream`](crate::stream::BrokerageStream) event means to the mirror:
    /// updates are updates; `Reconnecting` is a gap starting ([`Disconnected`]); `Connected`
    /// and `Reconnected` are a session up, after which every user is (re)loaded over REST
    /// ([`Reconnected`]); `Lagged` is updates dropped locally ([`Lagged`]). Other events
    /// (subscription acknowledgements, errors, unknown messages) mean nothing to it.
    ///
    /// [`Disconnected`]: FeedEvent::Disconnected
    /// [`Reconnected`]: FeedEvent::Reconnected
    /// [`Lagged`]: FeedEvent::Lagged
    pub fn from_brokerage(event: BrokerageEvent) -> Option<FeedEvent> {
        Some(match event {
            BrokerageEvent::Order { meta, order } => FeedEvent::Update(Update::Order {
                meta,
                order: Arc::new(*order),
            }),
            BrokerageEvent::Position { meta, position } => FeedEvent::Update(Update::Position {
                meta,
                position: Arc::new(*position),
            }),
            BrokerageEvent::Balance { meta, balance } => FeedEvent::Update(Update::Balance {
                meta,
                balance: Arc::new(*balance),
            }),
            BrokerageEvent::Connection(ConnectionEvent::Reconnecting { .. }) => {
                FeedEvent::Disconnected
            }
            BrokerageEvent::Connection(
                ConnectionEvent::Connected | ConnectionEvent::Reconnected { .. },
            ) => FeedEvent::Reconnected,
            BrokerageEvent::Lagged { .. } => FeedEvent::Lagged,
            _ => return None,
        })
    }
}

impl From<Update> for FeedEvent {
    fn from(update: Update) -> Self {
        FeedEvent::Update(update)
    }
}

/// What happened to one update given to [`Portfolio::apply`](super::Portfolio::apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The mirror changed.
    Changed,
    /// The mirror already had this state (a repeat).
    Unchanged,
    /// The update is older than the state it would replace, and was ignored.
    Stale,
    /// The user is not in this portfolio (and no resolver is set, or it declined).
    UnknownUser,
}

/// A change of the mirror, as broadcast by [`Portfolio::changes`](super::Portfolio::changes).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// An order changed.
    Order {
        /// The user.
        user_id: String,
        /// The account.
        account_id: String,
        /// The order.
        order_id: String,
    },
    /// A position changed (or closed).
    Position {
        /// The user.
        user_id: String,
        /// The account.
        account_id: String,
        /// The position's symbol.
        symbol: String,
    },
    /// A balance changed.
    Balance {
        /// The user.
        user_id: String,
        /// The account.
        account_id: String,
    },
    /// The stream dropped: the mirror may miss updates until it reconciles.
    Stale,
    /// A user's state was (re)loaded over REST: the initial snapshot, or a reconciliation
    /// after a gap.
    Loaded {
        /// The user.
        user_id: String,
        /// How many orders, positions, balances and accounts the REST read changed, added or
        /// removed compared with the mirror (0: nothing was missed).
        corrected: usize,
        /// Whether the user's state is now known to be current (no gap since this load
        /// began).
        current: bool,
    },
    /// Loading a user's state over REST failed; the mirror keeps what it had.
    LoadFailed {
        /// The user.
        user_id: String,
        /// What went wrong.
        error: String,
    },
}
