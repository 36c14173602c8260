//! What the client refuses to put on the wire: no redirect is followed (the credentials would
//! go along), no id that would address another resource goes into a path, no password rides
//! in the base URL; and the `connection_id` read from an OAuth redirect is checked the same way.

use connect_trade::{
    ConnectTrade, Error, UserClient, UserCredentials,
    client::RetryPolicy,
    codes::BrokerCode,
    oauth::{RedirectError, connection_id_from_redirect},
    rest::types::ModifyOrderRequest,
};
use httpmock::prelude::*;

const CLIENT_SECRET: &str = "platform-secret-XYZ";
const USER_SECRET: &str = "alice-secret-123";

fn clients(base_url: &str) -> (ConnectTrade, UserClient) {
    let platform = ConnectTrade::builder()
        .client_id("platform-1")
        .client_secret(CLIENT_SECRET)
        .base_url(base_url)
        .retry_policy(RetryPolicy::none())
        .build()
        .expect("client builds");
    let user = platform
        .for_user(UserCredentials::new("alice", USER_SECRET))
        .expect("user client");
    (platform, user)
}

/// A mock answering every request, to count what reached the server.
async fn catch_all(server: &MockServer) -> httpmock::Mock<'_> {
    server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).body("{}");
        })
        .await
}

#[tokio::test]
async fn a_redirect_is_an_error_naming_the_location_and_is_not_followed() {
    let elsewhere = MockServer::start_async().await;
    let landed = catch_all(&elsewhere).await;
    let server = MockServer::start_async().await;
    let target = format!("{}/stolen", elsewhere.base_url());
    for status in [301, 302, 303, 307, 308] {
        let redirect = server
            .mock_async(|when, then| {
                when.method(GET).path("/accounts");
                then.status(status).header("location", &target);
            })
            .await;
        let (_, user) = clients(&server.base_url());
        let error = user.list_accounts().send().await.map_err(Error::from);
        match &error {
            Err(Error::Redirect {
                status: got,
                location,
            }) => {
                assert_eq!(*got, status);
                assert_eq!(location.as_deref(), Some(target.as_str()));
            }
            other => panic!("{status}: expected Error::Redirect, got {other:?}"),
        }
        let text = error.unwrap_err().to_string();
        assert!(text.contains(&target), "{text}");
        assert!(text.contains("not followed"), "{text}");
        redirect.delete_async().await;
    }
    // Neither secret went anywhere else.
    assert_eq!(landed.calls_async().await, 0);
}

#[tokio::test]
async fn a_redirect_on_a_platform_call_is_not_followed_either() {
    let elsewhere = MockServer::start_async().await;
    let landed = catch_all(&elsewhere).await;
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(DELETE).path("/users/alice");
            then.status(307)
                .header("location", format!("{}/users/alice", elsewhere.base_url()));
        })
        .await;
    let (platform, _) = clients(&server.base_url());
    let error = Error::from(
        platform
            .delete_user()
            .user_id("alice")
            .send()
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(error, Error::Redirect { status: 307, .. }),
        "{error:?}"
    );
    assert_eq!(error.status(), Some(307));
    assert_eq!(landed.calls_async().await, 0);
}

const BAD_IDS: &[(&str, &str)] = &[
    ("", "is empty"),
    (".", "dot segment"),
    ("..", "dot segment"),
    ("a/b", "`/`"),
    ("../users", "`/`"),
    ("a\\b", "`/`"),
    ("a\nb", "control character"),
    ("a\u{0}b", "control character"),
    ("a\u{7f}", "control character"),
];

/// The error a refused id gives: an invalid request naming the parameter and the problem.
fn assert_refused(result: Result<(), Error>, parameter: &str, problem: &str, what: &str) {
    match result {
        Err(Error::InvalidRequest(message)) => {
            assert!(message.contains(parameter), "{what}: {message}");
            // A dot segment is resolved by the URL parser before the check sees it: the
            // message then says the path changed shape instead of naming the problem.
            assert!(
                message.contains(problem) || message.contains("`.` or `..`"),
                "{what}: {message}"
            );
        }
        other => panic!("{what}: expected InvalidRequest, got {other:?}"),
    }
}

