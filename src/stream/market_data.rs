//! The market data stream: quotes, trades, bars, depth and options chains of one user's broker
//! connection.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::{sync::oneshot, time::Instant};

use super::{
    ConnectionEvent, MARKET_DATA_STREAM_URL, StreamConfig,
    connection::{self, Control, CoreEvent, End, Handled, Protocol, Step},
    encode,
    error::{ErrorClass, StreamError, classify},
    protocol::{
        Bar, BarInterval, CLOSE_AUTH_FAILED, CLOSE_TOKEN_EXPIRED, Channel, Depth, ErrorCode,
        MarketDataMessage, MarketDataRequest, OptionContractQuote, Quote, StreamErrorMessage,
        Subscription, SubscriptionParams, Trade,
    },
    queue, stream_url,
};
use crate::{client::UserClient, credentials::Secret};

/// Symbols per subscribe/unsubscribe frame by default.
///
/// 100 symbols make a frame of 1–3 KB (OCC option symbols are up to 21 characters): far
/// below the message limits WebSocket servers and proxies commonly enforce (often 64 KB,
/// sometimes 16 KB or less), small enough that one refused symbol only fails its own
/// batch, and large enough that a 5,000-symbol universe is 50 frames, not 5,000.
pub const DEFAULT_SYMBOLS_PER_FRAME: usize = 100;

/// How long a token lives when the token endpoint does not say (24 h, per the
/// documentation).
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// What a [`MarketDataStream`] yields. Prices and sizes are exact `Decimal`s.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum MarketDataEvent {
    /// Level 1: best bid and ask.
    Quote(Quote),
    /// A trade.
    Trade(Trade),
    /// A bar (live, or backfill: see [`Bar::backfill`]).
    Bar(Bar),
    /// Level 2: the book.
    Depth(Depth),
    /// An options chain update for one contract (boxed: by far the largest event, it would
    /// make every quote as big).
    OptionQuote(Box<OptionContractQuote>),
    /// The server confirmed a subscription.
    Subscribed(Subscription),
    /// The server confirmed an unsubscription.
    Unsubscribed {
        /// The channel.
        channel: Channel,
        /// The symbols.
        symbols: Vec<String>,
    },
    /// The connection's life: connected, reconnecting, reconnected, closed, terminated.
    Connection(ConnectionEvent),
    /// The consumer fell behind and this many data events were dropped here.
    Lagged {
        /// How many.
        dropped: u64,
    },
    /// A non-terminal problem: an undecodable frame, an `error` message from the server, a
    /// failed token renewal (retried later).
    Error(StreamError),
    /// A message type this SDK does not know, kept whole.
    Unknown(serde_json::Value),
}

/// A request for historical bars, answered without a subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotRequest {
    symbol: String,
    interval: BarInterval,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    limit: Option<u32>,
}

impl SnapshotRequest {
    /// Bars of `symbol` at `interval`.
    pub fn new(symbol: impl Into<String>, interval: BarInterval) -> Self {
        SnapshotRequest {
            symbol: symbol.into(),
            interval,
            start: None,
            end: None,
            limit: None,
        }
    }

    /// The first bar start included.
    pub fn start(mut self, start: DateTime<Utc>) -> Self {
        self.start = Some(start);
        self
    }

    /// Only bars starting before this time.
    pub fn end(mut self, end: DateTime<Utc>) -> Self {
        self.end = Some(end);
        self
    }

    /// At most this many bars (the most recent).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
}

type Reply = oneshot::Sender<Result<MarketDataMessage, StreamError>>;

/// Commands of the market data handle.
pub(crate) enum MarketDataCommand {
    Subscribe(Subscription),
    Unsubscribe {
        channel: Channel,
        symbols: Vec<String>,
    },
    Request {
        id: String,
        frame: String,
        reply: Reply,
    },
}

struct PendingRequest {
    frame: String,
    reply: Reply,
}

