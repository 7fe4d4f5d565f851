# Gridiron's everyday commands. Run them with `npx just <recipe>` after `npm install`;
# the mesh itself runs with `npm start`.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments := false

ingress := "http://127.0.0.1:" + env("GRIDIRON_INGRESS_PORT", "8080")
export WRANGLER_SEND_METRICS := "false"
# The deployer's admin token: GRIDIRON_ADMIN_TOKEN, else the file `npm start` generated.
token := env("GRIDIRON_ADMIN_TOKEN", `cat "${GRIDIRON_DATA_DIR:-.gridiron}/admin-token" 2>/dev/null || true`)

# List the recipes
default:
    @just --list

# Build demo/NAME with wrangler into demo/NAME/dist (extra FLAGS go to wrangler, e.g. --define STEP:10)
build NAME *FLAGS:
    @cd demo/{{NAME}} && wrangler deploy --dry-run --outdir dist {{FLAGS}} > /dev/null
    @echo "built demo/{{NAME}}/dist"

# Build and activate the demo greeter and counter
deploy-demo: (build "greeter") (build "counter")
    @just deploy greeter 1.0.0 demo/greeter/dist
    @just deploy counter 1.0.0 demo/counter/dist

# Activate the wrangler outdir DIR as VERSION of bundle NAME
deploy NAME VERSION DIR:
    @curl -sS --fail-with-body {{ingress}}/deployer/{{NAME}}/activate \
      -H 'content-type: application/json' -H "authorization: Bearer {{token}}" \
      -d "{\"source\":\"file://$(realpath '{{DIR}}')\",\"version\":\"{{VERSION}}\"}"
    @echo

# Greet NAME (World when empty)
test-greeter NAME="":
    @just call greeter greet {{ if NAME == "" { "" } else { quote('"' + NAME + '"') } }}

# Add one to the counter KEY and print the new count
test-counter KEY="default":
    @just call counter/{{KEY}} add

# Every deployed bundle and its builds
status:
    @node control/main.ts status

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
