// The queue suites' policy: they need `redis-server` on PATH. Without it, under CI=true they FAIL (.ci/run
// installs it with scripts/install-redis.sh); elsewhere they are skipped with a loud warning saying how to
// install it. Each suite starts its own Redis (./redis-server.ts) and everything it started is killed
// when the file ends.

import { afterAll, describe, it } from 'vitest';
import { redisFound, stopEverything } from './redis-server.ts';

export { ROOT, runCli, startRedis, waitFor, type CliProcess, type RedisServer } from './redis-server.ts';

const isCI = /^(1|true|yes)$/i.test(process.env.CI ?? '');

/** `describe` for suites that need redis-server, applying the policy above. */
export function describeRedis(name: string, body: () => void): void {
  if (redisFound) {
    describe(name, body);
    afterAll(stopEverything);
  } else if (isCI) {
    describe(name, () => it('redis-server is installed (required when CI=true)', () => {
      throw new Error('redis-server not found on PATH: .ci/run installs it with scripts/install-redis.sh');
    }));
  } else {
    const bar = '!'.repeat(78);
    console.warn(`\n${bar}\n!! ${name} SKIPPED: redis-server not found on PATH\n!! Install it: sudo bash scripts/install-redis.sh (Debian's redis-server).\n!! Under CI=true this is a failure.\n${bar}\n`);
    describe.skip(name, body);
  }
}
