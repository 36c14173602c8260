//! The documentation's three orders, written with the builders: 1 share of MSFT at market on
//! Alpaca, the TSLA call at 13.50 GTC on Webull, and an iron condor.
//!
//! ```sh
//! cargo run --example placing_orders            # builds and prints the request bodies
//! ```
//!
//! With `CONNECT_TRADE_CLIENT_ID`, `CONNECT_TRADE_CLIENT_SECRET` (and optionally
//! `CONNECT_TRADE_BASE_URL`), `CONNECT_TRADE_USER_ID`, `CONNECT_TRADE_USER_SECRET`,
//! `CONNECT_TRADE_ACCOUNT_ID` and `PLACE_ORDERS=yes` set, it places them (use a paper
//! account).

use connect_trade::{
    ConnectTrade, UserClient, UserCredentials,
    codes::{BrokerCode, OrderSide, TimeInForce},
    orders::{OrderBuilder, Strategy},
    rest::types::PlaceOrderRequest,
};

/// Buy 1 share of MSFT at market on Alpaca.
fn msft(account_id: &str) -> connect_trade::Result<PlaceOrderRequest> {
    let order = OrderBuilder::equity("MSFT", OrderSide::Buy)
        .account(account_id, BrokerCode::Alpaca)
        .quantity(1)
        .market()
        .time_in_force(TimeInForce::Day)
        .build()?;
    Ok(order)
}

/// Buy 1 TSLA call (437.50, 2025-10-31) at a limit of 13.50, good till cancelled, on Webull.
fn tsla_call(account_id: &str) -> connect_trade::Result<PlaceOrderRequest> {
    let order = OrderBuilder::option("TSLA251031C00437500", OrderSide::BuyToOpen)
        .account(account_id, BrokerCode::Webull)
        .quantity(1)
        .limit("13.50")
        .time_in_force(TimeInForce::Gtc)
        .build()?;
    Ok(order)
}

/// An iron condor on SPY for a net limit of 1.10.
fn iron_condor(account_id: &str) -> connect_trade::Result<PlaceOrderRequest> {
    let condor = Strategy::iron_condor(
        "SPY241018P00410000".parse()?, // buy the 410 put
        "SPY241018P00420000".parse()?, // sell the 420 put
        "SPY241018C00440000".parse()?, // sell the 440 call
        "SPY241018C00450000".parse()?, // buy the 450 call
    )?;
    let order = condor
        .order()
        .account(account_id, BrokerCode::Alpaca)
        .quantity(1)
        .limit("1.10")
        .time_in_force(TimeInForce::Day)
        .build()?;
    Ok(order)
}

async fn place_all(user: &UserClient, account_id: &str) -> connect_trade::Result<()> {
    for order in [
        msft(account_id)?,
        tsla_call(account_id)?,
        iron_condor(account_id)?,
    ] {
        let placed = user.place_order().body(order).send().await?.into_inner();
        println!("placed {} ({})", placed.order_id, placed.status);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> connect_trade::Result<()> {
    let account_id =
        std::env::var("CONNECT_TRADE_ACCOUNT_ID").unwrap_or_else(|_| "your-account-id".into());
    for order in [
        msft(&account_id)?,
        tsla_call(&account_id)?,
        iron_condor(&account_id)?,
    ] {
        println!(
            "{}",
            serde_json::to_string_pretty(&order)
                .map_err(|e| { connect_trade::Error::InvalidRequest(e.to_string()) })?
        );
    }
    if std::env::var("PLACE_ORDERS").as_deref() == Ok("yes") {
        let user = |name: &str| {
            std::env::var(name)
                .map_err(|_| connect_trade::Error::Config(format!("{name} is not set")))
        };
        let platform = ConnectTrade::from_env()?;
        let user = platform.for_user(UserCredentials::new(
            user("CONNECT_TRADE_USER_ID")?,
            user("CONNECT_TRADE_USER_SECRET")?,
        ))?;
        place_all(&user, &account_id).await?;
    }
    Ok(())
}
