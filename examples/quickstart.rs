//! The Connect Trade journey, end to end.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! With no credentials in the environment it starts the simulator (crate `connect-trade-sim`)
//! and walks the whole journey offline: create a user → connect a broker (OAuth) → accounts →
//! balances → a market and a limit order → their updates on the brokerage stream → a few
//! quotes → positions and total unrealized P&L → cancel the open order → delete the user.
//!
//! With `CONNECT_TRADE_CLIENT_ID` / `CONNECT_TRADE_CLIENT_SECRET` set (and
//! `CONNECT_TRADE_USER_ID` / `CONNECT_TRADE_USER_SECRET` for the user steps) it runs the
//! read-only steps against the real API (or `CONNECT_TRADE_BASE_URL`) and places nothing.

use connect_trade::{ConnectTrade, PlatformCredentials, UserClient, UserCredentials};
use rust_decimal::Decimal;

type Outcome = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Outcome {
    if PlatformCredentials::from_env()?.is_some() {
        return against_the_real_api().await;
    }
    offline::run().await
}

/// Read-only: lists what the credentials can see, places nothing.
async fn against_the_real_api() -> Outcome {
    let platform = ConnectTrade::from_env()?;
    println!(
        "Connect Trade at {} (read-only tour: nothing is placed)",
        platform.base_url()
    );
    let users = platform.list_users().send().await?.into_inner();
    println!("1. The platform has {} users.", users.len());
    let Some(credentials) = UserCredentials::from_env()? else {
        println!(
            "   Set {} and {} to tour one user's accounts too.",
            UserCredentials::USER_ID_VAR,
            UserCredentials::USER_SECRET_VAR
        );
        return Ok(());
    };
    let user = platform.for_user(credentials)?;
    tour_user(&user).await
}

async fn tour_user(user: &UserClient) -> Outcome {
    let connections = user.list_connections().send().await?.into_inner();
    println!(
        "2. {} has {} connections:",
        user.user_id(),
        connections.len()
    );
    for c in &connections {
        println!(
            "   - {} at {} ({})",
            c.connection_id, c.broker, c.connection_type
        );
    }
    let accounts = user.list_accounts().send().await?.into_inner();
    println!("3. Accounts:");
    for a in &accounts {
        let broker = a.broker.as_ref().map(|b| b.to_string()).unwrap_or_default();
        println!(
            "   - {} {} at {broker}",
            a.account_id,
            a.account_number.as_deref().unwrap_or("")
        );
    }
    println!("4. Balances:");
    for b in user.list_balances().send().await?.into_inner() {
        println!(
            "   - {}: cash {}, buying power {}",
            b.account_id,
            show(b.cash),
            show(b.buying_power)
        );
    }
    let positions = user.list_positions().send().await?.into_inner();
    println!("5. Positions:");
    for p in &positions {
        println!(
            "   - {} {} @ {}: unrealized P&L {}",
            p.quantity,
            p.symbol,
            show(p.last_price),
            show(p.unrealized_pl)
        );
    }
    let total: Decimal = positions.iter().filter_map(|p| p.unrealized_pl).sum();
    println!("   Total unrealized P&L: {total}");
    let open = user.list_orders().send().await?.into_inner();
    println!("6. {} open orders today.", open.orders.len());
    Ok(())
}

fn show(value: Option<Decimal>) -> String {
    value
        .map(|v| v.to_string())
        .unwrap_or_else(|| "n/a".to_string())
}

mod offline {
    use std::time::Duration;

    use connect_trade::{
        ConnectTrade, UserClient,
        codes::{BrokerCode, ConnectionType, OrderSide, OrderStatus, OrderType, TimeInForce},
        rest::types::PlaceOrderRequest,
        stream::{
            BrokerageEvent, BrokerageStream, MarketDataEvent, MarketDataStream,
            protocol::{Subscription, Topic},
        },
    };
    use connect_trade_sim::Simulator;
    use rust_decimal::Decimal;
    use tokio::sync::mpsc;

    use super::{Outcome, show};

    /// How long to wait for something the simulator is about to do.
    const PATIENCE: Duration = Duration::from_secs(10);

