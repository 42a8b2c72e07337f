//! Hostile guest: returns more than the host should lift. The host must bound what it takes from
//! the guest (memory limit, hostcall fuel, a cap on list lengths after lifting) and report an
//! error rather than run out of memory itself.
//!
//! * `validate` refuses with [`REFUSALS`] refusals (`other`, empty reasons). That takes about
//!   88 MB of guest memory (48 MB for the Rust vector, 40 MB for the lowered list): under a
//!   smaller memory limit the guest aborts on allocation failure before the host lifts anything.
//! * `on-update` returns [`CHANGES`] changes (`remove` of an empty name), about 12 MB in all, so
//!   it fits in a 32 MiB limit and the host must cap the list it lifts.
//! * `on-create` returns one change setting `example.big` to a text of [`HUGE_TEXT`] bytes.
//! * `on-delete` refuses with an `other` refusal whose reason is [`HUGE_TEXT`] bytes.

use ocni_handler_sdk::{Change, Entity, Handler, Operation, Refusal};

/// How many refusals `validate` returns.
pub const REFUSALS: usize = 2_000_000;
/// How many changes `on-update` returns.
pub const CHANGES: usize = 200_000;
/// The size of the strings `on-create` and `on-delete` return: 16 MiB.
pub const HUGE_TEXT: usize = 16 << 20;

struct BigReturn;

impl Handler for BigReturn {
    fn validate(_entity: Entity, _op: Operation) -> Result<(), Vec<Refusal>> {
        Err((0..REFUSALS).map(|_| Refusal::Other(String::new())).collect())
    }

    fn on_update(_old: Entity, _new: Entity) -> Result<Vec<Change>, Refusal> {
        Ok(vec![Change::Remove(String::new()); CHANGES])
    }

    fn on_create(_entity: Entity) -> Result<Vec<Change>, Refusal> {
        Ok(vec![Change::set("example.big", "x".repeat(HUGE_TEXT))])
    }

    fn on_delete(_entity: Entity) -> Result<(), Refusal> {
        Err(Refusal::other("x".repeat(HUGE_TEXT)))
    }
}

ocni_handler_sdk::export_handler!(BigReturn);
