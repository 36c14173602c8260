//! A local Connect Trade: REST and both WebSockets over a simulated paper broker.
//!
//! Connect Trade has no sandbox. This crate is one, like stripe-mock for Stripe but stateful:
//! a server on loopback that implements every operation of `spec/openapi.json`, the brokerage
//! stream and the market data stream, in front of a paper broker with deterministic prices.
//!
//! ```no_run
//! # async fn demo() -> connect_trade::Result<()> {
//! use connect_trade::codes::BrokerCode;
//! use connect_trade_sim::Simulator;
//!
//! let sim = Simulator::start().await?;
//! let platform = sim.client()?; // a ConnectTrade pointed at the simulator
//! let alice = sim.paper_user(&platform, "alice", BrokerCode::Alpaca).await?;
//! let balances = alice.client.list_balances().send().await?.into_inner();
//! println!("{} cash", balances[0].cash.unwrap_or_default());
//! # Ok(()) }
//! ```
//!
//! What it simulates (see the README section "Testing your integration with the simulator"):
//! - Users, connections (with an OAuth page served at `connection_request_url`), accounts.
//! - A paper broker: market orders fill at the quote; limit, stop and stop-limit orders wait
//!   for the price; IOC, FOK; orders larger than the liquidity per tick fill in parts; modify
//!   gives `replaced` plus a new order; cancel goes through `pending_cancel`; DAY orders
//!   expire at 21:00 UTC; multi-leg orders fill as one; rejections carry a reason.
//! - Positions, balances and P&L following the fills; transactions recording them.
//! - Prices: a seeded random walk per symbol (options priced from it, with Greeks), advanced
//!   by a clock that runs in real time, faster, or only when told ([`Simulator::tick`]).
//! - Fault injection ([`Faults`]).

#![warn(missing_docs)]

mod faults;
mod market;
mod rest;
mod state;
mod wire;
mod ws;

use std::{
    collections::VecDeque,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard, atomic::AtomicU64},
    time::Duration,
};

use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;
use tokio::{
    net::TcpListener,
    sync::{broadcast, watch},
    task::JoinHandle,
};

pub use faults::{Faults, RestFault};
pub use wire::{UnknownWire, Wire};

use connect_trade::{
    ConnectTrade, Error, PlatformCredentials, Result, Secret, UserClient, UserCredentials,
    codes::{BrokerCode, ConnectionType},
};
use market::Market;
use state::{Control, Event, State};
use wire::WireSet;

/// The client id the simulator accepts unless configured otherwise.
pub const DEFAULT_CLIENT_ID: &str = "sim-client-id";
/// The client secret the simulator accepts unless configured otherwise.
pub const DEFAULT_CLIENT_SECRET: &str = "sim-client-secret";

/// One REST response the simulator gave, kept for inspection (the newest 10,000).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RecordedResponse {
    /// The request's method (`GET`, `POST`, …).
    pub method: String,
    /// The request's path (`/accounts/acct_000002/orders/ord_000007`).
    pub path: String,
    /// The route it matched, as the spec writes paths (`/accounts/{account_id}/orders/{order_id}`);
    /// `None` when nothing matched.
    pub route: Option<String>,
    /// The status answered.
    pub status: u16,
    /// The body, when it was JSON.
    pub body: Option<serde_json::Value>,
}

const LOG_CAPACITY: usize = 10_000;

pub(crate) struct Config {
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_timeout: Duration,
    pub tick: Duration,
    /// The wire variants switched on: `config.wire.contains(Wire::X)`.
    pub wire: WireSet,
}

/// Everything the servers share.
pub(crate) struct Shared {
    pub config: Config,
    state: Mutex<State>,
    pub events: broadcast::Sender<Event>,
    pub control: broadcast::Sender<Control>,
    pub ticks: broadcast::Sender<u64>,
    pub faults: Faults,
    log: Mutex<VecDeque<RecordedResponse>>,
    pub next_session: AtomicU64,
}

