//! Order construction: the documentation's orders byte for byte, one test per rule (a
//! rejected order names the rule it broke), strategies, client order ids, and the modify and
//! cancel helpers against a loopback mock server.

use std::{collections::HashSet, str::FromStr};

use connect_trade::{
    ConnectTrade, Error, UserClient, UserCredentials,
    codes::{BrokerCode, Instrument, OrderSide, OrderStatus, OrderType, TimeInForce},
    orders::{
        self, ClOrderId, ClOrderIdGenerator, Leg, LegAction, OrderBuilder, OrderError, OrderRule,
        Strategy, StrategyKind,
    },
    rest::types::{Account, Order, OrderLeg, PlaceOrderRequest},
    symbology::OptionSymbol,
};
use httpmock::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn opt(text: &str) -> OptionSymbol {
    text.parse().unwrap()
}

/// The rule a rejected order broke.
fn rule_of(result: Result<PlaceOrderRequest, OrderError>) -> OrderRule {
    match result {
        Ok(request) => panic!("accepted: {}", serde_json::to_string(&request).unwrap()),
        Err(e) => {
            assert!(e.to_string().contains(e.rule().name()), "{e}");
            e.rule()
        }
    }
}

fn strategy_rule(result: Result<Strategy, OrderError>) -> OrderRule {
    match result {
        Ok(s) => panic!("accepted: {s:?}"),
        Err(e) => e.rule(),
    }
}

fn msft() -> OrderBuilder {
    OrderBuilder::equity("MSFT", OrderSide::Buy)
        .account("acc-1", BrokerCode::Alpaca)
        .cl_order_id("cl-1")
        .quantity(1)
        .market()
}

fn tsla() -> OrderBuilder {
    OrderBuilder::option("TSLA251031C00437500", OrderSide::BuyToOpen)
        .account("acc-1", BrokerCode::Webull)
        .cl_order_id("cl-1")
        .quantity(1)
        .limit("13.50")
        .time_in_force(TimeInForce::Gtc)
}

fn condor() -> Strategy {
    Strategy::iron_condor(
        opt("SPY241018P00410000"),
        opt("SPY241018P00420000"),
        opt("SPY241018C00440000"),
        opt("SPY241018C00450000"),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The documentation's orders
// ---------------------------------------------------------------------------------------------

#[test]
fn one_share_of_msft_at_market_on_alpaca_is_the_documented_body() {
    let request = msft().time_in_force(TimeInForce::Day).build().unwrap();
    assert_eq!(
        serde_json::to_string(&request).unwrap(),
        concat!(
            r#"{"account_id":"acc-1","broker":"ALPACA","cl_order_id":"cl-1","instrument":"STK","#,
            r#""order_qty":"1","order_tif":"DAY","order_type":"MKT","side":"BUY","symbol":"MSFT"}"#
        )
    );
}

#[test]
fn the_tsla_call_at_13_50_gtc_on_webull_is_the_documented_body_byte_for_byte() {
    let request = tsla().build().unwrap();
    let json = serde_json::to_string(&request).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"account_id":"acc-1","broker":"WEBULL","cl_order_id":"cl-1","instrument":"OPT","#,
            r#""order_limit_price":"13.50","order_qty":"1","order_tif":"GTC","order_type":"LMT","#,
            r#""side":"BUY_TO_OPEN","symbol":"TSLA251031C00437500"}"#
        )
    );
    // The same order from a parsed symbol and a Decimal keeps the same digits.
    let again = OrderBuilder::option(opt("TSLA251031C00437500"), OrderSide::BuyToOpen)
        .account("acc-1", BrokerCode::Webull)
        .cl_order_id("cl-1")
        .quantity(Decimal::ONE)
        .limit(Decimal::new(1350, 2))
        .time_in_force(TimeInForce::Gtc)
        .build()
        .unwrap();
    assert_eq!(serde_json::to_string(&again).unwrap(), json);
}

#[test]
fn an_iron_condor_is_mleg_opt_with_symbol_null_and_four_legs() {
    let request = condor()
        .order()
        .account("acc-1", BrokerCode::Alpaca)
        .cl_order_id("cl-1")
        .quantity(2)
        .limit("1.10")
        .build()
        .unwrap();
    assert_eq!(
        serde_json::to_string(&request).unwrap(),
        concat!(
            r#"{"account_id":"acc-1","broker":"ALPACA","cl_order_id":"cl-1","instrument":"MLEG_OPT","legs":["#,
            r#"{"action":"BUY_TO_OPEN","ratio":"1","symbol":"SPY241018P00410000"},"#,
            r#"{"action":"SELL_TO_OPEN","ratio":"1","symbol":"SPY241018P00420000"},"#,
            r#"{"action":"SELL_TO_OPEN","ratio":"1","symbol":"SPY241018C00440000"},"#,
            r#"{"action":"BUY_TO_OPEN","ratio":"1","symbol":"SPY241018C00450000"}],"#,
            r#""order_limit_price":"1.10","order_qty":"2","order_tif":"DAY","order_type":"LMT","#,
            r#""symbol":null}"#
        )
    );
}

