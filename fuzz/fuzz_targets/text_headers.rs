//! text/occi request headers (one `Name: value` per input line) through the header parser.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ocni_model::Catalog;

static CATALOG: LazyLock<Catalog> = LazyLock::new(Catalog::builtin);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let headers: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once(':')).collect();
    if let Ok(msg) = ocni_model::text::parse_headers(headers) {
        let _ = msg.to_entity_json(&CATALOG);
        let _ = msg.to_categories_json(&CATALOG);
    }
});
