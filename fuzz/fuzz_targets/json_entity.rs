//! Entity bodies in JSON (either dialect): parse, validate against the built-in catalog,
//! render in both dialects.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ocni_model::render::render_entity;
use ocni_model::{Catalog, Dialect};

static CATALOG: LazyLock<Catalog> = LazyLock::new(Catalog::builtin);

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = ocni_model::filter::parse_entity_filters(&value);
    let _ = ocni_model::parse_locations(&value);
    let Ok(inputs) = ocni_model::parse_entity_collection(&value) else { return };
    for input in inputs {
        if let Ok(e) = CATALOG.create_entity(&input, "/compute/f", "f") {
            for dialect in [Dialect::Occi12, Dialect::Pyocni] {
                let _ = render_entity(&e, &CATALOG, &[], dialect, &|_| None);
            }
            let _ = CATALOG.update_entity(&e, &input);
            let _ = CATALOG.replace_entity(&e, &input);
        }
    }
});