#[test]
fn a_generated_cl_order_id_is_used_when_none_is_given() {
    let a = OrderBuilder::equity("MSFT", OrderSide::Buy)
        .account("acc-1", BrokerCode::Alpaca)
        .quantity(1)
        .market()
        .build()
        .unwrap();
    let b = OrderBuilder::equity("MSFT", OrderSide::Buy)
        .account("acc-1", BrokerCode::Alpaca)
        .quantity(1)
        .market()
        .build()
        .unwrap();
    assert_eq!(a.cl_order_id.len(), ClOrderId::GENERATED_LEN);
    assert!(a.cl_order_id < b.cl_order_id);
}

#[test]
fn every_order_type_and_size_that_is_valid_builds() {
    let base = || {
        OrderBuilder::equity("BRK/B", OrderSide::Sell)
            .account("acc-1", BrokerCode::TradeStation)
            .quantity("0.5")
    };
    let stp = base().stop("400").build().unwrap();
    assert_eq!(
        (stp.order_type, stp.stop_price),
        (OrderType::Stop, Some(dec("400")))
    );
    assert_eq!(stp.symbol.as_deref(), Some("BRK/B"));
    let stplmt = base().stop_limit("400", "399.5").build().unwrap();
    assert_eq!(stplmt.order_type, OrderType::StopLimit);
    assert_eq!(stplmt.order_limit_price, Some(dec("399.5")));
    assert_eq!(stplmt.stop_price, Some(dec("400")));
    let notional = OrderBuilder::equity("AAPL", OrderSide::Buy)
        .account("acc-1", BrokerCode::Alpaca)
        .notional("100.25")
        .market()
        .time_in_force(TimeInForce::DayPlus)
        .build()
        .unwrap();
    assert_eq!(notional.order_notional, Some(dec("100.25")));
    assert_eq!(notional.order_qty, None);
    let cover = OrderBuilder::equity("TSLA", OrderSide::BuyToCover)
        .account("acc-1", BrokerCode::TradeStation)
        .quantity(10)
        .market()
        .build()
        .unwrap();
    assert_eq!(cover.side, Some(OrderSide::BuyToCover));
}

#[test]
fn for_account_takes_the_id_and_broker_of_a_listed_account() {
    let account: Account = serde_json::from_value(json!({
        "account_id": "acc-9", "broker": "PUBLIC"
    }))
    .unwrap();
    let request = OrderBuilder::equity("MSFT", OrderSide::Buy)
        .for_account(&account)
        .quantity(1)
        .market()
        .build()
        .unwrap();
    assert_eq!(
        (request.account_id.as_str(), request.broker),
        ("acc-9", BrokerCode::Public)
    );
    let no_broker: Account = serde_json::from_value(json!({"account_id": "acc-9"})).unwrap();
    let result = OrderBuilder::equity("MSFT", OrderSide::Buy)
        .for_account(&no_broker)
        .quantity(1)
        .market()
        .build();
    assert_eq!(rule_of(result), OrderRule::Account);
}

// ---------------------------------------------------------------------------------------------
// One test per rule
// ---------------------------------------------------------------------------------------------

#[test]
fn rule_account() {
    let no_account = OrderBuilder::equity("MSFT", OrderSide::Buy)
        .quantity(1)
        .market();
    assert_eq!(rule_of(no_account.build()), OrderRule::Account);
    let empty = msft().account("  ", BrokerCode::Alpaca);
    assert_eq!(rule_of(empty.build()), OrderRule::Account);
}

#[test]
fn rule_cl_order_id() {
    for bad in ["", "has space", "under_score", "é", &"x".repeat(37)] {
        assert_eq!(
            rule_of(msft().cl_order_id(bad).build()),
            OrderRule::ClOrderId,
            "{bad:?}"
        );
    }
    assert!(msft().cl_order_id("x".repeat(36)).build().is_ok());
    assert!(
        msft()
            .cl_order_id("0f8fad5b-d9cb-469f-a165-70867728950e")
            .build()
            .is_ok()
    );
}

#[test]
fn rule_symbol() {
    let lower = OrderBuilder::equity("msft", OrderSide::Buy)
        .account("acc-1", BrokerCode::Alpaca)
        .quantity(1)
        .market();
    let err = lower.build().unwrap_err();
    assert_eq!(err.rule(), OrderRule::Symbol);
    // The symbol's own error is the source, and its text is not repeated.
    let source = std::error::Error::source(&err).expect("the symbol error");
    assert!(source.to_string().contains("did you mean MSFT"), "{source}");
    assert!(!err.to_string().contains(&source.to_string()), "{err}");
    let sdk_error = connect_trade::Error::from(err);
    assert_eq!(sdk_error.order_rule(), Some(OrderRule::Symbol));
    assert!(std::error::Error::source(&sdk_error).is_some());

    let option_as_equity = OrderBuilder::equity("TSLA251031C00437500", OrderSide::Buy)
        .account("acc-1", BrokerCode::Alpaca)
        .quantity(1)
        .market();
    assert_eq!(rule_of(option_as_equity.build()), OrderRule::Symbol);

    let bad_option = OrderBuilder::option("TSLA251031C0043750", OrderSide::BuyToOpen)
        .account("acc-1", BrokerCode::Webull)
        .quantity(1)
        .market();
    let err = bad_option.build().unwrap_err();
    assert_eq!(err.rule(), OrderRule::Symbol);
    assert!(err.message().contains("strike"), "{err}");

    // A hand-written multi-leg body with a top-level symbol.
    let mut request = condor()
        .order()
        .account("a", BrokerCode::Alpaca)
        .quantity(1)
        .market()
        .build()
        .unwrap();
    request.symbol = Some("SPY".into());
    assert_eq!(
        orders::validate(&request).unwrap_err().rule(),
        OrderRule::Symbol
    );
}

