//! Orders: building, checking and submitting them, in one module.
//!
//! An order the broker would reject is cheaper to catch in your program, with a message that
//! says what is wrong, than after a round trip. [`OrderBuilder`] produces the generated
//! [`crate::rest::types::PlaceOrderRequest`] after checking every rule
//! the SDK knows ([`validate`]); [`Strategy`] builds coherent multi-leg option orders;
//! [`modify`] and [`cancel`] act on placed orders; [`ClOrderId`] makes client order ids.
//! A rejected order is an [`OrderError`] that names the [`OrderRule`] it broke, and converts
//! into [`crate::Error::Order`] with `?`.
//!
//! Every operation here is a function (or a builder's method) that takes the client as its
//! argument: `builder.send(&user)`, `orders::cancel(&user, &order)`.
//!
//! # Submitting: never twice
//!
//! [`OrderBuilder::send`], [`ModifyBuilder::send`] and [`cancel`] (and [`place`], for a
//! request written by hand) are guarded: every attempt carries the same `cl_order_id`
//! (`new_cl_order_id` for a modification); after an attempt that may have reached the server
//! the order is looked up by that id before anything is sent again; a 409 returns the
//! existing order. When an attempt may have reached the server and the SDK could not find out
//! whether it took effect, the error is [`crate::Error::OrderOutcomeUnknown`]: look the order
//! up later ([`find_by_cl_order_id`]) and never place it again under a new `cl_order_id`.
//! [`OrderBuilder::send_once`] and [`ModifyBuilder::send_once`] are the deliberately
//! unguarded single request.
//!
//! # Placing orders
//!
//! The documentation's examples, written with the builders. Buy 1 share of MSFT at market on
//! Alpaca:
//!
//! ```no_run
//! # async fn demo(user: &connect_trade::UserClient, account_id: &str) -> connect_trade::Result<()> {
//! use connect_trade::codes::{BrokerCode, OrderSide, TimeInForce};
//! use connect_trade::orders::OrderBuilder;
//!
//! let placed = OrderBuilder::equity("MSFT", OrderSide::Buy)
//!     .account(account_id, BrokerCode::Alpaca)
//!     .quantity(1)
//!     .market()
//!     .time_in_force(TimeInForce::Day)
//!     .send(user) // checked, then placed at most once
//!     .await?;
//! println!("{} is {}", placed.order_id, placed.status);
//! # Ok(()) }
//! ```
//!
//! Buy 1 TSLA call (strike 437.50, expiring 2025-10-31) at a limit of 13.50, good till
//! cancelled, on Webull. `"13.50"` is sent as `"13.50"`, exactly:
//!
//! ```no_run
//! # async fn demo(user: &connect_trade::UserClient, account_id: &str) -> connect_trade::Result<()> {
//! use connect_trade::codes::{BrokerCode, OrderSide, TimeInForce};
//! use connect_trade::orders::OrderBuilder;
//!
//! let placed = OrderBuilder::option("TSLA251031C00437500", OrderSide::BuyToOpen)
//!     .account(account_id, BrokerCode::Webull)
//!     .quantity(1)
//!     .limit("13.50")
//!     .time_in_force(TimeInForce::Gtc)
//!     .send(user) // build, then place it (guarded)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! An iron condor on SPY, for a net limit of 1.10 (multi-leg: instrument `MLEG_OPT`,
//! `symbol` null, one leg per contract):
//!
//! ```no_run
//! # async fn demo(user: &connect_trade::UserClient, account_id: &str) -> connect_trade::Result<()> {
//! use connect_trade::codes::{BrokerCode, TimeInForce};
//! use connect_trade::orders::Strategy;
//!
//! let condor = Strategy::iron_condor(
//!     "SPY241018P00410000".parse()?, // buy the 410 put
//!     "SPY241018P00420000".parse()?, // sell the 420 put
//!     "SPY241018C00440000".parse()?, // sell the 440 call
//!     "SPY241018C00450000".parse()?, // buy the 450 call
//! )?;
//! let placed = condor
//!     .order()
//!     .account(account_id, BrokerCode::Alpaca)
//!     .quantity(1)
//!     .limit("1.10")
//!     .time_in_force(TimeInForce::Day)
//!     .send(user)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! What is checked, and the rule each check names: the account and broker (`account`); the
//! client order id (`cl-order-id`, generated unless you give one); the symbol for the
//! instrument (`symbol`); equity sides for equities and option sides for options (`side`);
//! exactly one of quantity and notional (`quantity-or-notional`); positive numbers
//! (`positive`), at most 9 decimals (`precision`), whole option contracts
//! (`whole-contracts`); a limit price exactly for `LMT`/`STPLMT` (`limit-price`) and a stop
//! price exactly for `STP`/`STPLMT` (`stop-price`); 2 to 4 distinct legs on one underlying
//! (`leg-count`, `duplicate-leg`, `same-underlying`) and each strategy's shape
//! (`same-expiry`, `leg-right`, `strike-order`, `ratio`).

