//! The reconnecting connection core shared by both streams.
//!
//! One task owns the socket. The public handles send it commands over a channel; it sends
//! events to the consumer over a bounded channel. On every (re)connect it does: connect →
//! the welcome, or a grace period without one → authenticate → an explicit reply, the first
//! data, or a quiet grace period → replay the desired subscriptions (kept by the
//! [`Protocol`], which knows the messages of one stream) → `Connected` / `Reconnected` once
//! the replay is answered (or a grace period passed without a new answer).

use std::{
    future::{Future, poll_fn},
    sync::{Arc, OnceLock},
    task::Poll,
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use tokio::{
    net::TcpStream,
    sync::{mpsc, oneshot},
    time::{Instant, sleep_until, timeout, timeout_at},
};
use tokio_tungstenite::{
    Connector, MaybeTlsStream, WebSocketStream,
    tungstenite::{
        Message,
        protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode},
    },
};
use url::Url;

use super::{
    ConnectionEvent, StreamConfig,
    config::Overflow,
    error::{StreamError, decode_error},
    protocol::ServerMessage,
    queue::{self, Event as _, Gone},
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// What the socket gives: a frame, an error, or nothing more (closed).
type Frame = Result<Message, tokio_tungstenite::tungstenite::Error>;

/// A command from a handle to the connection task.
pub(crate) enum Command<C> {
    /// Close gracefully; the sender is told when done.
    Close(oneshot::Sender<()>),
    /// A command of the stream's protocol.
    Protocol(C),
}

/// How a connection attempt or a session ended.
pub(crate) enum End {
    /// Reconnect after the backoff delay.
    Retry(StreamError),
    /// Reconnect at once (token renewal or expiry); falls back to the backoff delay if it
    /// happens again right after.
    RetryNow(StreamError),
    /// Stop for good.
    Terminal(StreamError),
    /// Closed on request (or nobody is listening any more).
    Closed,
}

/// What a server message means for the connection, once authenticated.
pub(crate) enum Handled<E> {
    /// An event for the consumer: a data event may be dropped (and counted) when the
    /// consumer lags, any other (acknowledgements, errors) is one it must see (see
    /// [`queue::Event`]).
    Event(E),
    /// Consumed by the protocol (a reply matched to its request).
    Nothing,
    /// The session ends.
    End(End),
}

/// What a server message means during the handshake.
pub(crate) enum Step<M> {
    /// The welcome.
    Welcome,
    /// The authentication was accepted.
    Authenticated,
    /// A message of the session, delivered once it starts. `proof`: only an authenticated
    /// session gets it (data, a subscription reply), so the authentication succeeded.
    Session {
        /// The message.
        message: M,
        /// Whether it proves the authentication succeeded.
        proof: bool,
    },
    /// The attempt ends.
    End(End),
}

/// Events every stream has, wrapped into the stream's own event type.
pub(crate) enum CoreEvent {
    Connection(ConnectionEvent),
    Error(StreamError),
}

/// The messages of one stream: authentication, replay, commands, and what server messages
/// mean.
pub(crate) trait Protocol: Send + 'static {
    /// A server message.
    type Message: ServerMessage + Send;
    /// What the consumer receives.
    type Event: queue::Event;
    /// What the handles send.
    type Command: Send + 'static;

    /// The authenticate frame for a new connection (may fetch a token first).
    fn authenticate(&mut self) -> impl Future<Output = Result<String, End>> + Send;
    /// Interprets a message during the handshake; `authenticating`: the authenticate message
    /// was sent, so an error is the server's answer to it.
    fn handshake(&mut self, message: Self::Message, authenticating: bool) -> Step<Self::Message>;
    /// The frames that restore the session after authentication (a new connection: whatever
    /// was pending on the old one is forgotten).
    fn replay(&mut self, frames: &mut Vec<String>);
    /// Frames the protocol decided to send while interpreting messages (a refused frame
    /// split to find the item at fault).
    fn outgoing(&mut self, _frames: &mut Vec<String>) {}
    /// How many subscribe frames still wait for the server's answer.
    fn pending(&self) -> usize {
        0
    }
    /// Applies a command to the desired state; `frames` receives what to send now (sent only
    /// if connected: the replay covers the rest).
    fn command(&mut self, command: Self::Command, frames: &mut Vec<String>);
    /// Interprets a message of an authenticated session.
    fn message(&mut self, message: Self::Message) -> Handled<Self::Event>;
    /// What a close frame from the server means.
    fn closed_by_server(&mut self, code: Option<u16>, reason: &str) -> End;
    /// Wraps a core event.
    fn event(event: CoreEvent) -> Self::Event;
    /// When the session should be renewed (market data token), if ever.
    fn renew_at(&self) -> Option<Instant> {
        None
    }
    /// Prepares the renewal (fetches the new token). On success the core reconnects at once.
    fn renew(&mut self) -> impl Future<Output = Result<(), StreamError>> + Send {
        async { Ok(()) }
    }
}