#[test]
fn rule_side() {
    let equity_with_option_side = OrderBuilder::equity("MSFT", OrderSide::BuyToOpen)
        .account("acc-1", BrokerCode::Alpaca)
        .quantity(1)
        .market();
    assert_eq!(rule_of(equity_with_option_side.build()), OrderRule::Side);
    let option_with_equity_side = OrderBuilder::option("TSLA251031C00437500", OrderSide::Buy)
        .account("acc-1", BrokerCode::Webull)
        .quantity(1)
        .market();
    assert_eq!(rule_of(option_with_equity_side.build()), OrderRule::Side);
    let unknown = OrderBuilder::equity("MSFT", OrderSide::from("BUY_LATER"))
        .account("acc-1", BrokerCode::Alpaca)
        .quantity(1)
        .market();
    assert_eq!(rule_of(unknown.build()), OrderRule::Side);
}

#[test]
fn rule_order_type() {
    let none = OrderBuilder::equity("MSFT", OrderSide::Buy)
        .account("acc-1", BrokerCode::Alpaca)
        .quantity(1);
    assert_eq!(rule_of(none.build()), OrderRule::OrderType);
    let unknown = msft().order_type(OrderType::from("TRAIL"));
    assert_eq!(rule_of(unknown.build()), OrderRule::OrderType);
    let stop_condor = condor()
        .order()
        .account("a", BrokerCode::Alpaca)
        .quantity(1)
        .stop("1");
    assert_eq!(rule_of(stop_condor.build()), OrderRule::OrderType);
}

#[test]
fn rule_time_in_force() {
    let unknown = msft().time_in_force(TimeInForce::from("GTD"));
    assert_eq!(rule_of(unknown.build()), OrderRule::TimeInForce);
}

#[test]
fn rule_quantity_or_notional() {
    assert_eq!(
        rule_of(msft().notional("100").build()),
        OrderRule::QuantityOrNotional
    );
    let neither = OrderBuilder::equity("MSFT", OrderSide::Buy)
        .account("acc-1", BrokerCode::Alpaca)
        .market();
    assert_eq!(rule_of(neither.build()), OrderRule::QuantityOrNotional);
    let option_by_notional = OrderBuilder::option("TSLA251031C00437500", OrderSide::BuyToOpen)
        .account("acc-1", BrokerCode::Webull)
        .notional("1000")
        .market();
    assert_eq!(
        rule_of(option_by_notional.build()),
        OrderRule::QuantityOrNotional
    );
}

#[test]
fn rule_positive() {
    assert_eq!(rule_of(msft().quantity(0).build()), OrderRule::Positive);
    assert_eq!(rule_of(msft().quantity("-1").build()), OrderRule::Positive);
    let notional = OrderBuilder::equity("MSFT", OrderSide::Buy)
        .account("acc-1", BrokerCode::Alpaca)
        .notional("-5")
        .market();
    assert_eq!(rule_of(notional.build()), OrderRule::Positive);
    assert_eq!(rule_of(tsla().limit("0").build()), OrderRule::Positive);
    assert_eq!(rule_of(msft().stop("-0.01").build()), OrderRule::Positive);
}

#[test]
fn rule_whole_contracts() {
    assert_eq!(
        rule_of(tsla().quantity("1.5").build()),
        OrderRule::WholeContracts
    );
    let condor = condor()
        .order()
        .account("a", BrokerCode::Alpaca)
        .quantity("0.5")
        .market();
    assert_eq!(rule_of(condor.build()), OrderRule::WholeContracts);
}

#[test]
fn rule_precision_without_rounding() {
    let err = tsla().limit("13.5000000001").build().unwrap_err();
    assert_eq!(err.rule(), OrderRule::Precision);
    assert!(err.message().contains("13.5000000001"), "{err}");
    assert_eq!(
        rule_of(msft().quantity("0.0000000001").build()),
        OrderRule::Precision
    );
    // Nine decimals are the API's precision and go out as they are.
    let nine = tsla().limit("0.123456789").build().unwrap();
    assert_eq!(nine.order_limit_price.unwrap().to_string(), "0.123456789");
    // Trailing zeros past nine decimals change nothing and are dropped, not rounded.
    let zeros = tsla().limit("13.500000000000").build().unwrap();
    assert_eq!(zeros.order_limit_price.unwrap().to_string(), "13.5");
    // A hand-written body with ten decimals is refused.
    let mut request = tsla().build().unwrap();
    request.order_limit_price = Some(Decimal::new(135_000_000_000, 10));
    assert_eq!(
        orders::validate(&request).unwrap_err().rule(),
        OrderRule::Precision
    );
}

#[test]
fn rule_number() {
    let err = tsla().limit("13,50").build().unwrap_err();
    assert_eq!(err.rule(), OrderRule::Number);
    assert!(err.message().contains("order_limit_price"), "{err}");
    assert_eq!(rule_of(msft().quantity("one").build()), OrderRule::Number);
    // More digits than a Decimal holds is an error, not a rounding.
    assert_eq!(
        rule_of(msft().quantity("1.00000000000000000000000000001").build()),
        OrderRule::Number
    );
}

