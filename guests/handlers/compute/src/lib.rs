//! The lifecycle of the built-in OCCI compute kind
//! (`http://schemas.ogf.org/occi/infrastructure#compute`).
//!
//! * `validate`: `occi.compute.cores`, when present, is a whole number in 1..=64;
//!   `occi.compute.memory`, when present, is a number of GiB in 0.5..=1024; `occi.compute.state`,
//!   when present, is one of `active`, `inactive`, `suspended`, `error`. Every problem is an
//!   invalid-attribute refusal naming the attribute. Deletes are not checked.
//! * `on-create`: sets `occi.compute.state` to `inactive` when the entity has no state.
//! * `on-action`: the state machine below; a refused transition is a conflict (409). A missing
//!   state counts as `inactive`. Actions of other schemes are accepted and change nothing.
//! * `applicable`: the compute actions the table allows from the entity's state (a missing
//!   state counts as `inactive`, an unknown one allows none), and every action of another
//!   scheme: exactly those `on-action` would accept, so the server renders those only and
//!   refuses the others (409) before calling `on-action`.
//!
//! | action  | from                           | to          |
//! |---------|--------------------------------|-------------|
//! | start   | inactive, suspended, error     | active      |
//! | stop    | active, suspended, error       | inactive    |
//! | restart | active, error                  | active      |
//! | suspend | active                         | suspended   |
//! | save    | active, inactive, suspended    | (unchanged) |

use ocni_handler_sdk::{
    Attribute, Change, Entity, Handler, Operation, Refusal, Value, action_scheme, action_term, log,
};

/// The compute kind.
pub const COMPUTE: &str = "http://schemas.ogf.org/occi/infrastructure#compute";
/// The scheme of the compute actions.
pub const ACTIONS: &str = "http://schemas.ogf.org/occi/infrastructure/compute/action#";

const STATE: &str = "occi.compute.state";
const CORES: &str = "occi.compute.cores";
const MEMORY: &str = "occi.compute.memory";
const STATES: [&str; 4] = ["active", "inactive", "suspended", "error"];

const MAX_CORES: i64 = 64;
const MIN_MEMORY_GIB: f64 = 0.5;
const MAX_MEMORY_GIB: f64 = 1024.0;

struct Compute;

impl Handler for Compute {
    fn validate(entity: Entity, op: Operation) -> Result<(), Vec<Refusal>> {
        if op == Operation::Delete {
            return Ok(());
        }
        let refusals = check_attributes(&entity);
        if refusals.is_empty() { Ok(()) } else { Err(refusals) }
    }

    fn on_create(entity: Entity) -> Result<Vec<Change>, Refusal> {
        if entity.has_attr(STATE) { Ok(Vec::new()) } else { Ok(vec![Change::set(STATE, "inactive")]) }
    }

    fn on_action(entity: Entity, action: String, _params: Vec<Attribute>) -> Result<Vec<Change>, Refusal> {
        if action_scheme(&action) != ACTIONS {
            return Ok(Vec::new());
        }
        let from = entity.attr_str(STATE).unwrap_or("inactive");
        let term = action_term(&action);
        let to = next_state(from, term)?;
        log::info("compute action", &[("location", &entity.location), ("action", term), ("from", from), ("to", to)]);
        Ok(vec![Change::set(STATE, to)])
    }

    fn applicable(entity: Entity, actions: Vec<String>) -> Vec<String> {
        applicable_in(entity.attr_str(STATE).unwrap_or("inactive"), actions)
    }
}

ocni_handler_sdk::export_handler!(Compute);

/// The size and state checks of `validate`: one refusal per bad attribute.
pub fn check_attributes(entity: &Entity) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    if let Some(value) = entity.attr(CORES) {
        match value.as_i64() {
            None => refusals.push(Refusal::invalid(CORES, "must be a whole number")),
            Some(n) if n < 1 => refusals.push(Refusal::invalid(CORES, "must be at least 1")),
            Some(n) if n > MAX_CORES => refusals.push(Refusal::invalid(CORES, format!("must be at most {MAX_CORES}"))),
            Some(_) => {}
        }
    }
    if let Some(value) = entity.attr(MEMORY) {
        match value.as_f64() {
            None => refusals.push(Refusal::invalid(MEMORY, "must be a number of GiB")),
            Some(m) if m.is_nan() || m < MIN_MEMORY_GIB => {
                refusals.push(Refusal::invalid(MEMORY, format!("must be at least {MIN_MEMORY_GIB} GiB")))
            }
            Some(m) if m > MAX_MEMORY_GIB => {
                refusals.push(Refusal::invalid(MEMORY, format!("must be at most {MAX_MEMORY_GIB} GiB")))
            }
            Some(_) => {}
        }
    }
    if let Some(value) = entity.attr(STATE) {
        match value {
            Value::Text(s) if STATES.contains(&s.as_str()) => {}
            _ => refusals.push(Refusal::invalid(STATE, format!("must be one of {}", STATES.join(", ")))),
        }
    }
    refusals
}

/// Of `actions`, those that apply to a compute in state `from`: the compute actions
/// [`next_state`] allows, and every action of another scheme.
pub fn applicable_in(from: &str, mut actions: Vec<String>) -> Vec<String> {
    actions.retain(|a| action_scheme(a) != ACTIONS || next_state(from, action_term(a)).is_ok());
    actions
}

