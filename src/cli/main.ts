/**
 * The `tessera` command: `tessera <verb> <store> ...`, one file per verb under verbs/. Behaves
 * like git, npm and docker at the edges: `--version`; a typo gets one line ("Did you mean ...?");
 * usage mistakes exit 2 and failures 1, each with one clear line on stderr; a closed stdout
 * (`tessera ls s | head`) ends quietly with 0.
 */
import { Command, CommanderError } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { TesseraError } from '../errors.ts';
import { exitQuietlyOnClosedStdout } from './output.ts';
import { verbsFor, type Verb } from './verbs/index.ts';

/** Verbs that open the store for writing, and so take its lock. */
const WRITERS = ['add', 'rm', 'compact', 'gc', 'dedup'];

/** Commander's error text as one line: "error: unknown command 'ad'\n(Did you mean add?)". */
function oneLine(commanderMessage: string): string {
  return commanderMessage
    .replace(/^error: /, '')
    .replace(/\s*\n\s*\((Did you mean .*?)\)/, '. $1')
    .replace(/\n/g, ' ')
    .trim();
}

/** The `tessera` program with `verbs` registered (`verbsFor(argv)`: those a command line needs). */
export function buildCli(verbs: readonly Verb[]): Command {
  const program = new Command('tessera')
    .description('Store many ONNX models in one deduplicated page store and serve inference from it.')
    .version(pkg.version, '-V, --version', 'print the version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      outputError: (str, write) => {
        const msg = oneLine(str);
        // A typo is answered with the suggestion alone; other usage errors point at the help.
        write(`tessera: ${msg}${/Did you mean/.test(msg) ? '' : ' (see tessera --help)'}\n`);
      },
    });
  for (const verb of verbs) verb.register(program);
  for (const c of program.commands) {
    if (WRITERS.includes(c.name())) c.option('--break-lock', 'remove a writer lock tessera cannot prove stale (only when no tessera writer is running)');
  }
  // Imported here, not above: `tessera --help` then never loads the store.
  program.hook('preAction', async (_, action) => (await import('./store.ts')).requestBreakLock(!!action.opts().breakLock));
  // Verbs inherit the one-line errors and the exit codes.
  for (const c of program.commands) c.exitOverride().configureOutput(program.configureOutput()).showSuggestionAfterError(true);
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  exitQuietlyOnClosedStdout();
  const program = buildCli(await verbsFor(argv));
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end with code 0; every usage mistake with 2.
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    const msg = e instanceof TesseraError ? `${e.message} [${e.code}]` : `unexpected failure: ${(e as Error)?.stack ?? e}`;
    process.stderr.write(`tessera: ${msg.replace(/\n/g, ' ')}\n`);
    process.exitCode = 1;
  }
}
