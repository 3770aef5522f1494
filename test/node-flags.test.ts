import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { agentNodeFlags } from '../lab/agents.js';
import { AGENT_NODE_FLAGS } from '../src/node-flags.js';

const root = new URL('..', import.meta.url);
const read = (p: string): string => readFileSync(new URL(p, root), 'utf8');

describe('the agent\'s V8 flags are one list', () => {
  it('the image ENTRYPOINT, the vipd bin shebang and the lab agents carry exactly AGENT_NODE_FLAGS', () => {
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'))?.[1];
    expect(JSON.parse(entry!)).toEqual(['node', ...AGENT_NODE_FLAGS, '/opt/vipd/dist/src/cli.js']);
    expect(read('src/cli.ts').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(' ')}`);
    expect(agentNodeFlags({})).toEqual([...AGENT_NODE_FLAGS]);
  });

  it('VIPD_LAB_NODE_FLAGS replaces them in the lab, empty meaning none', () => {
    expect(agentNodeFlags({ VIPD_LAB_NODE_FLAGS: '' })).toEqual([]);
    expect(agentNodeFlags({ VIPD_LAB_NODE_FLAGS: ' --lite-mode  --max-semi-space-size=2 ' })).toEqual(['--lite-mode', '--max-semi-space-size=2']);
  });

  it('node accepts them', () => {
    expect(execFileSync(process.execPath, [...AGENT_NODE_FLAGS, '-p', 'process.execArgv.slice(0, -2).join(" ")'], { encoding: 'utf8' }).trim()).toBe(AGENT_NODE_FLAGS.join(' '));
  });
});
