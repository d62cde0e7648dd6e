"""`pweza apply`, `get`, `delete` and `diff`: the pweza.ai/v1 objects, kubectl style."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pweza.cli import describing, listings
from pweza.cli.client import ApiClient, CliError
from pweza.cli.files import load_documents, plural_of
from pweza.cli.listings import object_path, split_kind_name
from pweza.cli.options import AnyNamespace, Namespace, Output, Server, Token, check_output, client
from pweza.cli.output import console, err_console
from pweza.domain.kind_names import resolve_kind

Files = Annotated[list[Path], typer.Option("--file", "-f", help="File or folder of manifests (repeatable).")]
PANEL = "Objects"
# Fields the manager adds; they are not part of what a manifest says.
SERVER_FIELDS = ("generation", "creationTimestamp")


def register(app: typer.Typer) -> None:
    app.command(epilog=_APPLY_EXAMPLES, rich_help_panel=PANEL)(apply)
    app.command(epilog=_GET_EXAMPLES, rich_help_panel=PANEL)(get)
    app.command(epilog=_DELETE_EXAMPLES, rich_help_panel=PANEL)(delete)
    app.command(epilog=_DIFF_EXAMPLES, rich_help_panel=PANEL)(diff)
    describing.register(app)


_APPLY_EXAMPLES = """Examples:

  pweza apply -f examples/quickstart            # every manifest in a folder

  pweza apply -f pool.yaml --dry-run            # validate and say what would change
"""


def apply(
    file: Files,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and say what would change, without writing anything.")
    ] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Create or replace objects from YAML manifests."""
    documents = [doc for target in file for doc in load_documents(target)]
    if not documents:
        raise CliError("no pweza.ai/v1 manifests found", code=2)
    with client(server, token) as api:
        for where, document in documents:
            kind, name, namespace = _identity(document)
            if dry_run:
                stored = fetch(api, kind, name, namespace)
                verb = "created" if stored is None else ("unchanged" if _same(stored, document) else "configured")
                console.print(f"{kind}/{name} {verb} (dry run)", highlight=False)
                continue
            try:
                result = api.request("PUT", object_path(kind, name), json=document, params={"namespace": namespace})
            except CliError as error:
                raise CliError(f"{where}: {error}", error.code, status=error.status) from None
            verb = (
                "unchanged"
                if not result["changed"]
                else f"applied (generation {result['object']['metadata']['generation']})"
            )
            console.print(f"{kind}/{name} {verb}", highlight=False)
            for warning in result["warnings"]:
                err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


_GET_EXAMPLES = """Examples:

  pweza get agentpools                          # or ap; also agenttemplates (at), workflows (wf)

  pweza get agents -o wide                      # connected agents, with host, pid and replica

  pweza get ap/classifiers -o yaml              # one object as stored

  pweza get wf -o name                          # workflow/NAME lines, for scripts
"""


def get(
    kind: Annotated[
        str, typer.Argument(help="agenttemplates (at), agentpools (ap), workflows (wf), toolservers (ts) or agents.")
    ],
    name: Annotated[str | None, typer.Argument(help="One object (KIND/NAME works too).")] = None,
    namespace: AnyNamespace = None,
    output: Output = "table",
    server: Server = None,
    token: Token = None,
) -> None:
    """Show objects or connected agents."""
    check_output(output)
    kind, name = split_kind_name(kind, name)
    with client(server, token) as api:
        if kind.lower() in listings.AGENT_NAMES:
            listings.show_agents(api, name, namespace, output)
            return
        resolved = resolve_kind(kind)
        if name:
            items = [api.request("GET", object_path(resolved, name), params={"namespace": namespace or "default"})]
        else:
            params = {"namespace": namespace} if namespace else {}
            items = api.request("GET", f"/api/v1/{plural_of(resolved)}", params=params)["items"]
        listings.show_objects(api, resolved, items, output, single=name is not None)


