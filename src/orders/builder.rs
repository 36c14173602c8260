//! The order builder and the checks every order passes before it is sent.

use std::collections::HashSet;

use rust_decimal::Decimal;

use super::{ClOrderId, IntoDecimal, OrderError, OrderRule, Strategy};
use crate::{
    codes::{BrokerCode, Instrument, OrderSide, OrderType, TimeInForce},
    rest::types::{Account, PlaceOrderRequest},
    symbology::{EquitySymbol, OptionSymbol},
};

/// The API's precision: numbers have at most this many decimals.
pub const MAX_DECIMALS: u32 = 9;

/// What is being traded.
#[derive(Clone, Debug)]
enum Target {
    Equity(Result<EquitySymbol, OrderError>, OrderSide),
    Option(Result<OptionSymbol, OrderError>, OrderSide),
    MultiLeg(Strategy),
}

/// Builds a [`PlaceOrderRequest`] and checks it before anything is sent.
///
/// Start from what is traded ([`equity`](Self::equity), [`option`](Self::option),
/// [`multi_leg`](Self::multi_leg) or [`Strategy::order`]), then give the account, the size
/// (quantity *or* notional), the order type with its prices, and the time in force (default
/// `DAY`). [`build`](Self::build) runs every check of [`validate`](super::validate) and
/// returns the request body, or an [`OrderError`] naming the first rule broken. Mistakes in
/// the arguments (a symbol or a number that does not parse) are reported by `build` too, so
/// the chain reads straight through.
///
/// Numbers are given as [`Decimal`]s, integers or decimal text (`"13.50"`); text keeps its
/// decimals on the wire (`"13.50"` is sent as `"13.50"`). There is deliberately no way to
/// pass an `f64`.
///
/// ```
/// use connect_trade::codes::{BrokerCode, OrderSide, TimeInForce};
/// use connect_trade::orders::OrderBuilder;
///
/// let order = OrderBuilder::equity("AAPL", OrderSide::Buy)
///     .account("acc-1", BrokerCode::Alpaca)
///     .notional("250.00")
///     .market()
///     .build()?;
/// assert_eq!(order.order_notional.unwrap().to_string(), "250.00");
/// assert_eq!(order.order_tif, TimeInForce::Day);
/// # Ok::<(), connect_trade::orders::OrderError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "an order builder does nothing until `build` is called"]
pub struct OrderBuilder {
    target: Target,
    account_id: Option<String>,
    broker: Option<BrokerCode>,
    cl_order_id: Option<Result<ClOrderId, OrderError>>,
    order_type: Option<OrderType>,
    time_in_force: TimeInForce,
    quantity: Option<Result<Decimal, OrderError>>,
    notional: Option<Result<Decimal, OrderError>>,
    limit_price: Option<Result<Decimal, OrderError>>,
    stop_price: Option<Result<Decimal, OrderError>>,
}

impl OrderBuilder {
    fn with_target(target: Target) -> Self {
        OrderBuilder {
            target,
            account_id: None,
            broker: None,
            cl_order_id: None,
            order_type: None,
            time_in_force: TimeInForce::Day,
            quantity: None,
            notional: None,
            limit_price: None,
            stop_price: None,
        }
    }

    /// An equity order (`STK`) for a CQS symbol (an [`EquitySymbol`] or text such as
    /// `"BRK/B"`) with an equity side (`BUY`, `SELL`, `SELL_SHORT`, `BUY_TO_COVER`).
    pub fn equity<S>(symbol: S, side: OrderSide) -> Self
    where
        S: TryInto<EquitySymbol>,
        S::Error: Into<OrderError>,
    {
        Self::with_target(Target::Equity(symbol.try_into().map_err(Into::into), side))
    }

    /// A single-leg option order (`OPT`) for an OCC symbol (an [`OptionSymbol`] or text such
    /// as `"TSLA251031C00437500"`) with an option side (`BUY_TO_OPEN`, …).
    pub fn option<S>(symbol: S, side: OrderSide) -> Self
    where
        S: TryInto<OptionSymbol>,
        S::Error: Into<OrderError>,
    {
        Self::with_target(Target::Option(symbol.try_into().map_err(Into::into), side))
    }

