//! The JSON messages of both WebSocket streams, as serde types.
//!
//! **Our reconstruction.** Connect Trade documents the flow (welcome → authenticate within
//! 30 s → subscribe) and the topics and channels, but the exact JSON is not published where
//! we can read it. These types follow the API's conventions (snake_case, decimal strings,
//! `action` on requests, `type` on server messages) and reuse the REST types for entities,
//! so an order from the stream and an order from `GET /orders` are one type. The simulator
//! speaks exactly this; the day the real format is known, this module is what changes.
//!
//! Forward compatibility, and no hidden data: a server message whose `type` is unknown, or
//! whose `type` is known but whose body does not have our shape, decodes into
//! `Unknown(serde_json::Value)` (the latter with a `tracing` warning); unknown fields are
//! ignored; codes are open enums; `sequence` is read from a number or a string; an `error`
//! with only a `message` decodes; an update without a top-level `account_id` takes its
//! payload's.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{
    codes::open_enum,
    credentials::Secret,
    rest::types::{Balance, Order, Position},
};

// ---------------------------------------------------------------------------------------------
// Brokerage stream (wss://stream.connecttrade.com)
// ---------------------------------------------------------------------------------------------

open_enum! {
    /// A topic of the brokerage stream.
    Topic {
        /// Order updates.
        Orders = "orders",
        /// Position updates.
        Positions = "positions",
        /// Balance updates.
        Balances = "balances",
    }
}

/// A message the client sends on the brokerage stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum BrokerageRequest {
    /// Authenticates with the platform credentials; must come within 30 s of the welcome.
    Authenticate {
        /// The platform's client id.
        client_id: String,
        /// The platform's client secret.
        client_secret: Secret,
    },
    /// Starts updates of these topics.
    Subscribe {
        /// The topics.
        topics: Vec<Topic>,
    },
    /// Stops updates of these topics.
    Unsubscribe {
        /// The topics.
        topics: Vec<Topic>,
    },
}

/// Where an update belongs: which user and which account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct UpdateMeta {
    /// The user the update belongs to (empty if the server did not say).
    #[serde(default)]
    pub user_id: String,
    /// The account the update belongs to (when the message has no top-level `account_id`,
    /// the payload's).
    #[serde(default)]
    pub account_id: String,
    /// When the change happened at the server (inferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// A number that grows with every update of the session (inferred; read from a JSON
    /// number or a string of digits).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number_or_string"
    )]
    pub sequence: Option<u64>,
}

/// A message the server sends on the brokerage stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BrokerageMessage {
    /// Sent first, on connect.
    Welcome {
        /// The server's text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The credentials were accepted.
    Authenticated {},
    /// Topics now subscribed.
    Subscribed {
        /// All topics subscribed after this request.
        topics: Vec<Topic>,
    },
    /// Topics no longer subscribed.
    Unsubscribed {
        /// All topics still subscribed after this request.
        topics: Vec<Topic>,
    },
    /// One changed order.
    Order {
        /// Whose.
        #[serde(flatten)]
        meta: UpdateMeta,
        /// The order as it is now.
        data: Box<Order>,
    },
    /// One changed position.
    Position {
        /// Whose.
        #[serde(flatten)]
        meta: UpdateMeta,
        /// The position as it is now (quantity 0: closed).
        data: Box<Position>,
    },
    /// One changed balance.
    Balance {
        /// Whose.
        #[serde(flatten)]
        meta: UpdateMeta,
        /// The balance as it is now.
        data: Box<Balance>,
    },
    /// Something went wrong; see `code`.
    Error(StreamErrorMessage),
    /// A message type this SDK does not know, kept whole.
    #[serde(skip)]
    Unknown(serde_json::Value),
}

// ---------------------------------------------------------------------------------------------
// Market data stream (wss://mdstream.connecttrade.com)
// ---------------------------------------------------------------------------------------------

open_enum! {
    /// A channel of the market data stream.
    Channel {
        /// Level 1 bid/ask.
        Quotes = "quotes",
        /// Time and sales.
        Trades = "trades",
        /// OHLCV bars.
        Bars = "bars",
        /// Level 2 order book.
        Depth = "depth",
        /// Real-time options chain.
        OptionsChain = "options_chain",
    }
}

open_enum! {
    /// Which trading session a trades subscription covers (inferred values).
    TradingSession {
        /// Regular hours only.
        Regular = "regular",
        /// Pre- and post-market only.
        Extended = "extended",
        /// Every session.
        All = "all",
    }
}

