import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportedFileName, safeFileName } from '../../server/export/files.ts';
import { rowToEvent } from '../../src/lib/protocol/rows.ts';
import { messageRow } from '../../src/lib/protocol/api.ts';

const id = '0123456789abcdef0123456789abcdef';

describe('the names of the files `npm run export -- --with-files` writes', () => {
	it('keeps an ordinary name, and the upload id in front makes it unique', () => {
		expect(exportedFileName({ id, name: 'dot.png' })).toBe(`${id}-dot.png`);
		expect(safeFileName('Plan für 2027 (final).pdf')).toBe('Plan für 2027 (final).pdf');
	});

	it('makes every name one harmless path component', () => {
		const cases: [string, string][] = [
			['../../etc/passwd', '.._.._etc_passwd'],
			['a\\..\\b.txt', 'a_.._b.txt'],
			['..', 'file'],
			['.', 'file'],
			['report. . ', 'report'],
			['C:"x" <y>|z?*.pdf', 'C__x_ _y__z__.pdf'],
			['line\nbreak\ttab\u0000nul.txt', 'line_break_tab_nul.txt'],
			// A right-to-left override would show "invoice_exe.pdf" for a program.
			['invoice\u202Efdp.exe', 'invoice_fdp.exe'],
			['', 'file'],
		];
		for (const [name, safe] of cases) {
			expect(safeFileName(name), JSON.stringify(name)).toBe(safe);
			const file = exportedFileName({ id, name });
			expect(path.basename(file)).toBe(file);
			expect(path.join('/out', file).startsWith('/out/')).toBe(true);
		}
	});

	it('shortens a long name on a character boundary and keeps its extension', () => {
		for (const name of ['é'.repeat(300) + '.jpeg', '🎉'.repeat(100) + '.png', 'x'.repeat(255)]) {
			const safe = safeFileName(name);
			expect(Buffer.byteLength(safe)).toBeLessThanOrEqual(180);
			expect(Buffer.byteLength(exportedFileName({ id, name }))).toBeLessThan(255);
			// Nothing cut in half: the UTF-8 reads back as the same text.
			expect(Buffer.from(safe).toString('utf8')).toBe(safe);
			expect(safe.endsWith(path.extname(name))).toBe(true);
		}
	});

	it('refuses an id that is not an upload id', () => {
		expect(() => exportedFileName({ id: '../x', name: 'a' })).toThrow(/not an upload id/);
	});
});

describe('history rows with files', () => {
	const row = {
		seq: 7,
		roomId: '5b1f6c59-2a3c-4a3e-9d49-4a0f0b9a3c11',
		clientMsgId: '8c3b1c9e-6f2a-4c8e-9a51-2f7d7c1e0b22',
		kind: 'message',
		senderId: '1f0e2d3c-4b5a-4978-8695-a4b3c2d1e0f9',
		senderName: 'ana',
		content: 'a picture',
		replyToId: null,
		targetId: null,
		createdAt: '2026-11-30T10:00:00.000Z',
		receivedAt: '2026-11-30T10:00:00.100Z',
	};
	const file = { id, name: 'dot.png', size: 70, mediaType: 'image/png', width: 1, height: 1 };

	it("parses an older server's row without the field, and turns rows back into their events", () => {
		expect(messageRow.parse(row)).toEqual(row);
		expect(rowToEvent(messageRow.parse(row))).toStrictEqual({
			kind: 'message',
			clientMsgId: row.clientMsgId,
			senderId: row.senderId,
			createdAt: row.createdAt,
			content: 'a picture',
		});
		expect(rowToEvent(messageRow.parse({ ...row, attachments: [file] }))).toMatchObject({
			attachments: [file],
		});
	});

	it('refuses files that are not attachment refs', () => {
		expect(messageRow.safeParse({ ...row, attachments: [{ ...file, id: 'x' }] }).success).toBe(false);
		expect(messageRow.safeParse({ ...row, attachments: [{ ...file, extra: 1 }] }).success).toBe(false);
	});
});