    /// A multi-leg option order (`MLEG_OPT`, `symbol` null) of a [`Strategy`]. Its limit
    /// price is the net price of one unit of the strategy; the API does not document how a
    /// credit is signed, so the builder lets a zero or negative net price through unchanged
    /// for your broker to judge.
    pub fn multi_leg(strategy: Strategy) -> Self {
        Self::with_target(Target::MultiLeg(strategy))
    }

    /// The account to trade in and its broker (both are required).
    pub fn account(mut self, account_id: impl Into<String>, broker: BrokerCode) -> Self {
        self.account_id = Some(account_id.into());
        self.broker = Some(broker);
        self
    }

    /// The account to trade in, from [`Account`] as `list_accounts` returns it (its
    /// `account_id` and `broker`; an account without a broker fails `build`).
    pub fn for_account(mut self, account: &Account) -> Self {
        self.account_id = Some(account.account_id.clone());
        self.broker = account.broker.clone();
        self
    }

    /// Your own client order id, instead of a generated one (see [`ClOrderId`]). Reuse the id
    /// when you retry the *same* order: it is how Connect Trade recognises a repeat.
    pub fn cl_order_id(mut self, id: impl AsRef<str>) -> Self {
        self.cl_order_id = Some(ClOrderId::new(id.as_ref()));
        self
    }

    /// The number of shares or contracts (exclusive with [`notional`](Self::notional)).
    pub fn quantity(mut self, quantity: impl IntoDecimal) -> Self {
        self.quantity = Some(quantity.into_decimal("order_qty"));
        self
    }

    /// A dollar amount to trade instead of a quantity (equities only; exclusive with
    /// [`quantity`](Self::quantity)).
    pub fn notional(mut self, notional: impl IntoDecimal) -> Self {
        self.notional = Some(notional.into_decimal("order_notional"));
        self
    }

    /// A market order (`MKT`).
    pub fn market(mut self) -> Self {
        self.order_type = Some(OrderType::Market);
        self
    }

    /// A limit order (`LMT`) at `price`.
    pub fn limit(self, price: impl IntoDecimal) -> Self {
        self.order_type(OrderType::Limit).limit_price(price)
    }

    /// A stop order (`STP`) triggered at `stop`.
    pub fn stop(self, stop: impl IntoDecimal) -> Self {
        self.order_type(OrderType::Stop).stop_price(stop)
    }

    /// A stop-limit order (`STPLMT`): at `stop`, becomes a limit order at `limit`.
    pub fn stop_limit(self, stop: impl IntoDecimal, limit: impl IntoDecimal) -> Self {
        self.order_type(OrderType::StopLimit)
            .stop_price(stop)
            .limit_price(limit)
    }

    /// Sets the order type alone (prefer [`market`](Self::market), [`limit`](Self::limit),
    /// [`stop`](Self::stop), [`stop_limit`](Self::stop_limit), which set the prices too).
    pub fn order_type(mut self, order_type: OrderType) -> Self {
        self.order_type = Some(order_type);
        self
    }

    /// Sets `order_limit_price` alone.
    pub fn limit_price(mut self, price: impl IntoDecimal) -> Self {
        self.limit_price = Some(price.into_decimal("order_limit_price"));
        self
    }

    /// Sets `stop_price` alone.
    pub fn stop_price(mut self, price: impl IntoDecimal) -> Self {
        self.stop_price = Some(price.into_decimal("stop_price"));
        self
    }

    /// How long the order stays active (default `DAY`).
    pub fn time_in_force(mut self, time_in_force: TimeInForce) -> Self {
        self.time_in_force = time_in_force;
        self
    }

