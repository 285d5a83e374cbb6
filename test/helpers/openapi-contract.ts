import { readFileSync } from 'node:fs';
import type { RequestListener } from 'node:http';
import { join } from 'node:path';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import express, { type Express, type Request, type Response } from 'express';
import { parse } from 'yaml';
import { routeTemplate } from '../../src/http/middleware/request-lifecycle';
import { openApiPath } from '../../src/http/openapi/document';

/**
 * Every response an integration test receives is checked against openapi.yaml: the operation
 * (method + route template) must be documented, the status must be listed for it, required
 * headers must be present, and the body must match the schema of its media type. Violations are
 * collected here and fail the test that caused them (test/helpers/openapi-setup.ts), so the
 * document is forced to be complete and true.
 */

const DOCUMENT_PATH = join(__dirname, '..', '..', 'openapi.yaml');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export interface ObservedResponse {
  method: string;
  /** The route template (routeTemplate(): express's or the hot route's), or undefined when no route matched. */
  route: string | undefined;
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: Buffer;
}

const isObject = (value: Json | undefined): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

/** ['components', 'schemas', 'Token'] → `/components/schemas/Token`, a JSON pointer for ajv. */
const pointer = (...parts: string[]) => '/' + parts.map((part) => part.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

export class OpenApiContract {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(private readonly document: JsonObject) {
    // The two formats the document uses; ajv-formats is not a dependency.
    this.ajv.addFormat('date-time', (value: string) => !Number.isNaN(Date.parse(value)) && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(value));
    this.ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
    this.ajv.addSchema(document as object, 'openapi');
  }

  static load(path = DOCUMENT_PATH): OpenApiContract {
    return new OpenApiContract(parse(readFileSync(path, 'utf8')) as JsonObject);
  }

  /** What is wrong with a response, as sentences; empty when it matches the document. */
  check(response: ObservedResponse): string[] {
    if (response.route === undefined) return []; // no route matched: an unknown path is not an operation
    const method = response.method.toLowerCase();
    const path = openApiPath(response.route);
    const where = `${response.method} ${path} → ${response.status}`;
    const pathItem = this.at('paths', path);
    // A HEAD without its own operation is the GET without a body (express answers it so).
    const operationMethod = isObject(pathItem?.[method]) ? method : method === 'head' ? 'get' : method;
    if (!isObject(pathItem?.[operationMethod])) return [`${where}: the operation is not in openapi.yaml`];

    const responsePointer = this.resolve(['paths', path, operationMethod, 'responses', String(response.status)]);
    if (!responsePointer) return [`${where}: the status is not documented for this operation`];
    const documented = this.at(...responsePointer)!;
    return [...this.checkHeaders(where, responsePointer, documented, response), ...this.checkBody(where, responsePointer, documented, response, method)];
  }

  private checkHeaders(where: string, at: string[], documented: JsonObject, response: ObservedResponse): string[] {
    const problems: string[] = [];
    for (const name of Object.keys(isObject(documented.headers) ? documented.headers : {})) {
      const headerAt = this.resolve([...at, 'headers', name])!;
      const header = this.at(...headerAt)!;
      const value = response.headers[name.toLowerCase()];
      if (value === undefined) {
        if (header.required === true) problems.push(`${where}: the required header ${name} is missing`);
        continue;
      }
      // Set-Cookie may come several times; every other documented header once.
      for (const one of Array.isArray(value) ? value : [String(value)]) {
        const errors = this.validate([...headerAt, 'schema'], one);
        if (errors) problems.push(`${where}: header ${name}: ${JSON.stringify(one)} ${errors}`);
      }
    }
    return problems;
  }

  private checkBody(where: string, at: string[], documented: JsonObject, response: ObservedResponse, method: string): string[] {
    if (method === 'head' || response.status === 204 || response.status === 304) return [];
    const content = isObject(documented.content) ? documented.content : undefined;
    if (!content) {
      // A redirect's short "Found. Redirecting to ..." text is for humans; no other body is allowed.
      if (response.body.length > 0 && (response.status < 300 || response.status >= 400)) return [`${where}: a body was sent, none is documented`];
      return [];
    }
    const contentType = String(response.headers['content-type'] ?? '');
    const essence = contentType.split(';')[0]!.trim().toLowerCase();
    if (!(essence in content)) return [`${where}: content type "${contentType}" is not documented (${Object.keys(content).join(', ')})`];
    let body: unknown = response.body.toString('utf8');
    if (essence.endsWith('json')) {
      try {
        body = JSON.parse(body as string);
      } catch {
        return [`${where}: the body is not JSON`];
      }
    }
    const errors = this.validate([...at, 'content', essence, 'schema'], body);
    return errors ? [`${where}: body ${errors}: ${JSON.stringify(body).slice(0, 500)}`] : [];
  }

  /** ajv's error text for `value` against the schema at `at`, or null when it is valid. */
  private validate(at: string[], value: unknown): string | null {
    const ref = `openapi#${pointer(...at)}`;
    let validator = this.validators.get(ref);
    if (!validator) {
      validator = this.ajv.compile({ $ref: ref });
      this.validators.set(ref, validator);
    }
    return validator(value) ? null : this.ajv.errorsText(validator.errors, { dataVar: '' });
  }

  /** The path of the object at `at`, following a `$ref` there; undefined when nothing is there. */
  private resolve(at: string[]): string[] | undefined {
    const value = this.at(...at);
    if (!isObject(value)) return undefined;
    if (typeof value.$ref === 'string') return value.$ref.replace(/^#\//, '').split('/').map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
    return at;
  }

  private at(...parts: string[]): JsonObject | undefined {
    let value: Json | undefined = this.document;
    for (const part of parts) value = isObject(value) ? value[part] : undefined;
    return isObject(value) ? value : undefined;
  }
}

let contract: OpenApiContract | undefined;
const violations: string[] = [];

/** The violations seen since the last call (the setup file asserts there are none after each test). */
export function takeViolations(): string[] {
  return violations.splice(0);
}

/**
 * `app` behind a recorder that checks every response it sends against openapi.yaml. An outer
 * express app, so the vault's own app is exactly what production runs.
 */
export function checkedAgainstOpenApi(app: RequestListener, check: OpenApiContract = (contract ??= OpenApiContract.load())): Express {
  const outer = express();
  outer.disable('x-powered-by');
  outer.use((req, res, next) => {
    record(req, res, (observed) => {
      try {
        violations.push(...check.check(observed));
      } catch (err) {
        // Thrown in a 'finish' listener, it would crash the server instead of failing the test.
        violations.push(`${observed.method} ${observed.route ?? req.path} → ${observed.status}: could not be checked: ${String(err)}`);
      }
    });
    next();
  });
  outer.use(app);
  return outer;
}

/** Copies every chunk the response writes, and hands the whole response over once it is sent. */
function record(req: Request, res: Response, done: (observed: ObservedResponse) => void): void {
  const chunks: Buffer[] = [];
  const keep = (chunk: unknown, encoding: unknown) => {
    if (Buffer.isBuffer(chunk) || chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
    else if (typeof chunk === 'string') chunks.push(Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8'));
  };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => Response;
  res.write = ((...args: unknown[]) => {
    keep(args[0], args[1]);
    return write(...args);
  }) as Response['write'];
  res.end = ((...args: unknown[]) => {
    keep(args[0], args[1]);
    return end(...args);
  }) as Response['end'];
  res.once('finish', () => {
    done({
      method: req.method,
      route: routeTemplate(req),
      status: res.statusCode,
      headers: res.getHeaders() as ObservedResponse['headers'],
      body: Buffer.concat(chunks),
    });
  });
}
