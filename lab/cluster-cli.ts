/**
 * `npm run cluster -- up|down|status`: the kubeadm cluster lab (lab/cluster.ts).
 *
 * up: builds nothing (run `npm run cluster:assets` first), brings three kubeadm control-plane nodes
 * up with vipd's static pod and prints, as its LAST line on stdout, one JSON object:
 * {"vip","client_netns","hub_netns","nodes":[{"name","netns","veth_on_hub","ip"}],"admin_kubeconfig"}.
 * The cluster stays up after the command exits. A failed up leaves its state for down.
 * down: removes everything up made (exit 1 if something could not be removed, with what).
 */
import { down, leftovers, up } from './cluster.js';

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0];
  if (cmd === 'up') {
    const c = await up();
    const info = { ...c.info, nodes: c.info.nodes.map(({ name, netns, veth_on_hub, ip }) => ({ name, netns, veth_on_hub, ip })) };
    process.stderr.write(`[cluster] timings ${JSON.stringify(c.timings)}\n`);
    process.stdout.write(JSON.stringify(info) + '\n');
    return 0;
  }
  if (cmd === 'down') return (await down()).length === 0 ? 0 : 1;
  if (cmd === 'status') {
    const left = await leftovers();
    process.stdout.write(left.length === 0 ? 'nothing of the cluster lab on this machine\n' : left.join('\n') + '\n');
    return 0;
  }
  process.stderr.write('usage: npm run cluster -- up|down|status\n');
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`cluster: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
