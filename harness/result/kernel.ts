/**
 * The kernel's account of a rule set, as the result keeps it: rule counters, conntrack, SNMP
 * counters, sysctls, routes and listening sockets, read from the router and the servers after
 * the probes (../evidence/collect.ts reads them). Data only.
 */

/** One iptables rule as `iptables-save -c` prints it. */
export interface IptablesRule {
  table: string;
  chain: string;
  /** 1-based position in its chain, as `iptables -L --line-numbers` and `-I`/`-R` count. */
  position: number;
  packets: number;
  bytes: number;
  /** The rule without its counters, e.g. `-A PREROUTING -d 100.0.0.254/32 -p tcp ... -j DNAT ...`. */
  text: string;
}

/** A built-in chain's policy, with the packets it decided (those no rule took). */
export interface ChainPolicy {
  table: string;
  chain: string;
  policy: string;
  packets: number;
  bytes: number;
}

export interface Route {
  /** `default`, or a prefix such as `172.16.0.0/24` (a host route may have no `/32`). */
  dst: string;
  gateway: string | null;
  dev: string | null;
}

export interface NodeEvidence {
  /** `router`, or the host's name. */
  node: string;
  /** SNMP and extended counters that grew during the probes (nstat names), e.g. IpInAddrErrors. */
  counters: Record<string, number>;
  routes: Route[];
  /** Evidence that could not be read, and why. */
  missing: string[];
}

export interface RouterEvidence extends NodeEvidence {
  /** ip_forward and the rp_filter of `all` and of each interface. */
  sysctls: Record<string, string>;
  /** Every iptables(-nft) rule with its packet and byte counters. */
  rules: IptablesRule[];
  policies: ChainPolicy[];
  /** `nft -a list ruleset` (rules with their handles) for an nft rule set, whose native rules iptables-save cannot show. */
  nftRuleset: string | null;
  /** `conntrack -L` after the probes. */
  conntrack: string[];
  /**
   * The router's nftables trace of the probes' packets (`nft monitor` lines: each base chain a
   * packet entered, each rule that matched it, the verdicts), covering nft and iptables-nft rules
   * alike. Absent in results written before it existed.
   */
  nftTrace?: string[];
  /**
   * Every nf_tables chain on the router with its rules' handles in the chain's order, read when
   * the trace stopped: a trace line names a rule by handle, and its place in this list is its
   * position (for iptables-nft, the position `iptables -S` numbers). Absent in results written
   * before it existed, or when it could not be read.
   */
  nftChains?: NftChainRules[];
  /**
   * Connections the router itself opened after the probes, one per hairpin SNAT rule that may
   * take them; absent in results written before it existed.
   */
  routerOriginated?: RouterOriginatedObservation[];
}

/** One nf_tables chain's rules, by handle, in the order the kernel runs them. */
export interface NftChainRules {
  /** `ip`, `ip6`, `inet`, ... */
  family: string;
  table: string;
  chain: string;
  handles: number[];
}

/** One connection from the router to a closed port, and what the kernel counted for it. */
export interface RouterOriginatedObservation {
  /** The nat POSTROUTING rule watched. */
  rulePosition: number;
  from: string;
  to: string;
  port: number;
  /**
   * How much the rule's packet counter grew during the connection. (Its conntrack entry is not
   * kept: a connection reset in SYN_SENT is gone from `conntrack -L` at once.)
   */
  counterDelta: number;
  /** How the connection ended, as the router saw it. */
  outcome: string;
}

export interface HostEvidence extends NodeEvidence {
  /** Listening TCP sockets, `address:port`. */
  listening: string[];
  /** Bound UDP sockets, `address:port` (ss -lun); absent in results written before natproof had UDP. */
  listeningUdp?: string[];
}

/**
 * `all` when some request failed; `rules` when every request worked, where only the rules are
 * read (what rule-set warnings need), to keep passing rule sets cheap.
 */
export type EvidenceScope = 'all' | 'rules';

export interface KernelEvidence {
  scope: EvidenceScope;
  router: RouterEvidence;
  /** The servers: the hosts with services, where DNATed requests are meant to land. */
  hosts: HostEvidence[];
}
