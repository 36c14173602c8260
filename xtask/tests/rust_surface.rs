//! The Rust surface listing: public items only, stable text, bodies and docs ignored.

use xtask::rust_surface::rust_surface;

const SOURCE: &str = r#"
/// Docs are not part of the surface.
pub struct Client { baseurl: String, pub inner: u32 }
impl Client {
    pub fn list_orders(&self) -> builder::ListOrders<'_> { builder::ListOrders::new(self) }
    fn private(&self) {}
}
pub mod types {
    #[derive(Debug, Clone, serde::Deserialize)]
    pub struct Order { pub order_id: String, pub qty: Option<rust_decimal::Decimal>, hidden: u8 }
    pub enum Side { Buy, Other(String), Named { code: u8 } }
    struct Private;
    pub mod builder {
        impl From<super::Order> for Order { fn from(o: super::Order) -> Self { todo!() } }
        pub struct Order;
    }
}
pub mod builder {
    pub struct ListOrders<'a> { client: &'a super::Client }
    impl<'a> ListOrders<'a> {
        pub fn status<V>(mut self, value: V) -> Self where V: std::convert::TryInto<String>, { self }
        pub async fn send(self) -> Result<(), ()> { Ok(()) }
    }
}
pub const ALL: &[&str] = &["list_orders"];
"#;

#[test]
fn lists_public_items_with_paths_and_types() {
    let surface = rust_surface(SOURCE).unwrap();
    let expected = "\
const ALL: &[&str]
enum types::Side
field Client.inner: u32
field types::Order.order_id: String
field types::Order.qty: Option<rust_decimal::Decimal>
impl From<super::Order> for types::builder::Order
method Client::list_orders(&self) -> builder::ListOrders<'_>
method builder::ListOrders<'a>::async send(self) -> Result<(), ()>
method builder::ListOrders<'a>::status<V>(self, value: V) -> Self where V: std::convert::TryInto<String>
mod builder
mod types
mod types::builder
struct Client
struct builder::ListOrders<'a>
struct types::Order derive(Clone, Debug, serde::Deserialize)
struct types::builder::Order
variant types::Side::Buy
variant types::Side::Named { code: u8 }
variant types::Side::Other(String)
";
    assert_eq!(surface, expected);
}

#[test]
fn bodies_docs_and_private_items_do_not_change_the_surface() {
    let changed = SOURCE
        .replace("Docs are not", "Other docs are not")
        .replace("Ok(())", "Err(())")
        .replace("fn private(&self) {}", "fn private2(&self, x: u8) {}")
        .replace("hidden: u8", "hidden: u16");
    assert_eq!(
        rust_surface(&changed).unwrap(),
        rust_surface(SOURCE).unwrap()
    );
    let public_change = SOURCE.replace("pub inner: u32", "pub inner: u64");
    assert_ne!(
        rust_surface(&public_change).unwrap(),
        rust_surface(SOURCE).unwrap()
    );
}

#[test]
fn invalid_source_is_an_error() {
    assert!(rust_surface("pub struct {").is_err());
}
