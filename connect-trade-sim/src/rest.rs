//! The REST server: every operation of `spec/openapi.json`, answered from the world.
//!
//! Responses are the generated types of `connect_trade::rest::types`, serialized: the client
//! decodes exactly what the simulator encodes.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, RawQuery, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    FaultAnswer, RecordedResponse, Shared, Wire,
    state::{ApiError, ApiResult, Authorize},
};
use connect_trade::{
    codes::{BrokerCode, OrderSide, OrderStatusFilter, SortOrder},
    paging::OrderPage,
    rest::types::{
        CreateConnectionRequest, CreateUserRequest, ModifyOrderRequest, Order, PlaceOrderRequest,
        UserTokenRequest,
    },
};

type S = State<Arc<Shared>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        use connect_trade::rest::types::Error;
        let body = crate::state::rest_type!(Error {
            message: self.message,
        });
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// 200 with the JSON of `T`, or the error.
fn reply<T: Serialize>(result: ApiResult<T>) -> Response {
    match result {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => error.into_response(),
    }
}

/// 200 with no body (204 under [`Wire::Created204`]), or the error.
fn reply_empty(s: &Shared, result: ApiResult<()>) -> Response {
    match result {
        Ok(()) if s.config.wire.contains(Wire::Created204) => {
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => error.into_response(),
    }
}

/// The answer to a call that creates something: 200 with the JSON of `T` (201 under
/// [`Wire::Created204`]), or the error.
fn reply_created<T: Serialize>(s: &Shared, result: ApiResult<T>) -> Response {
    match result {
        Ok(value) if s.config.wire.contains(Wire::Created204) => {
            (StatusCode::CREATED, axum::Json(value)).into_response()
        }
        other => reply(other),
    }
}

/// The fields an order keeps under [`Wire::OrdersMinimal`]: those Connect Trade's cookbook
/// reads (`symbol`, `side`, `order_qty`, `order_type`, the normalized status), plus the
/// identifiers acting on an order needs and the creation time paging by time window needs.
const MINIMAL_ORDER_FIELDS: &[&str] = &[
    "order_id",
    "account_id",
    "cl_order_id",
    "created_at",
    "symbol",
    "side",
    "order_qty",
    "order_type",
    "status",
];

/// An order as this simulator's wire variants write it.
fn order_json(s: &Shared, order: &Order) -> serde_json::Value {
    let mut value = serde_json::to_value(order).unwrap_or(serde_json::Value::Null);
    if s.config.wire.contains(Wire::OrdersMinimal)
        && let serde_json::Value::Object(fields) = &mut value
    {
        fields.retain(|name, _| MINIMAL_ORDER_FIELDS.contains(&name.as_str()));
    }
    value
}

/// One order, or the error.
fn reply_order(s: &Shared, result: ApiResult<Order>) -> Response {
    reply(result.map(|order| order_json(s, &order)))
}

/// A page of `GET /orders`: a bare JSON array, as Connect Trade's cookbook reads it, or the
/// envelope `{orders, next_cursor, prev_cursor}` under [`Wire::OrdersEnvelope`].
fn reply_order_page(s: &Shared, result: ApiResult<OrderPage>) -> Response {
    reply(result.map(|page| {
        let orders: Vec<serde_json::Value> = page.orders.iter().map(|o| order_json(s, o)).collect();
        if s.config.wire.contains(Wire::OrdersEnvelope) {
            serde_json::json!({
                "orders": orders,
                "next_cursor": page.next_cursor,
                "prev_cursor": page.prev_cursor,
            })
        } else {
            serde_json::Value::Array(orders)
        }
    }))
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{user_id}", delete(delete_user))
        .route(
            "/connections",
            get(list_connections).post(create_connection),
        )
        .route("/connections/{connection_id}", delete(delete_connection))
        .route("/connections/{connection_id}/token", get(market_data_token))
        .route("/accounts", get(list_accounts))
        .route("/balances", get(list_balances))
        .route("/positions", get(list_positions))
        .route("/orders", get(list_orders).post(place_order))
        .route(
            "/accounts/{account_id}/orders/{order_id}",
            get(get_order).patch(modify_order).delete(cancel_order),
        )
        .route("/transactions", get(list_transactions))
        .route("/auth/tokens/user", post(user_token))
        .route("/oauth/authorize/{request_id}", get(authorize))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            faults_and_log,
        ))
        .with_state(shared)
}

