//! Order submission that never doubles.
//!
//! `POST /orders` is not idempotent: when a placement times out, the connection drops after
//! the request was sent, or the server answers 5xx, the order may or may not exist. Sending it
//! again blindly can buy twice. Connect Trade's idempotency key is `cl_order_id` ("unique per
//! order per day"), and this module uses it the way Stripe's SDKs use idempotency keys:
//!
//! 1. The same request, with the same `cl_order_id`, is used for every attempt.
//! 2. After an attempt that *may have reached the server*
//!    ([`Error::may_have_reached_server`]), the order is looked up by `cl_order_id`
//!    (`GET /orders`, its account, status `all`, from midnight UTC) before anything is sent
//!    again; if it exists, it is returned.
//! 3. A `409 Conflict` (the `cl_order_id` already exists) returns the existing order.
//! 4. Attempts are bounded, with exponential backoff and full jitter ([`RetryPolicy`]).
//!    Failures that certainly did not reach the server (connect errors, 429) are simply sent
//!    again; 4xx answers other than 409 are returned at once.
//!
//! When every attempt failed and the last one may have reached the server, one last look-up is
//! made; if that fails too, the error is returned and its
//! [`may_have_reached_server`](Error::may_have_reached_server) tells the caller the outcome is
//! unknown: look the order up later with [`find_order_by_cl_order_id`], never place it again
//! under a new `cl_order_id`.
//!
//! Modify (`PATCH`) gets the same treatment, keyed by `new_cl_order_id`. Cancel (`DELETE`) is
//! idempotent and is retried; a cancel that the server refuses after an earlier attempt
//! may have gone through is checked against the order's status.
//!
//! ```no_run
//! # async fn demo(alice: connect_trade::UserClient) -> connect_trade::Result<()> {
//! use connect_trade::safe_order::SafeOrders;
//! use connect_trade::rest::types::PlaceOrderRequest;
//!
//! let request: PlaceOrderRequest = serde_json::from_value(serde_json::json!({
//!     "account_id": "acc_1", "cl_order_id": "rebalance-2026-11-25-0001",
//!     "broker": "ALPACA", "side": "BUY", "order_qty": "1", "order_type": "MKT",
//!     "order_tif": "DAY", "instrument": "STK", "symbol": "MSFT", "legs": []
//! })).expect("valid order");
//! let order = alice.place_order_safely(request).await?; // at most one order, ever
//! println!("{} is {}", order.order_id, order.status);
//! # Ok(()) }
//! ```

use std::{future::Future, num::NonZeroU32, time::Duration};

use chrono::{DateTime, Utc};

use crate::{
    UserClient,
    client::RetryPolicy,
    codes::{OrderStatus, OrderStatusFilter},
    error::{Error, Result},
    rest::types::{ModifyOrderRequest, Order, PlaceOrderRequest},
};

/// How far before the first attempt the look-up starts, besides midnight UTC: covers clock
/// skew between this machine and the server.
const LOOKUP_SKEW: Duration = Duration::from_secs(15 * 60);

/// The page size of look-ups (the API's maximum).
const LOOKUP_PAGE: u32 = 500;

/// Where a look-up by client order id starts: midnight UTC of the first attempt's day (the
/// id is unique per day), or a little before the first attempt if that is earlier.
fn lookup_start(first_attempt: DateTime<Utc>) -> DateTime<Utc> {
    let midnight = first_attempt
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|naive| naive.and_utc())
        .unwrap_or(first_attempt);
    let skewed = first_attempt - chrono::Duration::from_std(LOOKUP_SKEW).unwrap_or_default();
    midnight.min(skewed)
}

/// Finds the order of `account_id` whose `cl_order_id` is `cl_order_id`, created at or after
/// `since`, paging through `GET /orders` (status `all`). `symbol` narrows the query when
/// known (`None` for a multi-leg order).
pub async fn find_order_by_cl_order_id(
    user: &UserClient,
    account_id: &str,
    cl_order_id: &str,
    symbol: Option<&str>,
    since: DateTime<Utc>,
) -> Result<Option<Order>> {
    let mut cursor: Option<String> = None;
    // Bounded: a server that keeps returning cursors cannot keep us here forever.
    for _ in 0..10_000 {
        let mut query = user
            .list_orders()
            .account_id(account_id)
            .status(OrderStatusFilter::All)
            .start_time(since)
            .limit(NonZeroU32::new(LOOKUP_PAGE).unwrap_or(NonZeroU32::MIN));
        if let Some(symbol) = symbol {
            query = query.symbols(symbol);
        }
        if let Some(cursor) = cursor.take() {
            query = query.cursor(cursor);
        }
        let page = query.send().await?.into_inner();
        if let Some(found) = page
            .orders
            .into_iter()
            .find(|o| o.cl_order_id.as_deref() == Some(cl_order_id))
        {
            return Ok(Some(found));
        }
        match page.next_cursor {
            Some(next) if !next.is_empty() => cursor = Some(next),
            _ => return Ok(None),
        }
    }
    Err(Error::UnexpectedResponse {
        status: 200,
        excerpt: format!(
            "gave up looking up cl_order_id {cl_order_id}: the server kept returning pages"
        ),
    })
}

