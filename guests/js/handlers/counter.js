// Counts the entities created per kind in the handler's key-value store, in JavaScript: the
// same rules as the Rust handler guests/handlers/counter.
//
// * onCreate: increments the count under `created/<kind>` and sets the new entity's
//   example.counter.serial to it. A store failure refuses the create.
// * onAction: an action whose term is `reset` (any scheme) deletes the count of the entity's
//   kind, so the next create gets serial 1. Other actions change nothing.

import { actionTerm, kv, log, other, set } from '../ocni.js';

const SERIAL = 'example.counter.serial';
const key = (kind) => `created/${kind}`;

export const handler = {
  validate(_entity, _op) {},
  onCreate(entity) {
    const serial = (kv.getNumber(key(entity.kind)) ?? 0) + 1;
    try {
      kv.setNumber(key(entity.kind), serial);
    } catch (e) {
      throw other(`cannot store the counter: ${e}`);
    }
    return [set(SERIAL, serial)];
  },
  onUpdate(_old, _new) {
    return [];
  },
  onDelete(_entity) {},
  onAction(entity, action, _params) {
    if (actionTerm(action) === 'reset') {
      kv.delete(key(entity.kind));
      log('info', 'counter reset', { kind: entity.kind });
    }
    return [];
  },
};

export const actions = {
  applicable(_entity, actions) {
    return actions;
  },
};

// No jobs: the SDK's job-runner (WIT 0.1.3).
export { jobRunner } from '../ocni.js';
