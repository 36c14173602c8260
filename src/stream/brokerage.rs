//! The brokerage stream: order, position and balance updates of every user of the platform.

use std::{
    collections::BTreeSet,
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use super::{
    BROKERAGE_STREAM_URL, ConnectionEvent, StreamConfig,
    connection::{self, Control, CoreEvent, End, Handled, Protocol, Step},
    encode,
    error::{ErrorClass, StreamError, classify},
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

/// Commands of the brokerage handle.
pub(crate) enum BrokerageCommand {
    Subscribe(Vec<Topic>),
    Unsubscribe(Vec<Topic>),
}

struct BrokerageProtocol {
    credentials: PlatformCredentials,
    topics: BTreeSet<Topic>,
}

fn error_end(error: StreamErrorMessage) -> Result<End, StreamErrorMessage> {
    match classify(&error) {
        ErrorClass::AuthRejected => Ok(End::Terminal(StreamError::AuthRejected {
            code: error.code,
            message: error.message,
        })),
        ErrorClass::SessionReplaced => Ok(End::Terminal(StreamError::SessionReplaced {
            message: error.message,
        })),
        ErrorClass::AuthTimeout => Ok(End::Retry(StreamError::Server(error))),
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

    fn handshake(&mut self, message: BrokerageMessage) -> Step {
        match message {
            BrokerageMessage::Welcome { .. } => Step::Welcome,
            BrokerageMessage::Authenticated {} => Step::Authenticated,
            BrokerageMessage::Error(error) => match error_end(error) {
                Ok(end) => Step::End(end),
                Err(error) => Step::End(End::Retry(StreamError::Server(error))),
            },
            _ => Step::Ignore,
        }
    }

    fn replay(&mut self, frames: &mut Vec<String>) {
        if !self.topics.is_empty() {
            frames.push(encode(&BrokerageRequest::Subscribe {
                topics: self.topics.iter().cloned().collect(),
            }));
        }
    }

    fn command(&mut self, command: BrokerageCommand, frames: &mut Vec<String>) {
        match command {
            BrokerageCommand::Subscribe(topics) => {
                self.topics.extend(topics.iter().cloned());
                if !topics.is_empty() {
                    frames.push(encode(&BrokerageRequest::Subscribe { topics }));
                }
            }
            BrokerageCommand::Unsubscribe(topics) => {
                for topic in &topics {
                    self.topics.remove(topic);
                }
                if !topics.is_empty() {
                    frames.push(encode(&BrokerageRequest::Unsubscribe { topics }));
                }
            }
        }
    }

    fn message(&mut self, message: BrokerageMessage) -> Handled<BrokerageEvent> {
        match message {
            BrokerageMessage::Order { meta, data } => {
                Handled::Data(BrokerageEvent::Order { meta, order: data })
            }
            BrokerageMessage::Position { meta, data } => Handled::Data(BrokerageEvent::Position {
                meta,
                position: data,
            }),
            BrokerageMessage::Balance { meta, data } => Handled::Data(BrokerageEvent::Balance {
                meta,
                balance: data,
            }),
            BrokerageMessage::Subscribed { topics } => {
                Handled::Control(BrokerageEvent::Subscribed { topics })
            }
            BrokerageMessage::Unsubscribed { topics } => {
                Handled::Control(BrokerageEvent::Unsubscribed { topics })
            }
            BrokerageMessage::Error(error) => match error_end(error) {
                Ok(end) => Handled::End(end),
                Err(error) => Handled::Control(BrokerageEvent::Error(StreamError::Server(error))),
            },
            BrokerageMessage::Unknown(value) => Handled::Data(BrokerageEvent::Unknown(value)),
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
            CoreEvent::Lagged(dropped) => BrokerageEvent::Lagged { dropped },
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

    /// Connects and authenticates, and returns once the first session is up.
    ///
    /// The first attempt fails fast: a wrong URL, an unreachable server or refused
    /// credentials is an error here. Once connected, the stream reconnects by itself.
    pub async fn connect(self) -> Result<BrokerageStream, StreamError> {
        let url = stream_url(&self.url)?;
        let protocol = BrokerageProtocol {
            credentials: self.credentials,
            topics: self.topics.into_iter().collect(),
        };
        let (control, events) = connection::start(protocol, url, self.config).await?;
        Ok(BrokerageStream {
            handle: BrokerageHandle { control },
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
        self.control
            .send(BrokerageCommand::Subscribe(topics.into_iter().collect()))
    }

    /// Unsubscribes from topics. Fails only if the stream is closed.
    pub fn unsubscribe(&self, topics: impl IntoIterator<Item = Topic>) -> Result<(), StreamError> {
        self.control
            .send(BrokerageCommand::Unsubscribe(topics.into_iter().collect()))
    }

    /// Closes the stream gracefully and waits until it is closed.
    pub async fn close(&self) {
        self.control.close().await
    }
}
