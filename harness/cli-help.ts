/** What `natproof --help` and `natproof COMMAND --help` print: one entry per command. */

export interface CommandHelp {
  /** The synopsis lines, without `natproof `. */
  synopsis: string[];
  /** What the command does, and its options, as printed under the synopsis. */
  text: string;
}

export const COMMAND_HELP = {
  run: {
    synopsis: [
      'run SCENARIO.yaml [--rules FILE] [--ruleset NAME]... [--json] [--out DIR] [--report] [--junit FILE] [--baseline FILE [--update-baseline]] [--markdown FILE] [--github] [--backend netns|docker]',
    ],
    text: `run       build the scenario's topology for real, apply each rule set, probe, and check the
          expectations against captured packets
  --rules FILE     candidate rules (iptables command lines, iptables-save, or nft) replacing
                   the scenario's own; held to the probes' expectations, or to those of the
                   rule sets named with --ruleset
  --ruleset NAME   run only this rule set (repeatable)
  --json           print the result as JSON on stdout
  --out DIR        keep artifacts: pcaps, server logs, conntrack events, result.json
  --report         also write DIR/report.html and DIR/report.md (needs --out)
  --junit FILE     write the probes as JUnit XML test cases, for CI
  --backend NAME   netns (default: namespaces on this machine) or docker (containers on the
                   engine DOCKER_HOST names, else the local one)
  --baseline FILE  compare with a kept result.json, probe by probe: exit 1 when a probe that met
                   its expectations there no longer does
  --update-baseline  write this run's result to the --baseline file (after review)
  --markdown FILE  write a compact Markdown summary for a pull-request comment: only the probes
                   that failed (and, with --baseline, changed), their ladders on one line and
                   diagnoses; names the artifact $NATPROOF_ARTIFACT of the workflow run
  --github         in GitHub Actions: an ::error annotation per failed expectation at the
                   probe's (or the diagnosed rule's) line, and the compact Markdown appended
                   to $GITHUB_STEP_SUMMARY`,
  },
  diff: {
    synopsis: [
      'diff SCENARIO.yaml (--rules FILE | --ruleset NAME) (--rules FILE | --ruleset NAME) [--json] [--markdown FILE] [--html FILE] [--fail-on-change] [--backend netns|docker]',
      'diff SCENARIO.yaml --git REVISION --rules FILE [...]',
    ],
    text: `diff      run the probes under two rule sets on one topology and report what changed: fixed,
          regressed, changed, same. The first --rules/--ruleset is before, the second after;
          with --git REVISION, before is --rules FILE as committed at REVISION (read with git)
  --json           print {probes: [{name, class, changed, before, after}], ...} on stdout
  --markdown FILE  write a compact Markdown table of the changed probes (a PR comment)
  --html FILE      write the two rule sets side by side with the differences marked, and
                   each changed probe's ladder before and after
  --fail-on-change exit 1 when anything changed at all, not only when something regressed
  --backend NAME   netns (default) or docker`,
  },
  explain: {
    synopsis: ['explain SCENARIO.yaml [--ruleset NAME | --rules FILE] [--json] [--backend netns|docker]'],
    text: `explain   run the rule set whole, then once without each rule, and say which probes need
          which rule (fail, work or change without it); a rule no probe needs is dead (the
          kernel counted packets on it) or untested (no probe packet reached it)
  --ruleset NAME   the scenario's rule set to explain (needed when it has several)
  --rules FILE     explain these rules instead, held to the probes' own expectations
  --json           print the explanation as JSON on stdout
  --backend NAME   netns (default) or docker`,
  },
  report: {
    synopsis: ['report RUN_DIR [--junit FILE] [--markdown FILE] [--github]'],
    text: `report    print a kept run again and write RUN_DIR/report.html and RUN_DIR/report.md from
          RUN_DIR/result.json; exits 0 whatever the run's verdict was
  --junit FILE     also write JUnit XML
  --markdown FILE  also write the compact Markdown for a pull-request comment (as run's)
  --github         also print GitHub Actions annotations and write $GITHUB_STEP_SUMMARY`,
  },
  validate: {
    synopsis: ['validate SCENARIO.yaml...'],
    text: `validate  check scenario files, their rules included, without building anything`,
  },
  up: {
    synopsis: ['up SCENARIO.yaml [--ruleset NAME | --rules FILE] [--backend netns|docker]'],
    text: `up        build the scenario's topology, start its servers, apply one rule set, and keep the
          lab: prints its run id for exec, probe and down
  --ruleset NAME   the rule set to apply (needed when the scenario has several)
  --rules FILE     apply these rules instead, held to the probes' own expectations
  --backend NAME   netns (default) or docker; later commands find it by its run id`,
  },
  exec: {
    synopsis: ['exec RUN NODE -- COMMAND [ARG]...'],
    text: `exec      run a command in a node of a kept lab (a host, the router, a forwarder, or
          segment:NETWORK), on this terminal, and exit with its exit code; no timeout, so an
          interactive command (a shell, tcpdump) runs until it ends; Ctrl-C goes to the command`,
  },
  probe: {
    synopsis: ['probe RUN [--json] [--out DIR]'],
    text: `probe     send the scenario's probes again on a kept lab, under fresh captures, and judge
          them as run does, against the router's rules as they are now (changed by exec or not)
  --json           print the result as JSON on stdout (the same contract as run --json)
  --out DIR        keep this round's artifacts: pcaps, result.json`,
  },
  down: {
    synopsis: ['down RUN...'],
    text: `down      remove a kept lab: every process in it, its namespaces or containers, its records`,
  },
  ls: {
    synopsis: ['ls [--json]'],
    text: `ls        list kept labs (run id, scenario, backend, rule set, age) and netns runs in progress
  --json           print them as JSON on stdout`,
  },
  clean: {
    synopsis: ['clean [--all] [--backend netns|docker]'],
    text: `clean     remove what crashed or killed runs left behind (never a run still going, and
          nothing a run record does not prove natproof's); kept labs are left up, and named
  --all            remove the kept labs too, as down does
  --backend NAME   netns (default) or docker`,
  },
} satisfies Record<string, CommandHelp>;

export type CommandName = keyof typeof COMMAND_HELP;

const EXIT_CODES = `exit codes: 0 every expectation holds (diff: nothing regressed), 1 some do not (diff: a probe
regressed), 2 bad input or host problem, 130 interrupted`;

export function isCommand(name: string): name is CommandName {
  return Object.hasOwn(COMMAND_HELP, name);
}

/** Every command: the synopses, then each command's text. */
export function usage(): string {
  const entries = Object.values(COMMAND_HELP) as CommandHelp[];
  const synopses = entries.flatMap((c) => c.synopsis.map((s) => `  natproof ${s}`));
  return [
    'usage:',
    ...synopses,
    '  natproof COMMAND --help',
    '  natproof --version',
    '',
    ...entries.map((c) => c.text),
    '',
    EXIT_CODES,
  ].join('\n');
}

/** One command's synopsis and text. */
export function commandHelp(name: CommandName): string {
  const help: CommandHelp = COMMAND_HELP[name];
  return ['usage:', ...help.synopsis.map((s) => `  natproof ${s}`), '', help.text, '', EXIT_CODES].join('\n');
}
