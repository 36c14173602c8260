//! The configured entry point: [`ConnectTrade`] (platform) and [`UserClient`] (one user).
//!
//! Both dereference to the generated [`rest::Client`], so every REST operation is a method on
//! them. Credentials, retries, timeouts and tracing are applied by the request hooks below;
//! credentials are never arguments of a call.
//!
//! ```no_run
//! # async fn demo() -> connect_trade::Result<()> {
//! use connect_trade::{ConnectTrade, UserCredentials};
//!
//! let platform = ConnectTrade::builder()
//!     .client_id("my-client-id")
//!     .client_secret("my-client-secret")
//!     .build()?;
//! let created = platform.create_user().body_map(|b| b.user_id("alice")).send().await?;
//! let alice = platform.for_user(created.into_inner().into_credentials("alice"))?;
//! let accounts = alice.list_accounts().send().await?.into_inner();
//! println!("{} accounts", accounts.len());
//! # Ok(()) }
//! ```

use std::{
    fmt,
    ops::Deref,
    sync::Arc,
    time::{Duration, Instant},
};

use progenitor_client::{ClientHooks, ClientInfo, OperationInfo};
use reqwest::{
    Method, StatusCode,
    header::{HeaderName, HeaderValue},
};
use tracing::Instrument;
use url::Url;

use crate::{
    credentials::{PlatformCredentials, Secret, UserCredentials},
    error::{Error, MISSING_USER_MARKER, Result},
    rest,
};

/// The production REST base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.connecttrade.com";

/// When and how idempotent requests (GET, DELETE) are retried.
///
/// Retried: transport errors, timeouts, 429 (after `Retry-After` when the server gives one),
/// 502, 503, 504. POST and PATCH are never retried by the hooks: placing an order safely
/// again needs the order's `cl_order_id` looked up first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// The backoff before the first retry; it doubles each time, with full jitter.
    pub initial_backoff: Duration,
    /// The largest backoff.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a 429 asking for longer is returned to the caller.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The backoff before retry number `retry` (0-based): full jitter over an exponentially
    /// growing, capped window.
    pub fn backoff(&self, retry: u32) -> Duration {
        let window = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(30)))
            .min(self.max_backoff);
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// Whether a method may be repeated without changing the result.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE | Method::PUT
    )
}

/// Whether a status is worth retrying.
fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// Configuration shared by every client derived from one [`ConnectTrade`].
struct Shared {
    base_url: Url,
    platform: PlatformCredentials,
    client_id_header: HeaderValue,
    client_secret_header: HeaderValue,
    retry: RetryPolicy,
}

/// One user's credentials, ready to go into headers.
struct UserAuth {
    credentials: UserCredentials,
    user_id_header: HeaderValue,
    user_secret_header: HeaderValue,
}

/// The configuration a generated [`rest::Client`] carries: shared settings and, for a
/// user-scoped client, the user's credentials. Built by [`ConnectTrade`]; `Debug` shows no
/// secret.
#[derive(Clone)]
pub struct Inner {
    shared: Arc<Shared>,
    user: Option<Arc<UserAuth>>,
}

impl Inner {
    /// The retry policy the client was built with (for the order guard in `orders`).
    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.shared.retry
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("base_url", &self.shared.base_url.as_str())
            .field("platform", &self.shared.platform)
            .field("user", &self.user.as_ref().map(|u| &u.credentials))
            .field("retry", &self.shared.retry)
            .finish()
    }
}

fn header_value(what: &str, value: &str, sensitive: bool) -> Result<HeaderValue> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        Error::Config(format!(
            "{what} contains characters that cannot go in an HTTP header"
        ))
    })?;
    header.set_sensitive(sensitive);
    Ok(header)
}

impl UserAuth {
    fn new(credentials: UserCredentials) -> Result<Self> {
        Ok(UserAuth {
            user_id_header: header_value("user id", &credentials.user_id, false)?,
            user_secret_header: header_value(
                "user secret",
                credentials.user_secret.expose(),
                true,
            )?,
            credentials,
        })
    }
}

static CLIENT_ID: HeaderName = HeaderName::from_static("client-id");
static CLIENT_SECRET: HeaderName = HeaderName::from_static("client-secret");
static USER_ID: HeaderName = HeaderName::from_static("user-id");
static USER_SECRET: HeaderName = HeaderName::from_static("user-secret");
static API_VERSION: HeaderName = HeaderName::from_static("api-version");

