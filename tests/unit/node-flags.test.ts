import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFlags } from '../../server/node-flags.ts';
import { repoRoot } from '../helpers/process.ts';

const read = (file: string) => fs.readFileSync(path.join(repoRoot, file), 'utf8');

describe('the flags the server ships with (server/node-flags.ts)', () => {
	it('are what `npm start` gives Node', () => {
		const start = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts.start;
		expect(start).toMatch(/^exec node (.*) scripts\/with-node\.mjs scripts\/start\.ts$/);
		expect(start?.split(' ').filter((word) => word.startsWith('--'))).toEqual([...nodeFlags]);
	});

	it("are what the image's CMD gives Node", () => {
		const cmd = /^CMD (\[.*\])$/m.exec(read('Dockerfile'))?.[1];
		expect(cmd).toBeDefined();
		expect(JSON.parse(cmd ?? '[]')).toEqual(['node', ...nodeFlags, 'server/main.ts']);
	});
});
