/// <reference types="@webgpu/types" />
/**
 * Turning WebGPU's asynchronous error scopes into thrown errors.
 */

/**
 * A tensor the device cannot hold: larger than maxBufferSize (the largest buffer the device creates), or
 * refused by the device for lack of memory. The message is one line naming the tensor, its size and the
 * limit; the command line reports it as bad input (exit 1), since a smaller batch or input is the remedy.
 */
export class DeviceLimitError extends Error {
  override name = 'DeviceLimitError';
}

export type GpuErrorKind = 'validation' | 'out-of-memory';

/** A WebGPU validation / out-of-memory error caught by withErrorScopes. */
export class GpuError extends Error {
  override name = 'GpuError';
  /** What was being done, e.g. a kernel name and its shapes. */
  readonly label: string;
  readonly kind: GpuErrorKind;
  /** The implementation's full (possibly multi-line) message. */
  readonly detail: string;

  constructor(label: string, kind: GpuErrorKind, detail: string) {
    super(`GPU ${kind} error in ${label}: ${oneLine(detail)}`);
    this.label = label;
    this.kind = kind;
    this.detail = detail;
  }
}

function oneLine(text: string): string {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean)
    .join(' | ');
}

/**
 * Runs `fn` inside 'validation' and 'out-of-memory' error scopes and throws a
 * GpuError naming `label` if either caught an error. `fn` may be async: the
 * scopes are popped only after its promise settles (keep other GPU work from
 * interleaving meanwhile, or its errors land in these scopes too). If `fn`
 * throws, the scopes are still popped and fn's own error is rethrown.
 */
export async function withErrorScopes<T>(
  device: GPUDevice,
  label: string,
  fn: () => T | Promise<T>,
): Promise<T> {
  device.pushErrorScope('validation');
  device.pushErrorScope('out-of-memory');
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    // Keep the scope stack balanced; fn's error wins.
    await Promise.allSettled([device.popErrorScope(), device.popErrorScope()]);
    throw err;
  }
  // Pop in LIFO order: out-of-memory first, then validation.
  const oomPromise = device.popErrorScope();
  const validationPromise = device.popErrorScope();
  const [oom, validation] = await Promise.all([oomPromise, validationPromise]);
  if (validation) throw new GpuError(label, 'validation', validation.message);
  if (oom) throw new GpuError(label, 'out-of-memory', oom.message);
  return result;
}
