// The queue's command-line contract without a running Redis: the --queue address, usage errors (exit 2,
// one line) and an unreachable Redis (exit 1, one line naming the address) for `eval --queue` and `worker`.

import { createServer } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../cam/cli.ts';
import { parseRedisUrl, redisUrl } from '../cam/evaluation/queue/address.ts';

afterEach(() => vi.restoreAllMocks());

async function run(argv: string[]): Promise<{ code: number; text: string }> {
  const errors: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    errors.push(String(chunk));
    return true;
  });
  const code = await main(argv);
  vi.restoreAllMocks();
  return { code, text: errors.join('') };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe('the --queue address', () => {
  it('reads redis://HOST:PORT[/DB], with the default port, a password (masked in messages) and IPv6', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6380/2')).toMatchObject({ host: '127.0.0.1', port: 6380, db: 2, tls: false, display: 'redis://127.0.0.1:6380/2' });
    expect(parseRedisUrl('redis://localhost')).toMatchObject({ host: 'localhost', port: 6379, db: 0 });
    const secret = parseRedisUrl('rediss://:s%40cret@cache.example:7000/1');
    expect(secret).toMatchObject({ password: 's@cret', tls: true, port: 7000, db: 1 });
    expect(secret.display).toBe('rediss://:***@cache.example:7000/1');
    expect(redisUrl(secret)).toBe('rediss://:s%40cret@cache.example:7000/1');
    expect(parseRedisUrl(redisUrl(secret))).toEqual(secret);
    expect(parseRedisUrl('redis://[::1]:6390')).toMatchObject({ host: '::1', port: 6390 });
  });

  it('refuses anything else with one line naming what is wrong', () => {
    expect(() => parseRedisUrl('localhost:6379')).toThrow(/--queue: unknown scheme "localhost:"/);
    expect(() => parseRedisUrl('http://h:1')).toThrow(/unknown scheme "http:"; expected redis:\/\/HOST:PORT\[\/DB\], got "http:\/\/h:1"/);
    expect(() => parseRedisUrl('redis://h:1/zero')).toThrow(/database "zero" is not a number/);
    expect(() => parseRedisUrl('redis://h:1/0?x=1')).toThrow(/options after the database/);
    expect(() => parseRedisUrl('not a url')).toThrow(/not a URL/);
  });
});

describe('eval --queue and worker: usage and connection errors', () => {
  const URL = 'redis://127.0.0.1:6379';
  const usage = async (argv: string[], message: RegExp) => {
    const r = await run(argv);
    expect(r.code, r.text).toBe(2);
    expect(r.text.split('\n')[0]).toMatch(message);
  };

  it('exits 2 on bad usage, before connecting', async () => {
    await usage(['eval', '--queue', 'http://h:1', '--run', 'a', '--out', 'x'], /error: --queue: unknown scheme "http:"/);
    await usage(['eval', '--queue', URL, '--out', 'x'], /--queue needs --run NAME/);
    await usage(['eval', '--run', 'a', '--out', 'x'], /--run, --shard, --embed-images, --follow, --status and --remove go with --queue/);
    await usage(['eval', '--queue', URL, '--run', 'a b', '--out', 'x'], /--run: "a b" is not a run name/);
    await usage(['eval', '--queue', URL, '--run', 'a', '--backend', 'cpu', '--out', 'x'], /--backend: with --queue the workers compute/);
    await usage(['eval', '--queue', URL, '--run', 'a', '--resume', '--out', 'x'], /--resume is for local runs/);
    await usage(['eval', '--queue', URL, '--run', 'a', '--follow', '--status'], /give one of --follow, --status and --remove, not --follow and --status/);
    await usage(['eval', '--queue', URL, '--run', 'a', '--remove', '--data', 'd'], /--remove takes the run's settings from the queue; drop --data/);
    await usage(['eval', '--queue', URL, '--run', 'a', '--follow', '--model', 'resnet20_cifar10', '--steps', '4', '--out', 'x'], /--follow takes the run's settings from the queue; drop --model --steps/);
    await usage(['eval', '--queue', URL, '--run', 'a', '--follow'], /--out DIR is required/);
    await usage(['worker'], /--queue redis:\/\/HOST:PORT\[\/DB\] is required/);
    await usage(['worker', '--queue', URL, '--concurrency', '0'], /--concurrency: expected an integer ≥ 1, got "0"/);
    await usage(['worker', '--queue', URL, '--backend', 'tpu'], /--backend: expected auto, cpu, webgpu, wasm, got "tpu"/);
    await usage(['worker', '--queue', URL, '--bogus'], /Unknown option '--bogus'/);
  });

  it('exits 1 with one line when Redis cannot be reached', async () => {
    const port = await closedPort();
    for (const argv of [
      ['eval', '--queue', `redis://127.0.0.1:${port}`, '--run', 'a', '--status'],
      ['worker', '--queue', `redis://127.0.0.1:${port}/3`],
    ]) {
      const r = await run(argv);
      expect(r.code, r.text).toBe(1);
      expect(r.text).toMatch(new RegExp(`^error: --queue redis://127\\.0\\.0\\.1:${port}(/3)?: cannot connect to Redis \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\)\\n$`));
    }
  }, 30_000);
});
