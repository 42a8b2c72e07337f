//! Counts the entities created per kind, in the handler's key-value store.
//!
//! * `on-create`: increments the count under the key `created/<kind>` (decimal text) and sets the
//!   attribute `example.counter.serial` of the new entity to the new count (an integer; the kind
//!   must define that attribute). A store failure refuses the create.
//! * `on-action`: an action whose term is `reset` (any scheme) deletes the count of the entity's
//!   kind, so the next create gets serial 1. Other actions change nothing.
//!
//! Because a kv write commits with its request, a create that fails later does not use up a
//! serial.

use ocni_handler_sdk::{Attribute, Change, Entity, Handler, Refusal, action_term, kv, log};

/// The attribute the serial goes into.
pub const SERIAL: &str = "example.counter.serial";

/// The key holding the count for a kind.
pub fn key(kind: &str) -> String {
    format!("created/{kind}")
}

struct Counter;

impl Handler for Counter {
    fn on_create(entity: Entity) -> Result<Vec<Change>, Refusal> {
        let key = key(&entity.kind);
        let serial = kv::get_u64(&key).unwrap_or(0).saturating_add(1);
        kv::set_u64(&key, serial).map_err(|e| Refusal::other(format!("cannot store the counter: {e}")))?;
        let serial = i64::try_from(serial).unwrap_or(i64::MAX);
        Ok(vec![Change::set(SERIAL, serial)])
    }

    fn on_action(entity: Entity, action: String, _params: Vec<Attribute>) -> Result<Vec<Change>, Refusal> {
        if action_term(&action) == "reset" {
            kv::delete(&key(&entity.kind));
            log::info("counter reset", &[("kind", &entity.kind)]);
        }
        Ok(Vec::new())
    }
}

ocni_handler_sdk::export_handler!(Counter);
