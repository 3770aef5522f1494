/**
 * `node dist/lab/tagserver-cli.js --name n2 --port 8080 [--host ADDR]`, run in a node namespace
 * (`ip netns exec <ns> …`). Prints one JSON line when listening:
 *   {"listening":{"address":"::","port":8080},"name":"n2"}
 * SIGTERM/SIGINT: closes and exits 0. Bad arguments: one line on stderr, exit 2.
 */
import { parseArgs } from 'node:util';
import { startTagServer } from './tagserver.js';

async function main(): Promise<number> {
  let values: { name?: string; port?: string; host?: string };
  try {
    ({ values } = parseArgs({ options: { name: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' } }, strict: true }));
  } catch (err) {
    process.stderr.write(`tagserver: ${(err as Error).message}\nusage: tagserver-cli --name NAME --port PORT [--host ADDR]\n`);
    return 2;
  }
  const port = Number(values.port);
  if (!values.name || !Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write('tagserver: --name NAME and --port 0..65535 are required\n');
    return 2;
  }
  const server = await startTagServer({ name: values.name, port, ...(values.host !== undefined ? { host: values.host } : {}) });
  process.stdout.write(JSON.stringify({ listening: { address: server.address, port: server.port }, name: values.name }) + '\n');
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await server.close();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`tagserver: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
