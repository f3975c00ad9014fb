#!/usr/bin/env node
/**
 * `netmodes`: the command line. Exit codes: 0 success; 1 a command failed; 2 bad arguments
 * (with the usage line); `run` and `exec` return the command's own status, or 125 when netmodes
 * itself failed (as `docker run`).
 */
import { ConfigError } from '../errors';
import { CommandSpec, UsageError, helpText, parse, usageLine } from './args';
import { COMMANDS, Command, EXIT_RUN_FAILED, describe } from './commands';

const MAIN_USAGE = 'Usage: netmodes COMMAND [OPTIONS] [ARGS...]';

function mainHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.spec.name.length)) + 2;
  return (
    `${MAIN_USAGE}\n\nDocker's network modes (bridge, host, none, container:NAME) for any process, without Docker.\n\nCommands:\n` +
    COMMANDS.map((c) => `  ${c.spec.name.padEnd(w)}${c.spec.summary}`).join('\n') +
    `\n\nRun 'netmodes COMMAND --help' for more information on a command.\n`
  );
}

function usageError(message: string, spec?: CommandSpec): number {
  const name = spec ? `netmodes ${spec.name}` : 'netmodes';
  process.stderr.write(`${name}: ${message}\n${spec ? usageLine(spec) : MAIN_USAGE}\n`);
  process.stderr.write(`Run '${name} --help' for more information.\n`);
  return 2;
}

/** Finds the command named by the first one or two words of argv. */
function lookup(argv: string[]): { cmd?: Command; rest: string[]; word: string } {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const cmd = COMMANDS.find((c) => c.spec.name === name);
    if (cmd) return { cmd, rest: argv.slice(words), word: name };
  }
  return { rest: argv, word: argv[0] };
}

export async function main(argv: string[]): Promise<number> {
  // Library warnings (host mode discarding published ports) as one plain line.
  process.removeAllListeners('warning');
  process.on('warning', (w) => process.stderr.write(`netmodes: warning: ${w.message}\n`));

  if (argv.length === 0) return usageError('no command given');
  if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    const topic = argv[0] === 'help' ? lookup(argv.slice(1)).cmd : undefined;
    if (argv[0] === 'help' && argv.length > 1 && !topic) return usageError(`unknown command ${JSON.stringify(argv.slice(1).join(' '))}`);
    process.stdout.write(topic ? helpText(topic.spec) : mainHelp());
    return 0;
  }
  if (argv[0] === '--version') argv = ['version'];
  const { cmd, rest, word } = lookup(argv);
  if (!cmd) {
    if (word === 'network') return usageError(argv.length > 1 ? `unknown network command ${JSON.stringify(argv[1])}` : 'network needs a command: create, ls, inspect or rm');
    if (word === 'cni') return usageError(argv.length > 1 ? `unknown cni command ${JSON.stringify(argv[1])}` : 'cni needs a command: install, server or stop');
    return usageError(word.startsWith('-') ? `unknown option ${word}` : `unknown command ${JSON.stringify(word)}`);
  }
  const runsCommand = cmd.spec.name === 'run' || cmd.spec.name === 'exec';
  try {
    const parsed = parse(cmd.spec, rest);
    if (parsed.help) {
      process.stdout.write(helpText(cmd.spec));
      return 0;
    }
    return await cmd.run(parsed);
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message, err.spec ?? cmd.spec);
    if (err instanceof ConfigError) return usageError(describe(err), cmd.spec);
    process.stderr.write(`netmodes: ${describe(err)}\n`);
    return runsCommand ? EXIT_RUN_FAILED : 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`netmodes: ${describe(err)}\n`);
      process.exitCode = 1;
    },
  );
}