/// At most this many frames are decoded before their events are handed over (only when frames
/// are already waiting: a lone frame is handed over at once); then commands and timers get a
/// turn even under a flood.
const BURST: u32 = 128;

/// The consumer side: the event queue, in the configured overflow mode.
struct Outbox<E> {
    tx: queue::Sender<E>,
    backpressure: bool,
}

impl<E: queue::Event> Outbox<E> {
    /// Stages an event; `commit` queues it (once per burst of frames).
    fn stage(&mut self, event: E) {
        self.tx.stage(event);
    }

    /// A must-see event, queued at once (after the staged ones).
    async fn control(&mut self, event: E) -> Result<(), Gone> {
        self.tx.stage(event);
        self.commit().await
    }

    /// Queues the staged events and wakes the consumer. In `Lag` mode data events that do not
    /// fit are dropped and counted; in `Backpressure` mode this waits for room.
    async fn commit(&mut self) -> Result<(), Gone> {
        if self.backpressure {
            self.tx.commit_wait().await
        } else {
            self.tx.commit()
        }
    }

    /// The last event.
    fn finish(&mut self, last: E) {
        self.tx.push_last(last);
    }
}

/// The handle side of a running connection: sends commands.
pub(crate) struct Control<C> {
    tx: mpsc::UnboundedSender<Command<C>>,
    closing: Arc<queue::Closing>,
}

impl<C> Clone for Control<C> {
    fn clone(&self) -> Self {
        Control {
            tx: self.tx.clone(),
            closing: self.closing.clone(),
        }
    }
}

impl<C> Control<C> {
    pub(crate) fn send(&self, command: C) -> Result<(), StreamError> {
        self.tx
            .send(Command::Protocol(command))
            .map_err(|_| StreamError::Closed)
    }

