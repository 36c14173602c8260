//! The four workflows the Connect Trade documentation teaches, exact, as pure functions over the
//! REST types.
//!
//! | Workflow | Function | Input |
//! |---|---|---|
//! | Total unrealized P&L | [`total_unrealized_pl`] | `GET /positions` |
//! | Daily P&L summary | [`daily_pl_summary`] | `GET /balances` + `GET /positions` |
//! | Partially filled orders | [`partially_filled_orders`] | `GET /orders?status=partially_filled` |
//! | Average fill price | [`average_fill_price`], [`average_fill_price_of_orders`] | an order's `fills` |
//!
//! Everything is [`Decimal`]: no float is ever on the way. Brokers that do not report a P&L
//! figure send `null`; such a position is **skipped and counted** ([`NullableSum::missing`]),
//! never silently read as zero, so a caller can tell "P&L is 0" from "P&L is 0 over the
//! positions that reported one, and 3 did not".
//!
//! Sums are exact: [`Decimal`] addition keeps every digit of the API's figures (up to 9
//! fractional digits) as long as the result fits 28 significant digits, which any real
//! portfolio does. A sum that would not fit (only a broken or hostile server could cause it) is
//! reported as an [`Overflow`] error instead of a panic or a wrong number.
//!
//! ```
//! use connect_trade::rest::types::Position;
//! use connect_trade::workflows::total_unrealized_pl;
//! use rust_decimal::Decimal;
//!
//! let positions: Vec<Position> = serde_json::from_str(r#"[
//!     {"symbol": "AAPL", "quantity": "10", "unrealized_pl": "12.50"},
//!     {"symbol": "MSFT", "quantity": "5",  "unrealized_pl": "-2.125"},
//!     {"symbol": "BTC",  "quantity": "0.5", "unrealized_pl": null}
//! ]"#).unwrap();
//! let pl = total_unrealized_pl(&positions)?;
//! assert_eq!(pl.total, Decimal::new(10375, 3)); // 10.375
//! assert_eq!((pl.reported, pl.missing), (2, 1));  // BTC's broker sent null
//! # Ok::<(), connect_trade::workflows::Overflow>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::{Decimal, RoundingStrategy};

use crate::{
    codes::OrderStatus,
    rest::types::{Balance, Fill, Order, Position},
};

/// The scale (fractional digits) of an average fill price: 9, the API's own maximum precision.
pub const AVERAGE_PRICE_SCALE: u32 = 9;

/// A sum that overflowed [`Decimal`] (about 7.9 × 10²⁸). Only a broken or hostile server can
/// send figures that large; the workflow refuses them instead of panicking or wrapping.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {what} does not fit a Decimal (about 7.9e28): the server sent implausible figures")]
pub struct Overflow {
    /// Which figure overflowed.
    pub what: &'static str,
}

/// A sum over figures that may be `null`: the total of those reported, and how many were
/// reported and missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NullableSum {
    /// The sum of the figures that were reported (not `null`).
    pub total: Decimal,
    /// How many figures were reported.
    pub reported: usize,
    /// How many were `null` (skipped, not counted as zero).
    pub missing: usize,
}

impl NullableSum {
    /// Whether every figure was reported, so `total` covers everything.
    pub fn is_complete(&self) -> bool {
        self.missing == 0
    }

    /// The total if every figure was reported, `None` if any was missing.
    pub fn complete_total(&self) -> Option<Decimal> {
        self.is_complete().then_some(self.total)
    }

    /// Adds one figure (`None` counts as missing).
    pub fn add(&mut self, value: Option<Decimal>, what: &'static str) -> Result<(), Overflow> {
        match value {
            Some(value) => {
                self.total = self.total.checked_add(value).ok_or(Overflow { what })?;
                self.reported += 1;
            }
            None => self.missing += 1,
        }
        Ok(())
    }
}

/// Total unrealized P&L over positions: the sum of `unrealized_pl`, with the positions whose
/// broker sent `null` skipped and counted in [`NullableSum::missing`].
///
/// The documentation's recipe: fetch `GET /positions`, sum `unrealized_pl`, handle nulls.
pub fn total_unrealized_pl<'a>(
    positions: impl IntoIterator<Item = &'a Position>,
) -> Result<NullableSum, Overflow> {
    let mut sum = NullableSum::default();
    for position in positions {
        sum.add(position.unrealized_pl, "total unrealized P&L")?;
    }
    Ok(sum)
}

/// One account's part of a [`DailyPlSummary`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountDailyPl {
    /// Cash, as the balance reports it (`None`: no balance, or `cash` was null).
    pub cash: Option<Decimal>,
    /// Buying power (`None`: no balance, or `buying_power` was null).
    pub buying_power: Option<Decimal>,
    /// The balance's `currency`, if it said.
    pub currency: Option<String>,
    /// The account's daily P&L over its positions.
    pub daily_pl: NullableSum,
}

/// The documentation's "daily P&L summary": cash and buying power from `GET /balances`, daily
/// P&L per symbol from `GET /positions` (`daily_pl`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DailyPlSummary {
    /// Cash summed over the balances (a balance with null `cash` is counted as missing).
    pub cash: NullableSum,
    /// Buying power summed over the balances.
    pub buying_power: NullableSum,
    /// Daily P&L over every position.
    pub daily_pl: NullableSum,
    /// Daily P&L per symbol, summed over the accounts that hold it.
    pub by_symbol: BTreeMap<String, NullableSum>,
    /// Per account (keyed by `account_id`). Positions without an `account_id` are under `""`.
    pub by_account: BTreeMap<String, AccountDailyPl>,
    /// The currencies the balances reported. More than one means the totals add figures of
    /// different currencies: use `by_account` instead.
    pub currencies: BTreeSet<String>,
}