    /// Checks the order and returns the request body for `place_order().body(..)`.
    pub fn build(self) -> Result<PlaceOrderRequest, OrderError> {
        let transpose = |value: Option<Result<Decimal, OrderError>>| value.transpose();
        let (symbol, side, instrument, legs) = match self.target {
            Target::Equity(symbol, side) => (
                Some(symbol?.to_string()),
                Some(side),
                Instrument::Equity,
                vec![],
            ),
            Target::Option(symbol, side) => (
                Some(symbol?.to_string()),
                Some(side),
                Instrument::Option,
                vec![],
            ),
            Target::MultiLeg(strategy) => (
                None,
                None,
                Instrument::MultiLegOption,
                strategy.order_legs(),
            ),
        };
        let cl_order_id = match self.cl_order_id {
            Some(id) => id?,
            None => ClOrderId::generate(),
        };
        let order_type = self.order_type.ok_or_else(|| {
            OrderError::new(
                OrderRule::OrderType,
                "no order type: call market(), limit(price), stop(price) or \
                 stop_limit(stop, limit)",
            )
        })?;
        let broker = self.broker.ok_or_else(|| {
            OrderError::new(
                OrderRule::Account,
                "no account: call account(account_id, broker) or for_account(&account) (an \
                 account from list_accounts must carry its broker)",
            )
        })?;
        let request = request!(PlaceOrderRequest {
            account_id: self.account_id.unwrap_or_default(),
            broker: broker,
            cl_order_id: cl_order_id.into_string(),
            instrument: Some(instrument),
            legs: legs,
            order_limit_price: transpose(self.limit_price)?.map(trim_scale),
            order_notional: transpose(self.notional)?.map(trim_scale),
            order_qty: transpose(self.quantity)?.map(trim_scale),
            order_tif: self.time_in_force,
            order_type: order_type,
            side: side,
            stop_price: transpose(self.stop_price)?.map(trim_scale),
            symbol: symbol,
        })?;
        validate(&request)?;
        Ok(request)
    }
}

/// Drops trailing zeros past the API's 9 decimals (the value is unchanged; numbers with more
/// significant decimals are left for [`validate`] to reject, never rounded).
pub(super) fn trim_scale(value: Decimal) -> Decimal {
    if value.scale() > MAX_DECIMALS {
        let normalized = value.normalize();
        if normalized.scale() <= MAX_DECIMALS {
            return normalized;
        }
    }
    value
}

