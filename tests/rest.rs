//! The REST SDK against a mock server: for every operation the method, path, credential
//! headers, query encoding and body on the wire, and the decoding of a realistic response;
//! then errors, retries, paging, forward compatibility and secrecy.

mod support;

use std::{str::FromStr, time::Duration};

use connect_trade::{
    ConnectTrade, Error, UserClient, UserCredentials,
    client::RetryPolicy,
    codes::{
        BrokerCode, ConnectionType, Instrument, OrderSide, OrderStatus, OrderStatusFilter,
        OrderType, SortOrder, TimeInForce, TokenScope, TransactionType,
    },
    rest::types::{ModifyOrderRequest, PlaceOrderRequest},
};
use futures::TryStreamExt;
use httpmock::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;
use support::scripted::{Reply, Scripted};

const CLIENT_ID: &str = "platform-1";
const CLIENT_SECRET: &str = "platform-secret-XYZ";
const USER_ID: &str = "alice";
const USER_SECRET: &str = "alice-secret-123";

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(2),
    }
}

fn clients(base_url: &str) -> (ConnectTrade, UserClient) {
    let platform = ConnectTrade::builder()
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .base_url(base_url)
        .retry_policy(fast_retries())
        .build()
        .expect("client builds");
    let user = platform
        .for_user(UserCredentials::new(USER_ID, USER_SECRET))
        .expect("user client");
    (platform, user)
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// Matches a request carrying the platform and the user credentials.
fn user_headers(when: httpmock::When) -> httpmock::When {
    when.header("client-id", CLIENT_ID)
        .header("client-secret", CLIENT_SECRET)
        .header("user-id", USER_ID)
        .header("user-secret", USER_SECRET)
        .header_missing("api-version")
}

/// Matches a request carrying only the platform credentials.
fn platform_headers(when: httpmock::When) -> httpmock::When {
    when.header("client-id", CLIENT_ID)
        .header("client-secret", CLIENT_SECRET)
        .header_missing("user-id")
        .header_missing("user-secret")
        .header_missing("api-version")
}

fn order_json() -> serde_json::Value {
    json!({
        "order_id": "ord-1",
        "cl_order_id": "cl-1",
        "account_id": "acc-1",
        "broker": "WEBULL",
        "symbol": "TSLA251031C00437500",
        "instrument": "OPT",
        "side": "BUY_TO_OPEN",
        "order_type": "LMT",
        "order_tif": "GTC",
        "order_qty": "1",
        "order_limit_price": "13.50",
        "status": "partially_filled",
        "broker_status": "PartiallyFilled",
        "filled_qty": "0.5",
        "fills": [
            {"fill_id": "f1", "time": "2025-10-01T14:30:00Z", "quantity": "0.5", "price": "13.499999999"}
        ],
        "created_at": "2025-10-01T14:29:59Z",
        "updated_at": "2025-10-01T14:30:00Z"
    })
}

// ---------------------------------------------------------------------------------------------
// Users (platform credentials only)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_user_sends_platform_credentials_only_and_returns_the_secret() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            platform_headers(when)
                .method(POST)
                .path("/users")
                .body(r#"{"user_id":"alice"}"#);
            then.status(200)
                .json_body(json!({"user_id": "alice", "user_secret": "s3cr3t", "extra": 1}));
        })
        .await;
    let (platform, _) = clients(&server.base_url());
    let created = platform
        .create_user()
        .body_map(|b| b.user_id("alice"))
        .send()
        .await
        .unwrap()
        .into_inner();
    mock.assert_async().await;
    assert_eq!(created.user_id.as_deref(), Some("alice"));
    assert_eq!(created.user_secret.expose(), "s3cr3t");
    assert!(
        !format!("{created:?}").contains("s3cr3t"),
        "secret in Debug"
    );
    let credentials = created.into_credentials("requested");
    assert_eq!(credentials.user_secret.expose(), "s3cr3t");
    assert_eq!(credentials.user_id, "alice");
}

#[tokio::test]
async fn list_users_and_delete_user_need_only_platform_credentials() {
    let server = MockServer::start_async().await;
    let list = server
        .mock_async(|when, then| {
            platform_headers(when).method(GET).path("/users");
            then.status(200)
                .json_body(json!([{"user_id": "alice"}, {"user_id": "bob", "created_at": "2025-01-02T03:04:05Z"}]));
        })
        .await;
    let delete = server
        .mock_async(|when, then| {
            platform_headers(when).method(DELETE).path("/users/alice");
            then.status(200).body("anything at all, ignored");
        })
        .await;
    let (platform, _) = clients(&server.base_url());
    let users = platform.list_users().send().await.unwrap().into_inner();
    assert_eq!(users.len(), 2);
    assert_eq!(users[1].user_id, "bob");
    assert!(users[1].created_at.is_some());
    platform
        .delete_user()
        .user_id("alice")
        .send()
        .await
        .unwrap();
    list.assert_async().await;
    delete.assert_async().await;
}

#[tokio::test]
async fn an_existing_user_id_is_a_409_api_error_with_the_message_and_request_id() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/users");
            then.status(409)
                .header("x-request-id", "req-42")
                .json_body(json!({"message": "user alice already exists"}));
        })
        .await;
    let (platform, _) = clients(&server.base_url());
    let error: Error = platform
        .create_user()
        .body_map(|b| b.user_id("alice"))
        .send()
        .await
        .unwrap_err()
        .into();
    match &error {
        Error::Api {
            status,
            message,
            request_id,
        } => {
            assert_eq!(*status, 409);
            assert_eq!(message, "user alice already exists");
            assert_eq!(request_id.as_deref(), Some("req-42"));
        }
        other => panic!("expected Api error, got {other:?}"),
    }
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("409"));
    assert!(error.to_string().contains("req-42"));
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_connection_sends_type_broker_and_redirect() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            user_headers(when).method(POST).path("/connections").body(
                r#"{"broker":"ALPACA","connection_type":"trade","redirect_url":"https://platform.example/done"}"#,
            );
            then.status(200).json_body(json!({
                "connection_request_url": "https://connect.example/oauth?x=1",
                "expires_at": "2025-10-01T15:00:00Z"
            }));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let request = user
        .create_connection()
        .body_map(|b| {
            b.connection_type(ConnectionType::Trade)
                .broker(Some(BrokerCode::Alpaca))
                .redirect_url("https://platform.example/done")
        })
        .send()
        .await
        .unwrap()
        .into_inner();
    mock.assert_async().await;
    assert_eq!(
        request.connection_request_url,
        "https://connect.example/oauth?x=1"
    );
    assert!(request.expires_at.is_some());
}