/// What to do after a failed attempt.
enum Next {
    /// The request certainly did not take effect: send again after a backoff.
    Resend,
    /// It may have taken effect: look it up before sending again.
    LookUp,
    /// The server said the key exists: look it up and return it.
    Existing,
    /// Give up with this error.
    Fail,
}

fn classify(error: &Error) -> Next {
    if error.status() == Some(409) {
        Next::Existing
    } else if error.may_have_reached_server() {
        Next::LookUp
    } else if error.is_retryable() {
        Next::Resend
    } else {
        Next::Fail
    }
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

/// The retry loop shared by place and modify: `send` makes one attempt, `find` looks the
/// result up by its client order id.
async fn submit_once<S, SF, F, FF>(
    policy: &RetryPolicy,
    what: &str,
    key: &str,
    mut send: S,
    mut find: F,
) -> Result<Order>
where
    S: FnMut() -> SF,
    SF: Future<Output = Result<Order>>,
    F: FnMut() -> FF,
    FF: Future<Output = Result<Option<Order>>>,
{
    let attempts = policy.max_retries.saturating_add(1);
    let mut must_look_up = false;
    let mut last_error: Option<Error> = None;
    for attempt in 0..attempts {
        if let Some(error) = &last_error {
            tokio::time::sleep(backoff(policy, attempt - 1, error)).await;
        }
        if must_look_up {
            match find().await {
                Ok(Some(order)) => {
                    tracing::info!(key, what, "found after an uncertain attempt");
                    return Ok(order);
                }
                Ok(None) => must_look_up = false,
                Err(error) if error.is_retryable() => {
                    // Cannot tell whether it exists: sending now could double it. Try the
                    // look-up again on the next attempt.
                    tracing::debug!(key, %error, "look-up failed");
                    last_error = Some(error);
                    continue;
                }
                Err(error) => return Err(error),
            }
        }
        let error = match send().await {
            Ok(order) => return Ok(order),
            Err(error) => error,
        };
        tracing::debug!(key, what, attempt = attempt + 1, %error, "attempt failed");
        match classify(&error) {
            Next::Existing => match find().await {
                Ok(Some(order)) => return Ok(order),
                // 409 but no such order since midnight: the key was used by something we
                // cannot see (another account, another day): the server's refusal stands.
                Ok(None) => return Err(error),
                // The key exists but the look-up failed: look again on the next attempt
                // (never send blindly).
                Err(lookup) if lookup.is_retryable() => {
                    must_look_up = true;
                    last_error = Some(lookup);
                    continue;
                }
                Err(lookup) => return Err(lookup),
            },
            Next::LookUp => must_look_up = true,
            Next::Resend => {}
            Next::Fail => return Err(error),
        }
        last_error = Some(error);
    }
    if must_look_up && let Ok(Some(order)) = find().await {
        return Ok(order);
    }
    Err(last_error.unwrap_or_else(|| {
        Error::InvalidRequest(format!("{what}: the retry policy allows no attempt"))
    }))
}

/// Places an order so that it exists at most once, with the client's [`RetryPolicy`] (see the
/// module docs).
pub async fn place_order_safely(user: &UserClient, order: PlaceOrderRequest) -> Result<Order> {
    place_order_safely_with(user, order, user.retry_policy()).await
}

/// [`place_order_safely`] with an explicit policy: `max_retries + 1` attempts at most.
pub async fn place_order_safely_with(
    user: &UserClient,
    order: PlaceOrderRequest,
    policy: &RetryPolicy,
) -> Result<Order> {
    if order.cl_order_id.trim().is_empty() {
        return Err(Error::InvalidRequest(
            "cl_order_id is empty: it is the key that makes a retry safe; give every order \
             its own (unique per day)"
                .to_string(),
        ));
    }
    let since = lookup_start(Utc::now());
    let key = order.cl_order_id.clone();
    submit_once(
        policy,
        "place_order",
        &key,
        || {
            let body = order.clone();
            async move { Ok(user.place_order().body(body).send().await?.into_inner()) }
        },
        || {
            find_order_by_cl_order_id(
                user,
                &order.account_id,
                &order.cl_order_id,
                order.symbol.as_deref(),
                since,
            )
        },
    )
    .await
}

/// Modifies an open order so that the change is made at most once: the result is looked up
/// by `new_cl_order_id` before a modify that may have gone through is sent again. Returns the
/// new order.
pub async fn modify_order_safely(
    user: &UserClient,
    account_id: &str,
    order_id: &str,
    change: ModifyOrderRequest,
    policy: &RetryPolicy,
) -> Result<Order> {
    if change.new_cl_order_id.trim().is_empty() {
        return Err(Error::InvalidRequest(
            "new_cl_order_id is empty: it is the key that makes a retry safe".to_string(),
        ));
    }
    let since = lookup_start(Utc::now());
    submit_once(
        policy,
        "modify_order",
        &change.new_cl_order_id,
        || {
            let body = change.clone();
            async move {
                Ok(user
                    .modify_order()
                    .account_id(account_id)
                    .order_id(order_id)
                    .body(body)
                    .send()
                    .await?
                    .into_inner())
            }
        },
        || find_order_by_cl_order_id(user, account_id, &change.new_cl_order_id, None, since),
    )
    .await
}

/// Requests cancellation of an order, retrying transient failures (cancel is idempotent).
///
/// If a retry is refused (4xx) after an earlier attempt may have gone through, the order is
/// read: when it is `cancelled` or `pending_cancel`, the cancel worked and `Ok` is returned.
pub async fn cancel_order_safely(
    user: &UserClient,
    account_id: &str,
    order_id: &str,
    policy: &RetryPolicy,
) -> Result<()> {
    let attempts = policy.max_retries.saturating_add(1);
    let mut maybe_done = false;
    let mut last_error: Option<Error> = None;
    for attempt in 0..attempts {
        if let Some(error) = &last_error {
            tokio::time::sleep(backoff(policy, attempt - 1, error)).await;
        }
        let error: Error = match user
            .cancel_order()
            .account_id(account_id)
            .order_id(order_id)
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(error) => error.into(),
        };
        if error.may_have_reached_server() {
            maybe_done = true;
        }
        if error.is_retryable() {
            last_error = Some(error);
            continue;
        }
        if maybe_done && matches!(error.status(), Some(400..=499)) {
            let order = user
                .get_order()
                .account_id(account_id)
                .order_id(order_id)
                .send()
                .await?
                .into_inner();
            if matches!(
                order.status,
                OrderStatus::Cancelled | OrderStatus::PendingCancel
            ) {
                return Ok(());
            }
        }
        return Err(error);
    }
    Err(last_error.unwrap_or_else(|| {
        Error::InvalidRequest("cancel_order: the retry policy allows no attempt".to_string())
    }))
}