impl ClientHooks<Inner> for rest::Client {
    /// Puts the credentials into the request; refuses a user-scoped operation on a client
    /// without user credentials before anything is sent.
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        info: &OperationInfo,
    ) -> std::result::Result<(), progenitor_client::Error<E>> {
        let inner = self.inner();
        check_path_ids(&inner.shared.base_url, request.url(), info.operation_id)
            .map_err(progenitor_client::Error::InvalidRequest)?;
        let headers = request.headers_mut();
        // progenitor sends the spec's `info.version` as `api-version`. Connect Trade documents
        // no such header and our spec's version is our own, so it is not sent.
        headers.remove(&API_VERSION);
        headers.insert(CLIENT_ID.clone(), inner.shared.client_id_header.clone());
        headers.insert(
            CLIENT_SECRET.clone(),
            inner.shared.client_secret_header.clone(),
        );
        if !rest::PLATFORM_ONLY_OPERATIONS.contains(&info.operation_id) {
            match &inner.user {
                Some(user) => {
                    headers.insert(USER_ID.clone(), user.user_id_header.clone());
                    headers.insert(USER_SECRET.clone(), user.user_secret_header.clone());
                }
                None => {
                    return Err(progenitor_client::Error::Custom(format!(
                        "{MISSING_USER_MARKER}{}",
                        info.operation_id
                    )));
                }
            }
        }
        Ok(())
    }

    /// Sends the request, retrying idempotent ones on transient failures, in a tracing span.
    async fn exec(
        &self,
        request: reqwest::Request,
        info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        let span = tracing::debug_span!(
            "connect_trade.request",
            operation = info.operation_id,
            method = %request.method(),
            path = request.url().path(),
            attempt = tracing::field::Empty,
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        let response = send_with_retries(self.client(), &self.inner().shared.retry, request)
            .instrument(span)
            .await?;
        let secret = SECRET_BEARING_OPERATIONS.contains(&info.operation_id);
        if response.status().is_success() {
            check_success_body(response, info.operation_id, secret).await
        } else {
            normalize_error_body(response, secret).await
        }
    }
}

/// Why `id` cannot go into a request path as one segment, if it cannot: empty, a dot segment
/// (`.`, `..`: the URL would address another resource), a `/` or `\` (which servers and
/// proxies may treat as a separator even when percent-encoded), or a control character.
pub(crate) fn path_id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("is empty")
    } else if id == "." || id == ".." {
        Some("is a dot segment (`.` or `..`)")
    } else if id.contains(['/', '\\']) {
        Some("contains `/` or `\\`")
    } else if id.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

/// Checks the ids a generated method put into the request's path, against the operation's
/// path template: every `{parameter}` must still be exactly one segment that passes
/// [`path_id_problem`]. Run by the request hook before anything is sent, so `delete_user("..")`
/// never becomes `DELETE /`.
fn check_path_ids(base: &Url, url: &Url, operation: &str) -> std::result::Result<(), String> {
    let Ok(index) = rest::OPERATION_PATHS.binary_search_by(|(id, _)| (*id).cmp(operation)) else {
        return Ok(());
    };
    let template = rest::OPERATION_PATHS[index].1;
    let prefix = base
        .path_segments()
        .map_or(0, |segments| segments.filter(|s| !s.is_empty()).count());
    let actual: Vec<&str> = url
        .path_segments()
        .map(|segments| segments.skip(prefix).collect())
        .unwrap_or_default();
    let expected: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let reshaped = || {
        format!(
            "an id in the path of `{operation}` ({template}) is empty, `.` or `..`, so the \
             request would have gone to {} instead; ids in paths must be non-empty and not \
             `.` or `..`",
            url.path()
        )
    };
    if actual.len() != expected.len() {
        return Err(reshaped());
    }
    for (want, got) in expected.iter().zip(&actual) {
        match want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            Some(parameter) => {
                let decoded = percent_encoding::percent_decode_str(got).decode_utf8_lossy();
                if let Some(problem) = path_id_problem(&decoded) {
                    return Err(format!(
                        "`{parameter}` of `{operation}` {problem}: an id in a request path must \
                         be non-empty, not `.` or `..`, and without `/`, `\\` or control \
                         characters"
                    ));
                }
            }
            None if want != got => return Err(reshaped()),
            None => {}
        }
    }
    Ok(())
}

