//! The one error type of the hand-written layer.
//!
//! Errors of the generated methods (`progenitor_client::Error<rest::types::Error>`) convert
//! into [`Error`] with `?`, so a program deals with one type whatever layer it calls.

use std::time::Duration;

use crate::{
    client::{MUTATING_OPERATIONS, UndecodableSuccess},
    credentials::Secret,
    orders::OrderError,
    rest::types,
    stream::StreamError,
    symbology::SymbolError,
};

/// Marker the request hook puts in front of the operation id when user credentials are
/// missing, so the conversion can rebuild [`Error::MissingUserCredentials`].
pub(crate) const MISSING_USER_MARKER: &str = "connect-trade: missing user credentials for ";

/// How many characters of a body an error keeps.
const EXCERPT_CHARS: usize = 200;

/// Everything that can go wrong talking to Connect Trade.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request (4xx other than 429) or failed (5xx).
    #[error("Connect Trade answered {status}: {message}{}", request_id_suffix(.request_id))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's `message`.
        message: String,
        /// The request id the server gave, if any (quote it to Connect Trade support).
        request_id: Option<String>,
    },

    /// The server answered 429: too many requests.
    #[error("rate limited by Connect Trade ({message}){}", retry_after_suffix(.retry_after))]
    RateLimited {
        /// How long the server asked to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
        /// The server's `message`.
        message: String,
        /// The request id the server gave, if any.
        request_id: Option<String>,
    },

    /// The request did not complete in time (the cause is the error's `source()`).
    #[error("request timed out")]
    Timeout(#[source] reqwest::Error),

    /// The connection failed (DNS, TCP, TLS, reset, body read; the cause is the error's
    /// `source()`).
    #[error("transport error")]
    Transport(#[source] reqwest::Error),

    /// A response could not be decoded into the expected type.
    ///
    /// For a 2XX answer this means the server *did* the call: when it changed something
    /// (create user, create connection, place, modify, cancel) the change happened, and
    /// [`Error::may_have_reached_server`] is true. The raw body is kept in `body` (a
    /// [`Secret`]: it may hold one); for `POST /users`, [`Error::recovered_user_secret`] finds
    /// the user secret in it.
    #[error(
        "could not decode Connect Trade's answer{} at {}: {message}{}{}",
        decode_context(.operation, .status),
        path_text(.path),
        effect_suffix(.operation, .status),
        excerpt_suffix(.excerpt)
    )]
    Decode {
        /// The operation id (`place_order`), when known.
        operation: Option<String>,
        /// The HTTP status of the answer, when known (always a 2XX when known).
        status: Option<u16>,
        /// The JSON path of the value that failed (`orders[3].fills[0].price`); empty for the
        /// body as a whole.
        path: String,
        /// What was wrong. For an operation whose answers can hold a secret it names no value.
        message: String,
        /// The start of the body; `None` for an operation whose answers can hold a secret.
        excerpt: Option<String>,
        /// The whole raw body.
        body: Secret,
    },

    /// A response with a status the API does not document (e.g. a redirect).
    #[error("unexpected response status {status}; body starts with: {excerpt:?}")]
    UnexpectedResponse {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        excerpt: String,
    },

    /// The server answered with a redirect (3xx). Redirects are never followed: the request
    /// carries the platform's and the user's secrets, which must not go to another host or
    /// over plain HTTP. Check the base URL (a proxy or an old host may be redirecting).
    #[error(
        "Connect Trade answered {status} redirecting to {}; redirects are not followed (the \
         request carries credentials): check the base URL",
        .location.as_deref().unwrap_or("no location")
    )]
    Redirect {
        /// The HTTP status (301, 302, 303, 307, 308, …).
        status: u16,
        /// The `Location` header, cut short, if the server sent one.
        location: Option<String>,
    },

    /// The request was not valid and was not sent.
    #[error("invalid request, not sent: {0}")]
    InvalidRequest(String),

    /// An order (or a modification, or a cancel) broke a rule the SDK checks, and was not
    /// sent. [`OrderError::rule`] says which rule; [`Error::order_rule`] reaches it from here.
    #[error(transparent)]
    Order(#[from] OrderError),

    /// A symbol could not be read (see [`SymbolError::part`] and [`SymbolError::position`]).
    #[error(transparent)]
    Symbol(#[from] SymbolError),

    /// **The order may or may not exist, and the SDK could not find out.**
    ///
    /// An attempt to place (modify, cancel) the order may have reached Connect Trade (its answer
    /// was lost: a timeout, a cut connection, a 5xx), and looking the order up by its client
    /// order id afterwards did not settle it (the look-up failed too, whatever its error:
    /// 401, 403, 404, 429, 5xx, a cut connection; [`source`](std::error::Error::source) is
    /// the last error met).
    ///
    /// What to do: look the order up later by this `cl_order_id`
    /// ([`orders::find_by_cl_order_id`](crate::orders::find_by_cl_order_id), or the
    /// brokerage stream), and send it again only **with the same `cl_order_id`** (Connect Trade
    /// answers 409 to a repeat, and the SDK then returns the existing order). Never place it
    /// again under a new `cl_order_id`: that can buy twice.
    #[error(
        "{action} order {cl_order_id:?}: the outcome is unknown (an attempt may have reached \
         Connect Trade and looking the order up failed); look it up later by this cl_order_id \
         and never send it again under a new one"
    )]
    OrderOutcomeUnknown {
        /// What was being done.
        action: OrderAction,
        /// The key to look the order up by: the order's `cl_order_id` when placing and
        /// cancelling (empty if the cancelled order had none), the `new_cl_order_id` when
        /// modifying. At most 64 characters of it are kept.
        cl_order_id: String,
        /// The order acted on (modify and cancel), if any.
        order_id: Option<String>,
        /// The last error met (usually the look-up's).
        #[source]
        last_error: Box<Error>,
    },

    /// A user-scoped operation was called on a client without user credentials; nothing was
    /// sent.
    #[error(
        "`{operation}` needs user credentials (user-id and user-secret) but this client has \
         none: call it on a client from `ConnectTrade::for_user`"
    )]
    MissingUserCredentials {
        /// The operation id.
        operation: String,
    },

    /// The client is misconfigured (base URL, credentials, environment).
    #[error("configuration error: {0}")]
    Config(String),

    /// The server broke the API's contract (e.g. a paging cursor that loops).
    #[error("protocol error: {0}")]
    Protocol(String),

    /// A WebSocket stream failed (see [`StreamError::is_terminal`]).
    #[error(transparent)]
    Stream(#[from] StreamError),

    /// The relay (feature `relay`) failed: NATS, JetStream, or the session it holds.
    #[cfg(feature = "relay")]
    #[cfg_attr(docsrs, doc(cfg(feature = "relay")))]
    #[error(transparent)]
    Relay(#[from] crate::relay::RelayError),
}

/// What an order operation of [`orders`](crate::orders) was doing (in
/// [`Error::OrderOutcomeUnknown`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OrderAction {
    /// `POST /orders`.
    Place,
    /// `PATCH /accounts/{account_id}/orders/{order_id}`.
    Modify,
    /// `DELETE /accounts/{account_id}/orders/{order_id}`.
    Cancel,
}

