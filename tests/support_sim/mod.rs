//! Helpers of the simulator's end-to-end tests.
#![allow(dead_code)]

pub mod schema;

use chrono::{TimeZone, Utc};
use connect_trade::{
    ConnectTrade, Error,
    codes::{BrokerCode, OrderSide},
    orders::OrderBuilder,
    rest::types::PlaceOrderRequest,
};
use connect_trade_sim::{PaperUser, Simulator, Wire};
use rust_decimal::Decimal;

/// A simulator with a manual clock and a fixed start (Monday 2026-03-02 15:00 UTC), so
/// every outcome is exact.
pub async fn sim() -> Simulator {
    sim_under(None).await
}

/// [`sim`] speaking a wire variant (`None`: the default shapes).
pub async fn sim_under(wire: Option<Wire>) -> Simulator {
    let builder = Simulator::builder()
        .manual_clock()
        .start_time(Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap());
    let builder = match wire {
        Some(wire) => builder.wire(wire),
        None => builder,
    };
    builder.start().await.expect("simulator starts")
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

/// An equity order of `user`'s paper account, as our users write one: an [`OrderBuilder`]
/// with the account and `cl` (the cl_order_id) set; give the size, type and time in force.
pub fn equity(user: &PaperUser, cl: &str, side: OrderSide, symbol: &str) -> OrderBuilder {
    OrderBuilder::equity(symbol, side)
        .account(&user.account_id, BrokerCode::Alpaca)
        .cl_order_id(cl)
}

/// A single-leg option order of `user`'s paper account (see [`equity`]).
pub fn option(user: &PaperUser, cl: &str, side: OrderSide, symbol: &str) -> OrderBuilder {
    OrderBuilder::option(symbol, side)
        .account(&user.account_id, BrokerCode::Alpaca)
        .cl_order_id(cl)
}

/// A DAY market order of `qty` shares, built by [`OrderBuilder`].
pub fn market(
    user: &PaperUser,
    cl: &str,
    side: OrderSide,
    symbol: &str,
    qty: &str,
) -> PlaceOrderRequest {
    equity(user, cl, side, symbol)
        .quantity(qty)
        .market()
        .build()
        .expect("a valid market order")
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

/// A request as any HTTP client sends it (for bodies the SDK would never write: a
/// `serde_json::Value`, or JSON text written by hand), with the simulator's default platform
/// credentials and `user`'s pair: the status and the JSON body answered (`Null` when none).
pub async fn raw(
    sim: &Simulator,
    user: &PaperUser,
    method: reqwest::Method,
    path: &str,
    body: impl std::fmt::Display,
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.rest_url()))
        .header("client-id", connect_trade_sim::DEFAULT_CLIENT_ID)
        .header("client-secret", connect_trade_sim::DEFAULT_CLIENT_SECRET)
        .header("user-id", user.credentials.user_id.as_str())
        .header("user-secret", user.credentials.user_secret.expose())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the simulator answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or_default())
}