/// Operations whose responses can hold a secret (their success schema has a
/// `format: password` field: a user secret, a token). No body of theirs is ever quoted in an
/// error; an undecodable one is kept only as a [`Secret`]. A test holds this list against
/// the spec.
pub const SECRET_BEARING_OPERATIONS: &[&str] =
    &["create_user", "create_user_token", "get_market_data_token"];

/// Operations that change something at Connect Trade: a 2XX answer to one of them means it
/// took effect, even when its body cannot be decoded.
pub const MUTATING_OPERATIONS: &[&str] = &[
    "cancel_order",
    "create_connection",
    "create_user",
    "create_user_token",
    "delete_connection",
    "delete_user",
    "modify_order",
    "place_order",
];

/// Operations whose success declares no body: whatever a 2XX brings (nothing, `null`, some
/// JSON) is ignored.
#[cfg(test)]
const NO_BODY_OPERATIONS: &[&str] = &["cancel_order", "delete_connection", "delete_user"];

/// The status a 2XX response whose body does not decode is handed to the generated code
/// under, so that it arrives as `UnexpectedResponse` carrying [`UndecodableSuccess`]; the real
/// status is in the extension.
const UNDECODABLE_CARRIER: u16 = 600;

/// What the request hook found wrong with a 2XX body, carried to [`Error::Decode`].
#[derive(Clone, Debug)]
pub(crate) struct UndecodableSuccess {
    pub operation: &'static str,
    pub status: u16,
    pub path: String,
    pub message: String,
    pub secret: bool,
    pub body: Vec<u8>,
}

/// Decodes `body` as a `T`, naming the JSON path of what failed.
fn decode_check<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<(String, String)> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(_) => deserializer
            .end()
            .err()
            .map(|e| (String::new(), e.to_string())),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            Some((path, e.into_inner().to_string()))
        }
    }
}

type BodyCheck = fn(&[u8]) -> Option<(String, String)>;

/// The check of an operation's success body: decoding into the type the generated method
/// returns. `None` for operations without a body (and for any this SDK does not know).
pub(crate) fn body_check(operation: &str) -> Option<BodyCheck> {
    use rest::types as t;
    Some(match operation {
        "create_user" => decode_check::<t::CreatedUser>,
        "list_users" => decode_check::<Vec<t::User>>,
        "create_connection" => decode_check::<t::ConnectionRequest>,
        "list_connections" => decode_check::<Vec<t::Connection>>,
        "get_market_data_token" => decode_check::<MarketDataToken>,
        "list_accounts" => decode_check::<Vec<t::Account>>,
        "list_balances" => decode_check::<Vec<t::Balance>>,
        "list_positions" => decode_check::<Vec<t::Position>>,
        "place_order" | "get_order" | "modify_order" => decode_check::<t::Order>,
        "list_orders" => decode_check::<crate::paging::OrderPage>,
        "list_transactions" => decode_check::<Vec<t::Transaction>>,
        "create_user_token" => decode_check::<t::UserToken>,
        _ => return None,
    })
}

/// Lets a 2XX response through when its body decodes (or none is expected); otherwise hands
/// it on as an unexpected response carrying what failed, where, the real status and the raw
/// body, so that nothing the server did is lost.
async fn check_success_body(
    response: reqwest::Response,
    operation: &'static str,
    secret: bool,
) -> reqwest::Result<reqwest::Response> {
    let Some(check) = body_check(operation) else {
        return Ok(response);
    };
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let body = response.bytes().await?;
    let Some((path, message)) = check(&body) else {
        return Ok(rebuild(status, version, headers, body));
    };
    let carrier = StatusCode::from_u16(UNDECODABLE_CARRIER).unwrap_or(StatusCode::NOT_EXTENDED);
    let message = if body.iter().all(u8::is_ascii_whitespace) {
        "the body is empty".to_string()
    } else {
        crate::error::describe_decode_failure(&message, secret)
    };
    let mut carried = rebuild(carrier, version, headers, body.clone());
    carried.extensions_mut().insert(UndecodableSuccess {
        operation,
        status: status.as_u16(),
        path,
        message,
        secret,
        body: body.to_vec(),
    });
    Ok(carried)
}

