//! Orders: the book, queries, cancel and modify; placing one goes through checking
//! ([`check`]), routing ([`route`]) and filling ([`fill`]).

mod check;
mod fill;
mod route;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use connect_trade::{
    codes::{OrderSide, OrderStatus, OrderStatusFilter, OrderType, SortOrder},
    paging::OrderPage,
    rest::types::{ModifyOrderRequest, Order, PlaceOrderRequest},
};
use rust_decimal::Decimal;

use super::{ApiError, ApiResult, Payload, State, midnight};

#[derive(Clone, Debug)]
pub(super) struct LegRec {
    pub(super) symbol: String,
    pub(super) buy: bool,
    pub(super) ratio: Decimal,
}

pub(super) struct OrderRec {
    pub(super) wire: Order,
    pub(super) seq: u64,
    pub(super) user_id: String,
    pub(super) qty: Decimal,
    pub(super) filled: Decimal,
    pub(super) cost: Decimal,
    pub(super) buy: bool,
    pub(super) multiplier: Decimal,
    pub(super) legs: Vec<LegRec>,
    pub(super) triggered: bool,
}

impl OrderRec {
    pub(super) fn remaining(&self) -> Decimal {
        (self.qty - self.filled).max(Decimal::ZERO)
    }
    pub(super) fn is_open(&self) -> bool {
        self.wire.status.is_open()
    }
    pub(super) fn symbols(&self) -> Vec<&str> {
        if self.legs.is_empty() {
            self.wire.symbol.as_deref().into_iter().collect()
        } else {
            self.legs.iter().map(|l| l.symbol.as_str()).collect()
        }
    }
}

impl State {
    // ---------------------------------------------------------------------------------------
    // Orders
    // ---------------------------------------------------------------------------------------

    pub(super) fn order_mut(&mut self, idx: usize) -> &mut OrderRec {
        &mut self.orders[idx]
    }

    pub(super) fn emit_order(&self, idx: usize) {
        let o = &self.orders[idx];
        self.emit(
            &o.user_id,
            &o.wire.account_id,
            Payload::Order(Box::new(o.wire.clone())),
        );
    }

    pub(super) fn set_status(&mut self, idx: usize, status: OrderStatus, broker_status: &str) {
        let now = self.now;
        let o = self.order_mut(idx);
        let was_open = o.wire.status.is_open() && o.wire.status != OrderStatus::Pending;
        // Buying power changes when a buy starts resting or stops resting without a fill.
        let moves_buying_power = o.buy
            && match &status {
                OrderStatus::Working => o.wire.status == OrderStatus::Pending,
                OrderStatus::Cancelled | OrderStatus::Expired | OrderStatus::Replaced => was_open,
                _ => false,
            };
        o.wire.status = status;
        o.wire.broker_status = Some(broker_status.to_string());
        o.wire.updated_at = Some(now);
        let (user_id, account_id) = (o.user_id.clone(), o.wire.account_id.clone());
        self.emit_order(idx);
        if moves_buying_power && let Some(balance) = self.balance(&account_id) {
            self.emit(&user_id, &account_id, Payload::Balance(Box::new(balance)));
        }
    }

    pub(super) fn find_order(
        &self,
        user_id: &str,
        account_id: &str,
        order_id: &str,
    ) -> ApiResult<usize> {
        self.account_of(user_id, account_id)?;
        self.order_index
            .get(order_id)
            .copied()
            .filter(|&i| self.orders[i].wire.account_id == account_id)
            .ok_or_else(|| {
                ApiError::not_found(format!("order {order_id:?} of account {account_id:?}"))
            })
    }

    pub(crate) fn get_order(
        &self,
        user_id: &str,
        account_id: &str,
        order_id: &str,
    ) -> ApiResult<Order> {
        let idx = self.find_order(user_id, account_id, order_id)?;
        Ok(self.orders[idx].wire.clone())
    }

    pub(crate) fn place_order(
        &mut self,
        user_id: &str,
        req: PlaceOrderRequest,
    ) -> ApiResult<Order> {
        // Checking: the shape first (400 naming the field), then the account and cl_order_id.
        let instrument = check::check_request(&req)?;
        self.tradable_account(user_id, &req.account_id, &req.broker)?;
        self.claim_cl_order_id(&req.account_id, &req.cl_order_id)?;
        // Routing: into the book as pending, then accepted or rejected by the broker.
        let idx = self.enter_order(user_id, &req, &instrument);
        if self.route(idx, &instrument) {
            // Filling: whatever the prices allow now; the clock works the rest.
            self.execute(idx);
        }
        Ok(self.orders[idx].wire.clone())
    }

    pub(crate) fn cancel_order(
        &mut self,
        user_id: &str,
        account_id: &str,
        order_id: &str,
    ) -> ApiResult<()> {
        let idx = self.find_order(user_id, account_id, order_id)?;
        let status = self.orders[idx].wire.status.clone();
        match status {
            OrderStatus::PendingCancel => Ok(()),
            s if s.is_open() => {
                self.set_status(idx, OrderStatus::PendingCancel, "cancel requested");
                Ok(())
            }
            s => Err(ApiError::invalid(
                "order_id",
                format!("order {order_id} is {s}: only open orders can be cancelled"),
            )),
        }
    }

