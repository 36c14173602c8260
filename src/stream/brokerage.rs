//! The brokerage stream: order, position and balance updates of every user of the platform.

use std::{
    collections::{BTreeSet, VecDeque},
    fmt,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::Instant;

use super::{
    BROKERAGE_STREAM_URL, ConnectionEvent, StreamConfig,
    connection::{self, Control, CoreEvent, End, Handled, Protocol, Step},
    encode,
    error::{ErrorClass, StreamError, classify, refuses_authentication, refuses_request},
    protocol::{BrokerageMessage, BrokerageRequest, StreamErrorMessage, Topic, UpdateMeta},
    queue, stream_url,
};
use crate::{
    client::ConnectTrade,
    credentials::PlatformCredentials,
    rest::types::{Balance, Order, Position},
};

/// What a [`BrokerageStream`] yields.
///
/// Updates are incremental: each carries one changed order, position or balance, with the
/// user and account it belongs to. Take the initial state from the REST API, then apply
/// updates; after `Reconnected` or `Lagged`, refetch from REST what matters to you.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum BrokerageEvent {
    /// One changed order.
    Order {
        /// Whose.
        meta: UpdateMeta,
        /// The order as it is now.
        order: Box<Order>,
    },
    /// One changed position (quantity 0: closed).
    Position {
        /// Whose.
        meta: UpdateMeta,
        /// The position as it is now.
        position: Box<Position>,
    },
    /// One changed balance.
    Balance {
        /// Whose.
        meta: UpdateMeta,
        /// The balance as it is now.
        balance: Box<Balance>,
    },
    /// The server confirmed a subscription; `topics` is everything now subscribed.
    Subscribed {
        /// All subscribed topics.
        topics: Vec<Topic>,
    },
    /// The server confirmed an unsubscription; `topics` is everything still subscribed.
    Unsubscribed {
        /// All topics still subscribed.
        topics: Vec<Topic>,
    },
    /// The server refused to subscribe these topics: they left the subscription set (see
    /// [`BrokerageStream::subscriptions`]) and are not replayed. The others are unaffected:
    /// every topic is subscribed in a frame of its own.
    Refused {
        /// The refused topics.
        topics: Vec<Topic>,
        /// The server's `error` message.
        reason: StreamErrorMessage,
    },
    /// The connection's life: connected, reconnecting, reconnected, closed, terminated.
    Connection(ConnectionEvent),
    /// The consumer fell behind and this many updates were dropped here.
    Lagged {
        /// How many.
        dropped: u64,
    },
    /// A non-terminal problem: an undecodable frame, an `error` message from the server.
    Error(StreamError),
    /// A message type this SDK does not know, kept whole.
    Unknown(serde_json::Value),
}

impl queue::Event for BrokerageEvent {
    fn is_data(&self) -> bool {
        matches!(
            self,
            BrokerageEvent::Order { .. }
                | BrokerageEvent::Position { .. }
                | BrokerageEvent::Balance { .. }
                | BrokerageEvent::Unknown(_)
        )
    }

    fn lagged(dropped: u64) -> Self {
        BrokerageEvent::Lagged { dropped }
    }

    fn dropped(&mut self) -> Option<&mut u64> {
        match self {
            BrokerageEvent::Lagged { dropped } => Some(dropped),
            _ => None,
        }
    }
}

/// Commands of the brokerage handle.
pub(crate) enum BrokerageCommand {
    Subscribe(Vec<Topic>),
    Unsubscribe(Vec<Topic>),
}

/// The topics a brokerage stream wants, shared by its handles and its connection task.
#[derive(Clone, Default)]
struct Topics(Arc<Mutex<BTreeSet<Topic>>>);

