// The tutorial's order handler in JavaScript: the same rules as src/lib.rs, line for line (see
// README.md, "The same handler in JavaScript and Python"). Build it with ComponentizeJS:
//
//     npm ci --prefix guests/js
//     node guests/js/build.mjs examples/handler/orders.js orders.wasm
//
// and upload orders.wasm as the Rust one (`WASM=orders.wasm examples/handler/walkthrough.sh`).

import { actionScheme, actionTerm, attr, conflict, invalid, kv, log, other, plain, set } from '../../guests/js/ocni.js';

// The attributes of the kind, by their full dotted names.
const QUANTITY = 'shop.order.quantity';
const STATE = 'shop.order.state';
const NUMBER = 'shop.order.number';
// The scheme of the two order actions (…#ship, …#cancel).
const ACTIONS = 'http://example.com/occi/shop/order/action#';
// The kv key holding the last order number given out (private to this handler and tenant).
const LAST_NUMBER = 'last-order-number';

/** The plain value of attribute `name`, or undefined. */
const value = (entity, name) => {
  const v = attr(entity, name);
  return v === undefined ? undefined : plain(v);
};

export const handler = {
  // Called before every write: throw the list of every problem found (400).
  validate(entity, op) {
    if (op === 'delete') return;
    const refusals = [];
    const quantity = attr(entity, QUANTITY);
    if (quantity === undefined || quantity.tag !== 'integer') {
      refusals.push(invalid(QUANTITY, 'must be a whole number between 1 and 100'));
    } else if (quantity.val < 1n || quantity.val > 100n) {
      refusals.push(invalid(QUANTITY, `must be between 1 and 100, not ${quantity.val}`));
    }
    // The state is immutable, so only a create could set it: orders start open.
    if (op === 'create' && value(entity, STATE) !== 'open') {
      refusals.push(invalid(STATE, 'a new order is open'));
    }
    if (refusals.length > 0) throw refusals;
  },

  // Gives the order the next number of the tenant's sequence.
  onCreate(entity) {
    const number = (kv.getNumber(LAST_NUMBER) ?? 0) + 1;
    try {
      kv.setNumber(LAST_NUMBER, number);
    } catch (e) {
      throw other(`cannot store the sequence: ${e}`);
    }
    log('info', 'order created', { location: entity.location, number });
    return [set(NUMBER, number)];
  },

  onUpdate(_old, _new) {
    return [];
  },

  onDelete(_entity) {},

  // ship / cancel: open -> shipped / cancelled; anything else on an order that is not open is
  // a conflict (409).
  onAction(entity, action, _params) {
    if (actionScheme(action) !== ACTIONS) return [];
    const state = value(entity, STATE) ?? 'open';
    const term = actionTerm(action);
    if (term !== 'ship' && term !== 'cancel') throw other(`unknown order action ${JSON.stringify(term)}`);
    if (state !== 'open') throw conflict(`cannot ${term} an order that is ${state}: only open orders can`);
    return [set(STATE, term === 'ship' ? 'shipped' : 'cancelled')];
  },
};

export const actions = {
  // ship and cancel apply to an open order only.
  applicable(entity, actions) {
    const open = (value(entity, STATE) ?? 'open') === 'open';
    return actions.filter((a) => actionScheme(a) !== ACTIONS || open);
  },
};

export { jobRunner } from '../../guests/js/ocni.js';