#[test]
fn rule_limit_price() {
    let lmt_without_price = msft().order_type(OrderType::Limit);
    assert_eq!(rule_of(lmt_without_price.build()), OrderRule::LimitPrice);
    let stplmt_without_limit = msft().order_type(OrderType::StopLimit).stop_price("10");
    assert_eq!(rule_of(stplmt_without_limit.build()), OrderRule::LimitPrice);
    let mkt_with_price = msft().limit_price("10");
    assert_eq!(rule_of(mkt_with_price.build()), OrderRule::LimitPrice);
    let stp_with_limit = msft().stop("10").limit_price("9");
    assert_eq!(rule_of(stp_with_limit.build()), OrderRule::LimitPrice);
}

#[test]
fn rule_stop_price() {
    let stp_without_price = msft().order_type(OrderType::Stop);
    assert_eq!(rule_of(stp_without_price.build()), OrderRule::StopPrice);
    let stplmt_without_stop = msft().order_type(OrderType::StopLimit).limit_price("10");
    assert_eq!(rule_of(stplmt_without_stop.build()), OrderRule::StopPrice);
    let lmt_with_stop = msft().limit("10").stop_price("9");
    assert_eq!(rule_of(lmt_with_stop.build()), OrderRule::StopPrice);
}

#[test]
fn rule_leg_count() {
    let one = Strategy::custom([Leg::buy(opt("SPY241018C00430000"))]);
    assert_eq!(strategy_rule(one), OrderRule::LegCount);
    let five = Strategy::custom(
        ["400", "410", "420", "430", "440"].map(|k| Leg::buy(opt(&format!("SPY241018C00{k}000")))),
    );
    assert_eq!(strategy_rule(five), OrderRule::LegCount);
    let mut request = condor()
        .order()
        .account("a", BrokerCode::Alpaca)
        .quantity(1)
        .market()
        .build()
        .unwrap();
    request.legs.truncate(1);
    assert_eq!(
        orders::validate(&request).unwrap_err().rule(),
        OrderRule::LegCount
    );
    let mut single = tsla().build().unwrap();
    single.legs = condor().order_legs();
    assert_eq!(
        orders::validate(&single).unwrap_err().rule(),
        OrderRule::LegCount
    );
}

#[test]
fn rule_leg_action_and_leg_ratio_in_hand_written_bodies() {
    let base = condor()
        .order()
        .account("a", BrokerCode::Alpaca)
        .quantity(1)
        .market()
        .build()
        .unwrap();
    let mut request = base.clone();
    request.legs[0].action = OrderSide::Buy;
    assert_eq!(
        orders::validate(&request).unwrap_err().rule(),
        OrderRule::LegAction
    );
    for ratio in ["0", "-1", "1.5"] {
        let mut request = base.clone();
        request.legs[1].ratio = dec(ratio);
        assert_eq!(
            orders::validate(&request).unwrap_err().rule(),
            OrderRule::LegRatio,
            "{ratio}"
        );
    }
    let zero = Strategy::custom([
        Leg::new(opt("SPY241018C00430000"), LegAction::BuyToOpen, 0),
        Leg::sell(opt("SPY241018C00440000")),
    ]);
    assert_eq!(strategy_rule(zero), OrderRule::LegRatio);
}

#[test]
fn rule_duplicate_leg() {
    let twice = Strategy::custom([
        Leg::buy(opt("SPY241018C00430000")),
        Leg::sell(opt("SPY241018C00430000")),
    ]);
    assert_eq!(strategy_rule(twice), OrderRule::DuplicateLeg);
    let mut request = condor()
        .order()
        .account("a", BrokerCode::Alpaca)
        .quantity(1)
        .market()
        .build()
        .unwrap();
    request.legs[1].symbol = request.legs[0].symbol.clone();
    assert_eq!(
        orders::validate(&request).unwrap_err().rule(),
        OrderRule::DuplicateLeg
    );
}

#[test]
fn rule_same_underlying() {
    let mixed = Strategy::custom([
        Leg::buy(opt("SPY241018C00430000")),
        Leg::sell(opt("QQQ241018C00430000")),
    ]);
    assert_eq!(strategy_rule(mixed), OrderRule::SameUnderlying);
    let spread = Strategy::bull_call_spread(opt("SPY241018C00430000"), opt("QQQ241018C00440000"));
    assert_eq!(strategy_rule(spread), OrderRule::SameUnderlying);
    // SPX and SPXW series share the SPX underlying.
    let spx = Strategy::custom([
        Leg::buy(opt("SPX241018C05000000")),
        Leg::sell(opt("SPXW241018C05100000")),
    ])
    .unwrap();
    assert_eq!(spx.underlying(), "SPX");
}

#[test]
fn rule_same_expiry() {
    let spread = Strategy::bull_call_spread(opt("SPY241018C00430000"), opt("SPY241115C00440000"));
    assert_eq!(strategy_rule(spread), OrderRule::SameExpiry);
    let condor = Strategy::iron_condor(
        opt("SPY241018P00410000"),
        opt("SPY241018P00420000"),
        opt("SPY241018C00440000"),
        opt("SPY241115C00450000"),
    );
    assert_eq!(strategy_rule(condor), OrderRule::SameExpiry);
}

