//! The OCCI model of ocni: categories (kinds, mixins, actions) with attribute definitions,
//! entities (resources and links), validation, filtering and the JSON renderings. No I/O.

pub mod attribute;
pub mod catalog;
pub mod category;
pub mod entity;
pub mod error;
pub mod filter;
pub mod provider;
pub mod render;
pub mod text;

/// The value checks moved to [`attribute`]; this path stays for code written against it.
pub mod validate {
    pub use crate::attribute::check_value;
}

pub use attribute::{AttrType, AttributeDef, Pattern};
pub use catalog::{Applicable, AttributeSet, Catalog, parse_category_file};
pub use category::{Category, Class, parse_category, parse_category_ref};
pub use entity::{
    Entity, EntityInput, check_no_control, has_control, parse_entity_collection, parse_entity_input, parse_locations,
};
pub use error::{ErrorKind, ModelError, Result};
pub use render::Dialect;
