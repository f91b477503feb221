#!/usr/bin/env node
/** Entry point of the `relais` command (package.json `bin`). */
import { EXIT_OK } from './exit.js';
import { main } from './program.js';

const args = process.argv.slice(2);
const code = await main(args);
process.exitCode = code;
// `start` keeps running on its own handles until a signal; any other command is finished here,
// and a handle some library forgot to close must not keep the terminal waiting.
if (code !== EXIT_OK || args[0] !== 'start') setTimeout(() => process.exit(code), 1_000).unref();
