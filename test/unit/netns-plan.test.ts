/** The netns plan: what the backend will create for a topology, checked without root. */
import { describe, expect, it } from 'vitest';
import { planNetns } from '../../harness/backend/netns/plan.js';
import { loadScenario } from '../../harness/scenario/load.js';

describe('planNetns for the seed scenario', async () => {
  const topology = await loadScenario('scenarios/dmz-three-network.yaml');
  const plan = planNetns(topology, 'abc123');

  it('names every namespace after the run id', () => {
    expect(plan.namespaces.map((n) => n.ns)).toEqual([
      'np-abc123-router',
      'np-abc123-h-webserver',
      'np-abc123-h-internet-client',
      'np-abc123-h-dmz-client',
      'np-abc123-h-trusted-client',
      'np-abc123-s-internet',
      'np-abc123-s-dmz',
      'np-abc123-s-trusted',
    ]);
  });

  it('creates every link directly inside its namespaces, never in the root namespace', () => {
    for (const line of plan.linkBatch) expect(line).toMatch(/ netns np-abc123-/);
    expect(plan.linkBatch.filter((l) => l.includes('type veth') && l.includes('peer name') && / netns .* netns /.test(l))).toHaveLength(7);
  });

  it('turns bridge netfilter and multicast snooping off on every segment', () => {
    const bridges = plan.linkBatch.filter((l) => l.includes('type bridge'));
    expect(bridges).toHaveLength(3);
    for (const b of bridges) expect(b).toContain('mcast_snooping 0 nf_call_iptables 0');
  });

  it('sets forwarding on the router only, and the sysctls verdicts depend on everywhere', () => {
    for (const n of plan.namespaces) {
      expect(n.sysctls['net.ipv4.ip_forward'], n.ns).toBe(n.ref.kind === 'router' ? '1' : '0');
      expect(n.sysctls['net.ipv4.conf.all.rp_filter'], n.ns).toBe('0');
      expect(n.sysctls['net.ipv4.conf.default.rp_filter'], n.ns).toBe('0');
    }
  });

  it('gives the remote Internet client a /32 and an on-link route to its gateway', () => {
    const client = plan.namespaces.find((n) => n.ns === 'np-abc123-h-internet-client')!;
    expect(client.batch).toContain('addr add 123.45.6.7/32 dev eth0');
    expect(client.batch).toContain('route add default via 100.0.0.254 dev eth0 onlink');
  });

  it('gives the router its three legs and its default route out of eth1', () => {
    const router = plan.namespaces.find((n) => n.ref.kind === 'router')!;
    expect(router.batch).toEqual(
      expect.arrayContaining([
        'addr add 100.0.0.254/24 dev eth1',
        'addr add 172.16.0.254/24 dev eth2',
        'addr add 192.168.0.254/24 dev eth3',
        'route add default dev eth1',
      ]),
    );
    expect(router.attached).toEqual({ eth1: 'internet', eth2: 'dmz', eth3: 'trusted' });
  });

  it('attaches the web server, the DMZ client and the router to the DMZ switch', () => {
    const dmz = plan.namespaces.find((n) => n.ns === 'np-abc123-s-dmz')!;
    expect(Object.values(dmz.attached).sort()).toEqual(['bridge', 'dmz-client', 'router', 'webserver']);
  });
});
