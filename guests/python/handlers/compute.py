"""The lifecycle of the built-in OCCI compute kind, in Python: the same rules as the Rust
handler guests/handlers/compute (see its documentation for the state table).

* validate: occi.compute.cores, when present, is a whole number in 1..64; occi.compute.memory a
  number of GiB in 0.5..1024; occi.compute.state one of the four states. Deletes are not checked.
* on_create: sets occi.compute.state to "inactive" when the entity has none.
* on_action: the state machine; a refused transition is a conflict (409). Actions of other
  schemes are accepted and change nothing.
* applicable: the compute actions the table allows from the entity's state, and every action
  of another scheme.
"""

import ocni
from ocni import (
    Value_Integer, Value_Number, Value_Text, action_scheme, action_term, attr, conflict, has_attr,
    invalid, log, other, plain, refuse, set,
)

ACTIONS = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
STATE = "occi.compute.state"
CORES = "occi.compute.cores"
MEMORY = "occi.compute.memory"
STATES = ["active", "inactive", "suspended", "error"]
MAX_CORES = 64
MIN_MEMORY_GIB = 0.5
MAX_MEMORY_GIB = 1024


def check_attributes(entity):
    refusals = []
    cores = attr(entity, CORES)
    if cores is not None:
        if not isinstance(cores, Value_Integer):
            refusals.append(invalid(CORES, "must be a whole number"))
        elif cores.value < 1:
            refusals.append(invalid(CORES, "must be at least 1"))
        elif cores.value > MAX_CORES:
            refusals.append(invalid(CORES, f"must be at most {MAX_CORES}"))
    memory = attr(entity, MEMORY)
    if memory is not None:
        if not isinstance(memory, (Value_Number, Value_Integer)):
            refusals.append(invalid(MEMORY, "must be a number of GiB"))
        elif memory.value != memory.value or memory.value < MIN_MEMORY_GIB:  # NaN too
            refusals.append(invalid(MEMORY, f"must be at least {MIN_MEMORY_GIB} GiB"))
        elif memory.value > MAX_MEMORY_GIB:
            refusals.append(invalid(MEMORY, f"must be at most {MAX_MEMORY_GIB} GiB"))
    state = attr(entity, STATE)
    if state is not None and not (isinstance(state, Value_Text) and state.value in STATES):
        refusals.append(invalid(STATE, f"must be one of {', '.join(STATES)}"))
    return refusals


def next_state(state, term):
    """The state a compute in `state` moves to under action `term`; raises the refusal."""
    if state not in STATES:
        raise refuse(other(f"the compute is in an unknown state {state!r}"))
    if term == "start":
        if state == "active":
            raise refuse(conflict("the compute is already active"))
        return "active"
    if term == "stop":
        if state == "inactive":
            raise refuse(conflict("the compute is already inactive"))
        return "inactive"
    if term == "restart":
        if state in ("active", "error"):
            return "active"
        raise refuse(conflict(f"the compute is {state}: only an active compute restarts; use start"))
    if term == "suspend":
        if state == "active":
            return "suspended"
        if state == "suspended":
            raise refuse(conflict("the compute is already suspended"))
        raise refuse(conflict(f"the compute is {state}: only an active compute can be suspended"))
    if term == "save":
        if state == "error":
            raise refuse(conflict("the compute is in error: it cannot be saved"))
        return state
    raise refuse(other(f"unknown compute action {term!r}"))


def state_of(entity):
    state = attr(entity, STATE)
    return "inactive" if state is None else str(plain(state))


class Handler(ocni.Handler):
    def validate(self, entity, op):
        if op == ocni.Operation.DELETE:
            return
        refusals = check_attributes(entity)
        if refusals:
            raise refuse(refusals)

    def on_create(self, entity):
        return [] if has_attr(entity, STATE) else [set(STATE, "inactive")]

    def on_action(self, entity, action, params):
        if action_scheme(action) != ACTIONS:
            return []
        state = state_of(entity)
        term = action_term(action)
        to = next_state(state, term)
        log("info", "compute action", {"location": entity.location, "action": term, "from": state, "to": to})
        return [set(STATE, to)]


class Actions(ocni.Actions):
    def applicable(self, entity, actions):
        state = state_of(entity)
        result = []
        for action in actions:
            if action_scheme(action) != ACTIONS:
                result.append(action)
                continue
            try:
                next_state(state, action_term(action))
                result.append(action)
            except ocni.Err:
                pass
        return result


class JobRunner(ocni.JobRunner):
    """Runs no jobs: the default of the SDK."""