/// A token from the REST API, and when to renew it.
struct HeldToken {
    secret: Secret,
    refresh_at: Instant,
    /// Fetched and not yet accepted by the server: if it is refused, fetching again will
    /// not help.
    fresh: bool,
    /// Refused or expired: fetch another before the next connection.
    stale: bool,
}

/// Fetches tokens with `GET /connections/{connection_id}/token`.
struct ConnectionToken {
    user: UserClient,
    connection_id: String,
    margin: Duration,
    retry_later: Duration,
    held: Option<HeldToken>,
}

/// How long a token just issued (or just accepted) has left, by this machine's clock.
///
/// The server's `expires_at` is trusted when it lies in the future, capped at the documented
/// 24 h. One in the past cannot be right for a token the server has just issued: this
/// machine's clock and the server's disagree (or, with the simulator, simulated time started in
/// the past). Renewing on it would fetch tokens in a loop, so the documented lifetime is
/// assumed instead, and the server's `token_expired` remains the backstop.
fn token_lifetime(expires_at: Option<chrono::DateTime<Utc>>) -> Duration {
    let Some(at) = expires_at else {
        return TOKEN_LIFETIME;
    };
    match (at - Utc::now()).to_std() {
        Ok(left) if !left.is_zero() => left.min(TOKEN_LIFETIME),
        _ => {
            tracing::warn!(
                expires_at = %at,
                "the token's expiry is not in the future by this machine's clock; \
                 assuming the documented 24 h lifetime"
            );
            TOKEN_LIFETIME
        }
    }
}

impl ConnectionToken {
    fn needs_fetch(&self) -> bool {
        match &self.held {
            None => true,
            Some(held) => held.stale || Instant::now() >= held.refresh_at,
        }
    }

    async fn fetch(&mut self) -> Result<(), StreamError> {
        let response = self
            .user
            .get_market_data_token()
            .connection_id(self.connection_id.clone())
            .send()
            .await
            .map_err(|error| StreamError::token(crate::Error::from(error)))?;
        let token = response.into_inner();
        let lifetime = token_lifetime(token.expires_at);
        let margin = self.margin.min(lifetime / 2);
        tracing::debug!(
            connection_id = %self.connection_id,
            renew_in_s = (lifetime - margin).as_secs(),
            "fetched a market data token"
        );
        self.held = Some(HeldToken {
            secret: token.access_token,
            refresh_at: Instant::now() + (lifetime - margin),
            fresh: true,
            stale: false,
        });
        Ok(())
    }
}

enum TokenSource {
    Fixed(Secret),
    Connection(Box<ConnectionToken>),
}

struct MarketDataProtocol {
    source: TokenSource,
    /// Desired subscriptions: channel → symbol → parameters (the latest given win).
    desired: BTreeMap<Channel, BTreeMap<String, SubscriptionParams>>,
    requests: BTreeMap<String, PendingRequest>,
    per_frame: usize,
}

impl MarketDataProtocol {
    fn push_subscribe(&self, subscription: &Subscription, frames: &mut Vec<String>) {
        for chunk in subscription.symbols.chunks(self.per_frame) {
            frames.push(encode(&MarketDataRequest::Subscribe(Subscription {
                channel: subscription.channel.clone(),
                symbols: chunk.to_vec(),
                params: subscription.params.clone(),
            })));
        }
    }

    fn resolve(&mut self, id: &str, result: Result<MarketDataMessage, StreamError>) -> bool {
        match self.requests.remove(id) {
            Some(pending) => {
                let _ = pending.reply.send(result);
                true
            }
            None => {
                tracing::debug!(request_id = id, "reply to a request nobody waits for");
                false
            }
        }
    }