    pub async fn run() -> Outcome {
        // A simulated market running 10x faster than real time.
        let sim = Simulator::builder().speed(10.0).start().await?;
        println!(
            "Connect Trade simulator at {} (no credentials in the environment)\n",
            sim.rest_url()
        );
        let platform = sim.client()?;

        // 1. A user. Keep the secret: it is shown once.
        let created = platform
            .create_user()
            .body_map(|b| b.user_id("quickstart-user"))
            .send()
            .await?
            .into_inner();
        let credentials = created.into_credentials("quickstart-user");
        println!(
            "1. Created user {:?} (its secret is shown once: store it).",
            credentials.user_id
        );
        let user = platform.for_user(credentials)?;

        // 2. A connection: the user opens the URL, logs in at the broker, and lands back on
        //    redirect_url with connection_id. The simulator's page does it at once.
        let request = user
            .create_connection()
            .body_map(|b| {
                b.connection_type(ConnectionType::Trade)
                    .broker(Some(BrokerCode::Alpaca))
                    .redirect_url("https://example.com/connected")
            })
            .send()
            .await?
            .into_inner();
        println!(
            "2. Connection URL for the user: {}",
            request.connection_request_url
        );
        let landed = sim.authorize(&request.connection_request_url, None).await?;
        println!("   The OAuth flow redirected to {landed}");

        // 3. Accounts.
        let accounts = user.list_accounts().send().await?.into_inner();
        let account = accounts.first().ok_or("the connection has no account")?;
        println!(
            "3. Account {} ({}) at {}",
            account.account_id,
            account.account_name.as_deref().unwrap_or(""),
            account.broker.as_ref().map(|b| b.as_str()).unwrap_or("")
        );

        // 4. Balances.
        let balance = user
            .list_balances()
            .account_id(&account.account_id)
            .send()
            .await?
            .into_inner();
        let balance = balance.first().ok_or("no balance")?;
        println!(
            "4. Cash {}, buying power {}",
            show(balance.cash),
            show(balance.buying_power)
        );

        // The brokerage stream (server side: one connection for all users), before trading.
        let mut updates = brokerage_updates(&sim, &platform).await?;

        // 5. A market order and a limit order well below the market (it stays open).
        let price = sim.price("AAPL").ok_or("AAPL has no price")?;
        let order = |cl: &str, order_type: OrderType, limit: Option<Decimal>| {
            PlaceOrderRequest::try_from(
                PlaceOrderRequest::builder()
                    .account_id(account.account_id.clone())
                    .broker(BrokerCode::Alpaca)
                    .cl_order_id(cl.to_string())
                    .order_limit_price(limit)
                    .order_qty(Some(Decimal::from(10)))
                    .order_tif(TimeInForce::Gtc)
                    .order_type(order_type)
                    .side(Some(OrderSide::Buy))
                    .symbol(Some("AAPL".to_string())),
            )
            .expect("every required field is given")
        };
        let market = user
            .place_order()
            .body(order("qs-market-1", OrderType::Market, None))
            .send()
            .await?
            .into_inner();
        println!(
            "5. Market order {}: {} at {}",
            market.order_id,
            market.status,
            show(market.avg_fill_price)
        );
        let limit_price = (price * Decimal::new(95, 2)).round_dp(2);
        let limit = user
            .place_order()
            .body(order("qs-limit-1", OrderType::Limit, Some(limit_price)))
            .send()
            .await?
            .into_inner();
        println!(
            "   Limit order {} at {limit_price}: {}",
            limit.order_id, limit.status
        );

        // 6. Their updates on the stream.
        println!("6. Brokerage stream:");
        while let Some(update) = tokio::time::timeout(PATIENCE, updates.recv()).await? {
            println!("   {update}");
            if update.contains(&limit.order_id) && update.contains("working") {
                break;
            }
        }

        // 7. Market data: the stream fetches the connection's token, then a few quotes.
        let connection_id = landed
            .query_pairs()
            .find(|(k, _)| k == "connection_id")
            .map(|(_, v)| v.into_owned())
            .ok_or("no connection_id in the redirect")?;
        println!("7. Quotes from the market data stream:");
        for quote in quotes(&sim, &user, &connection_id, &["AAPL", "MSFT"], 4).await? {
            println!("   {quote}");
        }

        // 8. Positions and total unrealized P&L (P&L can be null at some brokers: skip those).
        let positions = user.list_positions().send().await?.into_inner();
        println!("8. Positions:");
        for p in &positions {
            println!(
                "   {} {} avg {} last {}: unrealized {}",
                p.quantity,
                p.symbol,
                show(p.average_price),
                show(p.last_price),
                show(p.unrealized_pl)
            );
        }
        let total: Decimal = positions.iter().filter_map(|p| p.unrealized_pl).sum();
        println!("   Total unrealized P&L: {total}");

        // 9. Cancel the open order: pending_cancel, then cancelled.
        user.cancel_order()
            .account_id(&account.account_id)
            .order_id(&limit.order_id)
            .send()
            .await?;
        println!("9. Cancel requested for {}:", limit.order_id);
        while let Some(update) = tokio::time::timeout(PATIENCE, updates.recv()).await? {
            println!("   {update}");
            if update.contains(&limit.order_id) && update.contains(OrderStatus::Cancelled.as_str())
            {
                break;
            }
        }

        // 10. Delete the user (and its connections).
        platform
            .delete_user()
            .user_id("quickstart-user")
            .send()
            .await?;
        println!("10. Deleted user quickstart-user. Done.");
        sim.shutdown().await;
        Ok(())
    }

