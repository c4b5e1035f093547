// ScoreCAM and AblationCAM explain time (their masked inputs / ablated activations scored in passes of
// --max-batch rows across the batch's images), and `eval` with them, for this checkout and optionally another
// one (--before DIR: e.g. `git archive <commit> | tar -x -C DIR` with node_modules linked), in turns so both
// see the same machine load.
//   npx tsx bench/score-batching.ts [--before DIR] [--backend wasm] [--methods scorecam,ablationcam] [--limit 100]
//                                   [--batch 16] [--repeat 1] [--eval-steps 2 | --eval-steps 0 (no eval)]
// The explain time is of the explain calls only (model loaded, one warm-up call first), in one process per
// checkout; the eval time is the CLI's wall time (process start and model load included). Each explain
// prints a checksum of its maps: equal checksums say both checkouts computed the same maps.
// Prints a markdown table and one JSON line per measurement:
//   {"bench":"score-batching","checkout":…,"backend":…,"what":…,"images":…,"seconds":…}

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    before: { type: 'string' },
    backend: { type: 'string', default: 'wasm' },
    methods: { type: 'string', default: 'scorecam,ablationcam' },
    limit: { type: 'string', default: '100' },
    batch: { type: 'string', default: '16' },
    repeat: { type: 'string', default: '1' },
    'eval-steps': { type: 'string', default: '2' },
    child: { type: 'string' },
  },
});

const HERE = resolve(fileURLToPath(new URL('..', import.meta.url)));
const SAMPLE = join(HERE, 'test/fixtures/cifar10-sample');
const limit = Number(values.limit);
const batch = Number(values.batch);
const methods = values.methods!.split(',');

interface Measurement {
  what: string;
  seconds: number;
  checksum?: string;
}

/** In a child process: explain time per method with the checkout at `root`. */
async function childRun(root: string): Promise<void> {
  const api = await import(pathToFileURL(join(root, 'api/index.ts')).href);
  const images = readdirSync(SAMPLE).filter((f) => f.endsWith('.png')).sort().slice(0, limit).map((f) => join(SAMPLE, f));
  const explainer = await api.createExplainer({ model: 'resnet20_cifar10', backend: values.backend });
  await explainer.explain(images.slice(0, 2), { methods });
  const out: Measurement[] = [];
  for (const m of methods) {
    const hash = createHash('sha256');
    const t0 = performance.now();
    for (let s = 0; s < images.length; s += batch) {
      const r = await explainer.explain(images.slice(s, s + batch), { methods: [m] });
      for (const img of r.images) hash.update(new Uint8Array(img.maps[m].data.buffer, img.maps[m].data.byteOffset, img.maps[m].data.byteLength));
    }
    out.push({ what: `explain ${m}`, seconds: (performance.now() - t0) / 1000, checksum: hash.digest('hex').slice(0, 12) });
  }
  explainer.dispose();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

function explainTimes(root: string): Measurement[] {
  const r = spawnSync('npx', ['tsx', fileURLToPath(import.meta.url), '--child', root, '--backend', values.backend!, '--methods', values.methods!, '--limit', String(limit), '--batch', String(batch)], {
    cwd: HERE,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`explain run in ${root} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function evalTime(root: string, steps: number): Measurement {
  const out = mkdtempSync(join(tmpdir(), 'bench-score-batching-'));
  const args = ['tsx', join(root, 'cam/cli.ts'), 'eval', '--model', 'resnet20_cifar10', '--data', SAMPLE, '--methods', values.methods!,
    '--steps', String(steps), '--limit', String(limit), '--batch', String(batch), '--backend', values.backend!, '--quiet', '--out', out];
  const t0 = performance.now();
  const r = spawnSync('npx', args, { cwd: root, encoding: 'utf8' });
  const seconds = (performance.now() - t0) / 1000;
  rmSync(out, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`eval in ${root} failed:\n${r.stderr}`);
  return { what: `eval --steps ${steps}`, seconds };
}

async function main(): Promise<void> {
  if (values.child) return childRun(values.child);
  const checkouts = [...(values.before ? [['before', resolve(values.before)]] : []), ['after', HERE]] as const;
  const steps = Number(values['eval-steps']);
  const rows = new Map<string, Map<string, Measurement[]>>();
  const add = (checkout: string, m: Measurement) => {
    const byWhat = rows.get(m.what) ?? new Map<string, Measurement[]>();
    byWhat.set(checkout, [...(byWhat.get(checkout) ?? []), m]);
    rows.set(m.what, byWhat);
    console.log(JSON.stringify({ bench: 'score-batching', checkout, backend: values.backend, what: m.what, images: limit, seconds: +m.seconds.toFixed(2), ...(m.checksum ? { checksum: m.checksum } : {}) }));
  };
  const load = [loadavg()[0]];
  for (let i = 0; i < Number(values.repeat); i++) {
    for (const [name, root] of checkouts) explainTimes(root).forEach((m) => add(name, m));
    if (steps > 0) for (const [name, root] of checkouts) add(name, evalTime(root, steps));
    load.push(loadavg()[0]);
  }
  const best = (ms: Measurement[] | undefined) => (ms ? Math.min(...ms.map((m) => m.seconds)) : NaN);
  console.log(`\n${values.backend}, ${limit} images, --batch ${batch}, best of ${values.repeat}; load average ${load.map((l) => l.toFixed(1)).join(' → ')}\n`);
  console.log(`| run | ${checkouts.map(([n]) => `${n} s`).join(' | ')}${checkouts.length > 1 ? ' | before / after' : ''} |`);
  console.log(`|---|${checkouts.map(() => '---:').join('|')}${checkouts.length > 1 ? '|---:' : ''}|`);
  for (const [what, byCheckout] of rows) {
    const times = checkouts.map(([n]) => best(byCheckout.get(n)));
    console.log(`| ${what} | ${times.map((t) => t.toFixed(2)).join(' | ')}${checkouts.length > 1 ? ` | ${(times[0] / times[1]).toFixed(2)}× |` : ' |'}`);
  }
}

await main();