impl Topics {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<Topic>> {
        // Every change is a single insert or remove: a poisoned lock is still consistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A frame sent and not yet answered.
struct Pending {
    subscribe: bool,
    topic: Topic,
    sent: Instant,
}

struct BrokerageProtocol {
    credentials: PlatformCredentials,
    topics: Topics,
    /// Frames in the order sent; the server answers each in turn.
    pending: VecDeque<Pending>,
    /// After this long an unanswered frame is taken as accepted.
    answer_within: Duration,
}

impl BrokerageProtocol {
    /// One frame per topic: a topic the server refuses cannot take others with it.
    fn push(&mut self, subscribe: bool, topic: Topic, frames: &mut Vec<String>) {
        // A server that never answers must not make this grow without end.
        self.forget_stale();
        let topics = vec![topic.clone()];
        frames.push(encode(&if subscribe {
            BrokerageRequest::Subscribe { topics }
        } else {
            BrokerageRequest::Unsubscribe { topics }
        }));
        self.pending.push_back(Pending {
            subscribe,
            topic,
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

    /// What an `error` means: the end of the session, a refused topic, or a report.
    fn on_error(&mut self, error: StreamErrorMessage) -> Handled<BrokerageEvent> {
        let error = match error_end(error, false) {
            Ok(end) => return Handled::End(end),
            Err(error) => error,
        };
        if refuses_request(&error) {
            self.forget_stale();
            if let Some(frame) = self.pending.pop_front()
                && frame.subscribe
            {
                self.topics.lock().remove(&frame.topic);
                tracing::warn!(
                    topic = %frame.topic,
                    reason = %error.message,
                    "topic refused by the server"
                );
                return Handled::Event(BrokerageEvent::Refused {
                    topics: vec![frame.topic],
                    reason: error,
                });
            }
        }
        Handled::Event(BrokerageEvent::Error(StreamError::Server(error)))
    }
}

fn error_end(error: StreamErrorMessage, authenticating: bool) -> Result<End, StreamErrorMessage> {
    match classify(&error) {
        ErrorClass::AuthRejected => Ok(End::Terminal(StreamError::AuthRejected {
            code: error.code,
            message: error.message,
        })),
        ErrorClass::SessionReplaced => Ok(End::Terminal(StreamError::SessionReplaced {
            message: error.message,
        })),
        ErrorClass::AuthTimeout => Ok(End::Retry(StreamError::Server(error))),
        ErrorClass::TokenExpired | ErrorClass::Report
            if authenticating && refuses_authentication(&error) =>
        {
            Ok(End::Terminal(StreamError::AuthRejected {
                code: error.code,
                message: error.message,
            }))
        }
        ErrorClass::TokenExpired | ErrorClass::Report => Err(error),
    }
}

impl Protocol for BrokerageProtocol {
    type Message = BrokerageMessage;
    type Event = BrokerageEvent;
    type Command = BrokerageCommand;

    async fn authenticate(&mut self) -> Result<String, End> {
        Ok(encode(&BrokerageRequest::Authenticate {
            client_id: self.credentials.client_id.clone(),
            client_secret: self.credentials.client_secret.clone(),
        }))
    }

    fn handshake(
        &mut self,
        message: BrokerageMessage,
        authenticating: bool,
    ) -> Step<BrokerageMessage> {
        match message {
            BrokerageMessage::Welcome { .. } => Step::Welcome,
            BrokerageMessage::Authenticated {} => Step::Authenticated,
            BrokerageMessage::Error(error) => match error_end(error, authenticating) {
                Ok(end) => Step::End(end),
                Err(error) => Step::End(End::Retry(StreamError::Server(error))),
            },
            message @ BrokerageMessage::Unknown(_) => Step::Session {
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
        let topics: Vec<Topic> = self.topics.lock().iter().cloned().collect();
        for topic in topics {
            self.push(true, topic, frames);
        }
    }

    fn pending(&self) -> usize {
        self.pending.len()
    }

    fn command(&mut self, command: BrokerageCommand, frames: &mut Vec<String>) {
        let (subscribe, topics) = match command {
            BrokerageCommand::Subscribe(topics) => (true, topics),
            BrokerageCommand::Unsubscribe(topics) => (false, topics),
        };
        {
            let mut wanted = self.topics.lock();
            for topic in &topics {
                if subscribe {
                    wanted.insert(topic.clone());
                } else {
                    wanted.remove(topic);
                }
            }
        }
        let mut seen = BTreeSet::new();
        for topic in topics {
            if seen.insert(topic.clone()) {
                self.push(subscribe, topic, frames);
            }
        }
    }

    fn message(&mut self, message: BrokerageMessage) -> Handled<BrokerageEvent> {
        match message {
            BrokerageMessage::Order { meta, data } => {
                Handled::Event(BrokerageEvent::Order { meta, order: data })
            }
            BrokerageMessage::Position { meta, data } => Handled::Event(BrokerageEvent::Position {
                meta,
                position: data,
            }),
            BrokerageMessage::Balance { meta, data } => Handled::Event(BrokerageEvent::Balance {
                meta,
                balance: data,
            }),
            BrokerageMessage::Subscribed { topics } => {
                // `topics` is everything subscribed now: it answers every frame subscribing
                // one of them.
                self.pending
                    .retain(|p| !(p.subscribe && topics.contains(&p.topic)));
                Handled::Event(BrokerageEvent::Subscribed { topics })
            }
            BrokerageMessage::Unsubscribed { topics } => {
                self.pending
                    .retain(|p| p.subscribe || topics.contains(&p.topic));
                Handled::Event(BrokerageEvent::Unsubscribed { topics })
            }
            BrokerageMessage::Error(error) => self.on_error(error),
            BrokerageMessage::Unknown(value) => Handled::Event(BrokerageEvent::Unknown(value)),
            BrokerageMessage::Welcome { .. } | BrokerageMessage::Authenticated {} => {
                Handled::Nothing
            }
        }
    }

    fn closed_by_server(&mut self, code: Option<u16>, reason: &str) -> End {
        connection::default_close(code, reason)
    }

    fn event(event: CoreEvent) -> BrokerageEvent {
        match event {
            CoreEvent::Connection(event) => BrokerageEvent::Connection(event),
            CoreEvent::Error(error) => BrokerageEvent::Error(error),
        }
    }
}

/// Configures and connects a [`BrokerageStream`].
#[derive(Debug)]
pub struct BrokerageStreamBuilder {
    credentials: PlatformCredentials,
    url: String,
    config: StreamConfig,
    topics: Vec<Topic>,
}

impl BrokerageStreamBuilder {
    /// The stream URL (default [`BROKERAGE_STREAM_URL`]). Must be `wss://`, or `ws://` to
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

    /// Topics to subscribe as soon as the first session is up.
    pub fn subscribe(mut self, topics: impl IntoIterator<Item = Topic>) -> Self {
        self.topics.extend(topics);
        self
    }

    /// Connects and authenticates, and returns once the first session is authenticated (the
    /// `Connected` event follows once the subscriptions are answered; see the
    /// [module documentation](crate::stream) for the order of events).
    ///
    /// The first attempt fails fast: a wrong URL, an unreachable server or refused
    /// credentials is an error here. Once connected, the stream reconnects by itself.
    pub async fn connect(self) -> Result<BrokerageStream, StreamError> {
        let url = stream_url(&self.url)?;
        let topics = Topics::default();
        topics.lock().extend(self.topics);
        let protocol = BrokerageProtocol {
            credentials: self.credentials,
            topics: topics.clone(),
            pending: VecDeque::new(),
            answer_within: self.config.request_timeout,
        };
        let (control, events) = connection::start(protocol, url, self.config).await?;
        Ok(BrokerageStream {
            handle: BrokerageHandle { control, topics },
            events,
        })
    }
}

/// The brokerage stream (`wss://stream.connecttrade.com`): order, position and balance
/// updates of every user of the platform, on one connection authenticated with the platform
/// credentials. Connect Trade allows one session per credential pair: open one per process.
///
/// ```no_run
/// # async fn demo(platform: connect_trade::ConnectTrade) -> connect_trade::Result<()> {
/// use connect_trade::stream::{BrokerageEvent, BrokerageStream, ConnectionEvent, protocol::Topic};
///
/// let mut stream = BrokerageStream::for_platform(&platform)
///     .subscribe([Topic::Orders, Topic::Positions])
///     .connect()
///     .await?;
/// stream.subscribe([Topic::Balances])?; // at any time
/// while let Some(event) = stream.next().await {
///     match event {
///         BrokerageEvent::Order { meta, order } => {
///             println!("{} {}: {:?}", meta.user_id, order.order_id, order.status)
///         }
///         BrokerageEvent::Connection(ConnectionEvent::Reconnected { gap }) => {
///             println!("back after {gap:?}: refetch open orders from REST")
///         }
///         BrokerageEvent::Connection(ConnectionEvent::Terminated(error)) => {
///             eprintln!("stream ended: {error}")
///         }
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
pub struct BrokerageStream {
    handle: BrokerageHandle,
    events: queue::Receiver<BrokerageEvent>,
}

impl fmt::Debug for BrokerageStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerageStream")
            .field("closed", &self.handle.control.is_closed())
            .field("buffered_events", &self.events.len())
            .finish()
    }
}

impl BrokerageStream {
    /// A builder with these platform credentials.
    pub fn builder(credentials: PlatformCredentials) -> BrokerageStreamBuilder {
        BrokerageStreamBuilder {
            credentials,
            url: BROKERAGE_STREAM_URL.to_string(),
            config: StreamConfig::default(),
            topics: Vec::new(),
        }
    }

    /// A builder with the platform credentials of this client.
    pub fn for_platform(platform: &ConnectTrade) -> BrokerageStreamBuilder {
        Self::builder(platform.credentials().clone())
    }

    /// The next event; `None` after the last one (`Closed` or `Terminated`).
    pub async fn next(&mut self) -> Option<BrokerageEvent> {
        self.events.recv().await
    }

    /// Subscribes to topics (kept and replayed on every reconnect).
    pub fn subscribe(&self, topics: impl IntoIterator<Item = Topic>) -> Result<(), StreamError> {
        self.handle.subscribe(topics)
    }

    /// Unsubscribes from topics.
    pub fn unsubscribe(&self, topics: impl IntoIterator<Item = Topic>) -> Result<(), StreamError> {
        self.handle.unsubscribe(topics)
    }

    /// What this stream is subscribed to: the topics it replays on every reconnect. A topic
    /// the server refused is not in it (the stream told you with
    /// [`BrokerageEvent::Refused`]).
    pub fn subscriptions(&self) -> Vec<Topic> {
        self.handle.subscriptions()
    }

    /// A cloneable handle controlling this stream from elsewhere.
    pub fn handle(&self) -> BrokerageHandle {
        self.handle.clone()
    }

    /// Closes the connection gracefully and waits until it is closed. Events already
    /// received can still be read, then `Connection(Closed)`, then the end.
    pub async fn close(&self) {
        self.handle.close().await
    }
}

impl futures::Stream for BrokerageStream {
    type Item = BrokerageEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

/// Controls a [`BrokerageStream`] from another task. Cheap to clone.
#[derive(Clone)]
pub struct BrokerageHandle {
    control: Control<BrokerageCommand>,
    topics: Topics,
}

impl fmt::Debug for BrokerageHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerageHandle")
            .field("closed", &self.control.is_closed())
            .finish()
    }
}

impl BrokerageHandle {
    /// Subscribes to topics (kept and replayed on every reconnect). Fails only if the stream
    /// is closed.
    pub fn subscribe(&self, topics: impl IntoIterator<Item = Topic>) -> Result<(), StreamError> {
        let topics: Vec<Topic> = topics.into_iter().collect();
        if self.control.is_closed() {
            return Err(StreamError::Closed);
        }
        self.topics.lock().extend(topics.iter().cloned());
        self.control.send(BrokerageCommand::Subscribe(topics))
    }

    /// Unsubscribes from topics. Fails only if the stream is closed.
    pub fn unsubscribe(&self, topics: impl IntoIterator<Item = Topic>) -> Result<(), StreamError> {
        let topics: Vec<Topic> = topics.into_iter().collect();
        if self.control.is_closed() {
            return Err(StreamError::Closed);
        }
        {
            let mut wanted = self.topics.lock();
            for topic in &topics {
                wanted.remove(topic);
            }
        }
        self.control.send(BrokerageCommand::Unsubscribe(topics))
    }

    /// What the stream is subscribed to (see [`BrokerageStream::subscriptions`]).
    pub fn subscriptions(&self) -> Vec<Topic> {
        self.topics.lock().iter().cloned().collect()
    }

    /// Closes the stream gracefully and waits until it is closed.
    pub async fn close(&self) {
        self.control.close().await
    }
}
