import { describe, expect, it } from "vitest";
import { parseMembership } from "./peers.ts";
import { restateClusterConfig } from "./restate-config.ts";

const three = "n1=10.0.0.1,n2=10.0.0.2,n3=10.0.0.3";

describe("parseMembership", () => {
  it("finds this node, every peer in order, and lets only the first provision", () => {
    expect(parseMembership(three, "n2")).toEqual({
      self: { name: "n2", address: "10.0.0.2" },
      peers: [
        { name: "n1", address: "10.0.0.1" },
        { name: "n2", address: "10.0.0.2" },
        { name: "n3", address: "10.0.0.3" },
      ],
      provisions: false,
    });
    expect(parseMembership(three, "n1")).toMatchObject({ provisions: true });
    expect(parseMembership("a=node-a.internal, b=node-b.internal", "b")).toMatchObject({
      self: { address: "node-b.internal" },
    });
  });

  it.each([
    ["n1=10.0.0.1,n1=10.0.0.2", "n1", 'names node "n1" twice'],
    ["n1=10.0.0.1,n2=10.0.0.1", "n1", "gives address 10.0.0.1 to two nodes"],
    ["n1=10.0.0.1,n2", "n1", '"n2" is not name=address'],
    ["n1=10.0.0.1,,n2=10.0.0.2", "n1", '"" is not name=address'],
    ["N1=10.0.0.1", "N1", 'node name "N1" must be'],
    ["n1=10.0.0.1;rm -rf", "n1", "is not an IP address or host name"],
    [three, "n4", 'GRIDIRON_NODE_NAME "n4" is not in GRIDIRON_CLUSTER_PEERS (n1, n2, n3)'],
  ])("refuses %j for %s", (peers, self, message) => {
    const result = parseMembership(peers, self);
    expect(result).toHaveProperty("error");
    expect((result as { error: string }).error).toContain(message);
  });
});

describe("restateClusterConfig", () => {
  it("puts the provisioning and replication keys before the base's tables, and lists every node", () => {
    const membership = parseMembership(three, "n1");
    if ("error" in membership) throw new Error(membership.error);
    const text = restateClusterConfig(
      'cluster-name = "gridiron"\n\n[worker.invoker]\nx = 1\n',
      membership,
      5122,
      { ca: "/d/tls/ca.pem", cert: "/d/tls/node.pem", key: "/d/tls/node-key.pem" },
      undefined,
    );
    const lines = text.split("\n");
    expect(lines.indexOf("auto-provision = true")).toBeLessThan(lines.indexOf("[worker.invoker]"));
    expect(lines.indexOf("default-replication = 2")).toBeLessThan(lines.indexOf("[worker.invoker]"));
    expect(text).toContain(
      'addresses = ["https://10.0.0.1:5122/", "https://10.0.0.2:5122/", "https://10.0.0.3:5122/"]',
    );
  });

  it("takes only mutual TLS on the node port, from a certificate the cluster's CA signed for a peer's name", () => {
    const membership = parseMembership(three, "n2");
    if ("error" in membership) throw new Error(membership.error);
    const tls = { ca: "/d/tls/ca.pem", cert: "/d/tls/node.pem", key: "/d/tls/node-key.pem" };
    const text = restateClusterConfig("", membership, 5122, tls, undefined);
    const section = text.slice(text.indexOf("[tls]")).trimEnd().split("\n\n")[0]?.split("\n");
    expect(section).toEqual([
      "[tls]",
      'mode = "require"',
      'cert-file = "/d/tls/node.pem"',
      'key-file = "/d/tls/node-key.pem"',
      'ca-files = ["/d/tls/ca.pem"]',
      "require-client-auth = true",
      'allowed-subject-names = ["n1", "n2", "n3"]',
    ]);
  });

  it("points Restate's snapshots at the bucket, with the endpoint of a store other than AWS", () => {
    const membership = parseMembership(three, "n1");
    if ("error" in membership) throw new Error(membership.error);
    const tls = { ca: "/d/tls/ca.pem", cert: "/d/tls/node.pem", key: "/d/tls/node-key.pem" };
    const section = (endpoint: string | undefined) => {
      const text = restateClusterConfig("", membership, 5122, tls, { destination: "s3://b/snaps", endpoint });
      return text.slice(text.indexOf("[worker.snapshots]")).trimEnd().split("\n");
    };
    expect(section("http://10.0.0.9:7480")).toEqual([
      "[worker.snapshots]",
      'destination = "s3://b/snaps"',
      'aws-endpoint-url = "http://10.0.0.9:7480"',
      "aws-allow-http = true",
    ]);
    expect(section(undefined)).toEqual(["[worker.snapshots]", 'destination = "s3://b/snaps"']);
  });
});