#[tokio::test]
async fn list_connections_decodes_accounts_and_unknown_brokers() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            user_headers(when).method(GET).path("/connections");
            then.status(200).json_body(json!([
                {"connection_id": "c1", "broker": "ALPACA", "connection_type": "trade",
                 "status": "active",
                 "accounts": [{"account_id": "a1", "account_number": "****1234", "institution_name": "Alpaca"}]},
                {"connection_id": "c2", "broker": "IBKR", "connection_type": "options_only",
                 "brand_new_field": {"nested": true}}
            ]));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let connections = user.list_connections().send().await.unwrap().into_inner();
    mock.assert_async().await;
    assert_eq!(connections[0].broker, BrokerCode::Alpaca);
    assert_eq!(
        connections[0].accounts[0].account_number.as_deref(),
        Some("****1234")
    );
    assert_eq!(connections[1].broker, BrokerCode::Unknown("IBKR".into()));
    assert_eq!(connections[1].broker.to_string(), "IBKR");
    assert_eq!(
        connections[1].connection_type,
        ConnectionType::Unknown("options_only".into())
    );
    assert!(connections[1].accounts.is_empty());
}

#[tokio::test]
async fn delete_connection_and_market_data_token() {
    let server = MockServer::start_async().await;
    let delete = server
        .mock_async(|when, then| {
            user_headers(when).method(DELETE).path("/connections/c1");
            then.status(200);
        })
        .await;
    let token = server
        .mock_async(|when, then| {
            user_headers(when).method(GET).path("/connections/c1/token");
            then.status(200).json_body(
                json!({"access_token": "md-token-abc", "expires_at": "2025-10-02T15:00:00Z"}),
            );
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let t = user
        .get_market_data_token()
        .connection_id("c1")
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.access_token.expose(), "md-token-abc");
    assert!(!format!("{t:?}").contains("md-token-abc"));
    user.delete_connection()
        .connection_id("c1")
        .send()
        .await
        .unwrap();
    delete.assert_async().await;
    token.assert_async().await;
}

// ---------------------------------------------------------------------------------------------
// Accounts, balances, positions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_accounts_filters_by_connection_and_broker() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            user_headers(when)
                .method(GET)
                .path("/accounts")
                .query_param("connection_id", "c1")
                .query_param("broker", "WEBULL");
            then.status(200).json_body(json!([
                {"account_id": "a1", "account_number": "99", "broker": "WEBULL", "connection_id": "c1",
                 "institution_name": "Webull", "account_type": "margin"}
            ]));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let accounts = user
        .list_accounts()
        .connection_id("c1")
        .broker(BrokerCode::Webull)
        .send()
        .await
        .unwrap()
        .into_inner();
    mock.assert_async().await;
    assert_eq!(accounts[0].broker, Some(BrokerCode::Webull));
    assert_eq!(accounts[0].account_type.as_deref(), Some("margin"));
}

#[tokio::test]
async fn list_balances_keeps_every_digit() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            user_headers(when)
                .method(GET)
                .path("/balances")
                .query_param("account_id", "a1");
            then.status(200).json_body(json!([
                {"account_id": "a1", "cash": "1000.123456789", "buying_power": "2000.10",
                 "margin_buying_power": null, "currency": "USD"}
            ]));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let balances = user
        .list_balances()
        .account_id("a1")
        .send()
        .await
        .unwrap()
        .into_inner();
    mock.assert_async().await;
    assert_eq!(balances[0].cash, Some(dec("1000.123456789")));
    assert_eq!(balances[0].buying_power.unwrap().to_string(), "2000.10");
    assert_eq!(balances[0].margin_buying_power, None);
}

#[tokio::test]
async fn list_positions_sends_one_comma_separated_symbols_and_decodes_null_pl() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            user_headers(when)
                .method(GET)
                .path("/positions")
                .query_param("symbols", "AAPL,MSFT")
                .query_param_count("symbols", ".*", 1);
            then.status(200).json_body(json!([
                {"account_id": "a1", "symbol": "AAPL", "quantity": "10", "last_price": "190.01",
                 "unrealized_pl": "12.30", "daily_pl": null, "total_pl": null},
                {"account_id": "a1", "symbol": "MSFT", "quantity": "-2", "unrealized_pl": null}
            ]));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let positions = user
        .list_positions()
        .symbols("AAPL,MSFT")
        .send()
        .await
        .unwrap()
        .into_inner();
    mock.assert_async().await;
    assert_eq!(positions[0].unrealized_pl, Some(dec("12.30")));
    assert_eq!(positions[0].daily_pl, None);
    assert_eq!(positions[1].quantity, dec("-2"));
    assert_eq!(positions[1].unrealized_pl, None);
}