#[test]
fn rule_leg_right() {
    let put_in_call_spread =
        Strategy::bull_call_spread(opt("SPY241018C00430000"), opt("SPY241018P00440000"));
    assert_eq!(strategy_rule(put_in_call_spread), OrderRule::LegRight);
    let call_in_put_spread =
        Strategy::bear_put_spread(opt("SPY241018C00440000"), opt("SPY241018P00430000"));
    assert_eq!(strategy_rule(call_in_put_spread), OrderRule::LegRight);
    let straddle = Strategy::long_straddle(opt("SPY241018P00430000"), opt("SPY241018P00430000"));
    assert_eq!(strategy_rule(straddle), OrderRule::LegRight);
    let ratio = Strategy::ratio_spread(opt("SPY241018C00430000"), 1, opt("SPY241018P00420000"), 2);
    assert_eq!(strategy_rule(ratio), OrderRule::LegRight);
}

#[test]
fn rule_strike_order() {
    let cases = [
        Strategy::bull_call_spread(opt("SPY241018C00440000"), opt("SPY241018C00430000")),
        Strategy::bull_call_spread(opt("SPY241018C00430000"), opt("SPY241018C00430000")),
        Strategy::bear_put_spread(opt("SPY241018P00420000"), opt("SPY241018P00430000")),
        Strategy::long_straddle(opt("SPY241018C00430000"), opt("SPY241018P00420000")),
        Strategy::long_strangle(opt("SPY241018P00440000"), opt("SPY241018C00430000")),
        Strategy::iron_condor(
            opt("SPY241018P00420000"),
            opt("SPY241018P00410000"),
            opt("SPY241018C00440000"),
            opt("SPY241018C00450000"),
        ),
        Strategy::iron_condor(
            opt("SPY241018P00410000"),
            opt("SPY241018P00430000"),
            opt("SPY241018C00430000"),
            opt("SPY241018C00450000"),
        ),
        Strategy::ratio_spread(opt("SPY241018C00430000"), 1, opt("SPY241018C00430000"), 2),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        assert_eq!(strategy_rule(case), OrderRule::StrikeOrder, "case {i}");
    }
}

