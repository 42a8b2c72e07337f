"""Counts the entities created per kind in the handler's key-value store, in Python: the same
rules as the Rust handler guests/handlers/counter.

* on_create: increments the count under `created/<kind>` and sets the new entity's
  example.counter.serial to it. A store failure refuses the create.
* on_action: an action whose term is `reset` (any scheme) deletes the count of the entity's
  kind, so the next create gets serial 1. Other actions change nothing.
"""

import ocni
from ocni import action_term, kv, log, other, refuse, set

SERIAL = "example.counter.serial"


def key(kind):
    return f"created/{kind}"


class Handler(ocni.Handler):
    def on_create(self, entity):
        serial = (kv.get_int(key(entity.kind)) or 0) + 1
        try:
            kv.set_int(key(entity.kind), serial)
        except ocni.Err as e:
            raise refuse(other(f"cannot store the counter: {e.value}"))
        return [set(SERIAL, serial)]

    def on_action(self, entity, action, params):
        if action_term(action) == "reset":
            kv.delete(key(entity.kind))
            log("info", "counter reset", {"kind": entity.kind})
        return []


class Actions(ocni.Actions):
    pass


class JobRunner(ocni.JobRunner):
    """Runs no jobs: the default of the SDK."""
