//! The relay instance: competes for the lease, holds the Connect Trade session while it has
//! it, publishes every update and every gap.

use std::{future::Future, pin::Pin, time::Duration};

use async_nats::{
    HeaderMap,
    jetstream::{self, kv},
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::{
    sync::broadcast,
    time::{Instant, sleep, sleep_until, timeout},
};

use super::{FENCE_HEADER, GapMarker, GapReason, HOLDER_HEADER, RelayConfig, RelayError, fnv128};
use crate::{
    credentials::PlatformCredentials,
    stream::{
        BROKERAGE_STREAM_URL, BrokerageEvent, BrokerageStream, ConnectionEvent, Overflow,
        StreamConfig, StreamError,
        protocol::{BrokerageMessage, Topic, UpdateMeta},
    },
};

/// What a [`Relay`] instance does, for logs and tests ([`Relay::events`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RelayEvent {
    /// Another instance holds the lease (its name, when readable). Sent when the observed
    /// holder changes.
    Standby {
        /// The holder's instance name.
        holder: Option<String>,
    },
    /// This instance took the lease; `fence` is its fencing token.
    Acquired {
        /// The lease revision at acquisition.
        fence: u64,
    },
    /// The session is up and subscribed, and the gap marker before it is published: updates
    /// flow.
    Streaming {
        /// This holder's fencing token.
        fence: u64,
    },
    /// A gap marker was published.
    GapPublished(GapMarker),
    /// This instance lost or gave up the lease and closed its session first.
    SteppedDown {
        /// Its fencing token.
        fence: u64,
        /// Why.
        reason: String,
    },
    /// Shut down: the session closed and the lease released at once.
    Released {
        /// Its fencing token.
        fence: u64,
    },
}

/// Configures a [`Relay`].
#[derive(Debug)]
pub struct RelayBuilder {
    credentials: PlatformCredentials,
    nats: async_nats::Client,
    url: String,
    stream_config: StreamConfig,
    config: RelayConfig,
    instance: Option<String>,
}

impl RelayBuilder {
    /// The brokerage stream URL (default the production one).
    pub fn brokerage_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Timings of the Connect Trade session (its overflow is always
    /// [`Overflow::Backpressure`]: the relay drops nothing).
    pub fn stream_config(mut self, config: StreamConfig) -> Self {
        self.stream_config = config;
        self
    }

    /// Where the lease and the updates live (default [`RelayConfig::default`]).
    pub fn config(mut self, config: RelayConfig) -> Self {
        self.config = config;
        self
    }

    /// The lease TTL (default 10 s): shorthand for the field of [`RelayConfig`].
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// This instance's name in the lease and in logs (default `relay-<pid>-<random>`).
    pub fn instance(mut self, name: impl Into<String>) -> Self {
        self.instance = Some(name.into());
        self
    }

    /// The relay instance; start it with [`Relay::run`].
    pub fn build(self) -> Relay {
        let (events, _) = broadcast::channel(1024);
        Relay {
            instance: self.instance.unwrap_or_else(|| {
                format!("relay-{}-{:04x}", std::process::id(), fastrand::u16(..))
            }),
            nonce: fastrand::u64(..),
            credentials: self.credentials,
            nats: self.nats,
            url: self.url,
            stream_config: self.stream_config.overflow(Overflow::Backpressure),
            config: self.config,
            events,
        }
    }
}

/// One relay instance (see the [module docs](super)). Run one per machine with the same
/// credentials and NATS: exactly one of them holds the Connect Trade session at a time.
pub struct Relay {
    instance: String,
    nonce: u64,
    credentials: PlatformCredentials,
    nats: async_nats::Client,
    url: String,
    stream_config: StreamConfig,
    config: RelayConfig,
    events: broadcast::Sender<RelayEvent>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("instance", &self.instance)
            .field("url", &self.url)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The lease's value.
#[derive(Serialize, Deserialize)]
struct LeaseValue {
    holder: String,
    nonce: u64,
    since: DateTime<Utc>,
}

struct Lease {
    fence: u64,
    revision: u64,
    /// When the last successful write (acquisition or renewal) was sent: the lease lives at
    /// least until this + TTL.
    renewed: Instant,
}

enum HoldEnd {
    Shutdown,
    Lost,
}

type Shutdown<'a> = Pin<&'a mut (dyn Future<Output = ()> + Send)>;

impl Relay {
    /// A relay of these platform credentials publishing through this NATS client.
    pub fn builder(credentials: PlatformCredentials, nats: async_nats::Client) -> RelayBuilder {
        RelayBuilder {
            credentials,
            nats,
            url: BROKERAGE_STREAM_URL.to_string(),
            stream_config: StreamConfig::default(),
            config: RelayConfig::default(),
            instance: None,
        }
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// What this instance does from now on (acquisitions, step-downs, gaps).
    pub fn events(&self) -> broadcast::Receiver<RelayEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: RelayEvent) {
        let _ = self.events.send(event);
    }

