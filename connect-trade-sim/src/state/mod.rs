//! The simulated world: users, connections, accounts and the paper broker that fills orders.
//!
//! Everything here is synchronous and runs under one lock, so every change is atomic and
//! every event leaves in the order the changes happened. One file per resource:
//! - [`users`]: users, connections (with the OAuth page) and tokens;
//! - [`accounts`]: accounts, balances, positions and transactions (and booking executions);
//! - [`orders`]: orders, from checking a request to filling it;
//! - [`clock`]: time passing (ticks, the close, new days).

/// A type of `connect_trade::rest::types` built through its generated builder, written like a
/// struct literal: `rest_type!(Account { account_id: id, status: Some(s) })`.
///
/// A struct literal names every field, so one optional field more upstream (what a refresh
/// of the spec brings, README "Tracking upstream") would stop the simulator from building;
/// the builder starts every field not given absent (or at its default), so the simulator
/// keeps building and answers without it. Every required field is given at each use, so the
/// conversion cannot fail; if one is forgotten, the panic names the type and the field.
macro_rules! rest_type {
    ($ty:ident { $($field:ident $(: $value:expr)?),* $(,)? }) => {
        match $ty::try_from($ty::builder()$(.$field($crate::state::rest_type!(@value $field $(, $value)?)))*) {
            Ok(value) => value,
            Err(error) => panic!(
                "the simulator gives every required field of {}: {error}",
                stringify!($ty)
            ),
        }
    };
    (@value $field:ident) => {
        $field
    };
    (@value $field:ident, $value:expr) => {
        $value
    };
}
pub(crate) use rest_type;

mod accounts;
mod clock;
mod orders;
mod users;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use tokio::sync::broadcast;

use crate::market::Market;
use connect_trade::{
    codes::BrokerCode,
    rest::types::{Balance, Order, Position, Transaction},
};

use accounts::AccountRec;
use orders::OrderRec;
pub(crate) use users::TokenRec;
use users::{ConnRec, ConnRequest, UserRec};

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
    /// The latest order creation time given out: creation times strictly increase, so order
    /// history can be paged by time window (as a client must when `GET /orders` gives no
    /// cursors) even when many orders are placed within one tick.
    last_created: Option<DateTime<Utc>>,
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
            last_created: None,
        }
    }

    /// The creation time of an order created now: the clock's time, one microsecond after
    /// the previous order's when several are created within one tick.
    fn creation_time(&mut self) -> DateTime<Utc> {
        let at = match self.last_created {
            Some(last) if last >= self.now => last + chrono::Duration::microseconds(1),
            _ => self.now,
        };
        self.last_created = Some(at);
        at
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
}
