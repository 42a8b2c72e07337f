"""A small SDK for ocni handlers written in Python: plain values in and out of the WIT variants
(`value`, `change`, `refusal`), attribute lookup, action names, logging and kv helpers.

A handler module (see handlers/compute.py) defines two classes, `Handler` (validate, on_create,
on_update, on_delete, on_action) and `Actions` (applicable), usually by subclassing the defaults
below, which accept and change nothing. A refusal is *raised* with `refuse(...)` (a list of them
from `validate`); changes are returned as a list. componentize-py generates `wit_world` from
wit/handler.wit when it builds the component (build.py).
"""

import json
from typing import Any, Dict, List, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import kv as kv_store
from wit_world.imports import log as log_import
from wit_world.imports.types import (
    Attribute,
    Change_Remove,
    Change_Set,
    Entity,
    Operation,
    Refusal_Conflict,
    Refusal_InvalidAttribute,
    Refusal_Other,
    Value_Boolean,
    Value_Integer,
    Value_Json,
    Value_Number,
    Value_Text,
)

__all__ = [
    "Actions", "Attribute", "Entity", "Err", "Handler", "Operation", "Value_Boolean", "Value_Integer",
    "Value_Json", "Value_Number", "Value_Text", "action_scheme", "action_term", "attr", "conflict",
    "has_attr", "invalid", "kv", "log", "other", "plain", "refuse", "remove", "set", "wit",
]


def plain(value) -> Any:
    """The plain Python value of a WIT `value` (a JSON array or object is parsed)."""
    if isinstance(value, Value_Json):
        return json.loads(value.value)
    return value.value


def wit(v: Any):
    """A WIT `value` for a plain Python value: str, bool, int (`integer`), float (`number`);
    anything else travels as JSON text."""
    if isinstance(v, str):
        return Value_Text(v)
    if isinstance(v, bool):  # before int: bool is an int in Python
        return Value_Boolean(v)
    if isinstance(v, int):
        return Value_Integer(v)
    if isinstance(v, float):
        return Value_Number(v)
    return Value_Json(json.dumps(v))


def attr(entity: Entity, name: str):
    """The WIT value of attribute `name` of `entity`, or None."""
    for attribute in entity.attributes:
        if attribute.name == name:
            return attribute.value
    return None


def has_attr(entity: Entity, name: str) -> bool:
    """Whether `entity` has attribute `name`."""
    return attr(entity, name) is not None


def set(name: str, v: Any) -> Change_Set:  # noqa: A001 (the WIT name)
    """A change setting attribute `name` to the plain value `v`."""
    return Change_Set(Attribute(name, wit(v)))


def remove(name: str) -> Change_Remove:
    """A change removing attribute `name`."""
    return Change_Remove(name)


def invalid(name: str, message: str) -> Refusal_InvalidAttribute:
    """An invalid-attribute refusal (the client gets 400)."""
    return Refusal_InvalidAttribute((name, message))


def conflict(message: str) -> Refusal_Conflict:
    """A conflict refusal (the client gets 409)."""
    return Refusal_Conflict(message)


def other(message: str) -> Refusal_Other:
    """Any other refusal (the client gets 400)."""
    return Refusal_Other(message)


def refuse(refusal) -> Err:
    """The exception to raise to refuse: `raise refuse(conflict("..."))` from a hook,
    `raise refuse([invalid(...), ...])` from `validate`."""
    return Err(refusal)


def action_scheme(action: str) -> str:
    """`http://...action#start` -> `http://...action#`."""
    return action[: action.find("#") + 1]


def action_term(action: str) -> str:
    """`http://...action#start` -> `start`."""
    return action[action.find("#") + 1 :]


_LEVELS = {
    "debug": log_import.Level.DEBUG,
    "info": log_import.Level.INFO,
    "warn": log_import.Level.WARN,
    "error": log_import.Level.ERROR,
}


def log(level: str, message: str, fields: Optional[Dict[str, Any]] = None) -> None:
    """Writes a line to the handler's log: `level` is debug, info, warn or error; `fields` a
    dict whose values are written as text."""
    pairs = [(k, str(v)) for k, v in (fields or {}).items()]
    log_import.write(_LEVELS[level], message, pairs)


class _Kv:
    """The handler's key-value store, with values as bytes, text or whole numbers. `set`
    raises `Err(reason)` past the host's limits."""

    get = staticmethod(kv_store.get)
    set = staticmethod(kv_store.set)
    delete = staticmethod(kv_store.delete)
    keys = staticmethod(kv_store.keys)

    @staticmethod
    def get_text(key: str) -> Optional[str]:
        value = kv_store.get(key)
        return None if value is None else value.decode("utf-8")

    @staticmethod
    def set_text(key: str, text: str) -> None:
        kv_store.set(key, text.encode("utf-8"))

    @staticmethod
    def get_int(key: str) -> Optional[int]:
        text = _Kv.get_text(key)
        return None if text is None else int(text)

    @staticmethod
    def set_int(key: str, n: int) -> None:
        _Kv.set_text(key, str(n))


kv = _Kv


class Handler(exports.Handler):
    """The `handler` export with every function's default: accept, change nothing."""

    def validate(self, entity: Entity, op: Operation) -> None:
        return None

    def on_create(self, entity: Entity) -> List:
        return []

    def on_update(self, old: Entity, new: Entity) -> List:
        return []

    def on_delete(self, entity: Entity) -> None:
        return None

    def on_action(self, entity: Entity, action: str, params: List[Attribute]) -> List:
        return []


class Actions(exports.Actions):
    """The `actions` export with its default: every action applies."""

    def applicable(self, entity: Entity, actions: List[str]) -> List[str]:
        return actions


class JobRunner(exports.JobRunner):
    """The `job-runner` export (WIT 0.1.3) every handler module must have: componentize-py wants
    each export of the world. Its default runs no job (`run` fails) and changes nothing when one
    failed; a handler that submits jobs subclasses it."""

    def run(self, job) -> List:
        raise Err(f"this handler does not run jobs (job {job.name})")

    def failed(self, job, reason: str) -> List:
        return []
