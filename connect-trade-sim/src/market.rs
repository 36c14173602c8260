//! Simulated prices: a seeded random walk per symbol, quotes, depth, trades, bars and options.
//!
//! The *model* runs in `f64` (a random walk and Black-Scholes are statistics, not money); every
//! number leaves this module as a `Decimal` rounded to cents (prices) or 4 places (Greeks,
//! sizes), so the books only ever see exact decimals.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Datelike, Duration as ChronoDuration, TimeZone, Timelike, Utc};
use rust_decimal::{Decimal, RoundingStrategy, prelude::FromPrimitive, prelude::ToPrimitive};

use connect_trade::stream::protocol::{
    Bar, BarInterval, Depth, Greeks, OptionContractQuote, PriceLevel, Quote, Trade, TradingSession,
};
use connect_trade::symbology::{OptionRight, OptionSymbol};

/// The symbols every simulator knows, with their price at the start.
pub(crate) const DEFAULT_UNIVERSE: &[(&str, &str)] = &[
    ("AAPL", "190.00"),
    ("MSFT", "420.00"),
    ("TSLA", "250.00"),
    ("SPY", "500.00"),
    ("QQQ", "430.00"),
    ("AMZN", "180.00"),
    ("NVDA", "120.00"),
    ("GOOGL", "170.00"),
    ("META", "500.00"),
    ("IBM", "190.00"),
    ("AMD", "150.00"),
    ("NFLX", "650.00"),
    ("JPM", "200.00"),
    ("BAC", "40.00"),
    ("F", "12.00"),
];

/// Annual risk-free rate of the option model.
const RATE: f64 = 0.04;
/// Seconds in a year, for option time to expiry.
const YEAR_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Rounds a model number to `dp` decimal places (half away from zero), never panicking.
pub(crate) fn dec(value: f64, dp: u32) -> Decimal {
    let mut out = Decimal::from_f64(value)
        .unwrap_or_default()
        .round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    out.rescale(dp);
    out
}

/// Cents.
pub(crate) fn cents(value: Decimal) -> Decimal {
    let mut out = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    out.rescale(2);
    out
}

/// FNV-1a: a hash that is the same on every machine and every Rust version.
fn stable_hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// An approximately standard normal number (Irwin-Hall: 12 uniforms).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    (0..12).map(|_| rng.f64()).sum::<f64>() - 6.0
}

/// One symbol's walk. The price at tick `t` depends only on (seed, symbol, t).
struct Walk {
    rng: fastrand::Rng,
    tick: u64,
    price: f64,
    /// Annual volatility, also used to price its options.
    vol: f64,
    /// The last trade's size.
    trade_size: u32,
    /// Volume since the start of the day.
    volume: Decimal,
    /// Recent (tick, price) pairs, for live bars.
    history: VecDeque<(u64, f64)>,
}

/// How many ticks of history a symbol keeps for bars.
const HISTORY: usize = 200_000;

/// The market: the walks and how time maps to ticks.
pub(crate) struct Market {
    seed: u64,
    start: DateTime<Utc>,
    tick_seconds: f64,
    /// Per-tick volatility multiplier: sqrt(tick / year).
    tick_scale: f64,
    base_prices: HashMap<String, Decimal>,
    walks: HashMap<String, Walk>,
    /// Shares available at the best price per tick (also the quoted size).
    pub(crate) fill_size: Decimal,
}

/// An OCC option symbol, compact (`AAPL251031C00190000`) or padded (`SPXW  240420C…`), read
/// by the SDK's own parser: the simulator accepts exactly the symbols the SDK builds.
pub(crate) fn parse_option(symbol: &str) -> Option<OptionSymbol> {
    symbol.trim().parse().ok()
}

/// A priced option.
pub(crate) struct OptionPrice {
    pub mid: f64,
    pub greeks: Greeks,
}

