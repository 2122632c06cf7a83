/** Rule text -> tool input and line map, and real tool stderr -> the user's line. Pure: no namespaces. */
import { describe, expect, it } from 'vitest';
import { RuleError } from '../../harness/errors.js';
import { runStep, type ToolExec, toolArgv } from '../../harness/rules/apply.js';
import { compileRules, detectRuleFormat, ruleErrorFromKernel, type RuleStep } from '../../harness/rules/compile.js';
import type { RuleFormat, RuleSource } from '../../harness/scenario/topology.js';

const FILE = 'scenarios/dmz-three-network.yaml';

/** A rule block as it sits in a scenario: its first line at `line`, indented to column 7. */
function source(text: string, format: RuleFormat = 'iptables', line = 79): RuleSource {
  return { format, text, origin: { file: FILE, line, column: 7 } };
}

function compileOne(src: RuleSource): RuleStep {
  const steps = compileRules(src);
  expect(steps).toHaveLength(1);
  return steps[0] as RuleStep;
}

/** Each input line beside the user line it came from, for readable expectations. */
function mapped(step: RuleStep): Array<[string, number | undefined]> {
  return step.input
    .trimEnd()
    .split('\n')
    .map((text, i) => [text, step.lines[i]?.position.line]);
}

function compileError(src: RuleSource): RuleError {
  try {
    compileRules(src);
  } catch (err) {
    if (err instanceof RuleError) return err;
    throw err;
  }
  throw new Error('expected a RuleError');
}

// scenarios/dmz-three-network.yaml, rule set `hairpin`; its first line is line 79 of the file.
const HAIRPIN = `# DNAT: port 80 on any router address goes to the DMZ web server
iptables -t nat -A PREROUTING -d 100.0.0.254 \\
    -p tcp --dport 80 -j DNAT --to 172.16.0.1
iptables -t nat -A PREROUTING -d 172.16.0.254 \\
    -p tcp --dport 80 -j DNAT --to 172.16.0.1
iptables -t nat -A PREROUTING -d 192.168.0.254 \\
    -p tcp --dport 80 -j DNAT --to 172.16.0.1
# SNAT: make same-network clients and servers talk through the router
iptables -t nat -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 \\
    -m conntrack --ctstate DNAT -j SNAT --to 172.16.0.254
iptables -t nat -A POSTROUTING -s 192.168.0.0/24 -d 192.168.0.0/24 \\
    -m conntrack --ctstate DNAT -j SNAT --to 192.168.0.254
`;

// scenarios/home-router-hairpin.yaml, rule set `with-snat`.
const WITH_SNAT = `iptables -t nat -A PREROUTING -i ppp0 -p tcp --dport 80 -j DNAT --to-destination 192.168.2.250
iptables -t nat -A PREROUTING -i br0 -d 45.72.234.196 -j DNAT --to-destination 192.168.2.250
iptables -t nat -A POSTROUTING -s 192.168.2.0/24 -d 192.168.2.250 -j SNAT --to 192.168.2.254
`;

