//! Submitting orders so that none is ever placed twice: the guard behind
//! [`OrderBuilder::send`], [`ModifyBuilder::send`] and [`cancel`].
//!
//! `POST /orders` is not idempotent: when a placement times out, the connection drops after
//! the request was sent, or the server answers 5xx, the order may or may not exist, and
//! sending it again blindly can buy twice. Connect Trade's idempotency key is `cl_order_id`
//! ("unique per order per day"); the guard uses it the way Stripe's SDKs use idempotency
//! keys:
//!
//! 1. Every attempt sends the same body, with the same `cl_order_id` (`new_cl_order_id` for
//!    a modification).
//! 2. After an attempt that *may have reached the server*
//!    ([`Error::may_have_reached_server`]) the order is looked up by that id (`GET /orders`,
//!    its account, status `all`, from midnight UTC) before anything is sent again; if it
//!    exists it is returned. A look-up that fails is tried again, never skipped.
//! 3. A `409 Conflict` (the id exists) returns the existing order.
//! 4. Attempts are bounded by the client's [`RetryPolicy`] (`max_retries + 1`), with
//!    exponential backoff and full jitter, `Retry-After` honoured. Failures that certainly did
//!    not reach the server (a refused connection, 429) are sent again; other 4xx answers are
//!    returned at once.
//! 5. If the call ends without the order after an attempt that may have reached the server,
//!    the error is [`Error::OrderOutcomeUnknown`], whatever the look-up's own error was: the
//!    outcome is never reported as "not placed" when it is not known.

use std::{future::Future, pin::pin, time::Duration};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use progenitor_client::ClientInfo;

use super::{ModifyBuilder, OrderBuilder, not_open};
use crate::{
    client::RetryPolicy,
    codes::{OrderStatus, OrderStatusFilter},
    error::{ECHO_CHARS, Error, OrderAction, Result, clip},
    rest::{
        self,
        types::{ModifyOrderRequest, Order, PlaceOrderRequest},
    },
};

/// How far before the first attempt a look-up starts, besides midnight UTC: covers clock skew
/// between this machine and the server.
const LOOKUP_SKEW: Duration = Duration::from_secs(15 * 60);

/// Midnight UTC of `now`'s day: the start of "today" for Connect Trade (a `cl_order_id` is
/// unique per day; the day's orders are listed from here). The SDK's one such helper.
pub(crate) fn midnight_utc(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|naive| naive.and_utc())
        .unwrap_or(now)
}

/// Where a look-up by client order id starts: midnight UTC of the first attempt's day, or a
/// little before the first attempt if that is earlier (clock skew).
fn lookup_start(first_attempt: DateTime<Utc>) -> DateTime<Utc> {
    let skewed = first_attempt - chrono::Duration::from_std(LOOKUP_SKEW).unwrap_or_default();
    midnight_utc(first_attempt).min(skewed)
}

/// The order of `account_id` whose `cl_order_id` is `cl_order_id`, created at or after
/// `since`, or `None` if there is none: `GET /orders` (status `all`), page after page.
///
/// This is how to settle an [`Error::OrderOutcomeUnknown`] later: pass its `cl_order_id`
/// and a `since` at or before the attempt (midnight UTC of its day is safe).
///
/// ```no_run
/// # async fn demo(user: &connect_trade::UserClient) -> connect_trade::Result<()> {
/// use chrono::{Duration, Utc};
/// use connect_trade::orders;
///
/// let since = Utc::now() - Duration::hours(1);
/// match orders::find_by_cl_order_id(user, "acc-1", "rebalance-0001", since).await? {
///     Some(order) => println!("it exists: {} is {}", order.order_id, order.status),
///     None => println!("it was not placed"),
/// }
/// # Ok(()) }
/// ```
pub async fn find_by_cl_order_id(
    client: &rest::Client,
    account_id: &str,
    cl_order_id: &str,
    since: DateTime<Utc>,
) -> Result<Option<Order>> {
    look_up(client, account_id, cl_order_id, None, since).await
}

