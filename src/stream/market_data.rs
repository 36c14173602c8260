//! The market data stream: quotes, trades, bars, depth and options chains of one user's broker
//! connection.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    fmt,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
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
    error::{ErrorClass, StreamError, classify, refuses_authentication, refuses_request},
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
    Bar(Box<Bar>),
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
    /// The server refused to subscribe these symbols on this channel: they left the
    /// subscription set (see [`MarketDataStream::subscriptions`]) and are not replayed.
    /// Symbols sent in the same frame are not affected: a refused frame of several symbols
    /// is sent again without the symbols the error names, or split in halves until the
    /// refused symbols are alone.
    Refused {
        /// The channel.
        channel: Channel,
        /// The refused symbols.
        symbols: Vec<String>,
        /// The server's `error` message.
        reason: StreamErrorMessage,
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

impl queue::Event for MarketDataEvent {
    fn is_data(&self) -> bool {
        matches!(
            self,
            MarketDataEvent::Quote(_)
                | MarketDataEvent::Trade(_)
                | MarketDataEvent::Bar(_)
                | MarketDataEvent::Depth(_)
                | MarketDataEvent::OptionQuote(_)
                | MarketDataEvent::Unknown(_)
        )
    }

    fn lagged(dropped: u64) -> Self {
        MarketDataEvent::Lagged { dropped }
    }

    fn dropped(&mut self) -> Option<&mut u64> {
        match self {
            MarketDataEvent::Lagged { dropped } => Some(dropped),
            _ => None,
        }
    }
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

/// Subscriptions by channel → symbol → parameters (the latest given win).
type Wanted = BTreeMap<Channel, BTreeMap<String, SubscriptionParams>>;

/// The subscriptions a market data stream wants, shared by its handles and its connection
/// task.
#[derive(Clone, Default)]
struct Desired(Arc<Mutex<Wanted>>);

impl Desired {
    fn lock(&self) -> MutexGuard<'_, Wanted> {
        // Every change is a few inserts or removes of whole entries: a poisoned lock is
        // still consistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, subscription: &Subscription) {
        let mut wanted = self.lock();
        let symbols = wanted.entry(subscription.channel.clone()).or_default();
        for symbol in &subscription.symbols {
            symbols.insert(symbol.clone(), subscription.params.clone());
        }
    }

    fn remove(&self, channel: &Channel, symbols: &[String]) {
        let mut wanted = self.lock();
        if let Some(desired) = wanted.get_mut(channel) {
            for symbol in symbols {
                desired.remove(symbol);
            }
            if desired.is_empty() {
                wanted.remove(channel);
            }
        }
    }

    /// The subscriptions, symbols of one channel with the same parameters together.
    fn subscriptions(&self) -> Vec<Subscription> {
        let wanted = self.lock();
        let mut out = Vec::new();
        for (channel, symbols) in wanted.iter() {
            let mut groups: Vec<(&SubscriptionParams, Vec<String>)> = Vec::new();
            for (symbol, params) in symbols {
                match groups.iter_mut().find(|(p, _)| *p == params) {
                    Some((_, group)) => group.push(symbol.clone()),
                    None => groups.push((params, vec![symbol.clone()])),
                }
            }
            out.extend(groups.into_iter().map(|(params, symbols)| Subscription {
                channel: channel.clone(),
                symbols,
                params: params.clone(),
            }));
        }
        out
    }
}

/// A subscribe or unsubscribe frame sent and not yet answered.
struct PendingFrame {
    subscribe: bool,
    channel: Channel,
    symbols: Vec<String>,
    params: SubscriptionParams,
    sent: Instant,
}

struct MarketDataProtocol {
    source: TokenSource,
    desired: Desired,
    requests: BTreeMap<String, PendingRequest>,
    per_frame: usize,
    /// Frames in the order sent; the server answers each in turn.
    pending: VecDeque<PendingFrame>,
    /// After this long an unanswered frame is taken as accepted.
    answer_within: Duration,
    /// Frames decided while interpreting messages, sent after the current burst.
    outgoing: Vec<String>,
    /// The token was not yet seen working on this connection.
    unproven: bool,
}

/// Whether `text` names `symbol` as a whole word (not as part of a longer symbol).
fn names(text: &str, symbol: &str) -> bool {
    let part = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-');
    let upper = symbol.to_ascii_uppercase();
    [symbol, upper.as_str()].iter().any(|symbol| {
        !symbol.is_empty()
            && text.match_indices(*symbol).any(|(at, found)| {
                !text[..at].chars().next_back().is_some_and(part)
                    && !text[at + found.len()..].chars().next().is_some_and(part)
            })
    })
}

impl MarketDataProtocol {
    fn push_subscribe(&mut self, subscription: &Subscription, frames: &mut Vec<String>) {
        for chunk in subscription.symbols.chunks(self.per_frame) {
            self.push_frame(
                true,
                subscription.channel.clone(),
                chunk.to_vec(),
                subscription.params.clone(),
                frames,
            );
        }
    }

    fn push_frame(
        &mut self,
        subscribe: bool,
        channel: Channel,
        symbols: Vec<String>,
        params: SubscriptionParams,
        frames: &mut Vec<String>,
    ) {
        // A server that never answers must not make this grow without end.
        self.forget_stale();
        frames.push(encode(&if subscribe {
            MarketDataRequest::Subscribe(Subscription {
                channel: channel.clone(),
                symbols: symbols.clone(),
                params: params.clone(),
            })
        } else {
            MarketDataRequest::Unsubscribe {
                channel: channel.clone(),
                symbols: symbols.clone(),
            }
        }));
        self.pending.push_back(PendingFrame {
            subscribe,
            channel,
            symbols,
            params,
            sent: Instant::now(),
        });
    }

    fn forget_stale(&mut self) {
        let now = Instant::now();
        while self
            .pending
            .front()
            .is_some_and(|p| now.duration_since(p.sent) >= self.answer_within)
        {
            self.pending.pop_front();
        }
    }

    /// Removes the pending frames a confirmation answers: same channel, every symbol in it.
    fn answered(&mut self, subscribe: bool, channel: &Channel, symbols: &[String]) {
        let confirmed: HashSet<String> = symbols.iter().map(|s| s.to_ascii_uppercase()).collect();
        self.pending.retain(|frame| {
            !(frame.subscribe == subscribe
                && frame.channel == *channel
                && frame
                    .symbols
                    .iter()
                    .all(|s| confirmed.contains(&s.to_ascii_uppercase())))
        });
    }

    /// The server refused the oldest unanswered frame. One symbol: it is refused. Several:
    /// the symbols the error names are refused and the others sent again; if it names none,
    /// the frame is sent again in two halves, until the refused symbols are alone.
    fn refused(&mut self, error: StreamErrorMessage) -> Handled<MarketDataEvent> {
        self.forget_stale();
        let Some(frame) = self.pending.pop_front() else {
            return Handled::Event(MarketDataEvent::Error(StreamError::Server(error)));
        };
        if !frame.subscribe {
            return Handled::Event(MarketDataEvent::Error(StreamError::Server(error)));
        }
        // Only what is still wanted (with these parameters) is retried or refused.
        let symbols: Vec<String> = {
            let wanted = self.desired.lock();
            let on_channel = wanted.get(&frame.channel);
            frame
                .symbols
                .into_iter()
                .filter(|s| on_channel.and_then(|c| c.get(s)) == Some(&frame.params))
                .collect()
        };
        let (refused, retry): (Vec<String>, Vec<String>) = if symbols.len() <= 1 {
            (symbols, Vec::new())
        } else {
            let (named, others): (Vec<String>, Vec<String>) = symbols
                .iter()
                .cloned()
                .partition(|s| names(&error.message, s));
            if named.is_empty() {
                let half = symbols.len().div_ceil(2);
                let mut outgoing = std::mem::take(&mut self.outgoing);
                for part in symbols.chunks(half) {
                    self.push_frame(
                        true,
                        frame.channel.clone(),
                        part.to_vec(),
                        frame.params.clone(),
                        &mut outgoing,
                    );
                }
                self.outgoing = outgoing;
                tracing::debug!(
                    channel = %frame.channel,
                    symbols = symbols.len(),
                    reason = %error.message,
                    "a subscribe frame was refused: sending it again in halves to find the \
                     symbols at fault"
                );
                return Handled::Nothing;
            }
            (named, others)
        };
        if !retry.is_empty() {
            let mut outgoing = std::mem::take(&mut self.outgoing);
            self.push_frame(
                true,
                frame.channel.clone(),
                retry,
                frame.params.clone(),
                &mut outgoing,
            );
            self.outgoing = outgoing;
        }
        if refused.is_empty() {
            return Handled::Nothing;
        }
        self.desired.remove(&frame.channel, &refused);
        tracing::warn!(
            channel = %frame.channel,
            symbols = ?refused,
            reason = %error.message,
            "symbols refused by the server: removed from the subscriptions"
        );
        Handled::Event(MarketDataEvent::Refused {
            channel: frame.channel,
            symbols: refused,
            reason: error,
        })
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
    /// only to be reported. `authenticating`: it answers `authenticate`.
    fn on_error(
        &mut self,
        error: StreamErrorMessage,
        authenticating: bool,
    ) -> Result<End, StreamErrorMessage> {
        let class = match classify(&error) {
            ErrorClass::Report if authenticating && refuses_authentication(&error) => {
                ErrorClass::AuthRejected
            }
            class => class,
        };
        match class {
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

impl MarketDataProtocol {
    /// The token was accepted on this connection (an explicit reply, or data came): if it
    /// is refused later, fetching a new one is worth a try.
    fn token_works(&mut self) {
        self.unproven = false;
        if let TokenSource::Connection(source) = &mut self.source
            && let Some(held) = &mut source.held
        {
            held.fresh = false;
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
        self.unproven = true;
        Ok(encode(&MarketDataRequest::Authenticate { token }))
    }

    fn handshake(
        &mut self,
        message: MarketDataMessage,
        authenticating: bool,
    ) -> Step<MarketDataMessage> {
        match message {
            MarketDataMessage::Welcome { .. } => Step::Welcome,
            MarketDataMessage::Authenticated { expires_at } => {
                self.token_works();
                if let TokenSource::Connection(source) = &mut self.source
                    && let Some(held) = &mut source.held
                    && expires_at.is_some()
                {
                    // The server's word on the expiry wins if it is earlier.
                    let left = token_lifetime(expires_at);
                    let at = Instant::now() + left.saturating_sub(source.margin.min(left / 2));
                    held.refresh_at = held.refresh_at.min(at);
                }
                Step::Authenticated
            }
            MarketDataMessage::Error(error) => match self.on_error(error, authenticating) {
                Ok(end) => Step::End(end),
                Err(error) => Step::End(End::Retry(StreamError::Server(error))),
            },
            message @ MarketDataMessage::Unknown(_) => Step::Session {
                message,
                proof: false,
            },
            message => Step::Session {
                message,
                proof: true,
            },
        }
    }

    fn replay(&mut self, frames: &mut Vec<String>) {
        self.pending.clear();
        self.outgoing.clear();
        for subscription in self.desired.subscriptions() {
            self.push_subscribe(&subscription, frames);
        }
        self.requests
            .retain(|_, pending| !pending.reply.is_closed());
        frames.extend(self.requests.values().map(|pending| pending.frame.clone()));
    }

    fn pending(&self) -> usize {
        self.pending.len()
    }

    fn outgoing(&mut self, frames: &mut Vec<String>) {
        frames.append(&mut self.outgoing);
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
                self.desired.insert(&subscription);
                self.push_subscribe(&subscription, frames);
            }
            MarketDataCommand::Unsubscribe { channel, symbols } => {
                if symbols.is_empty() {
                    return;
                }
                self.desired.remove(&channel, &symbols);
                for chunk in symbols.chunks(self.per_frame) {
                    self.push_frame(
                        false,
                        channel.clone(),
                        chunk.to_vec(),
                        SubscriptionParams::default(),
                        frames,
                    );
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

    #[inline]
    fn message(&mut self, message: MarketDataMessage) -> Handled<MarketDataEvent> {
        if self.unproven {
            self.token_works();
        }
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
            MarketDataMessage::Quote(quote) => Handled::Event(MarketDataEvent::Quote(quote)),
            MarketDataMessage::Trade(trade) => Handled::Event(MarketDataEvent::Trade(trade)),
            MarketDataMessage::Bar(bar) => Handled::Event(MarketDataEvent::Bar(bar)),
            MarketDataMessage::Depth(depth) => Handled::Event(MarketDataEvent::Depth(depth)),
            MarketDataMessage::OptionQuote(quote) => {
                Handled::Event(MarketDataEvent::OptionQuote(quote))
            }
            MarketDataMessage::Subscribed(subscription) => {
                self.answered(true, &subscription.channel, &subscription.symbols);
                Handled::Event(MarketDataEvent::Subscribed(subscription))
            }
            MarketDataMessage::Unsubscribed { channel, symbols } => {
                self.answered(false, &channel, &symbols);
                Handled::Event(MarketDataEvent::Unsubscribed { channel, symbols })
            }
            MarketDataMessage::Error(error) => {
                if let Some(id) = error.request_id.clone()
                    && self.requests.contains_key(&id)
                {
                    self.resolve(&id, Err(StreamError::Server(error)));
                    return Handled::Nothing;
                }
                match self.on_error(error, false) {
                    Ok(end) => Handled::End(end),
                    Err(error) if refuses_request(&error) => self.refused(error),
                    Err(error) => {
                        Handled::Event(MarketDataEvent::Error(StreamError::Server(error)))
                    }
                }
            }
            MarketDataMessage::Unknown(value) => Handled::Event(MarketDataEvent::Unknown(value)),
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
        self.on_error(error, false)
            .unwrap_or_else(|error| End::Retry(StreamError::Server(error)))
    }

    fn event(event: CoreEvent) -> MarketDataEvent {
        match event {
            CoreEvent::Connection(event) => MarketDataEvent::Connection(event),
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
    /// session is authenticated (the `Connected` event follows once the subscriptions are
    /// answered; see the [module documentation](crate::stream) for the order of events).
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
        let desired = Desired::default();
        let mut protocol = MarketDataProtocol {
            source,
            desired: desired.clone(),
            requests: BTreeMap::new(),
            per_frame: self.per_frame,
            pending: VecDeque::new(),
            answer_within: request_timeout,
            outgoing: Vec::new(),
            unproven: true,
        };
        let mut ignored = Vec::new();
        for subscription in self.subscriptions {
            protocol.command(MarketDataCommand::Subscribe(subscription), &mut ignored);
        }
        let (control, events) = connection::start(protocol, url, self.config).await?;
        Ok(MarketDataStream {
            handle: MarketDataHandle {
                control,
                desired,
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

    /// The server's list of this connection's subscriptions (a round trip; compare
    /// [`MarketDataStream::subscriptions`], the stream's own set).
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, StreamError> {
        self.handle.list_subscriptions().await
    }

    /// The subscriptions this stream keeps and replays on every reconnect: what you
    /// subscribed, minus what you unsubscribed and what the server refused (each refusal
    /// is a [`MarketDataEvent::Refused`] event). Symbols of a channel with the same
    /// parameters come together, in symbol order.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.handle.subscriptions()
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
    desired: Desired,
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
        if self.control.is_closed() {
            return Err(StreamError::Closed);
        }
        self.desired.insert(&subscription);
        self.control
            .send(MarketDataCommand::Subscribe(subscription))
    }

    /// Unsubscribes symbols of a channel. Fails only if the stream is closed.
    pub fn unsubscribe<S: Into<String>>(
        &self,
        channel: Channel,
        symbols: impl IntoIterator<Item = S>,
    ) -> Result<(), StreamError> {
        if self.control.is_closed() {
            return Err(StreamError::Closed);
        }
        let symbols: Vec<String> = symbols.into_iter().map(Into::into).collect();
        self.desired.remove(&channel, &symbols);
        self.control
            .send(MarketDataCommand::Unsubscribe { channel, symbols })
    }

    /// The subscriptions this stream will replay on a reconnect (see
    /// [`MarketDataStream::subscriptions`]).
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.desired.subscriptions()
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

#[cfg(test)]
mod tests {
    use super::{MarketDataEvent, MarketDataMessage};

    /// Every event moves several times between the decoder and the consumer: at 128 bytes or
    /// less the compiler moves it inline, above it calls `memmove` each time (measured: 7% of
    /// the stream's time at 144 bytes). A large variant belongs in a `Box`, as `Bar` and
    /// `OptionQuote` are.
    #[test]
    fn events_and_messages_stay_small_enough_to_move_inline() {
        assert!(
            size_of::<MarketDataEvent>() <= 128,
            "MarketDataEvent is {} bytes",
            size_of::<MarketDataEvent>()
        );
        assert!(
            size_of::<MarketDataMessage>() <= 128,
            "MarketDataMessage is {} bytes",
            size_of::<MarketDataMessage>()
        );
    }
}