/// Checks a place-order body against every rule the SDK knows, whether it came from
/// [`OrderBuilder`] or was written by hand. Returns the first rule broken.
///
/// The checks: account and broker present; a valid `cl_order_id`; known side, type and time
/// in force; a symbol valid for the instrument (and `null` for `MLEG_OPT`); sides that fit the
/// instrument; exactly one of quantity and notional (options by quantity, in whole
/// contracts); positive numbers with at most 9 decimals; a limit price exactly for `LMT` and
/// `STPLMT`, a stop price exactly for `STP` and `STPLMT`; for multi-leg orders 2 to 4
/// distinct legs on one underlying with option actions and whole positive ratios, and a
/// `MKT` or `LMT` type. When `instrument` is absent it is inferred (legs → `MLEG_OPT`, an
/// OCC symbol → `OPT`, otherwise `STK`). For other
/// instruments (`FUT`, codes newer than the SDK) only the rules common to all orders apply:
/// account, ids, codes, size, precision and prices.
pub fn validate(request: &PlaceOrderRequest) -> Result<(), OrderError> {
    let fail = |rule, message: String| Err(OrderError::new(rule, message));

    if request.account_id.trim().is_empty() {
        return fail(
            OrderRule::Account,
            "account_id is empty: give the account_id from list_accounts".to_string(),
        );
    }
    if request.broker.as_str().trim().is_empty() {
        return fail(OrderRule::Account, "broker is empty".to_string());
    }
    ClOrderId::new(request.cl_order_id.as_str())?;
    if request.order_type.is_unknown() {
        return fail(
            OrderRule::OrderType,
            format!(
                "order type {:?} is not one this SDK knows (MKT, LMT, STP, STPLMT); to send it \
                 anyway, send the PlaceOrderRequest without validating",
                request.order_type.as_str()
            ),
        );
    }
    if request.order_tif.is_unknown() {
        return fail(
            OrderRule::TimeInForce,
            format!(
                "time in force {:?} is not one this SDK knows (DAY, GTC, IOC, FOK, OPEN, CLOSE, \
                 DAY+, GTC+)",
                request.order_tif.as_str()
            ),
        );
    }

    let instrument = request.instrument.clone().unwrap_or_else(|| {
        if !request.legs.is_empty() {
            Instrument::MultiLegOption
        } else if request
            .symbol
            .as_deref()
            .is_some_and(|s| s.parse::<OptionSymbol>().is_ok())
        {
            Instrument::Option
        } else {
            Instrument::Equity
        }
    });
    let is_option = match instrument {
        Instrument::Equity => {
            check_single(request, "STK", |s| s.parse::<EquitySymbol>().map(drop))?;
            check_side(request, false)?;
            false
        }
        Instrument::Option => {
            check_single(request, "OPT", |s| s.parse::<OptionSymbol>().map(drop))?;
            check_side(request, true)?;
            true
        }
        Instrument::MultiLegOption => {
            check_multi_leg(request)?;
            true
        }
        // Futures (`FUT`) and instruments newer than this SDK: their symbology and sides
        // are not known here, so only the rules common to every order apply.
        _ => false,
    };

    // Size: exactly one of quantity and notional.
    match (&request.order_qty, &request.order_notional) {
        (Some(_), Some(_)) => {
            return fail(
                OrderRule::QuantityOrNotional,
                "both order_qty and order_notional are set: give exactly one".to_string(),
            );
        }
        (None, None) => {
            return fail(
                OrderRule::QuantityOrNotional,
                "neither order_qty nor order_notional is set: give exactly one".to_string(),
            );
        }
        (None, Some(_)) if is_option => {
            return fail(
                OrderRule::QuantityOrNotional,
                "options are ordered by quantity (contracts), not by notional".to_string(),
            );
        }
        _ => {}
    }
    if let Some(qty) = request.order_qty {
        check_number("order_qty", qty, true)?;
        if is_option && !qty.fract().is_zero() {
            return fail(
                OrderRule::WholeContracts,
                format!("order_qty {qty}: options trade in whole contracts"),
            );
        }
    }
    if let Some(notional) = request.order_notional {
        check_number("order_notional", notional, true)?;
    }

    // Prices by order type.
    let multi_leg = instrument == Instrument::MultiLegOption;
    match (
        &request.order_limit_price,
        request.order_type.needs_limit_price(),
    ) {
        (None, true) => {
            return fail(
                OrderRule::LimitPrice,
                format!(
                    "{} orders need order_limit_price",
                    request.order_type.as_str()
                ),
            );
        }
        (Some(price), false) => {
            return fail(
                OrderRule::LimitPrice,
                format!(
                    "order_limit_price {price} on a {} order, which takes none: use LMT or \
                     STPLMT, or drop the price",
                    request.order_type.as_str()
                ),
            );
        }
        (Some(price), true) => check_number("order_limit_price", *price, !multi_leg)?,
        (None, false) => {}
    }
    match (&request.stop_price, request.order_type.needs_stop_price()) {
        (None, true) => {
            return fail(
                OrderRule::StopPrice,
                format!("{} orders need stop_price", request.order_type.as_str()),
            );
        }
        (Some(price), false) => {
            return fail(
                OrderRule::StopPrice,
                format!(
                    "stop_price {price} on a {} order, which takes none: use STP or STPLMT, \
                     or drop the price",
                    request.order_type.as_str()
                ),
            );
        }
        (Some(price), true) => check_number("stop_price", *price, true)?,
        (None, false) => {}
    }
    Ok(())
}

/// A single-instrument order: a valid symbol, no legs.
fn check_single(
    request: &PlaceOrderRequest,
    instrument: &str,
    parse: impl Fn(&str) -> Result<(), crate::symbology::SymbolError>,
) -> Result<(), OrderError> {
    let Some(symbol) = request.symbol.as_deref() else {
        return Err(OrderError::new(
            OrderRule::Symbol,
            format!("a {instrument} order needs a symbol"),
        ));
    };
    parse(symbol)?;
    if !request.legs.is_empty() {
        return Err(OrderError::new(
            OrderRule::LegCount,
            format!(
                "a {instrument} order has no legs; legs belong to MLEG_OPT orders (symbol null)"
            ),
        ));
    }
    Ok(())
}