    /// Asks the task to close and waits until it has.
    pub(crate) async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Command::Close(ack)).is_ok() {
            // In back-pressure mode the task may be waiting for the consumer: release it.
            self.closing.close();
            let _ = done.await;
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Starts the connection task and waits for the first session (or the first failure, which
/// is returned and stops the task).
pub(crate) async fn start<P: Protocol>(
    protocol: P,
    url: Url,
    config: StreamConfig,
) -> Result<(Control<P::Command>, queue::Receiver<P::Event>), StreamError> {
    let (command_tx, commands) = mpsc::unbounded_channel();
    let (event_tx, events, closing) = queue::channel(config.buffer);
    let (ready_tx, ready) = oneshot::channel();
    let core = Core {
        protocol,
        url,
        out: Outbox {
            tx: event_tx,
            backpressure: config.overflow == Overflow::Backpressure,
        },
        config,
        commands,
        close_acks: Vec::new(),
        announce: None,
        unanswered: 0,
        settle_at: Instant::now(),
        tls: None,
    };
    tokio::spawn(core.run(ready_tx));
    match ready.await {
        Ok(Ok(())) => Ok((
            Control {
                tx: command_tx,
                closing,
            },
            events,
        )),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(StreamError::Closed),
    }
}

struct Core<P: Protocol> {
    protocol: P,
    url: Url,
    config: StreamConfig,
    commands: mpsc::UnboundedReceiver<Command<P::Command>>,
    out: Outbox<P::Event>,
    close_acks: Vec<oneshot::Sender<()>>,
    /// `Connected` / `Reconnected`, until the replay is answered.
    announce: Option<ConnectionEvent>,
    /// Subscribe frames unanswered at the last look, and when the wait for them ends.
    unanswered: usize,
    settle_at: Instant,
    /// The TLS configuration of `wss://` (built once, on first use).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl<P: Protocol> Core<P> {
    async fn run(mut self, ready: oneshot::Sender<Result<(), StreamError>>) {
        let mut ready = Some(ready);
        let mut attempt: u32 = 0;
        let mut down_since: Option<Instant> = None;
        loop {
            let end = match self.establish().await {
                Ok((socket, early)) => {
                    let up_at = Instant::now();
                    let event = match down_since.take() {
                        None => ConnectionEvent::Connected,
                        Some(since) => ConnectionEvent::Reconnected {
                            gap: up_at.duration_since(since),
                        },
                    };
                    // `connect()` returns once authenticated; the `Connected` event follows
                    // once the subscriptions are answered (the consumer is there to take the
                    // events that come first, even in back-pressure mode).
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                    self.announce = Some(event);
                    let end = self.session(socket, early).await;
                    self.announce = None;
                    if up_at.elapsed() >= self.config.backoff.reset_after {
                        attempt = 0;
                    }
                    down_since = Some(Instant::now());
                    end
                }
                Err(end) => end,
            };
            let (reason, now) = match end {
                End::Closed => return self.finish(ConnectionEvent::Closed).await,
                End::Terminal(error) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(error));
                        return;
                    }
                    return self.finish(ConnectionEvent::Terminated(error)).await;
                }
                End::Retry(error) => (error, false),
                End::RetryNow(error) => (error, true),
            };
            if let Some(ready) = ready.take() {
                // The first attempt fails fast: a wrong URL is an error of `connect()`.
                let _ = ready.send(Err(reason));
                return;
            }
            tracing::debug!(error = %reason, "stream connection ended");
            let immediate = now && attempt == 0;
            attempt += 1;
            if let Some(max) = self.config.max_attempts
                && attempt > max
            {
                let error = StreamError::GaveUp {
                    attempts: attempt - 1,
                    last: Box::new(reason),
                };
                return self.finish(ConnectionEvent::Terminated(error)).await;
            }
            let delay = if immediate {
                Duration::ZERO
            } else {
                self.config.backoff.delay(attempt)
            };
            let event = ConnectionEvent::Reconnecting {
                attempt,
                delay,
                reason,
            };
            if self.emit_connection(event).await.is_err() {
                return self.finish(ConnectionEvent::Closed).await;
            }
            if !self.wait(delay).await {
                return self.finish(ConnectionEvent::Closed).await;
            }
        }
    }

    async fn emit_connection(&mut self, event: ConnectionEvent) -> Result<(), Gone> {
        self.out
            .control(P::event(CoreEvent::Connection(event)))
            .await
    }

    /// The last event, then the close acknowledgements.
    async fn finish(mut self, event: ConnectionEvent) {
        self.commands.close();
        self.out.finish(P::event(CoreEvent::Connection(event)));
        for ack in self.close_acks.drain(..) {
            let _ = ack.send(());
        }
        // Commands that raced with the close get their acknowledgement too.
        while let Ok(command) = self.commands.try_recv() {
            if let Command::Close(ack) = command {
                let _ = ack.send(());
            }
        }
    }

    /// Sleeps before reconnecting, applying commands meanwhile. False if closed.
    async fn wait(&mut self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        let mut frames = Vec::new();
        loop {
            tokio::select! {
                () = sleep_until(deadline) => return true,
                command = self.commands.recv() => match command {
                    None => return false,
                    Some(Command::Close(ack)) => {
                        self.close_acks.push(ack);
                        return false;
                    }
                    Some(Command::Protocol(command)) => {
                        self.protocol.command(command, &mut frames);
                        frames.clear();
                    }
                },
            }
        }
    }

    /// Connects and authenticates, applying commands meanwhile (to the desired state: the
    /// replay that follows sends it). Returns the socket and the session's first messages.
    async fn establish(&mut self) -> Result<(Socket, Vec<P::Message>), End> {
        let mut deferred = Vec::new();
        let result = {
            if self.url.scheme() == "wss" && self.tls.is_none() {
                self.tls = Some(tls_config().map_err(End::Retry)?);
            }
            let connector = self.tls.clone().map(Connector::Rustls);
            let handshake = handshake(&mut self.protocol, &self.url, &self.config, connector);
            tokio::pin!(handshake);
            loop {
                tokio::select! {
                    result = &mut handshake => break result,
                    command = self.commands.recv() => match command {
                        None => break Err(End::Closed),
                        Some(Command::Close(ack)) => {
                            self.close_acks.push(ack);
                            break Err(End::Closed);
                        }
                        Some(Command::Protocol(command)) => deferred.push(command),
                    },
                }
            }
        };
        let mut frames = Vec::new();
        for command in deferred {
            self.protocol.command(command, &mut frames);
        }
        result
    }

    /// Stages the `Connected` / `Reconnected` event once every replayed subscription is
    /// answered, or at the deadline (`now`); moves the deadline on while answers keep coming.
    fn settle(&mut self, now: Option<Instant>) {
        if self.announce.is_none() {
            return;
        }
        let unanswered = self.protocol.pending();
        if unanswered == 0 || now.is_some_and(|now| now >= self.settle_at) {
            if let Some(event) = self.announce.take() {
                self.out.stage(P::event(CoreEvent::Connection(event)));
            }
        } else if unanswered != self.unanswered {
            // Answers came (or frames were split and sent again): the server is working.
            self.unanswered = unanswered;
            self.settle_at = Instant::now() + self.config.grace;
        }
    }

    /// Runs an authenticated session until it ends: first the messages that came with the
    /// authentication, then the replay, then the `Connected` / `Reconnected` event once the
    /// replay is answered.
    async fn session(&mut self, mut socket: Socket, early: Vec<P::Message>) -> End {
        let idle = self.config.idle_timeout;
        let ping_every = self.config.ping_interval;
        let write_timeout = self.config.handshake_timeout;
        for message in early {
            let handled = self.protocol.message(message);
            if let Some(end) = self.on_handled(handled) {
                return end;
            }
        }
        let mut frames = Vec::new();
        self.protocol.replay(&mut frames);
        if let Err(error) = send_all(&mut socket, &mut frames, Instant::now() + write_timeout).await
        {
            return End::Retry(error);
        }
        self.unanswered = self.protocol.pending();
        self.settle_at = Instant::now() + self.config.grace;
        self.settle(None);
        if self.out.commit().await.is_err() {
            return End::Closed;
        }
        let settle = sleep_until(self.settle_at);
        tokio::pin!(settle);
        let mut settle_at = self.settle_at;
        let mut last_rx = Instant::now();
        let mut next_ping = last_rx + ping_every;
        let timer = sleep_until(next_ping.min(last_rx + idle));
        tokio::pin!(timer);
        let mut renew_at = self.protocol.renew_at();
        let renew = sleep_until(renew_at.unwrap_or(last_rx));
        tokio::pin!(renew);
        loop {
            if self.settle_at != settle_at {
                settle_at = self.settle_at;
                settle.as_mut().reset(settle_at);
            }
            let wanted = self.protocol.renew_at();
            if wanted != renew_at {
                renew_at = wanted;
                if let Some(at) = renew_at {
                    renew.as_mut().reset(at);
                }
            }
            let mut housekeeping = false;
            tokio::select! {
                biased;
                frame = socket.next() => {
                    // Take every frame already read, then queue their events and wake the
                    // consumer once.
                    let (ended, burst) = self.burst(&mut socket, frame).await;
                    let committed = self.out.commit().await;
                    if let Some(end) = ended {
                        return end;
                    }
                    if committed.is_err() {
                        return End::Closed;
                    }
                    self.protocol.outgoing(&mut frames);
                    if let Err(error) =
                        send_all(&mut socket, &mut frames, Instant::now() + write_timeout).await
                    {
                        return End::Retry(error);
                    }
                    last_rx = Instant::now();
                    if burst >= BURST {
                        // Under a flood the other branches are not polled: give them a turn.
                        while let Ok(command) = self.commands.try_recv() {
                            if let Some(end) =
                                self.on_command(Some(command), &mut socket, &mut frames).await
                            {
                                return end;
                            }
                        }
                        housekeeping = last_rx >= timer.deadline();
                    }
                }
                command = self.commands.recv() => {
                    if let Some(end) = self.on_command(command, &mut socket, &mut frames).await {
                        return end;
                    }
                }
                () = &mut timer => housekeeping = true,
                () = &mut settle, if self.announce.is_some() => {
                    self.settle(Some(Instant::now()));
                    if self.out.commit().await.is_err() {
                        return End::Closed;
                    }
                }
                () = &mut renew, if renew_at.is_some() => {
                    match self.protocol.renew().await {
                        Ok(()) => return End::RetryNow(StreamError::TokenRenewal),
                        Err(error) => {
                            if self.out.control(P::event(CoreEvent::Error(error))).await.is_err() {
                                return End::Closed;
                            }
                        }
                    }
                }
            }
            if housekeeping {
                let now = Instant::now();
                if now >= last_rx + idle {
                    return End::Retry(StreamError::Idle(idle));
                }
                if now >= next_ping {
                    let ping = Message::Ping(Default::default());
                    if let Err(error) = send_one(&mut socket, ping, now + write_timeout).await {
                        return End::Retry(error);
                    }
                    next_ping = now + ping_every;
                }
                timer.as_mut().reset(next_ping.min(last_rx + idle));
            }
        }
    }

    async fn on_command(
        &mut self,
        command: Option<Command<P::Command>>,
        socket: &mut Socket,
        frames: &mut Vec<String>,
    ) -> Option<End> {
        match command {
            None => {
                close_socket(socket, self.config.handshake_timeout).await;
                Some(End::Closed)
            }
            Some(Command::Close(ack)) => {
                self.close_acks.push(ack);
                close_socket(socket, self.config.handshake_timeout).await;
                Some(End::Closed)
            }
            Some(Command::Protocol(command)) => {
                self.protocol.command(command, frames);
                let deadline = Instant::now() + self.config.handshake_timeout;
                if let Err(error) = send_all(socket, frames, deadline).await {
                    return Some(End::Retry(error));
                }
                // A refusal may have been answered from the desired state at once.
                self.settle(None);
                self.out.commit().await.err().map(|Gone| End::Closed)
            }
        }
    }

    /// Interprets `first` and every frame already read after it, up to [`BURST`] frames,
    /// staging their events. Returns how the session ended, if it did, and how many frames
    /// were read.
    ///
    /// One synchronous loop, with nothing awaited per frame, polls the socket with the
    /// task's own waker until it has nothing more (a no-op waker, as `now_or_never` would
    /// give, makes the socket swap its registered waker on every poll).
    async fn burst(&mut self, socket: &mut Socket, first: Option<Frame>) -> (Option<End>, u32) {
        let mut burst = 1;
        if let Some(end) = self.on_frame(first) {
            return (Some(end), burst);
        }
        poll_fn(|cx| {
            while burst < BURST {
                let Poll::Ready(frame) = socket.poll_next_unpin(cx) else {
                    break;
                };
                burst += 1;
                if let Some(end) = self.on_frame(frame) {
                    return Poll::Ready((Some(end), burst));
                }
            }
            Poll::Ready((None, burst))
        })
        .await
    }

    /// Interprets one frame, staging its event (synchronous: nothing per frame is awaited).
    fn on_frame(&mut self, frame: Option<Frame>) -> Option<End> {
        let handled = match frame {
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str()),
            Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.on_text(text),
                Err(error) => Handled::Event(P::event(CoreEvent::Error(StreamError::Decode {
                    error: format!("binary frame is not UTF-8: {error}"),
                    excerpt: String::new(),
                }))),
            },
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = close_parts(frame.as_ref());
                Handled::End(self.protocol.closed_by_server(code, reason))
            }
            Some(Ok(_)) => Handled::Nothing,
            Some(Err(error)) => {
                Handled::End(End::Retry(StreamError::Disconnected(error.to_string())))
            }
            None => Handled::End(End::Retry(StreamError::Disconnected(
                "the server closed the connection".to_string(),
            ))),
        };
        self.on_handled(handled)
    }

    #[inline]
    fn on_handled(&mut self, handled: Handled<P::Event>) -> Option<End> {
        match handled {
            Handled::Event(event) => {
                let data = event.is_data();
                self.out.stage(event);
                if !data {
                    self.settle(None);
                }
            }
            Handled::Nothing => self.settle(None),
            Handled::End(end) => return Some(end),
        }
        None
    }

    #[inline]
    fn on_text(&mut self, text: &str) -> Handled<P::Event> {
        match P::Message::decode(text) {
            Ok(message) => self.protocol.message(message),
            Err(error) => Handled::Event(P::event(CoreEvent::Error(decode_error(text, &error)))),
        }
    }
}