impl Market {
    pub(crate) fn new(
        seed: u64,
        start: DateTime<Utc>,
        tick_seconds: f64,
        extra: &[(String, Decimal)],
        fill_size: Decimal,
    ) -> Self {
        let mut base_prices: HashMap<String, Decimal> = DEFAULT_UNIVERSE
            .iter()
            .filter_map(|(s, p)| Some((s.to_string(), p.parse().ok()?)))
            .collect();
        for (symbol, price) in extra {
            base_prices.insert(symbol.to_ascii_uppercase(), *price);
        }
        Market {
            seed,
            start,
            tick_seconds,
            tick_scale: (tick_seconds / YEAR_SECONDS).sqrt(),
            base_prices,
            walks: HashMap::new(),
            fill_size,
        }
    }

    /// Whether the symbol is an equity the market knows.
    pub(crate) fn knows_equity(&self, symbol: &str) -> bool {
        self.base_prices.contains_key(symbol)
    }

    /// The equity symbols known, sorted.
    pub(crate) fn equities(&self) -> Vec<String> {
        let mut all: Vec<String> = self.base_prices.keys().cloned().collect();
        all.sort();
        all
    }

    /// The underlying of an option, if the market knows it (`SPXW` → `SPX` style roots too).
    pub(crate) fn underlying_of(&self, spec: &OptionSymbol) -> Option<String> {
        let root = spec.root();
        if self.knows_equity(root) {
            return Some(root.to_string());
        }
        if self.knows_equity(spec.underlying()) {
            return Some(spec.underlying().to_string());
        }
        let trimmed = root.trim_end_matches(|c: char| c.is_ascii_digit() || c == 'W');
        self.knows_equity(trimmed).then(|| trimmed.to_string())
    }

    fn walk(&mut self, symbol: &str, tick: u64) -> Option<&mut Walk> {
        if !self.walks.contains_key(symbol) {
            let base = self.base_prices.get(symbol)?.to_f64()?;
            let hash = stable_hash(symbol);
            let walk = Walk {
                rng: fastrand::Rng::with_seed(self.seed ^ hash),
                tick: 0,
                price: base,
                vol: 0.20 + (hash % 20) as f64 / 100.0,
                trade_size: 100,
                volume: Decimal::ZERO,
                history: VecDeque::from([(0, base)]),
            };
            self.walks.insert(symbol.to_string(), walk);
        }
        let scale = self.tick_scale;
        let walk = self.walks.get_mut(symbol)?;
        while walk.tick < tick {
            let shock = normal(&mut walk.rng);
            walk.trade_size = walk.rng.u32(1..=5) * 100;
            walk.price = (walk.price * (walk.vol * scale * shock).exp()).max(0.01);
            walk.tick += 1;
            walk.volume += Decimal::from(walk.trade_size);
            walk.history.push_back((walk.tick, walk.price));
            if walk.history.len() > HISTORY {
                walk.history.pop_front();
            }
        }
        Some(walk)
    }

    /// Moves every symbol already in use to `tick`.
    pub(crate) fn advance_all(&mut self, tick: u64) {
        let symbols: Vec<String> = self.walks.keys().cloned().collect();
        for symbol in symbols {
            self.walk(&symbol, tick);
        }
    }

    /// Starts a new trading day: volumes restart.
    pub(crate) fn new_day(&mut self) {
        for walk in self.walks.values_mut() {
            walk.volume = Decimal::ZERO;
        }
    }

    /// The mid price of an equity at `tick`, in cents.
    pub(crate) fn mid(&mut self, symbol: &str, tick: u64) -> Option<Decimal> {
        let price = self.walk(symbol, tick)?.price;
        Some(dec(price, 2).max(Decimal::new(1, 2)))
    }

    fn half_spread(mid: Decimal) -> Decimal {
        cents(mid * Decimal::new(1, 4)).max(Decimal::new(1, 2))
    }

