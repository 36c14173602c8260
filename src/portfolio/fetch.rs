//! Reading one user's state over REST.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;

use super::book::{AccountBook, Entry, Stamp, UserBook};
use crate::{
    UserClient,
    codes::OrderStatusFilter,
    error::{Error, Result},
    rest::types::{Order, Position},
};

/// Which orders a snapshot loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderScope {
    /// Open orders created this long ago or later are loaded (GTC orders live across days).
    /// Default 30 days.
    pub open_lookback: Duration,
}

impl Default for OrderScope {
    fn default() -> Self {
        OrderScope {
            open_lookback: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Midnight UTC of `now`'s day.
pub(crate) fn midnight_utc(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|n| n.and_utc())
        .unwrap_or(now)
}

/// Every order matching `status` created at or after `since`, through the one order-history
/// pager (cursors when the server gives them, time windows otherwise; each order once).
pub async fn fetch_orders(
    user: &UserClient,
    status: OrderStatusFilter,
    since: DateTime<Utc>,
) -> Result<Vec<Order>> {
    user.list_orders_all(|q| q.status(status).start_time(since))
        .try_collect()
        .await
}

/// Today's orders (every status, since midnight UTC) and the open orders of the lookback
/// window, merged by `order_id`.
async fn fetch_scoped_orders(user: &UserClient, scope: &OrderScope) -> Result<Vec<Order>> {
    let now = Utc::now();
    let lookback = chrono::Duration::from_std(scope.open_lookback).unwrap_or_default();
    let (today, open) = futures::try_join!(
        fetch_orders(user, OrderStatusFilter::All, midnight_utc(now)),
        fetch_orders(user, OrderStatusFilter::Open, now - lookback),
    )?;
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(today.len() + open.len());
    let mut out: Vec<Order> = Vec::with_capacity(today.len() + open.len());
    for order in today.into_iter().chain(open) {
        match seen.get(&order.order_id) {
            // The same order in both reads: keep the later state.
            Some(&i) => {
                if order.updated_at > out[i].updated_at {
                    out[i] = order;
                }
            }
            None => {
                seen.insert(order.order_id.clone(), out.len());
                out.push(order);
            }
        }
    }
    Ok(out)
}

/// Reads a user's accounts, balances, positions and orders over REST into a book.
pub async fn fetch_user_book(user: &UserClient, scope: &OrderScope) -> Result<UserBook> {
    let (accounts, balances, orders) = futures::try_join!(
        async { Ok::<_, Error>(user.list_accounts().send().await?.into_inner()) },
        async { Ok::<_, Error>(user.list_balances().send().await?.into_inner()) },
        fetch_scoped_orders(user, scope),
    )?;
    let positions = futures::future::try_join_all(accounts.iter().map(|account| async move {
        let positions: Vec<Position> = user
            .list_positions()
            .account_id(account.account_id.clone())
            .send()
            .await?
            .into_inner();
        Ok::<_, Error>((account.account_id.clone(), positions))
    }))
    .await?;

    let mut book = UserBook::default();
    for account in accounts {
        let id = account.account_id.clone();
        book.accounts.entry(id).or_default().account = Some(Arc::new(account));
    }
    for balance in balances {
        let account = book.accounts.entry(balance.account_id.clone()).or_default();
        account.balance = Some(Entry {
            value: Arc::new(balance),
            stamp: Stamp::default(),
        });
    }
    for (account_id, list) in positions {
        let account: &mut AccountBook = book.accounts.entry(account_id).or_default();
        for position in list {
            if position.quantity.is_zero() {
                continue;
            }
            account.positions.insert(
                position.symbol.clone(),
                Entry {
                    value: Arc::new(position),
                    stamp: Stamp::default(),
                },
            );
        }
    }
    for order in orders {
        let stamp = Stamp::of_order(&order);
        book.accounts
            .entry(order.account_id.clone())
            .or_default()
            .orders
            .insert(
                order.order_id.clone(),
                Entry {
                    value: Arc::new(order),
                    stamp,
                },
            );
    }
    Ok(book)
}
