//! The two opt-in stream probes: read a few frames, check them against the JSON Schemas of
//! [`crate::stream::protocol`], and check the flow (welcome → authenticate → authenticated →
//! subscribe → subscribed).
//!
//! The probe walks the flow as the SDK's streams do: it authenticates after the welcome or,
//! without one, after a short grace ([`DoctorOptions::grace`]), and subscribes after the reply
//! to `authenticate` or, without one, after the same grace. A server that sends neither
//! costs two graces, not two timeouts; the missing messages are still reported.

use std::{borrow::Cow, time::Duration};

use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{
    DoctorOptions, Session,
    capture::{Frame, StreamSession},
    check_frames,
};
use crate::stream::protocol::{
    BrokerageMessage, BrokerageRequest, MarketDataMessage, MarketDataRequest, Subscription, Topic,
    message_type,
};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads the next text frame before `deadline`; `None` at the deadline or the end.
async fn next_text(socket: &mut Socket, deadline: Instant) -> Option<String> {
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??;
        match message {
            Ok(Message::Text(text)) => return Some(text.as_str().to_string()),
            Ok(Message::Binary(bytes)) => {
                return Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

fn encode<T: serde::Serialize>(message: &T) -> String {
    serde_json::to_string(message).unwrap_or_default()
}

/// How a wait for one message of the flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// The message came.
    Came,
    /// An `error` came instead.
    Error,
    /// Neither before the deadline (or the connection ended).
    Quiet,
}

/// One probe's socket and everything it received and sent, in order.
struct Probe {
    socket: Socket,
    frames: Vec<Frame>,
    /// The `type` of every frame received.
    types: Vec<String>,
}

impl Probe {
    fn saw(&self, kind: &str) -> bool {
        self.types.iter().any(|t| t == kind)
    }

    fn receive(&mut self, text: String) -> Option<String> {
        let kind = message_type(&text).map(Cow::into_owned);
        if let Some(kind) = &kind {
            self.types.push(kind.clone());
        }
        self.frames.push(Frame {
            direction: "received",
            text,
        });
        kind
    }

    /// Waits until a frame of type `wanted` comes (or an `error`), recording every frame.
    async fn wait_for(&mut self, wanted: &str, wait: Duration) -> Wait {
        let deadline = Instant::now() + wait;
        while let Some(text) = next_text(&mut self.socket, deadline).await {
            match self.receive(text).as_deref() {
                Some(kind) if kind == wanted => return Wait::Came,
                Some("error") => return Wait::Error,
                _ => {}
            }
        }
        Wait::Quiet
    }

    async fn send(&mut self, text: String) {
        self.frames.push(Frame {
            direction: "sent",
            text: text.clone(),
        });
        let _ = self.socket.send(Message::text(text)).await;
    }

    /// Reads until `messages` frames came or `duration` passed.
    async fn read(&mut self, messages: u32, duration: Duration) {
        let deadline = Instant::now() + duration;
        let mut read = 0;
        while read < messages {
            let Some(text) = next_text(&mut self.socket, deadline).await else {
                break;
            };
            self.receive(text);
            read += 1;
        }
    }
}

async fn connect(url: &str) -> Result<Socket, String> {
    let url = crate::client::parse_base_url(url).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(format!("{url} is not a ws:// or wss:// URL"));
    }
    tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::connect_async(url.as_str()),
    )
    .await
    .map_err(|_| "connecting timed out".to_string())?
    .map(|(socket, _)| socket)
    .map_err(|e| e.to_string())
}

fn millis(duration: Duration) -> String {
    format!("{} ms", duration.as_millis())
}

/// Connects, walks the flow (welcome or a grace → authenticate → its reply or a grace →
/// subscribe → `subscribed`), reads, and checks every frame received against `M`'s schema
/// and the flow.
async fn probe<M: DeserializeOwned + schemars::JsonSchema>(
    session: &mut Session,
    options: &DoctorOptions,
    name: &str,
    url: &str,
    authenticate: String,
    subscribe: String,
) -> Vec<Frame> {
    let mut flow: Vec<String> = Vec::new();
    let frames = match connect(url).await {
        Err(why) => {
            flow.push(format!("could not connect to {url}: {why}"));
            Vec::new()
        }
        Ok(socket) => {
            let mut probe = Probe {
                socket,
                frames: Vec::new(),
                types: Vec::new(),
            };
            // A welcome that comes later than the grace is still a welcome: only one that
            // never comes is reported (below).
            probe.wait_for("welcome", options.grace).await;
            probe.send(authenticate).await;
            let answer = probe.wait_for("authenticated", options.grace).await;
            probe.send(subscribe).await;
            let subscribed = probe.wait_for("subscribed", options.flow_timeout).await;
            if subscribed == Wait::Came {
                probe
                    .read(options.stream_messages, options.stream_duration)
                    .await;
            }
            let _ = probe.socket.close(None).await;

            if !probe.saw("welcome") {
                flow.push(format!(
                    "no `welcome` after connecting (the flow starts with one); `authenticate` \
                     was sent after a {} grace, as the SDK does",
                    millis(options.grace)
                ));
            }
            if answer == Wait::Error {
                flow.push("`authenticate` was answered by an `error`".into());
            } else if !probe.saw("authenticated") {
                flow.push(if subscribed == Wait::Came {
                    "no `authenticated` reply to `authenticate`; the `subscribed` reply came, \
                     so it was accepted (the SDK takes the first reply as authentication)"
                        .into()
                } else {
                    "no `authenticated` reply to `authenticate`".into()
                });
            }
            match subscribed {
                Wait::Came => {}
                Wait::Error => flow.push("`subscribe` was answered by an `error`".into()),
                Wait::Quiet => flow.push(format!(
                    "no `subscribed` reply to `subscribe` within {}",
                    millis(options.flow_timeout)
                )),
            }
            probe.frames
        }
    };
    check_frames::<M>(session, name, &frames);
    let aggregate = session.operation(name, name);
    for problem in flow {
        aggregate.problem("flow", problem);
    }
    frames
}

/// `--brokerage-stream`: authenticate with the platform credentials, subscribe every topic,
/// read for the probe's duration (or its number of messages).
pub(super) async fn brokerage(session: &mut Session, options: &DoctorOptions) -> StreamSession {
    let authenticate = encode(&BrokerageRequest::Authenticate {
        client_id: options.platform.client_id.clone(),
        client_secret: options.platform.client_secret.clone(),
    });
    let subscribe = encode(&BrokerageRequest::Subscribe {
        topics: vec![Topic::Orders, Topic::Positions, Topic::Balances],
    });
    let frames = probe::<BrokerageMessage>(
        session,
        options,
        "brokerage stream",
        &options.brokerage_url,
        authenticate,
        subscribe,
    )
    .await;
    StreamSession {
        name: "brokerage",
        url: options.brokerage_url.clone(),
        frames,
    }
}

/// `--market-data`: authenticate with the token, subscribe quotes of one symbol, read a few
/// messages.
pub(super) async fn market_data(
    session: &mut Session,
    options: &DoctorOptions,
    token: &str,
) -> StreamSession {
    let authenticate = encode(&MarketDataRequest::Authenticate {
        token: token.into(),
    });
    let subscribe = encode(&MarketDataRequest::Subscribe(Subscription::quotes([
        options.market_data_symbol.clone(),
    ])));
    let frames = probe::<MarketDataMessage>(
        session,
        options,
        "market data stream",
        &options.market_data_url,
        authenticate,
        subscribe,
    )
    .await;
    StreamSession {
        name: "market-data",
        url: options.market_data_url.clone(),
        frames,
    }
}
