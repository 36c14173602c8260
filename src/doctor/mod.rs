//! `connect-trade-doctor`: holds our spec against a live Connect Trade (feature `doctor`).
//!
//! Our `spec/openapi.json` and stream formats are a reconstruction. The doctor asks the real
//! API (or anything at `--base-url`) the read-only questions a user's credentials can answer
//! and checks every answer twice: against the JSON Schema of the spec (with the `jsonschema`
//! validator; OpenAPI 3.0 `nullable` converted) and through the generated types. Stream frames
//! are checked against the JSON Schemas of [`crate::stream::protocol`]. The [`Report`] lists,
//! per operation, OK or each divergence with its path, what the spec says and what was seen,
//! aggregated over every object seen.
//!
//! **Read-only by default**: `GET /users`, then for the user `GET /connections`, `/accounts`,
//! `/balances`, `/positions`, `/orders` (status `all`, a few pages), one
//! `GET /accounts/{account_id}/orders/{order_id}`, and `/transactions`. Nothing else is sent
//! unless asked: the market data probe (`GET /connections/{id}/token`, which ends the sessions
//! on that connection's previous token, then the market data stream) and the brokerage stream
//! probe (a new session replaces the platform's running one). It never sends POST, PATCH or
//! DELETE.
//!
//! With [`DoctorOptions::capture_dir`] it writes what was sent and received, redacted (see
//! [`capture`]), for `cargo xtask spec learn` to turn into a spec change.

pub mod capture;
mod report;
mod schema;
mod streams;

use std::{collections::HashMap, fmt, future::Future, path::PathBuf, time::Duration};

use progenitor_client::ResponseValue;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

pub use report::{Divergence, OperationReport, Report};

use crate::{
    client::parse_base_url,
    credentials::{PlatformCredentials, UserCredentials},
};
use capture::{Exchange, Frame, StreamSession};
use report::OperationAggregate;
use schema::Checker;

/// The spec this build of the SDK was generated from.
pub const BUILT_IN_SPEC: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/spec/openapi.json"));

/// What the doctor says before it sends anything.
pub const READ_ONLY_NOTICE: &str = "Read-only: only GET requests (GET /users, and for the user \
    GET /connections, /accounts, /balances, /positions, /orders, one order, /transactions). \
    Nothing is placed, changed, cancelled or deleted.";

/// The documented consequence of `--market-data`, printed before the probe runs.
pub const MARKET_DATA_CONSEQUENCE: &str = "--market-data: fetching a market data token \
    (GET /connections/{connection_id}/token) ends the sessions on that connection's previous \
    token: a market data stream of yours using it will be disconnected.";

/// The documented consequence of `--brokerage-stream`, printed before the probe runs.
pub const BROKERAGE_STREAM_CONSEQUENCE: &str = "--brokerage-stream: a new brokerage stream \
    session replaces the platform's running one: a brokerage stream of yours will be \
    disconnected (session replaced) while the doctor reads.";

/// What to check and where.
#[derive(Clone, Debug)]
pub struct DoctorOptions {
    /// The REST base URL (default [`crate::client::DEFAULT_BASE_URL`]).
    pub base_url: String,
    /// The platform's credentials.
    pub platform: PlatformCredentials,
    /// A user's credentials: without them only `GET /users` is checked.
    pub user: Option<UserCredentials>,
    /// How many pages of `GET /orders` to read at most (default 3).
    pub order_pages: u32,
    /// `limit` of each `GET /orders` page (default: the server's).
    pub order_page_size: Option<u32>,
    /// Write redacted captures here.
    pub capture_dir: Option<PathBuf>,
    /// Opt-in: fetch this connection's market data token and read its stream.
    pub market_data: Option<String>,
    /// The symbol the market data probe subscribes (default `AAPL`).
    pub market_data_symbol: String,
    /// The market data stream URL.
    pub market_data_url: String,
    /// Opt-in: read the brokerage stream.
    pub brokerage_stream: bool,
    /// The brokerage stream URL.
    pub brokerage_url: String,
    /// How long each probe reads after the reply to `subscribe` (default 10 s)…
    pub stream_duration: Duration,
    /// …or until it has read this many messages, whichever comes first (default 20).
    pub stream_messages: u32,
    /// How long a probe waits for the `welcome` before it authenticates, and for the reply
    /// to `authenticate` before it subscribes (default [`crate::stream::DEFAULT_GRACE`], as
    /// the SDK's streams do). Neither is awaited longer: a server that sends neither costs
    /// two graces; a missing one is still reported.
    pub grace: Duration,
    /// How long a probe waits for the reply to `subscribe` (default 5 s).
    pub flow_timeout: Duration,
    /// The OpenAPI document to check against (default [`BUILT_IN_SPEC`]).
    pub spec: Option<Value>,
}

