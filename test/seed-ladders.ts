/**
 * The seed document's ladders (../shared/seed/dnat-description.txt) for the probes of
 * scenarios/dmz-three-network.yaml, as the seed writes them, and a comparison of natproof's
 * ladder lines with them: same steps, same addresses, same roles (client, webserver, router);
 * ports aside, since the seed shows none.
 */

const INTERNET = `
Arriving: from 123.45.6.7 (client) to 100.0.0.254 (router www.myhost.ca)
DNAT: from 123.45.6.7 (client) to 172.16.0.1 (webserver)
Reply: from 172.16.0.1 (webserver) to 123.45.6.7 (client)
un-DNAT: from 100.0.0.254 (router) to 123.45.6.7 (client)`;

// The seed's trusted-network lines: "Arriving ... DNAT" from its DNAT section, "Reply ... un-DNAT"
// from its un-DNAT section (case 2).
const TRUSTED_TO_ROUTER_TRUSTED = `
Arriving: from 192.168.0.2 (client) to 192.168.0.254 (router)
DNAT: from 192.168.0.2 (client) to 172.16.0.1 (webserver)
Reply: from 172.16.0.1 (webserver) to 192.168.0.2 (client)
un-DNAT: from 192.168.0.254 (router) to 192.168.0.2 (client)`;

// The seed's Internet-client trace with the trusted client in the client's place: the seed says
// DNAT/un-DNAT works for any client that is not on the server's own network.
const TRUSTED_TO_PUBLIC = `
Original: from 192.168.0.2 (client) to 100.0.0.254 (router www.myhost.ca)
DNAT: from 192.168.0.2 (client) to 172.16.0.1 (webserver)
Reply: from 172.16.0.1 (webserver) to 192.168.0.2 (client)
un-DNAT: from 100.0.0.254 (router) to 192.168.0.2 (client)`;

// "Before the SNAT rule was introduced".
const DMZ_WITHOUT_SNAT = `
Original: from 172.16.0.2 (client) to 100.0.0.254 (router www.myhost.ca)
DNAT: from 172.16.0.2 (client) to 172.16.0.1 (webserver)
Reply: from 172.16.0.1 (webserver) to 172.16.0.2 (client) [FAILS]`;

// "With the above SNAT rule added to the router".
const DMZ_WITH_SNAT = `
Original: from 172.16.0.2 (client) to 100.0.0.254 (router www.myhost.ca)
DNAT: from 172.16.0.2 (client) to 172.16.0.1 (webserver)
SNAT: from 172.16.0.254 (router) to 172.16.0.1 (webserver)
Reply: from 172.16.0.1 (webserver) to 172.16.0.254 (router)
un-SNAT: from 172.16.0.1 (webserver) to 172.16.0.2 (client)
un-DNAT: from 100.0.0.254 (router) to 172.16.0.2 (client)`;

// The seed's "Arriving: from 172.16.0.2 (client) to 172.16.0.254 (router)" and its DMZ reply
// (case 3), which fails the same way.
const DMZ_ROUTER_WITHOUT_SNAT = `
Arriving: from 172.16.0.2 (client) to 172.16.0.254 (router)
DNAT: from 172.16.0.2 (client) to 172.16.0.1 (webserver)
Reply: from 172.16.0.1 (webserver) to 172.16.0.2 (client) [FAILS]`;

// The SNAT ladder for a client that used the router's DMZ address: un-DNAT restores that address.
const DMZ_ROUTER_WITH_SNAT = `
Arriving: from 172.16.0.2 (client) to 172.16.0.254 (router)
DNAT: from 172.16.0.2 (client) to 172.16.0.1 (webserver)
SNAT: from 172.16.0.254 (router) to 172.16.0.1 (webserver)
Reply: from 172.16.0.1 (webserver) to 172.16.0.254 (router)
un-SNAT: from 172.16.0.1 (webserver) to 172.16.0.2 (client)
un-DNAT: from 172.16.0.254 (router) to 172.16.0.2 (client)`;

/** rule set -> probe -> the seed's ladder. */
export const SEED_LADDERS: Record<string, Record<string, string>> = {
  'dnat-only': {
    'internet-to-public': INTERNET,
    'dmz-to-public': DMZ_WITHOUT_SNAT,
    'dmz-to-router-dmz': DMZ_ROUTER_WITHOUT_SNAT,
    'trusted-to-public': TRUSTED_TO_PUBLIC,
    'trusted-to-router-trusted': TRUSTED_TO_ROUTER_TRUSTED,
  },
  hairpin: {
    'internet-to-public': INTERNET,
    'dmz-to-public': DMZ_WITH_SNAT,
    'dmz-to-router-dmz': DMZ_ROUTER_WITH_SNAT,
    'trusted-to-public': TRUSTED_TO_PUBLIC,
    'trusted-to-router-trusted': TRUSTED_TO_ROUTER_TRUSTED,
  },
};

/** One line in comparable form: `DNAT 172.16.0.2 client -> 172.16.0.1 webserver`, plus `FAILS`. */
interface Rung {
  label: string;
  src: string;
  srcRole: string;
  dst: string;
  dstRole: string;
  failed: boolean;
}

const LINE = /^([A-Za-z-]+):\s+from (\S+) \(([^)]+)\) to (\S+) \(([^)]+)\)(?: \[(.+)\])?$/;

function rung(line: string, role: (name: string) => string): Rung {
  const m = LINE.exec(line.trim());
  if (!m) throw new Error(`not a ladder line: ${JSON.stringify(line)}`);
  const [, label, src, srcName, dst, dstName, note] = m as unknown as [string, string, string, string, string, string, string | undefined];
  return {
    // The seed calls the first rung "Original" in one place and "Arriving" in another.
    label: label === 'Arriving' ? 'Original' : label,
    src: src.replace(/:\d+$/, ''),
    srcRole: role(srcName),
    dst: dst.replace(/:\d+$/, ''),
    dstRole: role(dstName),
    // natproof says where the packet went astray; the seed says [FAILS].
    failed: note !== undefined && (note === 'FAILS' || note.includes('bypassed the router')),
  };
}

/** The seed's names are roles; natproof's are the scenario's host and interface names. */
function seedRole(name: string): string {
  return name.startsWith('router') ? 'router' : name;
}

function natproofRole(client: string): (name: string) => string {
  return (name) => (name === client ? 'client' : name.startsWith('router ') ? 'router' : name);
}

/** natproof's ladder lines and the seed's ladder, both in comparable form. */
export function compareWithSeed(lines: string[], seed: string, client: string): { actual: Rung[]; expected: Rung[] } {
  return {
    actual: lines.map((l) => rung(l, natproofRole(client))),
    expected: seed
      .trim()
      .split('\n')
      .map((l) => rung(l, seedRole)),
  };
}