open_enum! {
    /// A bar interval (inferred values).
    BarInterval {
        /// One minute.
        Minute1 = "1m",
        /// Five minutes.
        Minute5 = "5m",
        /// Fifteen minutes.
        Minute15 = "15m",
        /// One hour.
        Hour1 = "1h",
        /// One day.
        Day1 = "1d",
    }
}

/// The parameters of a subscription, by channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct SubscriptionParams {
    /// `trades`: which session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<TradingSession>,
    /// `bars`: the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<BarInterval>,
    /// `bars`: how many past bars to send first (historical backfill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<u32>,
    /// `depth`: how many price levels per side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<u32>,
    /// `options_chain`: include Greeks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeks: Option<bool>,
}

/// A subscription: a channel, its symbols and parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Subscription {
    /// The channel.
    pub channel: Channel,
    /// The symbols (underlyings for `options_chain`).
    pub symbols: Vec<String>,
    /// The channel's parameters.
    #[serde(flatten)]
    pub params: SubscriptionParams,
}

impl Subscription {
    /// A subscription of `channel` with default parameters.
    pub fn new<S: Into<String>>(channel: Channel, symbols: impl IntoIterator<Item = S>) -> Self {
        Subscription {
            channel,
            symbols: symbols.into_iter().map(Into::into).collect(),
            params: SubscriptionParams::default(),
        }
    }

    /// Level 1 quotes of these symbols.
    pub fn quotes<S: Into<String>>(symbols: impl IntoIterator<Item = S>) -> Self {
        Self::new(Channel::Quotes, symbols)
    }

    /// Trades (time and sales) of these symbols; narrow with [`Subscription::session`].
    pub fn trades<S: Into<String>>(symbols: impl IntoIterator<Item = S>) -> Self {
        Self::new(Channel::Trades, symbols)
    }

    /// Bars of these symbols at `interval`; add history with [`Subscription::backfill`].
    pub fn bars<S: Into<String>>(
        symbols: impl IntoIterator<Item = S>,
        interval: BarInterval,
    ) -> Self {
        let mut subscription = Self::new(Channel::Bars, symbols);
        subscription.params.interval = Some(interval);
        subscription
    }

    /// The order book of these symbols, `levels` price levels per side.
    pub fn depth<S: Into<String>>(symbols: impl IntoIterator<Item = S>, levels: u32) -> Self {
        let mut subscription = Self::new(Channel::Depth, symbols);
        subscription.params.levels = Some(levels);
        subscription
    }

    /// The options chains of these underlyings; add Greeks with [`Subscription::greeks`].
    pub fn options_chain<S: Into<String>>(underlyings: impl IntoIterator<Item = S>) -> Self {
        Self::new(Channel::OptionsChain, underlyings)
    }

    /// `trades`: only this session.
    pub fn session(mut self, session: TradingSession) -> Self {
        self.params.session = Some(session);
        self
    }

    /// `bars`: send this many past bars first.
    pub fn backfill(mut self, bars: u32) -> Self {
        self.params.backfill = Some(bars);
        self
    }

    /// `options_chain`: include Greeks.
    pub fn greeks(mut self, greeks: bool) -> Self {
        self.params.greeks = Some(greeks);
        self
    }
}

/// A message the client sends on the market data stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum MarketDataRequest {
    /// Authenticates with the token of `GET /connections/{connection_id}/token`, within 30 s.
    Authenticate {
        /// The token.
        token: Secret,
    },
    /// Subscribes symbols of a channel.
    Subscribe(Subscription),
    /// Unsubscribes symbols of a channel.
    Unsubscribe {
        /// The channel.
        channel: Channel,
        /// The symbols.
        symbols: Vec<String>,
    },
    /// Asks for the current subscriptions; answered by `subscriptions` with the same
    /// `request_id`.
    ListSubscriptions {
        /// Matches the reply to the request.
        request_id: String,
    },
    /// Asks for historical bars without subscribing; answered by `snapshot` with the same
    /// `request_id`.
    Snapshot {
        /// Matches the reply to the request.
        request_id: String,
        /// The symbol.
        symbol: String,
        /// The bar interval.
        interval: BarInterval,
        /// First bar start included.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<DateTime<Utc>>,
        /// Bars starting before this time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<DateTime<Utc>>,
        /// At most this many bars (the most recent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
}

