//! A live mirror of orders, positions and balances: REST snapshot + stream increments,
//! consistent through reconnects.
//!
//! The documentation's advice: "fetch initial snapshots via the REST API, then apply
//! incremental updates from the WebSocket; if the connection drops, reconnect, re-authenticate
//! and resubscribe". [`Portfolio`] does that, including the parts everyone gets wrong:
//!
//! - **Racing the snapshot.** While a user's state is read over REST, the updates that arrive
//!   are applied to what the mirror holds *and* buffered; when the read completes, its result
//!   replaces the user's state and the buffer is replayed on top. An update is therefore never
//!   lost, and applying one twice is harmless (each carries the entity's whole state).
//! - **Stale updates.** An update older than the state it would replace is ignored: orders
//!   compare `updated_at`, then the stream's `sequence` (within one session), then its
//!   `timestamp`; when none can tell, an order never leaves a final status nor loses fills.
//! - **Gaps.** On [`FeedEvent::Disconnected`] every user is marked stale; on
//!   [`FeedEvent::Reconnected`] every user is re-read over REST as above, and
//!   [`Change::Loaded`] reports how many things the gap had hidden (`corrected`).
//! - **Readers.** Reads take a read lock for as long as a clone of `Arc`s takes (values are
//!   shared, never copied); the writer holds the write lock for one map insert. A
//!   [`UserBook`] is a consistent snapshot of one user; [`Portfolio::read`] gives a consistent
//!   view of everything. [`Portfolio::subscribe`] (a `watch` of the version) and
//!   [`Portfolio::changes`] (a broadcast of what changed) notify.
//!
//! One user ([`Portfolio::for_user`]) or a whole platform ([`Portfolio::builder`] with
//! several users and/or a [`UserResolver`] that gives the client of a user first seen on the
//! stream: the brokerage stream carries every user of the platform).
//!
//! ```no_run
//! # async fn demo(platform: connect_trade::ConnectTrade, alice: connect_trade::UserClient)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use connect_trade::portfolio::Portfolio;
//! use connect_trade::stream::{BrokerageStream, protocol::Topic};
//!
//! let stream = BrokerageStream::for_platform(&platform)
//!     .subscribe([Topic::Orders, Topic::Positions, Topic::Balances])
//!     .connect()
//!     .await?;
//! let portfolio = Portfolio::for_user(alice.clone());
//! // Loads over REST once the stream is up, applies updates, reconciles after every gap.
//! tokio::spawn({ let p = portfolio.clone(); async move { p.follow(stream).await } });
//!
//! let mut changed = portfolio.subscribe();
//! changed.changed().await?;
//! if let Some(book) = portfolio.user(alice.user_id()) {
//!     let pl = book.unrealized_pl()?;
//!     println!("unrealized P&L {} ({} positions without a figure)", pl.total, pl.missing);
//! }
//! # Ok(()) }
//! ```
//!
//! Without the stream client (replays, tests), feed [`FeedEvent`]s to [`Portfolio::run`] or
//! [`Update`]s to [`Portfolio::apply`].

mod book;
mod fetch;
mod update;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, future::BoxFuture};
use tokio::sync::{broadcast, watch};

pub use book::{AccountBook, UserBook};
pub use fetch::{OrderScope, fetch_orders, fetch_user_book};
pub use update::{Applied, Change, FeedEvent, Update};

use crate::{
    UserClient,
    client::RetryPolicy,
    codes::{OrderSide, OrderStatus},
    error::Result,
    rest::types::Order,
    stream::BrokerageEvent,
    workflows::{AverageFill, DailyPlSummary, NullableSum, Overflow},
};
use book::Stamp;

/// Why every user is re-read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReconcileKind {
    /// A (re)connected stream session.
    NewSession,
    /// Updates dropped locally.
    Lagged,
    /// [`PortfolioBuilder::reconcile_every`].
    Periodic,
}

