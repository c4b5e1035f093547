#!/usr/bin/env node
// The package's command. `explain` and `eval` are the CAM command line (cam/cli.ts); `bench matmul|conv|
// shapleycam` runs a benchmark of bench/ with its flags, printing the same table and JSON lines. Both run
// the compiled code in dist/ (`npm run build`; `npm pack` builds it). In a checkout, `npm run cam -- …`
// runs the TypeScript sources directly.

const BENCHES = ['matmul', 'conv', 'shapleycam'];
const BENCH_USAGE = `usage: shapleycam bench ${BENCHES.join('|')} [flags]
  matmul      tiled vs naive WGSL matmul vs the CPU backend (--sizes 256,1024 --runs N …)
  conv        ResNet-18/50 convolutions, forward and both backward kernels (--nets --batch --ops …)
  shapleycam  ms per image of ShapleyCAM and GradCAM end to end (--backend auto|cpu,webgpu --models --batches …)
Each prints a table and one JSON line per configuration.`;

/** Imports a compiled module of dist/, with one clear line when the package has not been built. */
async function load(path) {
  const url = new URL(`../dist/${path}`, import.meta.url);
  try {
    return await import(url.href);
  } catch (e) {
    if (e?.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes(url.pathname)) {
      process.stderr.write(`shapleycam: ${url.pathname} is missing; run \`npm run build\` first (or \`npm run cam -- …\` in a checkout)\n`);
      process.exit(1);
    }
    throw e;
  }
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'bench') {
  const [name, ...flags] = rest;
  if (name === '--help' || name === '-h') {
    process.stdout.write(`${BENCH_USAGE}\n`);
  } else if (!BENCHES.includes(name)) {
    process.stderr.write(`error: bench: ${name === undefined ? 'no benchmark named' : `unknown benchmark "${name}"`}\n${BENCH_USAGE}\n`);
    process.exitCode = 2;
  } else {
    // The benchmarks are scripts that read their flags from process.argv.
    process.argv = [process.argv[0], name, ...flags];
    await load(`bench/${name}.js`);
  }
} else {
  const { main } = await load('cam/cli.js');
  const code = await main(process.argv.slice(2));
  if (!command || command === '--help' || command === '-h') process.stdout.write(`  bench     benchmarks: shapleycam bench ${BENCHES.join('|')} [flags]\n`);
  process.exitCode = code;
}