#[test]
fn rule_ratio() {
    let equal = Strategy::ratio_spread(opt("SPY241018C00430000"), 2, opt("SPY241018C00440000"), 2);
    assert_eq!(strategy_rule(equal), OrderRule::Ratio);
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn legs(strategy: &Strategy) -> Vec<(String, OrderSide, u32)> {
    strategy
        .legs()
        .iter()
        .map(|l| (l.symbol.to_string(), l.action.side(), l.ratio))
        .collect()
}

#[test]
fn each_strategy_buys_and_sells_the_right_legs() {
    use OrderSide::{BuyToOpen as B, SellToOpen as S};
    let s = |t: &str| t.to_string();
    let bull =
        Strategy::bull_call_spread(opt("SPY241018C00430000"), opt("SPY241018C00440000")).unwrap();
    assert_eq!(bull.kind(), StrategyKind::BullCallSpread);
    assert_eq!(
        legs(&bull),
        [
            (s("SPY241018C00430000"), B, 1),
            (s("SPY241018C00440000"), S, 1)
        ]
    );
    let bear =
        Strategy::bear_put_spread(opt("SPY241018P00440000"), opt("SPY241018P00430000")).unwrap();
    assert_eq!(
        legs(&bear),
        [
            (s("SPY241018P00440000"), B, 1),
            (s("SPY241018P00430000"), S, 1)
        ]
    );
    let straddle =
        Strategy::long_straddle(opt("SPY241018C00430000"), opt("SPY241018P00430000")).unwrap();
    assert_eq!(
        legs(&straddle),
        [
            (s("SPY241018C00430000"), B, 1),
            (s("SPY241018P00430000"), B, 1)
        ]
    );
    let strangle =
        Strategy::long_strangle(opt("SPY241018P00420000"), opt("SPY241018C00440000")).unwrap();
    assert_eq!(
        legs(&strangle),
        [
            (s("SPY241018P00420000"), B, 1),
            (s("SPY241018C00440000"), B, 1)
        ]
    );
    let ratio =
        Strategy::ratio_spread(opt("SPY241018P00430000"), 1, opt("SPY241018P00420000"), 2).unwrap();
    assert_eq!(
        legs(&ratio),
        [
            (s("SPY241018P00430000"), B, 1),
            (s("SPY241018P00420000"), S, 2)
        ]
    );
    assert_eq!(condor().kind(), StrategyKind::IronCondor);
    assert_eq!(condor().underlying(), "SPY");
}

#[test]
fn closing_a_strategy_reverses_every_action() {
    let closing = condor().closing();
    let actions: Vec<OrderSide> = closing.legs().iter().map(|l| l.action.side()).collect();
    assert_eq!(
        actions,
        [
            OrderSide::SellToClose,
            OrderSide::BuyToClose,
            OrderSide::BuyToClose,
            OrderSide::SellToClose
        ]
    );
    assert_eq!(closing.closing(), condor());
}

#[test]
fn a_multi_leg_net_price_may_be_a_credit() {
    let credit = condor()
        .order()
        .account("a", BrokerCode::Alpaca)
        .quantity(1)
        .limit("-1.10")
        .build()
        .unwrap();
    assert_eq!(credit.order_limit_price, Some(dec("-1.10")));
    assert_eq!(credit.instrument, Some(Instrument::MultiLegOption));
    assert_eq!(credit.side, None);
}

#[test]
fn validate_accepts_a_hand_written_documented_order_and_infers_the_instrument() {
    let request = PlaceOrderRequest::try_from(
        PlaceOrderRequest::builder()
            .account_id("acc-1")
            .broker(BrokerCode::Webull)
            .cl_order_id("cl-1")
            .order_limit_price(Some(dec("13.50")))
            .order_qty(Some(dec("1")))
            .order_tif(TimeInForce::Gtc)
            .order_type(OrderType::Limit)
            .side(Some(OrderSide::BuyToOpen))
            .symbol(Some("TSLA251031C00437500".to_string())),
    )
    .expect("every required field is given");
    orders::validate(&request).unwrap();
    // Inferred as an option, so an equity side is refused.
    let equity_side = PlaceOrderRequest {
        side: Some(OrderSide::Buy),
        ..request.clone()
    };
    assert_eq!(
        orders::validate(&equity_side).unwrap_err().rule(),
        OrderRule::Side
    );
    // Legs without an instrument are a multi-leg order.
    let legs = PlaceOrderRequest {
        symbol: None,
        side: None,
        legs: vec![
            OrderLeg {
                action: OrderSide::BuyToOpen,
                ratio: dec("1"),
                symbol: "TSLA251031C00437500".into(),
            },
            OrderLeg {
                action: OrderSide::SellToOpen,
                ratio: dec("1"),
                symbol: "TSLA251031C00450000".into(),
            },
        ],
        ..request
    };
    orders::validate(&legs).unwrap();
}

#[test]
fn an_order_error_converts_into_the_sdk_error_naming_the_rule() {
    fn place() -> connect_trade::Result<PlaceOrderRequest> {
        Ok(msft().order_type(OrderType::Limit).build()?)
    }
    let err = place().unwrap_err();
    // The typed error survives `?`: its rule is still there.
    assert_eq!(err.order_rule(), Some(OrderRule::LimitPrice));
    match &err {
        Error::Order(order_error) => assert_eq!(order_error.rule(), OrderRule::LimitPrice),
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("limit-price"), "{message}");
    assert!(
        message.contains("LMT orders need order_limit_price"),
        "{message}"
    );
    assert!(!err.may_have_reached_server());
}

// ---------------------------------------------------------------------------------------------
// Client order ids
// ---------------------------------------------------------------------------------------------

#[test]
fn generated_ids_are_unique_across_threads_and_increase_within_each() {
    let generator = std::sync::Arc::new(ClOrderIdGenerator::new());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let generator = generator.clone();
            std::thread::spawn(move || (0..20_000).map(|_| generator.next_id()).collect::<Vec<_>>())
        })
        .collect();
    let mut all = HashSet::new();
    for thread in threads {
        let ids = thread.join().unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
        for id in ids {
            assert_eq!(id.as_str().len(), ClOrderId::GENERATED_LEN);
            assert!(
                id.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            );
            assert!(
                ClOrderId::new(id.as_str()).is_ok(),
                "valid by our own rules"
            );
            assert!(all.insert(id), "unique");
        }
    }
    assert_eq!(all.len(), 80_000);
}

#[test]
fn generators_in_different_processes_draw_different_parts_and_ids_carry_their_time() {
    let (a, b) = (ClOrderIdGenerator::new(), ClOrderIdGenerator::new());
    let (x, y) = (a.next_id(), b.next_id());
    assert_ne!(
        &x.as_str()[9..15],
        &y.as_str()[9..15],
        "process parts differ"
    );
    let now = chrono::Utc::now();
    let at = x.generated_at().unwrap();
    assert!((now - at).num_seconds().abs() < 60, "{at} vs {now}");
    assert!(x.generated_at() <= y.generated_at());
    assert_eq!(ClOrderId::new("my-order").unwrap().generated_at(), None);
}

// ---------------------------------------------------------------------------------------------
// Sending, modifying, cancelling
// ---------------------------------------------------------------------------------------------

fn user(base_url: &str) -> UserClient {
    ConnectTrade::builder()
        .client_id("platform-1")
        .client_secret("platform-secret")
        .base_url(base_url)
        .build()
        .unwrap()
        .for_user(UserCredentials::new("alice", "alice-secret"))
        .unwrap()
}

fn order(status: &str) -> Order {
    serde_json::from_value(order_json(status)).unwrap()
}

fn order_json(status: &str) -> serde_json::Value {
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
        "status": status
    })
}