fn close_parts(frame: Option<&CloseFrame>) -> (Option<u16>, &str) {
    match frame {
        Some(frame) => (Some(u16::from(frame.code)), frame.reason.as_str()),
        None => (None, ""),
    }
}

/// Connect → the welcome (or a grace period without one) → authenticate → an explicit reply,
/// the first message of a session, or a quiet grace period. Returns the socket and the
/// messages of the session received meanwhile.
///
/// Nothing here depends on a message Connect Trade does not document: the brokerage stream
/// documents its welcome, the market data stream does not; neither documents a reply to
/// `authenticate`. Only a refusal the server states (an `error` message, a close code) ends
/// the attempt.
async fn handshake<P: Protocol>(
    protocol: &mut P,
    url: &Url,
    config: &StreamConfig,
    connector: Option<Connector>,
) -> Result<(Socket, Vec<P::Message>), End> {
    let authenticate = protocol.authenticate().await?;
    warn_if_frames_are_logged();
    let deadline = Instant::now() + config.handshake_timeout;
    let limits = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_frame_size));
    let (mut socket, _) = timeout_at(
        deadline,
        tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            Some(limits),
            true,
            connector,
        ),
    )
    .await
    .map_err(|_| {
        End::Retry(StreamError::HandshakeTimeout(format!(
            "connecting to {url}"
        )))
    })?
    .map_err(|error| End::Retry(StreamError::Connect(format!("{url}: {error}"))))?;
    let mut early = Vec::new();
    let welcome_by = (Instant::now() + config.grace).min(deadline);
    await_step(&mut socket, protocol, welcome_by, false, &mut early).await?;
    send_one(&mut socket, Message::text(authenticate), deadline)
        .await
        .map_err(End::Retry)?;
    let answer_by = (Instant::now() + config.grace).min(deadline);
    await_step(&mut socket, protocol, answer_by, true, &mut early).await?;
    Ok((socket, early))
}