#[tokio::test]
async fn every_path_parameter_of_every_operation_refuses_ids_that_would_address_another_resource() {
    let server = MockServer::start_async().await;
    let reached = catch_all(&server).await;
    let (platform, user) = clients(&server.base_url());
    let change = || {
        ModifyOrderRequest::try_from(
            ModifyOrderRequest::builder()
                .broker(BrokerCode::Webull)
                .new_cl_order_id("cl-2"),
        )
        .expect("every required field is given")
    };
    for (bad, problem) in BAD_IDS {
        let what = format!("{bad:?}");
        assert_refused(
            unit(platform.delete_user().user_id(*bad).send().await),
            "user_id",
            problem,
            &what,
        );
        assert_refused(
            unit(user.delete_connection().connection_id(*bad).send().await),
            "connection_id",
            problem,
            &what,
        );
        assert_refused(
            unit(
                user.get_market_data_token()
                    .connection_id(*bad)
                    .send()
                    .await,
            ),
            "connection_id",
            problem,
            &what,
        );
        for (account, order, parameter) in
            [(*bad, "ord-1", "account_id"), ("acc-1", *bad, "order_id")]
        {
            assert_refused(
                unit(
                    user.get_order()
                        .account_id(account)
                        .order_id(order)
                        .send()
                        .await,
                ),
                parameter,
                problem,
                &what,
            );
            assert_refused(
                unit(
                    user.cancel_order()
                        .account_id(account)
                        .order_id(order)
                        .send()
                        .await,
                ),
                parameter,
                problem,
                &what,
            );
            assert_refused(
                unit(
                    user.modify_order()
                        .account_id(account)
                        .order_id(order)
                        .body(change())
                        .send()
                        .await,
                ),
                parameter,
                problem,
                &what,
            );
        }
    }
    assert_eq!(reached.calls_async().await, 0, "a refused request was sent");
}

/// The operations the test above covers are all the operations with path parameters.
#[test]
fn the_path_id_test_covers_every_operation_with_a_path_parameter() {
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/spec/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    let mut with_ids: Vec<String> = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for op in item.as_object().unwrap().values() {
            if path.contains('{') {
                with_ids.push(op["operationId"].as_str().unwrap().to_string());
            }
        }
    }
    with_ids.sort();
    assert_eq!(
        with_ids,
        [
            "cancel_order",
            "delete_connection",
            "delete_user",
            "get_market_data_token",
            "get_order",
            "modify_order"
        ]
    );
}

#[tokio::test]
async fn ordinary_ids_still_go_through_percent_encoded() {
    let server = MockServer::start_async().await;
    let deleted = server
        .mock_async(|when, then| {
            when.method(DELETE)
                .path("/users/alice@example.com%20%C3%BC.x");
            then.status(200).body("{}");
        })
        .await;
    let (platform, _) = clients(&server.base_url());
    platform
        .delete_user()
        .user_id("alice@example.com ü.x")
        .send()
        .await
        .unwrap();
    deleted.assert_async().await;
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_is_checked_after_the_prefix() {
    let server = MockServer::start_async().await;
    let deleted = server
        .mock_async(|when, then| {
            when.method(DELETE).path("/v1/users/alice");
            then.status(200).body("{}");
        })
        .await;
    let (platform, _) = clients(&format!("{}/v1", server.base_url()));
    platform
        .delete_user()
        .user_id("alice")
        .send()
        .await
        .unwrap();
    deleted.assert_async().await;
    let refused = platform.delete_user().user_id("..").send().await;
    assert!(matches!(
        refused.map_err(Error::from),
        Err(Error::InvalidRequest(_))
    ));
}

#[test]
fn a_base_url_with_a_password_is_refused_without_echoing_it() {
    let error = ConnectTrade::builder()
        .client_id("platform-1")
        .client_secret(CLIENT_SECRET)
        .base_url("https://me:hunter2@api.connecttrade.com")
        .build()
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(text.contains("password"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    // A user name alone is no secret, and nothing else changes.
    assert!(
        ConnectTrade::builder()
            .client_id("platform-1")
            .client_secret(CLIENT_SECRET)
            .base_url("https://api.connecttrade.com/v1")
            .build()
            .is_ok()
    );
}

#[test]
fn the_connection_id_of_an_oauth_redirect_is_checked_like_a_path_id() {
    for (url, problem) in [
        ("https://app.example.com/cb?connection_id=..", "dot segment"),
        ("https://app.example.com/cb?connection_id=.", "dot segment"),
        ("https://app.example.com/cb?connection_id=..%2Fusers", "`/`"),
        ("https://app.example.com/cb?connection_id=a%5Cb", "`/`"),
        ("https://app.example.com/cb?connection_id=a%0Ab", "control"),
    ] {
        match connection_id_from_redirect(url) {
            Err(RedirectError::InvalidConnectionId(found)) => {
                assert!(found.contains(problem), "{url}: {found}");
                let text = connection_id_from_redirect(url).unwrap_err().to_string();
                assert!(text.contains("connection_id"), "{text}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    assert_eq!(
        connection_id_from_redirect("https://app.example.com/cb?connection_id=conn_1.2-3").unwrap(),
        "conn_1.2-3"
    );
}

/// A generated method's result, reduced to what the checks look at.
fn unit<T>(
    result: Result<T, progenitor_client::Error<connect_trade::rest::types::Error>>,
) -> Result<(), Error> {
    result.map(|_| ()).map_err(Error::from)
}