// ---------------------------------------------------------------------------------------------
// Orders
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn place_order_sends_the_documented_option_order_byte_for_byte() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            user_headers(when)
                .method(POST)
                .path("/orders")
                .header("content-type", "application/json")
                .body(concat!(
                    r#"{"account_id":"acc-1","broker":"WEBULL","cl_order_id":"cl-1","instrument":"OPT","#,
                    r#""order_limit_price":"13.50","order_qty":"1","order_tif":"GTC","order_type":"LMT","#,
                    r#""side":"BUY_TO_OPEN","symbol":"TSLA251031C00437500"}"#
                ));
            then.status(200).json_body(order_json());
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let body = PlaceOrderRequest::try_from(
        PlaceOrderRequest::builder()
            .account_id("acc-1")
            .broker(BrokerCode::Webull)
            .cl_order_id("cl-1")
            .instrument(Some(Instrument::Option))
            .order_limit_price(Some(dec("13.50")))
            .order_qty(Some(dec("1")))
            .order_tif(TimeInForce::Gtc)
            .order_type(OrderType::Limit)
            .side(Some(OrderSide::BuyToOpen))
            .symbol(Some("TSLA251031C00437500".to_string())),
    )
    .expect("every required field is given");
    let order = user
        .place_order()
        .body(body)
        .send()
        .await
        .unwrap()
        .into_inner();
    mock.assert_async().await;
    assert_eq!(order.status, OrderStatus::PartiallyFilled);
    assert_eq!(order.order_limit_price.unwrap().to_string(), "13.50");
    assert_eq!(order.fills[0].price, dec("13.499999999"));
}

#[tokio::test]
async fn a_multi_leg_order_sends_symbol_null() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/orders")
                .json_body_includes(r#"{"symbol": null, "instrument": "MLEG_OPT"}"#);
            then.status(200).json_body(order_json());
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let leg = |symbol: &str, action| connect_trade::rest::types::OrderLeg {
        symbol: symbol.into(),
        action,
        ratio: Decimal::ONE,
    };
    let body = PlaceOrderRequest::try_from(
        PlaceOrderRequest::builder()
            .account_id("acc-1")
            .broker(BrokerCode::Tastytrade)
            .cl_order_id("cl-2")
            .instrument(Some(Instrument::MultiLegOption))
            .legs(vec![
                leg("SPY241018C00430000", OrderSide::BuyToOpen),
                leg("SPY241018C00440000", OrderSide::SellToOpen),
            ])
            .order_limit_price(Some(dec("2.15")))
            .order_qty(Some(dec("1")))
            .order_tif(TimeInForce::Day)
            .order_type(OrderType::Limit)
            // Required, and sent as null: a multi-leg order has neither.
            .side(None)
            .symbol(None),
    )
    .expect("every required field is given");
    user.place_order().body(body).send().await.unwrap();
    mock.assert_async().await;
}

#[tokio::test]
async fn list_orders_encodes_every_filter() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            user_headers(when)
                .method(GET)
                .path("/orders")
                .query_param("account_id", "acc-1")
                .query_param("status", "partially_filled")
                .query_param("side", "SELL_SHORT")
                .query_param("symbols", "TSLA,AAPL")
                .query_param("start_time", "2025-10-01T00:00:00Z")
                .query_param("sort", "desc")
                .query_param("limit", "500");
            then.status(200).json_body(
                json!({"orders": [order_json()], "next_cursor": null, "prev_cursor": null}),
            );
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let start = chrono::DateTime::parse_from_rfc3339("2025-10-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let page = user
        .list_orders()
        .account_id("acc-1")
        .status(OrderStatusFilter::PartiallyFilled)
        .side(OrderSide::SellShort)
        .symbols("TSLA,AAPL")
        .start_time(start)
        .sort(SortOrder::Desc)
        .limit(500u32)
        .send()
        .await
        .unwrap()
        .into_inner();
    mock.assert_async().await;
    assert_eq!(page.orders.len(), 1);
    assert_eq!(page.next_cursor, None);
}

#[tokio::test]
async fn list_orders_refuses_a_limit_of_zero_before_sending() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200);
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let error: Error = user
        .list_orders()
        .limit(0u32)
        .send()
        .await
        .unwrap_err()
        .into();
    assert!(matches!(error, Error::InvalidRequest(_)), "{error:?}");
    assert_eq!(any.calls_async().await, 0);
}

#[tokio::test]
async fn get_modify_and_cancel_address_the_order_under_its_account() {
    let server = MockServer::start_async().await;
    let get = server
        .mock_async(|when, then| {
            user_headers(when)
                .method(GET)
                .path("/accounts/acc-1/orders/ord-1");
            then.status(200).json_body(order_json());
        })
        .await;
    let modify = server
        .mock_async(|when, then| {
            user_headers(when)
                .method(PATCH)
                .path("/accounts/acc-1/orders/ord-1")
                .body(
                    r#"{"broker":"WEBULL","new_cl_order_id":"cl-1b","order_limit_price":"13.25"}"#,
                );
            then.status(200).json_body(order_json());
        })
        .await;
    let cancel = server
        .mock_async(|when, then| {
            user_headers(when)
                .method(DELETE)
                .path("/accounts/acc-1/orders/ord-1");
            then.status(200)
                .json_body(json!({"status": "pending_cancel"}));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let order = user
        .get_order()
        .account_id("acc-1")
        .order_id("ord-1")
        .send()
        .await
        .unwrap();
    assert_eq!(order.order_id, "ord-1");
    let change = ModifyOrderRequest::try_from(
        ModifyOrderRequest::builder()
            .broker(BrokerCode::Webull)
            .new_cl_order_id("cl-1b")
            .order_limit_price(Some(dec("13.25"))),
    )
    .expect("every required field is given");
    user.modify_order()
        .account_id("acc-1")
        .order_id("ord-1")
        .body(change)
        .send()
        .await
        .unwrap();
    user.cancel_order()
        .account_id("acc-1")
        .order_id("ord-1")
        .send()
        .await
        .unwrap();
    get.assert_async().await;
    modify.assert_async().await;
    cancel.assert_async().await;
}

#[tokio::test]
async fn path_parameters_are_percent_encoded() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET).path("/accounts/acc%3F1/orders/o%20d");
            then.status(200).json_body(order_json());
        })
        .await;
    let (_, user) = clients(&server.base_url());
    // (`/` is refused before sending: see tests/wire_safety.rs.)
    user.get_order()
        .account_id("acc?1")
        .order_id("o d")
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
}

