import { Command } from 'commander';
import { addImageOptions, buildAndReport, type ImageOptions } from './build.ts';

/** `hearth push [DIR]`: the same as build, worded for users who think "push". */
export function pushCommand(): Command {
  const command = new Command('push')
    .description('build a function image and push it to the registry; prints REF@sha256:DIGEST on a line of its own')
    .argument('[dir]', 'function folder (holds hearth.yaml)', '.');
  return addImageOptions(command).action(async (dir: string, opts: ImageOptions, cmd: Command) => {
    await buildAndReport(cmd, dir, opts, 'Pushing');
  });
}