impl DoctorOptions {
    /// Options for the platform at `base_url`, everything else at its default.
    pub fn new(base_url: impl Into<String>, platform: PlatformCredentials) -> Self {
        DoctorOptions {
            base_url: base_url.into(),
            platform,
            user: None,
            order_pages: 3,
            order_page_size: None,
            capture_dir: None,
            market_data: None,
            market_data_symbol: "AAPL".into(),
            market_data_url: crate::stream::MARKET_DATA_STREAM_URL.into(),
            brokerage_stream: false,
            brokerage_url: crate::stream::BROKERAGE_STREAM_URL.into(),
            stream_duration: Duration::from_secs(10),
            stream_messages: 20,
            grace: crate::stream::DEFAULT_GRACE,
            flow_timeout: Duration::from_secs(5),
            spec: None,
        }
    }
}

/// Why the doctor could not run (exit status 2).
#[derive(Debug)]
#[non_exhaustive]
pub enum DoctorError {
    /// The options are unusable (a bad URL, a bad spec, a capture directory not writable).
    Config(String),
    /// The server could not be reached, or did not answer.
    Unreachable(String),
    /// The server refused the credentials.
    Refused(String),
}

impl fmt::Display for DoctorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DoctorError::Config(m) => write!(f, "cannot run: {m}"),
            DoctorError::Unreachable(m) => write!(f, "could not reach the API: {m}"),
            DoctorError::Refused(m) => write!(f, "the API refused the credentials: {m}"),
        }
    }
}

impl std::error::Error for DoctorError {}

/// Decodes a body through a generated type (the check "through the generated types").
type Decoder = fn(&[u8]) -> Result<(), String>;

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<T>(body)
        .map(|_| ())
        .map_err(|e| format!("`{}` cannot decode it: {e}", short_type_name::<T>()))
}

fn short_type_name<T>() -> String {
    std::any::type_name::<T>()
        .replace("alloc::vec::", "")
        .replace("connect_trade::rest::types::", "")
        .replace("connect_trade::stream::protocol::", "")
}

/// The decoder of an operation's success type, read off the type of its `send()` future (never
/// polled), so it follows the spec whatever the generated type is called.
fn decoder_of<T, E, F>(_: &F) -> Decoder
where
    T: DeserializeOwned,
    F: Future<Output = Result<ResponseValue<T>, progenitor_client::Error<E>>>,
{
    decode::<T>
}

fn decoders() -> Result<HashMap<&'static str, Decoder>, DoctorError> {
    let client = crate::ConnectTrade::builder()
        .client_id("doctor")
        .client_secret("doctor")
        .base_url("http://127.0.0.1")
        .build()
        .map_err(|e| DoctorError::Config(e.to_string()))?;
    let mut map: HashMap<&'static str, Decoder> = HashMap::new();
    map.insert("list_users", decoder_of(&client.list_users().send()));
    map.insert(
        "list_connections",
        decoder_of(&client.list_connections().send()),
    );
    map.insert("list_accounts", decoder_of(&client.list_accounts().send()));
    map.insert("list_balances", decoder_of(&client.list_balances().send()));
    map.insert(
        "list_positions",
        decoder_of(&client.list_positions().send()),
    );
    map.insert("list_orders", decoder_of(&client.list_orders().send()));
    map.insert("get_order", decoder_of(&client.get_order().send()));
    map.insert(
        "list_transactions",
        decoder_of(&client.list_transactions().send()),
    );
    map.insert(
        "get_market_data_token",
        decoder_of(&client.get_market_data_token().send()),
    );
    Ok(map)
}

/// Runs the doctor: the read-only checks, then the probes asked for. Notices (read-only, the
/// probes' consequences) are written to `out` before the requests they describe.
///
/// Errors only when it could not run (exit status 2); divergences are in the [`Report`].
pub async fn run(
    options: &DoctorOptions,
    out: &mut (dyn std::io::Write + Send),
) -> Result<Report, DoctorError> {
    let mut session = Session::new(options)?;
    let _ = writeln!(out, "{READ_ONLY_NOTICE}");
    let outcome = session.run(options, out).await;
    if let Some(dir) = &options.capture_dir {
        let written =
            capture::write(dir, &session.exchanges, &session.streams, options).map_err(|e| {
                DoctorError::Config(format!("cannot write captures to {}: {e}", dir.display()))
            })?;
        let _ = writeln!(
            out,
            "Captures (redacted): {written} files in {}",
            dir.display()
        );
    }
    outcome?;
    Ok(session.report(options))
}

