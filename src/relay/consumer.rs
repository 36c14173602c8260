//! The consumer side: the relay's updates as a stream of [`BrokerageEvent`]s.

use std::{
    collections::HashSet,
    fmt,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, pull},
};
use futures::StreamExt;
use tokio::{sync::mpsc, task::JoinHandle};

use super::{FENCE_HEADER, GapMarker, RelayConfig, RelayError};
use crate::stream::{
    BrokerageEvent, ConnectionEvent, StreamError,
    protocol::{BrokerageMessage, ServerMessage},
};

/// Configures and connects a [`RelayStream`].
#[derive(Debug)]
pub struct RelayStreamBuilder {
    nats: async_nats::Client,
    config: RelayConfig,
    users: HashSet<String>,
    accounts: HashSet<String>,
    durable: Option<String>,
    heartbeat: Duration,
    buffer: usize,
}

impl RelayStreamBuilder {
    /// Where the relay publishes (default [`RelayConfig::default`]; the same as the relays').
    pub fn config(mut self, config: RelayConfig) -> Self {
        self.config = config;
        self
    }

    /// Only this user's updates (may be repeated; default: every user). Gaps always come.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.users.insert(user_id.into());
        self
    }

    /// Only these users' updates.
    pub fn users<S: Into<String>>(mut self, user_ids: impl IntoIterator<Item = S>) -> Self {
        self.users.extend(user_ids.into_iter().map(Into::into));
        self
    }

    /// Only this account's updates (may be repeated; default: every account).
    pub fn account(mut self, account_id: impl Into<String>) -> Self {
        self.accounts.insert(account_id.into());
        self
    }

    /// Only these accounts' updates.
    pub fn accounts<S: Into<String>>(mut self, account_ids: impl IntoIterator<Item = S>) -> Self {
        self.accounts
            .extend(account_ids.into_iter().map(Into::into));
        self
    }

    /// A durable consumer of this name: a stream connected again with the same name resumes
    /// after the last event it handed over (each event is acknowledged as it is handed
    /// over). One stream per name at a time. Default: not durable, starting with the updates
    /// published from now on.
    pub fn durable(mut self, name: impl Into<String>) -> Self {
        self.durable = Some(name.into());
        self
    }

    /// How often JetStream proves the consumer alive (default 1 s); two missed heartbeats
    /// (a restarted server) make the stream re-create its consumer where it stopped.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(100));
        self
    }

    /// How many events may wait for the reader (default 1024); a slow reader slows the
    /// consumer down, nothing is dropped.
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = events.max(1);
        self
    }

    /// Creates the consumer and returns the stream; its first event is
    /// `Connection(Connected)` (load state from REST then, as after `BrokerageStream`'s).
    pub async fn connect(self) -> Result<RelayStream, RelayError> {
        if let Some(name) = &self.durable
            && (name.is_empty() || name.contains(['.', '*', '>', ' ']))
        {
            return Err(RelayError::Config(format!(
                "durable name {name:?} must be non-empty, without dots, wildcards or spaces"
            )));
        }
        let js = jetstream::new(self.nats.clone());
        let stream = self.config.ensure_stream(&js).await?;
        let stats = Arc::new(Stats::default());
        let state = ConsumerState {
            nats: self.nats.clone(),
            config: self.config,
            users: self.users,
            accounts: self.accounts,
            durable: self.durable,
            heartbeat: self.heartbeat,
            last_seq: None,
            max_fence: 0,
            stats: stats.clone(),
        };
        let consumer = state.open(&stream).await?;
        let (tx, rx) = mpsc::channel(self.buffer);
        let _ = tx
            .send((BrokerageEvent::Connection(ConnectionEvent::Connected), None))
            .await;
        let acks = Arc::new(Acks::default());
        let task = tokio::spawn(state.run(stream, consumer, tx, acks.clone()));
        Ok(RelayStream {
            rx,
            task,
            stats,
            acks,
            nats: self.nats,
        })
    }
}

/// Acknowledgements of a durable consumer: the subject of the last message handed over,
/// acknowledged (with everything before it) by the consumer task.
#[derive(Default)]
struct Acks {
    latest: std::sync::Mutex<Option<async_nats::Subject>>,
    ready: tokio::sync::Notify,
}

impl Acks {
    fn take(&self) -> Option<async_nats::Subject> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// An event and, for a durable consumer, the subject acknowledging its message.
type Item = (BrokerageEvent, Option<async_nats::Subject>);

#[derive(Default)]
struct Stats {
    fenced: AtomicU64,
    duplicates: AtomicU64,
}

/// The relay's updates as [`BrokerageEvent`]s: what a
/// [`BrokerageStream`](crate::stream::BrokerageStream) would give, with every gap of the
/// relay (a reconnect of the holder's session, a change of holder) as `Reconnecting` then
/// `Reconnected { gap }`. Messages of an older holder are dropped (fencing), and so is any
/// message delivered twice. Give it to
/// [`Portfolio::follow`](crate::portfolio::Portfolio::follow) as it is.
///
/// Dropping it stops the consumer.
pub struct RelayStream {
    rx: mpsc::Receiver<Item>,
    task: JoinHandle<()>,
    stats: Arc<Stats>,
    acks: Arc<Acks>,
    nats: async_nats::Client,
}

impl fmt::Debug for RelayStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayStream")
            .field("buffered_events", &self.rx.len())
            .field("fenced", &self.fenced())
            .finish()
    }
}