/// Gives the client of a user the portfolio does not know yet (first seen on the stream):
/// typically looks the user's secret up in the platform's database.
pub trait UserResolver: Send + Sync + 'static {
    /// The user's client, or `None` to leave the user out of the mirror.
    fn resolve(&self, user_id: &str) -> BoxFuture<'static, Option<UserClient>>;
}

impl<F> UserResolver for F
where
    F: Fn(&str) -> Option<UserClient> + Send + Sync + 'static,
{
    fn resolve(&self, user_id: &str) -> BoxFuture<'static, Option<UserClient>> {
        let client = self(user_id);
        Box::pin(async move { client })
    }
}

/// The state of one user's mirror.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserStatus {
    /// A REST snapshot has been installed at least once.
    pub loaded: bool,
    /// The stream dropped since the last installed snapshot began: updates may be missing
    /// until the reconciliation completes.
    pub stale: bool,
    /// REST reads in flight.
    pub loading: usize,
    /// When the last snapshot was installed.
    pub loaded_at: Option<DateTime<Utc>>,
    /// How many snapshots were installed (the first load, then each reconciliation).
    pub loads: u64,
    /// The last load's error, cleared by a successful load.
    pub last_error: Option<String>,
}

/// Internal per-user state.
#[derive(Default)]
struct UserState {
    book: UserBook,
    status: UserStatus,
    /// Buffers of in-flight loads (updates with the stamps they arrived with), by load
    /// generation.
    buffers: Vec<(u64, Vec<(Update, Stamp)>)>,
    /// The next load generation.
    next_gen: u64,
    /// The generation of the installed snapshot.
    installed_gen: Option<u64>,
    /// A snapshot of this generation or later clears `stale`.
    stale_until_gen: u64,
}

/// Everything the lock protects.
#[derive(Default)]
struct State {
    users: HashMap<String, UserState>,
    /// The stream session (bumped on reconnect: sequences restart).
    session: u64,
    version: u64,
}

/// A consistent view of the whole mirror, valid inside [`Portfolio::read`].
pub struct PortfolioView<'a> {
    state: &'a State,
}

impl PortfolioView<'_> {
    /// The users in the mirror.
    pub fn user_ids(&self) -> impl Iterator<Item = &str> {
        self.state.users.keys().map(String::as_str)
    }

    /// One user's book.
    pub fn user(&self, user_id: &str) -> Option<&UserBook> {
        self.state.users.get(user_id).map(|u| &u.book)
    }

    /// Every user's book.
    pub fn users(&self) -> impl Iterator<Item = (&str, &UserBook)> {
        self.state
            .users
            .iter()
            .map(|(id, u)| (id.as_str(), &u.book))
    }

    /// The version of the mirror this view shows.
    pub fn version(&self) -> u64 {
        self.state.version
    }
}

struct Inner {
    state: RwLock<State>,
    clients: RwLock<HashMap<String, UserClient>>,
    /// Users the resolver was asked about (resolved, declined or in progress).
    seen: RwLock<HashSet<String>>,
    resolver: Option<Box<dyn UserResolver>>,
    /// Keep updates of users without a client (a detached mirror).
    accept_unknown: bool,
    reconcile_every: Option<Duration>,
    scope: OrderScope,
    load_retry: RetryPolicy,
    concurrency: usize,
    version_tx: watch::Sender<u64>,
    changes_tx: broadcast::Sender<Change>,
}

/// Builds a [`Portfolio`].
#[must_use]
pub struct PortfolioBuilder {
    users: Vec<UserClient>,
    resolver: Option<Box<dyn UserResolver>>,
    scope: OrderScope,
    load_retry: RetryPolicy,
    concurrency: usize,
    change_capacity: usize,
    accept_unknown: bool,
    reconcile_every: Option<Duration>,
}

impl Default for PortfolioBuilder {
    fn default() -> Self {
        PortfolioBuilder {
            users: Vec::new(),
            resolver: None,
            scope: OrderScope::default(),
            load_retry: RetryPolicy::default(),
            concurrency: 8,
            change_capacity: 4096,
            accept_unknown: false,
            reconcile_every: None,
        }
    }
}

