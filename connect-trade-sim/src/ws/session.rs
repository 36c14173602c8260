//! The session core both WebSocket servers run: the connection with the fault switches
//! applied to what it sends, the welcome, the authentication deadline, parsing requests,
//! control messages (faults, replaced sessions, revoked tokens) and closing.
//!
//! Each stream plugs in as a [`Protocol`]. Every frame leaves through [`Conn::send`]; the
//! welcome through [`send_welcome`], `authenticated` replies through [`send_authenticated`],
//! errors through [`send_error`] (the places a wire variant of the streams changes).

use std::{future::Future, sync::Arc, sync::atomic::Ordering};

use futures::{SinkExt, StreamExt};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::{
    net::TcpStream,
    sync::{
        broadcast::{self, error::RecvError},
        watch,
    },
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

use crate::{
    Shared,
    state::Control,
    wire::{Wire, WireSet},
};
use connect_trade::stream::protocol::{CLOSE_AUTH_TIMEOUT, ErrorCode, StreamErrorMessage};

/// Why a session ended; every variant just ends it.
#[derive(Debug)]
pub(crate) struct End;

/// Go on (`Ok`) or end the session (`Err`).
pub(crate) type Flow = Result<(), End>;

/// One stream's side of a session, run by [`run`].
pub(crate) trait Protocol: Send {
    /// The stream's name, in the welcome ("brokerage stream").
    const NAME: &'static str;
    /// What clients send.
    type Request: DeserializeOwned + Send;
    /// What the server sends.
    type Message: Serialize + Send + Sync;
    /// What an authenticated session forwards (account events, clock ticks).
    type Feed: Clone + Send + 'static;

    /// The welcome message carrying `text`.
    fn welcome(text: String) -> Self::Message;
    /// An error message of this stream.
    fn wrap_error(error: StreamErrorMessage) -> Self::Message;
    /// Whether the request is an authentication (allowed before authenticating).
    fn is_authenticate(request: &Self::Request) -> bool;
    /// Whether the session authenticated.
    fn authenticated(&self) -> bool;
    /// The feed this session forwards once authenticated.
    fn feed(&mut self) -> &mut broadcast::Receiver<Self::Feed>;

    /// A parsed request (an authentication, or any request once authenticated).
    fn request(
        &mut self,
        conn: &mut Conn,
        request: Self::Request,
    ) -> impl Future<Output = Flow> + Send;
    /// One item of the feed; `Err(missed)` when the session lagged behind by `missed` items.
    fn forward(
        &mut self,
        conn: &mut Conn,
        item: Result<Self::Feed, u64>,
    ) -> impl Future<Output = Flow> + Send;
    /// A control message not handled by the core (a replaced session, a revoked token).
    fn control(&mut self, conn: &mut Conn, control: Control) -> impl Future<Output = Flow> + Send;
}

/// One connection, with the fault switches applied to what it sends.
pub(crate) struct Conn {
    pub ws: WebSocketStream<TcpStream>,
    pub shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    silent: watch::Receiver<bool>,
    sent: u64,
    /// This session's number (unique per simulator).
    pub id: u64,
}

impl Conn {
    pub(crate) fn new(
        ws: WebSocketStream<TcpStream>,
        shared: Arc<Shared>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let silent = shared.faults.silent();
        let id = shared.next_session.fetch_add(1, Ordering::Relaxed);
        Conn {
            ws,
            shared,
            shutdown,
            silent,
            sent: 0,
            id,
        }
    }

    fn is_silent(&self) -> bool {
        *self.silent.borrow()
    }

    /// Sends one text frame, unless a fault says otherwise.
    pub(crate) async fn send_text(&mut self, text: String) -> Flow {
        if self.is_silent() {
            return Ok(());
        }
        let limit = self.shared.faults.drop_every();
        if limit > 0 && self.sent >= limit {
            // Fault: the connection dies without a close frame.
            return Err(End);
        }
        self.sent += 1;
        self.ws.send(Message::text(text)).await.map_err(|_| End)
    }

    /// Sends one message as JSON: every frame of both streams leaves here, written the way
    /// the wire variants switched on say.
    pub(crate) async fn send<T: Serialize>(&mut self, message: &T) -> Flow {
        let wire = self.shared.config.wire;
        let text = if STREAM_SHAPES.iter().any(|w| wire.contains(*w)) {
            let mut value = serde_json::to_value(message).map_err(|_| End)?;
            reshape(wire, &mut value);
            value.to_string()
        } else {
            serde_json::to_string(message).map_err(|_| End)?
        };
        self.send_text(text).await
    }

    /// Closes with `code` and `reason`, and ends the session.
    pub(crate) async fn close(&mut self, code: u16, reason: &str) -> Flow {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        let _ = self.ws.close(Some(frame)).await;
        // Let the client answer the close, briefly.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        Err(End)
    }

    /// Handles the controls every session obeys; returns the ones left to the protocol.
    async fn control(
        &mut self,
        control: Result<Control, RecvError>,
    ) -> Result<Option<Control>, End> {
        match control {
            Ok(Control::DropAll) => Err(End),
            Ok(Control::Malformed) => {
                self.send_text("{\"type\": \"quote\", \"symbol\": ".to_string())
                    .await?;
                Ok(None)
            }
            Ok(other) => Ok(Some(other)),
            Err(RecvError::Lagged(_)) => Ok(None),
            Err(RecvError::Closed) => Err(End),
        }
    }
}

/// The wire variants that change the shape of the messages themselves ([`reshape`]).
const STREAM_SHAPES: [Wire; 4] = [
    Wire::StringSequence,
    Wire::ErrorMessageOnly,
    Wire::ExtraField,
    Wire::MissingField,
];

/// The field [`Wire::ExtraField`] adds to every message (and to every update's `data`).
const EXTRA_FIELD: &str = "sim_extra";

/// Message types whose top-level `timestamp` [`Wire::MissingField`] leaves out.
const TIMESTAMPED: [&str; 6] = ["order", "position", "balance", "quote", "trade", "depth"];

/// Rewrites one outgoing message as the switched-on wire variants of the streams write it.
fn reshape(wire: WireSet, value: &mut Value) {
    let Value::Object(message) = value else {
        return;
    };
    let kind = message
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if wire.contains(Wire::StringSequence)
        && let Some(Value::Number(n)) = message.get("sequence")
    {
        let text = n.to_string();
        message.insert("sequence".into(), Value::String(text));
    }
    if wire.contains(Wire::ErrorMessageOnly) && kind == "error" {
        message.retain(|key, _| key == "type" || key == "message");
    }
    if wire.contains(Wire::MissingField) {
        match kind.as_str() {
            // The payload carries both; the documentation's examples put them at the top too.
            "order" | "position" | "balance" => {
                message.remove("user_id");
                message.remove("account_id");
            }
            "welcome" => {
                message.remove("message");
            }
            _ => {}
        }
        if TIMESTAMPED.contains(&kind.as_str()) {
            message.remove("timestamp");
        }
    }
    if wire.contains(Wire::ExtraField) {
        let extra = json!({"note": "a field this SDK does not know", "level": 1});
        if let Some(Value::Object(data)) = message.get_mut("data") {
            data.insert(EXTRA_FIELD.into(), extra.clone());
        }
        message.insert(EXTRA_FIELD.into(), extra);
    }
}

/// The welcome, sent as the connection opens (not at all under [`Wire::NoWelcome`]).
pub(crate) async fn send_welcome<P: Protocol>(conn: &mut Conn) -> Flow {
    if conn.shared.config.wire.contains(Wire::NoWelcome) {
        return Ok(());
    }
    let text = format!(
        "Connect Trade simulator: {}. Authenticate within {} s.",
        P::NAME,
        conn.shared.config.auth_timeout.as_secs()
    );
    conn.send(&P::welcome(text)).await
}

/// The reply to a successful authentication (none under [`Wire::NoAuthenticated`]).
pub(crate) async fn send_authenticated<M: Serialize>(conn: &mut Conn, message: &M) -> Flow {
    if conn.shared.config.wire.contains(Wire::NoAuthenticated) {
        return Ok(());
    }
    conn.send(message).await
}

/// An error frame: every error of both streams leaves here.
pub(crate) async fn send_error<P: Protocol>(
    conn: &mut Conn,
    code: ErrorCode,
    message: impl Into<String>,
    request_id: Option<String>,
) -> Flow {
    let error = StreamErrorMessage {
        code,
        message: message.into(),
        request_id,
    };
    conn.send(&P::wrap_error(error)).await
}

/// What a received frame means.
enum Incoming {
    Text(String),
    Other,
    /// The client closed: answer its close frame.
    Closing,
    Gone,
}

async fn receive(ws: &mut WebSocketStream<TcpStream>) -> Incoming {
    match ws.next().await {
        Some(Ok(Message::Text(text))) => Incoming::Text(text.to_string()),
        Some(Ok(Message::Close(_))) => Incoming::Closing,
        Some(Err(_)) | None => Incoming::Gone,
        Some(Ok(Message::Binary(_))) => Incoming::Text(String::new()),
        Some(Ok(_)) => Incoming::Other,
    }
}

/// What woke a session up.
enum Step<F> {
    Deadline,
    Incoming(Incoming),
    Feed(Result<F, RecvError>),
    Control(Result<Control, RecvError>),
    Nothing,
    Shutdown,
}

/// Runs one session to its end: welcome, authentication within the deadline, then requests,
/// the feed and control messages until the client leaves, a fault or a close ends it.
pub(crate) async fn run<P: Protocol>(conn: &mut Conn, mut protocol: P) -> Flow {
    let mut control = conn.shared.control.subscribe();
    send_welcome::<P>(conn).await?;
    let deadline = tokio::time::sleep(conn.shared.config.auth_timeout);
    tokio::pin!(deadline);
    loop {
        let silent = conn.is_silent();
        let authenticated = protocol.authenticated();
        let step = tokio::select! {
            _ = &mut deadline, if !authenticated => Step::Deadline,
            incoming = receive(&mut conn.ws), if !silent => Step::Incoming(incoming),
            item = protocol.feed().recv(), if authenticated && !silent => Step::Feed(item),
            received = control.recv() => Step::Control(received),
            _ = conn.silent.changed() => Step::Nothing,
            _ = conn.shutdown.wait_for(|s| *s) => Step::Shutdown,
        };
        match step {
            Step::Deadline => {
                send_error::<P>(
                    conn,
                    ErrorCode::AuthTimeout,
                    "no authenticate message within the time allowed",
                    None,
                )
                .await?;
                return conn
                    .close(CLOSE_AUTH_TIMEOUT, "authentication timeout")
                    .await;
            }
            Step::Incoming(Incoming::Gone) => return Err(End),
            Step::Incoming(Incoming::Closing) => {
                let _ = conn.ws.flush().await;
                return Err(End);
            }
            Step::Incoming(Incoming::Other) | Step::Nothing => {}
            Step::Incoming(Incoming::Text(text)) => {
                match serde_json::from_str::<P::Request>(&text) {
                    Err(e) => {
                        send_error::<P>(
                            conn,
                            ErrorCode::InvalidRequest,
                            format!("not a request of this stream: {e}"),
                            None,
                        )
                        .await?
                    }
                    Ok(request) if !authenticated && !P::is_authenticate(&request) => {
                        send_error::<P>(conn, ErrorCode::InvalidRequest, "authenticate first", None)
                            .await?
                    }
                    Ok(request) => protocol.request(conn, request).await?,
                }
            }
            Step::Feed(Ok(item)) => protocol.forward(conn, Ok(item)).await?,
            Step::Feed(Err(RecvError::Lagged(missed))) => {
                protocol.forward(conn, Err(missed)).await?
            }
            Step::Feed(Err(RecvError::Closed)) => return Err(End),
            Step::Control(received) => {
                if let Some(other) = conn.control(received).await? {
                    protocol.control(conn, other).await?;
                }
            }
            Step::Shutdown => return conn.close(1001, "simulator shutting down").await,
        }
    }
}
