//! One user's state: accounts, balances, positions and orders, with the stamps that decide
//! whether an update is newer than what is held.

use std::{
    cmp::Ordering,
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::update::Update;
use crate::{
    codes::{OrderSide, OrderStatus},
    rest::types::{Account, Balance, Order, Position},
    workflows::{self, AverageFill, DailyPlSummary, NullableSum, Overflow},
};

/// What is known about when a held value was current.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The entity's own `updated_at` (orders).
    updated_at: Option<DateTime<Utc>>,
    /// The stream update's `timestamp`.
    timestamp: Option<DateTime<Utc>>,
    /// (stream session, `sequence`): sequences compare only within one session.
    sequence: Option<(u64, u64)>,
}

impl Stamp {
    pub(crate) fn of_update(update: &Update, session: u64) -> Stamp {
        let meta = update.meta();
        Stamp {
            updated_at: match update {
                Update::Order { order, .. } => order.updated_at,
                _ => None,
            },
            timestamp: meta.timestamp,
            sequence: meta.sequence.map(|s| (session, s)),
        }
    }

    pub(crate) fn of_order(order: &Order) -> Stamp {
        Stamp {
            updated_at: order.updated_at,
            ..Stamp::default()
        }
    }

    /// How `incoming` compares with `self` in time, when the stamps can tell.
    fn compare(&self, incoming: &Stamp) -> Option<Ordering> {
        fn decide<T: Ord>(held: Option<T>, new: Option<T>) -> Option<Ordering> {
            match (held, new) {
                (Some(a), Some(b)) if a != b => Some(b.cmp(&a)),
                _ => None,
            }
        }
        decide(self.updated_at, incoming.updated_at)
            .or_else(|| match (self.sequence, incoming.sequence) {
                (Some((sa, qa)), Some((sb, qb))) if sa == sb => decide(Some(qa), Some(qb)),
                _ => None,
            })
            .or_else(|| decide(self.timestamp, incoming.timestamp))
    }
}

/// A held value with its stamp.
#[derive(Clone, Debug)]
pub(crate) struct Entry<T> {
    pub(crate) value: Arc<T>,
    pub(crate) stamp: Stamp,
}

impl<T: PartialEq> PartialEq for Entry<T> {
    /// Values only: two mirrors agree when they hold the same data, however they learnt it.
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

fn is_terminal(status: &OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Filled
            | OrderStatus::Cancelled
            | OrderStatus::Rejected
            | OrderStatus::Expired
            | OrderStatus::Replaced
    )
}

/// Whether an order update would take the held order backwards, when stamps cannot tell:
/// out of a final status, or losing fills.
fn order_regresses(held: &Order, incoming: &Order) -> bool {
    (is_terminal(&held.status) && !is_terminal(&incoming.status))
        || incoming.fills.len() < held.fills.len()
}

/// One account of a user: the account, its balance, positions (by symbol) and orders (by
/// `order_id`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountBook {
    pub(crate) account: Option<Arc<Account>>,
    pub(crate) balance: Option<Entry<Balance>>,
    pub(crate) positions: HashMap<String, Entry<Position>>,
    pub(crate) orders: HashMap<String, Entry<Order>>,
}

impl AccountBook {
    /// The account as `GET /accounts` describes it (`None` if known only from the stream).
    pub fn account(&self) -> Option<&Account> {
        self.account.as_deref()
    }

    /// The balance.
    pub fn balance(&self) -> Option<&Balance> {
        self.balance.as_ref().map(|e| &*e.value)
    }

    /// The open positions (quantity not zero), in no particular order.
    pub fn positions(&self) -> impl Iterator<Item = &Position> {
        self.positions.values().map(|e| &*e.value)
    }

    /// The position in `symbol`.
    pub fn position(&self, symbol: &str) -> Option<&Position> {
        self.positions.get(symbol).map(|e| &*e.value)
    }

    /// The orders, in no particular order.
    pub fn orders(&self) -> impl Iterator<Item = &Order> {
        self.orders.values().map(|e| &*e.value)
    }

    /// The order `order_id`, shared (cheap to keep).
    pub fn order(&self, order_id: &str) -> Option<Arc<Order>> {
        self.orders.get(order_id).map(|e| e.value.clone())
    }

    /// How many things the two differ by (accounts, balances, positions, orders).
    pub(crate) fn differences(&self, other: &AccountBook) -> usize {
        fn map_diff<T: PartialEq>(
            a: &HashMap<String, Entry<T>>,
            b: &HashMap<String, Entry<T>>,
        ) -> usize {
            let changed_or_removed = a
                .iter()
                .filter(|(k, v)| b.get(*k).is_none_or(|w| w.value != v.value))
                .count();
            let added = b.keys().filter(|k| !a.contains_key(*k)).count();
            changed_or_removed + added
        }
        usize::from(self.account != other.account)
            + usize::from(self.balance != other.balance)
            + map_diff(&self.positions, &other.positions)
            + map_diff(&self.orders, &other.orders)
    }
}

/// One user's mirrored state: a consistent snapshot (cloning it is cheap per entity: values
/// are shared, not copied). Compare two with `==` (data only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserBook {
    pub(crate) accounts: BTreeMap<String, AccountBook>,
}

