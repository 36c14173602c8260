//! Checking an order request before anything happens: its shape (a 400 naming the field), the
//! account it is for (a trade connection at the right broker) and its `cl_order_id`.

use connect_trade::{
    codes::{BrokerCode, ConnectionType, Instrument, OrderType},
    rest::types::PlaceOrderRequest,
};
use rust_decimal::Decimal;

use crate::{
    market::parse_option,
    state::{ApiError, ApiResult, State},
};

/// The shape of a new order: every field present, known and consistent. Returns the
/// instrument, inferred when the request leaves it out.
pub(super) fn check_request(req: &PlaceOrderRequest) -> ApiResult<Instrument> {
    if req.order_type.is_unknown() {
        return Err(ApiError::invalid(
            "order_type",
            format!(
                "{:?} is not one of MKT, LMT, STP, STPLMT",
                req.order_type.as_str()
            ),
        ));
    }
    if req.order_tif.is_unknown() {
        return Err(ApiError::invalid(
            "order_tif",
            format!("{:?} is not a known time in force", req.order_tif.as_str()),
        ));
    }
    let instrument = req.instrument.clone().unwrap_or_else(|| {
        if !req.legs.is_empty() {
            Instrument::MultiLegOption
        } else if req.symbol.as_deref().and_then(parse_option).is_some() {
            Instrument::Option
        } else {
            Instrument::Equity
        }
    });
    if instrument.is_unknown() {
        return Err(ApiError::invalid(
            "instrument",
            format!(
                "{:?} is not one of STK, OPT, MLEG_OPT, FUT",
                instrument.as_str()
            ),
        ));
    }
    let multi = instrument == Instrument::MultiLegOption;
    if multi {
        if !(2..=4).contains(&req.legs.len()) {
            return Err(ApiError::invalid(
                "legs",
                "a multi-leg order has 2 to 4 legs",
            ));
        }
        if req.symbol.is_some() {
            return Err(ApiError::invalid(
                "symbol",
                "must be null for a multi-leg order (the legs carry the symbols)",
            ));
        }
        for (i, leg) in req.legs.iter().enumerate() {
            if leg.action.is_buy().is_none() {
                return Err(ApiError::invalid(
                    &format!("legs[{i}].action"),
                    format!("{:?} is not an order side", leg.action.as_str()),
                ));
            }
            if leg.ratio <= Decimal::ZERO {
                return Err(ApiError::invalid(
                    &format!("legs[{i}].ratio"),
                    "must be positive",
                ));
            }
            if leg.symbol.trim().is_empty() {
                return Err(ApiError::invalid(
                    &format!("legs[{i}].symbol"),
                    "must not be empty",
                ));
            }
        }
    } else {
        if !req.legs.is_empty() {
            return Err(ApiError::invalid(
                "legs",
                "only multi-leg orders (instrument MLEG_OPT) have legs",
            ));
        }
        if req.symbol.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(ApiError::invalid(
                "symbol",
                "required (null only for multi-leg orders)",
            ));
        }
        match &req.side {
            None => return Err(ApiError::invalid("side", "required")),
            Some(side) if side.is_buy().is_none() => {
                return Err(ApiError::invalid(
                    "side",
                    format!("{:?} is not an order side", side.as_str()),
                ));
            }
            _ => {}
        }
    }
    match (req.order_qty, req.order_notional) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "order_qty",
                "give order_qty or order_notional, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "order_qty",
                "required (or order_notional)",
            ));
        }
        (Some(q), None) if q <= Decimal::ZERO => {
            return Err(ApiError::invalid("order_qty", "must be positive"));
        }
        (None, Some(n)) if n <= Decimal::ZERO => {
            return Err(ApiError::invalid("order_notional", "must be positive"));
        }
        (None, Some(_))
            if req.order_type != OrderType::Market || instrument != Instrument::Equity =>
        {
            return Err(ApiError::invalid(
                "order_notional",
                "only market orders of equities take a notional",
            ));
        }
        _ => {}
    }
    let needs_limit = matches!(req.order_type, OrderType::Limit | OrderType::StopLimit);
    let needs_stop = matches!(req.order_type, OrderType::Stop | OrderType::StopLimit);
    match req.order_limit_price {
        None if needs_limit => {
            return Err(ApiError::invalid(
                "order_limit_price",
                format!("required for {} orders", req.order_type),
            ));
        }
        Some(_) if !needs_limit => {
            return Err(ApiError::invalid(
                "order_limit_price",
                format!("not used by {} orders", req.order_type),
            ));
        }
        Some(p) if !multi && p <= Decimal::ZERO => {
            return Err(ApiError::invalid("order_limit_price", "must be positive"));
        }
        _ => {}
    }
    match req.stop_price {
        None if needs_stop => {
            return Err(ApiError::invalid(
                "stop_price",
                format!("required for {} orders", req.order_type),
            ));
        }
        Some(_) if !needs_stop => {
            return Err(ApiError::invalid(
                "stop_price",
                format!("not used by {} orders", req.order_type),
            ));
        }
        Some(p) if p <= Decimal::ZERO => {
            return Err(ApiError::invalid("stop_price", "must be positive"));
        }
        _ => {}
    }
    Ok(instrument)
}

impl State {
    /// Checks what every order needs, returning the account's broker check too.
    pub(super) fn tradable_account(
        &self,
        user_id: &str,
        account_id: &str,
        broker: &BrokerCode,
    ) -> ApiResult<()> {
        let account = self.account_of(user_id, account_id)?;
        if *broker != account.broker {
            return Err(ApiError::invalid(
                "broker",
                format!(
                    "account {account_id} is at {}, not {}",
                    account.broker, broker
                ),
            ));
        }
        let connection = self.connections.get(&account.connection_id);
        if connection.is_none_or(|c| c.connection_type != ConnectionType::Trade) {
            return Err(ApiError::unauthorized(format!(
                "account {account_id} belongs to a connection that is not of type trade: \
                 create a trade connection to place orders"
            )));
        }
        Ok(())
    }

    pub(super) fn claim_cl_order_id(
        &mut self,
        account_id: &str,
        cl_order_id: &str,
    ) -> ApiResult<()> {
        if cl_order_id.trim().is_empty() {
            return Err(ApiError::invalid("cl_order_id", "must not be empty"));
        }
        let day = self.now.date_naive();
        let account = self
            .accounts
            .get_mut(account_id)
            .ok_or_else(|| ApiError::not_found(format!("account {account_id:?}")))?;
        if !account.cl_ids.insert((day, cl_order_id.to_string())) {
            return Err(ApiError::conflict(format!(
                "cl_order_id {cl_order_id:?} was already used today on account {account_id}"
            )));
        }
        Ok(())
    }
}
