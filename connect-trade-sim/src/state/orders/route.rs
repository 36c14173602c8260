//! Routing an order to the paper broker: the order enters the book (`pending`), then the
//! broker accepts it (`working`) or rejects it with a reason (unknown or expired symbol,
//! buying power, position to sell).

use connect_trade::{
    codes::{Instrument, OrderSide, OrderStatus},
    rest::types::{Order, OrderLeg, PlaceOrderRequest},
};
use rust_decimal::{Decimal, RoundingStrategy};

use super::{LegRec, OrderRec};
use crate::{
    market::{cents, parse_option},
    state::State,
};

impl State {
    /// Puts a checked request in the book as a `pending` order; returns its index.
    pub(super) fn enter_order(
        &mut self,
        user_id: &str,
        req: &PlaceOrderRequest,
        instrument: &Instrument,
    ) -> usize {
        let multi = *instrument == Instrument::MultiLegOption;
        let order_id = self.id("ord");
        let symbol = req.symbol.as_ref().map(|s| s.trim().to_ascii_uppercase());
        let legs: Vec<LegRec> = req
            .legs
            .iter()
            .map(|l| LegRec {
                symbol: l.symbol.trim().to_ascii_uppercase(),
                buy: l.action.is_buy().unwrap_or(true),
                ratio: l.ratio,
            })
            .collect();
        let buy = if multi {
            true
        } else {
            req.side.as_ref().and_then(|s| s.is_buy()).unwrap_or(true)
        };
        let multiplier = if *instrument == Instrument::Equity {
            Decimal::ONE
        } else {
            Decimal::from(100)
        };
        let created = self.creation_time();
        let wire = rest_type!(Order {
            account_id: req.account_id.clone(),
            avg_fill_price: None,
            broker: Some(req.broker.clone()),
            broker_status: Some("received".to_string()),
            cl_order_id: Some(req.cl_order_id.clone()),
            created_at: Some(created),
            filled_qty: Some(Decimal::ZERO),
            fills: Vec::new(),
            instrument: Some(instrument.clone()),
            legs: req
                .legs
                .iter()
                .zip(&legs)
                .map(|(l, r)| rest_type!(OrderLeg {
                    action: l.action.clone(),
                    ratio: l.ratio,
                    symbol: r.symbol.clone(),
                }))
                .collect::<Vec<_>>(),
            order_id: order_id.clone(),
            order_limit_price: req.order_limit_price,
            order_notional: req.order_notional,
            order_qty: req.order_qty,
            order_tif: Some(req.order_tif.clone()),
            order_type: Some(req.order_type.clone()),
            reject_reason: None,
            replaced_by: None,
            side: req.side.clone(),
            status: OrderStatus::Pending,
            stop_price: req.stop_price,
            symbol: symbol.clone(),
            updated_at: Some(self.now),
        });
        let seq = self.next_id;
        self.orders.push(OrderRec {
            wire,
            seq,
            user_id: user_id.to_string(),
            qty: req.order_qty.unwrap_or_default(),
            filled: Decimal::ZERO,
            cost: Decimal::ZERO,
            buy,
            multiplier,
            legs,
            triggered: false,
        });
        let idx = self.orders.len() - 1;
        self.order_index.insert(order_id, idx);
        self.emit_order(idx);
        idx
    }

    /// The broker's answer: `working` (true) or `rejected` with a reason (false).
    pub(super) fn route(&mut self, idx: usize, instrument: &Instrument) -> bool {
        if let Some(reason) = self.rejection(idx, instrument) {
            let o = self.order_mut(idx);
            o.wire.reject_reason = Some(reason);
            self.set_status(idx, OrderStatus::Rejected, "rejected");
            return false;
        }
        self.set_status(idx, OrderStatus::Working, "accepted");
        true
    }

    /// Why the broker refuses the order, if it does.
    pub(super) fn rejection(&mut self, idx: usize, instrument: &Instrument) -> Option<String> {
        let (tick, now) = (self.tick, self.now);
        if *instrument == Instrument::Future {
            return Some("futures are not traded by the simulated paper broker".to_string());
        }
        let symbols: Vec<String> = self.orders[idx]
            .symbols()
            .iter()
            .map(|s| s.to_string())
            .collect();
        for symbol in &symbols {
            let is_option =
                parse_option(symbol).is_some_and(|spec| self.market.underlying_of(&spec).is_some());
            let known = match instrument {
                Instrument::Equity => self.market.knows_equity(symbol),
                _ => is_option,
            };
            if !known {
                return Some(format!("unknown symbol {symbol}"));
            }
            if let Some(spec) = parse_option(symbol)
                && spec.expiry() < now.date_naive()
            {
                return Some(format!("option {symbol} has expired"));
            }
        }
        // Quantity of a notional order, from the ask now.
        let o = &self.orders[idx];
        if let (Some(notional), Some(symbol)) = (o.wire.order_notional, symbols.first()) {
            let (bid, ask) = self.market.bid_ask(symbol, tick, now)?;
            let price = if o.buy { ask } else { bid };
            let qty = (notional / price).round_dp_with_strategy(4, RoundingStrategy::ToZero);
            if qty <= Decimal::ZERO {
                return Some("order_notional buys less than 0.0001 share".to_string());
            }
            self.order_mut(idx).qty = qty;
        }
        let o = &self.orders[idx];
        let (account_id, buy, qty, multiplier) =
            (o.wire.account_id.clone(), o.buy, o.qty, o.multiplier);
        let side = o.wire.side.clone();
        let limit = o.wire.order_limit_price.or(o.wire.stop_price);
        let legs = o.legs.clone();
        // Buying power: what a buy costs at its limit (or the ask now).
        let cost = if legs.is_empty() {
            if buy {
                let price = match limit {
                    Some(l) => l,
                    None => self.market.bid_ask(&symbols[0], tick, now)?.1,
                };
                qty * price * multiplier
            } else {
                Decimal::ZERO
            }
        } else {
            let net = match limit {
                Some(l) => l,
                None => self.net_price(&legs)?,
            };
            (qty * net * multiplier).max(Decimal::ZERO)
        };
        // The order is already in the book: leave it out of what is reserved.
        let cash = self
            .accounts
            .get(&account_id)
            .map(|a| a.cash)
            .unwrap_or_default();
        let available = cents(cash - self.reserved(&account_id, Some(idx))).max(Decimal::ZERO);
        if cost > available {
            return Some(format!(
                "insufficient buying power: the order needs {} and the account has {}",
                cents(cost),
                available
            ));
        }
        if matches!(side, Some(OrderSide::Sell) | Some(OrderSide::SellToClose)) {
            let held = self
                .accounts
                .get(&account_id)
                .and_then(|a| a.positions.get(&symbols[0]))
                .map(|p| p.qty)
                .unwrap_or_default();
            let selling: Decimal = self
                .orders
                .iter()
                .filter(|other| {
                    other.wire.account_id == account_id
                        && other.is_open()
                        && !other.buy
                        && other.wire.order_id != self.orders[idx].wire.order_id
                        && other.wire.symbol.as_deref() == Some(symbols[0].as_str())
                })
                .map(|other| other.remaining())
                .sum();
            if qty + selling > held {
                return Some(format!(
                    "insufficient position: selling {qty} {} but {held} held ({selling} already on sale); use SELL_SHORT to go short",
                    symbols[0]
                ));
            }
        }
        None
    }
}
