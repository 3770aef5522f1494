/** TEMPORARY (issue 6): module resolve hook, see ./hook.ts. */
const SHIM = new URL('./agent.js', import.meta.url).href;

interface Resolved {
  url: string;
  format?: string | null;
  shortCircuit?: boolean;
}

export async function resolve(
  specifier: string,
  context: { parentURL?: string },
  next: (specifier: string, context: { parentURL?: string }) => Promise<Resolved>,
): Promise<Resolved> {
  const r = await next(specifier, context);
  if (r.url.endsWith('/dist/src/agent.js') && context.parentURL?.endsWith('/dist/src/cli.js')) return { ...r, url: SHIM, shortCircuit: true };
  return r;
}
