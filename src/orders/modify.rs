//! Modifying orders that were placed (sending: see `submit`).

use rust_decimal::Decimal;

use super::{
    ClOrderId, IntoDecimal, OrderError, OrderRule,
    builder::{check_number as check, trim_scale},
};
use crate::{
    codes::{BrokerCode, Instrument, OrderStatus, OrderType},
    rest::types::{ModifyOrderRequest, Order},
};

/// Starts a modification of `order` (as `get_order`, `list_orders` or a stream returned it).
///
/// ```no_run
/// # async fn demo(user: &connect_trade::UserClient, order: connect_trade::rest::types::Order)
/// # -> connect_trade::Result<()> {
/// use connect_trade::orders;
///
/// // Move the limit price of a working order; the new order gets a fresh new_cl_order_id.
/// let replacement = orders::modify(&order).limit_price("13.25").send(user).await?;
/// println!("now {}", replacement.order_id);
/// # Ok(()) }
/// ```
pub fn modify(order: &Order) -> ModifyBuilder {
    ModifyBuilder {
        account_id: order.account_id.clone(),
        order_id: order.order_id.clone(),
        broker: order.broker.clone(),
        status: order.status.clone(),
        order_type: order.order_type.clone(),
        instrument: order.instrument.clone(),
        by_notional: order.order_notional.is_some() && order.order_qty.is_none(),
        by_quantity: order.order_qty.is_some() && order.order_notional.is_none(),
        new_cl_order_id: None,
        quantity: None,
        notional: None,
        limit_price: None,
        stop_price: None,
    }
}

/// Builds the body of `PATCH /accounts/{account_id}/orders/{order_id}` for an existing order
/// and checks it: the order is still open, something changes, numbers are positive with at
/// most 9 decimals, prices fit the order's type, quantity and notional are not mixed.
#[derive(Clone, Debug)]
#[must_use = "a modification does nothing until `build` or `send` is called"]
pub struct ModifyBuilder {
    pub(super) account_id: String,
    pub(super) order_id: String,
    broker: Option<BrokerCode>,
    status: OrderStatus,
    order_type: Option<OrderType>,
    instrument: Option<Instrument>,
    by_notional: bool,
    by_quantity: bool,
    new_cl_order_id: Option<Result<ClOrderId, OrderError>>,
    quantity: Option<Result<Decimal, OrderError>>,
    notional: Option<Result<Decimal, OrderError>>,
    limit_price: Option<Result<Decimal, OrderError>>,
    stop_price: Option<Result<Decimal, OrderError>>,
}

impl ModifyBuilder {
    /// The new quantity.
    pub fn quantity(mut self, quantity: impl IntoDecimal) -> Self {
        self.quantity = Some(quantity.into_decimal("order_qty"));
        self
    }

    /// The new dollar amount.
    pub fn notional(mut self, notional: impl IntoDecimal) -> Self {
        self.notional = Some(notional.into_decimal("order_notional"));
        self
    }

    /// The new limit price.
    pub fn limit_price(mut self, price: impl IntoDecimal) -> Self {
        self.limit_price = Some(price.into_decimal("order_limit_price"));
        self
    }

    /// The new stop price.
    pub fn stop_price(mut self, price: impl IntoDecimal) -> Self {
        self.stop_price = Some(price.into_decimal("stop_price"));
        self
    }

    /// Your own id for the order after the change (default: a generated [`ClOrderId`]).
    pub fn new_cl_order_id(mut self, id: impl AsRef<str>) -> Self {
        self.new_cl_order_id = Some(ClOrderId::new(id.as_ref()));
        self
    }

    /// The broker, for an order that does not carry one.
    pub fn broker(mut self, broker: BrokerCode) -> Self {
        self.broker = Some(broker);
        self
    }