impl Shared {
    /// The world, locked. Never held across an await.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(&self, response: RecordedResponse) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(response);
    }

    /// Advances the clock by `ticks` steps and tells the market data sessions.
    pub(crate) fn advance_ticks(&self, ticks: u64) {
        let step =
            chrono::Duration::from_std(self.config.tick).unwrap_or(chrono::Duration::seconds(1));
        for _ in 0..ticks {
            let tick = {
                let mut state = self.state();
                state.step(step);
                state.tick
            };
            let _ = self.ticks.send(tick);
        }
    }
}

/// Configures a [`Simulator`].
#[derive(Clone, Debug)]
pub struct SimulatorBuilder {
    client_id: String,
    client_secret: Secret,
    seed: u64,
    start_time: Option<DateTime<Utc>>,
    tick: Duration,
    speed: f64,
    manual_clock: bool,
    rest_port: u16,
    brokerage_port: u16,
    market_data_port: u16,
    starting_cash: Decimal,
    liquidity: Decimal,
    symbols: Vec<(String, Decimal)>,
    auth_timeout: Duration,
    drop_streams_every: u64,
    rest_every: Option<(u64, RestFault)>,
    rest_share: Option<(f64, RestFault, u64)>,
    wire: WireSet,
}

impl Default for SimulatorBuilder {
    fn default() -> Self {
        SimulatorBuilder {
            client_id: DEFAULT_CLIENT_ID.to_string(),
            client_secret: Secret::from(DEFAULT_CLIENT_SECRET),
            seed: 42,
            start_time: None,
            tick: Duration::from_secs(1),
            speed: 1.0,
            manual_clock: false,
            rest_port: 0,
            brokerage_port: 0,
            market_data_port: 0,
            starting_cash: Decimal::from(100_000),
            liquidity: Decimal::from(100),
            symbols: Vec::new(),
            auth_timeout: Duration::from_secs(30),
            drop_streams_every: 0,
            rest_every: None,
            rest_share: None,
            wire: WireSet::default(),
        }
    }
}