    /// Best bid and ask of an equity or an option.
    pub(crate) fn bid_ask(
        &mut self,
        symbol: &str,
        tick: u64,
        now: DateTime<Utc>,
    ) -> Option<(Decimal, Decimal)> {
        if let Some(mid) = self.mid(symbol, tick) {
            let half = Self::half_spread(mid);
            return Some(((mid - half).max(Decimal::new(1, 2)), mid + half));
        }
        let spec = parse_option(symbol)?;
        let priced = self.price_option(&spec, tick, now)?;
        let mid = dec(priced.mid, 2).max(Decimal::new(1, 2));
        let half = cents(mid * Decimal::new(1, 2)).max(Decimal::new(1, 2));
        Some(((mid - half).max(Decimal::new(1, 2)), mid + half))
    }

    /// The last price of a symbol (the mid), equity or option.
    pub(crate) fn last(&mut self, symbol: &str, tick: u64, now: DateTime<Utc>) -> Option<Decimal> {
        if let Some(mid) = self.mid(symbol, tick) {
            return Some(mid);
        }
        let spec = parse_option(symbol)?;
        Some(dec(self.price_option(&spec, tick, now)?.mid, 2).max(Decimal::new(1, 2)))
    }

    /// Black-Scholes price and Greeks of an option on a known underlying.
    pub(crate) fn price_option(
        &mut self,
        spec: &OptionSymbol,
        tick: u64,
        now: DateTime<Utc>,
    ) -> Option<OptionPrice> {
        let underlying = self.underlying_of(spec)?;
        let walk = self.walk(&underlying, tick)?;
        let (spot, vol) = (walk.price, walk.vol);
        let strike = spec.strike().to_f64()?;
        let expiry = Utc
            .from_utc_datetime(&spec.expiry().and_hms_opt(21, 0, 0)?)
            .signed_duration_since(now);
        let t = expiry.num_seconds() as f64 / YEAR_SECONDS;
        Some(black_scholes(spot, strike, t, vol, spec.is_call()))
    }

    /// A level 1 quote.
    pub(crate) fn quote(&mut self, symbol: &str, tick: u64, now: DateTime<Utc>) -> Option<Quote> {
        let (bid, ask) = self.bid_ask(symbol, tick, now)?;
        Some(Quote {
            symbol: symbol.into(),
            bid: Some(bid),
            bid_size: Some(self.fill_size),
            ask: Some(ask),
            ask_size: Some(self.fill_size),
            timestamp: Some(now),
        })
    }

    /// The trade of this tick.
    pub(crate) fn trade(&mut self, symbol: &str, tick: u64, now: DateTime<Utc>) -> Option<Trade> {
        let mid = self.mid(symbol, tick)?;
        let size = Decimal::from(self.walk(symbol, tick)?.trade_size);
        Some(Trade {
            symbol: symbol.into(),
            price: mid,
            size,
            session: Some(session_at(now)),
            timestamp: Some(now),
        })
    }

    /// A level 2 book of `levels` per side.
    pub(crate) fn depth(
        &mut self,
        symbol: &str,
        tick: u64,
        now: DateTime<Utc>,
        levels: u32,
    ) -> Option<Depth> {
        let (bid, ask) = self.bid_ask(symbol, tick, now)?;
        let step = Decimal::new(1, 2);
        let size = self.fill_size;
        let level = |i: u32, price: Decimal| PriceLevel {
            price,
            size: size * Decimal::from(i + 1),
        };
        Some(Depth {
            symbol: symbol.into(),
            bids: (0..levels)
                .map(|i| level(i, bid - step * Decimal::from(i)))
                .filter(|l| l.price > Decimal::ZERO)
                .collect(),
            asks: (0..levels)
                .map(|i| level(i, ask + step * Decimal::from(i)))
                .collect(),
            timestamp: Some(now),
        })
    }

