import type { TemplateFile } from './index.ts';

/** An exec function: any program; the body comes on stdin, the response goes to stdout. */
export function execTemplate(name: string): TemplateFile[] {
  return [
    {
      path: 'handler.sh',
      mode: 0o755,
      content: `#!/bin/sh
# Hearth runs this program for each request: the request body arrives on stdin and
# whatever it prints on stdout is the response. Try it: hearth invoke ${name} --data you
name=$(cat)
echo "Hello, \${name:-world}!"
`,
    },
  ];
}