// ---------------------------------------------------------------------------------------------
// Transactions and user tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_transactions_sends_dates() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            user_headers(when)
                .method(GET)
                .path("/transactions")
                .query_param("start_date", "2025-01-01")
                .query_param("end_date", "2025-01-31");
            then.status(200).json_body(json!([
                {"transaction_id": "t1", "account_id": "a1", "type": "DIVIDEND", "amount": "1.23",
                 "symbol": "AAPL", "trade_date": "2025-01-15"},
                {"transaction_id": "t2", "account_id": "a1", "type": "CRYPTO_STAKING_REWARD"}
            ]));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let day = |d| chrono::NaiveDate::from_ymd_opt(2025, 1, d).unwrap();
    let transactions = user
        .list_transactions()
        .start_date(day(1))
        .end_date(day(31))
        .send()
        .await
        .unwrap()
        .into_inner();
    mock.assert_async().await;
    assert_eq!(transactions[0].type_, Some(TransactionType::Dividend));
    assert_eq!(transactions[0].amount, Some(dec("1.23")));
    assert_eq!(
        transactions[1].type_,
        Some(TransactionType::Unknown("CRYPTO_STAKING_REWARD".into()))
    );
}

#[tokio::test]
async fn create_user_token_sends_scopes() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            user_headers(when)
                .method(POST)
                .path("/auth/tokens/user")
                .body(r#"{"scopes":["read","trade"]}"#);
            then.status(200)
                .json_body(json!({"access_token": "jwt.jwt.jwt"}));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let token = user
        .create_user_token()
        .body_map(|b| b.scopes(vec![TokenScope::Read, TokenScope::Trade]))
        .send()
        .await
        .unwrap()
        .into_inner();
    mock.assert_async().await;
    assert_eq!(token.access_token.expose(), "jwt.jwt.jwt");
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn each_error_status_maps_to_an_api_error() {
    for (status, retryable) in [
        (400, false),
        (401, false),
        (404, false),
        (409, false),
        (500, true),
    ] {
        let server = MockServer::start_async().await;
        let mock = server
            .mock_async(|when, then| {
                when.method(POST).path("/orders");
                then.status(status)
                    .json_body(json!({"message": format!("status {status}")}));
            })
            .await;
        let (_, user) = clients(&server.base_url());
        let error: Error = user
            .place_order()
            .body(minimal_order())
            .send()
            .await
            .unwrap_err()
            .into();
        assert_eq!(error.status(), Some(status), "{error:?}");
        assert!(
            matches!(&error, Error::Api { message, .. } if message == &format!("status {status}")),
            "{error:?}"
        );
        assert_eq!(error.is_retryable(), retryable, "{status}");
        assert_eq!(
            mock.calls_async().await,
            1,
            "POST is never repeated ({status})"
        );
    }
}

fn minimal_order() -> PlaceOrderRequest {
    PlaceOrderRequest::try_from(
        PlaceOrderRequest::builder()
            .account_id("acc-1")
            .broker(BrokerCode::Alpaca)
            .cl_order_id("cl-9")
            .instrument(Some(Instrument::Equity))
            .order_qty(Some(Decimal::ONE))
            .order_tif(TimeInForce::Day)
            .order_type(OrderType::Market)
            .side(Some(OrderSide::Buy))
            .symbol(Some("MSFT".to_string())),
    )
    .expect("every required field is given")
}

#[tokio::test]
async fn a_429_becomes_rate_limited_with_retry_after() {
    let server = Scripted::start(vec![Reply::Json(
        429,
        vec![("retry-after", "120".into())],
        r#"{"message":"slow down"}"#.into(),
    )])
    .await;
    let (_, user) = clients(&server.base_url);
    let error: Error = user.list_accounts().send().await.unwrap_err().into();
    match error {
        Error::RateLimited {
            retry_after,
            message,
            ..
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(120)));
            assert_eq!(message, "slow down");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // 120 s is longer than the policy honours (2 s): returned at once, not retried.
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn a_non_json_error_body_keeps_its_status() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/orders");
            then.status(502)
                .header("content-type", "text/html")
                .body("<html><h1>502 Bad Gateway</h1></html>");
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let error: Error = user
        .place_order()
        .body(minimal_order())
        .send()
        .await
        .unwrap_err()
        .into();
    match &error {
        Error::Api {
            status, message, ..
        } => {
            assert_eq!(*status, 502);
            assert!(message.contains("Bad Gateway"), "{message}");
        }
        other => panic!("expected Api error, got {other:?}"),
    }
    assert!(error.is_retryable());
    assert!(error.may_have_reached_server());
}

#[tokio::test]
async fn an_undecodable_success_body_is_a_decode_error_with_an_excerpt() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/accounts");
            then.status(200).body(r#"{"not": "a list"}"#);
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let error: Error = user.list_accounts().send().await.unwrap_err().into();
    match error {
        Error::Decode { excerpt, .. } => {
            let excerpt = excerpt.expect("accounts can be quoted");
            assert!(excerpt.contains("not"), "{excerpt}");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_enum_values_and_fields_in_an_order_decode() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/accounts/a/orders/o");
            let mut order = order_json();
            order["status"] = json!("held_for_review");
            order["order_tif"] = json!("GTD");
            order["side"] = json!("BUY_TO_OPEN");
            order["venue"] = json!({"mic": "XNAS"});
            order["fills"][0]["liquidity"] = json!("maker");
            then.status(200).json_body(order);
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let order = user
        .get_order()
        .account_id("a")
        .order_id("o")
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(order.status, OrderStatus::Unknown("held_for_review".into()));
    assert!(
        order.status.is_open(),
        "unknown statuses must not look final"
    );
    assert_eq!(order.order_tif, Some(TimeInForce::Unknown("GTD".into())));
    // An unknown value goes back out exactly as it came.
    let back = serde_json::to_value(&order).unwrap();
    assert_eq!(back["status"], "held_for_review");
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_get_is_retried_on_503_and_succeeds() {
    let server = Scripted::start(vec![
        Reply::Json(503, vec![], r#"{"message":"busy"}"#.into()),
        Reply::Json(502, vec![], "".into()),
        Reply::Json(200, vec![], r#"[{"account_id":"a1"}]"#.into()),
    ])
    .await;
    let (_, user) = clients(&server.base_url);
    let accounts = user.list_accounts().send().await.unwrap().into_inner();
    assert_eq!(accounts[0].account_id, "a1");
    assert_eq!(server.count(), 3);
    let requests = server.requests.lock().unwrap();
    assert!(
        requests
            .iter()
            .all(|r| r.method == "GET" && r.target == "/accounts")
    );
}

#[tokio::test]
async fn a_get_honours_retry_after_then_gives_up_after_the_policy() {
    let server = Scripted::start(vec![Reply::Json(
        429,
        vec![("retry-after", "0".into())],
        r#"{"message":"slow"}"#.into(),
    )])
    .await;
    let (_, user) = clients(&server.base_url);
    let error: Error = user.list_balances().send().await.unwrap_err().into();
    assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
    assert_eq!(server.count(), 4, "1 attempt + 3 retries");
}

#[tokio::test]
async fn a_get_is_retried_when_the_connection_drops() {
    let server =
        Scripted::start(vec![Reply::Close, Reply::Json(200, vec![], r#"[]"#.into())]).await;
    let (_, user) = clients(&server.base_url);
    let positions = user.list_positions().send().await.unwrap().into_inner();
    assert!(positions.is_empty());
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn place_order_is_never_retried_blindly() {
    for first in [
        Reply::Json(503, vec![], r#"{"message":"busy"}"#.into()),
        Reply::Json(
            429,
            vec![("retry-after", "0".into())],
            r#"{"message":"slow"}"#.into(),
        ),
        Reply::Close,
    ] {
        let server = Scripted::start(vec![
            first.clone(),
            Reply::Json(200, vec![], order_json().to_string()),
        ])
        .await;
        let (_, user) = clients(&server.base_url);
        let error: Error = user
            .place_order()
            .body(minimal_order())
            .send()
            .await
            .unwrap_err()
            .into();
        assert_eq!(server.count(), 1, "POST /orders repeated after {first:?}");
        assert!(error.is_retryable(), "{error:?}");
    }
}

#[tokio::test]
async fn modify_is_never_retried_blindly() {
    let server = Scripted::start(vec![
        Reply::Json(503, vec![], r#"{"message":"busy"}"#.into()),
        Reply::Json(200, vec![], order_json().to_string()),
    ])
    .await;
    let (_, user) = clients(&server.base_url);
    let result = user
        .modify_order()
        .account_id("a")
        .order_id("o")
        .body(
            ModifyOrderRequest::try_from(
                ModifyOrderRequest::builder()
                    .broker(BrokerCode::Alpaca)
                    .new_cl_order_id("n")
                    .order_qty(Some(Decimal::TWO)),
            )
            .expect("every required field is given"),
        )
        .send()
        .await;
    assert!(result.is_err());
    assert_eq!(server.count(), 1);
}

// ---------------------------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_orders_all_follows_the_cursor_to_the_end() {
    let server = MockServer::start_async().await;
    let page = |ids: &[&str], next: Option<&str>| {
        let orders: Vec<_> = ids
            .iter()
            .map(|id| {
                let mut o = order_json();
                o["order_id"] = json!(id);
                o
            })
            .collect();
        json!({"orders": orders, "next_cursor": next, "prev_cursor": null})
    };
    let first = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/orders")
                .query_param("status", "all")
                .query_param_missing("cursor");
            then.status(200).json_body(page(&["o1", "o2"], Some("c2")));
        })
        .await;
    let second = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/orders")
                .query_param("status", "all")
                .query_param("cursor", "c2");
            then.status(200).json_body(page(&["o3"], Some("c3")));
        })
        .await;
    let third = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/orders")
                .query_param("status", "all")
                .query_param("cursor", "c3");
            then.status(200).json_body(page(&[], None));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let orders: Vec<_> = user
        .list_orders_all(|q| q.status(OrderStatusFilter::All))
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<_> = orders.iter().map(|o| o.order_id.as_str()).collect();
    assert_eq!(ids, ["o1", "o2", "o3"]);
    assert_eq!(first.calls_async().await, 1);
    assert_eq!(second.calls_async().await, 1);
    assert_eq!(third.calls_async().await, 1);
}

#[tokio::test]
async fn a_cursor_that_loops_ends_the_stream_with_an_error() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/orders");
            then.status(200)
                .json_body(json!({"orders": [order_json()], "next_cursor": "same"}));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let result: Result<Vec<_>, _> = user.list_orders_all(|q| q).try_collect().await;
    assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// Credentials and configuration
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_user_operation_without_user_credentials_fails_before_sending() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).json_body(json!([]));
        })
        .await;
    let (platform, _) = clients(&server.base_url());
    let error: Error = platform.list_accounts().send().await.unwrap_err().into();
    match &error {
        Error::MissingUserCredentials { operation } => assert_eq!(operation, "list_accounts"),
        other => panic!("expected MissingUserCredentials, got {other:?}"),
    }
    assert!(error.to_string().contains("for_user"));
    assert_eq!(any.calls_async().await, 0, "nothing may be sent");
}

#[test]
fn secrets_never_appear_in_debug_or_errors() {
    let (platform, user) = clients("http://127.0.0.1:9");
    let shown = format!(
        "{platform:?} {user:?} {:?} {:?}",
        platform.credentials(),
        user.credentials()
    );
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
    assert!(!shown.contains(USER_SECRET), "{shown}");
    assert!(shown.contains(CLIENT_ID), "ids help debugging: {shown}");
    assert!(shown.contains("<redacted>"));
}

#[test]
fn plain_http_is_refused_except_to_loopback() {
    let build = |url: &str| {
        ConnectTrade::builder()
            .client_id("id")
            .client_secret("secret")
            .base_url(url)
            .build()
    };
    let error = build("http://api.connecttrade.com").unwrap_err();
    assert!(matches!(error, Error::Config(_)));
    assert!(error.to_string().contains("HTTPS"), "{error}");
    for ok in [
        "https://api.connecttrade.com",
        "http://127.0.0.1:8080",
        "http://localhost:1234",
        "http://[::1]:80",
    ] {
        assert!(build(ok).is_ok(), "{ok}");
    }
    assert!(matches!(build("not a url"), Err(Error::Config(_))));
    assert!(matches!(build("ftp://x.example"), Err(Error::Config(_))));
}

#[test]
fn missing_platform_credentials_are_named() {
    let error = ConnectTrade::builder().client_id("id").build().unwrap_err();
    assert!(error.to_string().contains("client secret"), "{error}");
    let error = ConnectTrade::builder()
        .client_secret("s")
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("client id"), "{error}");
}

#[test]
fn credentials_that_cannot_be_headers_are_refused() {
    let (platform, _) = clients("http://127.0.0.1:9");
    let error = platform
        .for_user(UserCredentials::new("alice\nx-evil: 1", "s"))
        .unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
}

#[test]
fn retry_backoff_grows_and_is_capped() {
    let policy = RetryPolicy {
        max_retries: 10,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(10),
    };
    for retry in 0..10 {
        let cap = Duration::from_millis(100 * 2u64.pow(retry)).min(Duration::from_secs(1));
        for _ in 0..50 {
            assert!(policy.backoff(retry) <= cap);
        }
    }
    assert_eq!(RetryPolicy::none().max_retries, 0);
}

#[test]
fn a_user_client_carries_the_platform_clients_retry_policy() {
    // Safe order submission retries with this policy, like every other request of the client.
    let (platform, user) = clients("http://127.0.0.1:9");
    assert_eq!(platform.retry_policy(), &fast_retries());
    assert_eq!(user.retry_policy(), &fast_retries());
}

// ---------------------------------------------------------------------------------------------
// Order history in either shape: bare arrays without cursors, time windows
// ---------------------------------------------------------------------------------------------

/// How the history server below answers `GET /orders`.
#[derive(Clone, Copy)]
struct HistoryShape {
    /// `end_time` includes orders created exactly then (else: strictly before).
    end_inclusive: bool,
    /// The server ignores `start_time`/`end_time` altogether (a broken server).
    ignore_window: bool,
    /// Orders carry `created_at`.
    with_created_at: bool,
}

const WINDOWED: HistoryShape = HistoryShape {
    end_inclusive: false,
    ignore_window: false,
    with_created_at: true,
};

/// A server holding `count` orders created one second apart (`o0` oldest) that answers
/// `GET /orders` with a bare JSON array, no cursors: filtered by `start_time` (inclusive) and
/// `end_time`, sorted by `sort` (default newest first), cut at `limit` (default 50).
async fn history_server(
    count: usize,
    shape: HistoryShape,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let orders: Vec<(chrono::DateTime<chrono::Utc>, serde_json::Value)> = (0..count)
        .map(|i| {
            let at = base + chrono::Duration::seconds(i as i64);
            let mut o = json!({"order_id": format!("o{i}"), "account_id": "acc-1",
                "status": "filled", "symbol": "AAPL"});
            if shape.with_created_at {
                o["created_at"] = json!(at.to_rfc3339());
            }
            (at, o)
        })
        .collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let orders = orders.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let url = url::Url::parse(&format!("http://x{target}")).unwrap();
                let param = |name: &str| {
                    url.query_pairs()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.to_string())
                };
                let time = |name: &str| {
                    param(name).map(|t| {
                        chrono::DateTime::parse_from_rfc3339(&t)
                            .unwrap()
                            .with_timezone(&chrono::Utc)
                    })
                };
                let (start, end) = if shape.ignore_window {
                    (None, None)
                } else {
                    (time("start_time"), time("end_time"))
                };
                let limit: usize = param("limit").map_or(50, |l| l.parse().unwrap());
                let mut matching: Vec<&serde_json::Value> = orders
                    .iter()
                    .filter(|(at, _)| start.is_none_or(|s| *at >= s))
                    .filter(|(at, _)| {
                        end.is_none_or(|e| {
                            if shape.end_inclusive {
                                *at <= e
                            } else {
                                *at < e
                            }
                        })
                    })
                    .map(|(_, o)| o)
                    .collect();
                if param("sort").as_deref() != Some("asc") {
                    matching.reverse();
                }
                matching.truncate(limit);
                let body = serde_json::to_string(&matching).unwrap();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, requests)
}

