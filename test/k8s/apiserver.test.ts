// Smoke suite for the real-apiserver harness (test/k8s/apiserver.ts): a
// genuine kube-apiserver with embedded etcd, KubeRay's CRDs, a RayService from
// KubeRay's sample watched by a client-node informer, a Pod whose status a test
// sets as a kubelet would, RBAC denial for a least-privilege ServiceAccount,
// and a restart that keeps the data. Run with `npm run test:k8s`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, VersionApi, makeInformer, setHeaderOptions } from '@kubernetes/client-node';
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { APISERVER_SETUP_TIMEOUT_MS, K8S_DEADLINE, apiServerUnavailable, startApiServer, statusOf } from './apiserver.ts';
import type { ApiServer } from './apiserver.ts';

const unavailable = apiServerUnavailable();
const NS = 'default';
const RS = { group: 'ray.io', version: 'v1', plural: 'rayservices' } as const;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

interface RayService extends KubernetesObject {
  spec?: { serveConfigV2?: string; rayClusterConfig?: unknown };
  status?: { serviceStatus?: string; numServeEndpoints?: number; activeServiceStatus?: { rayClusterName?: string } };
}

function sample(): RayService {
  return parseYaml(readFileSync(join(import.meta.dirname, 'fixtures/ray-service.sample.yaml'), 'utf8')) as RayService;
}

/**
 * Resolves with the first value passed to `take`, or rejects after `ms`. The
 * timer is cleared by cancel(), and a rejection nobody awaits is not reported
 * as unhandled (the test failed earlier for another reason).
 */
function eventually<T>(what: string, ms: number, subscribe: (take: (v: T) => void) => void): { promise: Promise<T>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<T>((res, rej) => {
    timer = setTimeout(() => rej(new Error(`${what}: nothing after ${ms} ms`)), ms);
    subscribe((v) => {
      clearTimeout(timer);
      res(v);
    });
  });
  promise.catch(() => {});
  return { promise, cancel: () => clearTimeout(timer) };
}

