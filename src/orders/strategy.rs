//! Multi-leg option strategies.

use std::collections::HashSet;

use rust_decimal::Decimal;

use super::{OrderBuilder, OrderError, OrderRule};
use crate::{codes::OrderSide, rest::types::OrderLeg, symbology::OptionSymbol};

/// The most legs a multi-leg order may have.
pub const MAX_LEGS: usize = 4;
/// The fewest legs a multi-leg order may have.
pub const MIN_LEGS: usize = 2;

/// One leg of a multi-leg option order: a contract, what to do with it, and how many
/// contracts per unit of the strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Leg {
    /// The option contract.
    pub symbol: OptionSymbol,
    /// An option side: `BUY_TO_OPEN`, `SELL_TO_OPEN`, `BUY_TO_CLOSE` or `SELL_TO_CLOSE`.
    pub action: LegAction,
    /// Contracts of this leg per unit of the strategy (above zero).
    pub ratio: u32,
}

/// The action of a leg: the option sides only, so a leg cannot be given an equity side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LegAction {
    /// `BUY_TO_OPEN`.
    BuyToOpen,
    /// `BUY_TO_CLOSE`.
    BuyToClose,
    /// `SELL_TO_OPEN`.
    SellToOpen,
    /// `SELL_TO_CLOSE`.
    SellToClose,
}

impl LegAction {
    /// The API's side.
    pub fn side(self) -> OrderSide {
        match self {
            LegAction::BuyToOpen => OrderSide::BuyToOpen,
            LegAction::BuyToClose => OrderSide::BuyToClose,
            LegAction::SellToOpen => OrderSide::SellToOpen,
            LegAction::SellToClose => OrderSide::SellToClose,
        }
    }

    /// The action, if `side` is an option side.
    pub fn from_side(side: &OrderSide) -> Option<Self> {
        match side {
            OrderSide::BuyToOpen => Some(LegAction::BuyToOpen),
            OrderSide::BuyToClose => Some(LegAction::BuyToClose),
            OrderSide::SellToOpen => Some(LegAction::SellToOpen),
            OrderSide::SellToClose => Some(LegAction::SellToClose),
            _ => None,
        }
    }

    /// Whether the action buys.
    pub fn is_buy(self) -> bool {
        matches!(self, LegAction::BuyToOpen | LegAction::BuyToClose)
    }

    /// The action that closes what this one opens (`BUY_TO_OPEN` → `SELL_TO_CLOSE`,
    /// `SELL_TO_OPEN` → `BUY_TO_CLOSE`), and back.
    pub fn reversed(self) -> Self {
        match self {
            LegAction::BuyToOpen => LegAction::SellToClose,
            LegAction::SellToOpen => LegAction::BuyToClose,
            LegAction::SellToClose => LegAction::BuyToOpen,
            LegAction::BuyToClose => LegAction::SellToOpen,
        }
    }
}

impl Leg {
    /// A leg of `ratio` contracts.
    pub fn new(symbol: OptionSymbol, action: LegAction, ratio: u32) -> Self {
        Leg {
            symbol,
            action,
            ratio,
        }
    }

    /// `BUY_TO_OPEN` one contract per unit.
    pub fn buy(symbol: OptionSymbol) -> Self {
        Leg::new(symbol, LegAction::BuyToOpen, 1)
    }

    /// `SELL_TO_OPEN` one contract per unit.
    pub fn sell(symbol: OptionSymbol) -> Self {
        Leg::new(symbol, LegAction::SellToOpen, 1)
    }

    /// The leg as the API's [`OrderLeg`].
    pub fn to_order_leg(&self) -> OrderLeg {
        OrderLeg {
            action: self.action.side(),
            ratio: Decimal::from(self.ratio),
            symbol: self.symbol.to_string(),
        }
    }
}

/// What a [`Strategy`] is; kept so messages and code can tell strategies apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StrategyKind {
    /// Buy a call, sell a higher-strike call.
    BullCallSpread,
    /// Buy a put, sell a lower-strike put.
    BearPutSpread,
    /// Buy a call and a put of the same strike.
    LongStraddle,
    /// Buy a put and a higher-strike call.
    LongStrangle,
    /// Buy a put, sell a higher put, sell a higher call, buy a higher call.
    IronCondor,
    /// Buy some contracts of one strike, sell a different number of another.
    RatioSpread,
    /// Any 2 to 4 legs on one underlying.
    Custom,
}

/// A coherent set of 2 to 4 option legs on one underlying, ready to become a multi-leg
/// (`MLEG_OPT`) order with [`Strategy::order`].
///
/// Each constructor checks what its strategy needs (rights, same underlying and expiry,
/// strikes in order, ratios) and fails with an [`OrderError`] naming the rule otherwise.
/// Strategies open positions (`BUY_TO_OPEN` / `SELL_TO_OPEN`); [`Strategy::closing`] turns
/// one into the order that closes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strategy {
    kind: StrategyKind,
    legs: Vec<Leg>,
}