    /// Runs until `shutdown` completes (then closes the session and releases the lease at
    /// once) or a terminal error: the credentials refused, or a session outside the relay
    /// replacing ours. Aborting the task that runs it closes the session too (the lease then
    /// lapses after its TTL).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RelayError> {
        let js = jetstream::new(self.nats.clone());
        let ttl = self.config.lease_ttl();
        let store = self.ensure_bucket(&js).await?;
        self.config.ensure_stream(&js).await?;
        let shutdown = std::pin::pin!(shutdown);
        let mut shutdown: Shutdown<'_> = shutdown;
        loop {
            let Some(lease) = self.acquire(&store, ttl, &mut shutdown).await else {
                return Ok(());
            };
            let fence = lease.fence;
            self.emit(RelayEvent::Acquired { fence });
            tracing::info!(instance = %self.instance, fence, "relay: took the lease");
            let (renewal_tx, renewal) = tokio::sync::watch::channel(RenewState {
                renewed: lease.renewed,
                revision: lease.revision,
                lost: None,
            });
            let renewer = AbortOnDrop(tokio::spawn(renew_loop(
                store.clone(),
                self.config.key.clone(),
                self.instance.clone(),
                self.nonce,
                ttl,
                renewal_tx,
            )));
            let mut holding = Holding {
                relay: &self,
                js: &js,
                store: &store,
                ttl,
                lease,
                renewal,
                session: None,
                pending_gap: None,
                down_since: None,
            };
            let end = holding.run(&mut shutdown).await;
            drop(renewer);
            match end {
                Ok(HoldEnd::Shutdown) => return Ok(()),
                Ok(HoldEnd::Lost) => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Opens the lease bucket, creating it if needed. Created as the stream a key-value
    /// bucket is made of, not with `create_key_value`: that asks for account information in
    /// a shape NATS 2.9 does not send.
    async fn ensure_bucket(&self, js: &jetstream::Context) -> Result<kv::Store, RelayError> {
        use jetstream::stream::{Config, DiscardPolicy, StorageType};
        let bucket = &self.config.bucket;
        if let Ok(store) = js.get_key_value(bucket.clone()).await {
            return Ok(store);
        }
        let config = Config {
            name: format!("KV_{bucket}"),
            description: Some(
                "connect-trade relay: the holder of the brokerage stream session".to_string(),
            ),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: self.config.lease_ttl(),
            storage: StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: DiscardPolicy::New,
            ..Default::default()
        };
        // Another instance may create it at the same time: then open theirs.
        let created = js.get_or_create_stream(config).await;
        js.get_key_value(bucket.clone()).await.map_err(|error| {
            let cause = match created {
                Err(created) => created.to_string(),
                Ok(_) => error.to_string(),
            };
            RelayError::nats(format!("creating the lease bucket {bucket:?}"), cause)
        })
    }

    fn lease_value(&self) -> Bytes {
        let value = LeaseValue {
            holder: self.instance.clone(),
            nonce: self.nonce,
            since: Utc::now(),
        };
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
    }

    /// Stands by until the lease is free and takes it; `None` on shutdown.
    async fn acquire(
        &self,
        store: &kv::Store,
        ttl: Duration,
        shutdown: &mut Shutdown<'_>,
    ) -> Option<Lease> {
        let poll = (ttl / 10).max(Duration::from_millis(50));
        let mut seen: Option<Option<String>> = None;
        loop {
            let sent = Instant::now();
            let attempt = timeout(ttl / 4, store.create(&self.config.key, self.lease_value()));
            let outcome = tokio::select! {
                outcome = attempt => outcome,
                () = shutdown.as_mut() => return None,
            };
            match outcome {
                Ok(Ok(revision)) => {
                    return Some(Lease {
                        fence: revision,
                        revision,
                        renewed: sent,
                    });
                }
                Ok(Err(error)) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                    let holder = match timeout(ttl / 4, store.get(&self.config.key)).await {
                        Ok(Ok(Some(value))) => serde_json::from_slice::<LeaseValue>(&value)
                            .ok()
                            .map(|v| v.holder),
                        _ => None,
                    };
                    if holder.is_some() && seen.as_ref() != Some(&holder) {
                        tracing::info!(instance = %self.instance, holder = ?holder, "relay: standing by");
                        self.emit(RelayEvent::Standby {
                            holder: holder.clone(),
                        });
                        seen = Some(holder);
                    }
                }
                Ok(Err(error)) => {
                    tracing::debug!(instance = %self.instance, %error, "relay: lease attempt failed")
                }
                Err(_) => {
                    tracing::debug!(instance = %self.instance, "relay: lease attempt timed out")
                }
            }
            tokio::select! {
                () = sleep(poll) => {}
                () = shutdown.as_mut() => return None,
            }
        }
    }
}

/// The state of one holding: from taking the lease to losing or releasing it.
struct Holding<'r> {
    relay: &'r Relay,
    js: &'r jetstream::Context,
    store: &'r kv::Store,
    ttl: Duration,
    lease: Lease,
    /// What the renewal task reports: the last renewal, the revision, or the loss.
    renewal: tokio::sync::watch::Receiver<RenewState>,
    session: Option<BrokerageStream>,
    /// A gap to publish before the next update (the session just came up).
    pending_gap: Option<(Option<DateTime<Utc>>, GapReason)>,
    /// When the session went down.
    down_since: Option<DateTime<Utc>>,
}

/// The lease as the renewal task sees it.
#[derive(Clone)]
struct RenewState {
    /// When the last successful write was sent: the lease lives at least until this + TTL.
    renewed: Instant,
    revision: u64,
    /// Why the lease is lost, once it is.
    lost: Option<String>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews the lease every fifth of the TTL, on its own task so that nothing the holder
/// awaits (connecting, publishing) delays a renewal.
async fn renew_loop(
    store: kv::Store,
    key: String,
    holder: String,
    nonce: u64,
    ttl: Duration,
    state: tokio::sync::watch::Sender<RenewState>,
) {
    let every = ttl / 5;
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let revision = state.borrow().revision;
        let value = LeaseValue {
            holder: holder.clone(),
            nonce,
            since: Utc::now(),
        };
        let value = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        let sent = Instant::now();
        match timeout(every, store.update(&key, value, revision)).await {
            Ok(Ok(revision)) => state.send_modify(|s| {
                s.revision = revision;
                s.renewed = sent;
            }),
            Ok(Err(error)) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                // Our own earlier renewal may have landed with its reply lost: adopt it if
                // the entry is still ours (keeping the older renewal time).
                if let Ok(Ok(Some(entry))) = timeout(every, store.entry(&key)).await
                    && entry.operation == kv::Operation::Put
                    && serde_json::from_slice::<LeaseValue>(&entry.value)
                        .is_ok_and(|v| v.nonce == nonce && v.holder == holder)
                {
                    state.send_modify(|s| s.revision = entry.revision);
                    continue;
                }
                state.send_modify(|s| s.lost = Some("the lease lapsed or was taken".to_string()));
                return;
            }
            Ok(Err(error)) => tracing::warn!(%error, "relay: lease renewal failed"),
            Err(_) => tracing::warn!("relay: lease renewal timed out"),
        }
    }
}

impl Holding<'_> {
    /// Steps down when no renewal succeeded for half the TTL: the session is then closed
    /// (within a quarter TTL) before the lease can lapse.
    fn step_down_at(&self) -> Instant {
        self.renewal.borrow().renewed + self.ttl / 2
    }

