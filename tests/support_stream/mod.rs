//! A scripted WebSocket server on 127.0.0.1 for the stream tests.
//!
//! The test body drives every connection itself: accept it, send frames, read what the client
//! sent, drop it. Every wait is bounded (a failing test fails, it does not hang).
#![allow(dead_code)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

/// How long any single wait of a test may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(5);

/// Awaits `future`, failing the test after [`LIMIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// Accepts WebSocket connections and hands them to the test.
pub struct Server {
    url: String,
    connections: mpsc::UnboundedReceiver<Conn>,
}

impl Server {
    pub async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}", listener.local_addr().expect("addr"));
        let (tx, connections) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                        let _ = tx.send(Conn { ws });
                    }
                });
            }
        });
        Server { url, connections }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next connection from the client.
    pub async fn accept(&mut self) -> Conn {
        within("waiting for the client to connect", self.connections.recv())
            .await
            .expect("server stopped")
    }

    /// Whether a connection is already waiting (no waiting here).
    pub fn has_pending_connection(&mut self) -> bool {
        !self.connections.is_empty()
    }
}

/// One accepted connection.
pub struct Conn {
    pub ws: WebSocketStream<TcpStream>,
}

impl Conn {
    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        within("sending", self.ws.send(Message::text(text.to_string())))
            .await
            .expect("send");
    }

    /// Queues frames and flushes once (fast bursts).
    pub async fn send_many(&mut self, frames: impl IntoIterator<Item = String>) {
        for frame in frames {
            self.ws.feed(Message::text(frame)).await.expect("feed");
        }
        within("flushing", self.ws.flush()).await.expect("flush");
    }

    /// The next frame of any kind (`None`: the client closed the socket).
    pub async fn recv_raw(&mut self) -> Option<Message> {
        within("waiting for a frame from the client", self.ws.next())
            .await
            .map(|r| r.expect("read"))
    }

    /// The next text frame as JSON, skipping pings and pongs.
    pub async fn recv_json(&mut self) -> Value {
        loop {
            match self.recv_raw().await {
                Some(Message::Text(text)) => {
                    return serde_json::from_str(text.as_str()).expect("client sent JSON");
                }
                Some(Message::Ping(_) | Message::Pong(_)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Sends the welcome and returns the client's authenticate message.
    pub async fn welcome(&mut self) -> Value {
        self.send_json(json!({"type": "welcome", "message": "hello"}))
            .await;
        self.recv_json().await
    }

    /// Welcome, authenticate (returned), authenticated.
    pub async fn handshake(&mut self) -> Value {
        let auth = self.welcome().await;
        assert_eq!(auth["action"], "authenticate", "first message: {auth}");
        self.send_json(json!({"type": "authenticated"})).await;
        auth
    }

    /// Sends a ping and waits for its pong: everything sent before has been read by the client.
    pub async fn sync(&mut self) {
        within(
            "sending a ping",
            self.ws.send(Message::Ping(b"sync".to_vec().into())),
        )
        .await
        .expect("ping");
        loop {
            match self.recv_raw().await {
                Some(Message::Pong(payload)) if &payload[..] == b"sync" => return,
                Some(Message::Ping(_) | Message::Pong(_)) => continue,
                Some(Message::Text(text)) => panic!("unexpected frame while syncing: {text}"),
                other => panic!("connection ended while syncing: {other:?}"),
            }
        }
    }

    /// Closes with a code and reason.
    pub async fn close_with(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        let _ = within("closing", self.ws.close(Some(frame))).await;
    }

    /// Reads until the client's close frame; returns its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.recv_raw().await {
                Some(Message::Close(frame)) => {
                    // Reading on sends our close reply, and ends when the socket does.
                    while let Some(Ok(_)) = within("closing", self.ws.next()).await {}
                    return frame.map(|f| u16::from(f.code));
                }
                None => return None,
                Some(_) => continue,
            }
        }
    }
}

/// An order update frame for `user`/`account` with a sequence number.
pub fn order_frame(sequence: u64) -> Value {
    json!({
        "type": "order",
        "user_id": "alice",
        "account_id": "acc-1",
        "sequence": sequence,
        "data": {
            "order_id": format!("ord-{sequence}"),
            "cl_order_id": format!("cl-{sequence}"),
            "account_id": "acc-1",
            "broker": "ALPACA",
            "symbol": "AAPL",
            "instrument": "STK",
            "side": "BUY",
            "order_type": "LMT",
            "order_tif": "DAY",
            "order_qty": "10",
            "order_limit_price": "187.25",
            "status": "working"
        }
    })
}
