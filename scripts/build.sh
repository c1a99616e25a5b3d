#!/usr/bin/env bash
# Build: protobuf code generation (ours and GoBGP's API), the eBPF datapath, then TypeScript to dist/.
# Runs through npm (`npm run build`), so node_modules/.bin (Node 24, buf, tsc) comes first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

# GoBGP's API protos come from the Debian package golang-github-osrg-gobgp-dev; they are read at build
# time into a git-ignored folder, never copied into the repository. Override with SEGMESH_GOBGP_PROTO_DIR.
gobgp_src="${SEGMESH_GOBGP_PROTO_DIR:-/usr/share/gocode/src/github.com/osrg/gobgp/api}"
if [[ ! -f "$gobgp_src/gobgp.proto" ]]; then
  echo "build: GoBGP API protos not found in $gobgp_src" >&2
  echo "build: install them with 'apt-get install golang-github-osrg-gobgp-dev' or set SEGMESH_GOBGP_PROTO_DIR" >&2
  exit 1
fi
rm -rf build/proto/gobgp build/gen
mkdir -p build/proto/gobgp build/gen
cp "$gobgp_src"/*.proto build/proto/gobgp/

# Generate into build/gen, then swap it in: tests running meanwhile never see a half-written src/gen.
buf generate --template buf.gen.yaml -o build/gen/ours
buf generate build/proto/gobgp --template buf.gen.yaml -o build/gen/gobgp
mkdir -p build/gen/all
mv build/gen/ours/src/gen/* build/gen/all/
mv build/gen/gobgp/src/gen build/gen/all/gobgp
rm -rf src/gen.old
[[ -d src/gen ]] && mv src/gen src/gen.old
mv build/gen/all src/gen
rm -rf src/gen.old build/gen

# The eBPF datapath (bpf/): compiled here, never committed. Debian's clang 14 against the UAPI headers
# (linux-libc-dev) and libbpf-dev's bpf_helpers.h; the object needs no CO-RE (only __sk_buff and helpers).
if ! command -v clang >/dev/null 2>&1; then
  echo "build: clang not found: it compiles the eBPF datapath in bpf/ to build/bpf/*.o" >&2
  echo "build: install it with 'apt-get install clang libbpf-dev' (or bash scripts/setup.sh)" >&2
  exit 1
fi
if [[ ! -f /usr/include/bpf/bpf_helpers.h ]]; then
  echo "build: /usr/include/bpf/bpf_helpers.h not found: install it with 'apt-get install libbpf-dev'" >&2
  exit 1
fi
mkdir -p build/bpf
for src in bpf/*.c; do
  obj="build/bpf/$(basename "${src%.c}").o"
  clang -O2 -g -target bpf -Wall -Werror -I"/usr/include/$(uname -m)-linux-gnu" -c "$src" -o "$obj.tmp"
  mv "$obj.tmp" "$obj"
done

tsc -p tsconfig.build.json
# Generated code is JavaScript with declarations (protobuf-es emits TS enums otherwise, which Node's
# type stripping and our erasableSyntaxOnly setting do not allow): copy it beside the compiled code.
(cd src && find gen -name '*.js' -exec install -D -m 0644 {} ../dist/{} \;)
