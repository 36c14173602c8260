//! The market data stream decodes data messages the direct way (their `type` first, then the
//! body straight into its own type) and everything else the general way (serde's derive of
//! the tagged enum, then `Unknown` for a body that does not match). Whatever the order of the
//! keys, the extra or missing fields and the form of the values, both ways must agree.

use connect_trade::stream::protocol::{MarketDataMessage, ServerMessage};
use serde_json::{Value, json};

/// An object written with its keys in the given order (`json!` would sort them).
fn object(fields: &[(&str, Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{}:{value}", Value::from(*key)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Every rotation of the keys, and each reversed: the `type` first, last and in between.
fn orders(fields: &[(&'static str, Value)]) -> Vec<String> {
    let mut texts = Vec::new();
    for turn in 0..fields.len() {
        let mut rotated = fields.to_vec();
        rotated.rotate_left(turn);
        texts.push(object(&rotated));
        rotated.reverse();
        texts.push(object(&rotated));
    }
    texts
}

/// Data messages of every type, in the shapes a server may plausibly send.
fn data_messages() -> Vec<Vec<(&'static str, Value)>> {
    vec![
        vec![
            ("type", json!("quote")),
            ("symbol", json!("AAPL")),
            ("bid", json!("187.01")),
            ("bid_size", json!("300")),
            ("ask", json!("187.02")),
            ("ask_size", json!(100)),
            ("timestamp", json!("2025-01-02T15:04:05.123456Z")),
        ],
        // Only what is required, a null, and a field we do not know.
        vec![
            ("type", json!("quote")),
            ("symbol", json!("BRK.B")),
            ("bid", Value::Null),
            ("venue", json!({"mic": "XNAS"})),
        ],
        vec![
            ("type", json!("trade")),
            ("symbol", json!("MSFT")),
            ("price", json!("410.5")),
            ("size", json!("12")),
            ("session", json!("pre_market")),
            ("timestamp", json!("2025-01-02T09:00:00Z")),
        ],
        // A session value this SDK does not know yet.
        vec![
            ("type", json!("trade")),
            ("symbol", json!("MSFT")),
            ("price", json!("410.5")),
            ("size", json!("12")),
            ("session", json!("overnight")),
        ],
        vec![
            ("type", json!("bar")),
            ("symbol", json!("SPY")),
            ("interval", json!("1m")),
            ("open", json!("590.1")),
            ("high", json!("590.9")),
            ("low", json!("589.7")),
            ("close", json!("590.2")),
            ("volume", json!("120000")),
            ("start", json!("2025-01-02T14:30:00Z")),
            ("backfill", json!(true)),
        ],
        vec![
            ("type", json!("depth")),
            ("symbol", json!("AAPL")),
            ("bids", json!([{"price": "187.01", "size": "300"}])),
            ("asks", json!([{"price": "187.02", "size": "100"}])),
            ("timestamp", json!("2025-01-02T15:04:05Z")),
        ],
        vec![
            ("type", json!("option_quote")),
            ("underlying", json!("AAPL")),
            ("symbol", json!("AAPL  250117C00190000")),
            ("bid", json!("4.10")),
            ("ask", json!("4.25")),
            (
                "greeks",
                json!({"delta": "0.51", "gamma": "0.02", "theta": "-0.05", "vega": "0.11"}),
            ),
        ],
    ]
}

#[test]
fn data_messages_decode_the_same_directly_as_through_the_tagged_enum() {
    for fields in data_messages() {
        for text in orders(&fields) {
            let general: MarketDataMessage = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("our types should read {text}: {error}"));
            assert!(
                !matches!(general, MarketDataMessage::Unknown(_)),
                "{text}: {general:?}"
            );
            let decoded = MarketDataMessage::decode(&text).unwrap();
            assert_eq!(decoded, general, "{text}");
        }
    }
}

#[test]
fn a_data_message_that_does_not_have_our_shape_is_still_delivered_whole() {
    // A quote without its symbol, a trade whose price is not a number: the direct way gives
    // up, and the general way keeps the whole message.
    for fields in [
        vec![("type", json!("quote")), ("ticker", json!("AAPL"))],
        vec![
            ("type", json!("trade")),
            ("symbol", json!("AAPL")),
            ("price", json!("n/a")),
            ("size", json!("1")),
        ],
    ] {
        for text in orders(&fields) {
            match MarketDataMessage::decode(&text) {
                Ok(MarketDataMessage::Unknown(value)) => {
                    assert_eq!(value, serde_json::from_str::<Value>(&text).unwrap())
                }
                other => panic!("{text}: expected Unknown, got {other:?}"),
            }
        }
    }
}

#[test]
fn an_escaped_type_is_read_and_a_repeated_one_is_not_guessed() {
    let escaped = r#"{"symbol":"AAPL","type":"qu\u006fte","bid":"1.5"}"#;
    assert!(matches!(
        MarketDataMessage::decode(escaped),
        Ok(MarketDataMessage::Quote(quote)) if quote.symbol == "AAPL"
    ));
    // Two `type`s: neither way picks one.
    let twice = r#"{"type":"quote","symbol":"AAPL","type":"trade"}"#;
    assert!(serde_json::from_str::<MarketDataMessage>(twice).is_err());
    assert!(matches!(
        MarketDataMessage::decode(twice),
        Ok(MarketDataMessage::Unknown(_))
    ));
    // Not an object, or no `type`: an error, as before.
    for text in ["[1]", r#"{"symbol":"AAPL"}"#, r#"{"type":7}"#, "quote"] {
        assert!(MarketDataMessage::decode(text).is_err(), "{text}");
    }
}