#[tokio::test]
async fn send_places_the_built_order_and_a_rejected_one_never_leaves() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(POST).path("/orders").body(concat!(
                r#"{"account_id":"acc-1","broker":"WEBULL","cl_order_id":"cl-1","instrument":"OPT","#,
                r#""order_limit_price":"13.50","order_qty":"1","order_tif":"GTC","order_type":"LMT","#,
                r#""side":"BUY_TO_OPEN","symbol":"TSLA251031C00437500"}"#
            ));
            then.status(200).json_body(order_json("working"));
        })
        .await;
    let user = user(&server.base_url());
    let placed = tsla().send(&user).await.unwrap();
    assert_eq!(placed.status, OrderStatus::Working);
    // The builder also goes straight into the generated call.
    user.place_order().body(tsla()).send().await.unwrap();
    mock.assert_calls_async(2).await;

    let err = tsla().quantity("1.5").send(&user).await.unwrap_err();
    assert!(err.order_rule() == Some(OrderRule::WholeContracts), "{err}");
    let err = user
        .place_order()
        .body(tsla().limit("0"))
        .send()
        .await
        .unwrap_err();
    let err = Error::from(err);
    assert!(
        matches!(err, Error::InvalidRequest(ref m) if m.contains("positive")),
        "{err}"
    );
    mock.assert_calls_async(2).await;
}

#[test]
fn modify_builds_the_patch_body_with_a_new_cl_order_id_and_the_broker() {
    let working = order("working");
    let body = orders::modify(&working)
        .limit_price("13.25")
        .new_cl_order_id("cl-2")
        .build()
        .unwrap();
    assert_eq!(
        serde_json::to_string(&body).unwrap(),
        r#"{"broker":"WEBULL","new_cl_order_id":"cl-2","order_limit_price":"13.25"}"#
    );
    let generated = orders::modify(&working).quantity(2).build().unwrap();
    assert_ne!(generated.new_cl_order_id, "cl-1");
    assert_eq!(generated.new_cl_order_id.len(), ClOrderId::GENERATED_LEN);
    assert_eq!(generated.order_qty, Some(dec("2")));
    let builder = orders::modify(&working);
    assert_eq!(
        (builder.account_id(), builder.order_id()),
        ("acc-1", "ord-1")
    );
}

#[test]
fn modify_rules() {
    let working = order("working");
    let rule = |r: Result<_, OrderError>| r.unwrap_err().rule();
    assert_eq!(
        rule(orders::modify(&working).build()),
        OrderRule::NothingToModify
    );
    for status in ["filled", "cancelled", "rejected", "expired", "replaced"] {
        let err = orders::modify(&order(status))
            .limit_price("1")
            .build()
            .unwrap_err();
        assert_eq!(err.rule(), OrderRule::OrderNotOpen, "{status}");
        assert!(err.message().contains(status), "{err}");
    }
    assert_eq!(
        rule(orders::modify(&working).quantity("1.5").build()),
        OrderRule::WholeContracts
    );
    assert_eq!(
        rule(orders::modify(&working).quantity(0).build()),
        OrderRule::Positive
    );
    assert_eq!(
        rule(orders::modify(&working).notional("10").build()),
        OrderRule::QuantityOrNotional
    );
    assert_eq!(
        rule(orders::modify(&working).stop_price("10").build()),
        OrderRule::StopPrice
    );
    assert_eq!(
        rule(orders::modify(&working).limit_price("1.0000000001").build()),
        OrderRule::Precision
    );
    assert_eq!(
        rule(
            orders::modify(&working)
                .new_cl_order_id("no spaces")
                .limit_price("1")
                .build()
        ),
        OrderRule::ClOrderId
    );
    let mut market = order("working");
    market.order_type = Some(OrderType::Market);
    assert_eq!(
        rule(orders::modify(&market).limit_price("1").build()),
        OrderRule::LimitPrice
    );
    let mut no_broker = order("working");
    no_broker.broker = None;
    assert_eq!(
        rule(orders::modify(&no_broker).quantity(2).build()),
        OrderRule::Account
    );
    let fixed = orders::modify(&no_broker)
        .broker(BrokerCode::Webull)
        .quantity(2)
        .build()
        .unwrap();
    assert_eq!(fixed.broker, BrokerCode::Webull);
    // An unknown status may still be open: it does not block a modification.
    assert!(orders::modify(&order("parked")).quantity(2).build().is_ok());
}

#[tokio::test]
async fn modify_send_patches_the_order_under_its_account() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method("PATCH")
                .path("/accounts/acc-1/orders/ord-1")
                .body(
                    r#"{"broker":"WEBULL","new_cl_order_id":"cl-2","order_limit_price":"13.25"}"#,
                );
            then.status(200).json_body(order_json("pending_replace"));
        })
        .await;
    let user = user(&server.base_url());
    let replaced = orders::modify(&order("working"))
        .limit_price("13.25")
        .new_cl_order_id("cl-2")
        .send(&user)
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(replaced.status, OrderStatus::PendingReplace);
}

#[tokio::test]
async fn cancel_deletes_an_open_order_and_refuses_a_finished_one_without_sending() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(DELETE).path("/accounts/acc-1/orders/ord-1");
            then.status(200);
        })
        .await;
    let user = user(&server.base_url());
    orders::cancel(&user, &order("working")).await.unwrap();
    mock.assert_calls_async(1).await;
    let err = orders::cancel(&user, &order("filled")).await.unwrap_err();
    assert!(
        err.order_rule() == Some(OrderRule::OrderNotOpen) && err.to_string().contains("filled"),
        "{err}"
    );
    mock.assert_calls_async(1).await;
}

