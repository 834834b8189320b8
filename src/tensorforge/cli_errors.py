"""How the ``tensorforge`` command fails: one line on stderr, exit code 2, never a traceback.

:class:`GuardedGroup` is the command group's class. Around every subcommand it turns

- click's own errors (a bad option value, a missing argument) into one line, not the
  usage block click prints;
- a ``CliError`` (what the commands raise for a user's mistake or a bad run) into its line;
- Ctrl-C into "Error: interrupted" and exit code 130;
- a missing optional package into "FEATURE needs PACKAGE: pip install 'tensorforge[EXTRA]'";
- anything unexpected into one line naming the exception, with the hint to rerun with
  ``--debug`` (or TENSORFORGE_DEBUG=1), which lets the traceback through.
"""
from __future__ import annotations

import math

import click

from ._optional import MissingOptional

DEBUG_HINT = "rerun with --debug (or TENSORFORGE_DEBUG=1) for the traceback"
INTERRUPTED = 130        # the shell's code for a run stopped by SIGINT


class CliError(click.ClickException):
    """A failure of the command: shown as one "Error: ..." line, exit code 2 (or ``exit_code``)."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(one_line(message))
        if exit_code is not None:
            self.exit_code = exit_code


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of spaces folded into single spaces."""
    return " ".join(str(text).split())


def debug_wanted(ctx: click.Context | None) -> bool:
    from . import config
    try:
        if config.get("debug"):
            return True
    except ValueError:
        return True     # a malformed TENSORFORGE_DEBUG still asks for details
    while ctx is not None:
        if ctx.params.get("debug"):
            return True
        ctx = ctx.parent
    return False


class GuardedGroup(click.Group):
    """A click group whose subcommands fail with one line (see the module docstring)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except (click.exceptions.NoArgsIsHelpError, CliError):
            raise
        except click.UsageError as e:       # a bad option before the subcommand's name
            raise CliError(e.format_message()) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, click.exceptions.NoArgsIsHelpError, CliError):
            raise
        except click.ClickException as e:
            # UsageError would print the usage block and a hint first: keep its message only
            raise CliError(e.format_message()) from None
        except KeyboardInterrupt:
            raise CliError("interrupted", exit_code=INTERRUPTED) from None
        except MissingOptional as e:        # a package of an extra: the install line, not a traceback
            raise CliError(str(e)) from None
        except MemoryError as e:
            if debug_wanted(ctx):
                raise
            raise CliError(f"out of memory{': ' + str(e) if str(e) else ''}; {DEBUG_HINT}") from None
        except Exception as e:
            if debug_wanted(ctx):
                raise
            raise CliError(f"unexpected {type(e).__name__}: {e}; {DEBUG_HINT}") from None


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf (``--lr inf`` is no learning rate)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number