    /// What an `error` (or the matching close code) means; `Err` gives it back when it is
    /// only to be reported.
    fn on_error(&mut self, error: StreamErrorMessage) -> Result<End, StreamErrorMessage> {
        match classify(&error) {
            ErrorClass::AuthRejected => {
                let rejected = StreamError::AuthRejected {
                    code: error.code,
                    message: error.message,
                };
                Ok(match &mut self.source {
                    // A token that worked before was refused (revoked, replaced): one new
                    // token is worth a try. A token fetched just now that is refused is final.
                    TokenSource::Connection(token) => match &mut token.held {
                        Some(held) if !held.fresh => {
                            held.stale = true;
                            End::RetryNow(rejected)
                        }
                        _ => End::Terminal(rejected),
                    },
                    TokenSource::Fixed(_) => End::Terminal(rejected),
                })
            }
            ErrorClass::TokenExpired => Ok(match &mut self.source {
                TokenSource::Connection(token) => {
                    if let Some(held) = &mut token.held {
                        held.stale = true;
                    }
                    End::RetryNow(StreamError::Server(error))
                }
                TokenSource::Fixed(_) => End::Terminal(StreamError::TokenExpired {
                    message: error.message,
                }),
            }),
            ErrorClass::SessionReplaced => Ok(End::Terminal(StreamError::SessionReplaced {
                message: error.message,
            })),
            ErrorClass::AuthTimeout => Ok(End::Retry(StreamError::Server(error))),
            ErrorClass::Report => Err(error),
        }
    }
}

impl Protocol for MarketDataProtocol {
    type Message = MarketDataMessage;
    type Event = MarketDataEvent;
    type Command = MarketDataCommand;

    async fn authenticate(&mut self) -> Result<String, End> {
        let token = match &mut self.source {
            TokenSource::Fixed(token) => token.clone(),
            TokenSource::Connection(source) => {
                if source.needs_fetch()
                    && let Err(error) = source.fetch().await
                {
                    return Err(if error.is_terminal() {
                        End::Terminal(error)
                    } else {
                        End::Retry(error)
                    });
                }
                match &source.held {
                    Some(held) => held.secret.clone(),
                    None => return Err(End::Retry(StreamError::Closed)),
                }
            }
        };
        Ok(encode(&MarketDataRequest::Authenticate { token }))
    }

    fn handshake(&mut self, message: MarketDataMessage) -> Step {
        match message {
            MarketDataMessage::Welcome { .. } => Step::Welcome,
            MarketDataMessage::Authenticated { expires_at } => {
                if let TokenSource::Connection(source) = &mut self.source
                    && let Some(held) = &mut source.held
                {
                    held.fresh = false;
                    // The server's word on the expiry wins if it is earlier.
                    if expires_at.is_some() {
                        let left = token_lifetime(expires_at);
                        let at = Instant::now() + left.saturating_sub(source.margin.min(left / 2));
                        held.refresh_at = held.refresh_at.min(at);
                    }
                }
                Step::Authenticated
            }
            MarketDataMessage::Error(error) => match self.on_error(error) {
                Ok(end) => Step::End(end),
                Err(error) => Step::End(End::Retry(StreamError::Server(error))),
            },
            _ => Step::Ignore,
        }
    }

    fn replay(&mut self, frames: &mut Vec<String>) {
        for (channel, symbols) in &self.desired {
            let mut groups: Vec<(&SubscriptionParams, Vec<String>)> = Vec::new();
            for (symbol, params) in symbols {
                match groups.iter_mut().find(|(p, _)| *p == params) {
                    Some((_, group)) => group.push(symbol.clone()),
                    None => groups.push((params, vec![symbol.clone()])),
                }
            }
            for (params, symbols) in groups {
                self.push_subscribe(
                    &Subscription {
                        channel: channel.clone(),
                        symbols,
                        params: params.clone(),
                    },
                    frames,
                );
            }
        }
        self.requests
            .retain(|_, pending| !pending.reply.is_closed());
        frames.extend(self.requests.values().map(|pending| pending.frame.clone()));
    }

