//! Test guest: a handler built against the released 0.1.0 WIT (`wit/released/0.1.0`), with
//! wit-bindgen directly instead of the SDK (which follows the current WIT), as a component
//! uploaded before 0.1.1 would be. It has no `actions` export, so the host must run it as
//! before and take every action of its kind to apply.
//!
//! * `validate`, `on-create`, `on-update`, `on-delete`: accept, change nothing.
//! * `on-action`: accepts any action and sets `occi.core.summary` to `last action: <term>`,
//!   so a test sees that the handler, not a state machine, ran it.

wit_bindgen::generate!({
    world: "handler-world",
    path: "../../../wit/released/0.1.0",
});

use exports::ocni::handler::handler::Guest;
use ocni::handler::types::{Attribute, Change, Entity, Operation, Refusal, Value};

/// The attribute `on-action` writes.
pub const SUMMARY: &str = "occi.core.summary";

struct OldWorld;

impl Guest for OldWorld {
    fn validate(_entity: Entity, _op: Operation) -> Result<(), Vec<Refusal>> {
        Ok(())
    }

    fn on_create(_entity: Entity) -> Result<Vec<Change>, Refusal> {
        Ok(Vec::new())
    }

    fn on_update(_old: Entity, _new: Entity) -> Result<Vec<Change>, Refusal> {
        Ok(Vec::new())
    }

    fn on_delete(_entity: Entity) -> Result<(), Refusal> {
        Ok(())
    }

    fn on_action(_entity: Entity, action: String, _params: Vec<Attribute>) -> Result<Vec<Change>, Refusal> {
        let term = action.rsplit_once('#').map_or(action.as_str(), |(_, term)| term);
        Ok(vec![Change::Set(Attribute { name: SUMMARY.into(), value: Value::Text(format!("last action: {term}")) })])
    }
}

export!(OldWorld);
