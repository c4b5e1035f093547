// A redis-server of one's own and command-line processes, for the queue tests and the queue benchmark:
// Redis on a free loopback port with a temporary directory (nothing else is ever contacted), processes
// with a deadline, and everything started here killed when the process exits.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const redisFound = spawnSync('redis-server', ['--version']).status === 0;

const started = new Set<ChildProcess>();

/** Kills every process started here that is still running. */
export function stopEverything(): void {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  started.clear();
}
process.on('exit', stopEverything);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Resolves true once `PING` on 127.0.0.1:port answers PONG, false after `ms`. */
async function answers(port: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      let text = '';
      socket.setTimeout(500, () => socket.destroy());
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (d) => {
        text += d;
        if (text.includes('\r\n')) socket.end();
      });
      socket.on('close', () => resolve(text.startsWith('+PONG')));
      socket.on('error', () => {});
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

export interface RedisServer {
  url: string;
  port: number;
  /** Stops Redis the way an operator would (SIGTERM: it writes its append-only file and exits). */
  stop(): Promise<void>;
  /** Starts it again on the same port and directory (its data come back from the append-only file). */
  start(): Promise<void>;
  /** Stops it and deletes its directory. */
  dispose(): Promise<void>;
}

/** A redis-server on a free loopback port, in a temporary directory, with append-only persistence. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'queue-test-redis-'));
  let proc: ChildProcess | null = null;
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    async start() {
      proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--daemonize', 'no', '--protected-mode', 'yes'], { stdio: 'ignore' });
      started.add(proc);
      if (!(await answers(port, 10_000))) throw new Error(`redis-server on port ${port} did not answer within 10 s`);
    },
    async stop() {
      const p = proc;
      if (!p || p.exitCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      started.delete(p);
    },
    async dispose() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

export interface CliProcess {
  pid: number;
  /** stdout and stderr so far. */
  output(): string;
  /** Exit code (a signal counts as 128 + its number, as a shell says). */
  exited: Promise<number>;
  kill(signal?: NodeJS.Signals): void;
}

/** Runs `cam/cli.ts ARGS` in its own node process (no npx/tsx wrapper: the pid is the command's), killed after `deadlineMs`. */
export function runCli(args: string[], deadlineMs: number, env: Record<string, string> = {}): CliProcess {
  const p = spawn(process.execPath, ['--import', 'tsx', 'cam/cli.ts', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(p);
  let text = '';
  p.stdout!.on('data', (d) => (text += d));
  p.stderr!.on('data', (d) => (text += d));
  const timer = setTimeout(() => {
    text += `\n[test: killed after ${deadlineMs} ms]\n`;
    p.kill('SIGKILL');
  }, deadlineMs);
  const signals: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  const exited = new Promise<number>((resolve) =>
    p.once('exit', (code, signal) => {
      clearTimeout(timer);
      started.delete(p);
      resolve(code ?? 128 + (signals[signal ?? ''] ?? 0));
    }),
  );
  return { pid: p.pid!, output: () => text, exited, kill: (signal = 'SIGTERM') => p.kill(signal) };
}

/** Waits until `check()` is true (polling), or throws after `ms` naming `what`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
