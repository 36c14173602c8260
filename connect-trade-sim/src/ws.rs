//! The two WebSocket servers, speaking exactly `connect_trade::stream::protocol`.

use std::{collections::BTreeSet, sync::Arc, sync::atomic::Ordering};

use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{broadcast::error::RecvError, watch},
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
    market::{floor_to, interval_seconds, parse_option},
    state::{Control, Event, Payload},
};
use connect_trade::stream::protocol::{
    BarInterval, BrokerageMessage, BrokerageRequest, CLOSE_AUTH_FAILED, CLOSE_AUTH_TIMEOUT,
    CLOSE_SESSION_REPLACED, CLOSE_TOKEN_EXPIRED, Channel, ErrorCode, MarketDataMessage,
    MarketDataRequest, StreamErrorMessage, Subscription, Topic, TradingSession, UpdateMeta,
};

/// Which server.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Brokerage,
    MarketData,
}

pub(crate) async fn serve(
    kind: Kind,
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let sessions = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let (shared, shutdown) = (shared.clone(), sessions.clone());
                tokio::spawn(async move {
                    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                    let mut conn = Conn::new(ws, shared, shutdown);
                    let _ = match kind {
                        Kind::Brokerage => brokerage(&mut conn).await,
                        Kind::MarketData => market_data(&mut conn).await,
                    };
                });
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
}

/// Why a session ended; every variant just ends it.
#[derive(Debug)]
struct End;

type Flow = Result<(), End>;

/// One connection, with the fault switches applied to what it sends.
struct Conn {
    ws: WebSocketStream<TcpStream>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    silent: watch::Receiver<bool>,
    sent: u64,
    id: u64,
}