/// Every look-up of the guard goes through here, and through the SDK's one order-history
/// pager ([`rest::Client::list_orders_all`]). `symbol` narrows the query when known (`None` for a multi-leg order).
async fn look_up(
    client: &rest::Client,
    account_id: &str,
    cl_order_id: &str,
    symbol: Option<&str>,
    since: DateTime<Utc>,
) -> Result<Option<Order>> {
    // The pager sets the page size and follows cursors or time windows itself.
    let orders = client.list_orders_all(|query| {
        let query = query
            .account_id(account_id)
            .status(OrderStatusFilter::All)
            .start_time(since);
        match symbol {
            Some(symbol) => query.symbols(symbol),
            None => query,
        }
    });
    let mut orders = pin!(orders);
    while let Some(order) = orders.try_next().await? {
        if order.cl_order_id.as_deref() == Some(cl_order_id) {
            return Ok(Some(order));
        }
    }
    Ok(None)
}

/// Whether a failed look-up may succeed if made again: what [`Error::is_retryable`] says,
/// and 408 (the server gave up waiting for the request: nothing about the order).
fn worth_looking_again(error: &Error) -> bool {
    error.is_retryable() || error.status() == Some(408)
}

fn backoff(policy: &RetryPolicy, retry: u32, error: &Error) -> Duration {
    match error {
        Error::RateLimited {
            retry_after: Some(wait),
            ..
        } if *wait <= policy.max_retry_after => *wait,
        _ => policy.backoff(retry),
    }
}

/// What the guard is protecting, for errors and logs.
struct Key<'a> {
    action: OrderAction,
    cl_order_id: &'a str,
    order_id: Option<&'a str>,
    /// Whether a refusal may hide an earlier attempt that took effect even when the guard saw
    /// none: the client itself repeats an idempotent request (a `DELETE`) after a timeout or
    /// a cut connection, and the repeat is refused because the first one worked.
    refusal_may_follow_success: bool,
}

impl Key<'_> {
    fn unknown(&self, last_error: Error) -> Error {
        tracing::warn!(
            cl_order_id = self.cl_order_id,
            order_id = self.order_id,
            action = ?self.action,
            error = %last_error,
            "order outcome unknown"
        );
        Error::OrderOutcomeUnknown {
            action: self.action,
            cl_order_id: clip(self.cl_order_id, ECHO_CHARS),
            order_id: self.order_id.map(|id| clip(id, ECHO_CHARS)),
            last_error: Box::new(last_error),
        }
    }
}