/// One doctor run's state.
struct Session {
    http: reqwest::Client,
    base: Url,
    spec: Value,
    checker: Checker,
    decoders: HashMap<&'static str, Decoder>,
    operations: Vec<OperationAggregate>,
    exchanges: Vec<Exchange>,
    streams: Vec<StreamSession>,
    notes: Vec<String>,
}

impl Session {
    fn new(options: &DoctorOptions) -> Result<Session, DoctorError> {
        let base =
            parse_base_url(&options.base_url).map_err(|e| DoctorError::Config(e.to_string()))?;
        let spec = match &options.spec {
            Some(spec) => spec.clone(),
            None => serde_json::from_str(BUILT_IN_SPEC)
                .map_err(|e| DoctorError::Config(format!("the built-in spec is not JSON: {e}")))?,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            // Credentials go to the base URL's host only: never follow a redirect.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("connect-trade-doctor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DoctorError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Session {
            http,
            base,
            checker: Checker::for_openapi(&spec),
            spec,
            decoders: decoders()?,
            operations: Vec::new(),
            exchanges: Vec::new(),
            streams: Vec::new(),
            notes: Vec::new(),
        })
    }

    async fn run(
        &mut self,
        options: &DoctorOptions,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), DoctorError> {
        let users = self
            .get(options, "list_users", "/users", "/users", &[], false)
            .await?;
        refuse_if_unauthorized(
            &users,
            "GET /users",
            "CONNECT_TRADE_CLIENT_ID / CONNECT_TRADE_CLIENT_SECRET",
        )?;
        if options.user.is_none() {
            self.notes.push(format!(
                "No user credentials: only GET /users was checked. Set {} and {} (or pass \
                 --user-id) to check a user's connections, accounts, balances, positions, \
                 orders and transactions.",
                UserCredentials::USER_ID_VAR,
                UserCredentials::USER_SECRET_VAR
            ));
        } else {
            let connections = self
                .get(
                    options,
                    "list_connections",
                    "/connections",
                    "/connections",
                    &[],
                    true,
                )
                .await?;
            refuse_if_unauthorized(
                &connections,
                "GET /connections",
                "CONNECT_TRADE_USER_ID / CONNECT_TRADE_USER_SECRET",
            )?;
            self.get(
                options,
                "list_accounts",
                "/accounts",
                "/accounts",
                &[],
                true,
            )
            .await?;
            self.get(
                options,
                "list_balances",
                "/balances",
                "/balances",
                &[],
                true,
            )
            .await?;
            self.get(
                options,
                "list_positions",
                "/positions",
                "/positions",
                &[],
                true,
            )
            .await?;
            let first_order = self.orders(options).await?;
            match first_order {
                Some((account_id, order_id)) => {
                    let path = format!(
                        "/accounts/{}/orders/{}",
                        path_segment(&account_id),
                        path_segment(&order_id)
                    );
                    self.get(
                        options,
                        "get_order",
                        "/accounts/{account_id}/orders/{order_id}",
                        &path,
                        &[],
                        true,
                    )
                    .await?;
                }
                None => self.notes.push(
                    "GET /accounts/{account_id}/orders/{order_id} not checked: the user has no \
                     order to read."
                        .into(),
                ),
            }
            self.get(
                options,
                "list_transactions",
                "/transactions",
                "/transactions",
                &[],
                true,
            )
            .await?;
        }
        if let Some(connection_id) = &options.market_data {
            let _ = writeln!(out, "{MARKET_DATA_CONSEQUENCE}");
            if options.user.is_none() {
                return Err(DoctorError::Config(
                    "--market-data needs the user's credentials (the connection is theirs)".into(),
                ));
            }
            let path = format!("/connections/{}/token", path_segment(connection_id));
            let token = self
                .get(
                    options,
                    "get_market_data_token",
                    "/connections/{connection_id}/token",
                    &path,
                    &[],
                    true,
                )
                .await?;
            let body: Value = serde_json::from_slice(&token.body).unwrap_or(Value::Null);
            let secret = body
                .get("access_token")
                .or_else(|| body.get("token"))
                .and_then(Value::as_str)
                .map(str::to_string);
            match secret {
                Some(secret) if !secret.is_empty() && (200..300).contains(&token.status) => {
                    let session = streams::market_data(self, options, &secret).await;
                    self.streams.push(session);
                }
                _ => self.notes.push(
                    "The market data stream was not read: no token in the answer of \
                     GET /connections/{connection_id}/token."
                        .into(),
                ),
            }
        }
        if options.brokerage_stream {
            let _ = writeln!(out, "{BROKERAGE_STREAM_CONSEQUENCE}");
            let session = streams::brokerage(self, options).await;
            self.streams.push(session);
        }
        Ok(())
    }

    /// `GET /orders?status=all`, following whatever paging the server offers, up to
    /// `order_pages` pages. Returns the first order's account and id.
    async fn orders(
        &mut self,
        options: &DoctorOptions,
    ) -> Result<Option<(String, String)>, DoctorError> {
        let mut first = None;
        let mut query: Vec<(String, String)> = vec![("status".into(), "all".into())];
        if let Some(limit) = options.order_page_size {
            query.push(("limit".into(), limit.to_string()));
        }
        let mut seen_cursors = std::collections::HashSet::new();
        for _ in 0..options.order_pages.max(1) {
            let exchange = self
                .get(options, "list_orders", "/orders", "/orders", &query, true)
                .await?;
            let body: Value = serde_json::from_slice(&exchange.body).unwrap_or(Value::Null);
            if first.is_none() {
                first = first_order(&body);
            }
            let next = next_cursor(&body, &exchange.response_headers);
            match next {
                Some(cursor) if seen_cursors.insert(cursor.clone()) => {
                    query.retain(|(k, _)| k != "cursor");
                    query.push(("cursor".into(), cursor));
                }
                _ => break,
            }
        }
        Ok(first)
    }

    /// One GET, recorded and checked.
    async fn get(
        &mut self,
        options: &DoctorOptions,
        operation_id: &'static str,
        route: &str,
        path: &str,
        query: &[(String, String)],
        as_user: bool,
    ) -> Result<Exchange, DoctorError> {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base_path}{path}"));
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        let mut headers: Vec<(String, String)> = vec![
            ("client-id".into(), options.platform.client_id.clone()),
            (
                "client-secret".into(),
                options.platform.client_secret.expose().to_string(),
            ),
        ];
        if as_user && let Some(user) = &options.user {
            headers.push(("user-id".into(), user.user_id.clone()));
            headers.push(("user-secret".into(), user.user_secret.expose().to_string()));
        }
        // The one place the doctor sends a request: always GET.
        let mut request = self.http.get(url.clone());
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| DoctorError::Unreachable(format!("GET {}: {e}", url.path())))?;
        let status = response.status().as_u16();
        let response_headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .bytes()
            .await
            .map_err(|e| {
                DoctorError::Unreachable(format!("GET {}: reading the body: {e}", url.path()))
            })?
            .to_vec();
        let exchange = Exchange {
            operation_id: operation_id.to_string(),
            method: "GET".into(),
            route: route.to_string(),
            url: match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_string(),
            },
            request_headers: headers,
            status,
            response_headers,
            body,
        };
        self.check(&exchange);
        self.exchanges.push(exchange.clone());
        Ok(exchange)
    }

    fn operation(&mut self, name: &str, operation_id: &str) -> &mut OperationAggregate {
        if let Some(i) = self.operations.iter().position(|o| o.operation == name) {
            return &mut self.operations[i];
        }
        self.operations
            .push(OperationAggregate::new(name, operation_id));
        self.operations.last_mut().expect("just pushed")
    }

    fn check(&mut self, exchange: &Exchange) {
        let name = format!("{} {}", exchange.method, exchange.route);
        let schema = response_schema(
            &self.spec,
            &exchange.method,
            &exchange.route,
            exchange.status,
        );
        let decoder = self.decoders.get(exchange.operation_id.as_str()).copied();
        let checker = &self.checker;
        let mut findings = Vec::new();
        let mut counts = std::collections::BTreeMap::new();
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        let body_text = &exchange.body;
        match schema {
            Err(why) => problems.push(("status", why)),
            Ok(None) => {}
            Ok(Some((schema, root_label))) => {
                if body_text.iter().all(u8::is_ascii_whitespace) {
                    problems.push((
                        "body",
                        format!("empty body, the spec says {}", describe_schema(&schema)),
                    ));
                } else {
                    match serde_json::from_slice::<Value>(body_text) {
                        Err(e) => problems.push(("body", format!("the body is not JSON: {e}"))),
                        Ok(value) => {
                            match checker.check(
                                &schema::to_json_schema(&schema),
                                &value,
                                &root_label,
                            ) {
                                Ok((f, c)) => {
                                    findings = f;
                                    counts = c;
                                }
                                Err(why) => problems.push(("spec", why)),
                            }
                            let decoded = if (200..300).contains(&exchange.status) {
                                decoder.map(|d| d(body_text))
                            } else {
                                Some(decode::<crate::rest::types::Error>(body_text))
                            };
                            if let Some(Err(why)) = decoded {
                                problems.push(("types", why));
                            }
                        }
                    }
                }
            }
        }
        let aggregate = self.operation(&name, &exchange.operation_id.clone());
        aggregate.record(exchange, findings, counts, problems);
    }

    fn report(&self, options: &DoctorOptions) -> Report {
        Report::build(
            &options.base_url,
            &self.operations,
            self.notes.clone(),
            options.market_data.is_none() && !options.brokerage_stream,
        )
    }
}