async fn no_route(request: Request) -> Response {
    ApiError::new(
        404,
        format!(
            "no such endpoint: {} {}",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response()
}

async fn wrong_method(request: Request) -> Response {
    ApiError::new(
        405,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response()
}

/// Injects the configured REST faults and records every response.
async fn faults_and_log(State(shared): S, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let route = route_of(request.method().as_str(), &path);
    let fault = if path.starts_with("/oauth/") {
        None
    } else {
        let operation = route.as_ref().map(|route| format!("{method} {route}"));
        shared.faults.next_rest_fault(operation.as_deref())
    };
    // The answer, and whether the connection is cut in the middle of it.
    let (response, cut) = match fault {
        None => (next.run(request).await, false),
        Some(fault) => {
            // After acting, the operation takes effect whatever happens to its answer.
            let acted = if fault.after_acting {
                Some(next.run(request).await)
            } else {
                None
            };
            match fault.answer {
                FaultAnswer::Cut => (
                    acted.unwrap_or_else(|| fault.to_error().into_response()),
                    true,
                ),
                FaultAnswer::Never => {
                    shared.faults.hung().await;
                    (
                        acted.unwrap_or_else(|| fault.to_error().into_response()),
                        false,
                    )
                }
                _ => (fault.to_error().into_response(), false),
            }
        }
    };
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    shared.record(RecordedResponse {
        method,
        path,
        route,
        status: parts.status.as_u16(),
        body: serde_json::from_slice(&bytes).ok(),
    });
    if cut {
        // Half the body, then the connection dies (no end of the chunked body).
        let half = bytes.slice(..bytes.len() / 2);
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(half),
            Err(std::io::Error::other("connection cut by the simulator")),
        ];
        let mut parts = parts;
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from_stream(futures::stream::iter(chunks)));
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The route a path matches, written as the spec writes paths.
fn route_of(method: &str, path: &str) -> Option<String> {
    const ROUTES: &[(&str, &str)] = &[
        ("/users", "GET POST"),
        ("/users/{user_id}", "DELETE"),
        ("/connections", "GET POST"),
        ("/connections/{connection_id}", "DELETE"),
        ("/connections/{connection_id}/token", "GET"),
        ("/accounts", "GET"),
        ("/balances", "GET"),
        ("/positions", "GET"),
        ("/orders", "GET POST"),
        (
            "/accounts/{account_id}/orders/{order_id}",
            "GET PATCH DELETE",
        ),
        ("/transactions", "GET"),
        ("/auth/tokens/user", "POST"),
        ("/oauth/authorize/{request_id}", "GET"),
    ];
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES
        .iter()
        .find(|(route, methods)| {
            let pattern: Vec<&str> = route.split('/').collect();
            methods.split(' ').any(|m| m == method)
                && pattern.len() == parts.len()
                && pattern
                    .iter()
                    .zip(&parts)
                    .all(|(p, a)| p.starts_with('{') && !a.is_empty() || p == a)
        })
        .map(|(route, _)| route.to_string())
}

// -------------------------------------------------------------------------------------------
// Authentication and parsing
// -------------------------------------------------------------------------------------------

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The platform's pair: required on every operation.
fn platform(shared: &Shared, headers: &HeaderMap) -> ApiResult<()> {
    match (
        header(headers, "client-id"),
        header(headers, "client-secret"),
    ) {
        (Some(id), Some(secret))
            if id == shared.config.client_id && secret == shared.config.client_secret.expose() =>
        {
            Ok(())
        }
        (None, _) | (_, None) => Err(ApiError::unauthorized(
            "missing client-id or client-secret header: every request carries the platform credentials",
        )),
        _ => Err(ApiError::unauthorized(
            "unknown client-id or wrong client-secret",
        )),
    }
}

/// The platform's pair and a user's pair; returns the user id.
fn user(shared: &Shared, headers: &HeaderMap) -> ApiResult<String> {
    platform(shared, headers)?;
    match (header(headers, "user-id"), header(headers, "user-secret")) {
        (Some(id), Some(secret)) => {
            shared.state().check_user(id, secret)?;
            Ok(id.to_string())
        }
        _ => Err(ApiError::unauthorized(
            "missing user-id or user-secret header: this operation acts for a user",
        )),
    }
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(400, format!("invalid request body: {e}")))
}

/// The query parameters (unknown ones are ignored, as a server does).
struct Params(HashMap<String, String>);

impl Params {
    fn new(query: Option<String>) -> Self {
        Params(
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn symbols(&self) -> Option<Vec<String>> {
        self.get("symbols").map(|s| {
            s.split(',')
                .map(|p| p.trim().to_ascii_uppercase())
                .filter(|p| !p.is_empty())
                .collect()
        })
    }

    fn time(&self, name: &str) -> ApiResult<Option<DateTime<Utc>>> {
        self.get(name)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::invalid(name, format!("{v:?} is not an RFC 3339 date-time"))
                    })
            })
            .transpose()
    }

    fn date(&self, name: &str) -> ApiResult<Option<NaiveDate>> {
        self.get(name)
            .map(|v| {
                NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                    ApiError::invalid(name, format!("{v:?} is not a date (YYYY-MM-DD)"))
                })
            })
            .transpose()
    }
}

