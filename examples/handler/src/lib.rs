//! A handler for the kind `http://example.com/occi/shop#order` (see `order-kind.json`).
//!
//! * `validate`: `shop.order.quantity` must be a whole number in 1..=100, and a new order must
//!   start `open`.
//! * `on-create`: gives the order the next number of the tenant's sequence, kept in the
//!   handler's key-value store, as `shop.order.number`.
//! * `on-action`: `ship` moves an open order to `shipped`, `cancel` moves an open order to
//!   `cancelled`; on an order that is not open both are conflicts (the client gets 409).
//! * `applicable`: `ship` and `cancel` apply to an open order only. The server renders only
//!   those and refuses the others with 409 before `on-action` is called.
//!
//! Each call runs in a fresh WebAssembly instance: nothing survives in statics from one call to
//! the next, so the sequence lives in `kv`.

use ocni_handler_sdk::{Attribute, Change, Entity, Handler, Operation, Refusal, action_scheme, action_term, kv, log};

// The attributes of the kind, by their full dotted names.
const QUANTITY: &str = "shop.order.quantity";
const STATE: &str = "shop.order.state";
const NUMBER: &str = "shop.order.number";

/// The scheme of the two order actions (`…#ship`, `…#cancel`).
const ACTIONS: &str = "http://example.com/occi/shop/order/action#";

/// The kv key holding the last order number given out. The store is private to this handler
/// within one tenant, so every tenant gets its own sequence.
const LAST_NUMBER: &str = "last-order-number";

/// The handler has no data: the SDK calls its associated functions.
struct Orders;

impl Handler for Orders {
    // Called before every write. Return every problem found: each becomes one entry of the
    // error's `details`. An invalid-attribute refusal gives the client 400.
    fn validate(entity: Entity, op: Operation) -> Result<(), Vec<Refusal>> {
        if op == Operation::Delete {
            return Ok(()); // deleting an order is always fine
        }
        let mut refusals = Vec::new();
        // The server has already checked the kind's definition (the quantity is present and an
        // integer); the business rule on top of it is ours.
        match entity.attr_i64(QUANTITY) {
            Some(1..=100) => {}
            Some(q) => refusals.push(Refusal::invalid(QUANTITY, format!("must be between 1 and 100, not {q}"))),
            None => refusals.push(Refusal::invalid(QUANTITY, "must be a whole number between 1 and 100")),
        }
        // The state is immutable, so only a create could set it: orders start open.
        if op == Operation::Create && entity.attr_str(STATE) != Some("open") {
            refusals.push(Refusal::invalid(STATE, "a new order is open"));
        }
        if refusals.is_empty() { Ok(()) } else { Err(refusals) }
    }

    // Called once the create is valid. The changes returned are applied to the new entity,
    // which the server then checks against the kind again.
    fn on_create(entity: Entity) -> Result<Vec<Change>, Refusal> {
        let number = kv::get_u64(LAST_NUMBER).unwrap_or(0) + 1;
        // The write commits with the request: a create refused later uses up no number.
        kv::set_u64(LAST_NUMBER, number).map_err(|e| Refusal::other(format!("cannot store the sequence: {e}")))?;
        log::info("order created", &[("location", &entity.location), ("number", &number.to_string())]);
        // `shop.order.number` is an integer attribute: pass an i64 so it travels as one.
        Ok(vec![Change::set(NUMBER, number as i64)])
    }

    // Called for `POST /orders/<id>?action=<term>`. Because this handler is bound to the kind,
    // the server leaves the state machine to it: the change below is the whole effect.
    fn on_action(entity: Entity, action: String, _params: Vec<Attribute>) -> Result<Vec<Change>, Refusal> {
        if action_scheme(&action) != ACTIONS {
            return Ok(Vec::new()); // someone else's action (a mixin's, say): nothing to do
        }
        let state = entity.attr_str(STATE).unwrap_or("open");
        let next = match (action_term(&action), state) {
            ("ship", "open") => "shipped",
            ("cancel", "open") => "cancelled",
            (term @ ("ship" | "cancel"), _) => {
                // A conflict refusal gives the client 409.
                return Err(Refusal::conflict(format!("cannot {term} an order that is {state}: only open orders can")));
            }
            (term, _) => return Err(Refusal::other(format!("unknown order action {term:?}"))),
        };
        Ok(vec![Change::set(STATE, next)])
    }

    // Asked after every create, update and action of an order, with the state the hook left:
    // which of the kind's actions (`scheme#term`) apply now. The server stores the answer, so
    // a GET of the order lists only these, and refuses the others (409, naming the state)
    // without calling `on_action`. Keep it in step with `on_action`.
    fn applicable(entity: Entity, mut actions: Vec<String>) -> Vec<String> {
        let open = entity.attr_str(STATE).unwrap_or("open") == "open";
        actions.retain(|a| action_scheme(a) != ACTIONS || open);
        actions
    }

    // on_update and on_delete keep the SDK's defaults: accept, change nothing.
}

// Makes `Orders` the component's export (the `handler` interface of `handler-world`).
ocni_handler_sdk::export_handler!(Orders);