/// A symbol as the market data stream sends it: an equity ticker (`AAPL`, `BRK.B`) or an OCC
/// option symbol (`AAPL  250117C00190000`).
///
/// A string, kept without an allocation up to 23 bytes (every ticker and OCC symbol), so a
/// quote costs nothing to keep beyond its own size and a clone is a copy. It reads as a `&str`
/// (through `Deref`), compares with strings, and finds a `HashMap<Symbol, _>` entry by `&str`.
/// To check or take it apart, parse it with [`crate::symbology`].
///
/// ```
/// use std::collections::HashMap;
///
/// use connect_trade::stream::protocol::Symbol;
///
/// let symbol = Symbol::from("BRK.B");
/// assert_eq!(symbol, "BRK.B");
/// assert!(symbol.starts_with("BRK"));
/// let last = HashMap::from([(symbol.clone(), 1)]);
/// assert_eq!(last.get("BRK.B"), Some(&1));
/// assert_eq!(String::from(symbol), "BRK.B");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Symbol(smol_str::SmolStr);

impl Symbol {
    /// The symbol as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::ops::Deref for Symbol {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Symbol {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for Symbol {
    fn from(symbol: &str) -> Self {
        Symbol(symbol.into())
    }
}

impl From<String> for Symbol {
    fn from(symbol: String) -> Self {
        Symbol(symbol.into())
    }
}

impl From<&String> for Symbol {
    fn from(symbol: &String) -> Self {
        Symbol(symbol.as_str().into())
    }
}

impl From<Symbol> for String {
    fn from(symbol: Symbol) -> Self {
        symbol.as_str().to_string()
    }
}

impl std::str::FromStr for Symbol {
    type Err = std::convert::Infallible;
    fn from_str(symbol: &str) -> Result<Self, Self::Err> {
        Ok(Symbol::from(symbol))
    }
}

/// Compares a symbol with a string, either way round.
macro_rules! symbol_eq {
    ($($other:ty),*) => {$(
        impl PartialEq<$other> for Symbol {
            fn eq(&self, other: &$other) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }
        impl PartialEq<Symbol> for $other {
            fn eq(&self, other: &Symbol) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
    )*};
}
symbol_eq!(str, &str, String);

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for Symbol {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// Level 1: best bid and ask.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Quote {
    /// The symbol.
    pub symbol: Symbol,
    /// Best bid price.
    #[serde(default)]
    pub bid: Option<Decimal>,
    /// Size at the best bid.
    #[serde(default)]
    pub bid_size: Option<Decimal>,
    /// Best ask price.
    #[serde(default)]
    pub ask: Option<Decimal>,
    /// Size at the best ask.
    #[serde(default)]
    pub ask_size: Option<Decimal>,
    /// When the quote was made.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// One trade (time and sales).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Trade {
    /// The symbol.
    pub symbol: Symbol,
    /// Trade price.
    pub price: Decimal,
    /// Trade size.
    pub size: Decimal,
    /// The session the trade happened in.
    #[serde(default)]
    pub session: Option<TradingSession>,
    /// When the trade happened.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// One OHLCV bar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Bar {
    /// The symbol.
    pub symbol: Symbol,
    /// The interval.
    pub interval: BarInterval,
    /// When the bar starts.
    pub start: DateTime<Utc>,
    /// Open price.
    pub open: Decimal,
    /// High price.
    pub high: Decimal,
    /// Low price.
    pub low: Decimal,
    /// Close price.
    pub close: Decimal,
    /// Volume.
    pub volume: Decimal,
    /// Whether this bar is historical backfill rather than live.
    #[serde(default)]
    pub backfill: bool,
}

/// One price level of a book.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct PriceLevel {
    /// Price.
    pub price: Decimal,
    /// Size at this price.
    pub size: Decimal,
}

/// Level 2: the book, up to the subscribed number of levels per side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Depth {
    /// The symbol.
    pub symbol: Symbol,
    /// Bids, best first.
    pub bids: Vec<PriceLevel>,
    /// Asks, best first.
    pub asks: Vec<PriceLevel>,
    /// When the book was taken.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// Greeks of an option.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Greeks {
    /// Delta.
    pub delta: Decimal,
    /// Gamma.
    pub gamma: Decimal,
    /// Theta (per day).
    pub theta: Decimal,
    /// Vega (per volatility point).
    pub vega: Decimal,
    /// Rho.
    #[serde(default)]
    pub rho: Option<Decimal>,
    /// Implied volatility.
    #[serde(default)]
    pub implied_volatility: Option<Decimal>,
}