impl PortfolioBuilder {
    /// Mirrors this user.
    pub fn user(mut self, client: UserClient) -> Self {
        self.users.push(client);
        self
    }

    /// Mirrors these users.
    pub fn users(mut self, clients: impl IntoIterator<Item = UserClient>) -> Self {
        self.users.extend(clients);
        self
    }

    /// Gives the client of users first seen on the stream; they are then loaded and mirrored
    /// too. Without a resolver, updates of unknown users are ignored.
    pub fn resolver(mut self, resolver: impl UserResolver) -> Self {
        self.resolver = Some(Box::new(resolver));
        self
    }

    /// Which orders a snapshot loads (default [`OrderScope::default`]).
    pub fn order_scope(mut self, scope: OrderScope) -> Self {
        self.scope = scope;
        self
    }

    /// How a failed REST load is retried (default [`RetryPolicy::default`]).
    pub fn load_retry(mut self, policy: RetryPolicy) -> Self {
        self.load_retry = policy;
        self
    }

    /// How many users are loaded over REST at once (default 8).
    pub fn load_concurrency(mut self, users: usize) -> Self {
        self.concurrency = users.max(1);
        self
    }

    /// How many [`Change`]s a slow subscriber may lag behind before it sees
    /// `RecvError::Lagged` (default 4096).
    pub fn change_capacity(mut self, capacity: usize) -> Self {
        self.change_capacity = capacity.max(1);
        self
    }

    /// Also re-reads every user over REST this often while [`Portfolio::run`] (or
    /// [`Portfolio::follow`]) runs (default: never). Useful for the figures that follow the
    /// market (last price, market value, P&L, equity): brokers revalue them continuously,
    /// but the stream carries a position or balance only when it changes otherwise (a fill,
    /// a deposit), so between such changes they age in the mirror.
    pub fn reconcile_every(mut self, every: Duration) -> Self {
        self.reconcile_every = (!every.is_zero()).then_some(every);
        self
    }

    /// Builds the (empty) portfolio; call [`Portfolio::load`] next.
    pub fn build(self) -> Portfolio {
        let (version_tx, _) = watch::channel(0);
        let (changes_tx, _) = broadcast::channel(self.change_capacity);
        let mut state = State::default();
        let mut clients = HashMap::new();
        for client in self.users {
            state.users.entry(client.user_id().to_string()).or_default();
            clients.insert(client.user_id().to_string(), client);
        }
        Portfolio {
            inner: Arc::new(Inner {
                state: RwLock::new(state),
                clients: RwLock::new(clients),
                seen: RwLock::new(HashSet::new()),
                resolver: self.resolver,
                accept_unknown: self.accept_unknown,
                reconcile_every: self.reconcile_every,
                scope: self.scope,
                load_retry: self.load_retry,
                concurrency: self.concurrency,
                version_tx,
                changes_tx,
            }),
        }
    }
}