    /// The options chain of an underlying: the first Friday at least a day away, 7 strikes
    /// around the money, calls and puts.
    pub(crate) fn chain(
        &mut self,
        underlying: &str,
        tick: u64,
        now: DateTime<Utc>,
        greeks: bool,
    ) -> Vec<OptionContractQuote> {
        let Some(spot) = self.mid(underlying, tick) else {
            return Vec::new();
        };
        let step = if spot < Decimal::from(25) {
            Decimal::ONE
        } else if spot < Decimal::from(200) {
            Decimal::from(5)
        } else {
            Decimal::from(10)
        };
        let atm = (spot / step).round() * step;
        let mut expiry = now.date_naive() + ChronoDuration::days(1);
        while expiry.weekday() != chrono::Weekday::Fri {
            expiry += ChronoDuration::days(1);
        }
        let volume = self
            .walks
            .get(underlying)
            .map(|w| w.volume)
            .unwrap_or_default();
        let mut out = Vec::new();
        for i in -3i64..=3 {
            let strike = atm + step * Decimal::from(i);
            if strike <= Decimal::ZERO {
                continue;
            }
            for call in [true, false] {
                let right = if call {
                    OptionRight::Call
                } else {
                    OptionRight::Put
                };
                let Ok(spec) = OptionSymbol::new(underlying, expiry, right, strike) else {
                    continue;
                };
                let symbol = spec.to_string();
                let Some(priced) = self.price_option(&spec, tick, now) else {
                    continue;
                };
                let Some((bid, ask)) = self.bid_ask(&symbol, tick, now) else {
                    continue;
                };
                out.push(OptionContractQuote {
                    underlying: underlying.into(),
                    symbol: symbol.into(),
                    bid: Some(bid),
                    ask: Some(ask),
                    last: Some(dec(priced.mid, 2).max(Decimal::new(1, 2))),
                    volume: Some((volume / Decimal::from(50)).trunc()),
                    open_interest: Some(Decimal::from(1000 + (stable_hash(spec.root()) % 9000))),
                    greeks: greeks.then_some(priced.greeks),
                    timestamp: Some(now),
                });
            }
        }
        out
    }

    /// Bars of `interval` for `symbol`: the `count` most recent complete bars ending at or
    /// before `now`, oldest first, restricted to `[from, to)` when given. Bars before the start
    /// of the simulation are synthesized backwards from the starting price (deterministic).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn bars(
        &mut self,
        symbol: &str,
        interval: &BarInterval,
        tick: u64,
        now: DateTime<Utc>,
        count: u32,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Vec<Bar> {
        let Some(seconds) = interval_seconds(interval) else {
            return Vec::new();
        };
        if self.walk(symbol, tick).is_none() {
            return Vec::new();
        }
        let count = count.min(1000) as i64;
        let last_end = floor_to(now, seconds);
        let mut bars = Vec::new();
        for k in (1..=count).rev() {
            let start = last_end - ChronoDuration::seconds(seconds * k);
            let end = start + ChronoDuration::seconds(seconds);
            if from.is_some_and(|f| start < f) || to.is_some_and(|t| start >= t) {
                continue;
            }
            if let Some(bar) = self.bar(symbol, interval, start, end) {
                bars.push(bar);
            }
        }
        bars
    }

