// The one module that knows which JavaScript runtime it is in (Node, Deno or a browser page). Everything
// else — the engine, the models, the CAM algorithm — asks here for environment variables and files, so
// it runs unchanged in a browser, where there are neither (variables read as unset, files are fetched).
// Node's own modules are loaded on demand, never imported statically, so no bundler has to resolve them.

interface DenoGlobal {
  env: { get(name: string): string | undefined };
  args: string[];
  mainModule: string;
}

interface NodeProcess {
  env: Record<string, string | undefined>;
  argv: string[];
  versions: { node?: string };
  once(event: 'beforeExit', listener: () => void): void;
}

const deno = (): DenoGlobal | undefined => (globalThis as { Deno?: DenoGlobal }).Deno;
const nodeProcess = (): NodeProcess | undefined => {
  const p = (globalThis as { process?: NodeProcess }).process;
  return typeof p?.versions?.node === 'string' ? p : undefined;
};

export type RuntimeName = 'node' | 'deno' | 'browser';

/** Which runtime this is. Deno also defines `process` (node compatibility): it is checked first. */
export function runtime(): RuntimeName {
  if (deno()) return 'deno';
  if (nodeProcess()) return 'node';
  return 'browser';
}

/** An environment variable; undefined when unset, in a browser, or under Deno without --allow-env. */
export function env(name: string): string | undefined {
  const d = deno();
  if (d) {
    try {
      return d.env.get(name);
    } catch {
      return undefined;
    }
  }
  return nodeProcess()?.env[name];
}

/** True when the variable is set to 1 or true (the engine's debug switches). */
export function envFlag(name: string): boolean {
  const v = env(name);
  return v === '1' || v === 'true';
}

/** Runs `fn` when a Node process is about to exit on its own (the event loop drained); nothing elsewhere. */
export function beforeExit(fn: () => void): void {
  if (runtime() === 'node') nodeProcess()!.once('beforeExit', fn);
}

/** The command-line arguments after the script (Node: process.argv[2…]; Deno: Deno.args). */
export function commandLineArgs(): string[] {
  return deno()?.args ?? nodeProcess()?.argv.slice(2) ?? [];
}

/** True when the module at `moduleUrl` (its import.meta.url) is the program being run. */
export function isMainModule(moduleUrl: string): boolean {
  const d = deno();
  if (d) return d.mainModule === moduleUrl;
  const script = (nodeProcess()?.argv[1] ?? '').replace(/\\/g, '/');
  return script !== '' && moduleUrl.endsWith(script.replace(/^[A-Za-z]:/, ''));
}

/** node:fs/promises under Node and Deno (a variable specifier keeps bundlers from resolving it). */
async function fs(): Promise<typeof import('node:fs/promises')> {
  if (runtime() === 'browser') throw new Error('no file system in a browser page');
  const specifier = 'node:fs/promises';
  return import(/* @vite-ignore */ specifier);
}

/** The bytes of a file (a path or a file: URL), or of any URL in a browser (fetch). */
export async function readBytes(location: string | URL): Promise<Uint8Array> {
  if (runtime() === 'browser') {
    const response = await fetch(location);
    if (!response.ok) throw new Error(`${location}: HTTP ${response.status} ${response.statusText}`);
    return new Uint8Array(await response.arrayBuffer());
  }
  const bytes = await (await fs()).readFile(location);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Writes a file (Node and Deno). */
export async function writeBytes(path: string, bytes: Uint8Array): Promise<void> {
  await (await fs()).writeFile(path, bytes);
}

// ---------------------------------------------------------------------------------------------------
// A small cache of the engine's own (the autotuner's decisions): files under Node and Deno, memory in a
// browser page (which has no file system; a page lives for one session anyway).

const memoryCache = new Map<string, string>();

/** Where cache files go: $ENGINE_CACHE_DIR, else $XDG_CACHE_HOME/shapleycam, else ~/.cache/shapleycam; null in a browser. */
export function cacheDir(): string | null {
  if (runtime() === 'browser') return null;
  const explicit = env('ENGINE_CACHE_DIR');
  if (explicit) return explicit;
  const base = env('XDG_CACHE_HOME') || (env('HOME') ? `${env('HOME')}/.cache` : null);
  return base ? `${base}/shapleycam` : null;
}

/** A cached text by name, or null when there is none (or it cannot be read). */
export async function readCache(name: string): Promise<string | null> {
  const dir = cacheDir();
  if (!dir) return memoryCache.get(name) ?? null;
  try {
    return new TextDecoder().decode(await readBytes(`${dir}/${name}`));
  } catch {
    return null;
  }
}

/** Stores a text by name (best effort: an unwritable cache directory only loses the cache). */
export async function writeCache(name: string, text: string): Promise<void> {
  const dir = cacheDir();
  if (!dir) {
    memoryCache.set(name, text);
    return;
  }
  try {
    const f = await fs();
    await f.mkdir(dir, { recursive: true });
    const tmp = `${dir}/${name}.${Math.random().toString(36).slice(2)}.tmp`;
    await f.writeFile(tmp, text);
    await f.rename(tmp, `${dir}/${name}`); // atomic: concurrent processes never read half a file
  } catch {
    // best effort
  }
}