    async fn run(&mut self, shutdown: &mut Shutdown<'_>) -> Result<HoldEnd, RelayError> {
        let fence = self.lease.fence;
        // The gap of a holder change: from the last update anyone published.
        let from = self.last_published().await;
        self.pending_gap = Some((from, GapReason::HolderChange));
        let mut connect_at = Instant::now();
        let mut attempt = 0u32;
        loop {
            let step_down = sleep_until(self.step_down_at());
            tokio::select! {
                biased;
                () = shutdown.as_mut() => {
                    self.close_session().await;
                    let release = self
                        .store
                        .delete_expect_revision(&self.relay.config.key, Some(self.renewal.borrow().revision));
                    if let Err(error) = timeout(self.ttl / 4, release).await.unwrap_or_else(|_| {
                        Err(kv::DeleteError::new(kv::DeleteErrorKind::Other))
                    }) {
                        tracing::warn!(%error, "relay: could not release the lease; it lapses after its TTL");
                    }
                    tracing::info!(instance = %self.relay.instance, fence, "relay: released the lease");
                    self.relay.emit(RelayEvent::Released { fence });
                    return Ok(HoldEnd::Shutdown);
                }
                () = step_down => {
                    return Ok(self.step_down("no lease renewal for half the TTL").await);
                }
                changed = self.renewal.changed() => {
                    let lost = self.renewal.borrow().lost.clone();
                    match (changed, lost) {
                        (_, Some(reason)) => return Ok(self.step_down(&reason).await),
                        (Err(_), None) => return Ok(self.step_down("the renewal task ended").await),
                        (Ok(()), None) => {}
                    }
                }
                () = sleep_until(connect_at), if self.session.is_none() => {
                    match self.connect().await {
                        Ok(()) => attempt = 0,
                        Err(error) if matches!(error, StreamError::AuthRejected { .. }) => {
                            self.step_down("credentials refused").await;
                            return Err(RelayError::Stream(error));
                        }
                        Err(error) => {
                            attempt += 1;
                            let delay = self.relay.stream_config.backoff.delay(attempt);
                            tracing::warn!(%error, ?delay, "relay: could not connect the brokerage stream");
                            connect_at = Instant::now() + delay;
                        }
                    }
                }
                event = next_event(&mut self.session), if self.session.is_some() => {
                    if let Some(end) = self.on_event(event).await? {
                        return Ok(end);
                    }
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<(), StreamError> {
        let relay = self.relay;
        let connect = BrokerageStream::builder(relay.credentials.clone())
            .url(relay.url.clone())
            .config(relay.stream_config.clone())
            .subscribe([Topic::Orders, Topic::Positions, Topic::Balances])
            .connect();
        // Bounded: the lease must be renewed meanwhile.
        let deadline = (Instant::now() + self.ttl / 4).min(self.step_down_at());
        let session = tokio::time::timeout_at(deadline, connect)
            .await
            .map_err(|_| {
                StreamError::HandshakeTimeout("connecting within a quarter of the lease TTL".into())
            })??;
        self.session = Some(session);
        Ok(())
    }

    async fn close_session(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = timeout(self.ttl / 4, session.close()).await;
        }
    }

    async fn step_down(&mut self, reason: &str) -> HoldEnd {
        self.close_session().await;
        let fence = self.lease.fence;
        tracing::warn!(instance = %self.relay.instance, fence, reason, "relay: stepped down");
        self.relay.emit(RelayEvent::SteppedDown {
            fence,
            reason: reason.to_string(),
        });
        HoldEnd::Lost
    }

    /// When the last message of the stream was published (the start of a holder change's
    /// gap), if any.
    async fn last_published(&self) -> Option<DateTime<Utc>> {
        let info = async {
            let stream = self.js.get_stream(&self.relay.config.stream).await.ok()?;
            stream.get_info().await.ok()
        };
        let info = timeout(self.ttl / 4, info).await.ok().flatten()?;
        if info.state.messages == 0 {
            return None;
        }
        let nanos = info.state.last_timestamp.unix_timestamp_nanos();
        i64::try_from(nanos)
            .ok()
            .map(DateTime::from_timestamp_nanos)
    }

    async fn on_event(
        &mut self,
        event: Option<BrokerageEvent>,
    ) -> Result<Option<HoldEnd>, RelayError> {
        let Some(event) = event else {
            // The session ended without a terminal event: reconnect.
            self.session = None;
            self.session_down();
            return Ok(None);
        };
        match event {
            BrokerageEvent::Connection(ConnectionEvent::Reconnecting { reason, .. }) => {
                tracing::info!(%reason, "relay: brokerage stream reconnecting");
                self.session_down();
            }
            BrokerageEvent::Connection(ConnectionEvent::Reconnected { .. }) => {
                let since = self.down_since;
                self.pending_gap
                    .get_or_insert((since, GapReason::Reconnect));
            }
            BrokerageEvent::Connection(ConnectionEvent::Terminated(error)) => {
                self.session = None;
                if matches!(
                    error,
                    StreamError::SessionReplaced { .. } | StreamError::AuthRejected { .. }
                ) {
                    self.step_down(&error.to_string()).await;
                    return Err(RelayError::Stream(error));
                }
                self.session_down();
            }
            BrokerageEvent::Connection(_) => {}
            // The session is subscribed: its gap marker goes first (if one is pending).
            BrokerageEvent::Subscribed { .. } => self.publish_gap().await?,
            BrokerageEvent::Lagged { .. } => {
                self.pending_gap = Some((self.down_since.or(Some(Utc::now())), GapReason::Lagged));
                self.publish_gap().await?;
            }
            BrokerageEvent::Order { meta, order } => {
                let data = serde_json::to_vec(&order).unwrap_or_default();
                self.publish_update(Topic::Orders, meta.clone(), data, |meta| {
                    BrokerageMessage::Order { meta, data: order }
                })
                .await?
            }
            BrokerageEvent::Position { meta, position } => {
                let data = serde_json::to_vec(&position).unwrap_or_default();
                self.publish_update(Topic::Positions, meta.clone(), data, |meta| {
                    BrokerageMessage::Position {
                        meta,
                        data: position,
                    }
                })
                .await?
            }
            BrokerageEvent::Balance { meta, balance } => {
                let data = serde_json::to_vec(&balance).unwrap_or_default();
                self.publish_update(Topic::Balances, meta.clone(), data, |meta| {
                    BrokerageMessage::Balance {
                        meta,
                        data: balance,
                    }
                })
                .await?
            }
            BrokerageEvent::Error(error) => {
                tracing::warn!(%error, "relay: the brokerage stream reported an error");
                // The server may be telling that it dropped updates ("N updates were
                // lost"): consumers re-read REST rather than trust the stream.
                if matches!(error, StreamError::Server(_)) {
                    self.pending_gap = Some((Some(Utc::now()), GapReason::Lagged));
                    self.publish_gap().await?;
                }
            }
            _ => {}
        }
        Ok(None)
    }

    fn session_down(&mut self) {
        if self.down_since.is_none() {
            self.down_since = Some(Utc::now());
        }
        if self.pending_gap.is_none() {
            self.pending_gap = Some((self.down_since, GapReason::Reconnect));
        }
    }

    fn headers(&self, id: String) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        headers.insert(FENCE_HEADER, self.lease.fence.to_string().as_str());
        headers.insert(HOLDER_HEADER, self.relay.instance.as_str());
        headers
    }

    async fn publish_gap(&mut self) -> Result<(), RelayError> {
        let Some((from, reason)) = self.pending_gap.take() else {
            return Ok(());
        };
        let marker = GapMarker {
            from,
            to: Utc::now(),
            reason,
            holder: self.relay.instance.clone(),
            fence: self.lease.fence,
        };
        let body = serde_json::to_vec(&marker).unwrap_or_default();
        let id = format!("gap-{}-{:032x}", self.lease.fence, fnv128(&[&body]));
        let subject = self.relay.config.gap_subject();
        self.publish(subject, self.headers(id), Bytes::from(body))
            .await?;
        self.down_since = None;
        let first = reason == GapReason::HolderChange;
        tracing::info!(?reason, from = ?marker.from, "relay: published a gap marker");
        self.relay.emit(RelayEvent::GapPublished(marker));
        if first {
            self.relay.emit(RelayEvent::Streaming {
                fence: self.lease.fence,
            });
        }
        Ok(())
    }

    async fn publish_update(
        &mut self,
        topic: Topic,
        meta: UpdateMeta,
        data: Vec<u8>,
        message: impl FnOnce(UpdateMeta) -> BrokerageMessage,
    ) -> Result<(), RelayError> {
        if self.pending_gap.is_some() {
            self.publish_gap().await?;
        }
        let config = &self.relay.config;
        let subject = config.update_subject(&topic, &meta.user_id, &meta.account_id);
        let timestamp = meta.timestamp.map(|t| t.to_rfc3339()).unwrap_or_default();
        // The id names the change, not the session: the same update published twice (a
        // retried publish, a second session sending it again) is dropped by JetStream.
        let id = format!(
            "{:032x}",
            fnv128(&[
                topic.as_str().as_bytes(),
                meta.user_id.as_bytes(),
                meta.account_id.as_bytes(),
                timestamp.as_bytes(),
                &data,
            ])
        );
        let body = serde_json::to_vec(&message(meta)).unwrap_or_default();
        self.publish(subject, self.headers(id), Bytes::from(body))
            .await?;
        Ok(())
    }

    /// Publishes until JetStream acknowledges, retrying with the same message id (so a
    /// publish that landed but whose acknowledgement was lost is not stored twice). Gives up
    /// when the lease may be lapsing: the step-down then closes the session.
    async fn publish(
        &mut self,
        subject: String,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(), RelayError> {
        loop {
            let attempt = async {
                self.js
                    .publish_with_headers(subject.clone(), headers.clone(), body.clone())
                    .await?
                    .await
            };
            let deadline = (Instant::now() + self.ttl / 4).min(self.step_down_at());
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(error)) => tracing::warn!(%error, "relay: publish failed; retrying"),
                Err(_) => tracing::warn!("relay: publish timed out; retrying"),
            }
            if Instant::now() >= self.step_down_at() {
                // Not an error of the relay: the run loop steps down at once.
                return Ok(());
            }
            sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn next_event(session: &mut Option<BrokerageStream>) -> Option<BrokerageEvent> {
    match session {
        Some(session) => session.next().await,
        None => std::future::pending().await,
    }
}