impl Strategy {
    /// Buy the lower-strike call, sell the higher-strike call; same underlying and expiry.
    ///
    /// ```
    /// use connect_trade::orders::Strategy;
    ///
    /// let spread = Strategy::bull_call_spread(
    ///     "SPY241018C00430000".parse()?,
    ///     "SPY241018C00440000".parse()?,
    /// )?;
    /// assert_eq!(spread.legs().len(), 2);
    /// // The wrong way round is not a bull call spread:
    /// assert!(Strategy::bull_call_spread(
    ///     "SPY241018C00440000".parse()?,
    ///     "SPY241018C00430000".parse()?,
    /// ).is_err());
    /// # Ok::<(), connect_trade::Error>(())
    /// ```
    pub fn bull_call_spread(
        long_call: OptionSymbol,
        short_call: OptionSymbol,
    ) -> Result<Self, OrderError> {
        let name = "a bull call spread";
        require_right(name, "the long leg", &long_call, true)?;
        require_right(name, "the short leg", &short_call, true)?;
        require_same_series(name, &[long_call, short_call])?;
        require_below(name, ("long call", &long_call), ("short call", &short_call))?;
        Strategy::checked(
            StrategyKind::BullCallSpread,
            vec![Leg::buy(long_call), Leg::sell(short_call)],
        )
    }

    /// Buy the higher-strike put, sell the lower-strike put; same underlying and expiry.
    ///
    /// ```
    /// use connect_trade::orders::Strategy;
    ///
    /// let spread = Strategy::bear_put_spread(
    ///     "AAPL241018P00190000".parse()?,
    ///     "AAPL241018P00180000".parse()?,
    /// )?;
    /// assert_eq!(spread.legs()[0].symbol.to_string(), "AAPL241018P00190000");
    /// # Ok::<(), connect_trade::Error>(())
    /// ```
    pub fn bear_put_spread(
        long_put: OptionSymbol,
        short_put: OptionSymbol,
    ) -> Result<Self, OrderError> {
        let name = "a bear put spread";
        require_right(name, "the long leg", &long_put, false)?;
        require_right(name, "the short leg", &short_put, false)?;
        require_same_series(name, &[long_put, short_put])?;
        require_below(name, ("short put", &short_put), ("long put", &long_put))?;
        Strategy::checked(
            StrategyKind::BearPutSpread,
            vec![Leg::buy(long_put), Leg::sell(short_put)],
        )
    }

    /// Buy a call and a put of the same underlying, expiry and strike.
    ///
    /// ```
    /// use connect_trade::orders::Strategy;
    ///
    /// let straddle = Strategy::long_straddle(
    ///     "TSLA251031C00437500".parse()?,
    ///     "TSLA251031P00437500".parse()?,
    /// )?;
    /// assert_eq!(straddle.legs().len(), 2);
    /// # Ok::<(), connect_trade::Error>(())
    /// ```
    pub fn long_straddle(call: OptionSymbol, put: OptionSymbol) -> Result<Self, OrderError> {
        let name = "a long straddle";
        require_right(name, "the call leg", &call, true)?;
        require_right(name, "the put leg", &put, false)?;
        require_same_series(name, &[call, put])?;
        if call.strike() != put.strike() {
            return Err(OrderError::new(
                OrderRule::StrikeOrder,
                format!(
                    "{name} buys a call and a put of the same strike; {call} and {put} differ \
                     (different strikes make a strangle: Strategy::long_strangle)"
                ),
            ));
        }
        Strategy::checked(
            StrategyKind::LongStraddle,
            vec![Leg::buy(call), Leg::buy(put)],
        )
    }

    /// Buy a put and a call of a higher strike; same underlying and expiry.
    ///
    /// ```
    /// use connect_trade::orders::Strategy;
    ///
    /// let strangle = Strategy::long_strangle(
    ///     "SPY241018P00420000".parse()?,
    ///     "SPY241018C00440000".parse()?,
    /// )?;
    /// assert_eq!(strangle.legs().len(), 2);
    /// # Ok::<(), connect_trade::Error>(())
    /// ```
    pub fn long_strangle(put: OptionSymbol, call: OptionSymbol) -> Result<Self, OrderError> {
        let name = "a long strangle";
        require_right(name, "the put leg", &put, false)?;
        require_right(name, "the call leg", &call, true)?;
        require_same_series(name, &[put, call])?;
        require_below(name, ("put", &put), ("call", &call))?;
        Strategy::checked(
            StrategyKind::LongStrangle,
            vec![Leg::buy(put), Leg::buy(call)],
        )
    }

