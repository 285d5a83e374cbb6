import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OPENAPI_FILE, renderOpenApi } from './document';

// `npm run openapi`: writes openapi.yaml at the repository root.
const target = join(__dirname, '..', '..', '..', OPENAPI_FILE);
writeFileSync(target, renderOpenApi());
process.stdout.write(`wrote ${target}\n`);
