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

# Build and activate the demo greeter and counter
deploy-demo:
    @node control/cli/main.ts deploy demo/greeter --version 1.0.0
    @node control/cli/main.ts deploy demo/counter --version 1.0.0

# Activate DIR (a wrangler project, or a wrangler outdir) as VERSION of bundle NAME
deploy NAME VERSION DIR:
    @node control/cli/main.ts deploy '{{DIR}}' --name '{{NAME}}' --version '{{VERSION}}'

# Greet NAME (World when empty)
test-greeter NAME="":
    @just call greeter greet {{ if NAME == "" { "" } else { quote('"' + NAME + '"') } }}

# Add one to the counter KEY and print the new count
test-counter KEY="default":
    @just call counter/{{KEY}} add

# Every deployed bundle and its builds (and a cluster's nodes); of the mesh GRIDIRON_INGRESS_URL names, if set, else the local one
status:
    @{{ if env("GRIDIRON_INGRESS_URL", "") == "" { "node control/main.ts status" } else { "node control/cli/main.ts status" } }}

# Call HANDLER of SERVICE (for objects: SERVICE/KEY) with an optional JSON body ARGS
call SERVICE HANDLER ARGS="":
    @curl -sS --fail-with-body {{ingress}}/{{SERVICE}}/{{HANDLER}} \
      -H 'content-type: application/json' {{ if ARGS == "" { "" } else { "-d " + quote(ARGS) } }}
    @echo

image := "gridiron:local"

# Build the container image (needs a Docker engine)
docker-build:
    docker build -t {{image}} .

# Run the mesh in a container, data in the gridiron-data volume. demo/ is mounted at the same
# path as on the host, so `deploy-demo` and `deploy` hand the container paths it can read.
docker-run:
    docker run -d --name gridiron -p 8080:8080 -p 9070:9070 -p 9082:9082 \
      -e GRIDIRON_ADMIN_TOKEN -v gridiron-data:/data -v {{justfile_directory()}}/demo:{{justfile_directory()}}/demo:ro {{image}}

# A shell in the running container
docker-shell:
    docker exec -it gridiron bash

# Remove the container, its data volume and the image
docker-clean:
    -docker rm -f gridiron
    -docker volume rm gridiron-data
    -docker image rm {{image}}

# Start a local cluster of three nodes (n1, n2, n3), each in a network namespace (needs root)
cluster-up:
    @node control/cluster/main.ts up

# Every node of the local cluster as JSON (name, ingress, admin, alive)
cluster-nodes:
    @node control/cluster/main.ts nodes

# Kill every process of NODE of the local cluster with SIGKILL
cluster-kill NODE:
    @node control/cluster/main.ts kill {{NODE}}

# Start NODE of the local cluster again
cluster-start NODE:
    @node control/cluster/main.ts start {{NODE}}

# Stop the local cluster and remove its namespaces and data
cluster-down:
    @node control/cluster/main.ts down