    /// Buy a put, sell a higher put, sell a higher call, buy a still higher call; same
    /// underlying and expiry, strikes strictly increasing in that order (equal short strikes
    /// make an iron butterfly: build it with [`Strategy::custom`]).
    ///
    /// ```
    /// use connect_trade::orders::Strategy;
    ///
    /// let condor = Strategy::iron_condor(
    ///     "SPY241018P00410000".parse()?, // buy
    ///     "SPY241018P00420000".parse()?, // sell
    ///     "SPY241018C00440000".parse()?, // sell
    ///     "SPY241018C00450000".parse()?, // buy
    /// )?;
    /// assert_eq!(condor.legs().len(), 4);
    /// # Ok::<(), connect_trade::Error>(())
    /// ```
    pub fn iron_condor(
        long_put: OptionSymbol,
        short_put: OptionSymbol,
        short_call: OptionSymbol,
        long_call: OptionSymbol,
    ) -> Result<Self, OrderError> {
        let name = "an iron condor";
        require_right(name, "the long put", &long_put, false)?;
        require_right(name, "the short put", &short_put, false)?;
        require_right(name, "the short call", &short_call, true)?;
        require_right(name, "the long call", &long_call, true)?;
        require_same_series(name, &[long_put, short_put, short_call, long_call])?;
        require_below(name, ("long put", &long_put), ("short put", &short_put))?;
        require_below(name, ("short put", &short_put), ("short call", &short_call))?;
        require_below(name, ("short call", &short_call), ("long call", &long_call))?;
        Strategy::checked(
            StrategyKind::IronCondor,
            vec![
                Leg::buy(long_put),
                Leg::sell(short_put),
                Leg::sell(short_call),
                Leg::buy(long_call),
            ],
        )
    }

    /// Buy `long_ratio` contracts of one option and sell `short_ratio` of another of the same
    /// underlying, expiry and right, at a different strike; the ratios differ (equal ratios
    /// are a vertical spread) and are above zero.
    ///
    /// ```
    /// use connect_trade::orders::Strategy;
    ///
    /// // Buy 1 call at 430, sell 2 calls at 440.
    /// let ratio = Strategy::ratio_spread(
    ///     "SPY241018C00430000".parse()?, 1,
    ///     "SPY241018C00440000".parse()?, 2,
    /// )?;
    /// assert_eq!(ratio.legs()[1].ratio, 2);
    /// # Ok::<(), connect_trade::Error>(())
    /// ```
    pub fn ratio_spread(
        long: OptionSymbol,
        long_ratio: u32,
        short: OptionSymbol,
        short_ratio: u32,
    ) -> Result<Self, OrderError> {
        let name = "a ratio spread";
        if long.right() != short.right() {
            return Err(OrderError::new(
                OrderRule::LegRight,
                format!(
                    "{name} has legs of one right (both calls or both puts): {long} and {short}"
                ),
            ));
        }
        require_same_series(name, &[long, short])?;
        if long.strike() == short.strike() {
            return Err(OrderError::new(
                OrderRule::StrikeOrder,
                format!("{name} has legs of two different strikes: {long} and {short}"),
            ));
        }
        if long_ratio == short_ratio {
            return Err(OrderError::new(
                OrderRule::Ratio,
                format!(
                    "{name} buys and sells different numbers of contracts; {long_ratio}:{short_ratio} \
                     is a vertical spread (Strategy::bull_call_spread, Strategy::bear_put_spread \
                     or Strategy::custom)"
                ),
            ));
        }
        Strategy::checked(
            StrategyKind::RatioSpread,
            vec![
                Leg::new(long, LegAction::BuyToOpen, long_ratio),
                Leg::new(short, LegAction::SellToOpen, short_ratio),
            ],
        )
    }

    /// Any 2 to 4 legs: distinct contracts on one underlying, ratios above zero. Expiries
    /// may differ (calendar and diagonal spreads).
    ///
    /// ```
    /// use connect_trade::orders::{Leg, LegAction, Strategy};
    ///
    /// // A calendar spread: sell the near month, buy the far month.
    /// let calendar = Strategy::custom([
    ///     Leg::new("SPY241018C00430000".parse()?, LegAction::SellToOpen, 1),
    ///     Leg::new("SPY241115C00430000".parse()?, LegAction::BuyToOpen, 1),
    /// ])?;
    /// assert_eq!(calendar.legs().len(), 2);
    /// # Ok::<(), connect_trade::Error>(())
    /// ```
    pub fn custom(legs: impl IntoIterator<Item = Leg>) -> Result<Self, OrderError> {
        Strategy::checked(StrategyKind::Custom, legs.into_iter().collect())
    }