impl SimulatorBuilder {
    /// The platform credentials accepted (every other pair gets 401). Default
    /// [`DEFAULT_CLIENT_ID`] / [`DEFAULT_CLIENT_SECRET`].
    pub fn credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        self.client_id = client_id.into();
        self.client_secret = client_secret.into();
        self
    }

    /// The seed of the prices and of generated secrets (default 42): the same seed and the same
    /// calls give the same prices and fills.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The simulated time at the start (default: now, to the second).
    pub fn start_time(mut self, start: DateTime<Utc>) -> Self {
        self.start_time = Some(start);
        self
    }

    /// Simulated time per tick (default 1 s). Each tick moves prices one step and works the
    /// open orders.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = if tick.is_zero() {
            Duration::from_millis(1)
        } else {
            tick
        };
        self
    }

    /// How fast the running clock goes: simulated seconds per real second (default 1.0;
    /// 60.0 runs a simulated minute per second).
    pub fn speed(mut self, speed: f64) -> Self {
        self.speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        self
    }

    /// No running clock: time moves only through [`Simulator::tick`] and
    /// [`Simulator::advance`]. Use it in tests for exact, reproducible outcomes.
    pub fn manual_clock(mut self) -> Self {
        self.manual_clock = true;
        self
    }

    /// The REST port (default 0: a free one).
    pub fn rest_port(mut self, port: u16) -> Self {
        self.rest_port = port;
        self
    }

    /// The brokerage stream's port (default 0: a free one).
    pub fn brokerage_port(mut self, port: u16) -> Self {
        self.brokerage_port = port;
        self
    }

    /// The market data stream's port (default 0: a free one).
    pub fn market_data_port(mut self, port: u16) -> Self {
        self.market_data_port = port;
        self
    }

    /// Cash in each new paper account (default 100,000).
    pub fn starting_cash(mut self, cash: Decimal) -> Self {
        self.starting_cash = cash;
        self
    }

    /// Shares (or contracts) that fill per tick at the best price, also the quoted size
    /// (default 100). A larger order fills in parts over several ticks.
    pub fn liquidity(mut self, quantity: Decimal) -> Self {
        if quantity > Decimal::ZERO {
            self.liquidity = quantity;
        }
        self
    }

    /// Adds (or re-prices) an equity symbol. Known by default: AAPL, MSFT, TSLA, SPY, QQQ,
    /// AMZN, NVDA, GOOGL, META, IBM, AMD, NFLX, JPM, BAC, F.
    pub fn symbol(mut self, symbol: impl Into<String>, price: Decimal) -> Self {
        self.symbols.push((symbol.into(), price));
        self
    }

    /// How long a stream connection may wait before authenticating (default 30 s).
    pub fn auth_timeout(mut self, timeout: Duration) -> Self {
        self.auth_timeout = timeout;
        self
    }

    /// Fault injection from the start: see [`Faults::drop_streams_every`].
    pub fn drop_streams_every(mut self, messages: u64) -> Self {
        self.drop_streams_every = messages;
        self
    }

    /// Fault injection from the start: see [`Faults::fail_every`].
    pub fn fail_rest_every(mut self, k: u64, fault: RestFault) -> Self {
        self.rest_every = Some((k, fault));
        self
    }

    /// Fault injection from the start: see [`Faults::fail_share`].
    pub fn fail_rest_share(mut self, share: f64, fault: RestFault, seed: u64) -> Self {
        self.rest_share = Some((share, fault, seed));
        self
    }

    /// Switches a wire variant on (callable several times: each adds one). Without any, the
    /// simulator answers in the shapes Connect Trade's documentation publishes.
    pub fn wire(mut self, wire: Wire) -> Self {
        self.wire.insert(wire);
        self
    }

    /// Binds the three servers on 127.0.0.1 and starts them (and the clock, unless manual).
    ///
    /// Must be called inside a Tokio runtime. Fails if a configured port is taken.
    pub async fn start(self) -> Result<Simulator> {
        let bind = |port: u16, what: &'static str| async move {
            TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
                .await
                .map_err(|e| {
                    Error::Config(format!(
                        "the simulator could not listen for {what} on 127.0.0.1:{port}: {e}"
                    ))
                })
        };
        let rest_listener = bind(self.rest_port, "REST").await?;
        let brokerage_listener = bind(self.brokerage_port, "the brokerage stream").await?;
        let market_listener = bind(self.market_data_port, "the market data stream").await?;
        let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).unwrap_or_default();
        let rest_url = format!("http://127.0.0.1:{}", port(&rest_listener));
        let brokerage_url = format!("ws://127.0.0.1:{}", port(&brokerage_listener));
        let market_url = format!("ws://127.0.0.1:{}", port(&market_listener));

        let start = self
            .start_time
            .unwrap_or_else(|| Utc::now().trunc_subsecs(0));
        let (events, _) = broadcast::channel(16_384);
        let (control, _) = broadcast::channel(256);
        let (ticks, _) = broadcast::channel(1024);
        let market = Market::new(
            self.seed,
            start,
            self.tick.as_secs_f64(),
            &self.symbols,
            self.liquidity,
        );
        let mut state = State::new(
            start,
            market,
            self.seed,
            self.starting_cash,
            events.clone(),
            control.clone(),
        );
        state.rest_url = rest_url.clone();
        let faults = Faults::new(control.clone());
        faults.drop_streams_every(self.drop_streams_every);
        if let Some((k, fault)) = self.rest_every {
            faults.fail_every(k, fault);
        }
        if let Some((share, fault, seed)) = self.rest_share {
            faults.fail_share(share, fault, seed);
        }
        let shared = Arc::new(Shared {
            config: Config {
                client_id: self.client_id,
                client_secret: self.client_secret,
                auth_timeout: self.auth_timeout,
                tick: self.tick,
                wire: self.wire,
            },
            state: Mutex::new(state),
            events,
            control,
            ticks,
            faults,
            log: Mutex::new(VecDeque::new()),
            next_session: AtomicU64::new(1),
        });

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let router = rest::router(shared.clone());
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(rest_listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        }));
        tasks.push(tokio::spawn(ws::serve(
            ws::Kind::Brokerage,
            brokerage_listener,
            shared.clone(),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(ws::serve(
            ws::Kind::MarketData,
            market_listener,
            shared.clone(),
            shutdown_rx.clone(),
        )));
        if !self.manual_clock {
            let period = self.tick.div_f64(self.speed).max(Duration::from_millis(1));
            let clock = shared.clone();
            let mut stop = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move {
                let mut interval = tokio::time::interval(period);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                interval.tick().await;
                loop {
                    tokio::select! {
                        _ = interval.tick() => clock.advance_ticks(1),
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
            }));
        }
        Ok(Simulator {
            shared,
            rest_url,
            brokerage_url,
            market_url,
            shutdown,
            tasks,
        })
    }
}

