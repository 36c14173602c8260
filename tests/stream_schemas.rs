//! The stream protocol is API surface: the JSON Schemas of what we send and accept on both
//! WebSockets are snapshotted, so any change to them is reviewed like a change to the REST
//! spec.

use connect_trade::stream::protocol::{
    BrokerageMessage, BrokerageRequest, MarketDataMessage, MarketDataRequest,
};

#[test]
fn brokerage_request_schema() {
    insta::assert_json_snapshot!(schemars::schema_for!(BrokerageRequest));
}

#[test]
fn brokerage_message_schema() {
    insta::assert_json_snapshot!(schemars::schema_for!(BrokerageMessage));
}

#[test]
fn market_data_request_schema() {
    insta::assert_json_snapshot!(schemars::schema_for!(MarketDataRequest));
}

#[test]
fn market_data_message_schema() {
    insta::assert_json_snapshot!(schemars::schema_for!(MarketDataMessage));
}
