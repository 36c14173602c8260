//! Time passing: each tick moves prices and works the orders; the close expires DAY orders;
//! a new day resets the day's P&L references and drops expired tokens.

use std::collections::HashMap;

use chrono::{Duration as ChronoDuration, NaiveTime, TimeZone, Utc};
use connect_trade::codes::{OrderStatus, TimeInForce};
use rust_decimal::Decimal;

use super::{CLOSE, State};

impl State {
    // ---------------------------------------------------------------------------------------
    // Time
    // ---------------------------------------------------------------------------------------

    /// One step of the clock: prices move, day boundaries pass, orders work.
    pub(crate) fn step(&mut self, tick_length: ChronoDuration) {
        let before = self.now;
        self.now += tick_length;
        self.tick += 1;
        self.market.advance_all(self.tick);
        let mut day = before.date_naive();
        while day <= self.now.date_naive() {
            if let Some(close) = day
                .and_hms_opt(CLOSE, 0, 0)
                .map(|t| Utc.from_utc_datetime(&t))
                && before < close
                && close <= self.now
            {
                self.close_market();
            }
            day += ChronoDuration::days(1);
            let next_midnight = Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN));
            if before < next_midnight && next_midnight <= self.now {
                self.new_day();
            }
        }
        for idx in 0..self.orders.len() {
            if self.orders[idx].wire.status == OrderStatus::PendingCancel {
                self.set_status(idx, OrderStatus::Cancelled, "cancelled");
            } else {
                self.execute(idx);
            }
        }
    }

    /// The close: DAY orders (and OPEN, CLOSE, DAY+) still open expire.
    pub(crate) fn close_market(&mut self) {
        for idx in 0..self.orders.len() {
            let o = &self.orders[idx];
            let day_order = !matches!(
                o.wire.order_tif,
                Some(TimeInForce::Gtc) | Some(TimeInForce::GtcPlus)
            );
            if o.is_open() && day_order {
                self.set_status(idx, OrderStatus::Expired, "expired at the close");
            }
        }
    }

    pub(super) fn new_day(&mut self) {
        self.market.new_day();
        let (tick, now) = (self.tick, self.now);
        let symbols: Vec<String> = self
            .accounts
            .values()
            .flat_map(|a| a.positions.keys().cloned())
            .collect();
        let mut last: HashMap<String, Decimal> = HashMap::new();
        for symbol in symbols {
            if let Some(price) = self.market.last(&symbol, tick, now) {
                last.insert(symbol, price);
            }
        }
        for account in self.accounts.values_mut() {
            for (symbol, p) in account.positions.iter_mut() {
                if let Some(price) = last.get(symbol) {
                    p.day_ref = *price;
                }
                p.realized_today = Decimal::ZERO;
            }
        }
        self.tokens.retain(|_, t| t.expires_at > now);
    }

    /// The current quote-side price of a symbol, for the handle.
    pub(crate) fn price(&mut self, symbol: &str) -> Option<Decimal> {
        self.market.last(symbol, self.tick, self.now)
    }
}