/// Builds the daily P&L summary from balances and positions (of one user, or any set).
pub fn daily_pl_summary<'a, 'b>(
    balances: impl IntoIterator<Item = &'a Balance>,
    positions: impl IntoIterator<Item = &'b Position>,
) -> Result<DailyPlSummary, Overflow> {
    let mut summary = DailyPlSummary::default();
    for balance in balances {
        summary.cash.add(balance.cash, "total cash")?;
        summary
            .buying_power
            .add(balance.buying_power, "total buying power")?;
        if let Some(currency) = &balance.currency {
            summary.currencies.insert(currency.clone());
        }
        let account = summary
            .by_account
            .entry(balance.account_id.clone())
            .or_default();
        account.cash = balance.cash;
        account.buying_power = balance.buying_power;
        account.currency = balance.currency.clone();
    }
    for position in positions {
        summary.daily_pl.add(position.daily_pl, "total daily P&L")?;
        summary
            .by_symbol
            .entry(position.symbol.clone())
            .or_default()
            .add(position.daily_pl, "daily P&L of a symbol")?;
        let account = position.account_id.clone().unwrap_or_default();
        summary
            .by_account
            .entry(account)
            .or_default()
            .daily_pl
            .add(position.daily_pl, "daily P&L of an account")?;
    }
    Ok(summary)
}

/// The volume-weighted average price of a set of fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AverageFill {
    /// Σ(quantity × price) / Σ quantity, rounded to [`AVERAGE_PRICE_SCALE`] (9) fractional
    /// digits, half to even, trailing zeros removed.
    pub price: Decimal,
    /// Σ quantity, exact.
    pub quantity: Decimal,
    /// Σ(quantity × price), exact (see the module docs for the 28-digit limit).
    pub notional: Decimal,
    /// How many fills went in.
    pub fills: usize,
}

/// The volume-weighted average fill price of `fills`: Σ(quantity × price) / Σ quantity.
///
/// Rounding: the sums are exact; the quotient is computed by [`Decimal`] division (28
/// significant digits) and rounded to 9 fractional digits ([`AVERAGE_PRICE_SCALE`], the
/// API's precision), midpoint to even, trailing zeros removed. `quantity` and `notional` are
/// returned too, for a caller who wants another rounding.
///
/// `Ok(None)` when there is nothing to average: no fills, or quantities summing to zero.
pub fn average_fill_price<'a>(
    fills: impl IntoIterator<Item = &'a Fill>,
) -> Result<Option<AverageFill>, Overflow> {
    let mut quantity = Decimal::ZERO;
    let mut notional = Decimal::ZERO;
    let mut count = 0;
    for fill in fills {
        let value = fill.quantity.checked_mul(fill.price).ok_or(Overflow {
            what: "value of a fill",
        })?;
        notional = notional.checked_add(value).ok_or(Overflow {
            what: "filled notional",
        })?;
        quantity = quantity.checked_add(fill.quantity).ok_or(Overflow {
            what: "filled quantity",
        })?;
        count += 1;
    }
    if quantity.is_zero() {
        return Ok(None);
    }
    let price = notional.checked_div(quantity).ok_or(Overflow {
        what: "average fill price",
    })?;
    Ok(Some(AverageFill {
        price: price
            .round_dp_with_strategy(AVERAGE_PRICE_SCALE, RoundingStrategy::MidpointNearestEven)
            .normalize(),
        quantity,
        notional,
        fills: count,
    }))
}

/// The volume-weighted average fill price over the fills of several orders (e.g. every buy of
/// one symbol today: filter the orders first, the function takes what it is given).
pub fn average_fill_price_of_orders<'a>(
    orders: impl IntoIterator<Item = &'a Order>,
) -> Result<Option<AverageFill>, Overflow> {
    average_fill_price(orders.into_iter().flat_map(|order| order.fills.iter()))
}

/// A partially filled order with what its fills add up to.
#[derive(Clone, Debug, PartialEq)]
pub struct PartialFill<'a> {
    /// The order.
    pub order: &'a Order,
    /// Its fills, as the server sent them.
    pub fills: &'a [Fill],
    /// Σ fill quantity.
    pub filled_quantity: Decimal,
    /// `order_qty` − filled, when the order has a quantity (`None` for a notional order).
    pub remaining_quantity: Option<Decimal>,
    /// The average price of the fills (`None`: no fill reported yet).
    pub average: Option<AverageFill>,
}

/// The orders whose status is `partially_filled`, with their fills, filled and remaining
/// quantities and average price, in the order given.
///
/// The documentation's recipe: `GET /orders?status=partially_filled`; each order carries its
/// `fills`. Passing orders of any status is fine: the others are left out.
pub fn partially_filled_orders<'a>(
    orders: impl IntoIterator<Item = &'a Order>,
) -> Result<Vec<PartialFill<'a>>, Overflow> {
    let mut out = Vec::new();
    for order in orders {
        if order.status != OrderStatus::PartiallyFilled {
            continue;
        }
        let average = average_fill_price(&order.fills)?;
        let filled_quantity = average.map_or(Decimal::ZERO, |a| a.quantity);
        let remaining_quantity = match order.order_qty {
            Some(qty) => Some(qty.checked_sub(filled_quantity).ok_or(Overflow {
                what: "remaining quantity",
            })?),
            None => None,
        };
        out.push(PartialFill {
            order,
            fills: &order.fills,
            filled_quantity,
            remaining_quantity,
            average,
        });
    }
    Ok(out)
}