/// Makes every error response carry the API's `{"message": ...}` body, so that an error from
/// something in front of the API (a proxy's HTML 502, an empty 503) still reaches the caller
/// as [`Error::Api`] with its status, not as a decoding failure that lost it.
async fn normalize_error_body(
    response: reqwest::Response,
    secret: bool,
) -> reqwest::Result<reqwest::Response> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(response);
    }
    let version = response.version();
    let mut headers = response.headers().clone();
    let body = response.bytes().await?;
    if serde_json::from_slice::<rest::types::Error>(&body).is_ok() {
        return Ok(rebuild(status, version, headers, body));
    }
    let reason = status.canonical_reason().unwrap_or("error");
    let message = if body.iter().all(u8::is_ascii_whitespace) {
        format!("{} {reason} (no body)", status.as_u16())
    } else if secret {
        format!(
            "{} {reason} (body not shown: this operation's answers can hold a secret)",
            status.as_u16()
        )
    } else {
        format!(
            "{} {reason}: {}",
            status.as_u16(),
            crate::error::excerpt(&body)
        )
    };
    headers.remove(reqwest::header::CONTENT_LENGTH);
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let json = serde_json::json!({ "message": message }).to_string();
    Ok(rebuild(status, version, headers, json.into_bytes()))
}

fn rebuild(
    status: StatusCode,
    version: reqwest::Version,
    headers: reqwest::header::HeaderMap,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    reqwest::Response::from(response)
}

async fn send_with_retries(
    client: &reqwest::Client,
    policy: &RetryPolicy,
    request: reqwest::Request,
) -> reqwest::Result<reqwest::Response> {
    let retryable = is_idempotent(request.method());
    let mut current = request;
    let mut retry = 0u32;
    loop {
        let spare = if retryable && retry < policy.max_retries {
            current.try_clone()
        } else {
            None
        };
        let started = Instant::now();
        let result = client.execute(current).await;
        let span = tracing::Span::current();
        span.record("attempt", retry + 1);
        span.record("latency_ms", started.elapsed().as_millis() as u64);
        let delay = match &result {
            Ok(response) => {
                span.record("status", response.status().as_u16());
                tracing::debug!(status = response.status().as_u16(), "response");
                if !is_retryable_status(response.status()) {
                    return result;
                }
                let hinted = crate::error::retry_after_of(response.headers());
                match hinted {
                    Some(wait) if wait > policy.max_retry_after => return result,
                    Some(wait) => wait,
                    None => policy.backoff(retry),
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "request failed");
                if !(e.is_timeout() || e.is_connect() || e.is_request() || e.is_body()) {
                    return result;
                }
                policy.backoff(retry)
            }
        };
        let Some(next) = spare else {
            return result;
        };
        tracing::debug!(
            retry = retry + 1,
            delay_ms = delay.as_millis() as u64,
            "retrying"
        );
        tokio::time::sleep(delay).await;
        current = next;
        retry += 1;
    }
}

/// The answer of `GET /connections/{connection_id}/token`: the market data stream's token.
///
/// The names of its fields are not published, so it decodes leniently: the token under
/// `access_token` or `token`, and `expires_at` when the server gives it (the documented
/// lifetime is 24 hours: [`MarketDataToken::expires_at_or_assumed`]). It serializes with
/// `access_token`. Replaces the generated type of the same name.
#[derive(Clone, Debug, PartialEq)]
pub struct MarketDataToken {
    /// The token sent in the market data stream's authenticate message.
    pub access_token: Secret,
    /// When the token expires, if the server said.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl MarketDataToken {
    /// The documented lifetime of a market data token.
    pub const LIFETIME: Duration = Duration::from_secs(24 * 3600);

    /// `expires_at`, or 24 hours after `issued_at` when the server did not say.
    pub fn expires_at_or_assumed(
        &self,
        issued_at: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        self.expires_at
            .unwrap_or_else(|| issued_at + chrono::Duration::hours(24))
    }
}

impl serde::Serialize for MarketDataToken {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Wire<'a> {
            access_token: &'a Secret,
            #[serde(skip_serializing_if = "Option::is_none")]
            expires_at: Option<chrono::DateTime<chrono::Utc>>,
        }
        Wire {
            access_token: &self.access_token,
            expires_at: self.expires_at,
        }
        .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for MarketDataToken {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            access_token: Option<Secret>,
            token: Option<Secret>,
            expires_at: Option<chrono::DateTime<chrono::Utc>>,
        }
        let wire = Wire::deserialize(deserializer)?;
        let access_token = wire
            .access_token
            .or(wire.token)
            .ok_or_else(|| serde::de::Error::missing_field("access_token` or `token"))?;
        Ok(MarketDataToken {
            access_token,
            expires_at: wire.expires_at,
        })
    }
}

