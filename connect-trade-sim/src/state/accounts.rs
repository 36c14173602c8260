//! Accounts, balances, positions and transactions, and booking an execution into them.

use std::collections::{BTreeMap, HashSet};

use chrono::{Duration as ChronoDuration, NaiveDate};
use connect_trade::{
    codes::{BrokerCode, Instrument, TransactionType},
    rest::types::{Account, Balance, Position, Transaction},
};
use rust_decimal::Decimal;

use super::{ApiError, ApiResult, Payload, State, broker_name, round4};
use crate::market::cents;

#[derive(Clone, Debug, Default)]
pub(super) struct PosRec {
    pub(super) instrument: Option<Instrument>,
    pub(super) qty: Decimal,
    pub(super) avg: Decimal,
    pub(super) day_ref: Decimal,
    pub(super) realized: Decimal,
    pub(super) realized_today: Decimal,
    pub(super) multiplier: Decimal,
}

pub(super) struct AccountRec {
    pub(super) user_id: String,
    pub(super) connection_id: String,
    pub(super) broker: BrokerCode,
    pub(super) number: String,
    pub(super) cash: Decimal,
    pub(super) positions: BTreeMap<String, PosRec>,
    /// (day, cl_order_id) already used.
    pub(super) cl_ids: HashSet<(NaiveDate, String)>,
}

impl State {
    pub(super) fn account_of(&self, user_id: &str, account_id: &str) -> ApiResult<&AccountRec> {
        self.accounts
            .get(account_id)
            .filter(|a| a.user_id == user_id)
            .ok_or_else(|| ApiError::not_found(format!("account {account_id:?}")))
    }

    // ---------------------------------------------------------------------------------------
    // Accounts, balances, positions, transactions
    // ---------------------------------------------------------------------------------------

    /// The user's account ids matching the filters (404 for an unknown one).
    pub(super) fn account_ids(
        &self,
        user_id: &str,
        account_id: Option<&str>,
        connection_id: Option<&str>,
    ) -> ApiResult<Vec<String>> {
        if let Some(account) = account_id {
            self.account_of(user_id, account)?;
        }
        if let Some(connection) = connection_id {
            self.connection_of(user_id, connection)?;
        }
        Ok(self
            .accounts
            .iter()
            .filter(|(id, a)| {
                a.user_id == user_id
                    && account_id.is_none_or(|want| want == id.as_str())
                    && connection_id.is_none_or(|want| want == a.connection_id)
            })
            .map(|(id, _)| id.clone())
            .collect())
    }

