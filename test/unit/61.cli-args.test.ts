import { strict as assert } from 'node:assert';
import { CommandSpec, UsageError, helpText, parse } from '../../lib/cli/args';
import { progress } from '../../lib/cli/output';

const run: CommandSpec = {
  name: 'run',
  usage: '[OPTIONS] [--] COMMAND [ARGS...]',
  summary: 'Run.',
  commandLine: true,
  options: [
    { name: 'net', aliases: ['network'], type: 'string', value: 'MODE', help: 'mode' },
    { name: 'publish', short: 'p', type: 'list', value: 'SPEC', help: 'port' },
    { name: 'hostname', short: 'h', type: 'string', value: 'NAME', help: 'host name' },
    { name: 'rm', type: 'boolean', help: 'remove' },
  ],
};
const rm: CommandSpec = { name: 'rm', usage: 'NAME...', summary: 'Remove.', min: 1, max: 2, options: [{ name: 'force', short: 'f', type: 'boolean', help: 'force' }] };

const usage = (re: RegExp) => (e: unknown) => e instanceof UsageError && re.test(e.message);

describe('61 cli argument parser', () => {
  it('long options with = or a separate value, aliases, short options with or without a space, lists, flags', () => {
    const p = parse(run, ['--net=host', '--network', 'none', '-p', '80', '-p8080:81', '--publish=53/udp', '--rm', '-h', 'box', '--', 'sh', '-c', 'x']);
    assert.deepEqual(p.opts, { net: 'none', publish: ['80', '8080:81', '53/udp'], rm: true, hostname: 'box' });
    assert.deepEqual(p.command, ['sh', '-c', 'x']);
    assert.equal(p.help, false);
  });

  it('the first positional word starts the command line: its options are not ours', () => {
    const p = parse(run, ['--rm', 'sh', '-c', '--net', '-p']);
    assert.deepEqual(p.opts, { rm: true });
    assert.deepEqual(p.command, ['sh', '-c', '--net', '-p']);
    assert.deepEqual(parse(run, ['--', '--rm']).command, ['--rm']);
  });

  it('mistakes are UsageErrors that name the option', () => {
    assert.throws(() => parse(run, ['--nope', 'x']), usage(/unknown option --nope/));
    assert.throws(() => parse(run, ['-z', 'x']), usage(/unknown option -z/));
    assert.throws(() => parse(run, ['--net']), usage(/--net needs a value/));
    assert.throws(() => parse(run, ['-p']), usage(/-p needs a value/));
    assert.throws(() => parse(run, ['--rm=1', 'x']), usage(/--rm takes no value/));
    assert.throws(() => parse(run, ['--rm']), usage(/no command given/));
    assert.throws(() => parse(run, ['--rm', '--']), usage(/no command given/));
    assert.throws(() => parse(rm, []), usage(/missing argument/));
    assert.throws(() => parse(rm, ['a', 'b', 'c']), usage(/unexpected argument "c"/));
    assert.throws(() => parse(rm, ['-fx', 'a']), usage(/-f takes no value/));
    const e = (() => {
      try {
        parse(rm, ['--what']);
      } catch (err) {
        return err as UsageError;
      }
    })();
    assert.equal(e?.spec, rm);
  });

  it('--help wins over missing arguments; -h is help unless the command uses it', () => {
    assert.equal(parse(rm, ['--help']).help, true);
    assert.equal(parse(rm, ['-h']).help, true);
    assert.equal(parse(run, ['--help']).help, true);
    assert.deepEqual(parse(run, ['-h', 'x', 'true']).opts, { hostname: 'x' });
    assert.deepEqual(parse(rm, ['a', '--', '-f']).args, ['a', '-f']);
  });

  it('help text: usage line, summary, every option with its value and aliases', () => {
    const t = helpText(run);
    assert.ok(t.startsWith('Usage: netmodes run [OPTIONS] [--] COMMAND [ARGS...]\n\nRun.\n'));
    assert.match(t, /^ {6}--net, --network MODE +mode$/m);
    assert.match(t, /^ {2}-p, --publish SPEC +port \(repeatable\)$/m);
    assert.match(t, /^ {6}--help +show this help$/m);
  });
});

describe('61 cli progress indicator', () => {
  async function capture(isTTY: boolean, ms: number): Promise<string> {
    const err = process.stderr as unknown as { isTTY: boolean; write: (s: string) => boolean };
    const [tty, write, env] = [err.isTTY, err.write, process.env.NETMODES_NO_PROGRESS];
    let out = '';
    err.isTTY = isTTY;
    err.write = (s: string) => ((out += s), true);
    delete process.env.NETMODES_NO_PROGRESS;
    try {
      assert.equal(await progress('working', () => new Promise((r) => setTimeout(() => r(42), ms)), 50), 42);
    } finally {
      err.isTTY = tty;
      err.write = write;
      if (env !== undefined) process.env.NETMODES_NO_PROGRESS = env;
    }
    return out;
  }
  it('a spinner on a terminal for slow steps, erased at the end; nothing for fast ones or off a terminal', async () => {
    const slow = await capture(true, 250);
    assert.match(slow, /^\r. working\x1b\[K/);
    assert.ok(slow.endsWith('\r\x1b[K'));
    assert.equal(await capture(true, 5), '');
    assert.equal(await capture(false, 250), '');
  });
});
