//! The documented workflows against hand-computed values on awkward inputs.

use std::str::FromStr;

use connect_trade::{
    rest::types::{Balance, Fill, Order, Position},
    workflows::{
        NullableSum, average_fill_price, average_fill_price_of_orders, daily_pl_summary,
        partially_filled_orders, total_unrealized_pl,
    },
};
use rust_decimal::Decimal;
use serde_json::json;

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal literal")
}

fn position(
    account: &str,
    symbol: &str,
    unrealized: Option<&str>,
    daily: Option<&str>,
) -> Position {
    serde_json::from_value(json!({
        "account_id": account, "symbol": symbol, "quantity": "1",
        "unrealized_pl": unrealized, "daily_pl": daily,
    }))
    .expect("position")
}

fn fill(id: usize, quantity: &str, price: &str) -> Fill {
    serde_json::from_value(
        json!({"fill_id": format!("f{id}"), "quantity": quantity, "price": price}),
    )
    .expect("fill")
}

fn order(id: &str, status: &str, qty: Option<&str>, fills: &[Fill]) -> Order {
    serde_json::from_value(json!({
        "order_id": id, "account_id": "acc", "status": status, "symbol": "BTC",
        "order_qty": qty, "fills": fills, "legs": [],
    }))
    .expect("order")
}

#[test]
fn unrealized_pl_sums_nine_decimal_figures_and_counts_nulls() {
    let positions = [
        position("a", "AAPL", Some("0.000000001"), None),
        position("a", "MSFT", None, None),
        position("a", "TSLA", Some("-123.456789012"), None),
        position("b", "BTC", Some("1000000.5"), None),
        position("b", "ETH", None, None),
    ];
    let pl = total_unrealized_pl(&positions).unwrap();
    // 0.000000001 - 123.456789012 + 1000000.5, by hand:
    assert_eq!(pl.total, d("999877.043210989"));
    assert_eq!((pl.reported, pl.missing), (3, 2));
    assert!(!pl.is_complete());
    assert_eq!(pl.complete_total(), None);
}

#[test]
fn unrealized_pl_of_nothing_is_zero_and_complete() {
    let pl = total_unrealized_pl(&[]).unwrap();
    assert_eq!(pl, NullableSum::default());
    assert_eq!(pl.complete_total(), Some(Decimal::ZERO));
}

#[test]
fn unrealized_pl_refuses_an_overflowing_sum_instead_of_panicking() {
    let huge = Decimal::MAX.to_string();
    let positions = [
        position("a", "X", Some(&huge), None),
        position("a", "Y", Some(&huge), None),
    ];
    assert!(total_unrealized_pl(&positions).is_err());
}

#[test]
fn vwap_of_a_thousand_fills_with_nine_decimal_prices() {
    // Fill i (1..=1000): quantity i at 100 + i × 0.000000001.
    // Σq = 500500; Σq·p = 100·500500 + 1e-9·Σi² = 50050000 + 0.3338335 (Σi² = 333833500).
    // VWAP = 100 + 0.3338335 / 500500 = 100.000000667000999… → 100.000000667.
    let fills: Vec<Fill> = (1..=1000)
        .map(|i| {
            let price = d("100") + Decimal::new(i as i64, 9);
            fill(i, &i.to_string(), &price.to_string())
        })
        .collect();
    let avg = average_fill_price(&fills).unwrap().expect("fills");
    assert_eq!(avg.quantity, d("500500"));
    assert_eq!(avg.notional, d("50050000.3338335"));
    assert_eq!(avg.price, d("100.000000667"));
    assert_eq!(avg.fills, 1000);
}

#[test]
fn vwap_rounds_to_nine_places_half_to_even() {
    let up = [fill(1, "1", "0.000000001"), fill(2, "1", "0.000000002")];
    assert_eq!(
        average_fill_price(&up).unwrap().unwrap().price,
        d("0.000000002")
    );
    let down = [fill(1, "1", "0.000000002"), fill(2, "1", "0.000000003")];
    assert_eq!(
        average_fill_price(&down).unwrap().unwrap().price,
        d("0.000000002")
    );
    // 30.000000002 / 3 = 10.000000000666…
    let thirds = [fill(1, "1", "10"), fill(2, "2", "10.000000001")];
    assert_eq!(
        average_fill_price(&thirds).unwrap().unwrap().price,
        d("10.000000001")
    );
    // Trailing zeros are removed: 150.5, not 150.500000000.
    let plain = [fill(1, "1", "150"), fill(2, "1", "151")];
    assert_eq!(
        average_fill_price(&plain)
            .unwrap()
            .unwrap()
            .price
            .to_string(),
        "150.5"
    );
}

