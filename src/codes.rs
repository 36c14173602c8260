//! The API's codes (broker codes, order types, statuses, …) as open enums.
//!
//! Connect Trade adds brokers, statuses and order options over time. Every enum here decodes a
//! value it does not know into `Unknown(String)`, keeping the server's text, instead of failing
//! the whole response; it also encodes `Unknown` back verbatim, so a value newer than this SDK
//! can still be sent. Known values are matched regardless of ASCII case (the API documents broker
//! codes as case-insensitive) and always written in the API's spelling.
//!
//! One open enum is generated at build time for every string enum of `spec/openapi.json`
//! (`codegen/open_enums.rs`, written by `build.rs`), and replaces what progenitor would generate
//! for it, so the generated REST types and the streams use them directly. A new enum upstream
//! never fails the build. What we add by hand lives beside them, keyed by the stable name that
//! `spec/names.toml` gives each enum: docs and variant names in `codegen/open_enums.rs`, helper
//! methods (`OrderStatus::is_terminal`, …) here.

pub(crate) use std::{borrow::Cow, fmt, str::FromStr};

/// Defines an open enum: the known codes plus `Unknown(String)`.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )*
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
            pub const KNOWN: &'static [$name] = &[$($name::$variant),*];

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
                    "examples": [$($wire),*]
                })
            }
        }
    };
}

pub(crate) use open_enum;

include!(concat!(env!("OUT_DIR"), "/codes.rs"));

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
        // A wildcard, not every variant: a side added upstream adds a variant (generated).
        if matches!(
            self,
            OrderSide::Buy | OrderSide::BuyToCover | OrderSide::BuyToOpen | OrderSide::BuyToClose
        ) {
            Some(true)
        } else if matches!(
            self,
            OrderSide::Sell | OrderSide::SellShort | OrderSide::SellToOpen | OrderSide::SellToClose
        ) {
            Some(false)
        } else {
            None
        }
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