describe('real kube-apiserver harness', { skip: unavailable ?? false, concurrency: false }, () => {
  let server: ApiServer;
  let custom: CustomObjectsApi;
  let core: CoreV1Api;

  before(
    async () => {
      server = await startApiServer();
      console.log(`# kube-apiserver ready in ${server.lastStartMs} ms on ${server.url} (pid ${server.pid})`);
      custom = server.kc.makeApiClient(CustomObjectsApi);
      core = server.kc.makeApiClient(CoreV1Api);
    },
    { timeout: APISERVER_SETUP_TIMEOUT_MS },
  );

  after(async () => {
    await server?.stop();
  });

  test('serves /version as Kubernetes v1.37.2 over TLS verified by the kubeconfig CA', async () => {
    const v = await server.kc.makeApiClient(VersionApi).getCode();
    assert.equal(v.gitVersion, 'v1.37.2');
    assert.equal(v.major, '1');
    assert.equal(v.minor, '37');
    assert.equal(server.kc.getCurrentCluster()?.skipTLSVerify ?? false, false);
  });

  test('applies the KubeRay CRDs (RayService, RayCluster) and validates RayService specs', { timeout: 2 * K8S_DEADLINE.crdEstablished + 30_000 }, async () => {
    const t0 = Date.now();
    await server.applyCrds();
    console.log(`# CRDs applied and Established in ${Date.now() - t0} ms`);
    const list = (await custom.listNamespacedCustomObject({ ...RS, namespace: NS })) as { items: unknown[] };
    assert.deepEqual(list.items, []);
    // The full CRD validates spec: a RayService without rayClusterConfig is refused.
    await assert.rejects(
      custom.createNamespacedCustomObject({ ...RS, namespace: NS, body: { apiVersion: 'ray.io/v1', kind: 'RayService', metadata: { name: 'invalid' }, spec: {} } }),
      (err) => statusOf(err) === 422,
    );
    // Applying again replaces them (idempotent).
    await server.applyCrds();
  });

  test('an informer sees the sample RayService ADDED, then MODIFIED by a status-subresource patch', { timeout: 60_000 }, async () => {
    const path = `/apis/ray.io/v1/namespaces/${NS}/rayservices`;
    const informer = makeInformer<RayService>(server.kc, path, () => custom.listNamespacedCustomObject({ ...RS, namespace: NS }) as never);
    const events: string[] = [];
    const added = eventually<RayService>('informer add', 30_000, (take) =>
      informer.on('add', (o) => {
        events.push(`add ${o.metadata?.name}`);
        take(o);
      }),
    );
    const updated = eventually<RayService>('informer update', 30_000, (take) =>
      informer.on('update', (o) => {
        events.push(`update ${o.metadata?.name} ${o.status?.serviceStatus}`);
        if (o.status?.serviceStatus === 'Running') take(o);
      }),
    );
    informer.on('error', (err) => {
      if ((err as Error)?.name !== 'AbortError') events.push(`error ${String(err)}`);
    });
    await informer.start();
    try {
      // Created after the informer's list: it arrives as a watch ADDED event.
      const created = (await custom.createNamespacedCustomObject({ ...RS, namespace: NS, body: sample() })) as RayService;
      assert.equal(created.metadata?.name, 'rayservice-sample');
      assert.equal(created.metadata?.generation, 1);
      const a = await added.promise;
      assert.equal(a.metadata?.uid, created.metadata?.uid);
      assert.equal(a.status, undefined);

      // KubeRay's part: the status subresource (a test plays the operator).
      await custom.patchNamespacedCustomObjectStatus(
        {
          ...RS,
          namespace: NS,
          name: 'rayservice-sample',
          body: { status: { serviceStatus: 'Running', numServeEndpoints: 1, activeServiceStatus: { rayClusterName: 'rayservice-sample-abcde' } } },
        },
        mergePatch,
      );
      const u = await updated.promise;
      assert.equal(u.status?.activeServiceStatus?.rayClusterName, 'rayservice-sample-abcde');
      assert.equal(u.metadata?.generation, 1, 'a status change leaves generation alone');

      // Status written through the main resource is ignored (status subresource enabled).
      const after = (await custom.patchNamespacedCustomObject(
        { ...RS, namespace: NS, name: 'rayservice-sample', body: { status: { serviceStatus: 'Other' } } },
        mergePatch,
      )) as RayService;
      assert.equal(after.status?.serviceStatus, 'Running');
      assert.deepEqual(events.slice(0, 2), ['add rayservice-sample', 'update rayservice-sample Running']);
    } finally {
      added.cancel();
      updated.cancel();
      await informer.stop();
    }
  });

  test('a Pod status set through the status subresource (podIP 127.0.0.2, Running, Ready)', async () => {
    const pod: V1Pod = {
      metadata: { name: 'rayservice-sample-abcde-worker-1', labels: { 'ray.io/cluster': 'rayservice-sample-abcde', 'ray.io/serve': 'true', 'ray.io/node-type': 'worker' } },
      spec: { containers: [{ name: 'ray-worker', image: 'rayproject/ray:2.52.0' }] },
    };
    const created = await core.createNamespacedPod({ namespace: NS, body: pod });
    assert.equal(created.status?.phase, 'Pending');
    const now = new Date();
    await core.patchNamespacedPodStatus(
      {
        name: pod.metadata!.name!,
        namespace: NS,
        body: {
          status: {
            phase: 'Running',
            podIP: '127.0.0.2',
            podIPs: [{ ip: '127.0.0.2' }],
            conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
          },
        },
      },
      mergePatch,
    );
    const read = await core.readNamespacedPod({ name: pod.metadata!.name!, namespace: NS });
    assert.equal(read.status?.phase, 'Running');
    assert.equal(read.status?.podIP, '127.0.0.2');
    assert.equal(read.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    const selected = await core.listNamespacedPod({ namespace: NS, labelSelector: 'ray.io/cluster=rayservice-sample-abcde,ray.io/serve=true' });
    assert.deepEqual(
      selected.items.map((p) => p.metadata?.name),
      [pod.metadata!.name],
    );
  });

  test('RBAC: a ServiceAccount that may only read pods is denied RayServices (403)', { timeout: 60_000 }, async () => {
    const sa = await server.serviceAccountKubeConfig({
      name: 'pod-reader',
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }],
    });
    assert.equal(sa.user, 'system:serviceaccount:default:pod-reader');
    const saCore = sa.kc.makeApiClient(CoreV1Api);
    const pods = await saCore.listNamespacedPod({ namespace: NS });
    assert.equal(pods.items.length, 1);
    const saCustom = sa.kc.makeApiClient(CustomObjectsApi);
    await assert.rejects(saCustom.listNamespacedCustomObject({ ...RS, namespace: NS }), (err) => statusOf(err) === 403);
    await assert.rejects(saCore.listNamespacedConfigMap({ namespace: NS }), (err) => statusOf(err) === 403);
    await assert.rejects(
      saCore.deleteNamespacedPod({ name: 'rayservice-sample-abcde-worker-1', namespace: NS }),
      (err) => statusOf(err) === 403,
    );
  });

  test('restart on the same data dir and port keeps the RayService and the ServiceAccount token', { timeout: 2 * K8S_DEADLINE.ready }, async () => {
    const before = (await custom.getNamespacedCustomObject({ ...RS, namespace: NS, name: 'rayservice-sample' })) as RayService;
    const sa = await server.serviceAccountKubeConfig({ name: 'pod-reader', rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }] });
    const url = server.url;
    const oldPid = server.pid;

    await server.halt();
    assert.equal(server.pid, undefined);
    await assert.rejects(custom.getNamespacedCustomObject({ ...RS, namespace: NS, name: 'rayservice-sample' }));

    await server.resume();
    console.log(`# kube-apiserver restarted in ${server.lastStartMs} ms`);
    assert.equal(server.url, url);
    assert.notEqual(server.pid, oldPid);
    const afterRestart = (await custom.getNamespacedCustomObject({ ...RS, namespace: NS, name: 'rayservice-sample' })) as RayService;
    assert.equal(afterRestart.metadata?.uid, before.metadata?.uid);
    assert.equal(afterRestart.metadata?.resourceVersion, before.metadata?.resourceVersion);
    assert.equal(afterRestart.status?.activeServiceStatus?.rayClusterName, 'rayservice-sample-abcde');
    const pods = await sa.kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: NS });
    assert.equal(pods.items[0]?.status?.podIP, '127.0.0.2');
  });
});

describe('startApiServer failure report', { skip: unavailable ?? false }, () => {
  test('a server that cannot start is reported with its exit code and the tail of its output', { timeout: 60_000 }, async () => {
    await assert.rejects(startApiServer({ extraArgs: ['--authorization-mode=NoSuchMode'] }), (err: Error) => {
      assert.match(err.message, /not ready after \d+ ms/);
      assert.match(err.message, /process: exited with code [1-9]/);
      assert.match(err.message, /NoSuchMode/);
      return true;
    });
  });
});