    fn command(&mut self, command: MarketDataCommand, frames: &mut Vec<String>) {
        match command {
            MarketDataCommand::Subscribe(mut subscription) => {
                let mut seen = HashSet::new();
                subscription
                    .symbols
                    .retain(|symbol| seen.insert(symbol.clone()));
                if subscription.symbols.is_empty() {
                    return;
                }
                let desired = self
                    .desired
                    .entry(subscription.channel.clone())
                    .or_default();
                for symbol in &subscription.symbols {
                    desired.insert(symbol.clone(), subscription.params.clone());
                }
                self.push_subscribe(&subscription, frames);
            }
            MarketDataCommand::Unsubscribe { channel, symbols } => {
                if symbols.is_empty() {
                    return;
                }
                if let Some(desired) = self.desired.get_mut(&channel) {
                    for symbol in &symbols {
                        desired.remove(symbol);
                    }
                    if desired.is_empty() {
                        self.desired.remove(&channel);
                    }
                }
                for chunk in symbols.chunks(self.per_frame) {
                    frames.push(encode(&MarketDataRequest::Unsubscribe {
                        channel: channel.clone(),
                        symbols: chunk.to_vec(),
                    }));
                }
            }
            MarketDataCommand::Request { id, frame, reply } => {
                self.requests
                    .retain(|_, pending| !pending.reply.is_closed());
                frames.push(frame.clone());
                self.requests.insert(id, PendingRequest { frame, reply });
            }
        }
    }

    fn message(&mut self, message: MarketDataMessage) -> Handled<MarketDataEvent> {
        let reply_to = match &message {
            MarketDataMessage::Subscriptions { request_id, .. }
            | MarketDataMessage::Snapshot { request_id, .. } => Some(request_id.clone()),
            _ => None,
        };
        if let Some(id) = reply_to {
            self.resolve(&id, Ok(message));
            return Handled::Nothing;
        }
        match message {
            MarketDataMessage::Quote(quote) => Handled::Data(MarketDataEvent::Quote(quote)),
            MarketDataMessage::Trade(trade) => Handled::Data(MarketDataEvent::Trade(trade)),
            MarketDataMessage::Bar(bar) => Handled::Data(MarketDataEvent::Bar(bar)),
            MarketDataMessage::Depth(depth) => Handled::Data(MarketDataEvent::Depth(depth)),
            MarketDataMessage::OptionQuote(quote) => {
                Handled::Data(MarketDataEvent::OptionQuote(quote))
            }
            MarketDataMessage::Subscribed(subscription) => {
                Handled::Control(MarketDataEvent::Subscribed(subscription))
            }
            MarketDataMessage::Unsubscribed { channel, symbols } => {
                Handled::Control(MarketDataEvent::Unsubscribed { channel, symbols })
            }
            MarketDataMessage::Error(error) => {
                if let Some(id) = error.request_id.clone()
                    && self.requests.contains_key(&id)
                {
                    self.resolve(&id, Err(StreamError::Server(error)));
                    return Handled::Nothing;
                }
                match self.on_error(error) {
                    Ok(end) => Handled::End(end),
                    Err(error) => {
                        Handled::Control(MarketDataEvent::Error(StreamError::Server(error)))
                    }
                }
            }
            MarketDataMessage::Unknown(value) => Handled::Data(MarketDataEvent::Unknown(value)),
            MarketDataMessage::Welcome { .. }
            | MarketDataMessage::Authenticated { .. }
            | MarketDataMessage::Subscriptions { .. }
            | MarketDataMessage::Snapshot { .. } => Handled::Nothing,
        }
    }

    fn closed_by_server(&mut self, code: Option<u16>, reason: &str) -> End {
        let code_of = match code {
            Some(CLOSE_TOKEN_EXPIRED) => ErrorCode::TokenExpired,
            Some(CLOSE_AUTH_FAILED) => ErrorCode::AuthFailed,
            _ => return connection::default_close(code, reason),
        };
        let error = StreamErrorMessage {
            code: code_of,
            message: reason.to_string(),
            request_id: None,
        };
        self.on_error(error)
            .unwrap_or_else(|error| End::Retry(StreamError::Server(error)))
    }

