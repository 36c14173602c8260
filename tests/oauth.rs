//! Reading the URL the browser landed on after the OAuth flow.

use connect_trade::oauth::{RedirectError, connection_id_from_redirect};

#[test]
fn success_gives_the_connection_id() {
    let id = connection_id_from_redirect(
        "https://app.example.com/callback?state=xyz&connection_id=conn_8f3a%2D1",
    )
    .unwrap();
    assert_eq!(id, "conn_8f3a-1");
}

#[test]
fn the_documentations_google_trick_url_works() {
    let id = connection_id_from_redirect("https://www.google.com/?connection_id=abc123").unwrap();
    assert_eq!(id, "abc123");
}

#[test]
fn failure_gives_error_and_details() {
    let err = connection_id_from_redirect(
        "https://app.example.com/cb?error=access_denied&error_details=The+user+cancelled+login",
    )
    .unwrap_err();
    assert_eq!(
        err,
        RedirectError::Failed {
            error: "access_denied".into(),
            error_details: Some("The user cancelled login".into()),
        }
    );
    assert!(err.to_string().contains("access_denied"));
    assert!(err.to_string().contains("The user cancelled login"));
}

#[test]
fn error_without_details() {
    let err =
        connection_id_from_redirect("https://app.example.com/cb?error=server_error").unwrap_err();
    assert_eq!(
        err,
        RedirectError::Failed {
            error: "server_error".into(),
            error_details: None,
        }
    );
}

#[test]
fn an_error_wins_over_a_connection_id() {
    let err = connection_id_from_redirect(
        "https://app.example.com/cb?connection_id=c1&error=broker_down",
    )
    .unwrap_err();
    assert!(matches!(err, RedirectError::Failed { error, .. } if error == "broker_down"));
}

#[test]
fn a_url_with_neither_says_what_was_expected() {
    let err = connection_id_from_redirect("https://app.example.com/cb?state=1").unwrap_err();
    assert_eq!(err, RedirectError::NoResult);
    assert!(err.to_string().contains("connection_id"));
}

#[test]
fn empty_connection_id_is_refused() {
    assert_eq!(
        connection_id_from_redirect("https://app.example.com/cb?connection_id=").unwrap_err(),
        RedirectError::EmptyConnectionId
    );
}

#[test]
fn a_bare_query_and_a_fragment_are_read() {
    assert_eq!(
        connection_id_from_redirect("?connection_id=q1").unwrap(),
        "q1"
    );
    assert_eq!(
        connection_id_from_redirect("https://spa.example.com/#/done?connection_id=f1").unwrap(),
        "f1",
        "a hash route's parameters"
    );
    assert_eq!(
        connection_id_from_redirect("https://spa.example.com/done#connection_id=f2").unwrap(),
        "f2"
    );
}

#[test]
fn not_a_url() {
    assert!(matches!(
        connection_id_from_redirect("http://[::1"),
        Err(RedirectError::InvalidUrl(_))
    ));
}