impl std::fmt::Display for OrderAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OrderAction::Place => "placing",
            OrderAction::Modify => "modifying into",
            OrderAction::Cancel => "cancelling",
        })
    }
}

fn request_id_suffix(request_id: &Option<String>) -> String {
    request_id
        .as_ref()
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default()
}

fn decode_context(operation: &Option<String>, status: &Option<u16>) -> String {
    match (operation, status) {
        (Some(op), Some(status)) => format!(" ({status} to `{op}`)"),
        (Some(op), None) => format!(" to `{op}`"),
        (None, Some(status)) => format!(" ({status})"),
        (None, None) => String::new(),
    }
}

fn path_text(path: &str) -> String {
    if path.is_empty() {
        "the top level".to_string()
    } else {
        format!("`{path}`")
    }
}

fn effect_suffix(operation: &Option<String>, status: &Option<u16>) -> &'static str {
    let mutating = operation
        .as_deref()
        .is_some_and(|op| MUTATING_OPERATIONS.contains(&op));
    if mutating && status.is_some_and(|s| (200..300).contains(&s)) {
        ". The server accepted the call, so it took effect: do not repeat it blindly \
         (the raw body is kept in the error)"
    } else {
        ""
    }
}

fn excerpt_suffix(excerpt: &Option<String>) -> String {
    excerpt
        .as_ref()
        .map(|e| format!("; body starts with: {e:?}"))
        .unwrap_or_default()
}