    fn event(event: CoreEvent) -> MarketDataEvent {
        match event {
            CoreEvent::Connection(event) => MarketDataEvent::Connection(event),
            CoreEvent::Lagged(dropped) => MarketDataEvent::Lagged { dropped },
            CoreEvent::Error(error) => MarketDataEvent::Error(error),
        }
    }

    fn renew_at(&self) -> Option<Instant> {
        match &self.source {
            TokenSource::Connection(source) => source.held.as_ref().map(|held| held.refresh_at),
            TokenSource::Fixed(_) => None,
        }
    }

    async fn renew(&mut self) -> Result<(), StreamError> {
        let TokenSource::Connection(source) = &mut self.source else {
            return Ok(());
        };
        match source.fetch().await {
            Ok(()) => Ok(()),
            Err(error) => {
                // The current token still works for a while: try again later.
                let later = Instant::now() + source.retry_later;
                if let Some(held) = &mut source.held {
                    held.refresh_at = later;
                }
                Err(error)
            }
        }
    }
}

enum Source {
    Fixed(Secret),
    Connection {
        user: UserClient,
        connection_id: String,
    },
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Fixed(token) => f.debug_tuple("Fixed").field(token).finish(),
            Source::Connection { connection_id, .. } => f
                .debug_struct("Connection")
                .field("connection_id", connection_id)
                .finish(),
        }
    }
}

/// Configures and connects a [`MarketDataStream`].
#[derive(Debug)]
pub struct MarketDataStreamBuilder {
    source: Source,
    url: String,
    config: StreamConfig,
    subscriptions: Vec<Subscription>,
    per_frame: usize,
    margin: Duration,
}

impl MarketDataStreamBuilder {
    /// The stream URL (default [`MARKET_DATA_STREAM_URL`]). Must be `wss://`, or `ws://` to
    /// loopback (the simulator, a test server).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Timings, buffer and reconnection (default [`StreamConfig::default`]).
    pub fn config(mut self, config: StreamConfig) -> Self {
        self.config = config;
        self
    }

    /// A subscription to send as soon as the first session is up.
    pub fn subscribe(mut self, subscription: Subscription) -> Self {
        self.subscriptions.push(subscription);
        self
    }

    /// At most this many symbols per subscribe/unsubscribe frame (default
    /// [`DEFAULT_SYMBOLS_PER_FRAME`], at least 1).
    pub fn symbols_per_frame(mut self, symbols: usize) -> Self {
        self.per_frame = symbols.max(1);
        self
    }

    /// How long before its expiry a fetched token is renewed (default 5 minutes; at most
    /// half the token's lifetime). Only for streams built with
    /// [`MarketDataStream::for_connection`].
    pub fn token_refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Fetches a token if needed, connects and authenticates, and returns once the first
    /// session is up.
    ///
    /// The first attempt fails fast: a wrong URL, an unreachable server, a refused token or a
    /// failed token request is an error here. Once connected, the stream reconnects (and
    /// renews its token) by itself.
    pub async fn connect(self) -> Result<MarketDataStream, StreamError> {
        let url = stream_url(&self.url)?;
        let request_timeout = self.config.request_timeout;
        let source = match self.source {
            Source::Fixed(token) => TokenSource::Fixed(token),
            Source::Connection {
                user,
                connection_id,
            } => TokenSource::Connection(Box::new(ConnectionToken {
                user,
                connection_id,
                margin: self.margin,
                retry_later: self.config.backoff.max,
                held: None,
            })),
        };
        let mut protocol = MarketDataProtocol {
            source,
            desired: BTreeMap::new(),
            requests: BTreeMap::new(),
            per_frame: self.per_frame,
        };
        let mut ignored = Vec::new();
        for subscription in self.subscriptions {
            protocol.command(MarketDataCommand::Subscribe(subscription), &mut ignored);
        }
        let (control, events) = connection::start(protocol, url, self.config).await?;
        Ok(MarketDataStream {
            handle: MarketDataHandle {
                control,
                next_id: Arc::new(AtomicU64::new(1)),
                request_timeout,
            },
            events,
        })
    }
}

