// The one worker on Gridiron's workerd socket when every build is compiled at start
// (GRIDIRON_WORKERD_RELOAD=restart). Requests for /{name}/{buildId}/... that Restate signed go to
// that build's service binding unchanged: the Restate SDK matches its paths by suffix.
import { identityProblem, refuse } from "./identity.js";

export default {
  async fetch(request, env) {
    const [, name, buildId] = new URL(request.url).pathname.split("/");
    if (!name) return Response.json({ builds: Object.keys(env).filter((key) => key.includes("/")).length });
    const problem = await identityProblem(request, env, `/${name}/${buildId}`);
    if (problem) return refuse(problem);
    const build = env[`${name}/${buildId}`];
    if (!build) return new Response(`no build "${name}/${buildId}" is live on this workerd\n`, { status: 404 });
    return build.fetch(request);
  },
};