    pub(crate) fn modify_order(
        &mut self,
        user_id: &str,
        account_id: &str,
        order_id: &str,
        req: ModifyOrderRequest,
    ) -> ApiResult<Order> {
        let idx = self.find_order(user_id, account_id, order_id)?;
        self.tradable_account(user_id, account_id, &req.broker)?;
        let old = &self.orders[idx];
        if !matches!(
            old.wire.status,
            OrderStatus::Working | OrderStatus::PartiallyFilled | OrderStatus::Pending
        ) {
            return Err(ApiError::invalid(
                "order_id",
                format!(
                    "order {order_id} is {}: only working orders can be modified",
                    old.wire.status
                ),
            ));
        }
        let order_type = old.wire.order_type.clone().unwrap_or(OrderType::Market);
        if req.order_limit_price.is_some()
            && !matches!(order_type, OrderType::Limit | OrderType::StopLimit)
        {
            return Err(ApiError::invalid(
                "order_limit_price",
                format!("not used by {order_type} orders"),
            ));
        }
        if req.stop_price.is_some() && !matches!(order_type, OrderType::Stop | OrderType::StopLimit)
        {
            return Err(ApiError::invalid(
                "stop_price",
                format!("not used by {order_type} orders"),
            ));
        }
        if req.order_notional.is_some() {
            return Err(ApiError::invalid(
                "order_notional",
                "only market orders take a notional, and they cannot be modified",
            ));
        }
        if let Some(q) = req.order_qty
            && q <= Decimal::ZERO
        {
            return Err(ApiError::invalid("order_qty", "must be positive"));
        }
        for (field, value) in [
            ("order_limit_price", req.order_limit_price),
            ("stop_price", req.stop_price),
        ] {
            if value.is_some_and(|v| v <= Decimal::ZERO) && old.legs.is_empty() {
                return Err(ApiError::invalid(field, "must be positive"));
            }
        }
        self.claim_cl_order_id(account_id, &req.new_cl_order_id)?;
        self.set_status(idx, OrderStatus::PendingReplace, "replace requested");

        let new_id = self.id("ord");
        let seq = self.next_id;
        let now = self.now;
        let created = self.creation_time();
        let old = &self.orders[idx];
        let qty = req.order_qty.unwrap_or_else(|| old.remaining());
        let mut wire = old.wire.clone();
        wire.order_id = new_id.clone();
        wire.cl_order_id = Some(req.new_cl_order_id.clone());
        wire.order_qty = Some(qty);
        wire.order_notional = None;
        wire.order_limit_price = req.order_limit_price.or(old.wire.order_limit_price);
        wire.stop_price = req.stop_price.or(old.wire.stop_price);
        wire.fills = Vec::new();
        wire.filled_qty = Some(Decimal::ZERO);
        wire.avg_fill_price = None;
        wire.status = OrderStatus::Pending;
        wire.broker_status = Some("received".to_string());
        wire.created_at = Some(created);
        wire.updated_at = Some(now);
        wire.replaced_by = None;
        let new = OrderRec {
            wire,
            seq,
            user_id: old.user_id.clone(),
            qty,
            filled: Decimal::ZERO,
            cost: Decimal::ZERO,
            buy: old.buy,
            multiplier: old.multiplier,
            legs: old.legs.clone(),
            triggered: old.triggered,
        };
        self.order_mut(idx).wire.replaced_by = Some(new_id.clone());
        self.set_status(idx, OrderStatus::Replaced, "replaced");
        self.orders.push(new);
        let new_idx = self.orders.len() - 1;
        self.order_index.insert(new_id, new_idx);
        self.emit_order(new_idx);
        self.set_status(new_idx, OrderStatus::Working, "accepted");
        self.execute(new_idx);
        Ok(self.orders[new_idx].wire.clone())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn list_orders(
        &self,
        user_id: &str,
        account_id: Option<&str>,
        connection_id: Option<&str>,
        status: Option<&OrderStatusFilter>,
        symbols: Option<&[String]>,
        side: Option<&OrderSide>,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        sort: Option<&SortOrder>,
        limit: usize,
        offset: usize,
    ) -> ApiResult<OrderPage> {
        let accounts: HashSet<String> = self
            .account_ids(user_id, account_id, connection_id)?
            .into_iter()
            .collect();
        let status = status.cloned().unwrap_or(OrderStatusFilter::Open);
        let start = start.unwrap_or_else(|| midnight(self.now));
        let mut matching: Vec<&OrderRec> = self
            .orders
            .iter()
            .filter(|o| {
                let created = o.wire.created_at.unwrap_or(self.now);
                accounts.contains(&o.wire.account_id)
                    && status.matches(&o.wire.status)
                    && symbols
                        .is_none_or(|want| o.symbols().iter().any(|s| want.iter().any(|w| w == s)))
                    && side.is_none_or(|want| o.wire.side.as_ref() == Some(want))
                    && created >= start
                    && end.is_none_or(|e| created < e)
            })
            .collect();
        matching.sort_by_key(|o| o.seq);
        if sort != Some(&SortOrder::Asc) {
            matching.reverse();
        }
        let page: Vec<Order> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|o| o.wire.clone())
            .collect();
        let next = offset + page.len();
        Ok(OrderPage {
            next_cursor: (next < matching.len()).then(|| format!("cur_{next}")),
            prev_cursor: (offset > 0).then(|| format!("cur_{}", offset.saturating_sub(limit))),
            orders: page,
        })
    }
}
