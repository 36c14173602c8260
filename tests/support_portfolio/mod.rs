//! The portfolio and relay tests' simulator, and comparing a portfolio mirror with a fresh
//! REST read.

use chrono::Utc;
use connect_trade::{
    portfolio::UserBook,
    rest::types::{Balance, Position},
};
use connect_trade_sim::Simulator;

/// A position without the figures that follow the market price (last price, market value,
/// P&L): the simulator revalues them on every tick but sends a position update only when the
/// position itself changes (a fill), so between fills they age in any stream-fed mirror.
pub fn unmarked_position(p: &Position) -> Position {
    Position {
        last_price: None,
        market_value: None,
        unrealized_pl: None,
        daily_pl: None,
        total_pl: None,
        ..p.clone()
    }
}

/// A balance without its market-valued `equity` (see [`unmarked_position`]).
pub fn unmarked_balance(b: &Balance) -> Balance {
    Balance {
        equity: None,
        ..b.clone()
    }
}

/// What differs between two books, briefly; every order field, every position and balance
/// field but the market marks.
pub fn book_differences(mirror: Option<&UserBook>, rest: &UserBook) -> Vec<String> {
    let Some(mirror) = mirror else {
        return vec!["user missing from the mirror".into()];
    };
    let mut out = Vec::new();
    for (id, fresh) in rest.accounts() {
        let Some(held) = mirror.account(id) else {
            out.push(format!("account {id} missing"));
            continue;
        };
        if held.account() != fresh.account() {
            out.push(format!("account {id} differs"));
        }
        if held.balance().map(unmarked_balance) != fresh.balance().map(unmarked_balance) {
            out.push(format!(
                "balance {id}: {:?} vs {:?}",
                held.balance(),
                fresh.balance()
            ));
        }
        for p in fresh.positions() {
            if held.position(&p.symbol).map(unmarked_position) != Some(unmarked_position(p)) {
                out.push(format!(
                    "position {}: {:?} vs {p:?}",
                    p.symbol,
                    held.position(&p.symbol)
                ));
            }
        }
        for p in held.positions() {
            if fresh.position(&p.symbol).is_none() {
                out.push(format!("extra position {}", p.symbol));
            }
        }
        for o in fresh.orders() {
            match held.order(&o.order_id) {
                None => out.push(format!("order {} missing", o.order_id)),
                Some(h) if *h != *o => out.push(format!(
                    "order {}: {} {} fills vs {} {} fills",
                    o.order_id,
                    h.status,
                    h.fills.len(),
                    o.status,
                    o.fills.len()
                )),
                _ => {}
            }
        }
        for o in held.orders() {
            if fresh.order(&o.order_id).is_none() {
                out.push(format!("extra order {}", o.order_id));
            }
        }
    }
    out
}

/// A simulator whose clock moves only when told, started at 15:00 UTC today (market open, and
/// "today" for the REST reads' midnight-UTC window), with little liquidity per tick so orders
/// fill in parts.
pub async fn simulator() -> Simulator {
    let start = Utc::now()
        .date_naive()
        .and_hms_opt(15, 0, 0)
        .unwrap()
        .and_utc();
    Simulator::builder()
        .manual_clock()
        .start_time(start)
        .liquidity(rust_decimal::Decimal::from(3))
        .start()
        .await
        .expect("simulator")
}
