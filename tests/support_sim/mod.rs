//! Helpers of the simulator's end-to-end tests.
#![allow(dead_code)]

pub mod schema;

use chrono::{TimeZone, Utc};
use connect_trade::{
    ConnectTrade, Error,
    codes::{BrokerCode, Instrument, OrderSide, OrderType, TimeInForce},
    rest::types::PlaceOrderRequest,
};
use connect_trade_sim::{PaperUser, Simulator};
use rust_decimal::Decimal;

/// A simulator with a manual clock and a fixed start (Monday 2026-03-02 15:00 UTC), so
/// every outcome is exact.
pub async fn sim() -> Simulator {
    Simulator::builder()
        .manual_clock()
        .start_time(Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap())
        .start()
        .await
        .expect("simulator starts")
}

/// A platform client with retries off (so injected faults show).
pub fn platform(sim: &Simulator) -> ConnectTrade {
    ConnectTrade::builder()
        .credentials(sim.credentials())
        .base_url(sim.rest_url())
        .retry_policy(connect_trade::client::RetryPolicy::none())
        .build()
        .expect("client")
}

pub async fn alice(sim: &Simulator) -> (ConnectTrade, PaperUser) {
    let platform = platform(sim);
    let user = sim
        .paper_user(&platform, "alice", BrokerCode::Alpaca)
        .await
        .expect("paper user");
    (platform, user)
}

pub fn dec(text: &str) -> Decimal {
    text.parse().expect("decimal")
}

/// An equity order of `qty` shares; adjust fields afterwards.
pub fn order(
    user: &PaperUser,
    cl: &str,
    side: OrderSide,
    order_type: OrderType,
    symbol: &str,
    qty: &str,
) -> PlaceOrderRequest {
    PlaceOrderRequest {
        account_id: user.account_id.clone(),
        broker: BrokerCode::Alpaca,
        cl_order_id: cl.to_string(),
        instrument: Some(Instrument::Equity),
        legs: Vec::new(),
        order_limit_price: None,
        order_notional: None,
        order_qty: Some(dec(qty)),
        order_tif: TimeInForce::Day,
        order_type,
        side: Some(side),
        stop_price: None,
        symbol: Some(symbol.to_string()),
    }
}

/// The status and message of a refused call.
pub fn refused<T: std::fmt::Debug, E>(result: Result<T, E>) -> (u16, String)
where
    Error: From<E>,
{
    match result.map_err(Error::from) {
        Err(Error::Api {
            status, message, ..
        }) => (status, message),
        Err(Error::RateLimited { message, .. }) => (429, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Checks every REST response the simulator gave against the spec's schemas.
pub fn assert_conforms(sim: &Simulator) {
    let spec = schema::Spec::load();
    let mut errors = Vec::new();
    let responses = sim.responses();
    assert!(!responses.is_empty(), "no responses recorded");
    for r in &responses {
        let Some(route) = &r.route else { continue };
        if route.starts_with("/oauth/") {
            continue; // the OAuth page is the simulator's own, not part of the API
        }
        match spec.response_schema(&r.method, route, r.status) {
            Err(e) => errors.push(e),
            Ok(None) => {}
            Ok(Some(schema)) => match &r.body {
                None => errors.push(format!(
                    "{} {} {}: no JSON body",
                    r.method, r.path, r.status
                )),
                Some(body) => spec.validate(
                    &schema,
                    body,
                    &format!("{} {} {}", r.method, r.path, r.status),
                    &mut errors,
                ),
            },
        }
    }
    assert!(
        errors.is_empty(),
        "responses break the spec:\n{}",
        errors.join("\n")
    );
}
