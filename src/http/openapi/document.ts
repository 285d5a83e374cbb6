import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  createDocument,
  type ZodOpenApiComponentsObject,
  type ZodOpenApiObject,
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
  type ZodOpenApiResponseObject,
} from 'zod-openapi';
import type { Route } from '../endpoint';
import { ROUTES } from '../routes';
import type { ResponseSpec } from './common';

/**
 * openapi.yaml, built from the route table (routes.ts) and the zod schemas of its endpoints:
 * the same objects express registers, so the document cannot describe another API.
 */

export const OPENAPI_FILE = 'openapi.yaml';
export const GENERATE_COMMAND = 'npm run openapi';

const REPO_ROOT = join(__dirname, '..', '..', '..');

const INFO_DESCRIPTION = `Keeps users' OAuth 1.0a and OAuth 2.0 credentials encrypted in Redis and hands out valid tokens to backend services.

Callers authenticate with \`Authorization: Bearer <API key>\`, or with a TLS client certificate
where the server is set up for it; each operation names the scope it needs. Probes, metrics,
the user's browser (\`/connect/start\`, \`/callback\`) and provider webhooks need no key.

Every error has one shape, \`{ "error": { "code", "message", "details"? } }\`; \`details\` lists
each problem of an \`invalid_request\` as \`{ path, message }\`. Every response carries
\`Cache-Control: no-store\` and an \`X-Request-Id\` (a well-formed incoming one is echoed).
JSON uses snake_case and the OAuth wire names; times are ISO 8601 UTC.`;

/** `/tokens/:user/:provider` → `/tokens/{user}/{provider}`. */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:(\w+)/g, '{$1}');
}

function security(route: Route): ZodOpenApiOperationObject['security'] {
  if (route.access === 'public') return [];
  // OpenAPI 3.1 lets non-OAuth schemes list roles: the scope the caller's key or certificate needs.
  const roles = route.access === 'caller' ? [] : [route.access];
  return [{ bearerAuth: roles }, { mutualTLS: roles }];
}

// zod-openapi registers a response with an id once per object: each shared spec must map to one object.
const converted = new WeakMap<ResponseSpec, ZodOpenApiResponseObject>();

function response(spec: ResponseSpec): ZodOpenApiResponseObject {
  const known = converted.get(spec);
  if (known) return known;
  const content = Object.entries(spec.content ?? {}).map(([type, schema]) => [type, { schema }]);
  const object = {
    description: spec.description,
    ...(spec.headers ? { headers: spec.headers } : {}),
    ...(content.length > 0 ? { content: Object.fromEntries(content) } : {}),
    ...(spec.id ? { id: spec.id } : {}),
  };
  converted.set(spec, object);
  return object;
}

function operation(route: Route, tag: string): ZodOpenApiOperationObject {
  const { params, query, headers, body } = route.request;
  const requestParams = {
    ...(params && Object.keys(params.shape).length > 0 ? { path: params } : {}),
    ...(query && Object.keys(query.shape).length > 0 ? { query } : {}),
    ...(headers ? { header: headers } : {}),
  };
  const statuses = Object.keys(route.responses).map(Number).sort((a, b) => a - b);
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    tags: [tag],
    security: security(route),
    ...(Object.keys(requestParams).length > 0 ? { requestParams } : {}),
    ...(body
      ? { requestBody: { required: true, ...(body.description ? { description: body.description } : {}), content: { [body.contentType]: { schema: body.schema } } } }
      : {}),
    responses: Object.fromEntries(statuses.map((status) => [String(status), response(route.responses[status]!)])),
  };
}

const INFO = {
  title: 'token-vault',
  description: INFO_DESCRIPTION,
  license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
};

const SECURITY_SCHEMES: ZodOpenApiComponentsObject['securitySchemes'] = {
  bearerAuth: {
    type: 'http',
    scheme: 'bearer',
    description: "A caller's API key (`callers[].key`); the vault keeps only its SHA-256.",
  },
  mutualTLS: {
    type: 'mutualTLS',
    description: 'A TLS client certificate whose subject names a caller (`callers[].certSubject`), where `server.tls` asks for client certificates.',
  },
};

export function buildOpenApiDocument(): ReturnType<typeof createDocument> {
  const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const paths: ZodOpenApiPathsObject = {};
  for (const group of ROUTES) {
    for (const route of group.routes) {
      const path = openApiPath(route.path);
      if (paths[path]?.[route.method]) throw new Error(`${route.method.toUpperCase()} ${route.path} is in the route table twice`);
      paths[path] = { ...paths[path], [route.method]: operation(route, group.name) };
    }
  }
  const document: ZodOpenApiObject = {
    openapi: '3.1.1',
    info: { ...INFO, version },
    servers: [{ url: 'http://127.0.0.1:8080', description: '`npm run dev`; a deployment has its own URL (`server.publicUrl`).' }],
    tags: ROUTES.map((group) => ({ name: group.name, description: group.description })),
    paths,
    components: { securitySchemes: SECURITY_SCHEMES },
  };
  return createDocument(document, {
    // z.number().int() bounds every integer by the safe-integer range: true of every number the
    // vault sends or accepts, and noise in every schema of the document.
    override: ({ jsonSchema }) => {
      if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
      if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
    },
  });
}

/** The file's text: a generated-file header, then the document with keys in the order built above. */
export function renderOpenApi(): string {
  const header = `# Generated from the route table (src/http/routes.ts) and its zod schemas by \`${GENERATE_COMMAND}\`.\n# Do not edit: change the endpoints and run the command again; a test fails while this file is stale.\n`;
  return header + stringify(buildOpenApiDocument(), { lineWidth: 0, aliasDuplicateObjects: false });
}
