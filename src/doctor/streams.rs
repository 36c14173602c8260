//! The two opt-in stream probes: read a few frames, check them against the JSON Schemas of
//! [`crate::stream::protocol`], and check the flow (welcome → authenticate → authenticated →
//! subscribe → subscribed).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{
    DoctorOptions, Session,
    capture::{Frame, StreamSession},
    check_frames,
};
use crate::stream::protocol::{
    BrokerageMessage, BrokerageRequest, MarketDataMessage, MarketDataRequest, Subscription, Topic,
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

fn type_of(text: &str) -> Option<String> {
    serde_json::from_str::<Value>(text)
        .ok()?
        .get("type")?
        .as_str()
        .map(str::to_string)
}

/// Waits for a frame of type `wanted`, recording every frame; false when it did not come.
async fn expect(
    socket: &mut Socket,
    frames: &mut Vec<Frame>,
    wanted: &str,
    wait: Duration,
) -> bool {
    let deadline = Instant::now() + wait;
    while let Some(text) = next_text(socket, deadline).await {
        let kind = type_of(&text);
        frames.push(Frame {
            direction: "received",
            text,
        });
        if kind.as_deref() == Some(wanted) {
            return true;
        }
        if kind.as_deref() == Some("error") {
            return false;
        }
    }
    false
}

async fn send(socket: &mut Socket, frames: &mut Vec<Frame>, text: String) -> bool {
    frames.push(Frame {
        direction: "sent",
        text: text.clone(),
    });
    socket.send(Message::text(text)).await.is_ok()
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

/// `--brokerage-stream`: authenticate with the platform credentials, subscribe every topic,
/// read for the probe's duration.
pub(super) async fn brokerage(session: &mut Session, options: &DoctorOptions) -> StreamSession {
    let name = "brokerage stream";
    let mut frames = Vec::new();
    let mut flow: Vec<String> = Vec::new();
    match connect(&options.brokerage_url).await {
        Err(why) => flow.push(format!(
            "could not connect to {}: {why}",
            options.brokerage_url
        )),
        Ok(mut socket) => {
            if !expect(&mut socket, &mut frames, "welcome", options.flow_timeout).await {
                flow.push(format!(
                    "no `welcome` within {} s of connecting (the documented flow starts with it)",
                    options.flow_timeout.as_secs_f32()
                ));
            }
            let authenticate = encode(&BrokerageRequest::Authenticate {
                client_id: options.platform.client_id.clone(),
                client_secret: options.platform.client_secret.clone(),
            });
            send(&mut socket, &mut frames, authenticate).await;
            if !expect(
                &mut socket,
                &mut frames,
                "authenticated",
                options.flow_timeout,
            )
            .await
            {
                flow.push("no `authenticated` reply to `authenticate`".into());
            }
            let subscribe = encode(&BrokerageRequest::Subscribe {
                topics: vec![Topic::Orders, Topic::Positions, Topic::Balances],
            });
            send(&mut socket, &mut frames, subscribe).await;
            if !expect(&mut socket, &mut frames, "subscribed", options.flow_timeout).await {
                flow.push("no `subscribed` reply to `subscribe`".into());
            }
            let deadline = Instant::now() + options.stream_duration;
            while let Some(text) = next_text(&mut socket, deadline).await {
                frames.push(Frame {
                    direction: "received",
                    text,
                });
            }
            let _ = socket.close(None).await;
        }
    }
    check_frames::<BrokerageMessage>(session, name, &frames);
    finish(session, name, flow);
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
    let name = "market data stream";
    let mut frames = Vec::new();
    let mut flow: Vec<String> = Vec::new();
    match connect(&options.market_data_url).await {
        Err(why) => flow.push(format!(
            "could not connect to {}: {why}",
            options.market_data_url
        )),
        Ok(mut socket) => {
            if !expect(&mut socket, &mut frames, "welcome", options.flow_timeout).await {
                flow.push(format!(
                    "no `welcome` within {} s of connecting (the documented flow starts with it)",
                    options.flow_timeout.as_secs_f32()
                ));
            }
            let authenticate = encode(&MarketDataRequest::Authenticate {
                token: token.into(),
            });
            send(&mut socket, &mut frames, authenticate).await;
            if !expect(
                &mut socket,
                &mut frames,
                "authenticated",
                options.flow_timeout,
            )
            .await
            {
                flow.push("no `authenticated` reply to `authenticate`".into());
            }
            let subscribe = encode(&MarketDataRequest::Subscribe(Subscription::quotes([
                options.market_data_symbol.clone(),
            ])));
            send(&mut socket, &mut frames, subscribe).await;
            if !expect(&mut socket, &mut frames, "subscribed", options.flow_timeout).await {
                flow.push("no `subscribed` reply to `subscribe`".into());
            }
            let deadline = Instant::now() + options.stream_duration;
            let mut data = 0;
            while data < 5 {
                let Some(text) = next_text(&mut socket, deadline).await else {
                    break;
                };
                frames.push(Frame {
                    direction: "received",
                    text,
                });
                data += 1;
            }
            let _ = socket.close(None).await;
        }
    }
    check_frames::<MarketDataMessage>(session, name, &frames);
    finish(session, name, flow);
    StreamSession {
        name: "market-data",
        url: options.market_data_url.clone(),
        frames,
    }
}

fn finish(session: &mut Session, name: &str, flow: Vec<String>) {
    let aggregate = session.operation(name, name);
    for problem in flow {
        aggregate.problem("flow", problem);
    }
}
