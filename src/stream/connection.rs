//! The reconnecting connection core shared by both streams.
//!
//! One task owns the socket. The public handles send it commands over a channel; it sends
//! events to the consumer over a bounded channel. On every (re)connect it does: connect →
//! wait for the welcome → authenticate → replay the desired subscriptions (kept by the
//! [`Protocol`], which knows the messages of one stream).

use std::{future::Future, time::Duration};

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::{
    net::TcpStream,
    sync::{mpsc, oneshot},
    time::{Instant, sleep_until, timeout, timeout_at},
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};
use url::Url;

use super::{
    ConnectionEvent, StreamConfig,
    config::Overflow,
    error::{StreamError, decode_error},
    protocol::ServerMessage,
    queue::{self, Gone},
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

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
    /// A data event: may be dropped (and counted) when the consumer lags.
    Data(E),
    /// An event the consumer must see (acknowledgements, errors).
    Control(E),
    /// Consumed by the protocol (a reply matched to its request).
    Nothing,
    /// The session ends.
    End(End),
}

/// What a server message means during the handshake.
pub(crate) enum Step {
    /// The welcome.
    Welcome,
    /// The authentication was accepted.
    Authenticated,
    /// Not part of the handshake: ignored.
    Ignore,
    /// The attempt ends.
    End(End),
}

/// Events every stream has, wrapped into the stream's own event type.
pub(crate) enum CoreEvent {
    Connection(ConnectionEvent),
    Lagged(u64),
    Error(StreamError),
}

/// The messages of one stream: authentication, replay, commands, and what server messages
/// mean.
pub(crate) trait Protocol: Send + 'static {
    /// A server message.
    type Message: ServerMessage + Send;
    /// What the consumer receives.
    type Event: Send + 'static;
    /// What the handles send.
    type Command: Send + 'static;

    /// The authenticate frame for a new connection (may fetch a token first).
    fn authenticate(&mut self) -> impl Future<Output = Result<String, End>> + Send;
    /// Interprets a message during the handshake.
    fn handshake(&mut self, message: Self::Message) -> Step;
    /// The frames that restore the session after authentication.
    fn replay(&mut self, frames: &mut Vec<String>);
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

/// After this many frames in a row, commands and timers get a turn even under a flood.
const BURST: u32 = 64;

/// The consumer side: the event queue, in the configured overflow mode.
struct Outbox<E> {
    tx: queue::Sender<E>,
    backpressure: bool,
}

impl<E> Outbox<E> {
    /// A data event: dropped and counted if the consumer lags (in `Lag` mode). The consumer
    /// is woken by `commit`, once per burst of frames.
    async fn data(&mut self, event: E) -> Result<(), Gone> {
        if self.backpressure {
            self.tx.push_wait(event).await
        } else {
            self.tx.push_data(event)
        }
    }

    /// A must-see event, delivered at once.
    async fn control(&mut self, event: E) -> Result<(), Gone> {
        if self.backpressure {
            self.tx.push_wait(event).await?;
            self.tx.commit();
            Ok(())
        } else {
            self.tx.push_control(event)
        }
    }

    fn commit(&mut self) {
        self.tx.commit();
    }

    /// The last event.
    fn finish(&mut self, last: E) {
        self.tx.push_last(last);
    }
}

/// The handle side of a running connection: sends commands.
pub(crate) struct Control<C> {
    tx: mpsc::UnboundedSender<Command<C>>,
}

