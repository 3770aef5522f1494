/**
 * `npm run build --silent && node dist/bench/imports.js [--runs 3]`
 *
 * What importing each dependency (and each of vipd's own entry modules) costs, so the footprint
 * budget is spent knowingly. Every row is a fresh `node --expose-gc` process: it takes RSS and
 * heap after a GC, imports the one module, lets its top-level timers and promises settle, GCs
 * again and reports the difference. Modules already loaded by Node itself cost nothing here,
 * and a module's dependencies are counted in its row (client-node's entry pulls in undici, its
 * own generated API and js-yaml). Rows are medians over `--runs` processes.
 *
 * A row is what the module costs alone. The first CommonJS package a process loads also pays
 * ~6 MB that the next ones share (loaded after the agent's other dependencies, pino adds ~1 MB,
 * prom-client ~3 MB, netlink ~4 MB), so small rows do not add up.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = (p: string): string => pathToFileURL(join(ROOT, 'dist', p)).href;
const WARM_CJS = join(ROOT, 'dist', 'bench', 'imports-warm.cjs');

/** [row name, specifier or file URL, how to load it, node flags]. */
const MODULES: ReadonlyArray<[string, string, 'import' | 'require', string[]?]> = [
  ['@kubernetes/client-node (entry)', '@kubernetes/client-node', 'import'],
  ['@kubernetes/client-node/dist/config.js (KubeConfig alone)', '@kubernetes/client-node/dist/config.js', 'import'],
  ['@kubernetes/client-node/dist/gen/index.js (generated API)', '@kubernetes/client-node/dist/gen/index.js', 'import'],
  ['@kubernetes/client-node/dist/{config_types,exec_auth,file_auth}.js', '@kubernetes/client-node/dist/config_types.js,@kubernetes/client-node/dist/exec_auth.js,@kubernetes/client-node/dist/file_auth.js', 'import'],
  ['@kubernetes/client-node/dist/gen/apis/exception.js (ApiException)', '@kubernetes/client-node/dist/gen/apis/exception.js', 'import'],
  ['js-yaml', 'js-yaml', 'import'],
  // Only client-node depends on undici (nested copy, 7.x by the package.json override).
  ['undici (client-node\'s copy)', pathToFileURL(join(ROOT, 'node_modules/@kubernetes/client-node/node_modules/undici/index.js')).href, 'require'],
  ['pino', 'pino', 'import'],
  ['prom-client', 'prom-client', 'import'],
  ['netlink', 'netlink', 'require'],
  ['ipaddr.js', 'ipaddr.js', 'import'],
  ['afpacket addon (build/Release/afpacket.node)', join(ROOT, 'build', 'Release', 'afpacket.node'), 'require'],
  ['vipd src/observe/metrics.js (prom-client + default metrics)', dist('src/observe/metrics.js'), 'import'],
  ['vipd src/k8s/client.js', dist('src/k8s/client.js'), 'import'],
  ['vipd src/app/agent.js (everything the agent loads)', dist('src/app/agent.js'), 'import'],
  ['vipd src/app/agent.js with --no-opt (as `vipd run` sets it)', dist('src/app/agent.js'), 'import', ['--no-opt']],
];

/** Runs in the child: measure, load, settle, measure. */
const CHILD = `
import { createRequire } from 'node:module';
const [how, list] = JSON.parse(process.argv[1]);
const gc = globalThis.gc;
const settle = () => new Promise((r) => setTimeout(r, 200));
const require = createRequire(process.cwd() + '/');
// Warm Node's loaders first: the first ESM import, the first require and the first ESM import
// of a CommonJS file (which starts cjs-module-lexer, ~8 MB) are paid once by any program.
await import('data:text/javascript,export default 1');
require('./package.json');
await import(process.argv[2]);
await settle(); gc(); gc();
const m0 = process.memoryUsage();
for (const spec of list.split(',')) {
  if (how === 'require') require(spec.startsWith('file:') ? new URL(spec).pathname : spec);
  else await import(spec);
}
await settle(); gc(); gc();
const m1 = process.memoryUsage();
process.stdout.write('\\n@row ' + JSON.stringify({ rss: m1.rss - m0.rss, heap: m1.heapUsed - m0.heapUsed, rss1: m1.rss }) + '\\n');
process.exit(0);
`;

interface Sample {
  rss: number;
  heap: number;
  rss1: number;
}

function measureOnce(spec: string, how: 'import' | 'require', flags: readonly string[] = []): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', ...flags, '--input-type=module', '-e', CHILD, JSON.stringify([how, spec]), pathToFileURL(WARM_CJS).href], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VIPD_LOG_LEVEL: 'silent' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${spec}: exit ${code}: ${err.trim().split('\n').slice(-3).join(' ')}`));
      // A marked line: a module may print on import.
      else resolve(JSON.parse(out.split('\n').find((l) => l.startsWith('@row '))!.slice(5)) as Sample);
    });
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};
const mb = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;

async function main(): Promise<void> {
  const i = process.argv.indexOf('--runs');
  writeFileSync(WARM_CJS, 'module.exports = 1;\n');
  const runs = i >= 0 ? Math.max(1, Number(process.argv[i + 1]) || 1) : 3;
  const empty = await Promise.all(Array.from({ length: runs }, () => measureOnce('node:os', 'import')));
  process.stdout.write(JSON.stringify({ module: '(bare node process, after GC)', rss_mb: mb(median(empty.map((s) => s.rss1 - s.rss))) }) + '\n');
  for (const [name, spec, how, flags] of MODULES) {
    try {
      const samples: Sample[] = [];
      for (let r = 0; r < runs; r++) samples.push(await measureOnce(spec, how, flags));
      process.stdout.write(
        JSON.stringify({ module: name, rss_mb_delta: mb(median(samples.map((s) => s.rss))), heap_mb_delta: mb(median(samples.map((s) => s.heap))), rss_mb: mb(median(samples.map((s) => s.rss1))) }) + '\n',
      );
    } catch (err) {
      process.stdout.write(JSON.stringify({ module: name, error: (err as Error).message }) + '\n');
    }
  }
}

await main();