/// The market data stream (`wss://mdstream.connecttrade.com`): real-time data from one user's
/// broker connection.
///
/// Built from a user client and a connection id, it fetches its token with
/// `GET /connections/{connection_id}/token`, renews it before the 24 h expiry and when the
/// server reports it expired. Built from a token, it uses that one only.
///
/// ```no_run
/// # async fn demo(user: connect_trade::UserClient) -> connect_trade::Result<()> {
/// use connect_trade::stream::{MarketDataEvent, MarketDataStream, SnapshotRequest};
/// use connect_trade::stream::protocol::{BarInterval, Subscription};
///
/// let mut stream = MarketDataStream::for_connection(&user, "conn-123")
///     .subscribe(Subscription::quotes(["AAPL", "MSFT"]))
///     .connect()
///     .await?;
/// stream.subscribe(Subscription::bars(["AAPL"], BarInterval::Minute1).backfill(30))?;
/// let daily = stream
///     .snapshot(SnapshotRequest::new("AAPL", BarInterval::Day1).limit(5))
///     .await?;
/// println!("{} daily bars", daily.len());
/// while let Some(event) = stream.next().await {
///     if let MarketDataEvent::Quote(quote) = event {
///         println!("{} {:?} / {:?}", quote.symbol, quote.bid, quote.ask);
///     }
/// }
/// # Ok(()) }
/// ```
pub struct MarketDataStream {
    handle: MarketDataHandle,
    events: queue::Receiver<MarketDataEvent>,
}

impl fmt::Debug for MarketDataStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MarketDataStream")
            .field("closed", &self.handle.control.is_closed())
            .field("buffered_events", &self.events.len())
            .finish()
    }
}

impl MarketDataStream {
    /// A builder that fetches (and renews) the token of `connection_id` with this user's
    /// client.
    pub fn for_connection(
        user: &UserClient,
        connection_id: impl Into<String>,
    ) -> MarketDataStreamBuilder {
        Self::with_source(Source::Connection {
            user: user.clone(),
            connection_id: connection_id.into(),
        })
    }

    /// A builder that authenticates with this token (from
    /// `GET /connections/{connection_id}/token`). When it expires, the stream ends with
    /// [`StreamError::TokenExpired`].
    pub fn with_token(token: impl Into<Secret>) -> MarketDataStreamBuilder {
        Self::with_source(Source::Fixed(token.into()))
    }

    fn with_source(source: Source) -> MarketDataStreamBuilder {
        MarketDataStreamBuilder {
            source,
            url: MARKET_DATA_STREAM_URL.to_string(),
            config: StreamConfig::default(),
            subscriptions: Vec::new(),
            per_frame: DEFAULT_SYMBOLS_PER_FRAME,
            margin: Duration::from_secs(5 * 60),
        }
    }

    /// The next event; `None` after the last one (`Closed` or `Terminated`).
    pub async fn next(&mut self) -> Option<MarketDataEvent> {
        self.events.recv().await
    }

    /// Subscribes (kept and replayed on every reconnect; a symbol subscribed again on the
    /// same channel takes the new parameters).
    pub fn subscribe(&self, subscription: Subscription) -> Result<(), StreamError> {
        self.handle.subscribe(subscription)
    }

    /// Unsubscribes symbols of a channel.
    pub fn unsubscribe<S: Into<String>>(
        &self,
        channel: Channel,
        symbols: impl IntoIterator<Item = S>,
    ) -> Result<(), StreamError> {
        self.handle.unsubscribe(channel, symbols)
    }

    /// The server's list of this connection's subscriptions.
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, StreamError> {
        self.handle.list_subscriptions().await
    }

    /// Historical bars, without a subscription.
    pub async fn snapshot(&self, request: SnapshotRequest) -> Result<Vec<Bar>, StreamError> {
        self.handle.snapshot(request).await
    }