/// Builds a [`ConnectTrade`].
#[derive(Debug, Default)]
pub struct ConnectTradeBuilder {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    base_url: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    http: Option<reqwest::Client>,
}

impl ConnectTradeBuilder {
    /// The platform's client id.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The platform's client secret.
    pub fn client_secret(mut self, client_secret: impl Into<Secret>) -> Self {
        self.client_secret = Some(client_secret.into());
        self
    }

    /// Both platform credentials.
    pub fn credentials(self, credentials: PlatformCredentials) -> Self {
        self.client_id(credentials.client_id)
            .client_secret(credentials.client_secret)
    }

    /// The REST base URL (default [`DEFAULT_BASE_URL`]). Must be HTTPS unless the host is
    /// loopback (the simulator, a test server).
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// The whole-request timeout (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The retry policy of idempotent requests (default [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Uses this `reqwest::Client` (its pool, proxy and TLS settings) instead of building one;
    /// the timeouts set here are then not applied.
    ///
    /// Build it with `.redirect(reqwest::redirect::Policy::none())`: the SDK cannot change the
    /// redirect policy of a client it is given, and reqwest's default follows redirects,
    /// sending the `client-secret` and `user-secret` headers to wherever they point.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Checks the configuration and builds the client.
    pub fn build(self) -> Result<ConnectTrade> {
        let client_id = self.client_id.ok_or_else(|| {
            Error::Config(
                "no client id: call .client_id(..) or set CONNECT_TRADE_CLIENT_ID".to_string(),
            )
        })?;
        let client_secret = self.client_secret.ok_or_else(|| {
            Error::Config(
                "no client secret: call .client_secret(..) or set CONNECT_TRADE_CLIENT_SECRET"
                    .to_string(),
            )
        })?;
        let base_url = parse_base_url(self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))?;
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                // Never follow a redirect: reqwest would carry `client-secret` and
                // `user-secret` to whatever host it names (it strips only `Authorization` and
                // cookies), and an https → http redirect would get round the HTTPS-only rule.
                // A 3xx is returned as `Error::Redirect` instead.
                .redirect(reqwest::redirect::Policy::none())
                .timeout(self.timeout.unwrap_or(Duration::from_secs(30)))
                .connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(10)))
                .user_agent(concat!("connect-trade-rust/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| Error::Config(format!("could not build the HTTP client: {e}")))?,
        };
        let shared = Arc::new(Shared {
            client_id_header: header_value("client id", &client_id, false)?,
            client_secret_header: header_value("client secret", client_secret.expose(), true)?,
            platform: PlatformCredentials::new(client_id, client_secret),
            retry: self.retry.unwrap_or_default(),
            base_url,
        });
        let base = shared.base_url.as_str().trim_end_matches('/').to_string();
        let rest = rest::Client::new_with_client(&base, http, Inner { shared, user: None });
        Ok(ConnectTrade { rest })
    }
}

