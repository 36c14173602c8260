//! Order history as a stream that follows the cursors through every page.
//!
//! ```no_run
//! # async fn demo(user: connect_trade::UserClient) -> connect_trade::Result<()> {
//! use connect_trade::codes::OrderStatusFilter;
//! use futures::TryStreamExt;
//!
//! let filled: Vec<_> = user
//!     .list_orders_all(|q| q.status(OrderStatusFilter::Filled).limit(500u32))
//!     .try_collect()
//!     .await?;
//! println!("{} filled orders", filled.len());
//! # Ok(()) }
//! ```

use std::collections::HashSet;

use futures::{Stream, TryStreamExt, stream};

use crate::{
    error::{Error, Result},
    rest::{
        self,
        builder::ListOrders,
        types::{Order, OrderPage},
    },
};

impl rest::Client {
    /// Every page of `GET /orders` for the query `configure` builds, following `next_cursor`
    /// until the server gives none. Each page is one request (retried like any GET).
    ///
    /// A server that hands out a cursor it already gave ends the stream with
    /// [`Error::Protocol`] instead of looping forever.
    pub fn list_order_pages<'a>(
        &'a self,
        configure: impl FnOnce(ListOrders<'a>) -> ListOrders<'a>,
    ) -> impl Stream<Item = Result<OrderPage>> + 'a {
        let template = configure(self.list_orders());
        let state = Some((template, None::<String>, HashSet::<String>::new()));
        stream::try_unfold(state, |state| async move {
            let Some((template, cursor, mut seen)) = state else {
                return Ok(None);
            };
            let request = match &cursor {
                Some(cursor) => template.clone().cursor(cursor.clone()),
                None => template.clone(),
            };
            let page = request.send().await.map_err(Error::from)?.into_inner();
            let next = match page.next_cursor.as_deref() {
                None | Some("") => None,
                Some(next) if !seen.insert(next.to_string()) => {
                    return Err(Error::Protocol(format!(
                        "GET /orders gave cursor {next:?} twice; stopping instead of looping"
                    )));
                }
                Some(next) => Some((template, Some(next.to_string()), seen)),
            };
            Ok(Some((page, next)))
        })
    }

    /// Every order of `GET /orders` for the query `configure` builds, across all pages.
    pub fn list_orders_all<'a>(
        &'a self,
        configure: impl FnOnce(ListOrders<'a>) -> ListOrders<'a>,
    ) -> impl Stream<Item = Result<Order>> + 'a {
        self.list_order_pages(configure)
            .map_ok(|page| stream::iter(page.orders.into_iter().map(Ok)))
            .try_flatten()
    }
}
