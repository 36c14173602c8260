//! Order history: one page type for both shapes of `GET /orders`, and the one pager.
//!
//! Connect Trade's documentation says `GET /orders` pages with `next_cursor` / `prev_cursor`;
//! its cookbook reads the answer as a bare JSON array. [`OrderPage`] decodes either shape, and
//! the pager ([`rest::Client::order_history`], [`rest::Client::list_orders_all`]) reads the
//! whole history either way:
//!
//! - it follows `next_cursor` while the server gives one;
//! - when a full page (`limit` orders) comes back without a cursor, it continues by time
//!   window with the documented `start_time` / `end_time` filters: the oldest `created_at`
//!   seen becomes the next `end_time` (newest-first history; an oldest-first page moves
//!   `start_time` forward instead), and orders seen twice are dropped by `order_id`. It says
//!   so in a `tracing` event (target `connect_trade::paging`);
//! - it never loops: a cursor given twice, or a window that brings nothing new, ends the stream
//!   with [`Error::Protocol`] rather than silently cutting history or spinning.
//!
//! ```no_run
//! # async fn demo(user: connect_trade::UserClient) -> connect_trade::Result<()> {
//! use connect_trade::codes::OrderStatusFilter;
//! use futures::TryStreamExt;
//!
//! let filled: Vec<_> = user
//!     .list_orders_all(|q| q.status(OrderStatusFilter::Filled))
//!     .try_collect()
//!     .await?;
//! println!("{} filled orders", filled.len());
//! # Ok(()) }
//! ```

use std::{collections::HashSet, fmt, num::NonZeroU32};

use chrono::{DateTime, Utc};
use futures::{Stream, TryStreamExt, stream};
use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor},
};

use crate::{
    codes::SortOrder,
    error::{Error, Result},
    rest::{self, builder::ListOrders, types::Order},
};

/// One page of `GET /orders`, whichever shape the server answered.
///
/// Decodes from a bare JSON array of orders (no cursors) or from an object
/// `{"orders": [...], "next_cursor": ..., "prev_cursor": ...}` (unknown keys ignored). It
/// serializes as the object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OrderPage {
    /// The orders of this page.
    pub orders: Vec<Order>,
    /// The cursor of the next page, if the server gave one.
    pub next_cursor: Option<String>,
    /// The cursor of the previous page, if the server gave one.
    pub prev_cursor: Option<String>,
}

impl<'de> Deserialize<'de> for OrderPage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PageVisitor)
    }
}

struct PageVisitor;

impl<'de> Visitor<'de> for PageVisitor {
    type Value = OrderPage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of orders, or an object with `orders` and paging cursors")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OrderPage, A::Error> {
        let mut orders = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(order) = seq.next_element::<Order>()? {
            orders.push(order);
        }
        Ok(OrderPage {
            orders,
            ..OrderPage::default()
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderPage, A::Error> {
        let mut orders: Option<Vec<Order>> = None;
        let mut page = OrderPage::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "orders" => {
                    orders = Some(map.next_value::<Option<Vec<Order>>>()?.unwrap_or_default())
                }
                "next_cursor" => page.next_cursor = map.next_value()?,
                "prev_cursor" => page.prev_cursor = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        page.orders = orders.ok_or_else(|| de::Error::missing_field("orders"))?;
        Ok(page)
    }
}

/// The page size the pager asks for: the largest the API allows.
pub const ORDER_PAGE_SIZE: u32 = 500;

/// How far past the oldest `created_at` seen the next window ends, so that orders sharing
/// that instant are read again whether the server's `end_time` is inclusive or exclusive
/// (and whatever the precision of its timestamps); repeats are dropped by `order_id`.
const WINDOW_OVERLAP: chrono::Duration = chrono::Duration::milliseconds(1);

/// Pages the pager reads at most for one history (a runaway server cannot keep it forever).
const MAX_PAGES: u64 = 100_000;

/// The order history of one `GET /orders` query, read page by page: see the
/// [module documentation](self). Built by [`rest::Client::order_history`].
#[derive(Clone, Debug)]
#[must_use = "an order history does nothing until `orders()` or `pages()` is polled"]
pub struct OrderHistory<'a> {
    template: ListOrders<'a>,
    page_size: NonZeroU32,
}

/// Which way a time-window continuation moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// Newest first: the next window ends at the oldest order seen.
    Backward,
    /// Oldest first: the next window starts at the newest order seen.
    Forward,
}

struct Pager<'a> {
    template: ListOrders<'a>,
    page_size: usize,
    cursor: Option<String>,
    cursors_seen: HashSet<String>,
    ids_seen: HashSet<String>,
    window: Option<(Direction, DateTime<Utc>)>,
    pages: u64,
}

impl<'a> OrderHistory<'a> {
    /// Orders per request, 1 to 500 (default [`ORDER_PAGE_SIZE`]). A page of exactly this
    /// many orders without a cursor is what makes the pager continue by time window.
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size =
            NonZeroU32::new(page_size.clamp(1, ORDER_PAGE_SIZE)).unwrap_or(NonZeroU32::MIN);
        self
    }

    /// Every page, in the order read, each with the orders not seen on an earlier page.
    pub fn pages(self) -> impl Stream<Item = Result<OrderPage>> + 'a {
        let pager = Pager {
            template: self.template.limit(self.page_size),
            page_size: self.page_size.get() as usize,
            cursor: None,
            cursors_seen: HashSet::new(),
            ids_seen: HashSet::new(),
            window: None,
            pages: 0,
        };
        stream::try_unfold(Some(pager), |state| async move {
            let Some(mut pager) = state else {
                return Ok(None);
            };
            let page = pager.next_page().await?;
            let more = pager.advance(&page)?;
            let page = pager.dedup(page);
            Ok(Some((page, more.then_some(pager))))
        })
    }

    /// Every order of the history, each once.
    pub fn orders(self) -> impl Stream<Item = Result<Order>> + 'a {
        self.pages()
            .map_ok(|page| stream::iter(page.orders.into_iter().map(Ok)))
            .try_flatten()
    }
}