/// The safe order operations as methods of [`UserClient`], with the client's [`RetryPolicy`]
/// (the one it was built with, as for its other requests).
pub trait SafeOrders {
    /// See [`place_order_safely`].
    fn place_order_safely(
        &self,
        order: PlaceOrderRequest,
    ) -> impl Future<Output = Result<Order>> + Send;

    /// See [`modify_order_safely`].
    fn modify_order_safely(
        &self,
        account_id: &str,
        order_id: &str,
        change: ModifyOrderRequest,
    ) -> impl Future<Output = Result<Order>> + Send;

    /// See [`cancel_order_safely`].
    fn cancel_order_safely(
        &self,
        account_id: &str,
        order_id: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}

impl SafeOrders for UserClient {
    async fn place_order_safely(&self, order: PlaceOrderRequest) -> Result<Order> {
        place_order_safely(self, order).await
    }

    async fn modify_order_safely(
        &self,
        account_id: &str,
        order_id: &str,
        change: ModifyOrderRequest,
    ) -> Result<Order> {
        modify_order_safely(self, account_id, order_id, change, self.retry_policy()).await
    }

    async fn cancel_order_safely(&self, account_id: &str, order_id: &str) -> Result<()> {
        cancel_order_safely(self, account_id, order_id, self.retry_policy()).await
    }
}