/// The side is present, known and fits the instrument.
fn check_side(request: &PlaceOrderRequest, option: bool) -> Result<(), OrderError> {
    let Some(side) = &request.side else {
        return Err(OrderError::new(OrderRule::Side, "the order has no side"));
    };
    if side.is_unknown() {
        return Err(OrderError::new(
            OrderRule::Side,
            format!("side {:?} is not one this SDK knows", side.as_str()),
        ));
    }
    if option && !side.is_option_side() {
        return Err(OrderError::new(
            OrderRule::Side,
            format!(
                "{side} is an equity side; options take BUY_TO_OPEN, BUY_TO_CLOSE, \
                 SELL_TO_OPEN or SELL_TO_CLOSE"
            ),
        ));
    }
    if !option && !side.is_equity_side() {
        return Err(OrderError::new(
            OrderRule::Side,
            format!(
                "{side} is an option side; equities take BUY, SELL, SELL_SHORT or BUY_TO_COVER"
            ),
        ));
    }
    Ok(())
}

fn check_multi_leg(request: &PlaceOrderRequest) -> Result<(), OrderError> {
    if let Some(symbol) = &request.symbol {
        return Err(OrderError::new(
            OrderRule::Symbol,
            format!(
                "a MLEG_OPT order has symbol null (the legs name the contracts), not {symbol:?}"
            ),
        ));
    }
    if !matches!(request.order_type, OrderType::Market | OrderType::Limit) {
        return Err(OrderError::new(
            OrderRule::OrderType,
            format!(
                "multi-leg orders are MKT or LMT, not {}",
                request.order_type.as_str()
            ),
        ));
    }
    if let Some(side) = request.side.as_ref().filter(|s| !s.is_option_side()) {
        return Err(OrderError::new(
            OrderRule::Side,
            format!("{side} is not an option side (a multi-leg order may omit side)"),
        ));
    }
    let count = request.legs.len();
    if !(super::MIN_LEGS..=super::MAX_LEGS).contains(&count) {
        return Err(OrderError::new(
            OrderRule::LegCount,
            format!("a multi-leg order has 2 to 4 legs; this one has {count}"),
        ));
    }
    let mut seen = HashSet::new();
    let mut underlying: Option<String> = None;
    for (i, leg) in request.legs.iter().enumerate() {
        let n = i + 1;
        let symbol: OptionSymbol = leg
            .symbol
            .parse()
            .map_err(|e| OrderError::new(OrderRule::Symbol, format!("leg {n}: {e}")))?;
        if !leg.action.is_option_side() {
            return Err(OrderError::new(
                OrderRule::LegAction,
                format!(
                    "leg {n} ({symbol}): action {} is not an option side (BUY_TO_OPEN, \
                     BUY_TO_CLOSE, SELL_TO_OPEN, SELL_TO_CLOSE)",
                    leg.action
                ),
            ));
        }
        if leg.ratio <= Decimal::ZERO || !leg.ratio.fract().is_zero() {
            return Err(OrderError::new(
                OrderRule::LegRatio,
                format!(
                    "leg {n} ({symbol}): ratio {} is not a whole number above zero",
                    leg.ratio
                ),
            ));
        }
        if !seen.insert(symbol) {
            return Err(OrderError::new(
                OrderRule::DuplicateLeg,
                format!("leg {n}: {symbol} is already in another leg"),
            ));
        }
        match &underlying {
            None => underlying = Some(symbol.underlying().to_string()),
            Some(u) if u != symbol.underlying() => {
                return Err(OrderError::new(
                    OrderRule::SameUnderlying,
                    format!(
                        "leg {n}: {symbol} is on {}, the first leg on {u}",
                        symbol.underlying()
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A number is positive (when `positive`) and has at most 9 decimals.
pub(super) fn check_number(field: &str, value: Decimal, positive: bool) -> Result<(), OrderError> {
    if positive && value <= Decimal::ZERO {
        return Err(OrderError::new(
            OrderRule::Positive,
            format!("{field} is {value}; it must be above zero"),
        ));
    }
    if value.scale() > MAX_DECIMALS {
        return Err(OrderError::new(
            OrderRule::Precision,
            format!(
                "{field} {value} has {} decimals; the API takes at most {MAX_DECIMALS} (round it \
                 yourself: the SDK never rounds)",
                value.scale()
            ),
        ));
    }
    Ok(())
}
