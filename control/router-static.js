// The one worker on Gridiron's workerd socket when every build is compiled at start
// (GRIDIRON_WORKERD_RELOAD=restart). Requests for /{name}/{buildId}/... go to that
// build's service binding unchanged: the Restate SDK matches its paths by suffix.
export default {
  async fetch(request, env) {
    const [, name, buildId] = new URL(request.url).pathname.split("/");
    if (!name) return Response.json({ builds: Object.keys(env).length });
    const build = env[`${name}/${buildId}`];
    if (!build) return new Response(`no build "${name}/${buildId}" is live on this workerd\n`, { status: 404 });
    return build.fetch(request);
  },
};
