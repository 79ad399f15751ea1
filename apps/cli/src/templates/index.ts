import { nodeTemplate } from './node.ts';
import { execTemplate } from './exec.ts';

/** One file `hearth init` writes, relative to the new function folder. */
export interface TemplateFile {
  path: string;
  content: string;
  mode?: number;
}

/** Runtimes `hearth init` can scaffold, with the handler file each one names. */
export const TEMPLATES = {
  node: { handler: 'index.js', files: nodeTemplate },
  exec: { handler: 'handler.sh', files: execTemplate },
} as const;

export type TemplateRuntime = keyof typeof TEMPLATES;

export function isTemplateRuntime(value: string): value is TemplateRuntime {
  return Object.hasOwn(TEMPLATES, value);
}

/** Every file of a new function, `hearth.yaml` first. */
export function renderTemplate(name: string, runtime: TemplateRuntime): TemplateFile[] {
  const { handler, files } = TEMPLATES[runtime];
  const spec = `# A Hearth function. Deploy it with: hearth deploy ${name}
name: ${name}
runtime: ${runtime}
handler: ${handler}
memoryMb: 128
timeoutMs: 10000
`;
  return [{ path: 'hearth.yaml', content: spec }, ...files(name)];
}