#[tokio::test]
async fn a_bare_array_and_the_envelope_decode_into_the_same_page() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/orders")
                .query_param("status", "open");
            then.status(200)
                .json_body(json!([order_json(), order_json()]));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/orders")
                .query_param("status", "all");
            then.status(200).json_body(
                json!({"orders": [order_json()], "next_cursor": null, "prev_cursor": "p", "x": 1}),
            );
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let bare = user
        .list_orders()
        .status(OrderStatusFilter::Open)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bare.orders.len(), 2);
    assert_eq!(bare.next_cursor, None);
    let envelope = user
        .list_orders()
        .status(OrderStatusFilter::All)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(envelope.orders, bare.orders[..1]);
    assert_eq!(envelope.prev_cursor.as_deref(), Some("p"));
}

#[tokio::test]
async fn full_pages_without_cursors_continue_by_time_window_to_the_whole_history() {
    for end_inclusive in [false, true] {
        let shape = HistoryShape {
            end_inclusive,
            ..WINDOWED
        };
        let (url, requests) = history_server(1_234, shape).await;
        let (_, user) = clients(&url);
        let orders: Vec<_> = user
            .order_history(|q| q.status(OrderStatusFilter::All))
            .page_size(100)
            .orders()
            .try_collect()
            .await
            .unwrap();
        let ids: Vec<String> = orders.iter().map(|o| o.order_id.clone()).collect();
        let expected: Vec<String> = (0..1_234).rev().map(|i| format!("o{i}")).collect();
        assert_eq!(ids, expected, "end_time inclusive: {end_inclusive}");
        // 13 windows of 100 new orders (the last one short), plus at most one empty.
        let sent = requests.load(std::sync::atomic::Ordering::SeqCst);
        assert!((13..=14).contains(&sent), "{sent} requests");
    }
}