    /// Opens the SDK's brokerage stream (it authenticates, subscribes, and would reconnect
    /// and resubscribe by itself) and forwards each update as a line of text.
    async fn brokerage_updates(
        sim: &Simulator,
        platform: &ConnectTrade,
    ) -> Result<mpsc::Receiver<String>, Box<dyn std::error::Error + Send + Sync>> {
        let mut stream = BrokerageStream::for_platform(platform)
            .url(sim.brokerage_stream_url())
            .subscribe([Topic::Orders, Topic::Positions, Topic::Balances])
            .connect()
            .await?;
        // Wait until the subscription is confirmed, so no update of the orders below is missed.
        loop {
            match tokio::time::timeout(PATIENCE, stream.next()).await? {
                Some(BrokerageEvent::Subscribed { .. }) => break,
                Some(_) => continue,
                None => return Err("the brokerage stream ended".into()),
            }
        }
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                let line = match event {
                    BrokerageEvent::Order { meta, order } => format!(
                        "#{} order {} {} {}: {} (filled {})",
                        meta.sequence.unwrap_or_default(),
                        order.order_id,
                        order.symbol.as_deref().unwrap_or("-"),
                        order.order_type.as_ref().map(|t| t.as_str()).unwrap_or(""),
                        order.status,
                        show(order.filled_qty)
                    ),
                    BrokerageEvent::Position { meta, position } => format!(
                        "#{} position {} {} (unrealized {})",
                        meta.sequence.unwrap_or_default(),
                        position.quantity,
                        position.symbol,
                        show(position.unrealized_pl)
                    ),
                    BrokerageEvent::Balance { meta, balance } => format!(
                        "#{} balance: cash {}, buying power {}",
                        meta.sequence.unwrap_or_default(),
                        show(balance.cash),
                        show(balance.buying_power)
                    ),
                    BrokerageEvent::Connection(event) => format!("(connection: {event:?})"),
                    BrokerageEvent::Lagged { dropped } => format!("({dropped} updates dropped)"),
                    BrokerageEvent::Error(error) => format!("(stream error: {error})"),
                    _ => continue,
                };
                if tx.send(line).await.is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }

    /// Opens the SDK's market data stream for the user's connection (it fetches the token
    /// itself) and returns `count` quotes.
    async fn quotes(
        sim: &Simulator,
        user: &UserClient,
        connection_id: &str,
        symbols: &[&str],
        count: usize,
    ) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
        let mut stream = MarketDataStream::for_connection(user, connection_id)
            .url(sim.market_data_url())
            .subscribe(Subscription::quotes(symbols.iter().copied()))
            .connect()
            .await?;
        let mut out = Vec::new();
        while out.len() < count {
            match tokio::time::timeout(PATIENCE, stream.next()).await? {
                Some(MarketDataEvent::Quote(q)) => out.push(format!(
                    "{:5} bid {} x {}  ask {} x {}",
                    q.symbol,
                    show(q.bid),
                    show(q.bid_size),
                    show(q.ask),
                    show(q.ask_size)
                )),
                Some(MarketDataEvent::Error(e)) => {
                    return Err(format!("market data error: {e}").into());
                }
                Some(_) => {}
                None => return Err("the market data stream ended".into()),
            }
        }
        stream.close().await;
        Ok(out)
    }
}
