//! The API's codes (broker codes, order types, statuses, …) as open enums.
//!
//! Connect Trade adds brokers, statuses and order options over time. Every enum here decodes a
//! value it does not know into `Unknown(String)`, keeping the server's text, instead of failing
//! the whole response; it also encodes `Unknown` back verbatim, so a value newer than this SDK
//! can still be sent. Known values are matched regardless of ASCII case (the API documents broker
//! codes as case-insensitive) and always written in the API's spelling.
//!
//! These types replace what progenitor would generate for the spec's string enums (see
//! `build.rs`), so the generated REST types and the streams use them directly.

pub(crate) use std::{borrow::Cow, fmt, str::FromStr};

/// Defines an open enum: the known codes plus `Unknown(String)`.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        ///
        /// Unknown values decode into `Unknown` with the server's text (see the module docs).
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* #[doc = concat!("`", $wire, "`")] $variant, )+
            /// A value this version of the SDK does not know, kept as the server sent it.
            Unknown(String),
        }

        impl $name {
            /// Every value this SDK knows, in the documentation's order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            /// The value as the API spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Unknown(text) => text,
                }
            }

            /// Whether this is a value the SDK does not know.
            pub fn is_unknown(&self) -> bool {
                matches!(self, $name::Unknown(_))
            }

            /// The known value spelled `text`, ignoring ASCII case.
            fn known(text: &str) -> Option<Self> {
                $( if text.eq_ignore_ascii_case($wire) { return Some($name::$variant); } )+
                None
            }

            /// Decodes a value; never fails (unknown values become `Unknown`).
            pub fn from_wire(text: &str) -> Self {
                Self::known(text).unwrap_or_else(|| $name::Unknown(text.to_string()))
            }
        }

        impl $crate::codes::fmt::Display for $name {
            fn fmt(&self, f: &mut $crate::codes::fmt::Formatter<'_>) -> $crate::codes::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::codes::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Ok(Self::from_wire(text))
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self::from_wire(text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text: $crate::codes::Cow<'de, str> = $crate::codes::CowStr::deserialize(deserializer)?.0;
                Ok(Self::from_wire(&text))
            }
        }

        #[cfg(feature = "schemars")]
        #[cfg_attr(docsrs, doc(cfg(feature = "schemars")))]
        impl schemars::JsonSchema for $name {
            fn schema_name() -> $crate::codes::Cow<'static, str> {
                $crate::codes::Cow::Borrowed(stringify!($name))
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "description": "One of the known values, or any other string (kept as `Unknown`).",
                    "examples": [$($wire),+]
                })
            }
        }
    };
}

pub(crate) use open_enum;

/// A string borrowed from the input where serde allows it.
pub(crate) struct CowStr<'de>(pub(crate) Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

open_enum! {
    /// A broker's code, e.g. `ALPACA`. Connect Trade speaks of 21 brokers but publishes codes
    /// for 16: the others arrive as `Unknown`.
    BrokerCode {
        /// Alpaca.
        Alpaca = "ALPACA",
        /// Bank of America.
        BankOfAmerica = "BANKOFAMERICA",
        /// Capital One.
        CapitalOne = "CAPITALONE",
        /// Chase.
        Chase = "CHASE",
        /// Citi.
        Citi = "CITI",
        /// Fidelity.
        Fidelity = "FIDELITY",
        /// Lightspeed.
        Lightspeed = "LIGHTSPEED",
        /// PNC.
        Pnc = "PNC",
        /// Public.
        Public = "PUBLIC",
        /// tastytrade.
        Tastytrade = "TASTYTRADE",
        /// TD.
        Td = "TD",
        /// TradeStation.
        TradeStation = "TRADESTATION",
        /// TradeZero.
        TradeZero = "TRADEZERO",
        /// U.S. Bank.
        UsBank = "USBANK",
        /// Webull.
        Webull = "WEBULL",
        /// Wells Fargo.
        WellsFargo = "WELLSFARGO",
    }
}