#[tokio::test]
async fn an_oldest_first_history_continues_forward() {
    let (url, _) = history_server(250, WINDOWED).await;
    let (_, user) = clients(&url);
    let orders: Vec<_> = user
        .order_history(|q| q.sort(SortOrder::Asc))
        .page_size(100)
        .orders()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<String> = orders.iter().map(|o| o.order_id.clone()).collect();
    let expected: Vec<String> = (0..250).map(|i| format!("o{i}")).collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn a_server_ignoring_the_window_ends_the_history_with_an_error_not_a_loop() {
    let shape = HistoryShape {
        ignore_window: true,
        ..WINDOWED
    };
    let (url, requests) = history_server(300, shape).await;
    let (_, user) = clients(&url);
    let result: Result<Vec<_>, _> = user
        .order_history(|q| q)
        .page_size(100)
        .orders()
        .try_collect()
        .await;
    assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_full_page_without_cursor_or_times_is_an_error_not_a_silent_cut() {
    let shape = HistoryShape {
        with_created_at: false,
        ..WINDOWED
    };
    let (url, _) = history_server(300, shape).await;
    let (_, user) = clients(&url);
    let result: Result<Vec<_>, _> = user
        .order_history(|q| q)
        .page_size(100)
        .orders()
        .try_collect()
        .await;
    let error = result.unwrap_err();
    assert!(error.to_string().contains("cannot be read"), "{error}");
}

/// Records the messages of the tracing events emitted while it is the default subscriber.
struct EventLog(std::sync::Mutex<Vec<String>>);

impl tracing::Subscriber for EventLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    *self.0 = format!("{value:?}");
                }
            }
        }
        let mut text = format!("{}: ", event.metadata().target());
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        text.push_str(&message);
        self.0.lock().unwrap().push(text);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn continuing_by_time_window_is_said_in_a_tracing_event() {
    let log = std::sync::Arc::new(EventLog(std::sync::Mutex::new(Vec::new())));
    let _guard = tracing::subscriber::set_default(log.clone());
    let (url, _) = history_server(150, WINDOWED).await;
    let (_, user) = clients(&url);
    let orders: Vec<_> = user
        .order_history(|q| q)
        .page_size(100)
        .orders()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(orders.len(), 150);
    let events = log.0.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("connect_trade::paging") && e.contains("time window")),
        "{events:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Success is any 2XX; nothing done is lost
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn any_2xx_is_success_with_or_without_a_body_where_none_is_expected() {
    for (status, body) in [
        (200, ""),
        (202, "{}"),
        (204, ""),
        (200, r#"{"status":"ok"}"#),
        (200, "null"),
    ] {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.method(DELETE);
                then.status(status).body(body);
            })
            .await;
        let (platform, user) = clients(&server.base_url());
        user.cancel_order()
            .account_id("acc-1")
            .order_id("ord-1")
            .send()
            .await
            .unwrap_or_else(|e| panic!("cancel, {status} {body:?}: {e}"));
        user.delete_connection()
            .connection_id("conn-1")
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete connection, {status} {body:?}: {e}"));
        platform
            .delete_user()
            .user_id("alice")
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete user, {status} {body:?}: {e}"));
    }
}

