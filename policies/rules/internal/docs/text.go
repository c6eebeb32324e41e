package docs

// The hand-written sections of docs/policies.md; Markdown places them
// around the generated rule list.

const docsIntro = `scaleplane's policy pack turns the scaling rules of the articles the
platform is built on (Node.js scaling guides: stateless services behind a
least-connections balancer, autoscaling at 70 % CPU / 80 % memory, a heap
cap below the container limit, graceful shutdown, Redis for shared state,
read replicas and connection pools, queues to absorb spikes, tracing and
metrics) into checks that run before anything is deployed.

The rules live in ` + "`policies/rules`" + ` as plain Go: a resource rule gets one
resource's type and properties, a stack rule gets every resource. The same
functions run in three places:

- **Offline, the CI gate:** ` + "`scaleplane check --stack NAME`" + ` renders the stack
  under the Pulumi mocks, starts the compiled pack the way the Pulumi CLI
  starts an analyzer plugin (exec, port on stdout, gRPC) and sends it every
  resource (` + "`Analyze`" + `) and then the whole stack (` + "`AnalyzeStack`" + `). It prints
  the violations grouped by rule with the URN and the remediation, and exits
  1 on any mandatory violation (2 on a usage error). No cloud, cluster or
  credentials are needed, AWS stacks included.
- **With the Pulumi CLI:** ` + "`pulumi preview --policy-pack policies`" + ` (or the
  compiled binary, ` + "`go build -o bin/scaleplane-policy ./policies`" + `, passed as
  ` + "`--policy-pack`" + ` where no Go toolchain is installed). A mandatory violation
  fails the preview or update.
- **In the tests:** every rule has pass and fail fixtures under
  ` + "`policies/rules/testdata/<rule-id>/`" + `; every shipped stack passes every
  mandatory rule through the gRPC path; ` + "`tests/policy`" + ` holds a corpus of
  broken stack variants, each rejected by its expected rule.

Levels: **mandatory** violations fail the check, the preview and the
update; **advisory** ones are reported only.
`

const docsPack = `## The pack and policyx

` + "`policies/main.go`" + ` wraps each rule as a policyx policy of the same name
(the rule id) and level, and ` + "`policyx.Main`" + ` serves them over the Analyzer
protocol. policyx (SDK v3.274.1) is young; where it falls short the pack
and the offline client work around it:

- **Each policy reads its own config.** A policy's config schema declares
  the rule's thresholds (the table above), and the rule reads them from that
  policy's config alone: ` + "`{\"hpa-replicas\": {\"minReplicas\": 4}}`" + ` in
  ` + "`--policy-pack-config`" + `. Disabling one policy changes no other's thresholds. A
  name the policy does not declare fails the analysis instead of being
  ignored.
- **Stack policies get no config.** ` + "`StackValidationArgs`" + ` has no ` + "`Config`" + `
  (pulumi/pulumi#24657). Each stack rule is therefore listed twice under
  its id: the stack policy, and a resource policy that reports nothing and
  receives the same config on every ` + "`Analyze`" + ` call, which the engine makes
  before ` + "`AnalyzeStack`" + `, and keeps it for the stack policy.
- **Per-stack defaults.** The policy pack factory receives the stack's
  config (` + "`ConfigureStack`" + `), so the pack reads ` + "`scaleplane:environment`" + ` and starts
  from that environment's defaults (prod: three replicas, a hard zone
  spread, a Postgres read replica) with no policy config at all. It reads
  ` + "`scaleplane:imageRegistry`" + ` the same way, as image-registry's
  ` + "`imageRegistry`" + `; ` + "`scaleplane check`" + ` takes it from the stack's typed config.
- **Enforcement levels.** policyx takes a configured policy's level from the
  config alone, and an entry without one decodes as advisory. The offline
  client therefore sends every policy its config with the level the pack
  itself reports, so no mandatory rule is silently downgraded. (The
  Pulumi CLI fills in each policy's default level itself.)
- **Start-up order.** ` + "`GetAnalyzerInfo`" + ` and ` + "`GetPluginInfo`" + ` dereference the pack
  that policyx only builds in ` + "`ConfigureStack`" + `, which itself requires
  ` + "`Handshake`" + `. The offline client follows the engine's order: Handshake,
  ConfigureStack, GetAnalyzerInfo, Configure, Analyze per resource,
  AnalyzeStack once.
- **Messages.** A diagnostic has no remediation field and policyx prefixes
  the message with the description; each violation's message is the
  problem found (values and threshold) followed by a ` + "`Remediation:`" + ` line,
  and ` + "`scaleplane check`" + ` splits them again. PolicyInfo carries no display
  name: the CLI shows the id; the names are in this document.
- **Unknown values.** During a preview some inputs are not known yet; the
  pack passes them to the rules as ` + "`[unknown]`" + ` and the rules do not judge
  what they cannot see (an HPA whose target name is unknown is matched to
  the workload declared under the same component).
- **Live objects after an update.** After ` + "`pulumi up`" + ` the engine runs the
  stack policies again over the resources' outputs: each Kubernetes object
  as the API server returned it, with defaults filled in. A rule about what
  the program declares (hpa-owns-replicas: spec.replicas is always set on a
  live Deployment) skips objects carrying a server-assigned ` + "`metadata.uid`" + `;
  the same rule judged the declaration in the preview step of the update.
  Found by ` + "`scaleplane up`" + `, which now runs the pack on every update.
`