    pub(crate) fn list_accounts(
        &self,
        user_id: &str,
        connection_id: Option<&str>,
        broker: Option<&BrokerCode>,
    ) -> ApiResult<Vec<Account>> {
        let ids = self.account_ids(user_id, None, connection_id)?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let a = self.accounts.get(id)?;
                if broker.is_some_and(|b| *b != a.broker) {
                    return None;
                }
                Some(rest_type!(Account {
                    account_id: id.clone(),
                    account_name: Some(format!("{} paper account", broker_name(&a.broker))),
                    account_number: Some(a.number.clone()),
                    account_type: Some("margin".to_string()),
                    broker: Some(a.broker.clone()),
                    connection_id: Some(a.connection_id.clone()),
                    institution_name: Some(broker_name(&a.broker).to_string()),
                    status: Some("active".to_string()),
                }))
            })
            .collect())
    }

    /// Cash set aside for the open buy orders of an account, leaving out order `except`.
    pub(super) fn reserved(&mut self, account_id: &str, except: Option<usize>) -> Decimal {
        let (tick, now) = (self.tick, self.now);
        let mut reserved = Decimal::ZERO;
        let open: Vec<usize> = (0..self.orders.len())
            .filter(|&i| {
                let o = &self.orders[i];
                Some(i) != except && o.wire.account_id == account_id && o.is_open() && o.buy
            })
            .collect();
        for i in open {
            let o = &self.orders[i];
            let (remaining, multiplier) = (o.remaining(), o.multiplier);
            let limit = o.wire.order_limit_price.or(o.wire.stop_price);
            let single = o.legs.is_empty().then(|| o.wire.symbol.clone()).flatten();
            let price = match (limit, single) {
                (Some(limit), _) => limit.max(Decimal::ZERO),
                (None, Some(symbol)) => self
                    .market
                    .bid_ask(&symbol, tick, now)
                    .map(|(_, ask)| ask)
                    .unwrap_or_default(),
                (None, None) => Decimal::ZERO,
            };
            reserved += remaining * price * multiplier;
        }
        reserved
    }

    pub(super) fn position_wire(&mut self, account_id: &str, symbol: &str, p: &PosRec) -> Position {
        let last = self
            .market
            .last(symbol, self.tick, self.now)
            .unwrap_or(p.avg);
        let unrealized = cents((last - p.avg) * p.qty * p.multiplier);
        let daily = cents((last - p.day_ref) * p.qty * p.multiplier + p.realized_today);
        rest_type!(Position {
            account_id: Some(account_id.to_string()),
            average_price: Some(round4(p.avg)),
            daily_pl: Some(daily),
            instrument: p.instrument.clone(),
            last_price: Some(last),
            market_value: Some(cents(last * p.qty * p.multiplier)),
            quantity: p.qty,
            symbol: symbol.to_string(),
            total_pl: Some(cents(unrealized + p.realized)),
            unrealized_pl: Some(unrealized),
        })
    }

    pub(crate) fn balance(&mut self, account_id: &str) -> Option<Balance> {
        let account = self.accounts.get(account_id)?;
        let (cash, number) = (account.cash, account.number.clone());
        let positions: Vec<(String, PosRec)> = account
            .positions
            .iter()
            .map(|(s, p)| (s.clone(), p.clone()))
            .collect();
        let mut market_value = Decimal::ZERO;
        for (symbol, p) in &positions {
            let last = self
                .market
                .last(symbol, self.tick, self.now)
                .unwrap_or(p.avg);
            market_value += last * p.qty * p.multiplier;
        }
        let reserved = self.reserved(account_id, None);
        let buying_power = cents(cash - reserved).max(Decimal::ZERO);
        Some(rest_type!(Balance {
            account_id: account_id.to_string(),
            account_number: Some(number),
            buying_power: Some(buying_power),
            cash: Some(cents(cash)),
            currency: Some("USD".to_string()),
            equity: Some(cents(cash + market_value)),
            maintenance_margin: None,
            margin_buying_power: None,
        }))
    }

    pub(crate) fn list_balances(
        &mut self,
        user_id: &str,
        account_id: Option<&str>,
        connection_id: Option<&str>,
    ) -> ApiResult<Vec<Balance>> {
        let ids = self.account_ids(user_id, account_id, connection_id)?;
        Ok(ids.iter().filter_map(|id| self.balance(id)).collect())
    }

    pub(crate) fn list_positions(
        &mut self,
        user_id: &str,
        account_id: Option<&str>,
        connection_id: Option<&str>,
        symbols: Option<&[String]>,
    ) -> ApiResult<Vec<Position>> {
        let ids = self.account_ids(user_id, account_id, connection_id)?;
        let mut out = Vec::new();
        for id in ids {
            let positions: Vec<(String, PosRec)> = self.accounts[&id]
                .positions
                .iter()
                .filter(|(s, p)| {
                    !p.qty.is_zero() && symbols.is_none_or(|want| want.iter().any(|w| w == *s))
                })
                .map(|(s, p)| (s.clone(), p.clone()))
                .collect();
            for (symbol, p) in positions {
                out.push(self.position_wire(&id, &symbol, &p));
            }
        }
        Ok(out)
    }

    pub(crate) fn list_transactions(
        &self,
        user_id: &str,
        account_id: Option<&str>,
        connection_id: Option<&str>,
        start: Option<NaiveDate>,
        end: Option<NaiveDate>,
    ) -> ApiResult<Vec<Transaction>> {
        let ids: HashSet<String> = self
            .account_ids(user_id, account_id, connection_id)?
            .into_iter()
            .collect();
        Ok(self
            .transactions
            .iter()
            .filter(|t| {
                t.account_id.as_ref().is_some_and(|a| ids.contains(a))
                    && start.is_none_or(|s| t.trade_date.is_some_and(|d| d >= s))
                    && end.is_none_or(|e| t.trade_date.is_some_and(|d| d <= e))
            })
            .cloned()
            .collect())
    }

    /// Books one execution: position, cash, transaction, position event.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn book(
        &mut self,
        user_id: &str,
        account_id: &str,
        symbol: &str,
        buy: bool,
        qty: Decimal,
        price: Decimal,
        multiplier: Decimal,
        instrument: Option<Instrument>,
    ) {
        let now = self.now;
        let txn = self.id("txn");
        let Some(account) = self.accounts.get_mut(account_id) else {
            return;
        };
        let signed = if buy { qty } else { -qty };
        account.cash -= signed * price * multiplier;
        let p = account
            .positions
            .entry(symbol.to_string())
            .or_insert_with(|| PosRec {
                instrument,
                multiplier,
                ..PosRec::default()
            });
        if p.qty.is_zero() || p.qty.is_sign_positive() == signed.is_sign_positive() {
            let total = p.qty.abs() + qty;
            p.avg = ((p.avg * p.qty.abs() + price * qty) / total).round_dp(8);
            p.day_ref = ((p.day_ref * p.qty.abs() + price * qty) / total).round_dp(8);
            p.qty += signed;
        } else {
            let closing = qty.min(p.qty.abs());
            let direction = if p.qty.is_sign_positive() {
                Decimal::ONE
            } else {
                Decimal::NEGATIVE_ONE
            };
            p.realized += (price - p.avg) * closing * direction * multiplier;
            p.realized_today += (price - p.day_ref) * closing * direction * multiplier;
            p.qty += signed;
            if !p.qty.is_zero() && p.qty.is_sign_positive() == signed.is_sign_positive() {
                // Flipped: the rest opens at this price.
                p.avg = price;
                p.day_ref = price;
            }
        }
        let snapshot = p.clone();
        let verb = if buy { "Bought" } else { "Sold" };
        self.transactions.push(rest_type!(Transaction {
            account_id: Some(account_id.to_string()),
            amount: Some(cents(-signed * price * multiplier)),
            description: Some(format!("{verb} {qty} {symbol} @ {price}")),
            price: Some(price),
            quantity: Some(qty),
            settlement_date: Some(now.date_naive() + ChronoDuration::days(1)),
            symbol: Some(symbol.to_string()),
            trade_date: Some(now.date_naive()),
            transaction_id: Some(txn),
            type_: Some(if buy {
                TransactionType::Buy
            } else {
                TransactionType::Sell
            }),
        }));
        let position = self.position_wire(account_id, symbol, &snapshot);
        self.emit(user_id, account_id, Payload::Position(Box::new(position)));
    }
}
