import fs from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import { HearthError, functionName, invalidArgument } from '@hearth/core';
import { TEMPLATES, renderTemplate, type TemplateRuntime } from '../templates/index.ts';
import { displayPath } from '../project.ts';
import { commandConfig } from '../context.ts';

/** `hearth init NAME [--runtime node|exec] [--dir DIR]`: scaffolds a function folder. */
export function initCommand(): Command {
  return new Command('init')
    .description('create a function folder with hearth.yaml and a handler that greets the request body')
    .argument('<name>', 'function name: a-z, 0-9 and "-", starting with a letter')
    .addOption(new Option('-r, --runtime <runtime>', 'runtime of the handler').choices(Object.keys(TEMPLATES)).default('node'))
    .option('-d, --dir <dir>', 'folder to create (default: ./NAME)')
    .action(async (name: string, opts: { runtime: TemplateRuntime; dir?: string }, cmd: Command) => {
      const checked = functionName.safeParse(name);
      if (!checked.success) {
        throw invalidArgument(`invalid function name ${JSON.stringify(name)}: ${checked.error.issues[0]?.message ?? 'not allowed'}`);
      }
      const dir = path.resolve(opts.dir ?? name);
      const shown = displayPath(dir);
      const existing = await fs.readdir(dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return [];
        if (err.code === 'ENOTDIR') throw invalidArgument(`${shown.replace(/\/$/, '')} exists and is not a folder`);
        throw err;
      });
      if (existing.length > 0) {
        throw new HearthError('CONFLICT', `${shown} already exists and is not empty; choose another name or --dir`);
      }

      await fs.mkdir(dir, { recursive: true });
      const files = renderTemplate(name, opts.runtime);
      for (const file of files) {
        const target = path.join(dir, file.path);
        // 'wx': never overwrite, even if something appeared since the emptiness check.
        await fs.writeFile(target, file.content, { flag: 'wx', mode: file.mode ?? 0o644 });
        // The umask may have stripped bits the handler needs to run.
        if (file.mode) await fs.chmod(target, file.mode);
      }

      const cdHint = path.relative(process.cwd(), dir) || '.';
      process.stdout.write(
        `Created ${shown} (${opts.runtime}): ${files.map((f) => f.path).join(', ')}\n` +
          `Deploy it:  npx hearth deploy ${cdHint}\n` +
          `Call it:    curl -s ${commandConfig(cmd).gatewayUrl}/function/${name} -d world\n`,
      );
    });
}