/// A running simulator: a REST server and two WebSocket servers on loopback.
///
/// Stops when dropped (or on [`Simulator::shutdown`]).
pub struct Simulator {
    shared: Arc<Shared>,
    rest_url: String,
    brokerage_url: String,
    market_url: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("rest_url", &self.rest_url)
            .field("brokerage_stream_url", &self.brokerage_url)
            .field("market_data_url", &self.market_url)
            .finish_non_exhaustive()
    }
}

/// A user with a funded paper account, made by [`Simulator::paper_user`].
#[derive(Debug)]
pub struct PaperUser {
    /// A client acting for the user.
    pub client: UserClient,
    /// The user's credentials.
    pub credentials: UserCredentials,
    /// The trade connection.
    pub connection_id: String,
    /// The paper account.
    pub account_id: String,
}

impl Simulator {
    /// Starts a simulator with the defaults: free ports, [`DEFAULT_CLIENT_ID`] /
    /// [`DEFAULT_CLIENT_SECRET`], seed 42, a real-time clock.
    pub async fn start() -> Result<Simulator> {
        SimulatorBuilder::default().start().await
    }

    /// A builder for anything else.
    pub fn builder() -> SimulatorBuilder {
        SimulatorBuilder::default()
    }

    /// The REST base URL (`http://127.0.0.1:PORT`).
    pub fn rest_url(&self) -> &str {
        &self.rest_url
    }

    /// The brokerage stream's URL (`ws://127.0.0.1:PORT`).
    pub fn brokerage_stream_url(&self) -> &str {
        &self.brokerage_url
    }

    /// The market data stream's URL (`ws://127.0.0.1:PORT`).
    pub fn market_data_url(&self) -> &str {
        &self.market_url
    }

    /// The platform credentials it accepts.
    pub fn credentials(&self) -> PlatformCredentials {
        PlatformCredentials::new(
            self.shared.config.client_id.clone(),
            self.shared.config.client_secret.clone(),
        )
    }

    /// A [`ConnectTrade`] pointed at this simulator with its credentials.
    pub fn client(&self) -> Result<ConnectTrade> {
        ConnectTrade::builder()
            .credentials(self.credentials())
            .base_url(self.rest_url.clone())
            .build()
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// One step of the clock: prices move, open orders work, pending cancels complete.
    pub fn tick(&self) {
        self.shared.advance_ticks(1);
    }

    /// Moves the clock forward by `by` (rounded up to whole ticks).
    pub fn advance(&self, by: Duration) {
        let tick = self.shared.config.tick.as_nanos().max(1);
        let ticks = by.as_nanos().div_ceil(tick);
        self.shared
            .advance_ticks(u64::try_from(ticks).unwrap_or(u64::MAX));
    }

    /// The close, now: every open DAY order expires (as at 21:00 UTC).
    pub fn close_market(&self) {
        self.shared.state().close_market();
    }

    /// The simulated time.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.state().now
    }