/// The live mirror (see the module docs). Cheap to clone: clones share one mirror.
#[derive(Clone)]
pub struct Portfolio {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Portfolio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.read_state();
        f.debug_struct("Portfolio")
            .field("users", &state.users.len())
            .field("version", &state.version)
            .finish()
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Portfolio {
    /// Starts a builder (one or many users).
    pub fn builder() -> PortfolioBuilder {
        PortfolioBuilder::default()
    }

    /// A portfolio of one user. Updates of other users are ignored.
    pub fn for_user(client: UserClient) -> Portfolio {
        Portfolio::builder().user(client).build()
    }

    /// A platform-wide portfolio without REST access: only what [`apply`](Self::apply) and
    /// [`install`](Self::install) give it (tests, replays, benchmarks). Updates of any user
    /// are kept.
    pub fn detached() -> Portfolio {
        let mut builder = Portfolio::builder();
        builder.accept_unknown = true;
        builder.build()
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        read(&self.inner.state)
    }

    // -----------------------------------------------------------------------------------
    // Reads
    // -----------------------------------------------------------------------------------

    /// A consistent snapshot of one user (cheap: the values are shared).
    pub fn user(&self, user_id: &str) -> Option<UserBook> {
        self.read_state().users.get(user_id).map(|u| u.book.clone())
    }

    /// One user's status (loaded, stale, loading…).
    pub fn status(&self, user_id: &str) -> Option<UserStatus> {
        self.read_state()
            .users
            .get(user_id)
            .map(|u| u.status.clone())
    }

    /// The users in the mirror.
    pub fn user_ids(&self) -> Vec<String> {
        self.read_state().users.keys().cloned().collect()
    }

    /// One order.
    pub fn order(&self, user_id: &str, account_id: &str, order_id: &str) -> Option<Arc<Order>> {
        self.read_state()
            .users
            .get(user_id)?
            .book
            .order(account_id, order_id)
    }

    /// Total unrealized P&L of a user ([`crate::workflows::total_unrealized_pl`]); `None`
    /// for a user not in the mirror.
    pub fn unrealized_pl(&self, user_id: &str) -> Option<Result<NullableSum, Overflow>> {
        let state = self.read_state();
        Some(state.users.get(user_id)?.book.unrealized_pl())
    }

    /// A user's daily P&L summary ([`crate::workflows::daily_pl_summary`]).
    pub fn daily_pl_summary(&self, user_id: &str) -> Option<Result<DailyPlSummary, Overflow>> {
        let state = self.read_state();
        Some(state.users.get(user_id)?.book.daily_pl_summary())
    }

    /// A user's partially filled orders, shared; pass them to
    /// [`crate::workflows::partially_filled_orders`] for their fills and averages.
    pub fn partially_filled_orders(&self, user_id: &str) -> Vec<Arc<Order>> {
        let state = self.read_state();
        state
            .users
            .get(user_id)
            .map(|user| {
                user.book
                    .orders_where(|o| o.status == OrderStatus::PartiallyFilled)
            })
            .unwrap_or_default()
    }

    /// The average fill price of a user's orders in `symbol` (and `side`, if given)
    /// ([`crate::workflows::average_fill_price_of_orders`]).
    pub fn average_fill_price(
        &self,
        user_id: &str,
        symbol: &str,
        side: Option<&OrderSide>,
    ) -> Option<Result<Option<AverageFill>, Overflow>> {
        let state = self.read_state();
        Some(
            state
                .users
                .get(user_id)?
                .book
                .average_fill_price(symbol, side),
        )
    }

    /// Runs `f` on a consistent view of the whole mirror. The writer waits while `f` runs:
    /// keep it short (collect what you need, compute outside), and do not call this
    /// portfolio's writing methods (`apply`, `install`, …) from it: they would wait for `f`.
    pub fn read<R>(&self, f: impl FnOnce(&PortfolioView<'_>) -> R) -> R {
        let state = self.read_state();
        f(&PortfolioView { state: &state })
    }

    /// The mirror's version: grows with every change.
    pub fn version(&self) -> u64 {
        self.read_state().version
    }

    /// A receiver of the version, to wait for the next change (`changed().await`).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.version_tx.subscribe()
    }

    /// A receiver of what changed. A receiver that falls behind by more than the capacity
    /// sees `Lagged` (then re-read what it needs).
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.inner.changes_tx.subscribe()
    }

    // -----------------------------------------------------------------------------------
    // Writes
    // -----------------------------------------------------------------------------------

    fn notify(&self, version: u64, change: impl FnOnce() -> Change) {
        if self.inner.changes_tx.receiver_count() > 0 {
            let _ = self.inner.changes_tx.send(change());
        }
        self.inner.version_tx.send_replace(version);
    }