    /// Checks what every multi-leg order needs.
    fn checked(kind: StrategyKind, legs: Vec<Leg>) -> Result<Self, OrderError> {
        if !(MIN_LEGS..=MAX_LEGS).contains(&legs.len()) {
            return Err(OrderError::new(
                OrderRule::LegCount,
                format!(
                    "a multi-leg order has 2 to 4 legs; this one has {} (a single option is an \
                     OrderBuilder::option order)",
                    legs.len()
                ),
            ));
        }
        let mut seen = HashSet::new();
        for leg in &legs {
            if leg.ratio == 0 {
                return Err(OrderError::new(
                    OrderRule::LegRatio,
                    format!("the leg {} has ratio 0; ratios are 1 or more", leg.symbol),
                ));
            }
            if !seen.insert(leg.symbol) {
                return Err(OrderError::new(
                    OrderRule::DuplicateLeg,
                    format!(
                        "{} appears in two legs; give each contract one leg with its ratio",
                        leg.symbol
                    ),
                ));
            }
        }
        let underlying = legs[0].symbol.underlying();
        if let Some(other) = legs.iter().find(|l| l.symbol.underlying() != underlying) {
            return Err(OrderError::new(
                OrderRule::SameUnderlying,
                format!(
                    "all legs must be on one underlying: {} is on {underlying}, {} on {}",
                    legs[0].symbol,
                    other.symbol,
                    other.symbol.underlying()
                ),
            ));
        }
        Ok(Strategy { kind, legs })
    }

    /// Which strategy this is.
    pub fn kind(&self) -> StrategyKind {
        self.kind
    }

    /// The legs, in order.
    pub fn legs(&self) -> &[Leg] {
        &self.legs
    }

    /// The underlying all legs share (see [`OptionSymbol::underlying`]).
    pub fn underlying(&self) -> &str {
        self.legs.first().map_or("", |l| l.symbol.underlying())
    }

    /// The same legs with each action reversed (`BUY_TO_OPEN` → `SELL_TO_CLOSE`,
    /// `SELL_TO_OPEN` → `BUY_TO_CLOSE`): the order that closes this position.
    pub fn closing(&self) -> Self {
        Strategy {
            kind: self.kind,
            legs: self
                .legs
                .iter()
                .map(|l| Leg::new(l.symbol, l.action.reversed(), l.ratio))
                .collect(),
        }
    }

    /// The legs as the API's [`OrderLeg`]s.
    pub fn order_legs(&self) -> Vec<OrderLeg> {
        self.legs.iter().map(Leg::to_order_leg).collect()
    }

    /// A multi-leg order of this strategy, to complete with the account, quantity, price
    /// and time in force.
    pub fn order(self) -> OrderBuilder {
        OrderBuilder::multi_leg(self)
    }
}

fn require_right(
    strategy: &str,
    which: &str,
    symbol: &OptionSymbol,
    call: bool,
) -> Result<(), OrderError> {
    if symbol.is_call() == call {
        return Ok(());
    }
    let (want, got) = if call {
        ("a call", "a put")
    } else {
        ("a put", "a call")
    };
    Err(OrderError::new(
        OrderRule::LegRight,
        format!("in {strategy}, {which} is {want}; {symbol} is {got}"),
    ))
}

/// Same underlying and same expiry.
fn require_same_series(strategy: &str, symbols: &[OptionSymbol]) -> Result<(), OrderError> {
    let Some(first) = symbols.first() else {
        return Ok(());
    };
    for other in &symbols[1..] {
        if other.underlying() != first.underlying() {
            return Err(OrderError::new(
                OrderRule::SameUnderlying,
                format!(
                    "{strategy} has all legs on one underlying: {first} is on {}, {other} on {}",
                    first.underlying(),
                    other.underlying()
                ),
            ));
        }
        if other.expiry() != first.expiry() {
            return Err(OrderError::new(
                OrderRule::SameExpiry,
                format!(
                    "{strategy} has all legs expiring the same day: {first} expires {}, {other} \
                     {} (use Strategy::custom for calendars)",
                    first.expiry(),
                    other.expiry()
                ),
            ));
        }
    }
    Ok(())
}

/// `low` has a strictly lower strike than `high`.
fn require_below(
    strategy: &str,
    (low_name, low): (&str, &OptionSymbol),
    (high_name, high): (&str, &OptionSymbol),
) -> Result<(), OrderError> {
    if low.strike() < high.strike() {
        return Ok(());
    }
    Err(OrderError::new(
        OrderRule::StrikeOrder,
        format!(
            "in {strategy} the {low_name} must have a lower strike than the {high_name}; {low} \
             has {}, {high} has {}",
            low.strike(),
            high.strike()
        ),
    ))
}