impl BrokerCode {
    /// Whether the broker accepts orders through Connect Trade (from Connect Trade's capability
    /// matrix, second-hand; `false` for unknown brokers).
    pub fn supports_trading(&self) -> bool {
        matches!(
            self,
            BrokerCode::Alpaca
                | BrokerCode::Lightspeed
                | BrokerCode::Public
                | BrokerCode::Tastytrade
                | BrokerCode::TradeStation
                | BrokerCode::TradeZero
                | BrokerCode::Webull
        )
    }
}

open_enum! {
    /// What a brokerage connection may be used for.
    ConnectionType {
        /// Orders and account data.
        Trade = "trade",
        /// Account data only.
        Readonly = "readonly",
        /// The market data stream.
        MarketData = "market_data",
    }
}

open_enum! {
    /// The kind of instrument an order or position is in.
    Instrument {
        /// An equity.
        Equity = "STK",
        /// A single-leg option.
        Option = "OPT",
        /// A multi-leg option order (2 to 4 legs).
        MultiLegOption = "MLEG_OPT",
        /// A future (the code is inferred: the documentation names futures but no code).
        Future = "FUT",
    }
}

open_enum! {
    /// The side of an order, or the action of a leg.
    OrderSide {
        /// Buy equity.
        Buy = "BUY",
        /// Sell equity.
        Sell = "SELL",
        /// Sell equity short.
        SellShort = "SELL_SHORT",
        /// Buy equity to close a short position (TradeStation).
        BuyToCover = "BUY_TO_COVER",
        /// Buy an option to open a position.
        BuyToOpen = "BUY_TO_OPEN",
        /// Buy an option to close a short position.
        BuyToClose = "BUY_TO_CLOSE",
        /// Sell an option to open a short position.
        SellToOpen = "SELL_TO_OPEN",
        /// Sell an option to close a long position.
        SellToClose = "SELL_TO_CLOSE",
    }
}

impl OrderSide {
    /// Whether this side is one of the option sides (`BUY_TO_OPEN`, …).
    pub fn is_option_side(&self) -> bool {
        matches!(
            self,
            OrderSide::BuyToOpen
                | OrderSide::BuyToClose
                | OrderSide::SellToOpen
                | OrderSide::SellToClose
        )
    }

    /// Whether this side is one of the equity sides (`BUY`, `SELL`, `SELL_SHORT`, `BUY_TO_COVER`).
    pub fn is_equity_side(&self) -> bool {
        matches!(
            self,
            OrderSide::Buy | OrderSide::Sell | OrderSide::SellShort | OrderSide::BuyToCover
        )
    }

    /// `Some(true)` for a side that buys, `Some(false)` for one that sells, `None` if unknown.
    pub fn is_buy(&self) -> Option<bool> {
        match self {
            OrderSide::Buy
            | OrderSide::BuyToCover
            | OrderSide::BuyToOpen
            | OrderSide::BuyToClose => Some(true),
            OrderSide::Sell
            | OrderSide::SellShort
            | OrderSide::SellToOpen
            | OrderSide::SellToClose => Some(false),
            OrderSide::Unknown(_) => None,
        }
    }
}

open_enum! {
    /// The normalized status of an order.
    OrderStatus {
        /// Submitted but not yet acknowledged by the broker.
        Pending = "pending",
        /// Active and waiting to be filled.
        Working = "working",
        /// Part filled; the remainder is still working.
        PartiallyFilled = "partially_filled",
        /// Completely filled.
        Filled = "filled",
        /// Cancelled.
        Cancelled = "cancelled",
        /// Rejected by the broker.
        Rejected = "rejected",
        /// Expired without being filled.
        Expired = "expired",
        /// Replaced by a modified order.
        Replaced = "replaced",
        /// Cancel requested, not yet confirmed.
        PendingCancel = "pending_cancel",
        /// Modify requested, not yet confirmed.
        PendingReplace = "pending_replace",
    }
}

impl OrderStatus {
    /// Whether the order can still change (fill, be cancelled or modified). Unknown statuses
    /// count as open: a status the SDK does not know must not make an order look finished.
    pub fn is_open(&self) -> bool {
        !self.is_terminal()
    }

