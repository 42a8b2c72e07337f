// The lifecycle of the built-in OCCI compute kind, in JavaScript: the same rules as the Rust
// handler guests/handlers/compute (see its documentation for the state table).
//
// * validate: occi.compute.cores, when present, is a whole number in 1..64;
//   occi.compute.memory a number of GiB in 0.5..1024; occi.compute.state one of the four
//   states. Deletes are not checked.
// * onCreate: sets occi.compute.state to "inactive" when the entity has none.
// * onAction: the state machine; a refused transition is a conflict (409). Actions of other
//   schemes are accepted and change nothing.
// * applicable: the compute actions the table allows from the entity's state, and every
//   action of another scheme.

import {
  actionScheme, actionTerm, attr, conflict, hasAttr, invalid, log, other, plain, set,
} from '../ocni.js';

const ACTIONS = 'http://schemas.ogf.org/occi/infrastructure/compute/action#';
const STATE = 'occi.compute.state';
const CORES = 'occi.compute.cores';
const MEMORY = 'occi.compute.memory';
const STATES = ['active', 'inactive', 'suspended', 'error'];
const MAX_CORES = 64;
const MIN_MEMORY_GIB = 0.5;
const MAX_MEMORY_GIB = 1024;

function checkAttributes(entity) {
  const refusals = [];
  const cores = attr(entity, CORES);
  if (cores !== undefined) {
    if (cores.tag !== 'integer') refusals.push(invalid(CORES, 'must be a whole number'));
    else if (cores.val < 1n) refusals.push(invalid(CORES, 'must be at least 1'));
    else if (cores.val > BigInt(MAX_CORES)) refusals.push(invalid(CORES, `must be at most ${MAX_CORES}`));
  }
  const memory = attr(entity, MEMORY);
  if (memory !== undefined) {
    const m = memory.tag === 'number' || memory.tag === 'integer' ? Number(memory.val) : NaN;
    if (memory.tag !== 'number' && memory.tag !== 'integer') refusals.push(invalid(MEMORY, 'must be a number of GiB'));
    else if (Number.isNaN(m) || m < MIN_MEMORY_GIB) refusals.push(invalid(MEMORY, `must be at least ${MIN_MEMORY_GIB} GiB`));
    else if (m > MAX_MEMORY_GIB) refusals.push(invalid(MEMORY, `must be at most ${MAX_MEMORY_GIB} GiB`));
  }
  const state = attr(entity, STATE);
  if (state !== undefined && !(state.tag === 'text' && STATES.includes(state.val))) {
    refusals.push(invalid(STATE, `must be one of ${STATES.join(', ')}`));
  }
  return refusals;
}

/** The state a compute in state `from` moves to under action `term`; throws the refusal. */
function nextState(from, term) {
  if (!STATES.includes(from)) throw other(`the compute is in an unknown state ${JSON.stringify(from)}`);
  switch (term) {
    case 'start':
      if (from === 'active') throw conflict('the compute is already active');
      return 'active';
    case 'stop':
      if (from === 'inactive') throw conflict('the compute is already inactive');
      return 'inactive';
    case 'restart':
      if (from === 'active' || from === 'error') return 'active';
      throw conflict(`the compute is ${from}: only an active compute restarts; use start`);
    case 'suspend':
      if (from === 'active') return 'suspended';
      if (from === 'suspended') throw conflict('the compute is already suspended');
      throw conflict(`the compute is ${from}: only an active compute can be suspended`);
    case 'save':
      if (from === 'error') throw conflict('the compute is in error: it cannot be saved');
      return from;
    default:
      throw other(`unknown compute action ${JSON.stringify(term)}`);
  }
}

const stateOf = (entity) => {
  const state = attr(entity, STATE);
  return state === undefined ? 'inactive' : String(plain(state));
};

export const handler = {
  validate(entity, op) {
    if (op === 'delete') return;
    const refusals = checkAttributes(entity);
    if (refusals.length > 0) throw refusals;
  },
  onCreate(entity) {
    return hasAttr(entity, STATE) ? [] : [set(STATE, 'inactive')];
  },
  onUpdate(_old, _new) {
    return [];
  },
  onDelete(_entity) {},
  onAction(entity, action, _params) {
    if (actionScheme(action) !== ACTIONS) return [];
    const from = stateOf(entity);
    const term = actionTerm(action);
    const to = nextState(from, term);
    log('info', 'compute action', { location: entity.location, action: term, from, to });
    return [set(STATE, to)];
  },
};

export const actions = {
  applicable(entity, actions) {
    const from = stateOf(entity);
    return actions.filter((a) => {
      if (actionScheme(a) !== ACTIONS) return true;
      try {
        nextState(from, actionTerm(a));
        return true;
      } catch {
        return false;
      }
    });
  },
};

// No jobs: the SDK's job-runner (WIT 0.1.3).
export { jobRunner } from '../ocni.js';
