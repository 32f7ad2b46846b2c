import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../core/clock.ts';
import { silentLogger } from '../core/log.ts';
import { GatewayApiController } from './gateway-controller.ts';
import type { GatewayClassObject, GatewayObject, HTTPRouteObject } from './gateway-api.ts';
import type { KubeWatch } from './watch.ts';

const CTRL = 'serve-gateway.io/gateway-controller';

/** The watch's reads and the status PUT, in memory: a PUT succeeds (bumping resourceVersion) or answers `failWith`. */
class StubWatch {
  classes: GatewayClassObject[] = [{ metadata: { name: 'sg', generation: 1, resourceVersion: '1' }, spec: { controllerName: CTRL } }];
  gateways: GatewayObject[] = [{ metadata: { name: 'llm-gateway', namespace: 'ray', generation: 1, resourceVersion: '1' }, spec: { gatewayClassName: 'sg', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] } }];
  routes: HTTPRouteObject[] = [];
  puts: string[] = [];
  failWith: number | null = null;
  rv = 10;

  gatewayApiStatus() {
    return { synced: true, connected: true, lastError: null };
  }
  gatewayClasses() {
    return this.classes;
  }
  gateways_() {
    return this.gateways;
  }
  httpRoutes() {
    return this.routes;
  }
  services() {
    return [];
  }
  pods() {
    return [];
  }
  async replaceGatewayApiStatus(plural: string, obj: { metadata?: { name?: string }; status?: unknown }): Promise<void> {
    this.puts.push(`${plural}/${obj.metadata?.name}`);
    if (this.failWith !== null) throw Object.assign(new Error(`HTTP ${this.failWith}`), { code: this.failWith });
    const list = (plural === 'gatewayclasses' ? this.classes : this.gateways) as Array<{ metadata?: { name?: string; resourceVersion?: string }; status?: unknown }>;
    const i = list.findIndex((x) => x.metadata?.name === obj.metadata?.name);
    list[i] = { ...list[i], metadata: { ...list[i]!.metadata, resourceVersion: String(++this.rv) }, status: obj.status };
  }
}

function setup(leader: { value: boolean }) {
  const clock = new ManualClock(0);
  const stub = new StubWatch();
  // Bind the stub's methods to the stub (its lists change under the controller).
  const w = {
    gatewayApiStatus: () => stub.gatewayApiStatus(),
    gatewayClasses: () => stub.gatewayClasses(),
    gateways: () => stub.gateways_(),
    httpRoutes: () => stub.httpRoutes(),
    services: () => stub.services(),
    pods: () => stub.pods(),
    replaceGatewayApiStatus: (p: string, o: never) => stub.replaceGatewayApiStatus(p, o),
  };
  const models: number[] = [];
  const ctl = new GatewayApiController({
    cfg: { controllerName: CTRL, service: null },
    namespace: 'ray',
    watch: w as unknown as KubeWatch,
    clock,
    log: silentLogger,
    writesStatus: () => leader.value,
    rayClusters: () => new Set(),
    onModel: (m) => models.push(m.rules.length),
  });
  return { clock, stub, ctl, models };
}

const settle = async (clock: ManualClock, ms = 0) => {
  clock.advance(ms);
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe('GatewayApiController', () => {
  it('only the leader writes; each object once, and not again while nothing changed', async () => {
    const leader = { value: false };
    const { clock, stub, ctl, models } = setup(leader);
    ctl.schedule();
    await settle(clock);
    assert.deepEqual(stub.puts, [], 'a replica that does not lead writes no status');
    assert.equal(models.length, 1, 'but it routes by the model');
    leader.value = true;
    ctl.schedule();
    await settle(clock);
    assert.deepEqual(stub.puts, ['gatewayclasses/sg', 'gateways/llm-gateway']);
    ctl.schedule();
    await settle(clock);
    assert.deepEqual(stub.puts, ['gatewayclasses/sg', 'gateways/llm-gateway'], 'unchanged status is not written again');
    assert.equal(ctl.report().status_writes, 2);
  });

  it('a 409 is tried again 100 ms later; another error every second, reported', async () => {
    const { clock, stub, ctl } = setup({ value: true });
    stub.failWith = 409;
    ctl.schedule();
    await settle(clock);
    assert.equal(stub.puts.length, 2);
    await settle(clock, 100);
    assert.equal(stub.puts.length, 4, 'retried after a conflict');
    stub.failWith = 403;
    await settle(clock, 100);
    assert.equal(stub.puts.length, 6);
    assert.match(ctl.report().last_write_error ?? '', /HTTP 403/);
    await settle(clock, 500);
    assert.equal(stub.puts.length, 6, 'no retry before a second');
    stub.failWith = null;
    await settle(clock, 500);
    assert.equal(stub.puts.length, 8);
    assert.equal(ctl.report().last_write_error, null);
  });
});