impl RelayStream {
    /// A builder reading through this NATS client.
    pub fn builder(nats: async_nats::Client) -> RelayStreamBuilder {
        RelayStreamBuilder {
            nats,
            config: RelayConfig::default(),
            users: HashSet::new(),
            accounts: HashSet::new(),
            durable: None,
            heartbeat: Duration::from_secs(1),
            buffer: 1024,
        }
    }

    /// The next event; `None` only after the consumer failed for good.
    pub async fn next(&mut self) -> Option<BrokerageEvent> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<BrokerageEvent>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some((event, ack))) => {
                if let Some(ack) = ack {
                    *self.acks.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(ack);
                    self.acks.ready.notify_one();
                }
                Poll::Ready(Some(event))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// How many messages of an older holder were dropped so far.
    pub fn fenced(&self) -> u64 {
        self.stats.fenced.load(Ordering::Relaxed)
    }

    /// How many messages delivered a second time by JetStream were dropped so far.
    pub fn duplicates(&self) -> u64 {
        self.stats.duplicates.load(Ordering::Relaxed)
    }
}

impl Drop for RelayStream {
    fn drop(&mut self) {
        self.task.abort();
        // The last event handed over is acknowledged even now, so a durable consumer
        // resumes right after it.
        if let Some(ack) = self.acks.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let nats = self.nats.clone();
            runtime.spawn(async move {
                let _ = nats.publish(ack, "+ACK".into()).await;
                let _ = nats.flush().await;
            });
        }
    }
}

impl futures::Stream for RelayStream {
    type Item = BrokerageEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_event(cx)
    }
}

struct ConsumerState {
    nats: async_nats::Client,
    config: RelayConfig,
    users: HashSet<String>,
    accounts: HashSet<String>,
    durable: Option<String>,
    heartbeat: Duration,
    /// The stream sequence of the last message taken.
    last_seq: Option<u64>,
    /// The highest fencing token seen.
    max_fence: u64,
    stats: Arc<Stats>,
}

type Consumer = jetstream::consumer::Consumer<pull::Config>;

impl ConsumerState {
    /// Creates the consumer: after the last message taken, or (first time) where a durable
    /// consumer of this name stopped, or with the updates published from now on.
    async fn open(&self, stream: &jetstream::stream::Stream) -> Result<Consumer, RelayError> {
        let mut start = self.last_seq.map(|seq| seq + 1);
        if let Some(name) = &self.durable
            && let Ok(info) = stream.consumer_info(name).await
        {
            if start.is_none() {
                // Resume after the last acknowledged message: the messages it had fetched
                // but not handed over come again, in order.
                start = Some(match info.ack_floor.stream_sequence {
                    0 => match info.config.deliver_policy {
                        DeliverPolicy::ByStartSequence { start_sequence } => start_sequence,
                        _ => info.delivered.stream_sequence + 1,
                    },
                    floor => floor + 1,
                });
            }
            let _ = stream.delete_consumer(name).await;
        }
        let config = pull::Config {
            durable_name: self.durable.clone(),
            deliver_policy: match start {
                Some(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
                None => DeliverPolicy::New,
            },
            ack_policy: if self.durable.is_some() {
                AckPolicy::All
            } else {
                AckPolicy::None
            },
            ack_wait: Duration::from_secs(60),
            filter_subject: format!("{}.>", self.config.prefix),
            inactive_threshold: if self.durable.is_some() {
                Duration::ZERO
            } else {
                Duration::from_secs(60)
            },
            ..Default::default()
        };
        stream
            .create_consumer(config)
            .await
            .map_err(|e| RelayError::nats("creating the consumer", e))
    }

    async fn run(
        mut self,
        stream: jetstream::stream::Stream,
        mut consumer: Consumer,
        tx: mpsc::Sender<Item>,
        acks: Arc<Acks>,
    ) {
        let mut failures = 0u32;
        loop {
            let messages = consumer
                .stream()
                .heartbeat(self.heartbeat)
                .expires(self.heartbeat * 10)
                .max_messages_per_batch(512)
                .messages()
                .await;
            match messages {
                Ok(mut messages) => {
                    loop {
                        let message = tokio::select! {
                            message = messages.next() => message,
                            () = acks.ready.notified() => {
                                // `AckPolicy::All`: acknowledges everything before it too.
                                if let Some(ack) = acks.take() {
                                    let _ = self.nats.publish(ack, "+ACK".into()).await;
                                }
                                continue;
                            }
                        };
                        let Some(message) = message else { break };
                        match message {
                            Ok(message) => {
                                failures = 0;
                                if self.take(message, &tx).await.is_err() {
                                    return; // the reader is gone
                                }
                            }
                            Err(error) => {
                                tracing::debug!(%error, "relay stream: consumer interrupted");
                                break;
                            }
                        }
                    }
                }
                Err(error) => tracing::debug!(%error, "relay stream: cannot pull"),
            }
            // Re-create the consumer after the last message taken.
            loop {
                if tx.is_closed() {
                    return;
                }
                failures = failures.saturating_add(1);
                let delay = Duration::from_millis(50 * u64::from(failures.min(20)));
                tokio::time::sleep(delay).await;
                match self.open(&stream).await {
                    Ok(fresh) => {
                        consumer = fresh;
                        break;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "relay stream: cannot re-create the consumer")
                    }
                }
            }
        }
    }