#[tokio::test]
async fn created_and_accepted_bodies_decode() {
    for status in [201, 202] {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.method(POST).path("/orders");
                then.status(status).json_body(order_json());
            })
            .await;
        server
            .mock_async(|when, then| {
                when.method(POST).path("/users");
                then.status(status)
                    .json_body(json!({"user_id": "bob", "user_secret": "s3cr3t"}));
            })
            .await;
        let (platform, user) = clients(&server.base_url());
        let order = user
            .place_order()
            .body(minimal_order())
            .send()
            .await
            .unwrap();
        assert_eq!(order.status().as_u16(), status);
        assert_eq!(order.into_inner().order_id, "ord-1");
        let created = platform
            .create_user()
            .body_map(|b| b.user_id("bob"))
            .send()
            .await
            .unwrap()
            .into_inner();
        assert_eq!(created.user_secret.expose(), "s3cr3t");
    }
}

#[tokio::test]
async fn a_placed_order_whose_body_does_not_decode_keeps_status_body_and_says_it_took_effect() {
    for (status, body) in [(201, r#"{"order": "ord-9""#), (204, "")] {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.method(POST).path("/orders");
                then.status(status).body(body);
            })
            .await;
        let (_, user) = clients(&server.base_url());
        let error: Error = user
            .place_order()
            .body(minimal_order())
            .send()
            .await
            .unwrap_err()
            .into();
        assert!(error.may_have_reached_server(), "{error}");
        assert!(!error.is_retryable());
        assert_eq!(error.status(), Some(status));
        assert_eq!(error.raw_body().map(|b| b.expose()), Some(body));
        let text = error.to_string();
        assert!(
            text.contains("place_order") && text.contains("took effect"),
            "{text}"
        );
        match &error {
            Error::Decode { operation, .. } => {
                assert_eq!(operation.as_deref(), Some("place_order"))
            }
            other => panic!("expected Decode, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn modify_cancel_and_create_connection_keep_an_undecodable_success_too() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(PATCH);
            then.status(200).body("<html>ok</html>");
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/connections");
            then.status(201).json_body(json!({"url": "https://x"}));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let modify: Error = user
        .modify_order()
        .account_id("acc-1")
        .order_id("ord-1")
        .body(
            ModifyOrderRequest::try_from(
                ModifyOrderRequest::builder()
                    .broker(BrokerCode::Webull)
                    .new_cl_order_id("cl-2")
                    .order_limit_price(Some(dec("1"))),
            )
            .expect("every required field is given"),
        )
        .send()
        .await
        .unwrap_err()
        .into();
    assert!(modify.may_have_reached_server());
    assert_eq!(modify.status(), Some(200));
    assert_eq!(modify.raw_body().unwrap().expose(), "<html>ok</html>");
    let connection: Error = user
        .create_connection()
        .body_map(|b| {
            b.connection_type(ConnectionType::Trade)
                .redirect_url("https://example.com/cb")
        })
        .send()
        .await
        .unwrap_err()
        .into();
    assert!(connection.may_have_reached_server());
    assert_eq!(connection.status(), Some(201));
    assert!(
        connection.to_string().contains("connection_request_url"),
        "{connection}"
    );
}

#[tokio::test]
async fn the_user_secret_of_an_undecodable_create_user_answer_is_recoverable_and_never_shown() {
    // The secret arrives, but the answer has a shape we did not expect (`user_id` a number).
    let body = r#"{"user_id": 42, "user_secret": "only-shown-once-7f3a"}"#;
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/users");
            then.status(201).body(body);
        })
        .await;
    let (platform, _) = clients(&server.base_url());
    let error: Error = platform
        .create_user()
        .body_map(|b| b.user_id("bob"))
        .send()
        .await
        .unwrap_err()
        .into();
    assert!(error.may_have_reached_server());
    assert_eq!(
        error
            .recovered_user_secret()
            .map(|s| s.expose().to_string()),
        Some("only-shown-once-7f3a".to_string())
    );
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains("only-shown-once"), "{text}");
        assert!(
            !text.contains("42"),
            "a value of a secret-bearing answer is quoted: {text}"
        );
    }
    assert!(error.to_string().contains("user_id"), "{error}");
}

