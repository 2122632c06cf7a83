/**
 * The scale series' scenarios: the seed's router with N trusted clients, each probing the
 * public address (DNAT to the DMZ web server), so the cost of a host shows as the slope. Pure.
 */

/** The i-th client's address (i from 0) in 10.0.0.0/16, router 10.0.255.254: room for thousands. */
export function clientAddress(i: number): string {
  const n = i + 1;
  return `10.0.${Math.floor(n / 256)}.${n % 256}`;
}

export function scaleScenario(clients: number): string {
  const hosts = Array.from(
    { length: clients },
    (_, i) => `  client-${i}: { network: trusted, address: ${clientAddress(i)}, gateway: 10.0.255.254 }`,
  );
  const probes = Array.from(
    { length: clients },
    (_, i) =>
      `  client-${i}-to-public:\n    from: client-${i}\n    to: 100.0.0.254:80\n    expect: { ok: true, server_sees: ${clientAddress(i)} }`,
  );
  return [
    `name: scale-${clients}`,
    `description: ${clients} trusted clients, each probing the public address forwarded to the DMZ web server.`,
    'networks:',
    '  internet: { subnet: 100.0.0.0/24 }',
    '  dmz: { subnet: 172.16.0.0/24 }',
    '  trusted: { subnet: 10.0.0.0/16 }',
    'router:',
    '  forwarding: true',
    '  forward_policy: ACCEPT',
    '  interfaces:',
    '    eth1: { network: internet, address: 100.0.0.254 }',
    '    eth2: { network: dmz, address: 172.16.0.254 }',
    '    eth3: { network: trusted, address: 10.0.255.254 }',
    // One server answers every client at once: on a busy two-core machine a response can take
    // longer than the default 1.5 s without progress. The series measures the cost of hosts.
    'probe_timeout_ms: 5000',
    'hosts:',
    '  webserver: { network: dmz, address: 172.16.0.1, gateway: 172.16.0.254, services: [{ http: 80 }] }',
    ...hosts,
    'probes:',
    ...probes,
    'rulesets:',
    '  dnat:',
    '    iptables: |',
    '      iptables -t nat -A PREROUTING -d 100.0.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1',
    '',
  ].join('\n');
}