    /// The account of the order (the path's `account_id`).
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The order being modified (the path's `order_id`).
    pub fn order_id(&self) -> &str {
        &self.order_id
    }

    /// Checks the modification and returns the body.
    pub fn build(self) -> Result<ModifyOrderRequest, OrderError> {
        if self.status.is_terminal() {
            return Err(not_open(&self.order_id, &self.status, "modified"));
        }
        let broker = self.broker.ok_or_else(|| {
            OrderError::new(
                OrderRule::Account,
                format!(
                    "order {} carries no broker: set it with .broker(..)",
                    self.order_id
                ),
            )
        })?;
        let new_cl_order_id = match self.new_cl_order_id {
            Some(id) => id?,
            None => ClOrderId::generate(),
        };
        let order_qty = self.quantity.transpose()?.map(trim_scale);
        let order_notional = self.notional.transpose()?.map(trim_scale);
        let order_limit_price = self.limit_price.transpose()?.map(trim_scale);
        let stop_price = self.stop_price.transpose()?.map(trim_scale);
        if order_qty.is_none()
            && order_notional.is_none()
            && order_limit_price.is_none()
            && stop_price.is_none()
        {
            return Err(OrderError::new(
                OrderRule::NothingToModify,
                "the modification changes nothing: set a quantity, notional, limit price or \
                 stop price",
            ));
        }
        if order_qty.is_some() && order_notional.is_some() {
            return Err(OrderError::new(
                OrderRule::QuantityOrNotional,
                "a modification sets the quantity or the notional, not both",
            ));
        }
        if order_qty.is_some() && self.by_notional {
            return Err(OrderError::new(
                OrderRule::QuantityOrNotional,
                "the order was placed by notional: change its notional, not a quantity",
            ));
        }
        if order_notional.is_some() && self.by_quantity {
            return Err(OrderError::new(
                OrderRule::QuantityOrNotional,
                "the order was placed by quantity: change its quantity, not a notional",
            ));
        }
        let is_option = matches!(
            self.instrument,
            Some(Instrument::Option | Instrument::MultiLegOption)
        );
        let multi_leg = self.instrument == Some(Instrument::MultiLegOption);
        if let Some(qty) = order_qty {
            check("order_qty", qty, true)?;
            if is_option && !qty.fract().is_zero() {
                return Err(OrderError::new(
                    OrderRule::WholeContracts,
                    format!("order_qty {qty}: options trade in whole contracts"),
                ));
            }
        }
        if let Some(notional) = order_notional {
            if is_option {
                return Err(OrderError::new(
                    OrderRule::QuantityOrNotional,
                    "options are ordered by quantity (contracts), not by notional",
                ));
            }
            check("order_notional", notional, true)?;
        }
        let known_type = self.order_type.as_ref().filter(|t| !t.is_unknown());
        if let Some(price) = order_limit_price {
            if let Some(t) = known_type.filter(|t| !t.needs_limit_price()) {
                return Err(OrderError::new(
                    OrderRule::LimitPrice,
                    format!("the order is {}, which takes no limit price", t.as_str()),
                ));
            }
            check("order_limit_price", price, !multi_leg)?;
        }
        if let Some(price) = stop_price {
            if let Some(t) = known_type.filter(|t| !t.needs_stop_price()) {
                return Err(OrderError::new(
                    OrderRule::StopPrice,
                    format!("the order is {}, which takes no stop price", t.as_str()),
                ));
            }
            check("stop_price", price, true)?;
        }
        request!(ModifyOrderRequest {
            broker: broker,
            new_cl_order_id: new_cl_order_id.into_string(),
            order_limit_price: order_limit_price,
            order_notional: order_notional,
            order_qty: order_qty,
            stop_price: stop_price,
        })
    }
}

pub(super) fn not_open(order_id: &str, status: &OrderStatus, what: &str) -> OrderError {
    OrderError::new(
        OrderRule::OrderNotOpen,
        format!(
            "order {order_id} is {status}; only open orders can be {what} (fetch it again if \
             you think it is still open)"
        ),
    )
}