fn retry_after_suffix(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!("; retry after {:.3} s", d.as_secs_f64()))
        .unwrap_or_default()
}

/// The result type of the hand-written layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether trying the same request again later may succeed: transport failures, timeouts,
    /// 429, and 500/502/503/504. Whether it is *safe* to repeat is another matter: the SDK
    /// only repeats idempotent requests by itself.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout(_) | Error::Transport(_) | Error::RateLimited { .. } => true,
            Error::Api { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. }
            | Error::UnexpectedResponse { status, .. }
            | Error::Redirect { status, .. } => Some(*status),
            Error::Decode { status, .. } => *status,
            Error::RateLimited { .. } => Some(429),
            Error::Transport(e) | Error::Timeout(e) => e.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// The server's request id, if it gave one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api { request_id, .. } | Error::RateLimited { request_id, .. } => {
                request_id.as_deref()
            }
            _ => None,
        }
    }

    /// Whether the request may have reached the server and taken effect even though no
    /// answer came back (timeout, connection reset after sending, or a 5xx), or the outcome of
    /// an order operation is unknown ([`Error::OrderOutcomeUnknown`]). False only when no
    /// attempt could have taken effect. An order whose placement failed this way must be
    /// looked up before it is sent again.
    pub fn may_have_reached_server(&self) -> bool {
        match self {
            Error::Timeout(_) | Error::OrderOutcomeUnknown { .. } => true,
            Error::Transport(e) => !e.is_connect() && !e.is_builder(),
            Error::Api { status, .. } => *status >= 500,
            Error::Decode { .. } | Error::UnexpectedResponse { .. } | Error::Redirect { .. } => {
                true
            }
            _ => false,
        }
    }

    /// The rule an order broke, when this is [`Error::Order`].
    pub fn order_rule(&self) -> Option<crate::orders::OrderRule> {
        match self {
            Error::Order(error) => Some(error.rule()),
            _ => None,
        }
    }

    /// Whether this is [`Error::OrderOutcomeUnknown`]: the order may exist; look it up by its
    /// client order id before doing anything else with it.
    pub fn is_order_outcome_unknown(&self) -> bool {
        matches!(self, Error::OrderOutcomeUnknown { .. })
    }
}

/// At most this many characters of a caller's input are echoed in an error message.
pub(crate) const ECHO_CHARS: usize = 64;

/// `text` cut to `max` characters (with `…` when cut), so that a huge input cannot make a
/// huge error message.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}… ({} bytes in all)", &text[..end], text.len()),
    }
}