/// Waits for the welcome (`authenticating` false) or for the answer to `authenticate`
/// (true) until `until`; either way, reaching `until` quietly is not an error.
async fn await_step<P: Protocol>(
    socket: &mut Socket,
    protocol: &mut P,
    until: Instant,
    authenticating: bool,
    early: &mut Vec<P::Message>,
) -> Result<(), End> {
    let what = if authenticating {
        "waiting for the answer to authenticate"
    } else {
        "waiting for the welcome message"
    };
    loop {
        let Ok(frame) = timeout_at(until, socket.next()).await else {
            if authenticating {
                tracing::debug!("no answer to authenticate within the grace period: authenticated");
            } else {
                tracing::debug!("no welcome within the grace period: authenticating anyway");
            }
            return Ok(());
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = close_parts(frame.as_ref());
                if authenticating && code == Some(u16::from(CloseCode::Policy)) {
                    return Err(End::Terminal(StreamError::AuthRejected {
                        code: super::protocol::ErrorCode::from(
                            code.unwrap_or(0).to_string().as_str(),
                        ),
                        message: reason.to_string(),
                    }));
                }
                return Err(protocol.closed_by_server(code, reason));
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                return Err(End::Retry(StreamError::Disconnected(format!(
                    "{error} ({what})"
                ))));
            }
            None => {
                return Err(End::Retry(StreamError::Disconnected(format!(
                    "the server closed the connection while {what}"
                ))));
            }
        };
        let message = match P::Message::decode(text.as_str()) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(error = %decode_error(text.as_str(), &error), "ignored during handshake");
                continue;
            }
        };
        match protocol.handshake(message, authenticating) {
            Step::Welcome if !authenticating => return Ok(()),
            Step::Authenticated if authenticating => return Ok(()),
            Step::Session { message, proof } => {
                early.push(message);
                if proof && authenticating {
                    return Ok(());
                }
            }
            Step::End(end) => return Err(end),
            Step::Welcome | Step::Authenticated => {}
        }
    }
}