/// The guard shared by place, modify and cancel: `send` makes one attempt, `find` looks its
/// effect up (`Some` when it took effect).
///
/// Invariants: nothing is sent again after an attempt that may have reached the server until
/// a look-up has said it did not take effect; once an attempt may have reached the server,
/// the call ends with the result or with [`Error::OrderOutcomeUnknown`] (or with a refusal
/// of a later attempt that a look-up confirmed).
async fn guarded<T, S, SF, F, FF>(
    policy: &RetryPolicy,
    key: Key<'_>,
    mut send: S,
    mut find: F,
) -> Result<T>
where
    S: FnMut() -> SF,
    SF: Future<Output = Result<T>>,
    F: FnMut() -> FF,
    FF: Future<Output = Result<Option<T>>>,
{
    let attempts = policy.max_retries.saturating_add(1);
    // Some attempt may have reached the server and taken effect.
    let mut uncertain = false;
    // Look before sending again.
    let mut must_look_up = false;
    let mut last_error: Option<Error> = None;
    // A refusal that stands unless a look-up finds the request took effect.
    let mut refusal: Option<Error> = None;
    for attempt in 0..attempts {
        if let Some(error) = &last_error {
            tokio::time::sleep(backoff(policy, attempt.saturating_sub(1), error)).await;
        }
        if must_look_up {
            match find().await {
                Ok(Some(found)) => {
                    tracing::info!(key = key.cl_order_id, "found after an uncertain attempt");
                    return Ok(found);
                }
                Ok(None) => {
                    if let Some(refusal) = refusal {
                        return Err(refusal);
                    }
                    must_look_up = false;
                }
                Err(error) if worth_looking_again(&error) => {
                    // Cannot tell whether it took effect: sending now could double it. Look
                    // again on the next attempt.
                    tracing::debug!(key = key.cl_order_id, %error, "look-up failed");
                    last_error = Some(error);
                    continue;
                }
                Err(error) => return Err(key.unknown(error)),
            }
        }
        let error = match send().await {
            Ok(done) => return Ok(done),
            Err(error) => error,
        };
        tracing::debug!(key = key.cl_order_id, attempt = attempt + 1, %error, "attempt failed");
        if error.status() == Some(409) {
            // The key exists: return what it names.
            let earlier = uncertain;
            uncertain = true;
            match find().await {
                Ok(Some(found)) => return Ok(found),
                // 409 but nothing to see (another account, another day): the refusal stands,
                // unless an earlier attempt of ours may be what the server saw.
                Ok(None) if earlier => return Err(key.unknown(error)),
                Ok(None) => return Err(error),
                Err(lookup) if worth_looking_again(&lookup) => {
                    must_look_up = true;
                    last_error = Some(lookup);
                    continue;
                }
                Err(lookup) => return Err(key.unknown(lookup)),
            }
        }
        if error.may_have_reached_server() {
            uncertain = true;
            must_look_up = true;
        } else if !error.is_retryable() {
            // Refused. After an uncertain attempt the refusal may be because that one took
            // effect (a cancel of an order already cancelled): look before saying so.
            let hidden =
                key.refusal_may_follow_success && !matches!(error.status(), Some(401 | 403));
            if uncertain || hidden {
                uncertain = true;
                must_look_up = true;
                refusal = Some(error);
                continue;
            }
            return Err(error);
        }
        last_error = Some(error);
    }
    if !uncertain {
        return Err(last_error.unwrap_or_else(|| {
            Error::InvalidRequest("the retry policy allows no attempt".to_string())
        }));
    }
    match find().await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(match (refusal, last_error) {
            (Some(refusal), _) => refusal,
            // Not there now, but an attempt may still be on its way: not "not placed".
            (None, Some(last_error)) => key.unknown(last_error),
            (None, None) => key.unknown(Error::InvalidRequest(
                "the retry policy allows no attempt".to_string(),
            )),
        }),
        Err(lookup) => Err(key.unknown(lookup)),
    }
}

/// Places an order (`POST /orders`) so that it exists at most once, whatever fails on the
/// way: the guard of this module's docs, with the client's [`RetryPolicy`]. For a request
/// written by hand; [`OrderBuilder::send`] builds, checks and calls this. The request is sent
/// as it is ([`validate`](super::validate) it first if you want the SDK's checks).
///
/// Returns the order, a refusal (4xx), or [`Error::OrderOutcomeUnknown`] when an attempt may
/// have reached the server and the SDK could not find out whether the order exists.
pub async fn place(client: &rest::Client, order: PlaceOrderRequest) -> Result<Order> {
    if order.cl_order_id.trim().is_empty() {
        return Err(Error::InvalidRequest(
            "cl_order_id is empty: it is the key that makes a retry safe; give every order \
             its own (unique per day)"
                .to_string(),
        ));
    }
    let since = lookup_start(Utc::now());
    let key = Key {
        action: OrderAction::Place,
        cl_order_id: &order.cl_order_id,
        order_id: None,
        refusal_may_follow_success: false,
    };
    guarded(
        client.inner().retry_policy(),
        key,
        || send_place(client, order.clone()),
        || {
            look_up(
                client,
                &order.account_id,
                &order.cl_order_id,
                order.symbol.as_deref(),
                since,
            )
        },
    )
    .await
}

/// One `POST /orders`, nothing else.
async fn send_place(client: &rest::Client, order: PlaceOrderRequest) -> Result<Order> {
    Ok(client.place_order().body(order).send().await?.into_inner())
}

/// One `PATCH`, nothing else.
async fn send_modify(
    client: &rest::Client,
    account_id: &str,
    order_id: &str,
    change: ModifyOrderRequest,
) -> Result<Order> {
    Ok(client
        .modify_order()
        .account_id(account_id)
        .order_id(order_id)
        .body(change)
        .send()
        .await?
        .into_inner())
}

