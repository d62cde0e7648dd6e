"""Reading manifests from files and folders, with errors that name the file and document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pweza.cli.client import CliError
from pweza.domain.errors import InvalidInput
from pweza.domain.kind_names import KIND_NAMES, plural_of

__all__ = ["load_documents", "manifest_paths", "plural_of"]

# Models and tool servers before templates before pools before workflows, so references resolve
# on first apply (an agent's welcome carries its template's ModelConfigs as they are when it connects).
_ORDER = {"ModelConfig": -1, "ToolServer": 0, "AgentTemplate": 0, "AgentPool": 1, "Workflow": 2}


def manifest_paths(target: Path) -> list[Path]:
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    if target.is_file():
        return [target]
    raise CliError(f"{target}: no such file or directory", code=2)


def load_documents(target: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every pweza.ai document under `target`, as (where, document), validated, in apply order."""
    from pweza.domain.kinds import parse_manifest  # the models and CEL, only where documents are read
    from pweza.domain.safe_yaml import load_all

    found: list[tuple[int, str, dict[str, Any]]] = []
    for path in manifest_paths(target):
        try:
            documents = load_all(path.read_bytes(), str(path))
        except OSError as error:
            raise CliError(f"{path}: cannot be read: {error.strerror}", code=2) from None
        except InvalidInput as error:
            raise CliError(error.detail, code=2) from None
        for index, document in enumerate(documents):
            if document is None:
                continue
            where = f"{path}" + (f" (document {index + 1})" if len(documents) > 1 else "")
            if isinstance(document, dict) and document.get("kind") not in KIND_NAMES and target.is_dir():
                continue  # folders may hold other YAML (e.g. workflow inputs)
            try:
                manifest = parse_manifest(document)
            except InvalidInput as error:
                raise CliError(f"{where}: {error.detail}", code=2) from None
            found.append((_ORDER.get(manifest.kind_name, 9), where, _code_from(path, document)))
    found.sort(key=lambda item: item[0])
    return [(where, document) for _, where, document in found]


def _code_from(path: Path, document: dict[str, Any]) -> dict[str, Any]:
    """The document with its template's relative `pythonPath` entries made absolute from the
    manifest's folder: the code travels with the manifest, whichever directory agents start in.
    A ToolServer's relative `workingDir` counts from the manifest's folder too."""
    if document.get("kind") == "ToolServer":
        return _working_dir_from(path, document)
    runtime = document.get("spec", {}).get("runtime", {}) if document.get("kind") == "AgentTemplate" else {}
    entries = runtime.get("pythonPath")
    if not entries:
        return document
    folder = path.resolve().parent
    resolved = [entry if Path(entry).is_absolute() else str((folder / entry).resolve()) for entry in entries]
    spec = {**document["spec"], "runtime": {**runtime, "pythonPath": resolved}}
    return {**document, "spec": spec}


def _working_dir_from(path: Path, document: dict[str, Any]) -> dict[str, Any]:
    spec = document.get("spec", {})
    working_dir = spec.get("workingDir")
    if not working_dir or Path(working_dir).is_absolute():
        return document
    resolved = str((path.resolve().parent / working_dir).resolve())
    return {**document, "spec": {**spec, "workingDir": resolved}}