/// The TLS configuration of `wss://`: the same trust as the REST client's (reqwest with
/// rustls verifies with `rustls-platform-verifier`, i.e. the operating system's trust store
/// and policy), with the process's default crypto provider if one is installed, otherwise
/// aws-lc-rs (reqwest's choice too).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, StreamError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = rustls::crypto::CryptoProvider::get_default()
                .cloned()
                .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
            let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|error| format!("the platform's certificate verifier: {error}"))?;
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|error| format!("TLS versions: {error}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(|error| StreamError::Connect(format!("TLS could not be set up: {error}")))
}

/// The filter that keeps the WebSocket library's frame dumps out of the logs.
pub(crate) const QUIET_FILTER: &str = "tungstenite=debug";

/// At TRACE, tungstenite logs every frame it sends and receives, the authenticate message
/// (client secret, market data token) included. Warn once if that level is on.
fn warn_if_frames_are_logged() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let logged = log::log_enabled!(target: "tungstenite::protocol", log::Level::Trace)
        || log::log_enabled!(target: "tokio_tungstenite", log::Level::Trace);
    if logged {
        WARNED.call_once(|| {
            log::warn!(
                target: "connect_trade::stream",
                "TRACE logging is enabled for tungstenite, which logs every WebSocket frame: \
                 the stream's authenticate message, with the client secret or the market data \
                 token, will be in your logs. Set the filter `{QUIET_FILTER}` (e.g. \
                 RUST_LOG=trace,{QUIET_FILTER})"
            );
        });
    }
}

