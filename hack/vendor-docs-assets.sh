#!/usr/bin/env bash
# Copies Swagger UI and ReDoc into the package (src/pweza/api/static/), so that /docs and /redoc
# work with no network: `make docs-assets`. Run it only to change a version; the copied files are
# checked in, so installing the package (pip, the image build) needs neither npm nor the network.
#
# Each tarball comes from the npm registry by exact version and is checked against the pinned
# integrity below before anything is taken from it. Only the browser bundles and their licence
# files are kept (no source maps). assets.json records what was copied; a unit test checks the
# files against it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${ROOT}/src/pweza/api/static"

# name version integrity (npm's dist.integrity of that version)
PACKAGES=(
  "swagger-ui-dist 5.35.0 sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
  "redoc 2.5.4 sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ=="
)
# package -> folder under static/, and the files taken from the tarball's package/ folder
declare -A FOLDER=([swagger-ui-dist]=swagger-ui [redoc]=redoc)
declare -A FILES=(
  [swagger-ui-dist]="swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png LICENSE NOTICE"
  [redoc]="bundles/redoc.standalone.js bundles/redoc.standalone.js.LICENSE.txt bundles/d87bcbdbea8f8f5aa26f.worker.js.LICENSE.txt LICENSE"
)

command -v npm >/dev/null || { echo "npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

manifest="${work}/assets.json"
printf '{\n' >"${manifest}"
first=1
for entry in "${PACKAGES[@]}"; do
  read -r name version integrity <<<"${entry}"
  (cd "${work}" && npm pack --silent "${name}@${version}" >/dev/null)
  tarball="${work}/${name}-${version}.tgz"
  got="sha512-$(openssl dgst -sha512 -binary "${tarball}" | base64 -w0)"
  [[ "${got}" == "${integrity}" ]] || { echo "${name}@${version}: integrity ${got}, expected ${integrity}" >&2; exit 1; }
  mkdir -p "${work}/${name}" && tar xzf "${tarball}" -C "${work}/${name}"
  folder="${DEST}/${FOLDER[${name}]}"
  rm -rf "${folder}" && mkdir -p "${folder}"
  files=""
  for file in ${FILES[${name}]}; do
    cp "${work}/${name}/package/${file}" "${folder}/$(basename "${file}")"
    sum="$(sha256sum "${folder}/$(basename "${file}")" | cut -c1-64)"
    files+="${files:+,}\n      \"$(basename "${file}")\": \"${sum}\""
  done
  [[ ${first} == 1 ]] || printf ',\n' >>"${manifest}"
  first=0
  printf '  "%s": {\n    "package": "%s",\n    "version": "%s",\n    "integrity": "%s",\n    "sha256": {%b\n    }\n  }' \
    "${FOLDER[${name}]}" "${name}" "${version}" "${integrity}" "${files}" >>"${manifest}"
  echo "copied ${name}@${version} to ${folder#"${ROOT}/"}" >&2
done
printf '\n}\n' >>"${manifest}"
cp "${manifest}" "${DEST}/assets.json"