/// Parses a base URL; refuses plain HTTP to anything but loopback, and a password in the URL.
pub(crate) fn parse_base_url(text: &str) -> Result<Url> {
    let url = Url::parse(text).map_err(|e| {
        Error::Config(format!(
            "base URL {:?} is not a URL: {e}",
            crate::error::excerpt(text.as_bytes())
        ))
    })?;
    if url.password().is_some() {
        let mut shown = url.clone();
        let _ = shown.set_password(Some("REDACTED"));
        return Err(Error::Config(format!(
            "base URL {shown} has a password in it: it would be sent along with every request \
             and shown wherever the URL is logged. Pass the host only; the credentials go in \
             client_id/client_secret"
        )));
    }
    match url.scheme() {
        "https" | "wss" => Ok(url),
        "http" | "ws" if is_loopback(&url) => Ok(url),
        "http" | "ws" => Err(Error::Config(format!(
            "base URL {text:?} is not HTTPS: credentials would travel in clear text. \
             Plain HTTP is allowed only to loopback (127.0.0.1, ::1, localhost)"
        ))),
        other => Err(Error::Config(format!(
            "base URL {text:?} has scheme {other:?}; expected https"
        ))),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The platform client: configured once with the platform credentials, it calls the
/// platform-only operations (users) and derives a [`UserClient`] per end user.
///
/// Cheap to clone; every clone and every derived user client share one connection pool.
#[derive(Clone, Debug)]
pub struct ConnectTrade {
    rest: rest::Client,
}

impl ConnectTrade {
    /// Starts a builder.
    pub fn builder() -> ConnectTradeBuilder {
        ConnectTradeBuilder::default()
    }

    /// A client from `CONNECT_TRADE_CLIENT_ID`, `CONNECT_TRADE_CLIENT_SECRET` and, if set,
    /// `CONNECT_TRADE_BASE_URL`. An error says which variable is missing.
    pub fn from_env() -> Result<Self> {
        let credentials = PlatformCredentials::from_env()?.ok_or_else(|| {
            Error::Config(format!(
                "set {} and {} to the platform credentials Connect Trade gave you",
                PlatformCredentials::CLIENT_ID_VAR,
                PlatformCredentials::CLIENT_SECRET_VAR
            ))
        })?;
        let mut builder = ConnectTrade::builder().credentials(credentials);
        if let Ok(url) = std::env::var("CONNECT_TRADE_BASE_URL") {
            builder = builder.base_url(url);
        }
        builder.build()
    }

    /// A client acting for one user: its requests carry the user's credentials too.
    ///
    /// Cheap: it shares the connection pool and configuration of this client. Fails only if
    /// the credentials cannot go in an HTTP header (e.g. a newline in the user id).
    pub fn for_user(&self, credentials: UserCredentials) -> Result<UserClient> {
        let user = Arc::new(UserAuth::new(credentials)?);
        Ok(UserClient {
            rest: self.derive(Some(user.clone())),
            user,
        })
    }

    /// A generated client sharing this one's pool and configuration, acting for `user`.
    fn derive(&self, user: Option<Arc<UserAuth>>) -> rest::Client {
        rest::Client::new_with_client(
            self.rest.baseurl(),
            self.rest.client().clone(),
            Inner {
                shared: self.rest.inner().shared.clone(),
                user,
            },
        )
    }

    /// The REST base URL.
    pub fn base_url(&self) -> &Url {
        &self.rest.inner().shared.base_url
    }

    /// The retry policy this client was built with.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.rest.inner().shared.retry
    }

    /// The platform credentials.
    pub fn credentials(&self) -> &PlatformCredentials {
        &self.rest.inner().shared.platform
    }

    /// The generated client (also reachable through `Deref`).
    pub fn rest(&self) -> &rest::Client {
        &self.rest
    }
}

impl Deref for ConnectTrade {
    type Target = rest::Client;
    fn deref(&self) -> &rest::Client {
        &self.rest
    }
}

/// A client acting for one end user: every operation of the API is a method on it (through
/// `Deref` to [`rest::Client`]), sent with the platform and the user credentials.
#[derive(Clone)]
pub struct UserClient {
    rest: rest::Client,
    user: Arc<UserAuth>,
}

impl UserClient {
    /// The user's credentials.
    pub fn credentials(&self) -> &UserCredentials {
        &self.user.credentials
    }

    /// The user's id.
    pub fn user_id(&self) -> &str {
        &self.credentials().user_id
    }

    /// The generated client (also reachable through `Deref`).
    pub fn rest(&self) -> &rest::Client {
        &self.rest
    }

    /// The REST base URL.
    pub fn base_url(&self) -> &Url {
        &self.rest.inner().shared.base_url
    }

    /// The retry policy of the platform client this one was derived from.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.rest.inner().shared.retry
    }
}

impl fmt::Debug for UserClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserClient")
            .field("rest", &self.rest)
            .finish()
    }
}

impl Deref for UserClient {
    type Target = rest::Client;
    fn deref(&self) -> &rest::Client {
        &self.rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_a_body_check_or_declares_no_body() {
        for op in rest::ALL_OPERATIONS {
            assert!(
                body_check(op).is_some() != NO_BODY_OPERATIONS.contains(op),
                "{op}: add it to body_check (it returns a body) or NO_BODY_OPERATIONS"
            );
        }
    }

    #[test]
    fn a_decode_check_names_the_json_path() {
        let check = body_check("list_orders").unwrap();
        let body = br#"[{"order_id":"a","account_id":"x","status":"filled"},{"order_id":"b","account_id":"x","status":"filled","fills":[{"fill_id":"f","quantity":"1","price":"abc"}]}]"#;
        let (path, message) = check(body).unwrap();
        assert_eq!(path, "[1].fills[0].price", "{message}");
    }
}