fn refuse_if_unauthorized(exchange: &Exchange, what: &str, vars: &str) -> Result<(), DoctorError> {
    if matches!(exchange.status, 401 | 403) {
        let message = serde_json::from_slice::<Value>(&exchange.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        return Err(DoctorError::Refused(format!(
            "{what} answered {}{}: check {vars}",
            exchange.status,
            if message.is_empty() {
                String::new()
            } else {
                format!(" ({message})")
            }
        )));
    }
    Ok(())
}

fn path_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The first order of a page, whatever its shape (an envelope or a bare array).
fn first_order(body: &Value) -> Option<(String, String)> {
    let orders = match body {
        Value::Array(items) => items.as_slice(),
        Value::Object(map) => map
            .values()
            .find_map(|v| v.as_array())
            .map(Vec::as_slice)
            .unwrap_or(&[]),
        _ => &[],
    };
    orders.iter().find_map(|o| {
        Some((
            o.get("account_id")?.as_str()?.to_string(),
            o.get("order_id")?.as_str()?.to_string(),
        ))
    })
}

/// The cursor of the next page: `next_cursor` in an envelope, a `Link: <…>; rel="next"`
/// header's `cursor`, or an `x-next-cursor`/`next-cursor` header.
fn next_cursor(body: &Value, headers: &[(String, String)]) -> Option<String> {
    if let Some(cursor) = body
        .get("next_cursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    {
        return Some(cursor.to_string());
    }
    for (name, value) in headers {
        match name.as_str() {
            "x-next-cursor" | "next-cursor" if !value.is_empty() => return Some(value.clone()),
            "link" => {
                for part in value.split(',') {
                    if part.contains("rel=\"next\"") || part.contains("rel=next") {
                        let target = part
                            .split(';')
                            .next()?
                            .trim()
                            .trim_start_matches('<')
                            .trim_end_matches('>');
                        let url = Url::parse(target)
                            .or_else(|_| Url::parse("http://x/").and_then(|b| b.join(target)))
                            .ok()?;
                        if let Some((_, cursor)) = url.query_pairs().find(|(k, _)| k == "cursor") {
                            return Some(cursor.into_owned());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// The schema of a response and the label of its root (`OrderPage`, `body`): `Ok(None)` when
/// the spec declares no body, an error when it declares no response for the status.
fn response_schema(
    spec: &Value,
    method: &str,
    route: &str,
    status: u16,
) -> Result<Option<(Value, String)>, String> {
    let operation = spec
        .get("paths")
        .and_then(|p| p.get(route))
        .and_then(|p| p.get(method.to_ascii_lowercase()))
        .ok_or_else(|| format!("the spec has no operation {method} {route}"))?;
    let responses = &operation["responses"];
    let class = format!("{}XX", status / 100);
    let response = responses
        .get(status.to_string())
        .or_else(|| responses.get(&class))
        .or_else(|| responses.get("default"))
        .ok_or_else(|| format!("status {status}: the spec declares no such response"))?;
    let Some(schema) = response
        .pointer("/content/application~1json/schema")
        .cloned()
    else {
        return Ok(None);
    };
    let label = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or("body")
        .to_string();
    Ok(Some((schema, label)))
}

fn describe_schema(schema: &Value) -> String {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => format!("an object ({})", r.rsplit('/').next().unwrap_or_default()),
        None => match schema.get("type").and_then(Value::as_str) {
            Some("array") => "an array".into(),
            Some(other) => format!("a JSON {other}"),
            None => "a JSON body".into(),
        },
    }
}

/// Frames of a stream probe, checked against the JSON Schema of `M` and decoded as `M`.
fn check_frames<M: DeserializeOwned + schemars::JsonSchema>(
    session: &mut Session,
    name: &str,
    frames: &[Frame],
) {
    let root = serde_json::to_value(schemars::schema_for!(M)).unwrap_or(Value::Null);
    let (checker, schema) = Checker::for_json_schema(&root);
    let label = short_type_name::<M>();
    let aggregate_index = {
        session.operation(name, name);
        session
            .operations
            .iter()
            .position(|o| o.operation == name)
            .unwrap_or(0)
    };
    for frame in frames.iter().filter(|f| f.direction == "received") {
        let mut problems = Vec::new();
        let (findings, counts) = match serde_json::from_str::<Value>(&frame.text) {
            Err(e) => {
                problems.push(("body", format!("a frame is not JSON: {e}")));
                (Vec::new(), Default::default())
            }
            Ok(value) => {
                if let Err(why) = decode::<M>(frame.text.as_bytes()) {
                    problems.push(("types", why));
                }
                checker
                    .check(&schema, &value, &label)
                    .unwrap_or_else(|why| {
                        problems.push(("spec", why));
                        (Vec::new(), Default::default())
                    })
            }
        };
        session.operations[aggregate_index].record_frame(findings, counts, problems);
    }
}

/// The received frames of a stream capture against the protocol's JSON Schema.
fn check_stream_capture(capture: &Value) -> Result<Vec<String>, String> {
    let (root, label) = match capture["stream"].as_str() {
        Some("brokerage") => (
            schemars::schema_for!(crate::stream::protocol::BrokerageMessage),
            "BrokerageMessage",
        ),
        Some("market-data") => (
            schemars::schema_for!(crate::stream::protocol::MarketDataMessage),
            "MarketDataMessage",
        ),
        other => return Err(format!("unknown stream {other:?}")),
    };
    let root = serde_json::to_value(root).map_err(|e| e.to_string())?;
    let (checker, schema) = Checker::for_json_schema(&root);
    let mut out = Vec::new();
    for frame in capture["frames"].as_array().into_iter().flatten() {
        if frame["direction"] != "received" {
            continue;
        }
        if let Some(message) = frame.get("message") {
            let (findings, _) = checker.check(&schema, message, label)?;
            out.extend(findings.into_iter().map(|f| {
                format!(
                    "{}: {} (spec: {}; seen: {})",
                    f.label, f.kind, f.spec, f.seen
                )
            }));
        }
    }
    Ok(out)
}

/// Checks one capture file (as written by `--capture`) against `spec`'s JSON Schema: every
/// divergence of its body (or of a stream capture's received frames, against the protocol's
/// JSON Schemas) as `path: kind (spec: …; seen: …)`. Bodies the spec declares none for give an
/// empty list. What `cargo xtask spec learn` is tested with:
/// after learning, the captures validate.
pub fn check_capture(spec: &Value, capture: &Value) -> Result<Vec<String>, String> {
    if capture["kind"] == "stream" {
        return check_stream_capture(capture);
    }
    if capture["kind"] != "rest" {
        return Ok(Vec::new());
    }
    let (Some(method), Some(route), Some(status)) = (
        capture["method"].as_str(),
        capture["route"].as_str(),
        capture["response"]["status"].as_u64(),
    ) else {
        return Err("not a capture of connect-trade-doctor".into());
    };
    let Some((schema, label)) = response_schema(spec, method, route, status as u16)? else {
        return Ok(Vec::new());
    };
    let Some(body) = capture["response"].get("body") else {
        return Ok(vec![format!(
            "{method} {route}: no JSON body, the spec declares one"
        )]);
    };
    let checker = Checker::for_openapi(spec);
    let (findings, _) = checker.check(&schema::to_json_schema(&schema), body, &label)?;
    Ok(findings
        .into_iter()
        .map(|f| {
            format!(
                "{}: {} (spec: {}; seen: {})",
                f.label, f.kind, f.spec, f.seen
            )
        })
        .collect())
}
