//! The market data stream: authenticate with a market data token, subscribe to channels
//! (quotes, trades, bars, depth, option chains), receive what each tick of the clock brings.

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use super::session::{Conn, Flow, Protocol, send_authenticated, send_error};
use crate::{
    Shared,
    market::{floor_to, interval_seconds, parse_option},
    state::Control,
};
use connect_trade::stream::protocol::{
    BarInterval, CLOSE_AUTH_FAILED, CLOSE_TOKEN_EXPIRED, Channel, ErrorCode, MarketDataMessage,
    MarketDataRequest, StreamErrorMessage, Subscription, TradingSession,
};

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

/// One market data session.
pub(crate) struct MarketData {
    ticks: broadcast::Receiver<u64>,
    /// The token the session authenticated with.
    token: Option<String>,
    subs: Subscriptions,
    /// Simulated time at the previous tick (bars close between two ticks).
    last_time: DateTime<Utc>,
}

impl MarketData {
    pub(crate) fn new(shared: &Shared) -> Self {
        MarketData {
            ticks: shared.ticks.subscribe(),
            token: None,
            subs: Subscriptions::default(),
            last_time: shared.state().now,
        }
    }
}

impl Protocol for MarketData {
    const NAME: &'static str = "market data stream";
    type Request = MarketDataRequest;
    type Message = MarketDataMessage;
    type Feed = u64;

    fn welcome(text: String) -> MarketDataMessage {
        MarketDataMessage::Welcome {
            message: Some(text),
        }
    }

    fn wrap_error(error: StreamErrorMessage) -> MarketDataMessage {
        MarketDataMessage::Error(error)
    }

    fn is_authenticate(request: &MarketDataRequest) -> bool {
        matches!(request, MarketDataRequest::Authenticate { .. })
    }

    fn authenticated(&self) -> bool {
        self.token.is_some()
    }

    fn feed(&mut self) -> &mut broadcast::Receiver<u64> {
        &mut self.ticks
    }

    async fn request(&mut self, conn: &mut Conn, request: MarketDataRequest) -> Flow {
        let MarketDataRequest::Authenticate { token: offered } = request else {
            return handle_market_request(conn, &mut self.subs, request).await;
        };
        let verdict = {
            let state = conn.shared.state();
            state
                .token(offered.expose())
                .map(|t| (t.expires_at, t.expires_at > state.now))
        };
        match verdict {
            Some((expires_at, true)) => {
                self.token = Some(offered.expose().to_string());
                send_authenticated(
                    conn,
                    &MarketDataMessage::Authenticated {
                        expires_at: Some(expires_at),
                    },
                )
                .await
            }
            Some((_, false)) => {
                send_error::<Self>(conn, ErrorCode::TokenExpired, TOKEN_EXPIRED, None).await?;
                conn.close(CLOSE_TOKEN_EXPIRED, "token expired").await
            }
            None => {
                send_error::<Self>(
                    conn,
                    ErrorCode::AuthFailed,
                    "unknown or revoked token",
                    None,
                )
                .await?;
                conn.close(CLOSE_AUTH_FAILED, "authentication failed").await
            }
        }
    }

    /// A tick (or ticks missed: the same, the prices are read now).
    async fn forward(&mut self, conn: &mut Conn, _tick: Result<u64, u64>) -> Flow {
        let (now, expired) = {
            let state = conn.shared.state();
            let expired = self
                .token
                .as_deref()
                .and_then(|t| state.token(t))
                .is_none_or(|t| t.expires_at <= state.now);
            (state.now, expired)
        };
        if expired {
            send_error::<Self>(conn, ErrorCode::TokenExpired, TOKEN_EXPIRED, None).await?;
            return conn.close(CLOSE_TOKEN_EXPIRED, "token expired").await;
        }
        let messages = live(&conn.shared, &self.subs, self.last_time, now);
        self.last_time = now;
        for message in messages {
            conn.send(&message).await?;
        }
        Ok(())
    }

    async fn control(&mut self, conn: &mut Conn, control: Control) -> Flow {
        if let Control::TokenRevoked(revoked) = control
            && self.token.as_deref() == Some(revoked.as_str())
        {
            send_error::<Self>(
                conn,
                ErrorCode::TokenExpired,
                "the token was replaced by a newer one or revoked",
                None,
            )
            .await?;
            return conn.close(CLOSE_TOKEN_EXPIRED, "token revoked").await;
        }
        Ok(())
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
            send_authenticated(conn, &MarketDataMessage::Authenticated { expires_at: None }).await
        }
        MarketDataRequest::Subscribe(mut sub) => {
            if sub.channel.is_unknown() {
                return send_error::<MarketData>(
                    conn,
                    ErrorCode::InvalidRequest,
                    format!(
                        "unknown channel {:?}: use quotes, trades, bars, depth, options_chain",
                        sub.channel.as_str()
                    ),
                    None,
                )
                .await;
            }
            sub.symbols = sub
                .symbols
                .iter()
                .map(|s| s.trim().to_ascii_uppercase())
                .collect();
            sub.symbols.dedup();
            if sub.symbols.is_empty() {
                return send_error::<MarketData>(
                    conn,
                    ErrorCode::InvalidRequest,
                    "symbols: give at least one",
                    None,
                )
                .await;
            }
            if sub.channel == Channel::Bars {
                let interval = sub.params.interval.get_or_insert(BarInterval::Minute1);
                if interval.is_unknown() {
                    return send_error::<MarketData>(
                        conn,
                        ErrorCode::InvalidRequest,
                        format!(
                            "interval: {:?} is not one of 1m, 5m, 15m, 1h, 1d",
                            interval.as_str()
                        ),
                        None,
                    )
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
                return send_error::<MarketData>(
                    conn,
                    ErrorCode::InvalidRequest,
                    format!("unknown symbols: {}", unknown.join(", ")),
                    None,
                )
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
                    send_error::<MarketData>(
                        conn,
                        ErrorCode::InvalidRequest,
                        format!("interval: {bad:?} is not one of 1m, 5m, 15m, 1h, 1d"),
                        Some(request_id),
                    )
                    .await
                }
                None => {
                    send_error::<MarketData>(
                        conn,
                        ErrorCode::InvalidRequest,
                        format!("unknown symbol {symbol}"),
                        Some(request_id),
                    )
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
                                MarketDataMessage::Bar(Box::new(bar))
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
                                .map(|bar| MarketDataMessage::Bar(Box::new(bar))),
                        );
                    }
                }
                Channel::Unknown(_) => {}
            }
        }
    }
    out
}