#[test]
fn futures_and_newer_instruments_get_the_common_rules_only() {
    let future = PlaceOrderRequest::try_from(
        PlaceOrderRequest::builder()
            .account_id("acc-1")
            .broker(BrokerCode::TradeStation)
            .cl_order_id("cl-1")
            .instrument(Some(Instrument::Future))
            .order_qty(Some(dec("1")))
            .order_tif(TimeInForce::Day)
            .order_type(OrderType::Market)
            .side(Some(OrderSide::Buy))
            .symbol(Some("ESZ5".to_string())),
    )
    .expect("every required field is given");
    orders::validate(&future).unwrap();
    let both = PlaceOrderRequest {
        order_notional: Some(dec("100")),
        ..future.clone()
    };
    assert_eq!(
        orders::validate(&both).unwrap_err().rule(),
        OrderRule::QuantityOrNotional
    );
    let limit_without_price = PlaceOrderRequest {
        order_type: OrderType::Limit,
        ..future
    };
    assert_eq!(
        orders::validate(&limit_without_price).unwrap_err().rule(),
        OrderRule::LimitPrice
    );
}

#[test]
fn a_huge_input_gives_a_short_error() {
    // Input echoed in an error is cut short: a 1 MB id or symbol must not make a 1 MB message.
    const MAX: usize = 1024;
    let short = |text: String| {
        assert!(text.len() < MAX, "{} bytes: {}…", text.len(), &text[..200]);
    };
    let huge = "A".repeat(1 << 20);
    short(ClOrderId::new(huge.as_str()).unwrap_err().to_string());
    short(ClOrderId::new(format!("{huge} ")).unwrap_err().to_string());
    let err = msft().cl_order_id(&huge).build().unwrap_err();
    assert_eq!(err.rule(), OrderRule::ClOrderId);
    short(err.to_string());
    short(Error::from(err).to_string());
    for symbol in [
        huge.clone(),
        huge.to_lowercase(),
        format!("{huge}251031C00437500"),
    ] {
        let err = OrderBuilder::equity(symbol.as_str(), OrderSide::Buy)
            .account("acc-1", BrokerCode::Alpaca)
            .quantity(1)
            .market()
            .build()
            .unwrap_err();
        short(err.to_string());
        short(std::error::Error::source(&err).unwrap().to_string());
        let err = symbol.parse::<OptionSymbol>().unwrap_err();
        short(err.to_string());
    }
    let digits = "1".repeat(1 << 20);
    let err = msft().limit(digits.as_str()).build().unwrap_err();
    short(err.to_string());
    let err = orders::modify(&order("working"))
        .new_cl_order_id(&huge)
        .quantity(1)
        .build()
        .unwrap_err();
    short(err.to_string());
}

#[test]
fn typed_errors_survive_question_mark_and_no_display_repeats_its_source() {
    use connect_trade::stream::StreamError;
    use std::error::Error as _;

    // A symbol error stays a symbol error.
    fn symbol() -> connect_trade::Result<OptionSymbol> {
        Ok("TSLA251331C00437500".parse::<OptionSymbol>()?)
    }
    let symbol_error = symbol().unwrap_err();
    assert!(matches!(symbol_error, Error::Symbol(ref e) if e.position() == Some(7)));

    // A stream error stays a stream error, and the token error keeps the REST error.
    let rest = Error::Api {
        status: 404,
        message: "no such connection".into(),
        request_id: None,
    };
    let stream: Error = StreamError::from(rest).into();
    match &stream {
        Error::Stream(StreamError::Token { status, source, .. }) => {
            assert_eq!(*status, Some(404));
            assert_eq!(source.status(), Some(404));
        }
        other => panic!("{other:?}"),
    }
    let mut chain = Vec::new();
    let mut next = stream.source();
    while let Some(source) = next {
        chain.push(source.to_string());
        next = source.source();
    }
    assert!(
        chain.iter().any(|e| e.contains("no such connection")),
        "{chain:?}"
    );

    // An order error from a bad symbol: rule, then the symbol error as its source.
    let order: Error = OrderBuilder::equity("msft", OrderSide::Buy)
        .account("acc-1", BrokerCode::Alpaca)
        .quantity(1)
        .market()
        .build()
        .unwrap_err()
        .into();
    assert_eq!(order.order_rule(), Some(OrderRule::Symbol));

    let decode = Error::Decode {
        operation: Some("place_order".into()),
        status: Some(200),
        path: "fills[0].price".into(),
        message: "invalid type: integer `1`, expected a decimal string".into(),
        excerpt: None,
        body: connect_trade::Secret::from("{}".to_string()),
    };
    let outcome = Error::OrderOutcomeUnknown {
        action: connect_trade::error::OrderAction::Place,
        cl_order_id: "cl-1".into(),
        order_id: None,
        last_error: Box::new(Error::Api {
            status: 403,
            message: "forbidden".into(),
            request_id: None,
        }),
    };
    for error in [&symbol_error, &stream, &order, &decode, &outcome] {
        // Display says what happened; the cause is in source(), not repeated.
        let mut level: &dyn std::error::Error = error;
        while let Some(source) = level.source() {
            assert!(
                !level.to_string().contains(&source.to_string()),
                "{level} repeats {source}"
            );
            level = source;
        }
    }
    assert!(outcome.source().is_some());
    assert!(outcome.may_have_reached_server());
}
