"""`pweza init` (a working project to start from) and `pweza doctor` (is this cluster ready?)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from pweza.cli.client import CliError

_INIT_EXAMPLES = """Examples:

  pweza init hello                              # then:

  pweza up -f hello                             # in one terminal

  pweza run hello/workflow.yaml -i name=Ada     # in another
"""

_AGENTS = """\
# One template (what an agent runs) and one pool (how many run). The handler is in
# {module}.py; `pythonPath: [.]` (this folder) is how the agents find it.
apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata:
  name: greeter
spec:
  runtime:
    kind: python
    handler: {module}:greet
    pythonPath: [.]
  concurrency: 4
  timeout: 30s
  retry:
    limit: 2
---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata:
  name: greeters
spec:
  templateRef: greeter
  scaling:
    minReplicas: 1
    maxReplicas: 2
"""

_WORKFLOW = """\
# Two steps on the greeters pool; the second uses the first one's output.
# Run it: pweza run {folder}/workflow.yaml -i name=Ada
apiVersion: pweza.ai/v1
kind: Workflow
metadata:
  name: hello
spec:
  timeout: 5m
  inputs:
    name:
      type: string
      default: world
  steps:
    - name: greet
      agent: {{pool: greeters}}
      input:
        name: ${{{{ inputs.name }}}}
    - name: shout
      depends: [greet]
      agent: {{pool: greeters}}
      input:
        name: ${{{{ steps.greet.output.greeting }}}}
        loud: true
  outputs:
    greeting: ${{{{ steps.greet.output.greeting }}}}
    shouted: ${{{{ steps.shout.output.greeting }}}}
"""

_HANDLER = '''\
"""The handler the greeter template names: a plain function of the task's context.

`ctx.input` is the step's input; what the function returns is the step's output (JSON).
Raise pweza.agent.sdk.TaskFailure to fail the attempt with a message of your own.
"""

from typing import Any


def greet(ctx: Any) -> dict[str, Any]:
    name = str(ctx.input.get("name", "world"))
    greeting = f"Hello, {name}!" if not ctx.input.get("loud") else name.upper()
    return {"greeting": greeting}
'''


_DOCTOR_EXAMPLES = """Examples:

  pweza doctor --values charts/pweza-core/values.yaml

  pweza doctor -f my-values.yaml --context staging -o json
"""


def register(app: typer.Typer) -> None:
    app.command(epilog=_INIT_EXAMPLES, rich_help_panel="Getting started")(init)
    app.command(rich_help_panel="Serving", epilog=_DOCTOR_EXAMPLES)(doctor)


def module_name(folder: Path) -> str:
    """A Python module name from the folder's, so two projects' handlers do not shadow each other."""
    stem = re.sub(r"\W+", "_", folder.resolve().name.lower()).strip("_") or "my"
    return ("p_" + stem if stem[0].isdigit() else stem) + "_agents"


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create (or an empty one to fill).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that are already there.")] = False,
) -> None:
    """Create a working project: an AgentTemplate, an AgentPool, a Workflow and its Python handler."""
    module = module_name(directory)
    shown = str(directory)
    files = {
        directory / "agents.yaml": _AGENTS.format(folder=shown, module=module),
        directory / "workflow.yaml": _WORKFLOW.format(folder=shown),
        directory / f"{module}.py": _HANDLER,
    }
    existing = [str(path) for path in files if path.exists()]
    if existing and not force:
        raise CliError(f"{', '.join(existing)} already exist (--force overwrites them)", code=2)
    if directory.exists() and not directory.is_dir():
        raise CliError(f"{directory} exists and is not a folder", code=2)
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
        print(f"created {path}")
    print(f"\nnext: pweza up -f {shown}    then, in another terminal: pweza run {shown}/workflow.yaml -i name=Ada")


def doctor(
    values: Annotated[
        list[Path] | None, typer.Option("--values", "-f", help="Chart values files, as given to helm (repeatable).")
    ] = None,
    chart: Annotated[
        Path | None, typer.Option(help="Chart folder whose values.yaml is the base (default: charts/pweza-core).")
    ] = None,
    kubeconfig: Annotated[str | None, typer.Option(envvar="KUBECONFIG", help="Default: ~/.kube/config.")] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context (default: the current one).")] = None,
    release_namespace: Annotated[
        str | None, typer.Option(help="Namespace helm installs the release into (default: namespace.system).")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
) -> None:
    """Check the cluster of the current kubeconfig for what the Helm chart needs; exit 1 on a failure."""
    from pweza.cli.doctor import Cluster, load_values, print_report, run_checks

    if output not in ("table", "json"):
        raise CliError(f"--output must be table or json, not {output!r}", code=2)
    try:
        merged = load_values(list(values or []), chart)
    except ValueError as error:
        raise CliError(str(error), code=2) from None
    try:
        cluster = Cluster.connect(kubeconfig, context)
    except Exception as error:  # noqa: BLE001 - a missing or broken kubeconfig is reported, not raised
        raise CliError(f"cannot load the kubeconfig: {error}", code=2) from None
    raise typer.Exit(print_report(run_checks(merged, cluster, release_namespace), output))
