#!/usr/bin/env bash
# Builds kube-score (the chart linter tests/chart/test_kube_score.py runs) from the Go module
# proxy into ${PWEZA_K8S_CACHE:-$HOME/.cache/pweza}/kube-score-<version>/, once.
set -euo pipefail
VERSION="${KUBE_SCORE_VERSION:-v1.20.0}"
DEST="${PWEZA_K8S_CACHE:-$HOME/.cache/pweza}/kube-score-${VERSION}"
if [ -x "$DEST/kube-score" ]; then
  exit 0
fi
mkdir -p "$DEST"
GOBIN="$DEST" go install "github.com/zegl/kube-score/cmd/kube-score@${VERSION}"