#[test]
fn vwap_of_no_fills_or_zero_quantity_is_none() {
    assert_eq!(average_fill_price(&[]).unwrap(), None);
    assert_eq!(average_fill_price(&[fill(1, "0", "10")]).unwrap(), None);
}

#[test]
fn vwap_over_several_orders_uses_every_fill() {
    let a = order(
        "o1",
        "filled",
        Some("3"),
        &[fill(1, "1", "10"), fill(2, "2", "11")],
    );
    let b = order("o2", "partially_filled", Some("5"), &[fill(3, "1", "14")]);
    // (10 + 22 + 14) / 4 = 11.5
    let avg = average_fill_price_of_orders([&a, &b]).unwrap().unwrap();
    assert_eq!(avg.price, d("11.5"));
    assert_eq!(avg.quantity, d("4"));
}

#[test]
fn partially_filled_orders_with_fills_remaining_and_average() {
    let orders = [
        order("done", "filled", Some("1"), &[fill(1, "1", "5")]),
        order(
            "part",
            "partially_filled",
            Some("10"),
            &[fill(2, "2", "1.5"), fill(3, "3", "1.6")],
        ),
        order("nofill", "partially_filled", None, &[]),
        order("open", "working", Some("4"), &[]),
    ];
    let partial = partially_filled_orders(&orders).unwrap();
    assert_eq!(partial.len(), 2);
    assert_eq!(partial[0].order.order_id, "part");
    assert_eq!(partial[0].fills.len(), 2);
    assert_eq!(partial[0].filled_quantity, d("5"));
    assert_eq!(partial[0].remaining_quantity, Some(d("5")));
    // (3 + 4.8) / 5 = 1.56
    assert_eq!(partial[0].average.unwrap().price, d("1.56"));
    // A notional order without fills reported yet: nothing is made up.
    assert_eq!(partial[1].order.order_id, "nofill");
    assert_eq!(partial[1].filled_quantity, Decimal::ZERO);
    assert_eq!(partial[1].remaining_quantity, None);
    assert_eq!(partial[1].average, None);
}

#[test]
fn daily_pl_summary_combines_balances_and_positions() {
    let balances: Vec<Balance> = serde_json::from_value(json!([
        {"account_id": "a", "cash": "1000.123456789", "buying_power": "2000.5", "currency": "USD"},
        {"account_id": "b", "cash": null, "buying_power": "10", "currency": "USD"},
    ]))
    .unwrap();
    let positions = [
        position("a", "AAPL", None, Some("12.000000001")),
        position("b", "AAPL", None, Some("-2")),
        position("a", "MSFT", None, None),
        position("b", "TSLA", None, Some("0.5")),
    ];
    let summary = daily_pl_summary(&balances, &positions).unwrap();
    assert_eq!(summary.cash.total, d("1000.123456789"));
    assert_eq!((summary.cash.reported, summary.cash.missing), (1, 1));
    assert_eq!(summary.buying_power.total, d("2010.5"));
    assert!(summary.buying_power.is_complete());
    // 12.000000001 - 2 + 0.5; MSFT's null is counted, not zero.
    assert_eq!(summary.daily_pl.total, d("10.500000001"));
    assert_eq!(
        (summary.daily_pl.reported, summary.daily_pl.missing),
        (3, 1)
    );
    assert_eq!(summary.by_symbol["AAPL"].total, d("10.000000001"));
    assert_eq!(summary.by_symbol["AAPL"].reported, 2);
    assert_eq!(summary.by_symbol["MSFT"].missing, 1);
    assert_eq!(summary.by_account["a"].cash, Some(d("1000.123456789")));
    assert_eq!(summary.by_account["b"].cash, None);
    assert_eq!(summary.by_account["b"].daily_pl.total, d("-1.5"));
    assert_eq!(summary.currencies.len(), 1);
}
