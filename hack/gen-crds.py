"""Write the pweza.ai CRDs generated from the models: `make crds`.

The same files go to deploy/crds/ (kubectl apply) and to the Helm chart's crds/ folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from pweza.domain.crds import all_crds

DEFAULT_TARGETS = (Path("deploy/crds"), Path("charts/pweza-core/crds"))
HEADER = "# Generated from the pydantic models by `make crds` (hack/gen-crds.py). Do not edit.\n"


def render(document: dict[str, object]) -> str:
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=120)


def main() -> None:
    targets = [Path(arg) for arg in sys.argv[1:]] or list(DEFAULT_TARGETS)
    for target in targets:
        target.mkdir(parents=True, exist_ok=True)
        for name, document in all_crds().items():
            (target / name).write_text(render(document))
            print(f"wrote {target / name}")


if __name__ == "__main__":
    main()