impl<C> Clone for Control<C> {
    fn clone(&self) -> Self {
        Control {
            tx: self.tx.clone(),
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
    let (event_tx, events) = queue::channel(config.buffer, |dropped| {
        P::event(CoreEvent::Lagged(dropped))
    });
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
    };
    tokio::spawn(core.run(ready_tx));
    match ready.await {
        Ok(Ok(())) => Ok((Control { tx: command_tx }, events)),
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
}

impl<P: Protocol> Core<P> {
    async fn run(mut self, ready: oneshot::Sender<Result<(), StreamError>>) {
        let mut ready = Some(ready);
        let mut attempt: u32 = 0;
        let mut down_since: Option<Instant> = None;
        loop {
            let end = match self.establish().await {
                Ok(socket) => {
                    let up_at = Instant::now();
                    let event = match down_since.take() {
                        None => ConnectionEvent::Connected,
                        Some(since) => ConnectionEvent::Reconnected {
                            gap: up_at.duration_since(since),
                        },
                    };
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                    let end = match self.emit_connection(event).await {
                        Ok(()) => self.session(socket).await,
                        Err(Gone) => End::Closed,
                    };
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

    /// Connects, authenticates and replays, applying commands meanwhile.
    async fn establish(&mut self) -> Result<Socket, End> {
        let mut deferred = Vec::new();
        let result = {
            let handshake = handshake(&mut self.protocol, &self.url, &self.config);
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
        let mut socket = result?;
        if !frames.is_empty() {
            let deadline = Instant::now() + self.config.handshake_timeout;
            send_all(&mut socket, &mut frames, deadline)
                .await
                .map_err(End::Retry)?;
        }
        Ok(socket)
    }

    /// Runs an authenticated session until it ends.
    async fn session(&mut self, mut socket: Socket) -> End {
        let idle = self.config.idle_timeout;
        let ping_every = self.config.ping_interval;
        let write_timeout = self.config.handshake_timeout;
        let mut last_rx = Instant::now();
        let mut next_ping = last_rx + ping_every;
        let timer = sleep_until(next_ping.min(last_rx + idle));
        tokio::pin!(timer);
        let mut frames = Vec::new();
        loop {
            let renew_at = self.protocol.renew_at();
            let mut housekeeping = false;
            tokio::select! {
                biased;
                frame = socket.next() => {
                    if let Some(end) = self.on_frame(frame).await {
                        self.out.commit();
                        return end;
                    }
                    // Take every frame already read, then wake the consumer once.
                    let mut burst = 1;
                    while burst < BURST {
                        let Some(frame) = socket.next().now_or_never() else {
                            break;
                        };
                        if let Some(end) = self.on_frame(frame).await {
                            self.out.commit();
                            return end;
                        }
                        burst += 1;
                    }
                    self.out.commit();
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
                () = sleep_until(renew_at.unwrap_or(last_rx)), if renew_at.is_some() => {
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
                send_all(socket, frames, deadline)
                    .await
                    .err()
                    .map(End::Retry)
            }
        }
    }

    async fn on_frame(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Option<End> {
        let handled = match frame {
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str()),
            Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.on_text(text),
                Err(error) => Handled::Control(P::event(CoreEvent::Error(StreamError::Decode {
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
        let delivered = match handled {
            Handled::Data(event) => self.out.data(event).await,
            Handled::Control(event) => self.out.control(event).await,
            Handled::Nothing => Ok(()),
            Handled::End(end) => return Some(end),
        };
        delivered.err().map(|Gone| End::Closed)
    }

    fn on_text(&mut self, text: &str) -> Handled<P::Event> {
        match P::Message::decode(text) {
            Ok(message) => self.protocol.message(message),
            Err(error) => Handled::Control(P::event(CoreEvent::Error(decode_error(text, &error)))),
        }
    }
}

fn close_parts(frame: Option<&CloseFrame>) -> (Option<u16>, &str) {
    match frame {
        Some(frame) => (Some(u16::from(frame.code)), frame.reason.as_str()),
        None => (None, ""),
    }
}

/// Connect → welcome → authenticate → authenticated → replay, within the handshake timeout.
async fn handshake<P: Protocol>(
    protocol: &mut P,
    url: &Url,
    config: &StreamConfig,
) -> Result<Socket, End> {
    let authenticate = protocol.authenticate().await?;
    let deadline = Instant::now() + config.handshake_timeout;
    let (mut socket, _) = timeout_at(
        deadline,
        tokio_tungstenite::connect_async_with_config(url.as_str(), None, true),
    )
    .await
    .map_err(|_| {
        End::Retry(StreamError::HandshakeTimeout(format!(
            "connecting to {url}"
        )))
    })?
    .map_err(|error| End::Retry(StreamError::Connect(format!("{url}: {error}"))))?;
    await_step(&mut socket, protocol, deadline, Expect::Welcome).await?;
    send_one(&mut socket, Message::text(authenticate), deadline)
        .await
        .map_err(End::Retry)?;
    await_step(&mut socket, protocol, deadline, Expect::Authenticated).await?;
    let mut frames = Vec::new();
    protocol.replay(&mut frames);
    send_all(&mut socket, &mut frames, deadline)
        .await
        .map_err(End::Retry)?;
    Ok(socket)
}

#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Welcome,
    Authenticated,
}

async fn await_step<P: Protocol>(
    socket: &mut Socket,
    protocol: &mut P,
    deadline: Instant,
    expect: Expect,
) -> Result<(), End> {
    let what = match expect {
        Expect::Welcome => "waiting for the welcome message",
        Expect::Authenticated => "waiting for the reply to authenticate",
    };
    loop {
        let frame = timeout_at(deadline, socket.next())
            .await
            .map_err(|_| End::Retry(StreamError::HandshakeTimeout(what.to_string())))?;
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = close_parts(frame.as_ref());
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
        match (protocol.handshake(message), expect) {
            (Step::Welcome, Expect::Welcome) | (Step::Authenticated, Expect::Authenticated) => {
                return Ok(());
            }
            (Step::End(end), _) => return Err(end),
            _ => {}
        }
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