_DELETE_EXAMPLES = """Examples:

  pweza delete agentpool classifiers

  pweza delete -f examples/quickstart           # what a folder's manifests created
"""


def delete(
    kind: Annotated[str | None, typer.Argument(help="Kind of the object (or KIND/NAME).")] = None,
    name: Annotated[str | None, typer.Argument()] = None,
    file: Annotated[
        list[Path] | None, typer.Option("--file", "-f", help="Delete what these manifests name (file or folder).")
    ] = None,
    namespace: Namespace = "default",
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="An object that does not exist is not an error.")
    ] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Delete objects: one by KIND NAME, or those named by manifests (-f)."""
    targets: list[tuple[str, str, str]] = []
    if file:
        if kind is not None:
            raise CliError("give either KIND NAME or --file, not both", code=2)
        documents = [doc for target in file for _, doc in load_documents(target)]
        # Workflows, then pools, then templates: a template in use by a pool cannot go first.
        targets = [_identity(document) for document in reversed(documents)]
    elif kind is not None:
        kind, name = split_kind_name(kind, name)
        if not name:
            raise CliError("give the name of the object to delete: pweza delete KIND NAME", code=2)
        targets = [(resolve_kind(kind), name, namespace)]
    else:
        raise CliError("give KIND NAME, or --file with manifests", code=2)
    with client(server, token) as api:
        for resolved, object_name, object_namespace in targets:
            try:
                api.request("DELETE", object_path(resolved, object_name), params={"namespace": object_namespace})
            except CliError as error:
                if error.status == 404 and ignore_not_found:
                    continue
                raise
            console.print(f"{resolved}/{object_name} deleted", highlight=False)


_DIFF_EXAMPLES = """Exit status: 0 when nothing would change, 1 when something would, 2 or more on an error.

Examples:

  pweza diff -f examples/quickstart

  pweza diff -f pool.yaml && echo up to date
"""


def diff(file: Files, server: Server = None, token: Token = None) -> None:
    """Show what `pweza apply -f` would change, as a unified diff against the stored objects."""
    import difflib

    try:
        documents = [doc for target in file for doc in load_documents(target)]
        changed = False
        with client(server, token) as api:
            for where, document in documents:
                kind, name, namespace = _identity(document)
                stored = fetch(api, kind, name, namespace)
                before = "" if stored is None else _yaml(_without_server_fields(stored))
                after = _yaml(normalized(document))
                lines = list(
                    difflib.unified_diff(
                        before.splitlines(keepends=True),
                        after.splitlines(keepends=True),
                        fromfile=f"stored/{kind}/{namespace}/{name}",
                        tofile=f"{where}",
                    )
                )
                if lines:
                    changed = True
                    typer.echo("".join(lines), nl=False)
    except CliError as error:
        raise CliError(str(error), max(2, error.code), status=error.status) from None
    raise typer.Exit(1 if changed else 0)


def fetch(api: ApiClient, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    """The stored object, or None if there is none."""
    try:
        stored: dict[str, Any] = api.request("GET", object_path(kind, name), params={"namespace": namespace})
    except CliError as error:
        if error.status == 404:
            return None
        raise
    return stored


def normalized(document: dict[str, Any]) -> dict[str, Any]:
    """The document as the manager stores it: defaults filled in, no status, no server fields."""
    from pweza.domain.kinds import parse_manifest

    body: dict[str, Any] = parse_manifest(document).model_dump(by_alias=True, exclude_none=True, mode="json")
    body.pop("status", None)
    return _without_server_fields(body)


def _without_server_fields(body: dict[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in body.get("metadata", {}).items() if k not in SERVER_FIELDS}
    return {**body, "metadata": metadata}


def _same(stored: dict[str, Any], document: dict[str, Any]) -> bool:
    return _without_server_fields(stored) == normalized(document)


def _yaml(body: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(body, sort_keys=True)


def _identity(document: dict[str, Any]) -> tuple[str, str, str]:
    metadata = document["metadata"]
    return document["kind"], metadata["name"], metadata.get("namespace", "default")
