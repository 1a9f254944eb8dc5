"""The ``mtbench`` command: prepare, run, leaderboard, methods, datasets."""

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from mtbench import __version__
from mtbench.cli import leaderboard_command, listing, prepare_command, run_command, sweep_command
from mtbench.errors import MtbenchError

PACKAGE_FOLDER = Path(__file__).resolve().parent.parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtbench",
        description="Benchmark suite and leaderboard harness for deep multi-task learning.",
    )
    parser.add_argument("--version", action="version", version=f"mtbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    prepare_command.add_parser(commands)
    run_command.add_parser(commands)
    leaderboard_command.add_parser(commands)
    sweep_command.add_parser(commands)
    listing.add_parsers(commands)
    # A misspelt option such as --see must fail, not silently become --seed.
    parser.allow_abbrev = False
    for subcommand in commands.choices.values():
        subcommand.allow_abbrev = False
    return parser


def _warning_format(fallback: Callable[..., str]) -> Callable[..., str]:
    """Return a ``warnings.formatwarning`` that prints mtbench's own warnings as one "mtbench: warning:" line and others with ``fallback``."""

    def format_warning(message, category, filename, lineno, line=None) -> str:
        if Path(filename).resolve().is_relative_to(PACKAGE_FOLDER):
            return f"mtbench: warning: {message}\n"
        return fallback(message, category, filename, lineno, line)

    return format_warning


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one message and return status 2."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    previous_format = warnings.formatwarning
    warnings.formatwarning = _warning_format(previous_format)
    try:
        return arguments.handler(arguments) or 0
    except MtbenchError as error:
        print(f"mtbench: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of our output (such as `head`) has exited; stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print("mtbench: error: out of memory. Use smaller settings (such as --images-per-pair or --batch-size).", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        message = "mtbench: interrupted; nothing unfinished was written."
        if arguments.command == "run":
            message = (
                "mtbench: interrupted; the unfinished run wrote no record. "
                "Run the same command with --resume to continue from its last epoch checkpoint."
            )
        print(message, file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous_format


if __name__ == "__main__":
    sys.exit(main())