    /// Whether the order is finished: filled, cancelled, rejected, expired or replaced.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Cancelled
                | OrderStatus::Rejected
                | OrderStatus::Expired
                | OrderStatus::Replaced
        )
    }
}

open_enum! {
    /// Which orders `GET /orders` returns.
    OrderStatusFilter {
        /// Every order.
        All = "all",
        /// Orders that can still change (the default).
        Open = "open",
        /// Finished orders.
        Closed = "closed",
        /// Only `pending` orders.
        Pending = "pending",
        /// Only `working` orders.
        Working = "working",
        /// Only `partially_filled` orders.
        PartiallyFilled = "partially_filled",
        /// Only `filled` orders.
        Filled = "filled",
        /// Only `cancelled` orders.
        Cancelled = "cancelled",
        /// Only `rejected` orders.
        Rejected = "rejected",
        /// Only `expired` orders.
        Expired = "expired",
        /// Only `replaced` orders.
        Replaced = "replaced",
        /// Only `pending_cancel` orders.
        PendingCancel = "pending_cancel",
        /// Only `pending_replace` orders.
        PendingReplace = "pending_replace",
    }
}

impl OrderStatusFilter {
    /// Whether an order with `status` passes this filter. Unknown filters match nothing.
    pub fn matches(&self, status: &OrderStatus) -> bool {
        match self {
            OrderStatusFilter::All => true,
            OrderStatusFilter::Open => status.is_open(),
            OrderStatusFilter::Closed => status.is_terminal(),
            OrderStatusFilter::Unknown(_) => false,
            other => other.as_str() == status.as_str(),
        }
    }
}

open_enum! {
    /// Sort order of order history.
    SortOrder {
        /// Oldest first.
        Asc = "asc",
        /// Newest first.
        Desc = "desc",
    }
}

open_enum! {
    /// A scope of a short-lived user token.
    TokenScope {
        /// Read account data.
        Read = "read",
        /// Place and manage orders (sent together with `read`).
        Trade = "trade",
    }
}

open_enum! {
    /// The kind of a transaction (the set is inferred and open).
    TransactionType {
        /// A purchase.
        Buy = "BUY",
        /// A sale.
        Sell = "SELL",
        /// A dividend.
        Dividend = "DIVIDEND",
        /// Interest.
        Interest = "INTEREST",
        /// A deposit.
        Deposit = "DEPOSIT",
        /// A withdrawal.
        Withdrawal = "WITHDRAWAL",
        /// A fee.
        Fee = "FEE",
        /// A transfer.
        Transfer = "TRANSFER",
        /// Anything else the broker reports.
        Other = "OTHER",
    }
}

open_enum! {
    /// How an order executes.
    OrderType {
        /// Market: executes immediately at the current market price.
        Market = "MKT",
        /// Limit: executes only at the limit price or better.
        Limit = "LMT",
        /// Stop: becomes a market order when the stop price is reached.
        Stop = "STP",
        /// Stop-limit: becomes a limit order when the stop price is reached.
        StopLimit = "STPLMT",
    }
}

impl OrderType {
    /// Whether this type needs `order_limit_price` (`LMT`, `STPLMT`).
    pub fn needs_limit_price(&self) -> bool {
        matches!(self, OrderType::Limit | OrderType::StopLimit)
    }

    /// Whether this type needs `stop_price` (`STP`, `STPLMT`).
    pub fn needs_stop_price(&self) -> bool {
        matches!(self, OrderType::Stop | OrderType::StopLimit)
    }
}

open_enum! {
    /// How long an order stays active.
    TimeInForce {
        /// Until the end of the regular trading day.
        Day = "DAY",
        /// Good till cancelled.
        Gtc = "GTC",
        /// Immediate or cancel: any unfilled part is cancelled.
        Ioc = "IOC",
        /// Fill or kill: fills entirely at once or is cancelled.
        Fok = "FOK",
        /// Market on open.
        Open = "OPEN",
        /// Market on close.
        Close = "CLOSE",
        /// Day, with extended hours.
        DayPlus = "DAY+",
        /// Good till cancelled, with extended hours.
        GtcPlus = "GTC+",
    }
}
