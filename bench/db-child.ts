/**
 * One unit of bench/db.ts in a process of its own: `tsx bench/db-child.ts <spec.json> <dir> <result.json> [--src]`.
 * Reads the {@link UnitSpec}, runs it in the empty directory `dir`, writes the {@link UnitResult}
 * as JSON. Progress on stderr; bench/db.ts starts it, removes `dir` and reads the result.
 *
 * @module
 */
import * as fs from 'node:fs';
import { runUnit, type UnitSpec } from './db-units.js';

const [specFile, dir, resultFile] = process.argv.slice(2);
if (!specFile || !dir || !resultFile) throw new Error('usage: tsx bench/db-child.ts <spec.json> <dir> <result.json> [--src]');
const spec = JSON.parse(fs.readFileSync(specFile, 'utf8')) as UnitSpec;
const result = await runUnit(spec, dir);
fs.writeFileSync(resultFile, JSON.stringify(result));