    /// Applies one update now. Returns what happened; a user not in the portfolio gives
    /// [`Applied::UnknownUser`] (see [`run`](Self::run) for users resolved on the fly).
    pub fn apply(&self, update: Update) -> Applied {
        let (applied, version) = {
            let mut guard = write(&self.inner.state);
            let state = &mut *guard;
            let session = state.session;
            let user = match state.users.get_mut(update.user_id()) {
                Some(user) => user,
                None if self.inner.accept_unknown => {
                    state.users.entry(update.user_id().to_string()).or_default()
                }
                None => return Applied::UnknownUser,
            };
            let stamp = Stamp::of_update(&update, session);
            let applied = user.book.apply(&update, stamp);
            for (_, buffer) in &mut user.buffers {
                buffer.push((update.clone(), stamp));
            }
            if applied == Applied::Changed {
                state.version += 1;
            }
            (applied, state.version)
        };
        if applied == Applied::Changed {
            self.notify(version, || change_of(&update));
        }
        applied
    }

    /// Replaces a user's state with `book` (as [`fetch_user_book`] reads it), e.g. from a
    /// snapshot taken elsewhere. Buffered updates are not involved: prefer
    /// [`load_user`](Self::load_user).
    pub fn install(&self, user_id: &str, book: UserBook) {
        let (version, corrected) = {
            let mut state = write(&self.inner.state);
            let user = state.users.entry(user_id.to_string()).or_default();
            let corrected = user.book.differences(&book);
            user.book = book;
            user.status.loaded = true;
            user.status.loads += 1;
            user.status.loaded_at = Some(Utc::now());
            state.version += 1;
            (state.version, corrected)
        };
        self.notify(version, || Change::Loaded {
            user_id: user_id.to_string(),
            corrected,
            current: true,
        });
    }

    /// Marks every user stale: the stream dropped.
    pub fn mark_stale(&self) {
        let version = {
            let mut state = write(&self.inner.state);
            for user in state.users.values_mut() {
                user.status.stale = true;
                user.stale_until_gen = user.next_gen;
            }
            state.version += 1;
            state.version
        };
        self.notify(version, || Change::Stale);
    }

    /// Starts buffering a user's updates for a load; returns the load's generation.
    fn begin_load(&self, user_id: &str) -> u64 {
        let mut state = write(&self.inner.state);
        let user = state.users.entry(user_id.to_string()).or_default();
        let generation = user.next_gen;
        user.next_gen += 1;
        user.buffers.push((generation, Vec::new()));
        user.status.loading += 1;
        generation
    }

    /// Installs a load's result (or records its failure).
    fn finish_load(&self, user_id: &str, generation: u64, result: Result<UserBook, String>) {
        let (version, change) = {
            let mut guard = write(&self.inner.state);
            let state = &mut *guard;
            let Some(user) = state.users.get_mut(user_id) else {
                return;
            };
            user.status.loading = user.status.loading.saturating_sub(1);
            let buffer = user
                .buffers
                .iter()
                .position(|(g, _)| *g == generation)
                .map(|i| user.buffers.remove(i).1)
                .unwrap_or_default();
            let change = match result {
                Err(error) => {
                    user.status.last_error = Some(error.clone());
                    Change::LoadFailed {
                        user_id: user_id.to_string(),
                        error,
                    }
                }
                // A newer load already installed a later snapshot.
                Ok(_) if user.installed_gen.is_some_and(|g| g > generation) => return,
                Ok(mut book) => {
                    for (update, stamp) in &buffer {
                        book.apply(update, *stamp);
                    }
                    let corrected = user.book.differences(&book);
                    user.book = book;
                    user.installed_gen = Some(generation);
                    user.status.loads += 1;
                    user.status.loaded = true;
                    user.status.loaded_at = Some(Utc::now());
                    user.status.last_error = None;
                    if generation >= user.stale_until_gen {
                        user.status.stale = false;
                    }
                    Change::Loaded {
                        user_id: user_id.to_string(),
                        corrected,
                        current: !user.status.stale,
                    }
                }
            };
            state.version += 1;
            (state.version, change)
        };
        self.notify(version, || change);
    }