impl Pager<'_> {
    async fn next_page(&mut self) -> Result<OrderPage> {
        self.pages += 1;
        if self.pages > MAX_PAGES {
            return Err(Error::Protocol(format!(
                "GET /orders: still more pages after {MAX_PAGES}; stopping"
            )));
        }
        let mut request = self.template.clone();
        if let Some(cursor) = &self.cursor {
            request = request.cursor(cursor.clone());
        } else if let Some((direction, bound)) = self.window {
            request = match direction {
                Direction::Backward => request.end_time(bound).sort(SortOrder::Desc),
                Direction::Forward => request.start_time(bound).sort(SortOrder::Asc),
            };
        }
        Ok(request.send().await.map_err(Error::from)?.into_inner())
    }

    /// Decides what comes after `page`: `true` if there is another page to read.
    fn advance(&mut self, page: &OrderPage) -> Result<bool> {
        let new_ids = page
            .orders
            .iter()
            .filter(|o| !self.ids_seen.contains(&o.order_id))
            .count();
        match page.next_cursor.as_deref() {
            Some(next) if !next.is_empty() => {
                if !self.cursors_seen.insert(next.to_string()) {
                    return Err(Error::Protocol(format!(
                        "GET /orders gave cursor {next:?} twice; stopping instead of looping"
                    )));
                }
                self.cursor = Some(next.to_string());
                return Ok(true);
            }
            _ => self.cursor = None,
        }
        if page.orders.len() < self.page_size {
            return Ok(false);
        }
        // A full page and no cursor: more history may follow; continue by time window.
        if self.window.is_some() && new_ids == 0 {
            return Err(Error::Protocol(format!(
                "GET /orders: more than {} orders share the same creation time; the history \
                 cannot be paged past them by time window",
                self.page_size
            )));
        }
        let times: Vec<DateTime<Utc>> = page.orders.iter().filter_map(|o| o.created_at).collect();
        let (Some(oldest), Some(newest)) = (times.iter().min(), times.iter().max()) else {
            return Err(Error::Protocol(format!(
                "GET /orders returned a full page ({} orders) without a cursor and without \
                 `created_at`: the rest of the history cannot be read",
                page.orders.len()
            )));
        };
        let direction = match self.window {
            Some((direction, _)) => direction,
            None if times.first() < times.last() => Direction::Forward,
            None => Direction::Backward,
        };
        let bound = match direction {
            Direction::Backward => *oldest + WINDOW_OVERLAP,
            Direction::Forward => *newest - WINDOW_OVERLAP,
        };
        let bound = match (self.window, direction) {
            (Some((_, previous)), Direction::Backward) => bound.min(previous),
            (Some((_, previous)), Direction::Forward) => bound.max(previous),
            (None, _) => bound,
        };
        if self.window.is_none() {
            tracing::info!(
                target: "connect_trade::paging",
                page_size = self.page_size,
                bound = %bound,
                direction = ?direction,
                "GET /orders returned a full page without a cursor; continuing by time window"
            );
        } else {
            tracing::debug!(
                target: "connect_trade::paging",
                bound = %bound,
                "next time window"
            );
        }
        self.window = Some((direction, bound));
        Ok(true)
    }

    /// Drops the orders of `page` already seen, and remembers the others.
    fn dedup(&mut self, mut page: OrderPage) -> OrderPage {
        page.orders
            .retain(|o| o.order_id.is_empty() || self.ids_seen.insert(o.order_id.clone()));
        page
    }
}

impl rest::Client {
    /// The order history of the `GET /orders` query `configure` builds (filters such as
    /// `account_id`, `status`, `symbols`, `start_time`), read through every page: see
    /// [`OrderHistory`]. The pager sets `limit` (and, when it continues by time window,
    /// `end_time`/`start_time` and `sort`) itself.
    pub fn order_history<'a>(
        &'a self,
        configure: impl FnOnce(ListOrders<'a>) -> ListOrders<'a>,
    ) -> OrderHistory<'a> {
        OrderHistory {
            template: configure(self.list_orders()),
            page_size: NonZeroU32::new(ORDER_PAGE_SIZE).unwrap_or(NonZeroU32::MIN),
        }
    }

    /// Every page of the order history of `configure`'s query:
    /// `self.order_history(configure).pages()`.
    pub fn list_order_pages<'a>(
        &'a self,
        configure: impl FnOnce(ListOrders<'a>) -> ListOrders<'a>,
    ) -> impl Stream<Item = Result<OrderPage>> + 'a {
        self.order_history(configure).pages()
    }

    /// Every order of the order history of `configure`'s query, each once:
    /// `self.order_history(configure).orders()`.
    pub fn list_orders_all<'a>(
        &'a self,
        configure: impl FnOnce(ListOrders<'a>) -> ListOrders<'a>,
    ) -> impl Stream<Item = Result<Order>> + 'a {
        self.order_history(configure).orders()
    }
}
