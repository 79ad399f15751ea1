/** @hearth/cli as a library: the gateway client and the pieces the `hearth` command is made of. */
export * from './api-client.ts';
export { loadProject, type Project } from './project.ts';
export { publishFunction, contentTag, type PublishedImage, type PublishOptions } from './publish.ts';
export { exitCodeFor, messageFor, EXIT } from './errors.ts';
export { createProgram, run } from './program.ts';
