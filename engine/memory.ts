// Deterministic release of backend memory. JavaScript has no destructors and GPU buffers are not
// collected, so intermediates are released by scopes: `tidy(fn)` disposes every tensor created while fn
// ran except the ones reachable from its result (and the ones passed to `keep`).

import type { Tensor } from './tensor.ts';

const scopes: Set<Tensor>[] = [];

/**
 * Every tensor ever constructed, for recognising tensors inside results. Not the class's name: bundlers'
 * minifiers rename classes (the browser inspector's build did, and tidy then freed the tensors its callers
 * returned), and not `instanceof`: tensor.ts imports this module.
 */
const tensors = new WeakSet<object>();

const isTensor = (value: object): value is Tensor => tensors.has(value);

/** Called by the Tensor constructor: the innermost open scope owns the new tensor. */
export function track(t: Tensor): void {
  tensors.add(t);
  const scope = scopes[scopes.length - 1];
  if (scope) scope.add(t);
}

/** Removes tensors from every open scope so that no tidy disposes them. */
export function keep<T>(value: T): T {
  collectTensors(value, (t) => {
    for (const s of scopes) s.delete(t);
  });
  return value;
}

function collectTensors(value: unknown, visit: (t: Tensor) => void, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isTensor(value)) {
    const t = value;
    visit(t);
    if (t.primal) collectTensors(t.primal, visit, seen);
    if (t.tangent) collectTensors(t.tangent, visit, seen);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, visit, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collectTensors(v, visit, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, visit, seen);
  }
}

function closeScope(scope: Set<Tensor>, result: unknown): void {
  const kept = new Set<Tensor>();
  collectTensors(result, (t) => kept.add(t));
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
}

/** Runs fn and disposes the tensors it created, except those in its (possibly nested) result. */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    closeScope(scope, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    scopes.pop();
    closeScope(scope, undefined);
    throw new Error('tidy(fn): fn must be synchronous; read values after tidy returns');
  }
  scopes.pop();
  closeScope(scope, result);
  return result;
}

/** Disposes every tensor found in value (a tensor, an array, a Map or a plain object of them). */
export function dispose(value: unknown): void {
  collectTensors(value, (t) => t.dispose());
}

/**
 * The asynchronous form of tidy, for pipelines that await readbacks. Tensors created by anything running
 * concurrently would be attributed to this scope too: run one such computation at a time.
 */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    scopes.splice(scopes.lastIndexOf(scope), 1);
    closeScope(scope, undefined);
    throw e;
  }
  scopes.splice(scopes.lastIndexOf(scope), 1);
  closeScope(scope, result);
  return result;
}