impl Conn {
    fn new(
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

    async fn send_text(&mut self, text: String) -> Flow {
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

    async fn send<T: Serialize>(&mut self, message: &T) -> Flow {
        let text = serde_json::to_string(message).map_err(|_| End)?;
        self.send_text(text).await
    }

    async fn close(&mut self, code: u16, reason: &str) -> Flow {
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

    /// Handles the controls every session obeys; returns the ones left to the session.
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

fn error<M>(
    code: ErrorCode,
    message: impl Into<String>,
    wrap: impl FnOnce(StreamErrorMessage) -> M,
) -> M {
    wrap(StreamErrorMessage {
        code,
        message: message.into(),
        request_id: None,
    })
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

// -------------------------------------------------------------------------------------------
// Brokerage stream
// -------------------------------------------------------------------------------------------

async fn brokerage(conn: &mut Conn) -> Flow {
    let mut events = conn.shared.events.subscribe();
    let mut control = conn.shared.control.subscribe();
    conn.send(&BrokerageMessage::Welcome {
        message: Some(format!(
            "Connect Trade simulator: brokerage stream. Authenticate within {} s.",
            conn.shared.config.auth_timeout.as_secs()
        )),
    })
    .await?;
    let deadline = tokio::time::sleep(conn.shared.config.auth_timeout);
    tokio::pin!(deadline);
    let mut authenticated = false;
    let mut topics: BTreeSet<Topic> = BTreeSet::new();
    let mut sequence = 0u64;
    loop {
        let silent = conn.is_silent();
        let step = tokio::select! {
            _ = &mut deadline, if !authenticated => Step::Deadline,
            incoming = receive(&mut conn.ws), if !silent => Step::Incoming(incoming),
            event = events.recv(), if authenticated && !silent => Step::Event(event),
            received = control.recv() => Step::Control(received),
            _ = conn.silent.changed() => Step::Nothing,
            _ = conn.shutdown.wait_for(|s| *s) => Step::Shutdown,
        };
        match step {
            Step::Deadline => {
                conn.send(&error(
                    ErrorCode::AuthTimeout,
                    "no authenticate message within the time allowed",
                    BrokerageMessage::Error,
                ))
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
            Step::Incoming(Incoming::Other) | Step::Nothing | Step::Tick(_) => {}
            Step::Incoming(Incoming::Text(text)) => {
                match serde_json::from_str::<BrokerageRequest>(&text) {
                    Err(e) => {
                        conn.send(&error(
                            ErrorCode::InvalidRequest,
                            format!("not a request of this stream: {e}"),
                            BrokerageMessage::Error,
                        ))
                        .await?
                    }
                    Ok(BrokerageRequest::Authenticate {
                        client_id,
                        client_secret,
                    }) => {
                        let config = &conn.shared.config;
                        if client_id != config.client_id
                            || client_secret.expose() != config.client_secret.expose()
                        {
                            conn.send(&error(
                                ErrorCode::AuthFailed,
                                "unknown client_id or wrong client_secret",
                                BrokerageMessage::Error,
                            ))
                            .await?;
                            return conn.close(CLOSE_AUTH_FAILED, "authentication failed").await;
                        }
                        if !authenticated {
                            authenticated = true;
                            let _ = conn
                                .shared
                                .control
                                .send(Control::BrokerageReplaced { by: conn.id });
                            // Updates count from the authentication on.
                            events = events.resubscribe();
                        }
                        conn.send(&BrokerageMessage::Authenticated {}).await?;
                    }
                    Ok(_) if !authenticated => {
                        conn.send(&error(
                            ErrorCode::InvalidRequest,
                            "authenticate first",
                            BrokerageMessage::Error,
                        ))
                        .await?;
                    }
                    Ok(BrokerageRequest::Subscribe { topics: wanted }) => {
                        if let Some(bad) = wanted.iter().find(|t| t.is_unknown()) {
                            let message = format!(
                                "unknown topic {:?}: use orders, positions, balances",
                                bad.as_str()
                            );
                            conn.send(&error(
                                ErrorCode::InvalidRequest,
                                message,
                                BrokerageMessage::Error,
                            ))
                            .await?;
                        } else {
                            topics.extend(wanted);
                            conn.send(&BrokerageMessage::Subscribed {
                                topics: topics.iter().cloned().collect(),
                            })
                            .await?;
                        }
                    }
                    Ok(BrokerageRequest::Unsubscribe { topics: unwanted }) => {
                        for topic in &unwanted {
                            topics.remove(topic);
                        }
                        conn.send(&BrokerageMessage::Unsubscribed {
                            topics: topics.iter().cloned().collect(),
                        })
                        .await?;
                    }
                }
            }
            Step::Event(Ok(event)) => {
                if let Some(message) = update(event, &topics, &mut sequence) {
                    conn.send(&message).await?;
                }
            }
            Step::Event(Err(RecvError::Lagged(missed))) => {
                let message = format!("{missed} updates were lost: reload the state from REST");
                conn.send(&error(
                    ErrorCode::Internal,
                    message,
                    BrokerageMessage::Error,
                ))
                .await?;
            }
            Step::Event(Err(RecvError::Closed)) => return Err(End),
            Step::Control(received) => {
                if let Some(Control::BrokerageReplaced { by }) = conn.control(received).await?
                    && authenticated
                    && by != conn.id
                {
                    conn.send(&error(
                        ErrorCode::SessionReplaced,
                        "another session authenticated with these credentials",
                        BrokerageMessage::Error,
                    ))
                    .await?;
                    return conn.close(CLOSE_SESSION_REPLACED, "session replaced").await;
                }
            }
            Step::Shutdown => return conn.close(1001, "simulator shutting down").await,
        }
    }
}

/// What woke a session up.
enum Step {
    Deadline,
    Incoming(Incoming),
    Event(Result<Event, RecvError>),
    Tick(Result<u64, RecvError>),
    Control(Result<Control, RecvError>),
    Nothing,
    Shutdown,
}

fn update(event: Event, topics: &BTreeSet<Topic>, sequence: &mut u64) -> Option<BrokerageMessage> {
    let topic = match &event.payload {
        Payload::Order(_) => Topic::Orders,
        Payload::Position(_) => Topic::Positions,
        Payload::Balance(_) => Topic::Balances,
    };
    if !topics.contains(&topic) {
        return None;
    }
    *sequence += 1;
    let meta = UpdateMeta {
        user_id: event.user_id,
        account_id: event.account_id,
        timestamp: Some(event.timestamp),
        sequence: Some(*sequence),
    };
    Some(match event.payload {
        Payload::Order(data) => BrokerageMessage::Order { meta, data },
        Payload::Position(data) => BrokerageMessage::Position { meta, data },
        Payload::Balance(data) => BrokerageMessage::Balance { meta, data },
    })
}

// -------------------------------------------------------------------------------------------
// Market data stream
// -------------------------------------------------------------------------------------------

/// The subscriptions of one session.
#[derive(Default)]
struct Subscriptions(Vec<Subscription>);

impl Subscriptions {
    fn add(&mut self, sub: &Subscription) {
        self.remove(&sub.channel, &sub.symbols);
        match self
            .0
            .iter_mut()
            .find(|s| s.channel == sub.channel && s.params == sub.params)
        {
            Some(existing) => existing.symbols.extend(sub.symbols.iter().cloned()),
            None => self.0.push(sub.clone()),
        }
    }

    fn remove(&mut self, channel: &Channel, symbols: &[String]) {
        for sub in self.0.iter_mut().filter(|s| s.channel == *channel) {
            sub.symbols.retain(|s| !symbols.contains(s));
        }
        self.0.retain(|s| !s.symbols.is_empty());
    }
}

async fn market_data(conn: &mut Conn) -> Flow {
    let mut ticks = conn.shared.ticks.subscribe();
    let mut control = conn.shared.control.subscribe();
    conn.send(&MarketDataMessage::Welcome {
        message: Some(format!(
            "Connect Trade simulator: market data stream. Authenticate within {} s.",
            conn.shared.config.auth_timeout.as_secs()
        )),
    })
    .await?;
    let deadline = tokio::time::sleep(conn.shared.config.auth_timeout);
    tokio::pin!(deadline);
    let mut token: Option<String> = None;
    let mut subs = Subscriptions::default();
    let mut last_time = conn.shared.state().now;
    loop {
        let silent = conn.is_silent();
        let authenticated = token.is_some();
        let step = tokio::select! {
            _ = &mut deadline, if !authenticated => Step::Deadline,
            incoming = receive(&mut conn.ws), if !silent => Step::Incoming(incoming),
            tick = ticks.recv(), if authenticated && !silent => Step::Tick(tick),
            received = control.recv() => Step::Control(received),
            _ = conn.silent.changed() => Step::Nothing,
            _ = conn.shutdown.wait_for(|s| *s) => Step::Shutdown,
        };
        match step {
            Step::Deadline => {
                conn.send(&error(
                    ErrorCode::AuthTimeout,
                    "no authenticate message within the time allowed",
                    MarketDataMessage::Error,
                ))
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
            Step::Incoming(Incoming::Other) | Step::Nothing | Step::Event(_) => {}
            Step::Incoming(Incoming::Text(text)) => {
                match serde_json::from_str::<MarketDataRequest>(&text) {
                    Err(e) => {
                        conn.send(&error(
                            ErrorCode::InvalidRequest,
                            format!("not a request of this stream: {e}"),
                            MarketDataMessage::Error,
                        ))
                        .await?
                    }
                    Ok(MarketDataRequest::Authenticate { token: offered }) => {
                        let verdict = {
                            let state = conn.shared.state();
                            state
                                .token(offered.expose())
                                .map(|t| (t.expires_at, t.expires_at > state.now))
                        };
                        match verdict {
                            Some((expires_at, true)) => {
                                token = Some(offered.expose().to_string());
                                conn.send(&MarketDataMessage::Authenticated {
                                    expires_at: Some(expires_at),
                                })
                                .await?;
                            }
                            Some((_, false)) => {
                                conn.send(&error(
                                    ErrorCode::TokenExpired,
                                    TOKEN_EXPIRED,
                                    MarketDataMessage::Error,
                                ))
                                .await?;
                                return conn.close(CLOSE_TOKEN_EXPIRED, "token expired").await;
                            }
                            None => {
                                conn.send(&error(
                                    ErrorCode::AuthFailed,
                                    "unknown or revoked token",
                                    MarketDataMessage::Error,
                                ))
                                .await?;
                                return conn
                                    .close(CLOSE_AUTH_FAILED, "authentication failed")
                                    .await;
                            }
                        }
                    }
                    Ok(_) if !authenticated => {
                        conn.send(&error(
                            ErrorCode::InvalidRequest,
                            "authenticate first",
                            MarketDataMessage::Error,
                        ))
                        .await?;
                    }
                    Ok(request) => handle_market_request(conn, &mut subs, request).await?,
                }
            }
            Step::Tick(Err(RecvError::Closed)) => return Err(End),
            Step::Tick(_) => {
                let (now, expired) = {
                    let state = conn.shared.state();
                    let expired = token
                        .as_deref()
                        .and_then(|t| state.token(t))
                        .is_none_or(|t| t.expires_at <= state.now);
                    (state.now, expired)
                };
                if expired {
                    conn.send(&error(
                        ErrorCode::TokenExpired,
                        TOKEN_EXPIRED,
                        MarketDataMessage::Error,
                    ))
                    .await?;
                    return conn.close(CLOSE_TOKEN_EXPIRED, "token expired").await;
                }
                let messages = live(&conn.shared, &subs, last_time, now);
                last_time = now;
                for message in messages {
                    conn.send(&message).await?;
                }
            }
            Step::Control(received) => {
                if let Some(Control::TokenRevoked(revoked)) = conn.control(received).await?
                    && token.as_deref() == Some(revoked.as_str())
                {
                    conn.send(&error(
                        ErrorCode::TokenExpired,
                        "the token was replaced by a newer one or revoked",
                        MarketDataMessage::Error,
                    ))
                    .await?;
                    return conn.close(CLOSE_TOKEN_EXPIRED, "token revoked").await;
                }
            }
            Step::Shutdown => return conn.close(1001, "simulator shutting down").await,
        }
    }
}

const TOKEN_EXPIRED: &str =
    "the token expired: get a new one from GET /connections/{connection_id}/token";

async fn handle_market_request(
    conn: &mut Conn,
    subs: &mut Subscriptions,
    request: MarketDataRequest,
) -> Flow {
    match request {
        MarketDataRequest::Authenticate { .. } => {
            conn.send(&MarketDataMessage::Authenticated { expires_at: None })
                .await
        }
        MarketDataRequest::Subscribe(mut sub) => {
            if sub.channel.is_unknown() {
                return conn
                    .send(&error(
                        ErrorCode::InvalidRequest,
                        format!(
                            "unknown channel {:?}: use quotes, trades, bars, depth, options_chain",
                            sub.channel.as_str()
                        ),
                        MarketDataMessage::Error,
                    ))
                    .await;
            }
            sub.symbols = sub
                .symbols
                .iter()
                .map(|s| s.trim().to_ascii_uppercase())
                .collect();
            sub.symbols.dedup();
            if sub.symbols.is_empty() {
                return conn
                    .send(&error(
                        ErrorCode::InvalidRequest,
                        "symbols: give at least one",
                        MarketDataMessage::Error,
                    ))
                    .await;
            }
            if sub.channel == Channel::Bars {
                let interval = sub.params.interval.get_or_insert(BarInterval::Minute1);
                if interval.is_unknown() {
                    return conn
                        .send(&error(
                            ErrorCode::InvalidRequest,
                            format!(
                                "interval: {:?} is not one of 1m, 5m, 15m, 1h, 1d",
                                interval.as_str()
                            ),
                            MarketDataMessage::Error,
                        ))
                        .await;
                }
            }
            if sub.channel == Channel::Depth {
                sub.params.levels = Some(sub.params.levels.unwrap_or(5).clamp(1, 50));
            }
            let unknown: Vec<String> = {
                let state = conn.shared.state();
                sub.symbols
                    .iter()
                    .filter(|s| {
                        let option = sub.channel == Channel::Quotes
                            && parse_option(s)
                                .is_some_and(|spec| state.market.underlying_of(&spec).is_some());
                        !option && !state.market.knows_equity(s)
                    })
                    .cloned()
                    .collect()
            };
            if !unknown.is_empty() {
                return conn
                    .send(&error(
                        ErrorCode::InvalidRequest,
                        format!("unknown symbols: {}", unknown.join(", ")),
                        MarketDataMessage::Error,
                    ))
                    .await;
            }
            subs.add(&sub);
            conn.send(&MarketDataMessage::Subscribed(sub.clone()))
                .await?;
            // The current state first: quotes, the book, the chain, and any bars asked for.
            let messages = initial(&conn.shared, &sub);
            for message in messages {
                conn.send(&message).await?;
            }
            Ok(())
        }
        MarketDataRequest::Unsubscribe { channel, symbols } => {
            let symbols: Vec<String> = symbols
                .iter()
                .map(|s| s.trim().to_ascii_uppercase())
                .collect();
            subs.remove(&channel, &symbols);
            conn.send(&MarketDataMessage::Unsubscribed { channel, symbols })
                .await
        }
        MarketDataRequest::ListSubscriptions { request_id } => {
            let subscriptions = subs.0.clone();
            conn.send(&MarketDataMessage::Subscriptions {
                request_id,
                subscriptions,
            })
            .await
        }
        MarketDataRequest::Snapshot {
            request_id,
            symbol,
            interval,
            start,
            end,
            limit,
        } => {
            let symbol = symbol.trim().to_ascii_uppercase();
            let bars = {
                let mut state = conn.shared.state();
                let (tick, now) = (state.tick, state.now);
                if !state.market.knows_equity(&symbol) {
                    None
                } else if interval.is_unknown() {
                    Some(Err(interval.as_str().to_string()))
                } else {
                    Some(Ok(state.market.bars(
                        &symbol,
                        &interval,
                        tick,
                        now,
                        limit.unwrap_or(100).clamp(1, 1000),
                        start,
                        end,
                    )))
                }
            };
            match bars {
                Some(Ok(bars)) => {
                    conn.send(&MarketDataMessage::Snapshot {
                        request_id,
                        symbol,
                        bars,
                    })
                    .await
                }
                Some(Err(bad)) => {
                    conn.send(&MarketDataMessage::Error(StreamErrorMessage {
                        code: ErrorCode::InvalidRequest,
                        message: format!("interval: {bad:?} is not one of 1m, 5m, 15m, 1h, 1d"),
                        request_id: Some(request_id),
                    }))
                    .await
                }
                None => {
                    conn.send(&MarketDataMessage::Error(StreamErrorMessage {
                        code: ErrorCode::InvalidRequest,
                        message: format!("unknown symbol {symbol}"),
                        request_id: Some(request_id),
                    }))
                    .await
                }
            }
        }
    }
}

/// What a new subscription gets at once.
fn initial(shared: &Shared, sub: &Subscription) -> Vec<MarketDataMessage> {
    let mut state = shared.state();
    let (tick, now) = (state.tick, state.now);
    let market = &mut state.market;
    let mut out = Vec::new();
    for symbol in &sub.symbols {
        match &sub.channel {
            Channel::Quotes => out.extend(
                market
                    .quote(symbol, tick, now)
                    .map(MarketDataMessage::Quote),
            ),
            Channel::Depth => out.extend(
                market
                    .depth(symbol, tick, now, sub.params.levels.unwrap_or(5))
                    .map(MarketDataMessage::Depth),
            ),
            Channel::OptionsChain => out.extend(
                market
                    .chain(symbol, tick, now, sub.params.greeks.unwrap_or(false))
                    .into_iter()
                    .map(|quote| MarketDataMessage::OptionQuote(Box::new(quote))),
            ),
            Channel::Bars => {
                let backfill = sub.params.backfill.unwrap_or(0);
                if backfill > 0 {
                    let interval = sub.params.interval.clone().unwrap_or(BarInterval::Minute1);
                    out.extend(
                        market
                            .bars(symbol, &interval, tick, now, backfill, None, None)
                            .into_iter()
                            .map(|mut bar| {
                                bar.backfill = true;
                                MarketDataMessage::Bar(bar)
                            }),
                    );
                }
            }
            _ => {}
        }
    }
    out
}

/// What the subscriptions get at a tick.
fn live(
    shared: &Shared,
    subs: &Subscriptions,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<MarketDataMessage> {
    let mut state = shared.state();
    let tick = state.tick;
    let market = &mut state.market;
    let mut out = Vec::new();
    for sub in &subs.0 {
        for symbol in &sub.symbols {
            match &sub.channel {
                Channel::Quotes => out.extend(
                    market
                        .quote(symbol, tick, now)
                        .map(MarketDataMessage::Quote),
                ),
                Channel::Trades => {
                    if let Some(trade) = market.trade(symbol, tick, now) {
                        let wanted = match (&sub.params.session, &trade.session) {
                            (None | Some(TradingSession::All), _) => true,
                            (Some(want), Some(got)) => want == got,
                            _ => true,
                        };
                        if wanted {
                            out.push(MarketDataMessage::Trade(trade));
                        }
                    }
                }
                Channel::Depth => out.extend(
                    market
                        .depth(symbol, tick, now, sub.params.levels.unwrap_or(5))
                        .map(MarketDataMessage::Depth),
                ),
                Channel::OptionsChain => out.extend(
                    market
                        .chain(symbol, tick, now, sub.params.greeks.unwrap_or(false))
                        .into_iter()
                        .map(|quote| MarketDataMessage::OptionQuote(Box::new(quote))),
                ),
                Channel::Bars => {
                    let interval = sub.params.interval.clone().unwrap_or(BarInterval::Minute1);
                    let Some(seconds) = interval_seconds(&interval) else {
                        continue;
                    };
                    let end = floor_to(now, seconds);
                    if floor_to(before, seconds) < end {
                        // Walks start on first use: make sure this one has.
                        market.mid(symbol, tick);
                        let start = end - chrono::Duration::seconds(seconds);
                        out.extend(
                            market
                                .bar(symbol, &interval, start, end)
                                .map(MarketDataMessage::Bar),
                        );
                    }
                }
                Channel::Unknown(_) => {}
            }
        }
    }
    out
}
