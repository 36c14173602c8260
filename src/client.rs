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
//! let alice = platform.for_user(UserCredentials::from(created.into_inner()))?;
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
        normalize_error_body(response).await
    }
}

/// Makes every error response carry the API's `{"message": ...}` body, so that an error from
/// something in front of the API (a proxy's HTML 502, an empty 503) still reaches the caller
/// as [`Error::Api`] with its status, not as a decoding failure that lost it.
async fn normalize_error_body(response: reqwest::Response) -> reqwest::Result<reqwest::Response> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(response);
    }
    let version = response.version();
    let mut headers = response.headers().clone();
    let body = response.bytes().await?;
    if serde_json::from_slice::<rest::types::Error>(&body).is_ok() {
        return Ok(rebuild(status, version, headers, body.to_vec()));
    }
    let reason = status.canonical_reason().unwrap_or("error");
    let message = if body.iter().all(u8::is_ascii_whitespace) {
        format!("{} {reason} (no body)", status.as_u16())
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
    body: Vec<u8>,
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

/// Parses a base URL and refuses plain HTTP to anything but loopback.
pub(crate) fn parse_base_url(text: &str) -> Result<Url> {
    let url = Url::parse(text)
        .map_err(|e| Error::Config(format!("base URL {text:?} is not a URL: {e}")))?;
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