    /// Handles one message; `Err` when the reader is gone.
    async fn take(
        &mut self,
        message: jetstream::Message,
        tx: &mpsc::Sender<Item>,
    ) -> Result<(), ()> {
        let Ok(info) = message.info() else {
            return Ok(());
        };
        let seq = info.stream_sequence;
        let ack = self.durable.as_ref().and(message.reply.clone());
        if let Some(last) = self.last_seq {
            if seq <= last {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            if seq > last + 1 {
                // Messages aged out of the stream before we read them.
                let gap = GapMarker {
                    from: None,
                    to: chrono::Utc::now(),
                    reason: super::GapReason::Lagged,
                    holder: String::new(),
                    fence: self.max_fence,
                };
                self.last_seq = Some(seq);
                send_gap(tx, &gap, None).await?;
            }
        }
        self.last_seq = Some(seq);
        let fence = message
            .headers
            .as_ref()
            .and_then(|h| h.get(FENCE_HEADER))
            .and_then(|v| v.as_str().parse::<u64>().ok())
            .unwrap_or(0);
        if fence < self.max_fence {
            self.stats.fenced.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let new_holder = fence > self.max_fence && self.max_fence != 0;
        self.max_fence = fence;
        if message.subject.as_str() == self.config.gap_subject() {
            if let Ok(gap) = serde_json::from_slice::<GapMarker>(&message.payload) {
                send_gap(tx, &gap, ack).await?;
            }
            return Ok(());
        }
        if new_holder {
            // A new holder whose gap marker we did not see: a gap all the same.
            let gap = GapMarker {
                from: None,
                to: chrono::Utc::now(),
                reason: super::GapReason::HolderChange,
                holder: String::new(),
                fence,
            };
            send_gap(tx, &gap, None).await?;
        }
        let Ok(text) = std::str::from_utf8(&message.payload) else {
            return Ok(());
        };
        let event = match BrokerageMessage::decode(text) {
            Ok(BrokerageMessage::Order { meta, data }) => {
                BrokerageEvent::Order { meta, order: data }
            }
            Ok(BrokerageMessage::Position { meta, data }) => BrokerageEvent::Position {
                meta,
                position: data,
            },
            Ok(BrokerageMessage::Balance { meta, data }) => BrokerageEvent::Balance {
                meta,
                balance: data,
            },
            Ok(BrokerageMessage::Unknown(value)) => BrokerageEvent::Unknown(value),
            Ok(_) => return Ok(()),
            Err(error) => BrokerageEvent::Error(crate::stream::StreamError::Decode {
                error: error.to_string(),
                excerpt: text.chars().take(200).collect(),
            }),
        };
        if let BrokerageEvent::Order { meta, .. }
        | BrokerageEvent::Position { meta, .. }
        | BrokerageEvent::Balance { meta, .. } = &event
            && ((!self.users.is_empty() && !self.users.contains(&meta.user_id))
                || (!self.accounts.is_empty() && !self.accounts.contains(&meta.account_id)))
        {
            return Ok(());
        }
        tx.send((event, ack)).await.map_err(|_| ())
    }
}

/// A gap, as a `BrokerageStream` shows one: `Reconnecting` then `Reconnected`.
async fn send_gap(
    tx: &mpsc::Sender<Item>,
    gap: &GapMarker,
    ack: Option<async_nats::Subject>,
) -> Result<(), ()> {
    let reason = StreamError::Disconnected(format!(
        "relay gap ({:?}, holder {:?}): updates from {} to {} may be missing; re-read REST",
        gap.reason,
        gap.holder,
        gap.from
            .map(|f| f.to_rfc3339())
            .unwrap_or_else(|| "an unknown time".to_string()),
        gap.to.to_rfc3339()
    ));
    let reconnecting = BrokerageEvent::Connection(ConnectionEvent::Reconnecting {
        attempt: 1,
        delay: Duration::ZERO,
        reason,
    });
    tx.send((reconnecting, None)).await.map_err(|_| ())?;
    let reconnected = BrokerageEvent::Connection(ConnectionEvent::Reconnected {
        gap: gap.duration(),
    });
    tx.send((reconnected, ack)).await.map_err(|_| ())
}