const docsKubeScore = `## Side by side with kube-score

kube-score v1.20.0 (built from the module proxy into
` + "`~/.cache/scaleplane/kube-score-v1.20.0/`" + `) was run with its default checks on
the manifests ` + "`scaleplane render`" + ` writes for each stack. The four stacks give
the same result, 122 checks OK, 17 critical and 8 warnings each:

| kube-score finding (count per stack) | here |
|---|---|
| deployment-targeted-by-hpa-does-not-have-replicas-configured | **Covered** by ` + "`hpa-owns-replicas`" + ` (mandatory): the microservice component leaves ` + "`spec.replicas`" + ` to the HPA, so an update never resets an autoscaled Deployment. |
| container-image-pull-policy: not Always (4 critical) | **Deliberately not.** ` + "`image-pinned`" + ` forbids mutable tags, so IfNotPresent pulls the same image Always would, without a registry round trip on every scale-out, and keeps locally loaded images working. |
| container-ephemeral-storage-request-and-limit (8 critical) | **Deliberately not.** The root filesystem is read-only (` + "`container-security`" + `) and the only writable path is an emptyDir with a 64Mi sizeLimit, which the kubelet enforces. |
| pod-probes-identical (1 critical, the edge) | **Deliberately not.** The services serve separate /healthz and /readyz (apps/kit); the edge proxy has no dependency to be unready for, so its one health endpoint is both. |
| pod-networkpolicy: no egress policy (4 warnings) | **Not yet.** ` + "`network-policy-per-namespace`" + ` requires ingress isolation; egress policies need the data-tier and collector endpoints, AWS-managed ones outside the cluster. |
| deployment-has-host-podantiaffinity (4 warnings) | **Covered differently.** The microservice spreads pods with topology spread constraints on the hostname and the zone, and ` + "`zone-spread`" + ` makes the zone a hard rule in prod; kube-score only recognises podAntiAffinity. |

kube-score checks we also enforce (OK on every stack): container resources
(` + "`container-resources`" + `; we do not require a CPU limit, which throttles and
which GOMAXPROCS follows instead), image tags (` + "`image-pinned`" + `), PDBs
(` + "`pdb-required`" + `, which also checks that the budget lets a drain finish and
that one budget matches), NetworkPolicies (` + "`network-policy-per-namespace`" + `),
probes (` + "`probes`" + `), security contexts and seccomp (` + "`container-security`" + `,
` + "`no-privileged`" + `; seccomp is optional in kube-score, mandatory here), HPA
replicas (` + "`hpa-replicas`" + `, stricter: three in prod and min below max).

What we check that kube-score cannot, since it sees one Kubernetes object
at a time and no config file content or other provider:

- the numbers of the articles: HPA targets (CPU ≤ 70 %, memory ≤ 80 %), the
  scale-down window, GOMEMLIMIT ≤ 90 % of the limit, grace period ≥ preStop
  + drain;
- inside config files: sticky sessions, body and rate limits in nginx.conf
  and haproxy.cfg; redis.conf, postgresql.conf, pgbouncer.ini and Kafka's
  server.properties;
- across resources: every serving workload has an HPA, the connection
  budget (maxReplicas × pool size against PgBouncer and Postgres), topic
  partitions against consumers' maxReplicas, Redis maxmemory against its
  container's limit, a pooler in front of Postgres;
- the namespace's Pod Security admission label, tracing and scraping of
  every Go service;
- the AWS data tier: ElastiCache cluster mode and failover, RDS replicas
  and proxy, MSK brokers and replication, encryption and no public endpoint.
`
