import { Command } from 'commander';
import { commandConfig, gatewayClient } from '../context.ts';
import { loadProject } from '../project.ts';
import { publishFunction } from '../publish.ts';
import { addImageOptions, type ImageOptions } from './build.ts';

/** `hearth deploy [DIR]`: push, then `PUT /system/functions/:name` with `{ image, spec }`. */
export function deployCommand(): Command {
  const command = new Command('deploy')
    .description('push a function image, then make it the current version of the function on the gateway')
    .argument('[dir]', 'function folder, or the name of a function folder in the current directory', '.');
  return addImageOptions(command).action(async (dir: string, opts: ImageOptions, cmd: Command) => {
    const config = commandConfig(cmd);
    const project = await loadProject(dir);
    const gateway = gatewayClient(config);
    // Fail before a push that may take a while when the gateway is down anyway.
    await gateway.health();

    const image = await publishFunction(project, config, {
      verb: 'Pushing',
      ...(opts.base ? { base: opts.base } : {}),
      ...(opts.tag ? { tag: opts.tag } : {}),
    });
    process.stdout.write(`${image.reference}\n`);

    const info = await gateway.putFunction(project.spec.name, { image: image.reference, spec: project.spec });
    const url = info.url || `${config.gatewayUrl}/function/${info.name}`;
    process.stdout.write(`Deployed ${info.name} version ${info.version}: ${url}\n`);
  });
}
