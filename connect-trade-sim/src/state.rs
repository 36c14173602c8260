//! The simulated world: users, connections, accounts and the paper broker that fills orders.
//!
//! Everything here is synchronous and runs under one lock, so every change is atomic and
//! every event leaves in the order the changes happened.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, NaiveTime, TimeZone, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use tokio::sync::broadcast;

use crate::market::{Market, cents, parse_option};
use connect_trade::{
    codes::{
        BrokerCode, ConnectionType, Instrument, OrderSide, OrderStatus, OrderStatusFilter,
        OrderType, SortOrder, TimeInForce, TokenScope, TransactionType,
    },
    credentials::Secret,
    paging::OrderPage,
    rest::types::{
        Account, Balance, Connection, ConnectionAccount, ConnectionRequest,
        CreateConnectionRequest, CreatedUser, Fill, MarketDataToken, ModifyOrderRequest, Order,
        OrderLeg, PlaceOrderRequest, Position, Transaction, User, UserToken,
    },
};

/// A refusal, as the REST API gives it: a status and a `message`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 400, naming the field first.
    pub fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        ApiError::new(400, format!("{field}: {why}"))
    }
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::new(404, format!("{what} not found"))
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(409, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(401, message)
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// What changed, for the brokerage stream.
#[derive(Clone, Debug)]
pub(crate) enum Payload {
    Order(Box<Order>),
    Position(Box<Position>),
    Balance(Box<Balance>),
}

/// One change of one account.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub user_id: String,
    pub account_id: String,
    pub timestamp: DateTime<Utc>,
    pub payload: Payload,
}

/// What the stream servers are told to do.
#[derive(Clone, Debug)]
pub(crate) enum Control {
    /// A market data token stopped being valid.
    TokenRevoked(String),
    /// Drop every stream connection now, without a close frame (fault injection).
    DropAll,
    /// Send one frame that is not valid JSON on every stream connection (fault injection).
    Malformed,
    /// A brokerage session authenticated: every other session with the same credentials ends.
    BrokerageReplaced {
        /// The session that replaced the others.
        by: u64,
    },
}

/// The hour (UTC) at which DAY orders expire.
pub(crate) const CLOSE: u32 = 21;

/// The outcome of the OAuth page.
pub(crate) enum Authorize {
    /// Redirect there.
    Redirect(String),
    /// No broker chosen yet: show the list; the links carry `?broker=`.
    ChooseBroker(Vec<BrokerCode>),
}

struct UserRec {
    secret: String,
    created_at: DateTime<Utc>,
}

struct ConnRequest {
    user_id: String,
    connection_type: ConnectionType,
    broker: Option<BrokerCode>,
    redirect_url: String,
    expires_at: DateTime<Utc>,
    used: bool,
}

struct ConnRec {
    user_id: String,
    broker: BrokerCode,
    connection_type: ConnectionType,
    accounts: Vec<String>,
    token: Option<String>,
}

pub(crate) struct TokenRec {
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default)]
struct PosRec {
    instrument: Option<Instrument>,
    qty: Decimal,
    avg: Decimal,
    day_ref: Decimal,
    realized: Decimal,
    realized_today: Decimal,
    multiplier: Decimal,
}

struct AccountRec {
    user_id: String,
    connection_id: String,
    broker: BrokerCode,
    number: String,
    cash: Decimal,
    positions: BTreeMap<String, PosRec>,
    /// (day, cl_order_id) already used.
    cl_ids: HashSet<(NaiveDate, String)>,
}

#[derive(Clone, Debug)]
struct LegRec {
    symbol: String,
    buy: bool,
    ratio: Decimal,
}

struct OrderRec {
    wire: Order,
    seq: u64,
    user_id: String,
    qty: Decimal,
    filled: Decimal,
    cost: Decimal,
    buy: bool,
    multiplier: Decimal,
    legs: Vec<LegRec>,
    triggered: bool,
}

impl OrderRec {
    fn remaining(&self) -> Decimal {
        (self.qty - self.filled).max(Decimal::ZERO)
    }
    fn is_open(&self) -> bool {
        self.wire.status.is_open()
    }
    fn symbols(&self) -> Vec<&str> {
        if self.legs.is_empty() {
            self.wire.symbol.as_deref().into_iter().collect()
        } else {
            self.legs.iter().map(|l| l.symbol.as_str()).collect()
        }
    }
}

/// The world.
pub(crate) struct State {
    pub now: DateTime<Utc>,
    pub tick: u64,
    pub market: Market,
    pub rest_url: String,
    starting_cash: Decimal,
    rng: fastrand::Rng,
    next_id: u64,
    users: BTreeMap<String, UserRec>,
    requests: HashMap<String, ConnRequest>,
    connections: BTreeMap<String, ConnRec>,
    accounts: BTreeMap<String, AccountRec>,
    orders: Vec<OrderRec>,
    order_index: HashMap<String, usize>,
    transactions: Vec<Transaction>,
    pub tokens: HashMap<String, TokenRec>,
    events: broadcast::Sender<Event>,
    control: broadcast::Sender<Control>,
}

fn broker_name(broker: &BrokerCode) -> &str {
    match broker {
        BrokerCode::Alpaca => "Alpaca",
        BrokerCode::BankOfAmerica => "Bank of America",
        BrokerCode::CapitalOne => "Capital One",
        BrokerCode::Chase => "Chase",
        BrokerCode::Citi => "Citi",
        BrokerCode::Fidelity => "Fidelity",
        BrokerCode::Lightspeed => "Lightspeed",
        BrokerCode::Pnc => "PNC",
        BrokerCode::Public => "Public",
        BrokerCode::Tastytrade => "tastytrade",
        BrokerCode::Td => "TD",
        BrokerCode::TradeStation => "TradeStation",
        BrokerCode::TradeZero => "TradeZero",
        BrokerCode::UsBank => "U.S. Bank",
        BrokerCode::Webull => "Webull",
        BrokerCode::WellsFargo => "Wells Fargo",
        // Unknown codes, and codes added upstream after this was written.
        other => other.as_str(),
    }
}

fn round4(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
}

fn midnight(time: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&time.date_naive().and_time(NaiveTime::MIN))
}

