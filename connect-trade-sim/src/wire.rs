//! Wire variants: other shapes of the same answers, so a client can be tested against the
//! ways Connect Trade might really write them (`Simulator::builder().wire(Wire::X)`,
//! `connect-trade-sim --wire name[,name]`).
//!
//! This file only names the variants and keeps the set of those switched on ([`WireSet`],
//! readable everywhere as `shared.config.wire.contains(Wire::X)`); each variant's behaviour
//! lives with the part of the simulator it changes (REST handlers, WebSocket session).

use std::{fmt, str::FromStr};

/// A variant of the simulator's wire format, switched on with
/// [`SimulatorBuilder::wire`](crate::SimulatorBuilder::wire) or `--wire name`.
///
/// Without any, the simulator answers in the shapes Connect Trade's documentation publishes.
///
/// ```
/// use connect_trade_sim::Wire;
///
/// let wire: Wire = "orders-envelope".parse().unwrap();
/// assert_eq!(wire, Wire::OrdersEnvelope);
/// assert_eq!(wire.name(), "orders-envelope");
/// assert!("orders-envelop".parse::<Wire>().is_err());
/// // Every variant is of the REST API or of the streams.
/// assert_eq!(Wire::ALL.len(), Wire::REST.len() + Wire::STREAM.len());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Wire {
    /// REST: `GET /accounts/{id}/orders` answers the envelope
    /// `{orders, next_cursor, prev_cursor}` instead of a bare JSON array.
    OrdersEnvelope,
    /// REST: orders carry only the fields Connect Trade's cookbook reads.
    OrdersMinimal,
    /// REST: 201 on create, 204 with an empty body on delete.
    Created204,
    /// REST: the market data token as `token` without `expires_at`.
    TokenPlain,
    /// Streams: no `welcome` message after the connection opens (the market data stream's
    /// welcome is nowhere in the documentation).
    NoWelcome,
    /// Streams: no `authenticated` reply to a successful `authenticate` (documented on
    /// neither stream): the next message is the first answer to a subscription.
    NoAuthenticated,
    /// Streams: the brokerage updates' `sequence` written as a string of digits (`"7"`).
    StringSequence,
    /// Streams: `error` messages carry only `type` and `message` (no `code`, no
    /// `request_id`).
    ErrorMessageOnly,
    /// Streams: every message, and every update's `data`, carries a field the protocol does
    /// not know (`sim_extra`, an object).
    ExtraField,
    /// Streams: messages lack fields the payload repeats or that say when: updates come
    /// without the top-level `user_id`, `account_id` and `timestamp`, quotes, trades and
    /// depth without `timestamp`, the welcome without its `message`.
    MissingField,
}

impl Wire {
    /// Every variant, in declaration order.
    pub const ALL: &'static [Wire] = &[
        Wire::OrdersEnvelope,
        Wire::OrdersMinimal,
        Wire::Created204,
        Wire::TokenPlain,
        Wire::NoWelcome,
        Wire::NoAuthenticated,
        Wire::StringSequence,
        Wire::ErrorMessageOnly,
        Wire::ExtraField,
        Wire::MissingField,
    ];

    /// The variants of the REST API's answers.
    pub const REST: &'static [Wire] = &[
        Wire::OrdersEnvelope,
        Wire::OrdersMinimal,
        Wire::Created204,
        Wire::TokenPlain,
    ];

    /// The variants of the two WebSocket streams' messages.
    pub const STREAM: &'static [Wire] = &[
        Wire::NoWelcome,
        Wire::NoAuthenticated,
        Wire::StringSequence,
        Wire::ErrorMessageOnly,
        Wire::ExtraField,
        Wire::MissingField,
    ];

    /// The kebab-case name (`orders-envelope`), as `--wire` and [`FromStr`] take it.
    pub fn name(self) -> &'static str {
        match self {
            Wire::OrdersEnvelope => "orders-envelope",
            Wire::OrdersMinimal => "orders-minimal",
            Wire::Created204 => "created-204",
            Wire::TokenPlain => "token-plain",
            Wire::NoWelcome => "no-welcome",
            Wire::NoAuthenticated => "no-authenticated",
            Wire::StringSequence => "string-sequence",
            Wire::ErrorMessageOnly => "error-message-only",
            Wire::ExtraField => "extra-field",
            Wire::MissingField => "missing-field",
        }
    }

    /// The position of the variant in [`Wire::ALL`]: its bit in a [`WireSet`].
    fn bit(self) -> u32 {
        Wire::ALL
            .iter()
            .position(|w| *w == self)
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(0)
    }
}

impl fmt::Display for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`Wire`] variant; its message lists the valid names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownWire(pub String);

impl fmt::Display for UnknownWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Wire::ALL.iter().map(|w| w.name()).collect();
        write!(
            f,
            "unknown wire variant {:?}; valid names: {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownWire {}

impl FromStr for Wire {
    type Err = UnknownWire;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let wanted = name.trim();
        Wire::ALL
            .iter()
            .copied()
            .find(|w| w.name() == wanted)
            .ok_or_else(|| UnknownWire(name.to_string()))
    }
}

/// The wire variants switched on: a small copyable set, read by every part of the simulator
/// (`shared.config.wire.contains(Wire::X)`).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WireSet(u32);

impl WireSet {
    /// Switches `wire` on.
    pub(crate) fn insert(&mut self, wire: Wire) {
        self.0 |= 1 << wire.bit();
    }

    /// Whether `wire` is on.
    pub(crate) fn contains(self, wire: Wire) -> bool {
        self.0 & (1 << wire.bit()) != 0
    }

    /// The variants switched on, in [`Wire::ALL`] order.
    pub(crate) fn iter(self) -> impl Iterator<Item = Wire> {
        Wire::ALL.iter().copied().filter(move |w| self.contains(*w))
    }
}

impl fmt::Debug for WireSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Wire::name)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_variant_and_unknown_names_list_the_valid_ones() {
        assert_eq!(Wire::ALL.len(), 10);
        let mut set = WireSet::default();
        for wire in Wire::ALL {
            assert_eq!(wire.name().parse::<Wire>(), Ok(*wire));
            assert_eq!(wire.to_string(), wire.name());
            assert!(!set.contains(*wire));
            set.insert(*wire);
            assert!(set.contains(*wire));
        }
        assert_eq!(set.iter().collect::<Vec<_>>(), Wire::ALL);

        let error = "orders_envelope".parse::<Wire>().unwrap_err().to_string();
        assert!(error.contains("\"orders_envelope\""), "{error}");
        for wire in Wire::ALL {
            assert!(error.contains(wire.name()), "{error}");
        }
    }
}