/// One contract of an options chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct OptionContractQuote {
    /// The underlying symbol.
    pub underlying: Symbol,
    /// The OCC option symbol.
    pub symbol: Symbol,
    /// Best bid.
    #[serde(default)]
    pub bid: Option<Decimal>,
    /// Best ask.
    #[serde(default)]
    pub ask: Option<Decimal>,
    /// Last trade price.
    #[serde(default)]
    pub last: Option<Decimal>,
    /// Volume of the day.
    #[serde(default)]
    pub volume: Option<Decimal>,
    /// Open interest.
    #[serde(default)]
    pub open_interest: Option<Decimal>,
    /// Greeks, when subscribed with `greeks: true`.
    #[serde(default)]
    pub greeks: Option<Greeks>,
    /// When the quote was made.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// A message the server sends on the market data stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MarketDataMessage {
    /// Sent first, on connect.
    Welcome {
        /// The server's text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The token was accepted.
    Authenticated {
        /// When the token expires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
    },
    /// Symbols now subscribed on a channel.
    Subscribed(Subscription),
    /// Symbols no longer subscribed on a channel.
    Unsubscribed {
        /// The channel.
        channel: Channel,
        /// The symbols.
        symbols: Vec<String>,
    },
    /// The reply to `list_subscriptions`.
    Subscriptions {
        /// The request this answers.
        request_id: String,
        /// The current subscriptions.
        subscriptions: Vec<Subscription>,
    },
    /// The reply to `snapshot`.
    Snapshot {
        /// The request this answers.
        request_id: String,
        /// The symbol.
        symbol: String,
        /// The bars, oldest first.
        bars: Vec<Bar>,
    },
    /// A quote.
    Quote(Quote),
    /// A trade.
    Trade(Trade),
    /// A bar.
    // Boxed: 144 bytes, it would make every quote larger than what the compiler moves inline.
    Bar(Box<Bar>),
    /// A book.
    Depth(Depth),
    /// An options chain update for one contract.
    // Boxed: by far the largest message, it would make every quote as big.
    OptionQuote(Box<OptionContractQuote>),
    /// Something went wrong; see `code`.
    Error(StreamErrorMessage),
    /// A message type this SDK does not know, kept whole.
    #[serde(skip)]
    Unknown(serde_json::Value),
}

// ---------------------------------------------------------------------------------------------
// Shared
// ---------------------------------------------------------------------------------------------

open_enum! {
    /// Why the server reported an error on a stream (inferred values).
    ErrorCode {
        /// The credentials or token were refused: terminal, do not reconnect with the same.
        AuthFailed = "auth_failed",
        /// No authenticate message within 30 s of the welcome.
        AuthTimeout = "auth_timeout",
        /// The market data token expired: fetch a new one.
        TokenExpired = "token_expired",
        /// Another session started with the same credentials and replaced this one.
        SessionReplaced = "session_replaced",
        /// The request was malformed or invalid.
        InvalidRequest = "invalid_request",
        /// Failure on the server's side.
        Internal = "internal",
    }
}

/// The body of an `error` message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct StreamErrorMessage {
    /// What kind of error (empty, and unknown, when the server sent only a `message`).
    #[serde(default = "no_code")]
    pub code: ErrorCode,
    /// The server's text.
    #[serde(default)]
    pub message: String,
    /// The request this answers, for `list_subscriptions` and `snapshot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

fn no_code() -> ErrorCode {
    ErrorCode::from_wire("")
}

/// `sequence` as a JSON number or a string of digits; anything else is no sequence.
fn number_or_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Number(u64),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<Wire>::deserialize(deserializer)? {
        Some(Wire::Number(n)) => Some(n),
        Some(Wire::Text(text)) => text.trim().parse().ok(),
        Some(Wire::Other(_)) | None => None,
    })
}

/// WebSocket close codes the servers use (inferred): authentication refused.
pub const CLOSE_AUTH_FAILED: u16 = 4001;
/// Close code: no authentication within 30 s.
pub const CLOSE_AUTH_TIMEOUT: u16 = 4002;
/// Close code: another session with the same credentials replaced this one.
pub const CLOSE_SESSION_REPLACED: u16 = 4003;
/// Close code: the market data token expired.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4004;

/// Decodes a server message of either stream, keeping an unknown `type` whole.
pub trait ServerMessage: Sized + for<'de> Deserialize<'de> {
    /// Wraps a message that is kept whole.
    fn unknown(value: serde_json::Value) -> Self;