impl UserBook {
    /// The accounts, by `account_id`.
    pub fn accounts(&self) -> impl Iterator<Item = (&str, &AccountBook)> {
        self.accounts.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// One account.
    pub fn account(&self, account_id: &str) -> Option<&AccountBook> {
        self.accounts.get(account_id)
    }

    /// Every balance.
    pub fn balances(&self) -> impl Iterator<Item = &Balance> {
        self.accounts.values().filter_map(AccountBook::balance)
    }

    /// Every open position, account after account.
    pub fn positions(&self) -> impl Iterator<Item = &Position> {
        self.accounts.values().flat_map(AccountBook::positions)
    }

    /// Every order, account after account.
    pub fn orders(&self) -> impl Iterator<Item = &Order> {
        self.accounts.values().flat_map(AccountBook::orders)
    }

    /// The order `order_id` of `account_id`.
    pub fn order(&self, account_id: &str, order_id: &str) -> Option<Arc<Order>> {
        self.accounts.get(account_id)?.order(order_id)
    }

    /// The orders matching `keep`, shared.
    pub fn orders_where(&self, mut keep: impl FnMut(&Order) -> bool) -> Vec<Arc<Order>> {
        self.accounts
            .values()
            .flat_map(|a| a.orders.values())
            .filter(|e| keep(&e.value))
            .map(|e| e.value.clone())
            .collect()
    }

    /// How many orders are held.
    pub fn order_count(&self) -> usize {
        self.accounts.values().map(|a| a.orders.len()).sum()
    }

    /// How many positions are held.
    pub fn position_count(&self) -> usize {
        self.accounts.values().map(|a| a.positions.len()).sum()
    }

    /// Total unrealized P&L ([`workflows::total_unrealized_pl`]).
    pub fn unrealized_pl(&self) -> Result<NullableSum, Overflow> {
        workflows::total_unrealized_pl(self.positions())
    }

    /// The daily P&L summary ([`workflows::daily_pl_summary`]).
    pub fn daily_pl_summary(&self) -> Result<DailyPlSummary, Overflow> {
        workflows::daily_pl_summary(self.balances(), self.positions())
    }

    /// The partially filled orders ([`workflows::partially_filled_orders`]).
    pub fn partially_filled_orders(&self) -> Result<Vec<workflows::PartialFill<'_>>, Overflow> {
        workflows::partially_filled_orders(self.orders())
    }

    /// The average fill price of the orders in `symbol` (and of `side`, if given)
    /// ([`workflows::average_fill_price_of_orders`]).
    pub fn average_fill_price(
        &self,
        symbol: &str,
        side: Option<&OrderSide>,
    ) -> Result<Option<AverageFill>, Overflow> {
        workflows::average_fill_price_of_orders(self.orders().filter(|o| {
            o.symbol.as_deref() == Some(symbol) && side.is_none_or(|s| o.side.as_ref() == Some(s))
        }))
    }

    /// How many things differ between two books.
    pub(crate) fn differences(&self, other: &UserBook) -> usize {
        let empty = AccountBook::default();
        let mut n = 0;
        for (id, a) in &self.accounts {
            n += a.differences(other.accounts.get(id).unwrap_or(&empty));
        }
        for (id, b) in &other.accounts {
            if !self.accounts.contains_key(id) {
                n += empty.differences(b);
            }
        }
        n
    }

    /// Applies one update, unless it is older than what is held.
    pub(crate) fn apply(&mut self, update: &Update, stamp: Stamp) -> super::Applied {
        use super::Applied;
        let account_id = &update.meta().account_id;
        // Look up before inserting: the common case allocates nothing.
        if !self.accounts.contains_key(account_id) {
            self.accounts
                .insert(account_id.clone(), AccountBook::default());
        }
        let Some(account) = self.accounts.get_mut(account_id) else {
            return Applied::Unchanged;
        };
        match update {
            Update::Order { order, .. } => {
                match account.orders.get_mut(&order.order_id) {
                    Some(held) => {
                        let newer = match held.stamp.compare(&stamp) {
                            Some(Ordering::Less) => return Applied::Stale,
                            Some(Ordering::Greater) => true,
                            Some(Ordering::Equal) => false,
                            None if order_regresses(&held.value, order) => {
                                return Applied::Stale;
                            }
                            None => false,
                        };
                        // A strictly newer stamp is a change; otherwise compare the values so
                        // that a repeat is not reported as one.
                        if !newer && held.value == *order {
                            held.stamp = stamp;
                            return Applied::Unchanged;
                        }
                        *held = Entry {
                            value: order.clone(),
                            stamp,
                        };
                    }
                    None => {
                        account.orders.insert(
                            order.order_id.clone(),
                            Entry {
                                value: order.clone(),
                                stamp,
                            },
                        );
                    }
                }
                Applied::Changed
            }
            Update::Position { position, .. } => {
                if let Some(held) = account.positions.get(&position.symbol) {
                    if held.stamp.compare(&stamp) == Some(Ordering::Less) {
                        return Applied::Stale;
                    }
                    if held.value == *position {
                        return Applied::Unchanged;
                    }
                }
                if position.quantity == Decimal::ZERO {
                    return if account.positions.remove(&position.symbol).is_some() {
                        Applied::Changed
                    } else {
                        Applied::Unchanged
                    };
                }
                let entry = Entry {
                    value: position.clone(),
                    stamp,
                };
                match account.positions.get_mut(&position.symbol) {
                    Some(held) => *held = entry,
                    None => {
                        account.positions.insert(position.symbol.clone(), entry);
                    }
                }
                Applied::Changed
            }
            Update::Balance { balance, .. } => {
                if let Some(held) = &account.balance {
                    if held.stamp.compare(&stamp) == Some(Ordering::Less) {
                        return Applied::Stale;
                    }
                    if held.value == *balance {
                        return Applied::Unchanged;
                    }
                }
                account.balance = Some(Entry {
                    value: balance.clone(),
                    stamp,
                });
                Applied::Changed
            }
        }
    }
}
