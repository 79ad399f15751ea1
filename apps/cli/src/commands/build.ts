import { Command } from 'commander';
import { commandConfig } from '../context.ts';
import { loadProject } from '../project.ts';
import { publishFunction, type PublishOptions } from '../publish.ts';

/** Options that build, push and deploy share. */
export interface ImageOptions {
  base?: string;
  tag?: string;
}

export function addImageOptions(command: Command): Command {
  return command
    .option('--base <ref>', 'base image (default: <registry>/hearth/<runtime>:latest)')
    .option('--tag <tag>', 'tag of the function image (default: a content hash of the folder)');
}

/**
 * build and push share everything but the verb: an OCI registry has no local image store,
 * so an image is built by uploading its layer and writing its manifest there.
 */
export async function buildAndReport(command: Command, dir: string, opts: ImageOptions, verb: string): Promise<void> {
  const config = commandConfig(command);
  const project = await loadProject(dir);
  const publishOpts: PublishOptions = { verb, ...(opts.base ? { base: opts.base } : {}), ...(opts.tag ? { tag: opts.tag } : {}) };
  const image = await publishFunction(project, config, publishOpts);
  if (image.prebuilt) process.stderr.write(`${project.spec.name} brings its own image (runtime: image); nothing to build\n`);
  process.stdout.write(`${image.reference}\n`);
}

/** `hearth build [DIR]`: validates, builds into the registry, prints REF@sha256:DIGEST. */
export function buildCommand(): Command {
  const command = new Command('build')
    .summary('build a function image into the registry (same as push)')
    .description(
      'validate a function folder, build its image and store it in the registry; prints REF@sha256:DIGEST.\n' +
        'Hearth builds into the registry (there is no local image store), so build is the same as push.',
    )
    .argument('[dir]', 'function folder (holds hearth.yaml)', '.');
  return addImageOptions(command).action(async (dir: string, opts: ImageOptions, cmd: Command) => {
    await buildAndReport(cmd, dir, opts, 'Building');
  });
}