    fn client(&self, user_id: &str) -> Option<UserClient> {
        read(&self.inner.clients).get(user_id).cloned()
    }

    /// Loads (or reloads) one user's state over REST, racing updates buffered and replayed.
    /// Retries transient failures per the load retry policy.
    pub async fn load_user(&self, user_id: &str) -> Result<()> {
        let Some(client) = self.client(user_id) else {
            return Err(crate::Error::Config(format!(
                "user {user_id:?} is not in this portfolio: add its client with \
                 PortfolioBuilder::user or a resolver"
            )));
        };
        let generation = self.begin_load(user_id);
        self.reload(&client, user_id, generation).await
    }

    /// Loads every known user over REST (at most `load_concurrency` at once). Returns the
    /// first error after trying them all; the others' states are installed.
    pub async fn load(&self) -> Result<()> {
        let users: Vec<String> = read(&self.inner.clients).keys().cloned().collect();
        self.load_users(users).await
    }

    async fn load_users(&self, users: Vec<String>) -> Result<()> {
        let results: Vec<Result<()>> = futures::stream::iter(users)
            .map(|user| async move { self.load_user(&user).await })
            .buffer_unordered(self.inner.concurrency)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Reconciles after a gap: every user is re-read over REST, racing updates buffered.
    pub async fn reconcile(&self) -> Result<()> {
        self.load().await
    }

    /// Resolves and loads a user first seen on the stream.
    async fn discover(&self, user_id: String) {
        let Some(resolver) = &self.inner.resolver else {
            return;
        };
        if self.client(&user_id).is_some() {
            return;
        }
        if let Some(client) = resolver.resolve(&user_id).await {
            write(&self.inner.clients).insert(user_id.clone(), client);
            write(&self.inner.state)
                .users
                .entry(user_id.clone())
                .or_default();
            let _ = self.load_user(&user_id).await;
        }
    }

    /// Feeds the mirror from `feed` until it ends: updates are applied; a
    /// [`FeedEvent::Disconnected`] marks users stale; a [`FeedEvent::Reconnected`] starts a
    /// reconciliation in the background (updates keep flowing, buffered for the users being
    /// re-read). Users first seen on the feed are resolved and loaded when a resolver is set.
    pub async fn run(&self, feed: impl Stream<Item = FeedEvent> + Send) {
        futures::pin_mut!(feed);
        let mut tasks = tokio::task::JoinSet::new();
        let mut timer = self.inner.reconcile_every.map(|every| {
            let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            timer
        });
        loop {
            let event = match &mut timer {
                Some(timer) => tokio::select! {
                    event = feed.next() => event,
                    _ = timer.tick() => {
                        self.start_reconcile(&mut tasks, ReconcileKind::Periodic);
                        continue;
                    }
                },
                None => feed.next().await,
            };
            let Some(event) = event else {
                break;
            };
            match event {
                FeedEvent::Update(update) => {
                    let user_id = self
                        .inner
                        .resolver
                        .is_some()
                        .then(|| update.user_id().to_string());
                    if self.apply(update) == Applied::UnknownUser
                        && let Some(user_id) = user_id
                        && write(&self.inner.seen).insert(user_id.clone())
                    {
                        // First sight of this user: resolve it once, in the background.
                        let this = self.clone();
                        tasks.spawn(async move { this.discover(user_id).await });
                    }
                }
                FeedEvent::Disconnected => self.mark_stale(),
                FeedEvent::Reconnected => {
                    self.start_reconcile(&mut tasks, ReconcileKind::NewSession)
                }
                FeedEvent::Lagged => {
                    self.mark_stale();
                    self.start_reconcile(&mut tasks, ReconcileKind::Lagged);
                }
            }
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Begins reloading every user with a client, in feed order (buffering starts now), and
    /// spawns the REST reads.
    fn start_reconcile(&self, tasks: &mut tokio::task::JoinSet<()>, kind: ReconcileKind) {
        let mut clients: Vec<UserClient> = read(&self.inner.clients).values().cloned().collect();
        match kind {
            // Sequences restart with the new session.
            ReconcileKind::NewSession => write(&self.inner.state).session += 1,
            ReconcileKind::Lagged => {}
            // A refresh of users already being read would only pile up reads.
            ReconcileKind::Periodic => {
                let state = self.read_state();
                clients.retain(|c| {
                    state
                        .users
                        .get(c.user_id())
                        .is_none_or(|u| u.status.loading == 0)
                });
            }
        }
        for client in clients {
            let generation = self.begin_load(client.user_id());
            let this = self.clone();
            tasks.spawn(async move {
                let user_id = client.user_id().to_string();
                let _ = this.reload(&client, &user_id, generation).await;
            });
        }
    }

    /// Follows a [`BrokerageStream`](crate::stream::BrokerageStream) (or any stream of its
    /// events) until it ends (closed or terminated): the usual way to
    /// run a live portfolio. No separate [`load`](Self::load) is needed: the stream's first
    /// `Connected` loads every user over REST *after* the subscription is up, so no update
    /// falls between the snapshot and the stream; every `Reconnected` reconciles.
    ///
    /// ```no_run
    /// # async fn demo(platform: connect_trade::ConnectTrade,
    /// #   alice: connect_trade::UserClient) -> Result<(), Box<dyn std::error::Error>> {
    /// use connect_trade::{portfolio::Portfolio, stream::{BrokerageStream, protocol::Topic}};
    ///
    /// let stream = BrokerageStream::for_platform(&platform)
    ///     .subscribe([Topic::Orders, Topic::Positions, Topic::Balances])
    ///     .connect()
    ///     .await?;
    /// let portfolio = Portfolio::for_user(alice);
    /// tokio::spawn({ let p = portfolio.clone(); async move { p.follow(stream).await } });
    /// # Ok(()) }
    /// ```
    ///
    /// Any stream of [`BrokerageEvent`]s will do: a `BrokerageStream`, or a
    /// `connect_trade::relay::RelayStream` (feature `relay`) sharing one session across
    /// machines.
    pub async fn follow(&self, stream: impl Stream<Item = BrokerageEvent> + Send) {
        self.run(stream.filter_map(|event| std::future::ready(FeedEvent::from_brokerage(event))))
            .await;
    }

    /// The second half of a load begun (buffering) by [`begin_load`](Self::begin_load):
    /// the REST read, with retries, then the install.
    async fn reload(&self, client: &UserClient, user_id: &str, generation: u64) -> Result<()> {
        let policy = &self.inner.load_retry;
        let mut retry = 0;
        let result = loop {
            match fetch_user_book(client, &self.inner.scope).await {
                Err(e) if e.is_retryable() && retry < policy.max_retries => {
                    tokio::time::sleep(policy.backoff(retry)).await;
                    retry += 1;
                }
                other => break other,
            }
        };
        match result {
            Ok(book) => {
                self.finish_load(user_id, generation, Ok(book));
                Ok(())
            }
            Err(error) => {
                self.finish_load(user_id, generation, Err(error.to_string()));
                Err(error)
            }
        }
    }
}

fn change_of(update: &Update) -> Change {
    let meta = update.meta();
    match update {
        Update::Order { order, .. } => Change::Order {
            user_id: meta.user_id.clone(),
            account_id: meta.account_id.clone(),
            order_id: order.order_id.clone(),
        },
        Update::Position { position, .. } => Change::Position {
            user_id: meta.user_id.clone(),
            account_id: meta.account_id.clone(),
            symbol: position.symbol.clone(),
        },
        Update::Balance { .. } => Change::Balance {
            user_id: meta.user_id.clone(),
            account_id: meta.account_id.clone(),
        },
    }
}