impl State {
    pub(crate) fn new(
        now: DateTime<Utc>,
        market: Market,
        seed: u64,
        starting_cash: Decimal,
        events: broadcast::Sender<Event>,
        control: broadcast::Sender<Control>,
    ) -> Self {
        State {
            now,
            tick: 0,
            market,
            rest_url: String::new(),
            starting_cash,
            rng: fastrand::Rng::with_seed(seed.wrapping_add(0x5eed)),
            next_id: 1,
            users: BTreeMap::new(),
            requests: HashMap::new(),
            connections: BTreeMap::new(),
            accounts: BTreeMap::new(),
            orders: Vec::new(),
            order_index: HashMap::new(),
            transactions: Vec::new(),
            tokens: HashMap::new(),
            events,
            control,
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        let n = self.next_id;
        self.next_id += 1;
        format!("{prefix}_{n:06}")
    }

    fn random(&mut self, prefix: &str, len: usize) -> String {
        let text: String = (0..len).map(|_| self.rng.alphanumeric()).collect();
        format!("{prefix}{text}")
    }

    fn emit(&self, user_id: &str, account_id: &str, payload: Payload) {
        // No receiver is fine: nobody is streaming.
        let _ = self.events.send(Event {
            user_id: user_id.to_string(),
            account_id: account_id.to_string(),
            timestamp: self.now,
            payload,
        });
    }

    // ---------------------------------------------------------------------------------------
    // Authentication
    // ---------------------------------------------------------------------------------------

    /// Checks a user's pair.
    pub(crate) fn check_user(&self, user_id: &str, secret: &str) -> ApiResult<()> {
        match self.users.get(user_id) {
            Some(user) if user.secret == secret => Ok(()),
            _ => Err(ApiError::unauthorized(
                "unknown user-id or wrong user-secret: use the secret POST /users returned",
            )),
        }
    }

    /// A market data token's owner, if the token is valid now.
    pub(crate) fn token(&self, token: &str) -> Option<&TokenRec> {
        self.tokens.get(token)
    }

    // ---------------------------------------------------------------------------------------
    // Users
    // ---------------------------------------------------------------------------------------

    pub(crate) fn create_user(&mut self, user_id: &str) -> ApiResult<CreatedUser> {
        if user_id.trim().is_empty() {
            return Err(ApiError::invalid("user_id", "must not be empty"));
        }
        if user_id.len() > 128 || user_id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ApiError::invalid(
                "user_id",
                "at most 128 characters, no spaces or control characters",
            ));
        }
        if self.users.contains_key(user_id) {
            return Err(ApiError::conflict(format!(
                "user {user_id:?} already exists"
            )));
        }
        let secret = self.random("us_sim_", 32);
        self.users.insert(
            user_id.to_string(),
            UserRec {
                secret: secret.clone(),
                created_at: self.now,
            },
        );
        Ok(CreatedUser {
            user_id: user_id.to_string(),
            user_secret: Secret::from(secret),
        })
    }

    pub(crate) fn list_users(&self) -> Vec<User> {
        self.users
            .iter()
            .map(|(id, user)| User {
                user_id: id.clone(),
                created_at: Some(user.created_at),
            })
            .collect()
    }

    pub(crate) fn delete_user(&mut self, user_id: &str) -> ApiResult<()> {
        if self.users.remove(user_id).is_none() {
            return Err(ApiError::not_found(format!("user {user_id:?}")));
        }
        let connections: Vec<String> = self
            .connections
            .iter()
            .filter(|(_, c)| c.user_id == user_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in connections {
            self.remove_connection(&id);
        }
        self.requests.retain(|_, r| r.user_id != user_id);
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Connections
    // ---------------------------------------------------------------------------------------

    pub(crate) fn create_connection(
        &mut self,
        user_id: &str,
        request: CreateConnectionRequest,
    ) -> ApiResult<ConnectionRequest> {
        if request.connection_type.is_unknown() {
            return Err(ApiError::invalid(
                "connection_type",
                format!(
                    "{:?} is not one of trade, readonly, market_data",
                    request.connection_type.as_str()
                ),
            ));
        }
        match url::Url::parse(&request.redirect_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return Err(ApiError::invalid(
                    "redirect_url",
                    "must be an absolute http(s) URL",
                ));
            }
        }
        let id = self.random("cr_", 24);
        let expires_at = self.now + ChronoDuration::hours(1);
        self.requests.insert(
            id.clone(),
            ConnRequest {
                user_id: user_id.to_string(),
                connection_type: request.connection_type,
                broker: request.broker,
                redirect_url: request.redirect_url,
                expires_at,
                used: false,
            },
        );
        Ok(ConnectionRequest {
            connection_request_url: format!("{}/oauth/authorize/{id}", self.rest_url),
            expires_at: Some(expires_at),
        })
    }

    /// The OAuth page: completes the flow when a broker is known.
    pub(crate) fn authorize(
        &mut self,
        request_id: &str,
        chosen: Option<&str>,
    ) -> ApiResult<Authorize> {
        let now = self.now;
        let Some(request) = self.requests.get_mut(request_id) else {
            return Err(ApiError::not_found(format!(
                "connection request {request_id:?}"
            )));
        };
        let redirect = |query: &[(&str, &str)], base: &str| -> String {
            match url::Url::parse(base) {
                Ok(mut url) => {
                    url.query_pairs_mut().extend_pairs(query);
                    url.to_string()
                }
                Err(_) => base.to_string(),
            }
        };
        if request.used || request.expires_at < now {
            let why = if request.used {
                "this connection request was already used"
            } else {
                "this connection request expired"
            };
            return Ok(Authorize::Redirect(redirect(
                &[("error", "invalid_request"), ("error_details", why)],
                &request.redirect_url,
            )));
        }
        let broker = match (&request.broker, chosen) {
            (Some(preset), _) => preset.clone(),
            (None, Some(code)) => BrokerCode::from_wire(code),
            (None, None) => {
                let trade = request.connection_type == ConnectionType::Trade;
                return Ok(Authorize::ChooseBroker(
                    BrokerCode::KNOWN
                        .iter()
                        .filter(|b| !trade || b.supports_trading())
                        .cloned()
                        .collect(),
                ));
            }
        };
        let refusal = if broker.is_unknown() {
            Some(format!(
                "{} is not a broker Connect Trade supports",
                broker.as_str()
            ))
        } else if request.connection_type == ConnectionType::Trade && !broker.supports_trading() {
            Some(format!(
                "{} supports read-only connections only, not trade",
                broker.as_str()
            ))
        } else {
            None
        };
        request.used = true;
        let redirect_url = request.redirect_url.clone();
        if let Some(details) = refusal {
            return Ok(Authorize::Redirect(redirect(
                &[("error", "unsupported_broker"), ("error_details", &details)],
                &redirect_url,
            )));
        }
        let user_id = request.user_id.clone();
        let connection_type = request.connection_type.clone();
        let connection_id = self.id("conn");
        let account_id = self.id("acct");
        let number = format!("PA{:08}", self.rng.u32(0..100_000_000));
        self.accounts.insert(
            account_id.clone(),
            AccountRec {
                user_id: user_id.clone(),
                connection_id: connection_id.clone(),
                broker: broker.clone(),
                number,
                cash: self.starting_cash,
                positions: BTreeMap::new(),
                cl_ids: HashSet::new(),
            },
        );
        self.connections.insert(
            connection_id.clone(),
            ConnRec {
                user_id: user_id.clone(),
                broker,
                connection_type,
                accounts: vec![account_id.clone()],
                token: None,
            },
        );
        let txn = self.id("txn");
        self.transactions.push(Transaction {
            account_id: account_id.clone(),
            amount: Some(self.starting_cash),
            description: Some("Initial deposit of the paper account".to_string()),
            price: None,
            quantity: None,
            settlement_date: Some(self.now.date_naive()),
            symbol: None,
            trade_date: Some(self.now.date_naive()),
            transaction_id: txn,
            type_: Some(TransactionType::Deposit),
        });
        let balance = self.balance(&account_id);
        if let Some(balance) = balance {
            self.emit(&user_id, &account_id, Payload::Balance(Box::new(balance)));
        }
        Ok(Authorize::Redirect(redirect(
            &[("connection_id", &connection_id)],
            &redirect_url,
        )))
    }

    fn connection_of(&self, user_id: &str, connection_id: &str) -> ApiResult<&ConnRec> {
        self.connections
            .get(connection_id)
            .filter(|c| c.user_id == user_id)
            .ok_or_else(|| ApiError::not_found(format!("connection {connection_id:?}")))
    }

    fn account_of(&self, user_id: &str, account_id: &str) -> ApiResult<&AccountRec> {
        self.accounts
            .get(account_id)
            .filter(|a| a.user_id == user_id)
            .ok_or_else(|| ApiError::not_found(format!("account {account_id:?}")))
    }

    pub(crate) fn list_connections(&self, user_id: &str) -> Vec<Connection> {
        self.connections
            .iter()
            .filter(|(_, c)| c.user_id == user_id)
            .map(|(id, c)| Connection {
                accounts: c
                    .accounts
                    .iter()
                    .filter_map(|a| {
                        let account = self.accounts.get(a)?;
                        Some(ConnectionAccount {
                            account_id: a.clone(),
                            account_number: Some(account.number.clone()),
                            institution_name: Some(broker_name(&account.broker).to_string()),
                        })
                    })
                    .collect(),
                broker: c.broker.clone(),
                connection_id: id.clone(),
                connection_type: c.connection_type.clone(),
                status: Some("active".to_string()),
            })
            .collect()
    }

    fn remove_connection(&mut self, connection_id: &str) {
        let Some(connection) = self.connections.remove(connection_id) else {
            return;
        };
        if let Some(token) = connection.token {
            self.tokens.remove(&token);
            let _ = self.control.send(Control::TokenRevoked(token));
        }
        for account in &connection.accounts {
            self.accounts.remove(account);
        }
        let accounts: HashSet<&String> = connection.accounts.iter().collect();
        self.orders
            .retain(|o| !accounts.contains(&o.wire.account_id));
        self.order_index = self
            .orders
            .iter()
            .enumerate()
            .map(|(i, o)| (o.wire.order_id.clone(), i))
            .collect();
        self.transactions
            .retain(|t| !accounts.contains(&t.account_id));
    }

    pub(crate) fn delete_connection(
        &mut self,
        user_id: &str,
        connection_id: &str,
    ) -> ApiResult<()> {
        self.connection_of(user_id, connection_id)?;
        self.remove_connection(connection_id);
        Ok(())
    }

    pub(crate) fn market_data_token(
        &mut self,
        user_id: &str,
        connection_id: &str,
    ) -> ApiResult<MarketDataToken> {
        self.connection_of(user_id, connection_id)?;
        let token = self.random("mdt_", 40);
        let expires_at = self.now + ChronoDuration::hours(24);
        let old = self
            .connections
            .get_mut(connection_id)
            .and_then(|c| c.token.replace(token.clone()));
        if let Some(old) = old {
            self.tokens.remove(&old);
            let _ = self.control.send(Control::TokenRevoked(old));
        }
        self.tokens.insert(token.clone(), TokenRec { expires_at });
        Ok(MarketDataToken {
            access_token: Secret::from(token),
            expires_at: Some(expires_at),
        })
    }

    pub(crate) fn user_token(&mut self, scopes: &[TokenScope]) -> ApiResult<UserToken> {
        if scopes.is_empty() {
            return Err(ApiError::invalid(
                "scopes",
                "give [\"read\"] or [\"read\", \"trade\"]",
            ));
        }
        if let Some(bad) = scopes.iter().find(|s| s.is_unknown()) {
            return Err(ApiError::invalid(
                "scopes",
                format!("{:?} is not one of read, trade", bad.as_str()),
            ));
        }
        Ok(UserToken {
            access_token: Secret::from(self.random("ut_sim_", 48)),
            expires_at: Some(self.now + ChronoDuration::hours(1)),
        })
    }

    // ---------------------------------------------------------------------------------------
    // Accounts, balances, positions, transactions
    // ---------------------------------------------------------------------------------------

    /// The user's account ids matching the filters (404 for an unknown one).
    fn account_ids(
        &self,
        user_id: &str,
        account_id: Option<&str>,
        connection_id: Option<&str>,
    ) -> ApiResult<Vec<String>> {
        if let Some(account) = account_id {
            self.account_of(user_id, account)?;
        }
        if let Some(connection) = connection_id {
            self.connection_of(user_id, connection)?;
        }
        Ok(self
            .accounts
            .iter()
            .filter(|(id, a)| {
                a.user_id == user_id
                    && account_id.is_none_or(|want| want == id.as_str())
                    && connection_id.is_none_or(|want| want == a.connection_id)
            })
            .map(|(id, _)| id.clone())
            .collect())
    }

    pub(crate) fn list_accounts(
        &self,
        user_id: &str,
        connection_id: Option<&str>,
        broker: Option<&BrokerCode>,
    ) -> ApiResult<Vec<Account>> {
        let ids = self.account_ids(user_id, None, connection_id)?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let a = self.accounts.get(id)?;
                if broker.is_some_and(|b| *b != a.broker) {
                    return None;
                }
                Some(Account {
                    account_id: id.clone(),
                    account_name: Some(format!("{} paper account", broker_name(&a.broker))),
                    account_number: Some(a.number.clone()),
                    account_type: Some("margin".to_string()),
                    broker: Some(a.broker.clone()),
                    connection_id: Some(a.connection_id.clone()),
                    institution_name: Some(broker_name(&a.broker).to_string()),
                    status: Some("active".to_string()),
                })
            })
            .collect())
    }

    /// Cash set aside for the open buy orders of an account, leaving out order `except`.
    fn reserved(&mut self, account_id: &str, except: Option<usize>) -> Decimal {
        let (tick, now) = (self.tick, self.now);
        let mut reserved = Decimal::ZERO;
        let open: Vec<usize> = (0..self.orders.len())
            .filter(|&i| {
                let o = &self.orders[i];
                Some(i) != except && o.wire.account_id == account_id && o.is_open() && o.buy
            })
            .collect();
        for i in open {
            let o = &self.orders[i];
            let (remaining, multiplier) = (o.remaining(), o.multiplier);
            let limit = o.wire.order_limit_price.or(o.wire.stop_price);
            let single = o.legs.is_empty().then(|| o.wire.symbol.clone()).flatten();
            let price = match (limit, single) {
                (Some(limit), _) => limit.max(Decimal::ZERO),
                (None, Some(symbol)) => self
                    .market
                    .bid_ask(&symbol, tick, now)
                    .map(|(_, ask)| ask)
                    .unwrap_or_default(),
                (None, None) => Decimal::ZERO,
            };
            reserved += remaining * price * multiplier;
        }
        reserved
    }

    fn position_wire(&mut self, account_id: &str, symbol: &str, p: &PosRec) -> Position {
        let last = self
            .market
            .last(symbol, self.tick, self.now)
            .unwrap_or(p.avg);
        let unrealized = cents((last - p.avg) * p.qty * p.multiplier);
        let daily = cents((last - p.day_ref) * p.qty * p.multiplier + p.realized_today);
        Position {
            account_id: Some(account_id.to_string()),
            average_price: Some(round4(p.avg)),
            daily_pl: Some(daily),
            instrument: p.instrument.clone(),
            last_price: Some(last),
            market_value: Some(cents(last * p.qty * p.multiplier)),
            quantity: p.qty,
            symbol: symbol.to_string(),
            total_pl: Some(cents(unrealized + p.realized)),
            unrealized_pl: Some(unrealized),
        }
    }

    pub(crate) fn balance(&mut self, account_id: &str) -> Option<Balance> {
        let account = self.accounts.get(account_id)?;
        let (cash, number) = (account.cash, account.number.clone());
        let positions: Vec<(String, PosRec)> = account
            .positions
            .iter()
            .map(|(s, p)| (s.clone(), p.clone()))
            .collect();
        let mut market_value = Decimal::ZERO;
        for (symbol, p) in &positions {
            let last = self
                .market
                .last(symbol, self.tick, self.now)
                .unwrap_or(p.avg);
            market_value += last * p.qty * p.multiplier;
        }
        let reserved = self.reserved(account_id, None);
        let buying_power = cents(cash - reserved).max(Decimal::ZERO);
        Some(Balance {
            account_id: account_id.to_string(),
            account_number: Some(number),
            buying_power: Some(buying_power),
            cash: Some(cents(cash)),
            currency: Some("USD".to_string()),
            equity: Some(cents(cash + market_value)),
            maintenance_margin: None,
            margin_buying_power: None,
        })
    }

    pub(crate) fn list_balances(
        &mut self,
        user_id: &str,
        account_id: Option<&str>,
        connection_id: Option<&str>,
    ) -> ApiResult<Vec<Balance>> {
        let ids = self.account_ids(user_id, account_id, connection_id)?;
        Ok(ids.iter().filter_map(|id| self.balance(id)).collect())
    }

    pub(crate) fn list_positions(
        &mut self,
        user_id: &str,
        account_id: Option<&str>,
        connection_id: Option<&str>,
        symbols: Option<&[String]>,
    ) -> ApiResult<Vec<Position>> {
        let ids = self.account_ids(user_id, account_id, connection_id)?;
        let mut out = Vec::new();
        for id in ids {
            let positions: Vec<(String, PosRec)> = self.accounts[&id]
                .positions
                .iter()
                .filter(|(s, p)| {
                    !p.qty.is_zero() && symbols.is_none_or(|want| want.iter().any(|w| w == *s))
                })
                .map(|(s, p)| (s.clone(), p.clone()))
                .collect();
            for (symbol, p) in positions {
                out.push(self.position_wire(&id, &symbol, &p));
            }
        }
        Ok(out)
    }

    pub(crate) fn list_transactions(
        &self,
        user_id: &str,
        account_id: Option<&str>,
        connection_id: Option<&str>,
        start: Option<NaiveDate>,
        end: Option<NaiveDate>,
    ) -> ApiResult<Vec<Transaction>> {
        let ids: HashSet<String> = self
            .account_ids(user_id, account_id, connection_id)?
            .into_iter()
            .collect();
        Ok(self
            .transactions
            .iter()
            .filter(|t| {
                ids.contains(&t.account_id)
                    && start.is_none_or(|s| t.trade_date.is_some_and(|d| d >= s))
                    && end.is_none_or(|e| t.trade_date.is_some_and(|d| d <= e))
            })
            .cloned()
            .collect())
    }

    // ---------------------------------------------------------------------------------------
    // Orders
    // ---------------------------------------------------------------------------------------

    fn order_mut(&mut self, idx: usize) -> &mut OrderRec {
        &mut self.orders[idx]
    }

    fn emit_order(&self, idx: usize) {
        let o = &self.orders[idx];
        self.emit(
            &o.user_id,
            &o.wire.account_id,
            Payload::Order(Box::new(o.wire.clone())),
        );
    }

    fn set_status(&mut self, idx: usize, status: OrderStatus, broker_status: &str) {
        let now = self.now;
        let o = self.order_mut(idx);
        let was_open = o.wire.status.is_open() && o.wire.status != OrderStatus::Pending;
        // Buying power changes when a buy starts resting or stops resting without a fill.
        let moves_buying_power = o.buy
            && match &status {
                OrderStatus::Working => o.wire.status == OrderStatus::Pending,
                OrderStatus::Cancelled | OrderStatus::Expired | OrderStatus::Replaced => was_open,
                _ => false,
            };
        o.wire.status = status;
        o.wire.broker_status = Some(broker_status.to_string());
        o.wire.updated_at = Some(now);
        let (user_id, account_id) = (o.user_id.clone(), o.wire.account_id.clone());
        self.emit_order(idx);
        if moves_buying_power && let Some(balance) = self.balance(&account_id) {
            self.emit(&user_id, &account_id, Payload::Balance(Box::new(balance)));
        }
    }

    fn find_order(&self, user_id: &str, account_id: &str, order_id: &str) -> ApiResult<usize> {
        self.account_of(user_id, account_id)?;
        self.order_index
            .get(order_id)
            .copied()
            .filter(|&i| self.orders[i].wire.account_id == account_id)
            .ok_or_else(|| {
                ApiError::not_found(format!("order {order_id:?} of account {account_id:?}"))
            })
    }

    pub(crate) fn get_order(
        &self,
        user_id: &str,
        account_id: &str,
        order_id: &str,
    ) -> ApiResult<Order> {
        let idx = self.find_order(user_id, account_id, order_id)?;
        Ok(self.orders[idx].wire.clone())
    }

    /// Checks what every order needs, returning the account's broker check too.
    fn tradable_account(
        &self,
        user_id: &str,
        account_id: &str,
        broker: &BrokerCode,
    ) -> ApiResult<()> {
        let account = self.account_of(user_id, account_id)?;
        if *broker != account.broker {
            return Err(ApiError::invalid(
                "broker",
                format!(
                    "account {account_id} is at {}, not {}",
                    account.broker, broker
                ),
            ));
        }
        let connection = self.connections.get(&account.connection_id);
        if connection.is_none_or(|c| c.connection_type != ConnectionType::Trade) {
            return Err(ApiError::unauthorized(format!(
                "account {account_id} belongs to a connection that is not of type trade: \
                 create a trade connection to place orders"
            )));
        }
        Ok(())
    }

    fn claim_cl_order_id(&mut self, account_id: &str, cl_order_id: &str) -> ApiResult<()> {
        if cl_order_id.trim().is_empty() {
            return Err(ApiError::invalid("cl_order_id", "must not be empty"));
        }
        let day = self.now.date_naive();
        let account = self
            .accounts
            .get_mut(account_id)
            .ok_or_else(|| ApiError::not_found(format!("account {account_id:?}")))?;
        if !account.cl_ids.insert((day, cl_order_id.to_string())) {
            return Err(ApiError::conflict(format!(
                "cl_order_id {cl_order_id:?} was already used today on account {account_id}"
            )));
        }
        Ok(())
    }

    pub(crate) fn place_order(
        &mut self,
        user_id: &str,
        req: PlaceOrderRequest,
    ) -> ApiResult<Order> {
        // Shape checks first: 400 naming the field.
        if req.order_type.is_unknown() {
            return Err(ApiError::invalid(
                "order_type",
                format!(
                    "{:?} is not one of MKT, LMT, STP, STPLMT",
                    req.order_type.as_str()
                ),
            ));
        }
        if req.order_tif.is_unknown() {
            return Err(ApiError::invalid(
                "order_tif",
                format!("{:?} is not a known time in force", req.order_tif.as_str()),
            ));
        }
        let instrument = req.instrument.clone().unwrap_or_else(|| {
            if !req.legs.is_empty() {
                Instrument::MultiLegOption
            } else if req.symbol.as_deref().and_then(parse_option).is_some() {
                Instrument::Option
            } else {
                Instrument::Equity
            }
        });
        if instrument.is_unknown() {
            return Err(ApiError::invalid(
                "instrument",
                format!(
                    "{:?} is not one of STK, OPT, MLEG_OPT, FUT",
                    instrument.as_str()
                ),
            ));
        }
        let multi = instrument == Instrument::MultiLegOption;
        if multi {
            if !(2..=4).contains(&req.legs.len()) {
                return Err(ApiError::invalid(
                    "legs",
                    "a multi-leg order has 2 to 4 legs",
                ));
            }
            if req.symbol.is_some() {
                return Err(ApiError::invalid(
                    "symbol",
                    "must be null for a multi-leg order (the legs carry the symbols)",
                ));
            }
            for (i, leg) in req.legs.iter().enumerate() {
                if leg.action.is_buy().is_none() {
                    return Err(ApiError::invalid(
                        &format!("legs[{i}].action"),
                        format!("{:?} is not an order side", leg.action.as_str()),
                    ));
                }
                if leg.ratio <= Decimal::ZERO {
                    return Err(ApiError::invalid(
                        &format!("legs[{i}].ratio"),
                        "must be positive",
                    ));
                }
                if leg.symbol.trim().is_empty() {
                    return Err(ApiError::invalid(
                        &format!("legs[{i}].symbol"),
                        "must not be empty",
                    ));
                }
            }
        } else {
            if !req.legs.is_empty() {
                return Err(ApiError::invalid(
                    "legs",
                    "only multi-leg orders (instrument MLEG_OPT) have legs",
                ));
            }
            if req.symbol.as_deref().is_none_or(|s| s.trim().is_empty()) {
                return Err(ApiError::invalid(
                    "symbol",
                    "required (null only for multi-leg orders)",
                ));
            }
            match &req.side {
                None => return Err(ApiError::invalid("side", "required")),
                Some(side) if side.is_buy().is_none() => {
                    return Err(ApiError::invalid(
                        "side",
                        format!("{:?} is not an order side", side.as_str()),
                    ));
                }
                _ => {}
            }
        }
        match (req.order_qty, req.order_notional) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "order_qty",
                    "give order_qty or order_notional, not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    "order_qty",
                    "required (or order_notional)",
                ));
            }
            (Some(q), None) if q <= Decimal::ZERO => {
                return Err(ApiError::invalid("order_qty", "must be positive"));
            }
            (None, Some(n)) if n <= Decimal::ZERO => {
                return Err(ApiError::invalid("order_notional", "must be positive"));
            }
            (None, Some(_))
                if req.order_type != OrderType::Market || instrument != Instrument::Equity =>
            {
                return Err(ApiError::invalid(
                    "order_notional",
                    "only market orders of equities take a notional",
                ));
            }
            _ => {}
        }
        let needs_limit = matches!(req.order_type, OrderType::Limit | OrderType::StopLimit);
        let needs_stop = matches!(req.order_type, OrderType::Stop | OrderType::StopLimit);
        match req.order_limit_price {
            None if needs_limit => {
                return Err(ApiError::invalid(
                    "order_limit_price",
                    format!("required for {} orders", req.order_type),
                ));
            }
            Some(_) if !needs_limit => {
                return Err(ApiError::invalid(
                    "order_limit_price",
                    format!("not used by {} orders", req.order_type),
                ));
            }
            Some(p) if !multi && p <= Decimal::ZERO => {
                return Err(ApiError::invalid("order_limit_price", "must be positive"));
            }
            _ => {}
        }
        match req.stop_price {
            None if needs_stop => {
                return Err(ApiError::invalid(
                    "stop_price",
                    format!("required for {} orders", req.order_type),
                ));
            }
            Some(_) if !needs_stop => {
                return Err(ApiError::invalid(
                    "stop_price",
                    format!("not used by {} orders", req.order_type),
                ));
            }
            Some(p) if p <= Decimal::ZERO => {
                return Err(ApiError::invalid("stop_price", "must be positive"));
            }
            _ => {}
        }
        self.tradable_account(user_id, &req.account_id, &req.broker)?;
        self.claim_cl_order_id(&req.account_id, &req.cl_order_id)?;

        let order_id = self.id("ord");
        let symbol = req.symbol.as_ref().map(|s| s.trim().to_ascii_uppercase());
        let legs: Vec<LegRec> = req
            .legs
            .iter()
            .map(|l| LegRec {
                symbol: l.symbol.trim().to_ascii_uppercase(),
                buy: l.action.is_buy().unwrap_or(true),
                ratio: l.ratio,
            })
            .collect();
        let buy = if multi {
            true
        } else {
            req.side.as_ref().and_then(|s| s.is_buy()).unwrap_or(true)
        };
        let multiplier = if instrument == Instrument::Equity {
            Decimal::ONE
        } else {
            Decimal::from(100)
        };
        let wire = Order {
            account_id: req.account_id.clone(),
            avg_fill_price: None,
            broker: Some(req.broker.clone()),
            broker_status: Some("received".to_string()),
            cl_order_id: Some(req.cl_order_id.clone()),
            created_at: Some(self.now),
            filled_qty: Some(Decimal::ZERO),
            fills: Vec::new(),
            instrument: Some(instrument.clone()),
            legs: req
                .legs
                .iter()
                .zip(&legs)
                .map(|(l, r)| OrderLeg {
                    action: l.action.clone(),
                    ratio: l.ratio,
                    symbol: r.symbol.clone(),
                })
                .collect(),
            order_id: order_id.clone(),
            order_limit_price: req.order_limit_price,
            order_notional: req.order_notional,
            order_qty: req.order_qty,
            order_tif: Some(req.order_tif.clone()),
            order_type: Some(req.order_type.clone()),
            reject_reason: None,
            replaced_by: None,
            side: req.side.clone(),
            status: OrderStatus::Pending,
            stop_price: req.stop_price,
            symbol: symbol.clone(),
            updated_at: Some(self.now),
        };
        let seq = self.next_id;
        self.orders.push(OrderRec {
            wire,
            seq,
            user_id: user_id.to_string(),
            qty: req.order_qty.unwrap_or_default(),
            filled: Decimal::ZERO,
            cost: Decimal::ZERO,
            buy,
            multiplier,
            legs,
            triggered: false,
        });
        let idx = self.orders.len() - 1;
        self.order_index.insert(order_id, idx);
        self.emit_order(idx);

        if let Some(reason) = self.rejection(idx, &instrument) {
            let o = self.order_mut(idx);
            o.wire.reject_reason = Some(reason);
            self.set_status(idx, OrderStatus::Rejected, "rejected");
            return Ok(self.orders[idx].wire.clone());
        }
        self.set_status(idx, OrderStatus::Working, "accepted");
        self.execute(idx);
        Ok(self.orders[idx].wire.clone())
    }

    /// Why the broker refuses the order, if it does.
    fn rejection(&mut self, idx: usize, instrument: &Instrument) -> Option<String> {
        let (tick, now) = (self.tick, self.now);
        if *instrument == Instrument::Future {
            return Some("futures are not traded by the simulated paper broker".to_string());
        }
        let symbols: Vec<String> = self.orders[idx]
            .symbols()
            .iter()
            .map(|s| s.to_string())
            .collect();
        for symbol in &symbols {
            let is_option =
                parse_option(symbol).is_some_and(|spec| self.market.underlying_of(&spec).is_some());
            let known = match instrument {
                Instrument::Equity => self.market.knows_equity(symbol),
                _ => is_option,
            };
            if !known {
                return Some(format!("unknown symbol {symbol}"));
            }
            if let Some(spec) = parse_option(symbol)
                && spec.expiry < now.date_naive()
            {
                return Some(format!("option {symbol} has expired"));
            }
        }
        // Quantity of a notional order, from the ask now.
        let o = &self.orders[idx];
        if let (Some(notional), Some(symbol)) = (o.wire.order_notional, symbols.first()) {
            let (bid, ask) = self.market.bid_ask(symbol, tick, now)?;
            let price = if o.buy { ask } else { bid };
            let qty = (notional / price).round_dp_with_strategy(4, RoundingStrategy::ToZero);
            if qty <= Decimal::ZERO {
                return Some("order_notional buys less than 0.0001 share".to_string());
            }
            self.order_mut(idx).qty = qty;
        }
        let o = &self.orders[idx];
        let (account_id, buy, qty, multiplier) =
            (o.wire.account_id.clone(), o.buy, o.qty, o.multiplier);
        let side = o.wire.side.clone();
        let limit = o.wire.order_limit_price.or(o.wire.stop_price);
        let legs = o.legs.clone();
        // Buying power: what a buy costs at its limit (or the ask now).
        let cost = if legs.is_empty() {
            if buy {
                let price = match limit {
                    Some(l) => l,
                    None => self.market.bid_ask(&symbols[0], tick, now)?.1,
                };
                qty * price * multiplier
            } else {
                Decimal::ZERO
            }
        } else {
            let net = match limit {
                Some(l) => l,
                None => self.net_price(&legs)?,
            };
            (qty * net * multiplier).max(Decimal::ZERO)
        };
        // The order is already in the book: leave it out of what is reserved.
        let cash = self
            .accounts
            .get(&account_id)
            .map(|a| a.cash)
            .unwrap_or_default();
        let available = cents(cash - self.reserved(&account_id, Some(idx))).max(Decimal::ZERO);
        if cost > available {
            return Some(format!(
                "insufficient buying power: the order needs {} and the account has {}",
                cents(cost),
                available
            ));
        }
        if matches!(side, Some(OrderSide::Sell) | Some(OrderSide::SellToClose)) {
            let held = self
                .accounts
                .get(&account_id)
                .and_then(|a| a.positions.get(&symbols[0]))
                .map(|p| p.qty)
                .unwrap_or_default();
            let selling: Decimal = self
                .orders
                .iter()
                .filter(|other| {
                    other.wire.account_id == account_id
                        && other.is_open()
                        && !other.buy
                        && other.wire.order_id != self.orders[idx].wire.order_id
                        && other.wire.symbol.as_deref() == Some(symbols[0].as_str())
                })
                .map(|other| other.remaining())
                .sum();
            if qty + selling > held {
                return Some(format!(
                    "insufficient position: selling {qty} {} but {held} held ({selling} already on sale); use SELL_SHORT to go short",
                    symbols[0]
                ));
            }
        }
        None
    }

    /// The net price of legs now: buys at the ask, sells at the bid (positive = debit).
    fn net_price(&mut self, legs: &[LegRec]) -> Option<Decimal> {
        let (tick, now) = (self.tick, self.now);
        let mut net = Decimal::ZERO;
        for leg in legs {
            let (bid, ask) = self.market.bid_ask(&leg.symbol, tick, now)?;
            net += if leg.buy {
                ask * leg.ratio
            } else {
                -(bid * leg.ratio)
            };
        }
        Some(net)
    }

    /// Tries to fill an open order at the current prices.
    fn execute(&mut self, idx: usize) {
        let (tick, now) = (self.tick, self.now);
        let o = &self.orders[idx];
        if !matches!(
            o.wire.status,
            OrderStatus::Working | OrderStatus::PartiallyFilled
        ) {
            return;
        }
        let order_type = o.wire.order_type.clone().unwrap_or(OrderType::Market);
        let tif = o.wire.order_tif.clone().unwrap_or(TimeInForce::Day);
        let (buy, legs, remaining) = (o.buy, o.legs.clone(), o.remaining());
        let (limit, stop, triggered) = (o.wire.order_limit_price, o.wire.stop_price, o.triggered);
        let symbol = o.wire.symbol.clone().unwrap_or_default();
        let price = if legs.is_empty() {
            match self.market.bid_ask(&symbol, tick, now) {
                Some((bid, ask)) => {
                    if buy {
                        ask
                    } else {
                        bid
                    }
                }
                None => return,
            }
        } else {
            match self.net_price(&legs) {
                Some(net) => net,
                None => return,
            }
        };
        if matches!(order_type, OrderType::Stop | OrderType::StopLimit) && !triggered {
            let Some(stop) = stop else { return };
            let hit = if buy { price >= stop } else { price <= stop };
            if !hit {
                return self.unfilled(idx, &tif);
            }
            self.order_mut(idx).triggered = true;
            let status = self.orders[idx].wire.status.clone();
            self.set_status(idx, status, "triggered");
        }
        if matches!(order_type, OrderType::Limit | OrderType::StopLimit) {
            let Some(limit) = limit else { return };
            let ok = if buy { price <= limit } else { price >= limit };
            if !ok {
                return self.unfilled(idx, &tif);
            }
        }
        let available = if legs.is_empty() {
            self.market.fill_size
        } else {
            remaining
        };
        if tif == TimeInForce::Fok && remaining > available {
            let o = self.order_mut(idx);
            o.wire.reject_reason = Some(format!(
                "fill or kill: only {available} available at the price"
            ));
            return self.set_status(idx, OrderStatus::Cancelled, "not filled (FOK)");
        }
        self.fill(idx, remaining.min(available), price);
        if self.orders[idx].remaining() > Decimal::ZERO && tif == TimeInForce::Ioc {
            self.set_status(idx, OrderStatus::Cancelled, "rest cancelled (IOC)");
        }
    }

    /// An order that could not fill now: IOC and FOK end here.
    fn unfilled(&mut self, idx: usize, tif: &TimeInForce) {
        if matches!(tif, TimeInForce::Ioc | TimeInForce::Fok) {
            self.set_status(idx, OrderStatus::Cancelled, "not filled");
        }
    }

    fn fill(&mut self, idx: usize, qty: Decimal, price: Decimal) {
        if qty <= Decimal::ZERO {
            return;
        }
        let now = self.now;
        let fill_id = self.id("fill");
        let o = self.order_mut(idx);
        o.filled += qty;
        o.cost += qty * price;
        o.wire.fills.push(Fill {
            fill_id,
            price,
            quantity: qty,
            time: Some(now),
        });
        o.wire.filled_qty = Some(o.filled);
        o.wire.avg_fill_price = Some(round4(o.cost / o.filled));
        let done = o.remaining().is_zero();
        let (account_id, user_id, buy, multiplier) = (
            o.wire.account_id.clone(),
            o.user_id.clone(),
            o.buy,
            o.multiplier,
        );
        let symbol = o.wire.symbol.clone();
        let instrument = o.wire.instrument.clone();
        let legs = o.legs.clone();
        if done {
            self.set_status(idx, OrderStatus::Filled, "filled");
        } else {
            self.set_status(idx, OrderStatus::PartiallyFilled, "partially filled");
        }
        // The books: one leg per symbol.
        let (tick, now) = (self.tick, self.now);
        let mut bookings: Vec<(String, bool, Decimal, Decimal, Option<Instrument>)> = Vec::new();
        if legs.is_empty() {
            bookings.push((symbol.unwrap_or_default(), buy, qty, price, instrument));
        } else {
            for leg in &legs {
                let (bid, ask) = self
                    .market
                    .bid_ask(&leg.symbol, tick, now)
                    .unwrap_or_default();
                bookings.push((
                    leg.symbol.clone(),
                    leg.buy,
                    qty * leg.ratio,
                    if leg.buy { ask } else { bid },
                    Some(Instrument::Option),
                ));
            }
        }
        for (symbol, buy, qty, price, instrument) in bookings {
            self.book(
                &user_id,
                &account_id,
                &symbol,
                buy,
                qty,
                price,
                multiplier,
                instrument,
            );
        }
        if let Some(balance) = self.balance(&account_id) {
            self.emit(&user_id, &account_id, Payload::Balance(Box::new(balance)));
        }
    }

    /// Books one execution: position, cash, transaction, position event.
    #[allow(clippy::too_many_arguments)]
    fn book(
        &mut self,
        user_id: &str,
        account_id: &str,
        symbol: &str,
        buy: bool,
        qty: Decimal,
        price: Decimal,
        multiplier: Decimal,
        instrument: Option<Instrument>,
    ) {
        let now = self.now;
        let txn = self.id("txn");
        let Some(account) = self.accounts.get_mut(account_id) else {
            return;
        };
        let signed = if buy { qty } else { -qty };
        account.cash -= signed * price * multiplier;
        let p = account
            .positions
            .entry(symbol.to_string())
            .or_insert_with(|| PosRec {
                instrument,
                multiplier,
                ..PosRec::default()
            });
        if p.qty.is_zero() || p.qty.is_sign_positive() == signed.is_sign_positive() {
            let total = p.qty.abs() + qty;
            p.avg = ((p.avg * p.qty.abs() + price * qty) / total).round_dp(8);
            p.day_ref = ((p.day_ref * p.qty.abs() + price * qty) / total).round_dp(8);
            p.qty += signed;
        } else {
            let closing = qty.min(p.qty.abs());
            let direction = if p.qty.is_sign_positive() {
                Decimal::ONE
            } else {
                Decimal::NEGATIVE_ONE
            };
            p.realized += (price - p.avg) * closing * direction * multiplier;
            p.realized_today += (price - p.day_ref) * closing * direction * multiplier;
            p.qty += signed;
            if !p.qty.is_zero() && p.qty.is_sign_positive() == signed.is_sign_positive() {
                // Flipped: the rest opens at this price.
                p.avg = price;
                p.day_ref = price;
            }
        }
        let snapshot = p.clone();
        let verb = if buy { "Bought" } else { "Sold" };
        self.transactions.push(Transaction {
            account_id: account_id.to_string(),
            amount: Some(cents(-signed * price * multiplier)),
            description: Some(format!("{verb} {qty} {symbol} @ {price}")),
            price: Some(price),
            quantity: Some(qty),
            settlement_date: Some(now.date_naive() + ChronoDuration::days(1)),
            symbol: Some(symbol.to_string()),
            trade_date: Some(now.date_naive()),
            transaction_id: txn,
            type_: Some(if buy {
                TransactionType::Buy
            } else {
                TransactionType::Sell
            }),
        });
        let position = self.position_wire(account_id, symbol, &snapshot);
        self.emit(user_id, account_id, Payload::Position(Box::new(position)));
    }

    pub(crate) fn cancel_order(
        &mut self,
        user_id: &str,
        account_id: &str,
        order_id: &str,
    ) -> ApiResult<()> {
        let idx = self.find_order(user_id, account_id, order_id)?;
        let status = self.orders[idx].wire.status.clone();
        match status {
            OrderStatus::PendingCancel => Ok(()),
            s if s.is_open() => {
                self.set_status(idx, OrderStatus::PendingCancel, "cancel requested");
                Ok(())
            }
            s => Err(ApiError::invalid(
                "order_id",
                format!("order {order_id} is {s}: only open orders can be cancelled"),
            )),
        }
    }

    pub(crate) fn modify_order(
        &mut self,
        user_id: &str,
        account_id: &str,
        order_id: &str,
        req: ModifyOrderRequest,
    ) -> ApiResult<Order> {
        let idx = self.find_order(user_id, account_id, order_id)?;
        self.tradable_account(user_id, account_id, &req.broker)?;
        let old = &self.orders[idx];
        if !matches!(
            old.wire.status,
            OrderStatus::Working | OrderStatus::PartiallyFilled | OrderStatus::Pending
        ) {
            return Err(ApiError::invalid(
                "order_id",
                format!(
                    "order {order_id} is {}: only working orders can be modified",
                    old.wire.status
                ),
            ));
        }
        let order_type = old.wire.order_type.clone().unwrap_or(OrderType::Market);
        if req.order_limit_price.is_some()
            && !matches!(order_type, OrderType::Limit | OrderType::StopLimit)
        {
            return Err(ApiError::invalid(
                "order_limit_price",
                format!("not used by {order_type} orders"),
            ));
        }
        if req.stop_price.is_some() && !matches!(order_type, OrderType::Stop | OrderType::StopLimit)
        {
            return Err(ApiError::invalid(
                "stop_price",
                format!("not used by {order_type} orders"),
            ));
        }
        if req.order_notional.is_some() {
            return Err(ApiError::invalid(
                "order_notional",
                "only market orders take a notional, and they cannot be modified",
            ));
        }
        if let Some(q) = req.order_qty
            && q <= Decimal::ZERO
        {
            return Err(ApiError::invalid("order_qty", "must be positive"));
        }
        for (field, value) in [
            ("order_limit_price", req.order_limit_price),
            ("stop_price", req.stop_price),
        ] {
            if value.is_some_and(|v| v <= Decimal::ZERO) && old.legs.is_empty() {
                return Err(ApiError::invalid(field, "must be positive"));
            }
        }
        self.claim_cl_order_id(account_id, &req.new_cl_order_id)?;
        self.set_status(idx, OrderStatus::PendingReplace, "replace requested");

        let new_id = self.id("ord");
        let seq = self.next_id;
        let now = self.now;
        let old = &self.orders[idx];
        let qty = req.order_qty.unwrap_or_else(|| old.remaining());
        let mut wire = old.wire.clone();
        wire.order_id = new_id.clone();
        wire.cl_order_id = Some(req.new_cl_order_id.clone());
        wire.order_qty = Some(qty);
        wire.order_notional = None;
        wire.order_limit_price = req.order_limit_price.or(old.wire.order_limit_price);
        wire.stop_price = req.stop_price.or(old.wire.stop_price);
        wire.fills = Vec::new();
        wire.filled_qty = Some(Decimal::ZERO);
        wire.avg_fill_price = None;
        wire.status = OrderStatus::Pending;
        wire.broker_status = Some("received".to_string());
        wire.created_at = Some(now);
        wire.updated_at = Some(now);
        wire.replaced_by = None;
        let new = OrderRec {
            wire,
            seq,
            user_id: old.user_id.clone(),
            qty,
            filled: Decimal::ZERO,
            cost: Decimal::ZERO,
            buy: old.buy,
            multiplier: old.multiplier,
            legs: old.legs.clone(),
            triggered: old.triggered,
        };
        self.order_mut(idx).wire.replaced_by = Some(new_id.clone());
        self.set_status(idx, OrderStatus::Replaced, "replaced");
        self.orders.push(new);
        let new_idx = self.orders.len() - 1;
        self.order_index.insert(new_id, new_idx);
        self.emit_order(new_idx);
        self.set_status(new_idx, OrderStatus::Working, "accepted");
        self.execute(new_idx);
        Ok(self.orders[new_idx].wire.clone())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn list_orders(
        &self,
        user_id: &str,
        account_id: Option<&str>,
        connection_id: Option<&str>,
        status: Option<&OrderStatusFilter>,
        symbols: Option<&[String]>,
        side: Option<&OrderSide>,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        sort: Option<&SortOrder>,
        limit: usize,
        offset: usize,
    ) -> ApiResult<OrderPage> {
        let accounts: HashSet<String> = self
            .account_ids(user_id, account_id, connection_id)?
            .into_iter()
            .collect();
        let status = status.cloned().unwrap_or(OrderStatusFilter::Open);
        let start = start.unwrap_or_else(|| midnight(self.now));
        let mut matching: Vec<&OrderRec> = self
            .orders
            .iter()
            .filter(|o| {
                let created = o.wire.created_at.unwrap_or(self.now);
                accounts.contains(&o.wire.account_id)
                    && status.matches(&o.wire.status)
                    && symbols
                        .is_none_or(|want| o.symbols().iter().any(|s| want.iter().any(|w| w == s)))
                    && side.is_none_or(|want| o.wire.side.as_ref() == Some(want))
                    && created >= start
                    && end.is_none_or(|e| created < e)
            })
            .collect();
        matching.sort_by_key(|o| o.seq);
        if sort != Some(&SortOrder::Asc) {
            matching.reverse();
        }
        let page: Vec<Order> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|o| o.wire.clone())
            .collect();
        let next = offset + page.len();
        Ok(OrderPage {
            next_cursor: (next < matching.len()).then(|| format!("cur_{next}")),
            prev_cursor: (offset > 0).then(|| format!("cur_{}", offset.saturating_sub(limit))),
            orders: page,
        })
    }

    // ---------------------------------------------------------------------------------------
    // Time
    // ---------------------------------------------------------------------------------------

    /// One step of the clock: prices move, day boundaries pass, orders work.
    pub(crate) fn step(&mut self, tick_length: ChronoDuration) {
        let before = self.now;
        self.now += tick_length;
        self.tick += 1;
        self.market.advance_all(self.tick);
        let mut day = before.date_naive();
        while day <= self.now.date_naive() {
            if let Some(close) = day
                .and_hms_opt(CLOSE, 0, 0)
                .map(|t| Utc.from_utc_datetime(&t))
                && before < close
                && close <= self.now
            {
                self.close_market();
            }
            day += ChronoDuration::days(1);
            let next_midnight = Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN));
            if before < next_midnight && next_midnight <= self.now {
                self.new_day();
            }
        }
        for idx in 0..self.orders.len() {
            if self.orders[idx].wire.status == OrderStatus::PendingCancel {
                self.set_status(idx, OrderStatus::Cancelled, "cancelled");
            } else {
                self.execute(idx);
            }
        }
    }

    /// The close: DAY orders (and OPEN, CLOSE, DAY+) still open expire.
    pub(crate) fn close_market(&mut self) {
        for idx in 0..self.orders.len() {
            let o = &self.orders[idx];
            let day_order = !matches!(
                o.wire.order_tif,
                Some(TimeInForce::Gtc) | Some(TimeInForce::GtcPlus)
            );
            if o.is_open() && day_order {
                self.set_status(idx, OrderStatus::Expired, "expired at the close");
            }
        }
    }

    fn new_day(&mut self) {
        self.market.new_day();
        let (tick, now) = (self.tick, self.now);
        let symbols: Vec<String> = self
            .accounts
            .values()
            .flat_map(|a| a.positions.keys().cloned())
            .collect();
        let mut last: HashMap<String, Decimal> = HashMap::new();
        for symbol in symbols {
            if let Some(price) = self.market.last(&symbol, tick, now) {
                last.insert(symbol, price);
            }
        }
        for account in self.accounts.values_mut() {
            for (symbol, p) in account.positions.iter_mut() {
                if let Some(price) = last.get(symbol) {
                    p.day_ref = *price;
                }
                p.realized_today = Decimal::ZERO;
            }
        }
        self.tokens.retain(|_, t| t.expires_at > now);
    }

    /// The current quote-side price of a symbol, for the handle.
    pub(crate) fn price(&mut self, symbol: &str) -> Option<Decimal> {
        self.market.last(symbol, self.tick, self.now)
    }
}
