//! The documentation's three orders, written with the builders: 1 share of MSFT at market on
//! Alpaca, the TSLA call at 13.50 GTC on Webull, and an iron condor.
//!
//! ```sh
//! cargo run --example placing_orders            # checks them and prints the request bodies
//! ```
//!
//! With `CONNECT_TRADE_CLIENT_ID`, `CONNECT_TRADE_CLIENT_SECRET` (and optionally
//! `CONNECT_TRADE_BASE_URL`), `CONNECT_TRADE_USER_ID`, `CONNECT_TRADE_USER_SECRET`,
//! `CONNECT_TRADE_ACCOUNT_ID` and `PLACE_ORDERS=yes` set, it places them (use a paper
//! account), each at most once: `send` is the guarded path.

use connect_trade::{
    ConnectTrade, Error, UserClient, UserCredentials,
    codes::{BrokerCode, OrderSide, TimeInForce},
    orders::{OrderBuilder, Strategy},
};

/// Buy 1 share of MSFT at market on Alpaca.
fn msft(account_id: &str) -> OrderBuilder {
    OrderBuilder::equity("MSFT", OrderSide::Buy)
        .account(account_id, BrokerCode::Alpaca)
        .quantity(1)
        .market()
        .time_in_force(TimeInForce::Day)
}

/// Buy 1 TSLA call (437.50, 2025-10-31) at a limit of 13.50, good till cancelled, on Webull.
fn tsla_call(account_id: &str) -> OrderBuilder {
    OrderBuilder::option("TSLA251031C00437500", OrderSide::BuyToOpen)
        .account(account_id, BrokerCode::Webull)
        .quantity(1)
        .limit("13.50")
        .time_in_force(TimeInForce::Gtc)
}

/// An iron condor on SPY for a net limit of 1.10.
fn iron_condor(account_id: &str) -> connect_trade::Result<OrderBuilder> {
    let condor = Strategy::iron_condor(
        "SPY241018P00410000".parse()?, // buy the 410 put
        "SPY241018P00420000".parse()?, // sell the 420 put
        "SPY241018C00440000".parse()?, // sell the 440 call
        "SPY241018C00450000".parse()?, // buy the 450 call
    )?;
    Ok(condor
        .order()
        .account(account_id, BrokerCode::Alpaca)
        .quantity(1)
        .limit("1.10")
        .time_in_force(TimeInForce::Day))
}

async fn place_all(user: &UserClient, orders: Vec<OrderBuilder>) -> connect_trade::Result<()> {
    for order in orders {
        match order.send(user).await {
            Ok(placed) => println!("placed {} ({})", placed.order_id, placed.status),
            // The order may exist: find it later by this id; never place it under a new one.
            Err(Error::OrderOutcomeUnknown { cl_order_id, .. }) => {
                println!("outcome unknown: look {cl_order_id} up before doing anything else")
            }
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> connect_trade::Result<()> {
    let account_id =
        std::env::var("CONNECT_TRADE_ACCOUNT_ID").unwrap_or_else(|_| "your-account-id".into());
    // Fixed client order ids, so that running the example twice cannot place twice.
    let orders = vec![
        msft(&account_id).cl_order_id("example-msft"),
        tsla_call(&account_id).cl_order_id("example-tsla-call"),
        iron_condor(&account_id)?.cl_order_id("example-iron-condor"),
    ];
    for order in &orders {
        let body = order.clone().build()?;
        println!(
            "{}",
            serde_json::to_string_pretty(&body)
                .map_err(|e| Error::InvalidRequest(e.to_string()))?
        );
    }
    if std::env::var("PLACE_ORDERS").as_deref() == Ok("yes") {
        let user = |name: &str| {
            std::env::var(name).map_err(|_| Error::Config(format!("{name} is not set")))
        };
        let platform = ConnectTrade::from_env()?;
        let user = platform.for_user(UserCredentials::new(
            user("CONNECT_TRADE_USER_ID")?,
            user("CONNECT_TRADE_USER_SECRET")?,
        ))?;
        place_all(&user, orders).await?;
    }
    Ok(())
}
