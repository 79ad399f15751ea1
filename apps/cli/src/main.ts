// Entry point of the `hearth` command (bin/hearth.js imports this); the program is in program.ts.
import { run } from './program.ts';

process.exitCode = await run(process.argv.slice(2));