/// The state a compute in state `from` moves to under the action `term`, or why it cannot.
pub fn next_state(from: &str, term: &str) -> Result<&'static str, Refusal> {
    let from_known = STATES.iter().copied().find(|s| *s == from);
    let Some(from) = from_known else {
        return Err(Refusal::other(format!("the compute is in an unknown state {from:?}")));
    };
    match (term, from) {
        ("start", "active") => Err(Refusal::conflict("the compute is already active")),
        ("start", _) => Ok("active"),
        ("stop", "inactive") => Err(Refusal::conflict("the compute is already inactive")),
        ("stop", _) => Ok("inactive"),
        ("restart", "active" | "error") => Ok("active"),
        ("restart", _) => {
            Err(Refusal::conflict(format!("the compute is {from}: only an active compute restarts; use start")))
        }
        ("suspend", "active") => Ok("suspended"),
        ("suspend", "suspended") => Err(Refusal::conflict("the compute is already suspended")),
        ("suspend", _) => {
            Err(Refusal::conflict(format!("the compute is {from}: only an active compute can be suspended")))
        }
        ("save", "error") => Err(Refusal::conflict("the compute is in error: it cannot be saved")),
        ("save", _) => Ok(from),
        _ => Err(Refusal::other(format!("unknown compute action {term:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compute(attrs: Vec<Attribute>) -> Entity {
        Entity {
            location: "/compute/1".into(),
            id: "1".into(),
            kind: COMPUTE.into(),
            mixins: vec![],
            attributes: attrs,
        }
    }

    #[test]
    fn transitions() {
        assert_eq!(next_state("inactive", "start"), Ok("active"));
        assert_eq!(next_state("suspended", "start"), Ok("active"));
        assert!(matches!(next_state("active", "start"), Err(Refusal::Conflict(_))));
        assert_eq!(next_state("active", "stop"), Ok("inactive"));
        assert!(matches!(next_state("inactive", "stop"), Err(Refusal::Conflict(_))));
        assert_eq!(next_state("active", "restart"), Ok("active"));
        assert!(matches!(next_state("inactive", "restart"), Err(Refusal::Conflict(_))));
        assert_eq!(next_state("active", "suspend"), Ok("suspended"));
        assert!(matches!(next_state("inactive", "suspend"), Err(Refusal::Conflict(_))));
        assert_eq!(next_state("suspended", "save"), Ok("suspended"));
        assert_eq!(next_state("active", "save"), Ok("active"));
        assert!(matches!(next_state("active", "explode"), Err(Refusal::Other(_))));
        assert!(matches!(next_state("weird", "start"), Err(Refusal::Other(_))));
    }

    #[test]
    fn applicable_follows_the_transitions() {
        let all: Vec<String> =
            ["start", "stop", "restart", "suspend", "save"].iter().map(|t| format!("{ACTIONS}{t}")).collect();
        let other = "http://example.com/occi/x/action#go".to_string();
        let asked = || all.iter().cloned().chain([other.clone()]).collect::<Vec<_>>();
        let terms = |from: &str| -> Vec<String> {
            applicable_in(from, asked()).iter().map(|a| action_term(a).to_string()).collect()
        };
        assert_eq!(terms("inactive"), ["start", "save", "go"]);
        assert_eq!(terms("active"), ["stop", "restart", "suspend", "save", "go"]);
        assert_eq!(terms("suspended"), ["start", "stop", "save", "go"]);
        assert_eq!(terms("error"), ["start", "stop", "restart", "go"]);
        assert_eq!(terms("weird"), ["go"]);
        // Consistent with on-action: what applies is what `next_state` accepts.
        for from in STATES {
            for a in &all {
                let applies = applicable_in(from, vec![a.clone()]).len() == 1;
                assert_eq!(applies, next_state(from, action_term(a)).is_ok(), "{a} from {from}");
            }
        }
    }

    #[test]
    fn sizes() {
        assert!(check_attributes(&compute(vec![Attribute::new(CORES, 64), Attribute::new(MEMORY, 0.5)])).is_empty());
        assert!(check_attributes(&compute(vec![Attribute::new(MEMORY, 1024)])).is_empty());
        let r = check_attributes(&compute(vec![
            Attribute::new(CORES, 65),
            Attribute::new(MEMORY, 0.25),
            Attribute::new(STATE, "on"),
        ]));
        assert_eq!(
            r,
            vec![
                Refusal::invalid(CORES, "must be at most 64"),
                Refusal::invalid(MEMORY, "must be at least 0.5 GiB"),
                Refusal::invalid(STATE, "must be one of active, inactive, suspended, error"),
            ]
        );
        assert_eq!(
            check_attributes(&compute(vec![Attribute::new(CORES, 1.5)])),
            vec![Refusal::invalid(CORES, "must be a whole number")]
        );
        assert_eq!(
            check_attributes(&compute(vec![Attribute::new(CORES, 0)])),
            vec![Refusal::invalid(CORES, "must be at least 1")]
        );
        assert_eq!(
            check_attributes(&compute(vec![Attribute::new(MEMORY, 2048.0)])),
            vec![Refusal::invalid(MEMORY, "must be at most 1024 GiB")]
        );
    }
}