    /// A cloneable handle controlling this stream from elsewhere.
    pub fn handle(&self) -> MarketDataHandle {
        self.handle.clone()
    }

    /// Closes the connection gracefully and waits until it is closed. Events already
    /// received can still be read, then `Connection(Closed)`, then the end.
    pub async fn close(&self) {
        self.handle.close().await
    }
}

impl futures::Stream for MarketDataStream {
    type Item = MarketDataEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

/// Controls a [`MarketDataStream`] from another task. Cheap to clone.
#[derive(Clone)]
pub struct MarketDataHandle {
    control: Control<MarketDataCommand>,
    next_id: Arc<AtomicU64>,
    request_timeout: Duration,
}

impl fmt::Debug for MarketDataHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MarketDataHandle")
            .field("closed", &self.control.is_closed())
            .finish()
    }
}

impl MarketDataHandle {
    /// Subscribes (kept and replayed on every reconnect). Large symbol sets are split into
    /// frames (see [`MarketDataStreamBuilder::symbols_per_frame`]). Fails only if the stream
    /// is closed.
    pub fn subscribe(&self, subscription: Subscription) -> Result<(), StreamError> {
        self.control
            .send(MarketDataCommand::Subscribe(subscription))
    }

    /// Unsubscribes symbols of a channel. Fails only if the stream is closed.
    pub fn unsubscribe<S: Into<String>>(
        &self,
        channel: Channel,
        symbols: impl IntoIterator<Item = S>,
    ) -> Result<(), StreamError> {
        self.control.send(MarketDataCommand::Unsubscribe {
            channel,
            symbols: symbols.into_iter().map(Into::into).collect(),
        })
    }

    /// The server's list of this connection's subscriptions. Waits at most the request
    /// timeout; survives a reconnect (the request is sent again).
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, StreamError> {
        let request_id = self.new_id();
        let frame = encode(&MarketDataRequest::ListSubscriptions {
            request_id: request_id.clone(),
        });
        match self
            .request("list_subscriptions", request_id, frame)
            .await?
        {
            MarketDataMessage::Subscriptions { subscriptions, .. } => Ok(subscriptions),
            other => Err(unexpected("list_subscriptions", &other)),
        }
    }

    /// Historical bars, without a subscription. Waits at most the request timeout; survives
    /// a reconnect (the request is sent again).
    pub async fn snapshot(&self, request: SnapshotRequest) -> Result<Vec<Bar>, StreamError> {
        let request_id = self.new_id();
        let frame = encode(&MarketDataRequest::Snapshot {
            request_id: request_id.clone(),
            symbol: request.symbol,
            interval: request.interval,
            start: request.start,
            end: request.end,
            limit: request.limit,
        });
        match self.request("snapshot", request_id, frame).await? {
            MarketDataMessage::Snapshot { bars, .. } => Ok(bars),
            other => Err(unexpected("snapshot", &other)),
        }
    }

    /// Closes the stream gracefully and waits until it is closed.
    pub async fn close(&self) {
        self.control.close().await
    }

    fn new_id(&self) -> String {
        format!("req-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    async fn request(
        &self,
        what: &'static str,
        id: String,
        frame: String,
    ) -> Result<MarketDataMessage, StreamError> {
        let (reply, answer) = oneshot::channel();
        self.control
            .send(MarketDataCommand::Request { id, frame, reply })?;
        match tokio::time::timeout(self.request_timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StreamError::Closed),
            Err(_) => Err(StreamError::RequestTimeout {
                request: what,
                timeout: self.request_timeout,
            }),
        }
    }
}

fn unexpected(request: &'static str, message: &MarketDataMessage) -> StreamError {
    let got = serde_json::to_value(message)
        .ok()
        .and_then(|value| {
            value
                .get("type")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "an unknown message".to_string());
    StreamError::UnexpectedReply { request, got }
}
