//! Filling (matching): an open order against the current prices, at most the liquidity per
//! tick; stop triggers, limits, IOC and FOK; each fill booked into the account.

use connect_trade::{
    codes::{Instrument, OrderStatus, OrderType, TimeInForce},
    rest::types::Fill,
};
use rust_decimal::Decimal;

use super::LegRec;
use crate::state::{Payload, State, round4};

impl State {
    /// The net price of legs now: buys at the ask, sells at the bid (positive = debit).
    pub(super) fn net_price(&mut self, legs: &[LegRec]) -> Option<Decimal> {
        let (tick, now) = (self.tick, self.now);
        let mut net = Decimal::ZERO;
        for leg in legs {
            let (bid, ask) = self.market.bid_ask(&leg.symbol, tick, now)?;
            net += if leg.buy {
                ask * leg.ratio
            } else {
                -(bid * leg.ratio)
            };
        }
        Some(net)
    }

    /// Tries to fill an open order at the current prices.
    pub(in crate::state) fn execute(&mut self, idx: usize) {
        let (tick, now) = (self.tick, self.now);
        let o = &self.orders[idx];
        if !matches!(
            o.wire.status,
            OrderStatus::Working | OrderStatus::PartiallyFilled
        ) {
            return;
        }
        let order_type = o.wire.order_type.clone().unwrap_or(OrderType::Market);
        let tif = o.wire.order_tif.clone().unwrap_or(TimeInForce::Day);
        let (buy, legs, remaining) = (o.buy, o.legs.clone(), o.remaining());
        let (limit, stop, triggered) = (o.wire.order_limit_price, o.wire.stop_price, o.triggered);
        let symbol = o.wire.symbol.clone().unwrap_or_default();
        let price = if legs.is_empty() {
            match self.market.bid_ask(&symbol, tick, now) {
                Some((bid, ask)) => {
                    if buy {
                        ask
                    } else {
                        bid
                    }
                }
                None => return,
            }
        } else {
            match self.net_price(&legs) {
                Some(net) => net,
                None => return,
            }
        };
        if matches!(order_type, OrderType::Stop | OrderType::StopLimit) && !triggered {
            let Some(stop) = stop else { return };
            let hit = if buy { price >= stop } else { price <= stop };
            if !hit {
                return self.unfilled(idx, &tif);
            }
            self.order_mut(idx).triggered = true;
            let status = self.orders[idx].wire.status.clone();
            self.set_status(idx, status, "triggered");
        }
        if matches!(order_type, OrderType::Limit | OrderType::StopLimit) {
            let Some(limit) = limit else { return };
            let ok = if buy { price <= limit } else { price >= limit };
            if !ok {
                return self.unfilled(idx, &tif);
            }
        }
        let available = if legs.is_empty() {
            self.market.fill_size
        } else {
            remaining
        };
        if tif == TimeInForce::Fok && remaining > available {
            let o = self.order_mut(idx);
            o.wire.reject_reason = Some(format!(
                "fill or kill: only {available} available at the price"
            ));
            return self.set_status(idx, OrderStatus::Cancelled, "not filled (FOK)");
        }
        self.fill(idx, remaining.min(available), price);
        if self.orders[idx].remaining() > Decimal::ZERO && tif == TimeInForce::Ioc {
            self.set_status(idx, OrderStatus::Cancelled, "rest cancelled (IOC)");
        }
    }

    /// An order that could not fill now: IOC and FOK end here.
    pub(super) fn unfilled(&mut self, idx: usize, tif: &TimeInForce) {
        if matches!(tif, TimeInForce::Ioc | TimeInForce::Fok) {
            self.set_status(idx, OrderStatus::Cancelled, "not filled");
        }
    }

    pub(super) fn fill(&mut self, idx: usize, qty: Decimal, price: Decimal) {
        if qty <= Decimal::ZERO {
            return;
        }
        let now = self.now;
        let fill_id = self.id("fill");
        let o = self.order_mut(idx);
        o.filled += qty;
        o.cost += qty * price;
        o.wire.fills.push(rest_type!(Fill {
            fill_id,
            price,
            quantity: qty,
            time: Some(now),
        }));
        o.wire.filled_qty = Some(o.filled);
        o.wire.avg_fill_price = Some(round4(o.cost / o.filled));
        let done = o.remaining().is_zero();
        let (account_id, user_id, buy, multiplier) = (
            o.wire.account_id.clone(),
            o.user_id.clone(),
            o.buy,
            o.multiplier,
        );
        let symbol = o.wire.symbol.clone();
        let instrument = o.wire.instrument.clone();
        let legs = o.legs.clone();
        if done {
            self.set_status(idx, OrderStatus::Filled, "filled");
        } else {
            self.set_status(idx, OrderStatus::PartiallyFilled, "partially filled");
        }
        // The books: one leg per symbol.
        let (tick, now) = (self.tick, self.now);
        let mut bookings: Vec<(String, bool, Decimal, Decimal, Option<Instrument>)> = Vec::new();
        if legs.is_empty() {
            bookings.push((symbol.unwrap_or_default(), buy, qty, price, instrument));
        } else {
            for leg in &legs {
                let (bid, ask) = self
                    .market
                    .bid_ask(&leg.symbol, tick, now)
                    .unwrap_or_default();
                bookings.push((
                    leg.symbol.clone(),
                    leg.buy,
                    qty * leg.ratio,
                    if leg.buy { ask } else { bid },
                    Some(Instrument::Option),
                ));
            }
        }
        for (symbol, buy, qty, price, instrument) in bookings {
            self.book(
                &user_id,
                &account_id,
                &symbol,
                buy,
                qty,
                price,
                multiplier,
                instrument,
            );
        }
        if let Some(balance) = self.balance(&account_id) {
            self.emit(&user_id, &account_id, Payload::Balance(Box::new(balance)));
        }
    }
}
