/**
 * Flow analysis on recorded captures of a real run of scenarios/dmz-three-network.yaml
 * (test/fixtures/dmz-run/run.json says how they were made): the rewrites and the bypass are
 * read off the packets, for the broken and the fixed rule set.
 */
import { describe, expect, it } from 'vitest';
import { formatPlace } from '../../harness/result/result.js';
import { analyzeFlow, sightings, type FlowObservation } from '../../harness/trace/flows.js';
import { flowKey, RecordedRun } from '../recorded-run.js';

const run = RecordedRun.load('test/fixtures/dmz-run');

function observe(ruleset: string, probeName: string): FlowObservation {
  return analyzeFlow(sightings(run.traces(ruleset)), flowKey(run.probe(ruleset, probeName)));
}

describe('flow analysis of the DNAT-only rule set', () => {
  it('sees the Internet client DNATed on the way in and un-DNATed on the way back', () => {
    const flow = observe('dnat-only', 'internet-to-public');
    expect(flow.rewrites).toEqual(['DNAT', 'un-DNAT']);
    expect(flow.replyFrom).toBe('100.0.0.254');
    expect(flow.bypassedRouter).toBe(false);
    expect(flow.deliveredTo).toEqual({ host: 'webserver', src: '123.45.6.7', dst: '172.16.0.1' });
  });

  it('sees the DMZ client DNATed, then the server answering it directly across the DMZ', () => {
    const flow = observe('dnat-only', 'dmz-to-public');
    expect(flow.rewrites).toEqual(['DNAT']);
    expect(flow.bypassedRouter).toBe(true);
    expect(flow.replyFrom).toBe('172.16.0.1');
    expect(flow.clientRejectedReply).toBe(true);
    expect(flow.reply.map((h) => `${formatPlace(h.place)} ${h.direction}`)).toEqual(['dmz@webserver out', 'dmz@dmz-client in']);
  });
});

describe('flow analysis of the hairpin rule set', () => {
  it('sees all four rewrites for the DMZ client, in order, on the router DMZ leg', () => {
    const flow = observe('hairpin', 'dmz-to-public');
    expect(flow.rewrites).toEqual(['DNAT', 'SNAT', 'un-SNAT', 'un-DNAT']);
    expect(flow.bypassedRouter).toBe(false);
    expect(flow.replyFrom).toBe('100.0.0.254');
    expect(flow.deliveredTo?.src).toBe('172.16.0.254');
    expect(flow.request.filter((h) => h.place.kind === 'router').map((h) => `${formatPlace(h.place)} ${h.direction}`)).toEqual([
      'router:eth2 in',
      'router:eth2 out',
    ]);
  });

  it('leaves the trusted client its own address: no SNAT for traffic leaving its network', () => {
    const flow = observe('hairpin', 'trusted-to-public');
    expect(flow.rewrites).toEqual(['DNAT', 'un-DNAT']);
    expect(flow.deliveredTo?.src).toBe('192.168.0.2');
  });

  it('finds nothing for a probe that never sent a packet', () => {
    const flow = analyzeFlow(sightings(run.traces('hairpin')), {
      client: 'dmz-client',
      clientAddress: '172.16.0.2',
      clientPort: 1,
      target: { address: '100.0.0.254', port: 80 },
    });
    expect(flow).toMatchObject({ clientSent: false, request: [], reply: [], rewrites: [], replyFrom: null });
  });
});
