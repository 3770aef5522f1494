#!/usr/bin/env -S node --max-semi-space-size=1 --max-opt=1 --optimize-for-size
/**
 * `vipd` command line. Exit codes: 0 clean stop, 1 runtime failure, 2 bad input (nothing touched).
 * The shebang carries the agent's V8 flags (src/node-flags.ts says why; the image's ENTRYPOINT
 * carries the same).
 */
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig } from './config/index.js';
import { SETTINGS, settingDef, type SettingKey } from './config/settings.js';
import { createLogger, flushLogs } from './observe/log.js';

const EXIT_BAD_INPUT = 2;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function settingsHelp(): string {
  const lines: string[] = [];
  let group = '';
  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    const def = settingDef(key);
    if (def.group !== group) {
      group = def.group;
      lines.push('', `  ${group}:`);
    }
    const flags = [`--${def.env}`, ...(def.flags ?? []).map((f) => `--${f}`)].join(', ');
    const aliases = def.aliases?.length ? ` (also ${def.aliases.join(', ')})` : '';
    const kv = def.kubeVip ? ' [kube-vip name]' : '';
    lines.push(`    ${def.env}${aliases}${kv}`, `        flags: ${flags}`, `        default: ${def.defaultText ?? '(none)'}`, `        ${def.help}`);
  }
  return lines.join('\n');
}

const USAGE = `vipd ${'<command>'}

Commands:
  run        Run the agent: elect a holder and hold the VIP (settings from the environment or flags)
  status     Ask the agent on this node what it holds and why ('vipd status --help')
  manifest   Print a static pod, DaemonSet or RBAC manifest from the same settings ('vipd manifest --help')
  version    Print the version
  help       This text; 'vipd run --help' lists every setting

Exit codes: 0 stopped cleanly, 1 failed while running, 2 bad input (nothing was changed).`;

async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`vipd run [--setting=value ...]\n\nEvery setting can be given as an environment variable (kube-vip's names) or a flag; flags win.${settingsHelp()}\n`);
    return 0;
  }
  let config;
  try {
    config = loadConfig(process.env, argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`vipd: ${err.message}\n`);
      return EXIT_BAD_INPUT;
    }
    throw err;
  }
  const log = createLogger(config.logLevel, { node: config.nodeName });
  const { startAgent } = await import('./app/agent.js');
  let agent;
  try {
    agent = await startAgent(config, log);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`vipd: ${err.message}\n`);
      return EXIT_BAD_INPUT;
    }
    log.fatal({ err }, 'agent failed to start');
    return 1;
  }
  const onSignal = (sig: NodeJS.Signals) => {
    log.info({ reason: sig }, 'stopping');
    agent.stop(sig);
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  let failed = false;
  const onFatal = (err: unknown) => {
    // Leave nothing half-applied: stop, which unbinds every VIP, then exit non-zero.
    failed = true;
    log.fatal({ err }, 'unexpected error; removing VIPs and exiting');
    agent.stop('fatal error');
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  await agent.done;
  return failed ? 1 : 0;
}

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'run':
      return run(rest);
    case 'lab':
      // The lab (namespaces, API servers, probers) is development tooling, not in the release.
      process.stderr.write('vipd: the lab is not part of the release; from a clone of the repository run: sudo npm run lab\n');
      return EXIT_BAD_INPUT;
    case 'manifest': {
      const { manifestCommand } = await import('./manifest/command.js');
      return manifestCommand(rest);
    }
    case 'status': {
      const { statusCommand } = await import('./observe/status-command.js');
      return statusCommand(rest, { env: process.env, out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) });
    }
    case 'version':
    case '--version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      process.stderr.write(`vipd: unknown command ${JSON.stringify(command)}; expected run, status, manifest, version or help\n`);
      return EXIT_BAD_INPUT;
  }
}

main().then(
  async (code) => {
    process.exitCode = code;
    // Sockets and timers are closed by then; the last log lines say why we stopped. A stderr that
    // nobody reads gets one second, not the exit.
    await flushLogs(1000);
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`vipd: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
