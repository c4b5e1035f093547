#!/usr/bin/env node
// The package's command: runs cam/cli.ts through tsx's loader so no build step is needed.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cam/cli.ts');
process.exitCode = await main(process.argv.slice(2));
