import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/process.ts';

/**
 * The size rule of the server and the client's stores: no file over MAX_FILE_LINES and no function over
 * MAX_FUNCTION_LINES, unless a one-line reason says why (`// size: <reason>` as a file's first line, or on the
 * line right above the function). STILL_TOO_LONG lists what is known to break the rule and not yet split: the
 * test fails when something new breaks it, and when something listed no longer does (so the list only shrinks).
 */
const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 80;
const ROOTS = ['server', 'src/lib/client', 'src/lib/sync'];
const STILL_TOO_LONG: string[] = [];

function sourceFiles(dir: string): string[] {
	return fs.readdirSync(path.join(repoRoot, dir), { withFileTypes: true }).flatMap((entry) => {
		const relative = path.join(dir, entry.name);
		if (entry.isDirectory()) return sourceFiles(relative);
		return /\.(ts|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [relative] : [];
	});
}

const hasReason = (line: string | undefined) => /^\s*\/\/ size: \S/.test(line ?? '');

function oversized(file: string): string[] {
	const text = fs.readFileSync(path.join(repoRoot, file), 'utf8');
	const lines = text.split('\n');
	const found: string[] = [];
	if (lines.length > MAX_FILE_LINES && !hasReason(lines[0])) found.push(`file ${file}`);
	const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
	const visit = (node: ts.Node) => {
		if (ts.isFunctionLike(node) && 'body' in node && node.body) {
			const start = source.getLineAndCharacterOfPosition(node.getStart()).line;
			const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
			if (end - start + 1 > MAX_FUNCTION_LINES && !hasReason(lines[start - 1])) {
				const name = ts.isConstructorDeclaration(node)
					? 'constructor'
					: (node.name?.getText(source) ?? '(anonymous)');
				found.push(`function ${file} ${name}`);
			}
		}
		ts.forEachChild(node, visit);
	};
	visit(source);
	return found;
}

describe('code size', () => {
	it(`keeps files under ${MAX_FILE_LINES} lines and functions under ${MAX_FUNCTION_LINES}, or says why`, () => {
		const found = ROOTS.flatMap(sourceFiles).flatMap(oversized).sort();
		expect(found).toEqual([...STILL_TOO_LONG].sort());
	});
});