describe('compileRules: iptables command lines', () => {
  it('turns the seed hairpin rules into one nat table for iptables-restore', () => {
    const step = compileOne(source(HAIRPIN));
    expect(step.tool).toBe('iptables-restore');
    expect(step.input).toBe(
      [
        '*nat',
        '-A PREROUTING -d 100.0.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1',
        '-A PREROUTING -d 172.16.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1',
        '-A PREROUTING -d 192.168.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1',
        '-A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to 172.16.0.254',
        '-A POSTROUTING -s 192.168.0.0/24 -d 192.168.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to 192.168.0.254',
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(step.lines.map((l) => l?.position.line)).toEqual([undefined, 80, 82, 84, 87, 89, undefined]);
  });

  it('records each rule as written, continuations joined, at its first column', () => {
    const step = compileOne(source(HAIRPIN));
    expect(step.lines[1]).toEqual({
      position: { file: FILE, line: 80, column: 7 },
      text: 'iptables -t nat -A PREROUTING -d 100.0.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1',
    });
  });

  it('compiles the home router appendix rules', () => {
    const step = compileOne(source(WITH_SNAT, 'iptables', 55));
    expect(mapped(step)).toEqual([
      ['*nat', undefined],
      ['-A PREROUTING -i ppp0 -p tcp --dport 80 -j DNAT --to-destination 192.168.2.250', 55],
      ['-A PREROUTING -i br0 -d 45.72.234.196 -j DNAT --to-destination 192.168.2.250', 56],
      ['-A POSTROUTING -s 192.168.2.0/24 -d 192.168.2.250 -j SNAT --to 192.168.2.254', 57],
      ['COMMIT', undefined],
    ]);
  });

  it('skips blank lines and comments, including comments after a command', () => {
    const text = '\n  # set up\n\n  iptables -A FORWARD -j ACCEPT   # allow all\n\t\n';
    const step = compileOne(source(text, 'iptables', 10));
    expect(mapped(step)).toEqual([
      ['*filter', undefined],
      ['-A FORWARD -j ACCEPT', 13],
      ['COMMIT', undefined],
    ]);
    expect(step.lines[1]).toEqual({ position: { file: FILE, line: 13, column: 9 }, text: 'iptables -A FORWARD -j ACCEPT' });
  });

  it('treats # inside a word as text, like a shell does, and quotes it for iptables-restore', () => {
    const step = compileOne(source('iptables -A FORWARD -m comment --comment a#b -j ACCEPT'));
    expect(step.input).toContain('--comment "a#b" -j ACCEPT');
  });

  it('accepts CRLF line endings and continuations', () => {
    const step = compileOne(source('iptables -A FORWARD \\\r\n  -j ACCEPT\r\niptables -A FORWARD -j DROP\r\n'));
    expect(mapped(step)).toEqual([
      ['*filter', undefined],
      ['-A FORWARD -j ACCEPT', 79],
      ['-A FORWARD -j DROP', 81],
      ['COMMIT', undefined],
    ]);
  });

  it('understands shell quoting and re-quotes for iptables-restore', () => {
    const text = [
      `iptables -A FORWARD -m comment --comment "web forward" -j ACCEPT`,
      `iptables -A FORWARD -m comment --comment 'it is "quoted"' -j ACCEPT`,
      `iptables -A FORWARD -m comment --comment back\\ slash\\\\ -j ACCEPT`,
      `iptables -A FORWARD -m comment --comment "" -j ACCEPT`,
      `iptables -A FORWARD -m comment --comment 'a'"b"c -j ACCEPT`,
      `iptables -A FORWARD -m comment --comment "\\$5 \\"off\\"" -j ACCEPT`,
      `iptables -A FORWARD -m comment --comment 'cost: $5' -j ACCEPT`,
    ].join('\n');
    const rules = compileOne(source(text))
      .input.split('\n')
      .filter((l) => l.startsWith('-A'));
    expect(rules).toEqual([
      '-A FORWARD -m comment --comment "web forward" -j ACCEPT',
      '-A FORWARD -m comment --comment "it is \\"quoted\\"" -j ACCEPT',
      '-A FORWARD -m comment --comment "back slash\\\\" -j ACCEPT',
      '-A FORWARD -m comment --comment "" -j ACCEPT',
      '-A FORWARD -m comment --comment abc -j ACCEPT',
      '-A FORWARD -m comment --comment "$5 \\"off\\"" -j ACCEPT',
      '-A FORWARD -m comment --comment "cost: $5" -j ACCEPT',
    ]);
  });

  it('puts -P policies and -N chains in the table header, rules after, in the user order', () => {
    const text = [
      'iptables -A FORWARD -i eth1 -j DROP',
      'iptables -P FORWARD DROP',
      'iptables -N WEB',
      'iptables -A WEB -p tcp --dport 80 -j ACCEPT',
      'iptables -I FORWARD 1 -j WEB',
      'iptables -D FORWARD -i eth1 -j DROP',
    ].join('\n');
    expect(mapped(compileOne(source(text, 'iptables', 1)))).toEqual([
      ['*filter', undefined],
      [':FORWARD DROP [0:0]', 2],
      [':WEB - [0:0]', 3],
      ['-A FORWARD -i eth1 -j DROP', 1],
      ['-A WEB -p tcp --dport 80 -j ACCEPT', 4],
      ['-I FORWARD 1 -j WEB', 5],
      ['-D FORWARD -i eth1 -j DROP', 6],
      ['COMMIT', undefined],
    ]);
  });

  it('groups rules per table in the order tables first appear', () => {
    const text = [
      'iptables -t nat -A PREROUTING -p tcp --dport 80 -j DNAT --to 10.0.0.1',
      'iptables -A FORWARD -d 10.0.0.1 -j ACCEPT',
      'iptables -A POSTROUTING -t nat -j MASQUERADE',
      'iptables --table=mangle --append PREROUTING -j ACCEPT',
      'iptables -w -t nat -w 5 --wait -A OUTPUT -j ACCEPT',
    ].join('\n');
    expect(mapped(compileOne(source(text, 'iptables', 1)))).toEqual([
      ['*nat', undefined],
      ['-A PREROUTING -p tcp --dport 80 -j DNAT --to 10.0.0.1', 1],
      ['-A POSTROUTING -j MASQUERADE', 3],
      ['-A OUTPUT -j ACCEPT', 5],
      ['COMMIT', undefined],
      ['*filter', undefined],
      ['-A FORWARD -d 10.0.0.1 -j ACCEPT', 2],
      ['COMMIT', undefined],
      ['*mangle', undefined],
      ['-A PREROUTING -j ACCEPT', 4],
      ['COMMIT', undefined],
    ]);
  });

  it('accepts iptables-nft as the program', () => {
    expect(compileOne(source('iptables-nft -t nat -A POSTROUTING -j MASQUERADE')).input).toContain('-A POSTROUTING -j MASQUERADE');
  });

  it('spells out -F and -X without a chain, chain by chain', () => {
    const text = ['iptables -N WEB', 'iptables -A WEB -j ACCEPT', 'iptables -F', 'iptables -X', 'iptables -t nat -F'].join('\n');
    expect(mapped(compileOne(source(text, 'iptables', 1)))).toEqual([
      ['*filter', undefined],
      [':WEB - [0:0]', 1],
      ['-A WEB -j ACCEPT', 2],
      ['-F INPUT', 3],
      ['-F FORWARD', 3],
      ['-F OUTPUT', 3],
      ['-F WEB', 3],
      ['-X WEB', 4],
      ['COMMIT', undefined],
      ['*nat', undefined],
      ['-F PREROUTING', 5],
      ['-F INPUT', 5],
      ['-F OUTPUT', 5],
      ['-F POSTROUTING', 5],
      ['COMMIT', undefined],
    ]);
  });

  it('a leading flush of an empty table adds nothing to apply', () => {
    const text = 'iptables -X\niptables -t nat -X\niptables -t nat -A POSTROUTING -j MASQUERADE';
    expect(compileOne(source(text)).input).toBe('*filter\nCOMMIT\n*nat\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n');
  });

  it('turns -R into delete and insert at the same number', () => {
    const text = 'iptables -A FORWARD -s 10.0.0.1 -j DROP\niptables -R FORWARD 1 -s 10.0.0.2 -j DROP';
    expect(mapped(compileOne(source(text, 'iptables', 1)))).toEqual([
      ['*filter', undefined],
      ['-A FORWARD -s 10.0.0.1 -j DROP', 1],
      ['-D FORWARD 1', 2],
      ['-I FORWARD 1 -s 10.0.0.2 -j DROP', 2],
      ['COMMIT', undefined],
    ]);
  });

  it('compiles nothing to nothing', () => {
    expect(compileRules(source('# no rules yet\n\n'))).toEqual([]);
  });

  // Positions: the block's line 1 is line 79 of the file and its indentation is column 7.
  it.each([
    ['sudo', 'sudo iptables -A FORWARD -j ACCEPT', 79, 7, 'drop `sudo`'],
    ['ip6tables', 'ip6tables -A FORWARD -j ACCEPT', 79, 7, 'IPv6 rules are not supported'],
    ['iptables-legacy', 'iptables-legacy -A FORWARD -j ACCEPT', 79, 7, 'nf_tables backend'],
    ['another program', '# ok\nip route add default via 10.0.0.1', 80, 7, 'starting with `iptables` or `iptables-nft`, not `ip`'],
    ['an assignment before a command', 'WEB=10.0.0.1 iptables -A FORWARD -j ACCEPT', 79, 7, "only sets that command's environment"],
    ['a variable never set', 'iptables -A FORWARD -d $WEB -j ACCEPT', 79, 30, '`$WEB` is not set'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax in rule text.
    ['a variable set only below', 'iptables -A FORWARD -m comment --comment "${X}" -j ACCEPT\nX=1', 79, 49, '`$X` is not set'],
    ['a command substitution with $(', 'iptables -A FORWARD -d $(cat ip) -j ACCEPT', 79, 30, 'command substitution runs a command'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax in rule text, which natproof must refuse.
    ['a default expansion', 'W=1\niptables -A FORWARD -d ${W:-10.0.0.1} -j ACCEPT', 80, 30, 'only `${NAME}` is understood'],
    ['a positional parameter', 'iptables -A FORWARD -d $1 -j ACCEPT', 79, 30, '`$` must start a variable'],
    ['an unknown path to iptables', '/opt/fw/iptables -A FORWARD -j ACCEPT', 79, 7, 'a path may name it only in /sbin'],
    ['a script line that is not iptables', 'set -e\niptables -F', 79, 7, 'not `set`'],
    ['a command substitution', 'iptables -A FORWARD -d `cat ip` -j ACCEPT', 79, 30, 'command substitution'],
    ['a pipe', 'iptables -S | grep DNAT', 79, 19, 'pipes'],
    ['a semicolon', 'iptables -F; iptables -X', 79, 18, 'one command per line'],
    ['&&', 'iptables -F && iptables -X', 79, 19, '`&&`'],
    ['a redirection', 'iptables -A FORWARD -j ACCEPT > /dev/null', 79, 37, 'redirections'],
    ['an unterminated quote', 'iptables -A FORWARD -m comment --comment "web \\\n  -j ACCEPT', 79, 48, 'unterminated double quote'],
    ['a quoted newline', "iptables -A FORWARD -m comment --comment 'a\nb' -j ACCEPT", 79, 48, 'spans lines'],
    ['a dangling continuation', 'iptables -A FORWARD -j ACCEPT \\', 79, 37, 'continuation'],
    ['no command', 'iptables -t nat', 79, 7, 'no command'],
    ['a listing command', 'iptables -t nat -L', 79, 23, '`-L` does not build rules'],
    ['two commands', 'iptables -A FORWARD -D FORWARD 1', 79, 27, 'one command per line'],
    [
      'an unknown table',
      'iptables -t natt -A PREROUTING -j ACCEPT',
      79,
      19,
      'unknown table `natt`; tables are filter, nat, mangle, raw, security',
    ],
    ['a missing table name', 'iptables -A PREROUTING -t', 79, 30, 'needs a table name'],
    ['a missing chain', 'iptables -t nat -A -j DNAT', 79, 25, '`-A` needs a chain name'],
    [
      'a chain not in the table',
      'iptables -A PREROUTING -j ACCEPT',
      79,
      19,
      'no chain PREROUTING in table filter (chains: INPUT, FORWARD, OUTPUT',
    ],
    ['a chain in the wrong case', 'iptables -t nat -A prerouting -j ACCEPT', 79, 26, 'no chain prerouting in table nat'],
    ['a policy on a user chain', 'iptables -N WEB\niptables -P WEB DROP', 80, 19, 'built-in chain'],
    ['a bad policy', 'iptables -P FORWARD REJECT', 79, 27, 'ACCEPT or DROP'],
    ['a policy without target', 'iptables -P FORWARD', 79, 26, 'ACCEPT or DROP'],
    ['a DROP policy in nat', 'iptables -t nat -P PREROUTING DROP', 79, 37, 'not for filtering'],
    ['a chain name with a blank', "iptables -N 'web chain'", 79, 19, 'invalid chain name `web chain`'],
    ['a chain name too long', `iptables -N ${'C'.repeat(29)}`, 79, 19, 'at most 28 characters'],
    ['a chain made twice', 'iptables -N WEB\n  iptables -N WEB', 80, 21, 'chain WEB already exists'],
    ['a built-in chain made', 'iptables -N FORWARD', 79, 19, 'already exists'],
    ['a chain re-created', 'iptables -N WEB\niptables -X WEB\niptables -N WEB', 81, 19, 're-creating a chain'],
    ['a flush with rule options', 'iptables -F FORWARD -s 10.0.0.1', 79, 27, 'takes only a chain name'],
    ['-R without a number', 'iptables -R FORWARD -j ACCEPT', 79, 26, '`-R` needs a rule number'],
  ])('refuses %s with its position', (_what, text, line, column, message) => {
    const err = compileError(source(text));
    expect(err.position).toEqual({ file: FILE, line, column });
    expect(err.message).toContain(message);
    expect(err.message).toContain(`${FILE}:${line}:${column}: `);
  });

  it('quotes the whole command, continuations joined, in a refusal', () => {
    const err = compileError(source('iptables -t nat -A PREROUTING \\\n    -d $PUBLIC_IP -j ACCEPT'));
    expect(err.position).toEqual({ file: FILE, line: 80, column: 14 });
    expect(err.ruleText).toBe('iptables -t nat -A PREROUTING -d $PUBLIC_IP -j ACCEPT');
  });

  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell variable syntax, as the user writes it.
  it('reads a firewall script: paths to iptables, variables set on their own lines, $NAME and ${NAME}', () => {
    const script = [
      '#!/bin/sh',
      'IPT=/usr/sbin/iptables',
      'WAN=eth1 WEB=192.168.1.10',
      'PORTS="80,443"',
      'MATCH="-p tcp -m multiport"',
      'NOTE="web server"',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell variable syntax, as the user writes it.
      '$IPT -t nat -A PREROUTING -i $WAN $MATCH --dports ${PORTS} -j DNAT --to-destination ${WEB}',
      '/sbin/iptables -A FORWARD -d $WEB -m comment --comment "$NOTE on $WAN" -j ACCEPT',
    ].join('\n');
    const step = compileOne(source(script));
    expect(step.input).toContain('-A PREROUTING -i eth1 -p tcp -m multiport --dports 80,443 -j DNAT --to-destination 192.168.1.10\n');
    expect(step.input).toContain('-A FORWARD -d 192.168.1.10 -m comment --comment "web server on eth1" -j ACCEPT\n');
    // The user's line as written, variables and all, for messages.
    expect(step.lines.find((l) => l?.text.includes('PREROUTING'))).toMatchObject({
      position: { line: 85 },
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell variable syntax, as the user writes it.
      text: '$IPT -t nat -A PREROUTING -i $WAN $MATCH --dports ${PORTS} -j DNAT --to-destination ${WEB}',
    });
  });

  it('says what is allowed', () => {
    expect(compileError(source('echo hi')).message).toContain('-A, -I, -D, -R, -N, -P, -F or -X');
  });
});

describe('compileRules: iptables-save and nft text', () => {
  const SAVE = '*nat\n:PREROUTING ACCEPT [0:0]\n  -A PREROUTING -j ACCEPT\nCOMMIT\n';

  it('passes iptables-save text through, line i at the origin line + i', () => {
    const step = compileOne(source(SAVE, 'iptables-save', 20));
    expect(step.tool).toBe('iptables-restore');
    expect(step.input).toBe(SAVE);
    expect(step.lines.map((l) => l?.position.line)).toEqual([20, 21, 22, 23]);
    expect(step.lines[2]).toEqual({ position: { file: FILE, line: 22, column: 9 }, text: '-A PREROUTING -j ACCEPT' });
  });

  it('passes an nft ruleset through for nft -f -', () => {
    const nft = 'table ip nat {\n  chain prerouting {\n  }\n}';
    const step = compileOne(source(nft, 'nft', 5));
    expect(step).toMatchObject({ tool: 'nft', input: nft });
    expect(step.lines.map((l) => [l?.position.line, l?.text])).toEqual([
      [5, 'table ip nat {'],
      [6, 'chain prerouting {'],
      [7, '}'],
      [8, '}'],
    ]);
  });
});

describe('toolArgv and runStep: one choice of command for applying and checking', () => {
  it('loads from stdin, or asks the tool its check mode', () => {
    expect(toolArgv({ tool: 'nft' }, { check: false })).toEqual(['nft', '-f', '-']);
    expect(toolArgv({ tool: 'nft' }, { check: true })).toEqual(['nft', '-c', '-f', '-']);
    expect(toolArgv({ tool: 'iptables-restore' }, { check: false })).toEqual(['iptables-restore', '--noflush']);
    expect(toolArgv({ tool: 'iptables-restore' }, { check: true })).toEqual(['iptables-restore', '--test', '--noflush']);
  });

  it('feeds the step on stdin to whatever exec it is given, and names the line the tool refused', async () => {
    const step = compileOne(source('iptables -t nat -A PREROUTING -j NOPE', 'iptables', 12));
    const calls: Array<{ argv: readonly string[]; input: string | undefined }> = [];
    const refuse: ToolExec = async (argv, options) => {
      calls.push({ argv, input: options.input });
      return {
        argv,
        exitCode: 2,
        signal: null,
        stdout: '',
        stderr: 'iptables-restore: line 2 failed: No chain/target/match by that name.\n',
      };
    };
    const err = await runStep(refuse, step, { check: true }).catch((e: unknown) => e);
    expect(calls).toEqual([{ argv: ['iptables-restore', '--test', '--noflush'], input: step.input }]);
    expect(err).toBeInstanceOf(RuleError);
    expect((err as RuleError).position?.line).toBe(12);
  });

  it('resolves when the tool accepts the step', async () => {
    const step = compileOne(source('nft add table ip t', 'nft', 3));
    const argvs: Array<readonly string[]> = [];
    const accept: ToolExec = async (argv) => {
      argvs.push(argv);
      return { argv, exitCode: 0, signal: null, stdout: '', stderr: '' };
    };
    await runStep(accept, step, { check: false });
    expect(argvs).toEqual([['nft', '-f', '-']]);
  });
});

describe('iptables-save and nft text refused before anything is built', () => {
  function refusal(text: string, format: 'iptables-save' | 'nft'): RuleError {
    try {
      compileRules(source(text, format, 40));
    } catch (err) {
      if (err instanceof RuleError) return err;
      throw err;
    }
    throw new Error('expected the text to be refused');
  }

  it.each([
    ['*nat\n-A PREROUTING -j ACCEPT\n', 40, '`*nat` has no COMMIT'],
    ['*nat\n*filter\nCOMMIT\n', 41, '`*filter` starts a table before `*nat` ended'],
    ['*natt\nCOMMIT\n', 40, 'unknown table `natt`; tables are filter, nat, mangle, raw, security'],
    ['-A PREROUTING -j ACCEPT\n', 40, 'outside a table'],
    ['*nat\niptables -t nat -A PREROUTING -j ACCEPT\nCOMMIT\n', 41, 'not an iptables-save line'],
    ['*filter\n:FORWARD REJECT [0:0]\nCOMMIT\n', 41, 'the policy of filter FORWARD must be ACCEPT or DROP'],
    ['*nat\n:PORTFWD ACCEPT [0:0]\nCOMMIT\n', 41, 'PORTFWD is not a built-in chain of nat, so its policy must be `-`'],
    ['*nat\n:PREROUTING\nCOMMIT\n', 41, 'a chain line is `:CHAIN POLICY [packets:bytes]`'],
  ])('iptables-save %j: line %i, %s', (text, line, message) => {
    const err = refusal(text, 'iptables-save');
    expect(err.position?.line).toBe(line);
    expect(err.message).toContain(message);
  });

  it('accepts what iptables-save -c prints: comments, counters, user chains', () => {
    const save =
      '# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [3:180]\n:PORTFWD - [0:0]\n[3:180] -A PREROUTING -j PORTFWD\nCOMMIT\n';
    expect(() => compileRules(source(save, 'iptables-save', 1))).not.toThrow();
  });

  it.each([
    ['include "/dev/zero"\n', 40],
    ['table ip nat {\n  include "/etc/shadow"\n}\n', 41],
    ['flush ruleset; include "/etc/passwd"\n', 40],
  ])('nft %j: an include, which would read a file of the host, at line %i', (text, line) => {
    const err = refusal(text, 'nft');
    expect(err.position?.line).toBe(line);
    expect(err.message).toContain('`include` is not allowed');
  });

  it('lets nft text mention include in a comment or a string', () => {
    const nft = '# include "/etc/x" is not used\ntable ip nat {\n  chain c { comment "include \\"x\\""; }\n}\n';
    expect(() => compileRules(source(nft, 'nft', 1))).not.toThrow();
  });
});

describe('detectRuleFormat', () => {
  it.each([
    ['rules.nft', 'anything at all', 'nft'],
    ['rules.txt', '#!/usr/sbin/nft -f\nflush ruleset\n', 'nft'],
    ['rules.txt', '# nat\ntable ip nat {\n}\n', 'nft'],
    ['rules.txt', 'flush ruleset\n', 'nft'],
    ['rules.v4', '# Generated by iptables-save v1.8.9\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n', 'iptables-save'],
    ['rules.txt', ':FORWARD DROP [0:0]\n', 'iptables-save'],
    ['rules.sh', '#!/bin/sh\n\n  iptables -t nat -A POSTROUTING -j MASQUERADE\n', 'iptables'],
    ['rules.sh', 'sudo iptables -F\n', 'iptables'],
  ] as const)('%s: %j is %s', (file, text, format) => {
    expect(detectRuleFormat(text, file)).toBe(format);
  });

  it('names the accepted formats, and why the line it could not read matched none', () => {
    const text = '#!/bin/sh\nset -e\necho no rules here\n';
    expect(() => detectRuleFormat(text, 'rules.sh')).toThrow(RuleError);
    expect(() => detectRuleFormat(text, 'rules.sh')).toThrow(
      /^rules\.sh:2:1: cannot tell the rule format: the first rule line starts with `set`, which starts none of the formats; accepted formats: iptables command lines .*iptables-save output .*nft ruleset/,
    );
  });

  it.each([['#!/bin/sh\nIPT=/usr/sbin/iptables\n$IPT -F\n'], ['/sbin/iptables -t nat -F\n'], ['#!/bin/sh\nset -e\niptables -F\n']])(
    'takes a firewall script for iptables command lines: %j',
    (text) => {
      expect(detectRuleFormat(text, 'firewall.sh')).toBe('iptables');
    },
  );

  it('refuses a file without rules', () => {
    expect(() => detectRuleFormat('\n# nothing\n', 'empty.rules')).toThrow(/empty\.rules has no rules/);
  });
});

// Real stderr, collected by running iptables-restore v1.8.9 (nf_tables) and nft v1.0.6 in a
// scratch namespace with these inputs.
const RESTORE = {
  unknownOption: `iptables-restore v1.8.9 (nf_tables): unknown option "--dprot"
Error occurred at line: 3
Try \`iptables-restore -h' or 'iptables-restore --help' for more information.
`,
  badAddress: `iptables-restore v1.8.9 (nf_tables): host/network \`300.0.0.1' not found
Error occurred at line: 3
Try \`iptables-restore -h' or 'iptables-restore --help' for more information.
`,
  unknownChain: 'iptables-restore: line 3 failed: No chain/target/match by that name.\n',
  jumpToMissingChain: `iptables-restore v1.8.9 (nf_tables): Chain 'MYCHAIN' does not exist
Error occurred at line: 4
Try \`iptables-restore -h' or 'iptables-restore --help' for more information.
`,
  dnatInFilter: `iptables-restore v1.8.9 (nf_tables): 
line 3: RULE_APPEND failed (Invalid argument): rule in chain FORWARD
`,
  missingMatch: `iptables-restore v1.8.9 (nf_tables): Couldn't load match \`nosuchmatch':No such file or directory

Error occurred at line: 3
Try \`iptables-restore -h' or 'iptables-restore --help' for more information.
`,
  badPolicy: 'iptables-restore: line 2 failed: Bad policy name.\n',
  commitExpected: 'iptables-restore: COMMIT expected at line 3\n',
  badTable: `iptables-restore v1.8.9 (nf_tables): iptables-restore: line 1 table name 'natt' invalid
Error occurred at line: 1
Try \`iptables-restore -h' or 'iptables-restore --help' for more information.
`,
  hashInSaveFormat: `Bad argument \`#'
Error occurred at line: 3
Try \`iptables-restore -h' or 'iptables-restore --help' for more information.
`,
};

const NFT = {
  syntax: `/dev/stdin:4:30-34: Error: syntax error, unexpected string
    ip daddr 100.0.0.254 tcp dprot 80 dnat to 172.16.0.1
                             ^^^^^
`,
  unknownTable: `/dev/stdin:1:13-18: Error: No such file or directory; did you mean table ‘nat’ in family ip?
add rule ip nosuch prerouting tcp dport 80 accept
            ^^^^^^
`,
  twoErrors: `/dev/stdin:1:17-22: Error: Could not process rule: No such file or directory
add rule ip nat nosuch tcp dport 80 accept
                ^^^^^^
/dev/stdin:2:17-23: Error: Could not process rule: No such file or directory
add rule ip nat nosuch2 tcp dport 81 accept
                ^^^^^^^
`,
  endOfFile: `/dev/stdin:6:1-1: Error: syntax error, unexpected end of file

^
`,
};

describe('ruleErrorFromKernel: iptables-restore', () => {
  // Input line 3 is the rule on block line 3 (file line 81); line 2 is the policy on line 2.
  const step = compileOne(
    source(
      [
        'iptables -t nat -A PREROUTING -d 1.2.3.4 -j ACCEPT',
        'iptables -P FORWARD DROP',
        '  iptables -t nat -A PREROUTING -d 100.0.0.254 \\',
        '      -p tcp --dprot 80 -j DNAT --to 172.16.0.1',
        'iptables -t nat -A PREROUTING -j MYCHAIN',
      ].join('\n'),
    ),
  );
  const rule = 'iptables -t nat -A PREROUTING -d 100.0.0.254 -p tcp --dprot 80 -j DNAT --to 172.16.0.1';

  it('the fixture step is laid out as the stderr fixtures assume', () => {
    expect(mapped(step).slice(0, 5)).toEqual([
      ['*nat', undefined],
      ['-A PREROUTING -d 1.2.3.4 -j ACCEPT', 79],
      ['-A PREROUTING -d 100.0.0.254 -p tcp --dprot 80 -j DNAT --to 172.16.0.1', 81],
      ['-A PREROUTING -j MYCHAIN', 83],
      ['COMMIT', undefined],
    ]);
  });

  it.each([
    ['an unknown option', RESTORE.unknownOption, 'unknown option "--dprot"'],
    ['a bad address', RESTORE.badAddress, "host/network `300.0.0.1' not found"],
    ['an unknown chain', RESTORE.unknownChain, 'No chain/target/match by that name.'],
    ['a target in the wrong table', RESTORE.dnatInFilter, 'RULE_APPEND failed (Invalid argument): rule in chain FORWARD'],
    ['a missing match', RESTORE.missingMatch, "Couldn't load match `nosuchmatch':No such file or directory"],
  ])('maps %s to the user line and quotes the tool', (_what, stderr, toolMessage) => {
    const err = ruleErrorFromKernel(step, stderr);
    expect(err).toBeInstanceOf(RuleError);
    expect(err.position).toEqual({ file: FILE, line: 81, column: 9 });
    expect(err.ruleText).toBe(rule);
    expect(err.message).toBe(`${FILE}:81:9: iptables-restore rejected this rule: ${toolMessage}\n  rule: ${rule}`);
  });

  it('maps an error on a header line to the -P command', () => {
    const err = ruleErrorFromKernel(step, RESTORE.badPolicy.replace('line 2', 'line 7'));
    expect(step.input.split('\n')[6]).toBe(':FORWARD DROP [0:0]');
    expect(err.position?.line).toBe(80);
    expect(err.message).toContain('Bad policy name.');
  });

  it('finds the rule naming a missing chain when the tool blames COMMIT', () => {
    const err = ruleErrorFromKernel(step, RESTORE.jumpToMissingChain.replace('line: 4', 'line: 5'));
    expect(step.input.split('\n')[4]).toBe('COMMIT');
    expect(err.position).toEqual({ file: FILE, line: 83, column: 7 });
    expect(err.message).toContain("Chain 'MYCHAIN' does not exist");
  });

  it('keeps the message when no user line can be found', () => {
    const err = ruleErrorFromKernel(step, RESTORE.badTable);
    expect(err.position).toBeUndefined();
    expect(err.message).toBe("iptables-restore rejected the rules: line 1 table name 'natt' invalid");
  });

  it('says so when the tool printed nothing (it crashed)', () => {
    expect(ruleErrorFromKernel(step, '').message).toContain('no message');
  });

  it('maps iptables-save text line for line', () => {
    const save = compileOne(source('*nat\n-A PREROUTING -j ACCEPT # allow\n-A PREROUTING -j DROP\nCOMMIT', 'iptables-save', 30));
    const hash = ruleErrorFromKernel(save, RESTORE.hashInSaveFormat.replace('line: 3', 'line: 2'));
    expect(hash.position).toEqual({ file: FILE, line: 31, column: 7 });
    expect(hash.message).toContain("Bad argument `#'");
    const commit = ruleErrorFromKernel(save, RESTORE.commitExpected.replace('line 3', 'line 4'));
    expect(commit.position?.line).toBe(33);
    expect(commit.message).toContain('COMMIT expected at line 4');
  });
});

describe('ruleErrorFromKernel: nft', () => {
  it("maps nft's line and column into the user's file", () => {
    const text = [
      'table ip nat {',
      '  chain prerouting {',
      '    type nat hook prerouting priority dstnat; policy accept;',
      '    ip daddr 100.0.0.254 tcp dprot 80 dnat to 172.16.0.1',
      '  }',
      '}',
    ].join('\n');
    const err = ruleErrorFromKernel(compileOne(source(text, 'nft', 40)), NFT.syntax);
    // nft column 30 of the raw line; the block itself starts at column 7.
    expect(err.position).toEqual({ file: FILE, line: 43, column: 36 });
    expect(err.ruleText).toBe('ip daddr 100.0.0.254 tcp dprot 80 dnat to 172.16.0.1');
    expect(err.message).toContain('nft rejected this rule: syntax error, unexpected string');
  });

  it('quotes the tool on an unknown table', () => {
    const step = compileOne(source('add rule ip nosuch prerouting tcp dport 80 accept', 'nft'));
    const err = ruleErrorFromKernel(step, NFT.unknownTable);
    expect(err.position).toEqual({ file: FILE, line: 79, column: 19 });
    expect(err.message).toContain('No such file or directory; did you mean table ‘nat’ in family ip?');
  });

  it('reports the first error at its place and lists the others', () => {
    const text = 'add rule ip nat nosuch tcp dport 80 accept\nadd rule ip nat nosuch2 tcp dport 81 accept\n';
    const err = ruleErrorFromKernel(compileOne(source(text, 'nft')), NFT.twoErrors);
    expect(err.position?.line).toBe(79);
    expect(err.message).toContain(`(nft also reported: ${FILE}:80:23: Could not process rule: No such file or directory)`);
  });

  it('points an unexpected end of file at the last line', () => {
    const text = 'table ip t6 {\n  chain c {\n    accept\n  }\n';
    const err = ruleErrorFromKernel(compileOne(source(text, 'nft', 1)), NFT.endOfFile);
    expect(err.position?.line).toBe(4);
    expect(err.message).toContain('unexpected end of file');
  });

  it('keeps a message without a location', () => {
    const step = compileOne(source('flush ruleset', 'nft'));
    expect(ruleErrorFromKernel(step, 'Error: Could not process rule: Operation not permitted\n').message).toBe(
      'nft rejected the rules: Error: Could not process rule: Operation not permitted',
    );
  });
});