    /// The current price (mid) of an equity or option symbol, if the market knows it.
    pub fn price(&self, symbol: &str) -> Option<Decimal> {
        self.shared.state().price(&symbol.to_ascii_uppercase())
    }

    /// The equity symbols the market knows (options on them are known too).
    pub fn symbols(&self) -> Vec<String> {
        self.shared.state().market.equities()
    }

    /// The wire variants switched on ([`SimulatorBuilder::wire`]), in [`Wire::ALL`] order.
    pub fn wire(&self) -> Vec<Wire> {
        self.shared.config.wire.iter().collect()
    }

    /// Every REST response so far (the newest 10,000), oldest first.
    pub fn responses(&self) -> Vec<RecordedResponse> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Completes the OAuth flow as a browser would: opens `connection_request_url` (choosing
    /// `broker` when the connection did not preselect one) and returns where it redirects,
    /// `redirect_url` with `connection_id`, or with `error` and `error_details`.
    pub async fn authorize(
        &self,
        connection_request_url: &str,
        broker: Option<&BrokerCode>,
    ) -> Result<url::Url> {
        let mut url = url::Url::parse(connection_request_url)
            .map_err(|e| Error::Config(format!("not a URL: {connection_request_url:?}: {e}")))?;
        if let Some(broker) = broker {
            url.query_pairs_mut().append_pair("broker", broker.as_str());
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("could not build an HTTP client: {e}")))?;
        let response = http.get(url).send().await.map_err(Error::Transport)?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        match location {
            Some(location) if status.is_redirection() => url::Url::parse(&location).map_err(|e| {
                Error::Config(format!(
                    "the OAuth page redirected to a bad URL {location:?}: {e}"
                ))
            }),
            _ => {
                let body = response.text().await.unwrap_or_default();
                Err(Error::Api {
                    status: status.as_u16(),
                    message: if status.is_success() {
                        "the OAuth page wants a broker chosen: pass one".to_string()
                    } else {
                        body
                    },
                    request_id: None,
                })
            }
        }
    }

    /// Creates a user, a trade connection at `broker` through the OAuth page, and returns a
    /// client for the user with its paper account: the usual start of a test.
    pub async fn paper_user(
        &self,
        platform: &ConnectTrade,
        user_id: &str,
        broker: BrokerCode,
    ) -> Result<PaperUser> {
        let created = platform
            .create_user()
            .body_map(|b| b.user_id(user_id.to_string()))
            .send()
            .await?
            .into_inner();
        let credentials = UserCredentials::from(created);
        let client = platform.for_user(credentials.clone())?;
        let request = client
            .create_connection()
            .body_map(|b| {
                b.connection_type(ConnectionType::Trade)
                    .broker(Some(broker.clone()))
                    .redirect_url("https://example.com/connected".to_string())
            })
            .send()
            .await?
            .into_inner();
        let landed = self
            .authorize(&request.connection_request_url, None)
            .await?;
        let query = |key: &str| {
            landed
                .query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let connection_id = query("connection_id").ok_or_else(|| Error::Api {
            status: 400,
            message: format!(
                "the OAuth flow failed: {} ({})",
                query("error").unwrap_or_default(),
                query("error_details").unwrap_or_default()
            ),
            request_id: None,
        })?;
        let accounts = client
            .list_accounts()
            .connection_id(connection_id.clone())
            .send()
            .await?
            .into_inner();
        let account_id = accounts
            .into_iter()
            .next()
            .map(|a| a.account_id)
            .ok_or_else(|| Error::Config("the new connection has no account".to_string()))?;
        Ok(PaperUser {
            client,
            credentials,
            connection_id,
            account_id,
        })
    }

    /// Stops the servers and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}