    /// The bar of `[start, end)`.
    pub(crate) fn bar(
        &mut self,
        symbol: &str,
        interval: &BarInterval,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<Bar> {
        let seconds = interval_seconds(interval)?;
        let first_tick = self.tick_at(start);
        let last_tick = self.tick_at(end);
        let walk = self.walks.get(symbol)?;
        let prices: Vec<f64> = walk
            .history
            .iter()
            .filter(|(t, _)| *t as i64 >= first_tick && (*t as i64) < last_tick.max(first_tick + 1))
            .map(|(_, p)| *p)
            .collect();
        let (open, high, low, close, volume) = if start < self.start {
            // Before the simulation: a synthetic bar on a walk going back from the start price.
            let base = walk.history.front().map(|(_, p)| *p)?;
            let back = ((self.start - start).num_seconds() + seconds - 1) / seconds.max(1);
            let salt = self.seed ^ stable_hash(symbol) ^ ((seconds as u64) << 20);
            let step = walk.vol * (seconds as f64 / YEAR_SECONDS).sqrt();
            let factor = |k: i64| -> f64 {
                let mut r = fastrand::Rng::with_seed(salt ^ (k as u64).wrapping_mul(0x9e37_79b9));
                (step * normal(&mut r)).exp()
            };
            // P_j = price j bars before the start; the bar `back` opens at P_back, closes at P_(back-1).
            let close = base / (1..back).map(factor).product::<f64>().max(1e-9);
            let open = close / factor(back);
            let mut rng = fastrand::Rng::with_seed(salt ^ back as u64);
            let wiggle = 1.0 + rng.f64() * 0.002;
            let volume = Decimal::from(rng.u32(10..100) * 1000);
            (
                open,
                open.max(close) * wiggle,
                open.min(close) / wiggle,
                close,
                volume,
            )
        } else if prices.is_empty() {
            return None;
        } else {
            let open = prices[0];
            let close = prices[prices.len() - 1];
            let high = prices.iter().cloned().fold(f64::MIN, f64::max);
            let low = prices.iter().cloned().fold(f64::MAX, f64::min);
            (
                open,
                high,
                low,
                close,
                Decimal::from(prices.len() as u64 * 100),
            )
        };
        Some(Bar {
            symbol: symbol.into(),
            interval: interval.clone(),
            start,
            open: dec(open, 2),
            high: dec(high, 2),
            low: dec(low, 2),
            close: dec(close, 2),
            volume,
            backfill: false,
        })
    }

    fn tick_at(&self, time: DateTime<Utc>) -> i64 {
        let seconds = (time - self.start).num_milliseconds() as f64 / 1000.0;
        (seconds / self.tick_seconds).ceil() as i64
    }
}

/// The length of a bar interval in seconds.
pub(crate) fn interval_seconds(interval: &BarInterval) -> Option<i64> {
    Some(match interval {
        BarInterval::Minute1 => 60,
        BarInterval::Minute5 => 300,
        BarInterval::Minute15 => 900,
        BarInterval::Hour1 => 3600,
        BarInterval::Day1 => 86_400,
        BarInterval::Unknown(_) => return None,
    })
}

/// `time` rounded down to a multiple of `seconds` since the epoch.
pub(crate) fn floor_to(time: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    let ts = time.timestamp();
    Utc.timestamp_opt(ts - ts.rem_euclid(seconds.max(1)), 0)
        .single()
        .unwrap_or(time)
}

/// The session at a time: regular hours are 14:30–21:00 UTC.
pub(crate) fn session_at(now: DateTime<Utc>) -> TradingSession {
    let minutes = now.hour() * 60 + now.minute();
    if (14 * 60 + 30..21 * 60).contains(&minutes) {
        TradingSession::Regular
    } else {
        TradingSession::Extended
    }
}

fn norm_cdf(x: f64) -> f64 {
    // Abramowitz-Stegun 7.1.26 through erf.
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs() / std::f64::consts::SQRT_2);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-(x * x) / 2.0).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