// -------------------------------------------------------------------------------------------
// Users
// -------------------------------------------------------------------------------------------

async fn create_user(State(s): S, headers: HeaderMap, bytes: Bytes) -> Response {
    reply_created(
        &s,
        (|| {
            platform(&s, &headers)?;
            let request: CreateUserRequest = body(&bytes)?;
            s.state().create_user(&request.user_id)
        })(),
    )
}

async fn list_users(State(s): S, headers: HeaderMap) -> Response {
    reply(platform(&s, &headers).map(|()| s.state().list_users()))
}

async fn delete_user(State(s): S, headers: HeaderMap, Path(user_id): Path<String>) -> Response {
    reply_empty(
        &s,
        platform(&s, &headers).and_then(|()| s.state().delete_user(&user_id)),
    )
}

// -------------------------------------------------------------------------------------------
// Connections
// -------------------------------------------------------------------------------------------

async fn create_connection(State(s): S, headers: HeaderMap, bytes: Bytes) -> Response {
    reply_created(
        &s,
        (|| {
            let user_id = user(&s, &headers)?;
            let request: CreateConnectionRequest = body(&bytes)?;
            s.state().create_connection(&user_id, request)
        })(),
    )
}

async fn list_connections(State(s): S, headers: HeaderMap) -> Response {
    reply(user(&s, &headers).map(|u| s.state().list_connections(&u)))
}

async fn delete_connection(State(s): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    reply_empty(
        &s,
        user(&s, &headers).and_then(|u| s.state().delete_connection(&u, &id)),
    )
}

async fn market_data_token(State(s): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let token = user(&s, &headers).and_then(|u| s.state().market_data_token(&u, &id));
    if s.config.wire.contains(Wire::TokenPlain) {
        // `token` instead of `access_token`, and no `expires_at`.
        return reply(token.map(|t| serde_json::json!({ "token": t.access_token })));
    }
    reply(token)
}

async fn user_token(State(s): S, headers: HeaderMap, bytes: Bytes) -> Response {
    reply_created(
        &s,
        (|| {
            user(&s, &headers)?;
            let request: UserTokenRequest = body(&bytes)?;
            s.state().user_token(&request.scopes)
        })(),
    )
}

/// The OAuth page a browser opens: no API credentials, it is the user's browser.
async fn authorize(State(s): S, Path(id): Path<String>, RawQuery(query): RawQuery) -> Response {
    let params = Params::new(query);
    let outcome = s.state().authorize(&id, params.get("broker"));
    match outcome {
        Ok(Authorize::Redirect(location)) => match HeaderValue::from_str(&location) {
            Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
            Err(_) => ApiError::new(500, "could not build the redirect").into_response(),
        },
        Ok(Authorize::ChooseBroker(brokers)) => {
            let links: String = brokers
                .iter()
                .map(|b| format!("<li><a href=\"?broker={0}\">{0}</a></li>", b.as_str()))
                .collect();
            let page = format!(
                "<!doctype html><html><head><title>Connect a brokerage account (simulator)</title></head>\
                 <body><h1>Choose your broker</h1><p>The Connect Trade simulator opens a paper \
                 account at the broker you pick.</p><ul>{links}</ul></body></html>"
            );
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
        }
        Err(error) => error.into_response(),
    }
}

// -------------------------------------------------------------------------------------------
// Accounts, balances, positions, transactions
// -------------------------------------------------------------------------------------------

async fn list_accounts(State(s): S, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q);
    reply(user(&s, &headers).and_then(|u| {
        let broker = p.get("broker").map(BrokerCode::from_wire);
        s.state()
            .list_accounts(&u, p.get("connection_id"), broker.as_ref())
    }))
}