async fn send_one(
    socket: &mut Socket,
    message: Message,
    deadline: Instant,
) -> Result<(), StreamError> {
    match timeout_at(deadline, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(StreamError::Disconnected(format!(
            "sending failed: {error}"
        ))),
        Err(_) => Err(StreamError::Disconnected(
            "sending timed out: the server is not reading".to_string(),
        )),
    }
}

/// Sends (and clears) frames, flushing once.
async fn send_all(
    socket: &mut Socket,
    frames: &mut Vec<String>,
    deadline: Instant,
) -> Result<(), StreamError> {
    if frames.is_empty() {
        return Ok(());
    }
    let work = async {
        for frame in frames.drain(..) {
            socket.feed(Message::text(frame)).await?;
        }
        socket.flush().await
    };
    match timeout_at(deadline, work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(StreamError::Disconnected(format!(
            "sending failed: {error}"
        ))),
        Err(_) => Err(StreamError::Disconnected(
            "sending timed out: the server is not reading".to_string(),
        )),
    }
}

/// Sends a normal close and waits (bounded) for the server's close.
async fn close_socket(socket: &mut Socket, limit: Duration) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "client closing".into(),
    };
    let _ = timeout(limit, async {
        if socket.close(Some(frame)).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = socket.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// What a server's close frame means, for codes both streams share.
pub(crate) fn default_close(code: Option<u16>, reason: &str) -> End {
    use super::protocol::{CLOSE_AUTH_FAILED, CLOSE_SESSION_REPLACED, ErrorCode};
    let message = reason.to_string();
    match code {
        Some(CLOSE_AUTH_FAILED) => End::Terminal(StreamError::AuthRejected {
            code: ErrorCode::AuthFailed,
            message,
        }),
        Some(CLOSE_SESSION_REPLACED) => End::Terminal(StreamError::SessionReplaced { message }),
        Some(code) => End::Retry(StreamError::Disconnected(format!(
            "the server closed the connection (code {code}{}{reason})",
            if reason.is_empty() { "" } else { ": " }
        ))),
        None => End::Retry(StreamError::Disconnected(
            "the server closed the connection".to_string(),
        )),
    }
}
