"""The `pweza` command: the root, its global flags, and where each command lives.

Every command module is imported here, so each keeps its heavy imports (the manager, gRPC,
FastAPI, kopf, CEL) inside the functions that need them: `pweza get` starts in a blink.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from pweza import __version__
from pweza.cli import objects, scaffold, serve, tailing, tasks, tokens
from pweza.cli.client import CliError
from pweza.cli.output import report_error
from pweza.cli.runs import run_command, runs_app


class _Group(TyperGroup):
    """Turns every failure into one line on stderr and a non-zero exit; --debug shows the traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (ClickException, typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:
            _quiet_stdout()  # `pweza get ... | head`: the reader has what it wanted
            raise typer.Exit(0) from None
        except Exception as error:
            if ctx.params.get("debug"):
                raise
            message, code = _explain(error)
            report_error(message)
            raise typer.Exit(code) from None


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit does not fail a second time."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _explain(error: Exception) -> tuple[str, int]:
    """The sentence and exit code for a failure: 2 for what the user gave, 1 otherwise."""
    from pweza.domain.errors import InvalidInput, PwezaError

    if isinstance(error, CliError):
        return str(error), error.code
    if isinstance(error, PwezaError):
        return error.detail, 2 if isinstance(error, InvalidInput) else 1
    if isinstance(error, OSError) and error.strerror:
        return (f"{error.filename}: " if error.filename else "") + error.strerror, 1
    return f"{type(error).__name__}: {error} (--debug shows the traceback)", 1


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="pweza: run fleets of AI agents.",
    epilog="Start here: pweza init demo && pweza up -f demo, then pweza run demo/workflow.yaml",
)


def _print_version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", envvar="PWEZA_DEBUG", help="Show the traceback of an unexpected error.")
    ] = False,
) -> None:
    """pweza: run fleets of AI agents."""


_RUN_EXAMPLES = """Examples:

  pweza run examples/support-triage/workflow.yaml   # apply it, start a run, follow it, print the outputs

  RUN=$(pweza run research -i topic="vector databases" --detach)   # the run id only

  pweza run hello -i name=Ada -o yaml
"""


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


app.add_typer(tasks.task_app, name="task", rich_help_panel="Work")
app.add_typer(tokens.token_app, name="token", rich_help_panel="Serving")
app.add_typer(runs_app, name="runs", rich_help_panel="Work")
app.command("run", rich_help_panel="Getting started", epilog=_RUN_EXAMPLES)(run_command)
serve.register(app)
objects.register(app)
tailing.register(app)
scaffold.register(app)


def main() -> None:
    app(prog_name="pweza")  # also as `python -m pweza`: its help, and completion's _PWEZA_COMPLETE


if __name__ == "__main__":
    main()
