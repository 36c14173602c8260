//! Why an order was not sent.

use std::fmt;

use crate::symbology::SymbolError;

/// The rule an order broke. Each rejected order names exactly one (the first it broke).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OrderRule {
    /// An order needs an account id and a broker.
    Account,
    /// `cl_order_id` (and `new_cl_order_id`): 1 to 36 ASCII letters, digits or `-`.
    ClOrderId,
    /// The symbol must be valid for the instrument (CQS for `STK`, OCC OSI for `OPT`) and
    /// absent (`null`) for a multi-leg order.
    Symbol,
    /// Equities take equity sides (`BUY`, `SELL`, `SELL_SHORT`, `BUY_TO_COVER`); options
    /// take option sides (`BUY_TO_OPEN`, …).
    Side,
    /// An order type must be chosen, be one the SDK knows, and suit the instrument
    /// (multi-leg orders are `MKT` or `LMT`).
    OrderType,
    /// The time in force must be one the SDK knows.
    TimeInForce,
    /// Exactly one of `order_qty` and `order_notional`; options trade by quantity.
    QuantityOrNotional,
    /// Quantities, notionals and (outside multi-leg orders) prices are above zero.
    Positive,
    /// Option quantities are whole contracts.
    WholeContracts,
    /// Numbers have at most 9 decimals (the API's precision).
    Precision,
    /// A number given as text must be a decimal number.
    Number,
    /// `LMT` and `STPLMT` need `order_limit_price`; other types take none.
    LimitPrice,
    /// `STP` and `STPLMT` need `stop_price`; other types take none.
    StopPrice,
    /// A multi-leg order has 2 to 4 legs; other orders have none.
    LegCount,
    /// A leg's action is an option side.
    LegAction,
    /// A leg's ratio is a whole number above zero.
    LegRatio,
    /// Each leg is a different contract.
    DuplicateLeg,
    /// All legs are options on the same underlying.
    SameUnderlying,
    /// The strategy needs all legs to expire on the same day.
    SameExpiry,
    /// The strategy needs calls or puts where a leg has the other.
    LegRight,
    /// The strategy needs its strikes in a given order.
    StrikeOrder,
    /// A ratio spread buys and sells different numbers of contracts.
    Ratio,
    /// Only open orders can be modified or cancelled.
    OrderNotOpen,
    /// A modification must change something.
    NothingToModify,
    /// The API's request type needs a field this SDK does not fill (the spec gained a
    /// required field: update the SDK).
    RequestShape,
}

impl OrderRule {
    /// A short, stable name of the rule (`limit-price`, `leg-count`, …).
    pub fn name(self) -> &'static str {
        match self {
            OrderRule::Account => "account",
            OrderRule::ClOrderId => "cl-order-id",
            OrderRule::Symbol => "symbol",
            OrderRule::Side => "side",
            OrderRule::OrderType => "order-type",
            OrderRule::TimeInForce => "time-in-force",
            OrderRule::QuantityOrNotional => "quantity-or-notional",
            OrderRule::Positive => "positive",
            OrderRule::WholeContracts => "whole-contracts",
            OrderRule::Precision => "precision",
            OrderRule::Number => "number",
            OrderRule::LimitPrice => "limit-price",
            OrderRule::StopPrice => "stop-price",
            OrderRule::LegCount => "leg-count",
            OrderRule::LegAction => "leg-action",
            OrderRule::LegRatio => "leg-ratio",
            OrderRule::DuplicateLeg => "duplicate-leg",
            OrderRule::SameUnderlying => "same-underlying",
            OrderRule::SameExpiry => "same-expiry",
            OrderRule::LegRight => "leg-right",
            OrderRule::StrikeOrder => "strike-order",
            OrderRule::Ratio => "ratio",
            OrderRule::OrderNotOpen => "order-not-open",
            OrderRule::NothingToModify => "nothing-to-modify",
            OrderRule::RequestShape => "request-shape",
        }
    }
}

impl fmt::Display for OrderRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An order (or a modification) that breaks a rule and was not sent.
///
/// Converts into [`crate::Error::Order`] with `?`, where [`crate::Error::order_rule`] still
/// gives the rule. A symbol that could not be read keeps its [`SymbolError`] as the
/// [`source`](std::error::Error::source).
///
/// ```
/// use connect_trade::codes::{BrokerCode, OrderSide};
/// use connect_trade::orders::{OrderBuilder, OrderRule};
///
/// let err = OrderBuilder::equity("MSFT", OrderSide::Buy)
///     .account("acc-1", BrokerCode::Alpaca)
///     .quantity(1)
///     .limit_price("410.00") // but no order type that takes one
///     .market()
///     .build()
///     .unwrap_err();
/// assert_eq!(err.rule(), OrderRule::LimitPrice);
/// assert!(err.to_string().contains("limit-price"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderError {
    rule: OrderRule,
    message: String,
    source: Option<SymbolError>,
}

/// At most this many characters of a message are kept (messages may quote the caller's
/// input).
const MESSAGE_CHARS: usize = 400;

impl OrderError {
    /// An error for `rule` with a message saying what is wrong and what to do (at most 400
    /// characters of it are kept).
    pub fn new(rule: OrderRule, message: impl Into<String>) -> Self {
        let message = message.into();
        OrderError {
            rule,
            message: crate::error::clip(&message, MESSAGE_CHARS),
            source: None,
        }
    }

    /// The rule the order broke.
    pub fn rule(&self) -> OrderRule {
        self.rule
    }

    /// What is wrong, without the rule's name.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "order not sent (rule {}): {}", self.rule, self.message)
    }
}

impl std::error::Error for OrderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<SymbolError> for OrderError {
    /// The `symbol` rule, with the symbol error as the source (its text is not repeated).
    fn from(error: SymbolError) -> Self {
        OrderError {
            rule: OrderRule::Symbol,
            message: match error.part() {
                crate::symbology::SymbolPart::Whole => {
                    format!("the {} symbol is not valid", error.kind())
                }
                part => format!(
                    "the {} symbol is not valid: its {part} is wrong",
                    error.kind()
                ),
            },
            source: Some(error),
        }
    }
}

impl From<std::convert::Infallible> for OrderError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