/// Builds a generated request type through its builder, written like the struct literal it
/// replaces. A literal names every field, so one optional field more upstream (what a refresh
/// of the spec brings) would stop the crate from building; the builder leaves every field not
/// named absent. A required field upstream adds, which we do not fill, is an
/// [`OrderRule::RequestShape`] error naming it (and fails the tests that place orders).
macro_rules! request {
    ($ty:ident { $($field:ident: $value:expr),* $(,)? }) => {
        $ty::try_from($ty::builder()$(.$field($value))*).map_err(|error| {
            $crate::orders::OrderError::new(
                $crate::orders::OrderRule::RequestShape,
                format!(
                    "the API's {} needs what this SDK does not fill ({error}): update connect-trade",
                    stringify!($ty)
                ),
            )
        })
    };
}

mod builder;
mod cl_order_id;
mod error;
mod modify;
mod strategy;
mod submit;

use rust_decimal::Decimal;

pub use builder::{MAX_DECIMALS, OrderBuilder, validate};
pub use cl_order_id::{ClOrderId, ClOrderIdGenerator};
pub use error::{OrderError, OrderRule};
pub use modify::{ModifyBuilder, modify};
pub use strategy::{Leg, LegAction, MAX_LEGS, MIN_LEGS, Strategy, StrategyKind};
pub(crate) use submit::midnight_utc;
pub use submit::{cancel, find_by_cl_order_id, place};

use crate::rest::types::PlaceOrderRequest;
use modify::not_open;

/// A number the builders accept: a [`Decimal`], an integer, or decimal text (`"13.50"`,
/// whose decimals are kept on the wire). Floating-point numbers are deliberately not
/// accepted: they cannot hold most prices exactly.
pub trait IntoDecimal {
    /// The number, or an error naming `field` if text does not parse.
    fn into_decimal(self, field: &str) -> Result<Decimal, OrderError>;
}

impl IntoDecimal for Decimal {
    fn into_decimal(self, _: &str) -> Result<Decimal, OrderError> {
        Ok(self)
    }
}

impl IntoDecimal for &Decimal {
    fn into_decimal(self, _: &str) -> Result<Decimal, OrderError> {
        Ok(*self)
    }
}

macro_rules! into_decimal_int {
    ($($t:ty),*) => {$(
        impl IntoDecimal for $t {
            fn into_decimal(self, _: &str) -> Result<Decimal, OrderError> {
                Ok(Decimal::from(self))
            }
        }
    )*};
}
into_decimal_int!(i32, i64, u32, u64, usize);

impl IntoDecimal for &str {
    fn into_decimal(self, field: &str) -> Result<Decimal, OrderError> {
        // `from_str_exact` refuses to round text with more digits than a Decimal holds.
        Decimal::from_str_exact(self).map_err(|e| {
            OrderError::new(
                OrderRule::Number,
                format!(
                    "{field} {:?} is not a decimal number ({e})",
                    crate::error::clip(self, crate::error::ECHO_CHARS)
                ),
            )
        })
    }
}

impl IntoDecimal for String {
    fn into_decimal(self, field: &str) -> Result<Decimal, OrderError> {
        self.as_str().into_decimal(field)
    }
}

impl IntoDecimal for &String {
    fn into_decimal(self, field: &str) -> Result<Decimal, OrderError> {
        self.as_str().into_decimal(field)
    }
}

impl TryFrom<OrderBuilder> for PlaceOrderRequest {
    type Error = OrderError;

    /// [`OrderBuilder::build`], so a builder can be passed to `place_order().body(..)`.
    fn try_from(builder: OrderBuilder) -> Result<Self, Self::Error> {
        builder.build()
    }
}