impl OrderBuilder {
    /// Builds the order, checks it, and places it so that it exists at most once (see
    /// [`place`]): after a lost answer the order is looked up by its `cl_order_id` before
    /// anything is sent again, every attempt carries the same `cl_order_id`, and a 409 returns
    /// the existing order. Returns the order as the server reports it.
    ///
    /// On [`Error::OrderOutcomeUnknown`] the order may exist: look it up by the error's
    /// `cl_order_id` later; never place it again under a new one.
    pub async fn send(self, client: &rest::Client) -> Result<Order> {
        place(client, self.build()?).await
    }

    /// Builds the order, checks it, and sends **one** `POST /orders`, unguarded: nothing is
    /// retried or looked up. If it fails with [`Error::may_have_reached_server`], the order
    /// may exist; look it up by its `cl_order_id` before placing it again. Prefer
    /// [`send`](Self::send).
    pub async fn send_once(self, client: &rest::Client) -> Result<Order> {
        send_place(client, self.build()?).await
    }
}

impl ModifyBuilder {
    /// Checks the modification and sends it so that it is made at most once: the same
    /// `new_cl_order_id` on every attempt, the new order looked up by it before anything is
    /// sent again, a 409 returning the existing one. Returns the new order.
    ///
    /// On [`Error::OrderOutcomeUnknown`] the change may have been made: look the new order up
    /// by the error's `cl_order_id` (the `new_cl_order_id`) later.
    pub async fn send(self, client: &rest::Client) -> Result<Order> {
        let account_id = self.account_id.clone();
        let order_id = self.order_id.clone();
        let change = self.build()?;
        let since = lookup_start(Utc::now());
        let key = Key {
            action: OrderAction::Modify,
            cl_order_id: &change.new_cl_order_id,
            order_id: Some(&order_id),
            refusal_may_follow_success: false,
        };
        guarded(
            client.inner().retry_policy(),
            key,
            || send_modify(client, &account_id, &order_id, change.clone()),
            || look_up(client, &account_id, &change.new_cl_order_id, None, since),
        )
        .await
    }

    /// Checks the modification and sends **one** `PATCH`, unguarded. If it fails with
    /// [`Error::may_have_reached_server`], look the new order up by its `new_cl_order_id`
    /// before trying again. Prefer [`send`](Self::send).
    pub async fn send_once(self, client: &rest::Client) -> Result<Order> {
        let account_id = self.account_id.clone();
        let order_id = self.order_id.clone();
        let change = self.build()?;
        send_modify(client, &account_id, &order_id, change).await
    }
}

/// Cancels an open order: `DELETE /accounts/{account_id}/orders/{order_id}`, guarded.
///
/// An order whose status is final (filled, cancelled, rejected, expired, replaced) is not
/// sent: the result is [`Error::Order`] naming the `order-not-open` rule. After an attempt
/// that may have reached the server, the order is read (`GET`) before the cancel is sent
/// again: `cancelled` or `pending_cancel` means it worked. A refusal after such an attempt is
/// checked the same way. On [`Error::OrderOutcomeUnknown`] the cancel may or may not have
/// been made: read the order later.
///
/// ```no_run
/// # async fn demo(user: &connect_trade::UserClient, order: connect_trade::rest::types::Order)
/// # -> connect_trade::Result<()> {
/// connect_trade::orders::cancel(user, &order).await?;
/// # Ok(()) }
/// ```
pub async fn cancel(client: &rest::Client, order: &Order) -> Result<()> {
    if order.status.is_terminal() {
        return Err(not_open(&order.order_id, &order.status, "cancelled").into());
    }
    let account_id = order.account_id.as_str();
    let order_id = order.order_id.as_str();
    let key = Key {
        action: OrderAction::Cancel,
        cl_order_id: order.cl_order_id.as_deref().unwrap_or_default(),
        order_id: Some(order_id),
        refusal_may_follow_success: true,
    };
    guarded(
        client.inner().retry_policy(),
        key,
        || async move {
            client
                .cancel_order()
                .account_id(account_id)
                .order_id(order_id)
                .send()
                .await?;
            Ok(())
        },
        || async move {
            let now = client
                .get_order()
                .account_id(account_id)
                .order_id(order_id)
                .send()
                .await?
                .into_inner();
            Ok(matches!(
                now.status,
                OrderStatus::Cancelled | OrderStatus::PendingCancel
            )
            .then_some(()))
        },
    )
    .await
}
