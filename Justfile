# Gridiron's everyday commands. Run them with `npx just <recipe>` after `npm install`;
# the mesh itself runs with `npm start`.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments := false

# The mesh the CLI finds (gridiron mesh): set URLs or ports, else what a running `npm start` recorded.
ingress := env("GRIDIRON_INGRESS_URL", `node control/cli/main.ts mesh ingress`)
export WRANGLER_SEND_METRICS := "false"

# List the recipes
default:
    @just --list

# Build demo/NAME with wrangler into demo/NAME/dist (extra FLAGS go to wrangler, e.g. --define STEP:10)
build NAME *FLAGS:
    @cd demo/{{NAME}} && wrangler deploy --dry-run --outdir dist {{FLAGS}} > /dev/null
    @echo "built demo/{{NAME}}/dist"

# Build and activate the demo greeter and counter (inside the container when `docker-run` started it)
deploy-demo:
    @container/at-mesh {{container}} node control/cli/main.ts deploy demo/greeter --version 1.0.0
    @container/at-mesh {{container}} node control/cli/main.ts deploy demo/counter --version 1.0.0

# Activate DIR (a wrangler project, or a wrangler outdir) as VERSION of bundle NAME
deploy NAME VERSION DIR:
    @node control/cli/main.ts deploy '{{DIR}}' --name '{{NAME}}' --version '{{VERSION}}'

# Greet NAME (World when empty)
test-greeter NAME="":
    @just call greeter greet {{ if NAME == "" { "" } else { quote('"' + NAME + '"') } }}

# Add one to the counter KEY and print the new count
test-counter KEY="default":
    @just call counter/{{KEY}} add

# Of the mesh GRIDIRON_INGRESS_URL names, if set, else of the container `docker-run` started, if
# it runs, else of the local mesh.
# Every deployed bundle and its builds (and a cluster's nodes)
status:
    @{{ if env("GRIDIRON_INGRESS_URL", "") == "" { "container/at-mesh " + container + " node control/main.ts status" } else { "node control/cli/main.ts status" } }}

# Call HANDLER of SERVICE (for objects: SERVICE/KEY) with an optional JSON body ARGS
call SERVICE HANDLER ARGS="":
    @curl -sS --fail-with-body {{ingress}}/{{SERVICE}}/{{HANDLER}} \
      -H 'content-type: application/json' {{ if ARGS == "" { "" } else { "-d " + quote(ARGS) } }}
    @echo

# The container: image, container and volume names, overridable (the container test uses its own).
image := env("GRIDIRON_IMAGE", "gridiron:local")
container := env("GRIDIRON_CONTAINER", "gridiron")
volume := env("GRIDIRON_CONTAINER_VOLUME", "gridiron-data")

# docker or podman, whichever runs here (container/engine). FROM Node's official image where a
# registry answers, else FROM a local Debian base with Node from npm (container/base-image, made
# once and kept); GRIDIRON_BASE_IMAGE names another base.
# Build the container image (docker or podman; no registry needed)
docker-build:
    #!/usr/bin/env bash
    set -euo pipefail
    base=${GRIDIRON_BASE_IMAGE:-docker.io/library/node:22-bookworm-slim}
    if [ -z "${GRIDIRON_BASE_IMAGE:-}" ] && ! container/engine image inspect "$base" >/dev/null 2>&1 &&
      ! timeout 300 container/engine pull -q "$base" >/dev/null 2>&1; then
      echo "no registry answers: building FROM a local Debian base with Node from npm (container/base-image)"
      base=$(container/base-image)
    fi
    container/engine build --build-arg BASE="$base" -t {{image}} .

# Ports 8080, 9070 and 9082 on 127.0.0.1 (GRIDIRON_INGRESS_PORT, _ADMIN_PORT and _OPS_PORT move
# them). The admin token is GRIDIRON_ADMIN_TOKEN, else .gridiron/admin-token here (made if
# missing), so this checkout's recipes and CLI use the same one. demo/ is mounted read-only at the
# same path, so `deploy NAME VERSION demo/NAME/dist` hands the container a path it can read.
# Run the mesh in a container, data in the gridiron-data volume, and wait until it is ready
docker-run:
    #!/usr/bin/env bash
    set -euo pipefail
    token_file=${GRIDIRON_DATA_DIR:-.gridiron}/admin-token
    if [ -z "${GRIDIRON_ADMIN_TOKEN:-}" ]; then
      if [ ! -s "$token_file" ]; then
        (umask 077 && mkdir -p "$(dirname "$token_file")" &&
          node -e 'console.log(require("node:crypto").randomBytes(32).toString("base64url"))' > "$token_file")
      fi
      GRIDIRON_ADMIN_TOKEN=$(cat "$token_file")
    fi
    export GRIDIRON_ADMIN_TOKEN
    ops=${GRIDIRON_OPS_PORT:-9082}
    container/engine run -d --name {{container}} \
      -p "127.0.0.1:${GRIDIRON_INGRESS_PORT:-8080}:8080" -p "127.0.0.1:${GRIDIRON_ADMIN_PORT:-9070}:9070" \
      -p "127.0.0.1:$ops:9082" -e GRIDIRON_ADMIN_TOKEN -v {{volume}}:/data \
      -v "$PWD/demo:$PWD/demo:ro" {{image}} >/dev/null
    for _ in $(seq 180); do
      if curl -fsS -o /dev/null "http://127.0.0.1:$ops/readyz" 2>/dev/null; then echo "{{container}} is ready"; exit 0; fi
      sleep 1
    done
    echo "{{container}} not ready after 180 s; its log: container/engine logs {{container}}" >&2
    exit 1

# A shell in the running container
docker-shell:
    @container/engine exec -i $([ -t 0 ] && echo -t) {{container}} bash

# Remove the container, its data volume and the image (the local base image stays, for the next build)
docker-clean:
    -container/engine rm -f {{container}}
    -container/engine volume rm {{volume}}
    -container/engine image rm {{image}}

# Start a local cluster of three nodes (n1, n2, n3), each in a network namespace (needs root)
cluster-up:
    @node tools/local-cluster/main.ts up

# Every node of the local cluster as JSON (name, ingress, admin, alive)
cluster-nodes:
    @node tools/local-cluster/main.ts nodes

# Kill every process of NODE of the local cluster with SIGKILL
cluster-kill NODE:
    @node tools/local-cluster/main.ts kill {{NODE}}

# Start NODE of the local cluster again
cluster-start NODE:
    @node tools/local-cluster/main.ts start {{NODE}}

# Add the next node (n4, ...) to the running local cluster: each node restarts in turn with it among its peers
cluster-add:
    @node tools/local-cluster/main.ts add

# Stop the local cluster and remove its namespaces and data
cluster-down:
    @node tools/local-cluster/main.ts down