async fn list_balances(State(s): S, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q);
    reply(user(&s, &headers).and_then(|u| {
        s.state()
            .list_balances(&u, p.get("account_id"), p.get("connection_id"))
    }))
}

async fn list_positions(State(s): S, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q);
    reply(user(&s, &headers).and_then(|u| {
        let symbols = p.symbols();
        s.state().list_positions(
            &u,
            p.get("account_id"),
            p.get("connection_id"),
            symbols.as_deref(),
        )
    }))
}

async fn list_transactions(State(s): S, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q);
    reply((|| {
        let u = user(&s, &headers)?;
        let (start, end) = (p.date("start_date")?, p.date("end_date")?);
        s.state()
            .list_transactions(&u, p.get("account_id"), p.get("connection_id"), start, end)
    })())
}

// -------------------------------------------------------------------------------------------
// Orders
// -------------------------------------------------------------------------------------------

async fn place_order(State(s): S, headers: HeaderMap, bytes: Bytes) -> Response {
    let placed = (|| {
        let u = user(&s, &headers)?;
        crate::amounts::check_order_body(&bytes)?;
        let request: PlaceOrderRequest = body(&bytes)?;
        s.state().place_order(&u, request)
    })();
    reply_created(&s, placed.map(|order| order_json(&s, &order)))
}

async fn get_order(
    State(s): S,
    headers: HeaderMap,
    Path((account, order)): Path<(String, String)>,
) -> Response {
    reply_order(
        &s,
        user(&s, &headers).and_then(|u| s.state().get_order(&u, &account, &order)),
    )
}

async fn modify_order(
    State(s): S,
    headers: HeaderMap,
    Path((account, order)): Path<(String, String)>,
    bytes: Bytes,
) -> Response {
    reply_order(
        &s,
        (|| {
            let u = user(&s, &headers)?;
            crate::amounts::check_order_body(&bytes)?;
            let request: ModifyOrderRequest = body(&bytes)?;
            s.state().modify_order(&u, &account, &order, request)
        })(),
    )
}

async fn cancel_order(
    State(s): S,
    headers: HeaderMap,
    Path((account, order)): Path<(String, String)>,
) -> Response {
    reply_empty(
        &s,
        user(&s, &headers).and_then(|u| s.state().cancel_order(&u, &account, &order)),
    )
}

async fn list_orders(State(s): S, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q);
    reply_order_page(
        &s,
        (|| {
            let u = user(&s, &headers)?;
            let status = p
                .get("status")
                .map(|v| match OrderStatusFilter::from_wire(v) {
                    OrderStatusFilter::Unknown(v) => Err(ApiError::invalid(
                        "status",
                        format!("{v:?} is not an order status filter"),
                    )),
                    known => Ok(known),
                })
                .transpose()?;
            let side = p
                .get("side")
                .map(|v| match OrderSide::from_wire(v) {
                    OrderSide::Unknown(v) => Err(ApiError::invalid(
                        "side",
                        format!("{v:?} is not an order side"),
                    )),
                    known => Ok(known),
                })
                .transpose()?;
            let sort = p
                .get("sort")
                .map(|v| match SortOrder::from_wire(v) {
                    SortOrder::Unknown(v) => Err(ApiError::invalid(
                        "sort",
                        format!("{v:?} is not asc or desc"),
                    )),
                    known => Ok(known),
                })
                .transpose()?;
            let limit = match p.get("limit") {
                None => 50,
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if (1..=500).contains(&n) => n,
                    _ => {
                        return Err(ApiError::invalid(
                            "limit",
                            format!("{v:?} is not an integer from 1 to 500"),
                        ));
                    }
                },
            };
            let offset = match p.get("cursor") {
                None => 0,
                Some(c) => c
                    .strip_prefix("cur_")
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "cursor",
                            format!("{c:?} is not a cursor this server gave"),
                        )
                    })?,
            };
            let (start, end) = (p.time("start_time")?, p.time("end_time")?);
            let symbols = p.symbols();
            s.state().list_orders(
                &u,
                p.get("account_id"),
                p.get("connection_id"),
                status.as_ref(),
                symbols.as_deref(),
                side.as_ref(),
                start,
                end,
                sort.as_ref(),
                limit,
                offset,
            )
        })(),
    )
}
