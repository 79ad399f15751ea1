import { Command, CommanderError } from 'commander';
import { EXIT, reportError } from './errors.ts';
import { initCommand } from './commands/init.ts';
import { buildCommand } from './commands/build.ts';
import { pushCommand } from './commands/push.ts';
import { deployCommand } from './commands/deploy.ts';
import { invokeCommand } from './commands/invoke.ts';
import { lsCommand } from './commands/ls.ts';
import { rmCommand } from './commands/rm.ts';
import { logsCommand } from './commands/logs.ts';
import { callsCommand } from './commands/calls.ts';
import { queueCommand } from './commands/queue.ts';
import { tracesCommand } from './commands/traces.ts';
import { keysCommand } from './commands/keys.ts';
import { loginCommand } from './commands/login.ts';
import { secretsCommand } from './commands/secrets.ts';
import { psCommand } from './commands/ps.ts';
import { scaleCommand } from './commands/scale.ts';
import { benchCommand } from './commands/bench.ts';

/** The `hearth` program, with every command registered. Each run gets a fresh one. */
export function createProgram(): Command {
  const program = new Command('hearth')
    .description('Hearth: self-hosted serverless functions')
    .version('0.1.0')
    .option('--gateway <url>', 'gateway URL (env HEARTH_GATEWAY, default http://127.0.0.1:8080)')
    .option('--registry <host:port>', 'OCI registry (env HEARTH_REGISTRY, default 127.0.0.1:5000)')
    .option('--api-key <key>', 'API key (env HEARTH_API_KEY; else the `hearth login` file; else <HEARTH_HOME>/admin.key for a local gateway)')
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 failure, 2 bad usage or input, 3 not found, 4 gateway or registry unreachable, 5 missing or refused API key.\n' +
        'Quick start:\n  hearth init hello --runtime node\n  hearth deploy hello\n  curl -s localhost:8080/function/hello -d world\n',
    );
  for (const command of [initCommand(), buildCommand(), pushCommand(), deployCommand(), invokeCommand(), lsCommand(), rmCommand(), logsCommand(), callsCommand(), queueCommand(), keysCommand(), loginCommand(), secretsCommand(), psCommand(), scaleCommand(), tracesCommand(), benchCommand()]) {
    program.addCommand(command);
  }
  // Usage errors become `hearth: <what>` and exit 2, like every other error of the CLI.
  const configure = (cmd: Command) => {
    cmd.exitOverride().configureOutput({ outputError: (str, write) => write(`hearth: ${str.replace(/^error: /, '')}`) });
    cmd.commands.forEach(configure);
  };
  configure(program);
  return program;
}

/** Runs the CLI and returns the exit code; it never throws. */
export async function run(argv: string[]): Promise<number> {
  try {
    await createProgram().parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed the message (or the help/version text).
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    return reportError(err);
  }
}
