//! Amounts as strict as the documentation: a decimal string in plain form (`"190.5"`,
//! `"-3"`), at most 9 decimals ("Prices may be returned with up to 9 digits of precision").
//! `"1e3"`, `"0.0000000001"`, `" 5"` or `".5"` get a 400 naming the field, before the body
//! becomes Decimals (which would read `1e3` as 1000 and keep the tenth decimal).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::state::{ApiError, ApiResult};

/// The most decimals an amount may have.
pub(crate) const MAX_DECIMALS: usize = 9;

/// The amount fields of `POST …/orders` and `PATCH …/orders/{id}`, as written.
#[derive(Deserialize)]
struct OrderAmounts<'a> {
    #[serde(borrow, default)]
    order_qty: Option<&'a RawValue>,
    #[serde(borrow, default)]
    order_notional: Option<&'a RawValue>,
    #[serde(borrow, default)]
    order_limit_price: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stop_price: Option<&'a RawValue>,
    #[serde(borrow, default)]
    legs: Option<Vec<LegAmounts<'a>>>,
}

#[derive(Deserialize)]
struct LegAmounts<'a> {
    #[serde(borrow, default)]
    ratio: Option<&'a RawValue>,
}

/// Checks the amounts of an order request body (place or modify). A body that is not a JSON
/// object passes: decoding it reports that.
pub(crate) fn check_order_body(bytes: &[u8]) -> ApiResult<()> {
    let Ok(amounts) = serde_json::from_slice::<OrderAmounts<'_>>(bytes) else {
        return Ok(());
    };
    for (field, raw) in [
        ("order_qty", amounts.order_qty),
        ("order_notional", amounts.order_notional),
        ("order_limit_price", amounts.order_limit_price),
        ("stop_price", amounts.stop_price),
    ] {
        if let Some(raw) = raw {
            check(field, raw)?;
        }
    }
    for (i, leg) in amounts.legs.unwrap_or_default().iter().enumerate() {
        if let Some(raw) = leg.ratio {
            check(&format!("legs[{i}].ratio"), raw)?;
        }
    }
    Ok(())
}

/// One amount: a JSON string (the documented form) or number, in plain decimal form.
fn check(field: &str, raw: &RawValue) -> ApiResult<()> {
    let written = raw.get();
    let text = if written.starts_with('"') {
        match serde_json::from_str::<String>(written) {
            Ok(text) => text,
            // Not a string after all: decoding the body reports it.
            Err(_) => return Ok(()),
        }
    } else if written == "null" {
        return Ok(());
    } else {
        written.to_string()
    };
    match plain_decimals(&text) {
        Some(decimals) if decimals <= MAX_DECIMALS => Ok(()),
        Some(decimals) => Err(ApiError::invalid(
            field,
            format!("{text:?} has {decimals} decimals; at most {MAX_DECIMALS} are accepted"),
        )),
        None => Err(ApiError::invalid(
            field,
            format!(
                "{text:?} is not a plain decimal: write digits with an optional sign and \
                 decimal point, like \"1000\" or \"190.25\""
            ),
        )),
    }
}

/// The number of decimals of `-?[0-9]+(\.[0-9]+)?`, or `None` for anything else.
fn plain_decimals(text: &str) -> Option<usize> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    Some(fraction.map_or(0, str::len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decimals_only() {
        assert_eq!(plain_decimals("190"), Some(0));
        assert_eq!(plain_decimals("-3.25"), Some(2));
        assert_eq!(plain_decimals("0.000000001"), Some(9));
        assert_eq!(plain_decimals("0.0000000001"), Some(10));
        for bad in [
            "1e3", "1E3", "", "-", ".5", "5.", "+5", " 5", "5 ", "1_000", "0x10", "NaN",
        ] {
            assert_eq!(plain_decimals(bad), None, "{bad:?}");
        }
    }
}