impl Error {
    /// The raw body of an answer that could not be decoded ([`Error::Decode`]).
    pub fn raw_body(&self) -> Option<&Secret> {
        match self {
            Error::Decode { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The user secret in the undecodable answer to `POST /users` (`create_user`): the user
    /// was created and its secret is shown only once, so it must not be lost. Looks for a
    /// string under `user_secret` (or `userSecret`, `secret`) anywhere in the body.
    pub fn recovered_user_secret(&self) -> Option<Secret> {
        let Error::Decode {
            operation, body, ..
        } = self
        else {
            return None;
        };
        if operation.as_deref() != Some("create_user") {
            return None;
        }
        let value: serde_json::Value = serde_json::from_str(body.expose()).ok()?;
        find_secret(&value).map(Secret::new)
    }
}

fn find_secret(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Object(map) => {
            for key in ["user_secret", "userSecret", "secret"] {
                if let Some(serde_json::Value::String(s)) = map.get(key) {
                    return Some(s.clone());
                }
            }
            map.values().find_map(find_secret)
        }
        serde_json::Value::Array(items) => items.iter().find_map(find_secret),
        _ => None,
    }
}

/// What serde said, without its position suffix and, for an answer that can hold a secret,
/// without any value it quoted: only the kinds of failure that name no value are kept.
pub(crate) fn describe_decode_failure(message: &str, secret: bool) -> String {
    let message = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    };
    if !secret {
        return message.to_string();
    }
    let names_no_value = [
        "missing field",
        "EOF while",
        "expected ",
        "trailing ",
        "key must be",
    ];
    if names_no_value.iter().any(|p| message.starts_with(p)) {
        message.to_string()
    } else {
        "a value of the wrong type or format (not quoted: this answer can hold a secret)"
            .to_string()
    }
}

/// The start of a body, lossily decoded, at most [`EXCERPT_CHARS`] characters.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

/// The request id a response carries (`x-request-id` or `request-id`).
pub(crate) fn request_id_of(headers: &reqwest::header::HeaderMap) -> Option<String> {
    ["x-request-id", "request-id"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Parses `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn retry_after_of(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

impl From<progenitor_client::Error<types::Error>> for Error {
    fn from(error: progenitor_client::Error<types::Error>) -> Self {
        use progenitor_client::Error as P;
        match error {
            P::InvalidRequest(message) => Error::InvalidRequest(message),
            P::Custom(message) => match message.strip_prefix(MISSING_USER_MARKER) {
                Some(operation) => Error::MissingUserCredentials {
                    operation: operation.to_string(),
                },
                None => Error::InvalidRequest(message),
            },
            P::CommunicationError(e) | P::ResponseBodyError(e) | P::InvalidUpgrade(e) => {
                from_reqwest(e)
            }
            P::ErrorResponse(response) => {
                let status = response.status().as_u16();
                let request_id = request_id_of(response.headers());
                let retry_after = retry_after_of(response.headers());
                let message = response.into_inner().message;
                if status == 429 {
                    Error::RateLimited {
                        retry_after,
                        message,
                        request_id,
                    }
                } else {
                    Error::Api {
                        status,
                        message,
                        request_id,
                    }
                }
            }
            P::InvalidResponsePayload(body, source) => Error::Decode {
                operation: None,
                status: None,
                path: String::new(),
                // Not knowing the operation, quote nothing: it could carry a secret.
                message: describe_decode_failure(&source.to_string(), true),
                excerpt: None,
                body: Secret::new(String::from_utf8_lossy(&body)),
            },
            P::UnexpectedResponse(response) if response.status().is_redirection() => {
                Error::Redirect {
                    status: response.status().as_u16(),
                    location: response
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .map(|value| excerpt(value.as_bytes())),
                }
            }
            P::UnexpectedResponse(response) => {
                match response.extensions().get::<UndecodableSuccess>() {
                    Some(failure) => {
                        let text = String::from_utf8_lossy(&failure.body);
                        Error::Decode {
                            operation: Some(failure.operation.to_string()),
                            status: Some(failure.status),
                            path: failure.path.clone(),
                            message: failure.message.clone(),
                            excerpt: (!failure.secret).then(|| excerpt(&failure.body)),
                            body: Secret::new(text),
                        }
                    }
                    None => Error::UnexpectedResponse {
                        status: response.status().as_u16(),
                        excerpt: String::new(),
                    },
                }
            }
        }
    }
}

pub(crate) fn from_reqwest(e: reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Timeout(e)
    } else {
        Error::Transport(e)
    }
}
