//! A text/plain request body through the parser and into every JSON shape it can become.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ocni_model::Catalog;

static CATALOG: LazyLock<Catalog> = LazyLock::new(Catalog::builtin);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(msg) = ocni_model::text::parse_plain(text) {
        let _ = msg.to_entity_json(&CATALOG);
        let _ = msg.to_categories_json(&CATALOG);
        let _ = msg.to_action_json(&CATALOG);
        let _ = msg.to_entity_filter_json(&CATALOG);
        let _ = msg.category_filter(&CATALOG);
    }
});