fn norm_pdf(x: f64) -> f64 {
    (-(x * x) / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Black-Scholes (no dividends). At or after expiry: intrinsic value.
fn black_scholes(spot: f64, strike: f64, t: f64, vol: f64, call: bool) -> OptionPrice {
    if t <= 0.0 || strike <= 0.0 {
        let intrinsic = if call { spot - strike } else { strike - spot }.max(0.0);
        let itm = intrinsic > 0.0;
        return OptionPrice {
            mid: intrinsic,
            greeks: Greeks {
                delta: match (call, itm) {
                    (true, true) => Decimal::ONE,
                    (false, true) => Decimal::NEGATIVE_ONE,
                    _ => Decimal::ZERO,
                },
                gamma: Decimal::ZERO,
                theta: Decimal::ZERO,
                vega: Decimal::ZERO,
                rho: Some(Decimal::ZERO),
                implied_volatility: Some(dec(vol, 4)),
            },
        };
    }
    let sqrt_t = t.sqrt();
    let d1 = ((spot / strike).ln() + (RATE + vol * vol / 2.0) * t) / (vol * sqrt_t);
    let d2 = d1 - vol * sqrt_t;
    let discount = (-RATE * t).exp();
    let (price, delta, rho) = if call {
        (
            spot * norm_cdf(d1) - strike * discount * norm_cdf(d2),
            norm_cdf(d1),
            strike * t * discount * norm_cdf(d2),
        )
    } else {
        (
            strike * discount * norm_cdf(-d2) - spot * norm_cdf(-d1),
            norm_cdf(d1) - 1.0,
            -strike * t * discount * norm_cdf(-d2),
        )
    };
    let gamma = norm_pdf(d1) / (spot * vol * sqrt_t);
    let vega = spot * norm_pdf(d1) * sqrt_t;
    let theta_year = if call {
        -spot * norm_pdf(d1) * vol / (2.0 * sqrt_t) - RATE * strike * discount * norm_cdf(d2)
    } else {
        -spot * norm_pdf(d1) * vol / (2.0 * sqrt_t) + RATE * strike * discount * norm_cdf(-d2)
    };
    OptionPrice {
        mid: price.max(0.0),
        greeks: Greeks {
            delta: dec(delta, 4),
            gamma: dec(gamma, 4),
            theta: dec(theta_year / 365.0, 4),
            vega: dec(vega / 100.0, 4),
            rho: Some(dec(rho / 100.0, 4)),
            implied_volatility: Some(dec(vol, 4)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn market(seed: u64) -> Market {
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 15, 0, 0).unwrap();
        Market::new(seed, start, 1.0, &[], Decimal::from(100))
    }

    #[test]
    fn prices_depend_only_on_seed_symbol_and_tick() {
        let mut a = market(7);
        let mut b = market(7);
        // `a` walks MSFT along the way, `b` does not: AAPL must not care.
        for t in 0..50 {
            a.mid("MSFT", t);
            a.mid("AAPL", t);
        }
        assert_eq!(a.mid("AAPL", 50), b.mid("AAPL", 50));
        assert_ne!(market(8).mid("AAPL", 50), b.mid("AAPL", 50));
        assert_eq!(a.mid("NOPE", 1), None);
    }

    #[test]
    fn occ_symbols_round_trip() {
        let spec = parse_option("TSLA251031C00437500").unwrap();
        assert_eq!(spec.root(), "TSLA");
        assert_eq!(spec.strike(), "437.5".parse::<Decimal>().unwrap());
        assert!(spec.is_call());
        assert_eq!(spec.to_string(), "TSLA251031C00437500");
        assert!(
            parse_option("SPXW  240420P05040000").is_some_and(|s| s.is_put() && s.root() == "SPXW")
        );
        assert_eq!(parse_option("AAPL"), None);
    }

    #[test]
    fn options_on_known_underlyings_are_priced_weekly_roots_included() {
        let mut m = market(7);
        let now = Utc.with_ymd_and_hms(2026, 1, 5, 15, 0, 0).unwrap();
        let chain = m.chain("SPY", 0, now, false);
        assert_eq!(chain.len(), 14, "7 strikes, calls and puts");
        for quote in &chain {
            let spec = parse_option(&quote.symbol).expect("the chain's symbols parse");
            assert_eq!(m.underlying_of(&spec).as_deref(), Some("SPY"));
        }
        let weekly = parse_option("SPYW  260109C00500000").unwrap();
        assert_eq!(m.underlying_of(&weekly).as_deref(), Some("SPY"));
        let unknown = parse_option("ZZZZ  260109C00500000").unwrap();
        assert_eq!(m.underlying_of(&unknown), None);
    }

    #[test]
    fn black_scholes_matches_known_values_and_parity() {
        // S=100, K=100, t=1, vol=0.2, r=0.04: call ≈ 9.925, put ≈ 6.004.
        let call = black_scholes(100.0, 100.0, 1.0, 0.2, true);
        let put = black_scholes(100.0, 100.0, 1.0, 0.2, false);
        assert!((call.mid - 9.925).abs() < 0.01, "{}", call.mid);
        assert!((call.mid - put.mid - (100.0 - 100.0 * (-RATE).exp())).abs() < 1e-6);
        assert!(call.greeks.delta > Decimal::ZERO && put.greeks.delta < Decimal::ZERO);
    }
}
