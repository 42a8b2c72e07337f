//! Category definitions in JSON (either dialect): parse, add to the catalog, render and parse
//! the rendering again, which must succeed.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ocni_model::render::render_category;
use ocni_model::{Catalog, Class, Dialect, parse_category};

static CATALOG: LazyLock<Catalog> = LazyLock::new(Catalog::builtin);

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = ocni_model::filter::parse_category_filters(&value).map(|fs| CATALOG.iter().filter(|c| fs.iter().any(|f| f.matches(c))).count());
    for class in Class::ALL {
        if let Ok(cat) = parse_category(class, &value) {
            let _ = CATALOG.add(vec![cat.clone()]);
            for dialect in [Dialect::Occi12, Dialect::Pyocni] {
                let rendered = render_category(&cat, dialect);
                parse_category(class, &rendered).expect("a rendering parses back");
            }
        }
    }
});
