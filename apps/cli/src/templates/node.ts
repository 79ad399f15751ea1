import type { TemplateFile } from './index.ts';

/** A node function: an ESM module whose default export takes a Web standard Request. */
export function nodeTemplate(name: string): TemplateFile[] {
  return [
    {
      path: 'index.js',
      content: `// Hearth calls the default export with a Web standard Request and sends back the Response
// (a string, a Buffer or a JSON value works too). Try it: hearth invoke ${name} --data you
export default async (request) => {
  const name = (await request.text()).trim() || 'world';
  return new Response(\`Hello, \${name}!\\n\`, {
    headers: { 'content-type': 'text/plain; charset=utf-8' },
  });
};
`,
    },
    {
      // Without "type": "module" node would read index.js as CommonJS and reject \`export\`.
      path: 'package.json',
      content: `${JSON.stringify({ name, private: true, type: 'module' }, null, 2)}\n`,
    },
  ];
}
