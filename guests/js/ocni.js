// A small SDK for ocni handlers written in JavaScript: plain values in and out of the WIT
// variants (`value`, `change`, `refusal`), attribute lookup, action names and kv helpers.
// The import names carry the WIT package version (wit/handler.wit): a new version changes them
// here only. Handlers import it (`import { ... } from "./ocni.js"`); build.mjs bundles it into the component.

import * as kvStore from 'ocni:handler/kv@0.1.3';
import { write } from 'ocni:handler/log@0.1.3';
import { submit } from 'ocni:handler/jobs@0.1.3';

/**
 * Submits a job (WIT 0.1.3) for the entity of this create or action call: returns its id;
 * throws the host's reason when it may not. The module's `jobRunner.run(job)` runs it later.
 */
export function submitJob(name, payload) {
  return submit(name, payload);
}

/** The plain JavaScript value of a WIT `value` (a JSON array or object is parsed). */
export function plain(value) {
  switch (value.tag) {
    case 'integer':
      return Number(value.val);
    case 'json':
      return JSON.parse(value.val);
    default:
      return value.val;
  }
}

/** A WIT `value` for a plain JavaScript value. Whole numbers become `integer`. */
export function wit(v) {
  if (typeof v === 'string') return { tag: 'text', val: v };
  if (typeof v === 'boolean') return { tag: 'boolean', val: v };
  if (typeof v === 'bigint') return { tag: 'integer', val: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { tag: 'integer', val: BigInt(v) } : { tag: 'number', val: v };
  return { tag: 'json', val: JSON.stringify(v) };
}

/** The WIT value of attribute `name` of `entity`, or undefined. */
export function attr(entity, name) {
  const found = entity.attributes.find((a) => a.name === name);
  return found ? found.value : undefined;
}

/** Whether `entity` has attribute `name`. */
export function hasAttr(entity, name) {
  return attr(entity, name) !== undefined;
}

/** A change setting attribute `name` to the plain value `v`. */
export const set = (name, v) => ({ tag: 'set', val: { name, value: wit(v) } });
/** A change removing attribute `name`. */
export const remove = (name) => ({ tag: 'remove', val: name });

/** Refusals: throw one from a hook (or a list of them from `validate`). */
export const invalid = (name, message) => ({ tag: 'invalid-attribute', val: [name, message] });
export const conflict = (message) => ({ tag: 'conflict', val: message });
export const other = (message) => ({ tag: 'other', val: message });

/** `http://...action#start` -> `http://...action#`. */
export const actionScheme = (action) => action.slice(0, action.indexOf('#') + 1);
/** `http://...action#start` -> `start`. */
export const actionTerm = (action) => action.slice(action.indexOf('#') + 1);

/** Writes a line to the handler's log; `fields` is an object of strings. */
export function log(level, message, fields = {}) {
  write(level, message, Object.entries(fields).map(([k, v]) => [k, String(v)]));
}

/** The handler's key-value store, with values as text or whole numbers. */
export const kv = {
  getText(key) {
    const bytes = kvStore.get(key);
    return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
  },
  setText(key, text) {
    kvStore.set(key, new TextEncoder().encode(text));
  },
  getNumber(key) {
    const text = kv.getText(key);
    return text === undefined ? undefined : Number(text);
  },
  setNumber(key, n) {
    kv.setText(key, String(n));
  },
  delete: (key) => kvStore.delete(key),
  keys: (prefix) => kvStore.keys(prefix),
};

/**
 * The `job-runner` export every handler module must have since WIT 0.1.3 (componentize-js
 * wants each export of the world). Re-export it (`export { jobRunner } from '../ocni.js'`)
 * when the handler submits no jobs: `run` fails and `failed` changes nothing. A handler that
 * submits jobs (`submitJob`) exports its own `{ run(job) { return changes }, failed(job, reason) }`.
 */
export const jobRunner = {
  run(job) {
    throw `this handler does not run jobs (job ${job.name})`;
  },
  failed(_job, _reason) {
    return [];
  },
};
