// The Ray dashboard's Serve REST API of one simulated cluster:
// GET /api/serve/applications/ → ServeInstanceDetails (serve.md §4.2), shaped
// like src/config/fixtures/serve-get-applications.response.json (a real Ray answer).
// Deployments come from the cluster's serve_config; the ingress deployment's
// replicas are the live ones (they follow scale and drain).
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HostPort, ServeAppStatus } from '../config/types.ts';
import type { AppRuntime, Replica } from './app-runtime.ts';
import { isObject } from './sim-config.ts';
import { SimServer } from './sim-server.ts';
import type { SimProxy } from './serve-proxy.ts';

/** What the dashboard reads from its cluster. */
export interface DashboardSource {
  readonly name: string;
  readonly proxies: readonly SimProxy[];
  readonly runtimes: ReadonlyMap<string, AppRuntime>;
  readonly serveDoc: unknown;
  readonly requestTimeoutS: number | null;
  readonly deployedAtS: number;
}

export const SERVE_APPLICATIONS_PATH = '/api/serve/applications/';

export class SimDashboard extends SimServer {
  readonly source: DashboardSource;

  constructor(source: DashboardSource, address: HostPort) {
    super(address);
    this.source = source;
  }

  protected serve(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path !== SERVE_APPLICATIONS_PATH) {
      send(res, 404, 'text/plain; charset=utf-8', '404: Not Found');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', '405: Method Not Allowed');
      return;
    }
    const apiType = q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get('api_type');
    if (apiType !== null && apiType !== 'declarative' && apiType !== 'imperative') {
      send(res, 400, 'text/plain; charset=utf-8', `Invalid 'api_type' value: '${apiType}'. Must be one of: declarative, imperative`);
      return;
    }
    send(res, 200, 'application/json; charset=utf-8', JSON.stringify(serveInstanceDetails(this.source)));
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Deterministic 56-hex ids, like Ray's node and worker ids. */
function hexId(...parts: (string | number)[]): string {
  return createHash('sha224').update(parts.join('/')).digest('hex');
}

function actorId(...parts: (string | number)[]): string {
  return `${hexId(...parts).slice(0, 24)}01000000`;
}

export function serveInstanceDetails(src: DashboardSource): Record<string, unknown> {
  if (src.runtimes.size === 0) {
    // Ray 2.53 still sends deploy_mode here (Serve not started), but not once it runs.
    return { deploy_mode: 'MULTI_APP', controller_info: {}, proxies: {}, applications: {}, target_capacity: null };
  }
  const doc = isObject(src.serveDoc) ? src.serveDoc : {};
  const nodeIds = src.proxies.map((p) => hexId(src.name, 'node', p.index));
  const headNode = nodeIds[0] ?? hexId(src.name, 'node', 0);
  const headIp = src.proxies[0]?.address.host ?? '127.0.0.1';
  const proxies: Record<string, unknown> = {};
  src.proxies.forEach((p, i) => {
    const nodeId = nodeIds[i] as string;
    proxies[nodeId] = {
      node_id: nodeId,
      node_ip: p.address.host,
      node_instance_id: '',
      actor_id: actorId(src.name, 'proxy', i),
      actor_name: `SERVE_PROXY_ACTOR-${nodeId}`,
      worker_id: hexId(src.name, 'proxy-worker', i),
      log_file_path: `/serve/proxy_${p.address.host}_${p.address.port}.log`,
      status: !p.up ? 'UNHEALTHY' : p.draining ? 'DRAINING' : 'HEALTHY',
    };
  });
  const httpOptions = isObject(doc['http_options']) ? doc['http_options'] : {};
  const rawApps = Array.isArray(doc['applications']) ? doc['applications'] : [];
  const applications: Record<string, unknown> = {};
  for (const raw of rawApps) {
    if (!isObject(raw) || typeof raw['name'] !== 'string') continue;
    const rt = src.runtimes.get(raw['name']);
    if (!rt) continue;
    applications[rt.app.name] = application(src, rt, raw, nodeIds);
  }
  return {
    controller_info: {
      node_id: headNode,
      node_ip: headIp,
      node_instance_id: '',
      actor_id: actorId(src.name, 'controller'),
      actor_name: 'SERVE_CONTROLLER_ACTOR',
      worker_id: hexId(src.name, 'controller-worker'),
      log_file_path: '/serve/controller_1.log',
    },
    proxy_location: typeof doc['proxy_location'] === 'string' ? doc['proxy_location'] : 'EveryNode',
    http_options: {
      host: httpOptions['host'] ?? '0.0.0.0',
      port: httpOptions['port'] ?? 8000,
      root_path: httpOptions['root_path'] ?? '',
      request_timeout_s: src.requestTimeoutS,
      keep_alive_timeout_s: httpOptions['keep_alive_timeout_s'] ?? 90,
      ssl_keyfile: null,
      ssl_certfile: null,
      ssl_keyfile_password: null,
      ssl_ca_certs: null,
    },
    grpc_options: { port: 9000, grpc_servicer_functions: [], request_timeout_s: null },
    proxies,
    applications,
    target_capacity: typeof doc['target_capacity'] === 'number' ? doc['target_capacity'] : null,
    target_groups: [
      {
        targets: src.proxies.map((p, i) => ({
          ip: p.address.host,
          port: p.address.port,
          instance_id: '',
          name: `SERVE_PROXY_ACTOR-${nodeIds[i] as string}`,
        })),
        route_prefix: '/',
        protocol: 'HTTP',
      },
    ],
  };
}

const DEPLOYMENT_STATUS: Record<ServeAppStatus, [string, string]> = {
  RUNNING: ['HEALTHY', 'CONFIG_UPDATE_COMPLETED'],
  DEPLOYING: ['UPDATING', 'CONFIG_UPDATE_STARTED'],
  DEPLOY_FAILED: ['DEPLOY_FAILED', 'REPLICA_STARTUP_FAILED'],
  UNHEALTHY: ['UNHEALTHY', 'HEALTH_CHECK_FAILED'],
  DELETING: ['UPDATING', 'DELETING'],
  NOT_STARTED: ['UPDATING', 'UNSPECIFIED'],
  UNKNOWN: ['UPDATING', 'UNSPECIFIED'],
};

function appMessage(status: ServeAppStatus, name: string): string {
  if (status === 'DEPLOYING') return `Deploying app '${name}'.`;
  if (status === 'DEPLOY_FAILED') return `Deploying app '${name}' failed.`;
  if (status === 'UNHEALTHY') return `The deployments in app '${name}' are UNHEALTHY.`;
  return '';
}

function application(src: DashboardSource, rt: AppRuntime, raw: Record<string, unknown>, nodeIds: string[]): Record<string, unknown> {
  const app = rt.app;
  const rawDeps = Array.isArray(raw['deployments']) ? raw['deployments'].filter(isObject) : [];
  const deployments: Record<string, unknown> = {};
  const [depStatus, trigger] = DEPLOYMENT_STATUS[rt.status];
  let sawIngress = false;
  for (const d of rawDeps) {
    if (typeof d['name'] !== 'string') continue;
    const ingress = d['name'] === app.ingressDeployment;
    sawIngress ||= ingress;
    deployments[d['name']] = deployment(src, rt, d, ingress, depStatus, trigger, nodeIds);
  }
  if (!sawIngress) {
    deployments[app.ingressDeployment] = deployment(src, rt, { name: app.ingressDeployment }, true, depStatus, trigger, nodeIds);
  }
  return {
    name: app.name,
    route_prefix: app.routePrefix,
    docs_path: null,
    status: rt.status === 'UNKNOWN' ? 'RUNNING' : rt.status,
    message: appMessage(rt.status, app.name),
    last_deployed_time_s: src.deployedAtS,
    deployed_app_config: raw,
    source: 'declarative',
    external_scaler_enabled: raw['external_scaler_enabled'] === true,
    deployments,
    // Ray >= 2.50 names the ingress here (the sim cannot know the call graph:
    // outbound_deployments stays empty).
    deployment_topology: {
      app_name: app.name,
      nodes: Object.fromEntries(
        Object.keys(deployments).map((d) => [d, { name: d, app_name: app.name, outbound_deployments: [], is_ingress: d === app.ingressDeployment }]),
      ),
      ingress_deployment: app.ingressDeployment,
    },
  };
}

function deployment(
  src: DashboardSource,
  rt: AppRuntime,
  d: Record<string, unknown>,
  ingress: boolean,
  status: string,
  trigger: string,
  nodeIds: string[],
): Record<string, unknown> {
  const name = d['name'] as string;
  const actorOptions = { runtime_env: {}, num_cpus: 1, ...(isObject(d['ray_actor_options']) ? d['ray_actor_options'] : {}) };
  const auto = isObject(d['autoscaling_config']) ? d['autoscaling_config'] : null;
  let target: number;
  let replicas: Record<string, unknown>[];
  if (ingress) {
    target = rt.runningReplicas;
    replicas = rt.replicas.map((r, i) => replica(src, rt, name, r, nodeIds, i));
  } else {
    target = auto
      ? Number(auto['initial_replicas'] ?? auto['min_replicas'] ?? 1)
      : typeof d['num_replicas'] === 'number' ? d['num_replicas'] : 1;
    replicas = [];
    for (let i = 0; i < target; i++) {
      const id = hexId(src.name, rt.app.name, name, i).slice(0, 8);
      replicas.push(replica(src, rt, name, { id, inFlight: 0, stopping: false, startTimeS: src.deployedAtS }, nodeIds, i));
    }
  }
  const config: Record<string, unknown> = {
    name,
    max_ongoing_requests: d['max_ongoing_requests'] ?? d['max_concurrent_queries'] ?? 5,
    max_queued_requests: d['max_queued_requests'] ?? -1,
    user_config: d['user_config'] ?? null,
    graceful_shutdown_wait_loop_s: d['graceful_shutdown_wait_loop_s'] ?? 2.0,
    graceful_shutdown_timeout_s: d['graceful_shutdown_timeout_s'] ?? 20.0,
    health_check_period_s: d['health_check_period_s'] ?? 10.0,
    health_check_timeout_s: d['health_check_timeout_s'] ?? 30.0,
    ray_actor_options: actorOptions,
    request_router_config: {
      request_router_class: 'ray.serve._private.request_router:PowerOfTwoChoicesRequestRouter',
      request_router_kwargs: {},
      request_routing_stats_period_s: 10,
      request_routing_stats_timeout_s: 30,
    },
  };
  if (auto) config['autoscaling_config'] = { min_replicas: 1, max_replicas: 1, target_ongoing_requests: 2, ...auto };
  else config['num_replicas'] = target;
  const required: Record<string, unknown> = { CPU: actorOptions.num_cpus };
  if (typeof (actorOptions as Record<string, unknown>)['num_gpus'] === 'number') required['GPU'] = (actorOptions as Record<string, unknown>)['num_gpus'];
  return {
    name,
    status: ingress && rt.status === 'RUNNING' && target === 0 ? 'UPDATING' : status,
    status_trigger: trigger,
    message: '',
    deployment_config: config,
    target_num_replicas: target,
    required_resources: required,
    replicas,
  };
}

function replica(src: DashboardSource, rt: AppRuntime, dep: string, r: Replica, nodeIds: string[], i: number): Record<string, unknown> {
  const nodeId = nodeIds.length > 0 ? (nodeIds[i % nodeIds.length] as string) : hexId(src.name, 'node', 0);
  const state = r.stopping ? 'STOPPING' : 'RUNNING';
  return {
    node_id: nodeId,
    node_ip: src.proxies[i % Math.max(1, src.proxies.length)]?.address.host ?? '127.0.0.1',
    node_instance_id: '',
    actor_id: actorId(src.name, rt.app.name, dep, r.id),
    actor_name: `SERVE_REPLICA::${rt.app.name}#${dep}#${r.id}`,
    worker_id: hexId(src.name, 'replica-worker', rt.app.name, dep, r.id),
    log_file_path: `/serve/replica_${rt.app.name}_${dep}_${r.id}.log`,
    replica_id: r.id,
    state,
    pid: 1000 + i,
    start_time_s: r.startTimeS,
  };
}
