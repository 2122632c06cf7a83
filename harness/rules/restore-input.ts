/**
 * Building the iptables-restore input from parsed iptables commands: one `*table` ... `COMMIT`
 * block per table, with every line mapped back to the command the user wrote.
 */
import { ACTION_FLAGS, BUILTIN_CHAINS, type Action, type IptablesCommand, type Table } from './iptables-command.js';
import type { RuleLineOrigin, RuleStep } from './rule-step.js';
import type { SourceText } from './source-text.js';
import type { Word } from './words.js';

/** The commands as one iptables-restore input; tables appear in the order the user first used them. */
export function restoreStep(source: SourceText, commands: IptablesCommand[]): RuleStep {
  const tables = new Map<Table, TableBuilder>();
  for (const command of commands) {
    const builder = tables.get(command.table) ?? new TableBuilder(command.table, source);
    tables.set(command.table, builder);
    builder.add(command);
  }
  const lines = [...tables.values()].flatMap((t) => t.lines());
  return { tool: 'iptables-restore', input: lines.map((l) => `${l.text}\n`).join(''), lines: lines.map((l) => l.origin) };
}

interface RestoreLine {
  text: string;
  origin: RuleLineOrigin | undefined;
}

/**
 * One table's part of the restore input: chain headers (`-N` chains, `-P` policies) first,
 * because iptables-restore only declares chains and policies there, then the rule commands in
 * the user's order. It tracks which chains exist so mistakes a shell run would hit are reported
 * on the user's line instead of as a tool error.
 */
class TableBuilder {
  private readonly headers: RestoreLine[] = [];
  private readonly body: RestoreLine[] = [];
  private readonly userChains = new Set<string>();
  private readonly deletedChains = new Set<string>();

  constructor(
    private readonly table: Table,
    private readonly source: SourceText,
  ) {}

  lines(): RestoreLine[] {
    const open = { text: `*${this.table}`, origin: undefined };
    return [open, ...this.headers, ...this.body, { text: 'COMMIT', origin: undefined }];
  }

  add(command: IptablesCommand): void {
    const { action, chain } = command;
    if (action === 'flush' || action === 'delete-chain') {
      this.addChainWide(command);
    } else if (!chain) {
      this.fail(command, command.flag.end, `\`${command.flag.value}\` needs a chain name`);
    } else if (action === 'new-chain') {
      this.addNewChain(command, chain);
    } else if (action === 'policy') {
      this.addPolicy(command, chain);
    } else {
      this.addRule(command, action, chain);
    }
  }

  private addNewChain(command: IptablesCommand, chain: Word): void {
    this.expectNoArgs(command);
    const name = chain.value;
    // iptables' own limits; a name with a blank would also break the restore header line.
    const fail = (message: string): never => this.fail(command, chain.start, message);
    if (/\s/.test(name) || name.length > 28) fail(`invalid chain name \`${name}\`: at most 28 characters, no blanks`);
    if (this.isBuiltin(name) || this.userChains.has(name)) fail(`chain ${name} already exists in table ${this.table}`);
    // Headers are applied before every rule, so a chain cannot be deleted and made again.
    if (this.deletedChains.has(name)) fail(`chain ${name} was deleted above; re-creating a chain is not supported`);
    this.userChains.add(name);
    this.headers.push({ text: `:${chain.value} - [0:0]`, origin: command.origin });
  }

  private addPolicy(command: IptablesCommand, chain: Word): void {
    const [target, ...extra] = command.args;
    if (!this.isBuiltin(chain.value)) {
      const builtins = this.builtins().join(', ');
      this.fail(command, chain.start, `a policy can only be set on a built-in chain of table ${this.table}: ${builtins}`);
    }
    if (!target || extra.length > 0 || !['ACCEPT', 'DROP'].includes(target.value)) {
      this.fail(command, target?.start ?? chain.end, '`-P` takes a chain and a policy, ACCEPT or DROP');
    }
    // iptables refuses this; iptables-restore (nf_tables) would quietly accept it.
    if (this.table === 'nat' && target.value === 'DROP') {
      this.fail(command, target.start, 'the nat table is not for filtering: iptables refuses a DROP policy there');
    }
    this.headers.push({ text: `:${chain.value} ${target.value} [0:0]`, origin: command.origin });
  }

  /**
   * `-F`/`-X` without a chain are spelled out per chain: iptables-restore (nf_tables) leaves
   * rules added earlier in the same input in place otherwise.
   */
  private addChainWide(command: IptablesCommand): void {
    this.expectNoArgs(command);
    const flag = ACTION_FLAGS[command.action][0];
    const chains = command.chain ? [this.existingChain(command, command.chain)] : this.chainsFor(command.action);
    for (const chain of chains) this.body.push({ text: `${flag} ${chain}`, origin: command.origin });
    if (command.action === 'delete-chain') {
      for (const chain of chains) {
        this.userChains.delete(chain);
        this.deletedChains.add(chain);
      }
    }
  }

  private chainsFor(action: Action): string[] {
    const user = [...this.userChains];
    return action === 'flush' ? [...this.builtins(), ...user] : user;
  }

  private addRule(command: IptablesCommand, action: Action, chain: Word): void {
    const name = this.existingChain(command, chain);
    const args = command.args.map((w) => quoteForRestore(w.value));
    if (action === 'replace') {
      this.addReplace(command, chain, name, args);
    } else {
      this.body.push({ text: [ACTION_FLAGS[action][0], name, ...args].join(' '), origin: command.origin });
    }
  }

  /**
   * iptables-restore 1.8.9 (nf_tables) crashes replacing a rule added in the same input;
   * deleting the numbered rule and inserting at its place is the same change.
   */
  private addReplace(command: IptablesCommand, chain: Word, name: string, args: string[]): void {
    const [number, ...rule] = args;
    if (!number || !/^[1-9]\d*$/.test(number)) {
      this.fail(command, chain.end, '`-R` needs a rule number after the chain, e.g. `-R FORWARD 1 ...`');
    }
    this.body.push({ text: `-D ${name} ${number}`, origin: command.origin });
    this.body.push({ text: ['-I', name, number, ...rule].join(' '), origin: command.origin });
  }

  private existingChain(command: IptablesCommand, chain: Word): string {
    const name = chain.value;
    if (this.isBuiltin(name) || this.userChains.has(name)) return name;
    const known = [...this.builtins(), ...this.userChains].join(', ');
    return this.fail(command, chain.start, `no chain ${name} in table ${this.table} (chains: ${known}; create one with -N)`);
  }

  private expectNoArgs(command: IptablesCommand): void {
    const extra = command.args[0];
    if (extra) {
      this.fail(command, extra.start, `unexpected \`${extra.value}\`: \`${command.flag.value}\` takes only a chain name`);
    }
  }

  private builtins(): readonly string[] {
    return BUILTIN_CHAINS[this.table];
  }

  private isBuiltin(name: string): boolean {
    return this.builtins().includes(name);
  }

  private fail(command: IptablesCommand, offset: number, message: string): never {
    return this.source.fail(offset, message, command.origin.text);
  }
}

/** Characters iptables-restore reads literally outside quotes. */
const BARE_WORD = /^[A-Za-z0-9_@%+=:,./!-]+$/;

/** iptables-restore splits on blanks and understands double quotes with `\"` and `\\` inside. */
function quoteForRestore(value: string): string {
  return BARE_WORD.test(value) ? value : `"${value.replace(/[\\"]/g, '\\$&')}"`;
}