#[tokio::test]
async fn no_body_of_a_secret_bearing_operation_is_quoted_in_an_error() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/connections/conn-1/token");
            then.status(200)
                .body(r#"{"access_token": ["tok-SECRET-1"]}"#);
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/auth/tokens/user");
            then.status(502).body("upstream said tok-SECRET-2");
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let token: Error = user
        .get_market_data_token()
        .connection_id("conn-1")
        .send()
        .await
        .unwrap_err()
        .into();
    let jwt: Error = user
        .create_user_token()
        .body_map(|b| b.scopes(vec![TokenScope::Read]))
        .send()
        .await
        .unwrap_err()
        .into();
    for error in [&token, &jwt] {
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!text.contains("SECRET"), "{text}");
        }
    }
    assert_eq!(jwt.status(), Some(502));
    assert!(token.raw_body().unwrap().expose().contains("tok-SECRET-1"));
}

#[tokio::test]
async fn a_decode_error_names_the_json_path_and_a_wrong_value_is_still_an_error() {
    let mut bad = order_json();
    bad["fills"] = json!([{"fill_id": "f1", "quantity": "1", "price": "13.5O"}]);
    let orders = json!([order_json(), order_json(), order_json(), bad]);
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/orders");
            then.status(200)
                .json_body(json!({"orders": orders, "next_cursor": null}));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let error: Error = user.list_orders().send().await.unwrap_err().into();
    match &error {
        Error::Decode { path, status, .. } => {
            assert_eq!(path, "orders[3].fills[0].price");
            assert_eq!(*status, Some(200));
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    assert!(
        error.to_string().contains("orders[3].fills[0].price"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// Required only where a source says so; the market data token under either name
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_order_without_a_status_decodes_as_unknown_instead_of_failing_its_page() {
    let mut bare = json!({"order_id": "ord-2", "account_id": "acc-1", "symbol": "MSFT",
        "side": "BUY", "order_qty": "1", "order_type": "MKT"});
    bare["extra"] = json!({"nested": true});
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/orders");
            then.status(200).json_body(json!([order_json(), bare]));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let page = user.list_orders().send().await.unwrap().into_inner();
    assert_eq!(page.orders.len(), 2);
    let status = &page.orders[1].status;
    assert!(status.is_unknown(), "{status:?}");
    assert_eq!(status.to_string(), "unknown");
    assert_eq!(page.orders[1].cl_order_id, None);
}

#[tokio::test]
async fn fields_without_a_source_may_be_absent() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/transactions");
            then.status(200)
                .json_body(json!([{"type": "DIVIDEND", "amount": "1.25"}]));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/users");
            then.status(201).json_body(json!({"user_secret": "s-1"}));
        })
        .await;
    let (platform, user) = clients(&server.base_url());
    let transactions = user.list_transactions().send().await.unwrap().into_inner();
    assert_eq!(transactions[0].transaction_id, None);
    assert_eq!(transactions[0].amount, Some(dec("1.25")));
    // The answer to POST /users leaves out `user_id`: the id asked for is the user's id.
    let created = platform
        .create_user()
        .body_map(|b| b.user_id("bob"))
        .send()
        .await
        .unwrap()
        .into_inner();
    let credentials = created.into_credentials("bob");
    assert_eq!(credentials.user_id, "bob");
    assert_eq!(credentials.user_secret.expose(), "s-1");
}

#[tokio::test]
async fn the_market_data_token_decodes_under_either_name_and_assumes_24_hours() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/connections/plain/token");
            then.status(200).json_body(json!({"token": "mdt-plain"}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/connections/full/token");
            then.status(200).json_body(
                json!({"access_token": "mdt-full", "expires_at": "2026-12-01T10:00:00Z"}),
            );
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/connections/none/token");
            then.status(200)
                .json_body(json!({"expires_at": "2026-12-01T10:00:00Z"}));
        })
        .await;
    let (_, user) = clients(&server.base_url());
    let issued = chrono::DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let plain = user
        .get_market_data_token()
        .connection_id("plain")
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plain.access_token.expose(), "mdt-plain");
    assert_eq!(plain.expires_at, None);
    assert_eq!(
        plain.expires_at_or_assumed(issued),
        issued + chrono::Duration::hours(24)
    );
    let full = user
        .get_market_data_token()
        .connection_id("full")
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.access_token.expose(), "mdt-full");
    assert_eq!(
        full.expires_at_or_assumed(issued),
        issued + chrono::Duration::hours(24)
    );
    // No token under any name is an error: lenient about names, not about the token.
    let error: Error = user
        .get_market_data_token()
        .connection_id("none")
        .send()
        .await
        .unwrap_err()
        .into();
    assert!(error.to_string().contains("token"), "{error}");
}