    /// Repairs what a lenient decode left out (an update's `account_id`).
    fn complete(self) -> Self {
        self
    }

    /// Decodes one text frame. A known type with our shape decodes directly. Any other JSON
    /// object with a string `type` gives `Unknown` with the whole JSON: an unknown type
    /// silently, a known type whose body does not match our shape with a `tracing` warning
    /// (data is never dropped because our reconstruction of the format was wrong). Only a
    /// frame that is not JSON, or has no `type`, is an error.
    fn decode(text: &str) -> Result<Self, serde_json::Error> {
        // Data messages first read their `type`, then decode straight into their own type:
        // serde's derive of a `type`-tagged enum copies every object into an intermediate
        // tree before decoding it, which costs more than the two reads (measured: about 7% of
        // the market data stream's throughput).
        if let Some(message) = Self::decode_typed(text) {
            return Ok(message.complete());
        }
        match serde_json::from_str::<Self>(text) {
            Ok(message) => Ok(message.complete()),
            Err(error) => {
                let value: serde_json::Value = serde_json::from_str(text)?;
                let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
                    return Err(error);
                };
                if Self::KNOWN_TYPES.contains(&kind) {
                    tracing::warn!(
                        r#type = kind,
                        %error,
                        "a server message of a known type does not have the expected shape; \
                         delivered as Unknown"
                    );
                }
                Ok(Self::unknown(value))
            }
        }
    }

    /// A message of a type a stream receives in volume, decoded from `text` straight into its
    /// variant's type; `None` sends the frame the general way (which also tells why a body
    /// does not have our shape). When it decodes, the result must be what the general way
    /// gives.
    fn decode_typed(text: &str) -> Option<Self> {
        let _ = text;
        None
    }

    /// The `type` values this SDK decodes.
    const KNOWN_TYPES: &'static [&'static str];
}

/// The `type` of a JSON object, read without decoding the rest of it; `None` unless `text` is
/// an object with exactly one `type`, a string. (The doctor reads frames' types with it too, so
/// it reports what the streams see.)
pub(crate) fn message_type(text: &str) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Type<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
    }
    serde_json::from_str::<Type>(text)
        .ok()
        .map(|message| message.kind)
}

/// The `account_id` of a payload, for an update whose top level has none.
fn payload_account<T: Serialize>(data: &T) -> String {
    serde_json::to_value(data)
        .ok()
        .and_then(|value| value.get("account_id")?.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl ServerMessage for BrokerageMessage {
    fn unknown(value: serde_json::Value) -> Self {
        BrokerageMessage::Unknown(value)
    }
    fn complete(mut self) -> Self {
        match &mut self {
            BrokerageMessage::Order { meta, data } if meta.account_id.is_empty() => {
                meta.account_id = payload_account(data)
            }
            BrokerageMessage::Position { meta, data } if meta.account_id.is_empty() => {
                meta.account_id = payload_account(data)
            }
            BrokerageMessage::Balance { meta, data } if meta.account_id.is_empty() => {
                meta.account_id = payload_account(data)
            }
            _ => {}
        }
        self
    }
    const KNOWN_TYPES: &'static [&'static str] = &[
        "welcome",
        "authenticated",
        "subscribed",
        "unsubscribed",
        "order",
        "position",
        "balance",
        "error",
    ];
}

impl ServerMessage for MarketDataMessage {
    fn unknown(value: serde_json::Value) -> Self {
        MarketDataMessage::Unknown(value)
    }
    fn decode_typed(text: &str) -> Option<Self> {
        // The object's `type` is an unknown field to these types, and ignored.
        let message = match &*message_type(text)? {
            "quote" => MarketDataMessage::Quote(serde_json::from_str(text).ok()?),
            "trade" => MarketDataMessage::Trade(serde_json::from_str(text).ok()?),
            "bar" => MarketDataMessage::Bar(serde_json::from_str(text).ok()?),
            "depth" => MarketDataMessage::Depth(serde_json::from_str(text).ok()?),
            "option_quote" => MarketDataMessage::OptionQuote(serde_json::from_str(text).ok()?),
            _ => return None,
        };
        Some(message)
    }
    const KNOWN_TYPES: &'static [&'static str] = &[
        "welcome",
        "authenticated",
        "subscribed",
        "unsubscribed",
        "subscriptions",
        "snapshot",
        "quote",
        "trade",
        "bar",
        "depth",
        "option_quote",
        "error",
    ];
}
