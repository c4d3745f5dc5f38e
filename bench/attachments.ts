/**
 * Attachments (issue 19, done-when 6): `npm run bench:attachments` (RUNS=5, SIZE_MB=25, PARALLEL=10).
 *
 * Starts the real server as a process on a throwaway PGlite directory, and beside it, in this process, a plain
 * HTTP server that copies a request body to a file and a file to a response: the floor for moving the same bytes
 * over a stream on loopback. Then, RUNS times, interleaved: a SIZE_MB file uploaded with tus-js-client (one PATCH,
 * as the app sends it) and downloaded from `/api/files/:id`, against a POST and a GET of the same bytes on the plain
 * server. Last, PARALLEL uploads of different SIZE_MB files at once, while the server's RSS is read every 20 ms:
 * its peak over its RSS before, which must stay far below PARALLEL × SIZE_MB (no file is held in memory). Prints
 * medians and ratios; writes bench/results/attachments.json.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Upload } from 'tus-js-client';
import { repoRoot, spawnServer } from '../tests/helpers/process.ts';
import { median, post } from './common.ts';

const RUNS = Number(process.env.RUNS ?? 5);
const SIZE = Number(process.env.SIZE_MB ?? 25) * 1024 * 1024;
const PARALLEL = Number(process.env.PARALLEL ?? 10);

const mb = (bytes: number) => bytes / 1024 / 1024;
const rssOf = (pid: number) => {
	const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
	return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
};

/** The floor: a body copied to a file, a file copied to a response, nothing else. */
async function plainServer(dir: string) {
	const server = http.createServer((req, res) => {
		const file = path.join(dir, 'plain.bin');
		if (req.method === 'POST')
			void pipeline(req, fs.createWriteStream(file)).then(() => res.writeHead(204).end());
		else {
			res.writeHead(200, { 'content-length': fs.statSync(file).size });
			fs.createReadStream(file).pipe(res);
		}
	});
	await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
	return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

function upload(url: string, token: string, roomId: string, bytes: Buffer, name: string): Promise<string> {
	return new Promise((resolve, reject) => {
		const tus = new Upload(bytes, {
			endpoint: `${url}/api/uploads`,
			headers: { authorization: `Bearer ${token}` },
			metadata: { roomId, filename: name, filetype: 'application/octet-stream' },
			onError: reject,
			onSuccess: () => resolve(tus.url?.split('/').pop() ?? ''),
		});
		tus.start();
	});
}

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
	const started = performance.now();
	const result = await work();
	return [performance.now() - started, result];
}

async function drain(response: Response): Promise<number> {
	let bytes = 0;
	for await (const chunk of response.body as AsyncIterable<Uint8Array>) bytes += chunk.length;
	return bytes;
}

async function main(): Promise<void> {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-bench-files-'));
	const server = spawnServer({
		PORT: '0',
		DATA_DIR: dir,
		STATIC_DIR: path.join(dir, 'no-client'),
		LOG_LEVEL: 'info',
		ATTACHMENT_MAX_BYTES: String(SIZE),
		ATTACHMENT_QUOTA_BYTES: String(SIZE * (2 * RUNS + PARALLEL + 1)),
	});
	const plain = await plainServer(dir);
	try {
		const url = await server.ready;
		const pid = server.serverPid();
		const account = await post<{ accessToken: string; user: { id: string } }>(url, '/api/auth/register', {
			name: `bench_${Math.random().toString(36).slice(2, 10)}`,
			password: 'a long enough passphrase',
		});
		const token = account.accessToken;
		const room = await post<{ id: string }>(
			url,
			'/api/rooms',
			{ name: 'files', isGroup: true, memberIds: [] },
			token,
		);

		const times = {
			upload: [] as number[],
			download: [] as number[],
			plainUp: [] as number[],
			plainDown: [] as number[],
		};
		for (let run = 0; run < RUNS; run++) {
			const bytes = randomBytes(SIZE);
			const [up, id] = await timed(() => upload(url, token, room.id, bytes, `run-${run}.bin`));
			const [down, got] = await timed(async () =>
				drain(await fetch(`${url}/api/files/${id}`, { headers: { authorization: `Bearer ${token}` } })),
			);
			if (got !== SIZE) throw new Error(`downloaded ${got} bytes of ${SIZE}`);
			const [plainUp] = await timed(async () => {
				await fetch(`${plain.url}/`, { method: 'POST', body: bytes });
			});
			const [plainDown] = await timed(async () => drain(await fetch(`${plain.url}/`)));
			times.upload.push(up);
			times.download.push(down);
			times.plainUp.push(plainUp);
			times.plainDown.push(plainDown);
			console.log(
				`run ${run + 1}/${RUNS}: upload ${up.toFixed(0)} ms (plain ${plainUp.toFixed(0)}), ` +
					`download ${down.toFixed(0)} ms (plain ${plainDown.toFixed(0)})`,
			);
		}

		// Ten uploads at once: the server's memory must not grow with the files.
		const files = Array.from({ length: PARALLEL }, () => randomBytes(SIZE));
		await new Promise((resolve) => setTimeout(resolve, 1_000));
		const before = rssOf(pid);
		let peak = before;
		const watch = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 20);
		const [parallelMs] = await timed(() =>
			Promise.all(files.map((bytes, i) => upload(url, token, room.id, bytes, `parallel-${i}.bin`))),
		);
		clearInterval(watch);
		peak = Math.max(peak, rssOf(pid));

		const speed = (ms: number[]) => mb(SIZE) / (median(ms) / 1000);
		const result = {
			runs: RUNS,
			sizeMb: mb(SIZE),
			uploadMbPerS: speed(times.upload),
			downloadMbPerS: speed(times.download),
			plainUploadMbPerS: speed(times.plainUp),
			plainDownloadMbPerS: speed(times.plainDown),
			uploadOverPlain: median(times.upload) / median(times.plainUp),
			downloadOverPlain: median(times.download) / median(times.plainDown),
			parallel: { uploads: PARALLEL, ms: parallelMs, rssBeforeMb: mb(before), rssPeakMb: mb(peak) },
			times,
		};
		console.log(
			[
				`\n${mb(SIZE)} MB, medians of ${RUNS}, loopback, this machine:`,
				`  upload (tus, one PATCH)   ${result.uploadMbPerS.toFixed(0).padStart(5)} MB/s   plain POST ${result.plainUploadMbPerS.toFixed(0).padStart(5)} MB/s   ${result.uploadOverPlain.toFixed(2)}× its time`,
				`  download (/api/files)     ${result.downloadMbPerS.toFixed(0).padStart(5)} MB/s   plain GET  ${result.plainDownloadMbPerS.toFixed(0).padStart(5)} MB/s   ${result.downloadOverPlain.toFixed(2)}× its time`,
				`  ${PARALLEL} uploads at once (${mb(SIZE * PARALLEL)} MB): ${(parallelMs / 1000).toFixed(1)} s; server RSS ${mb(before).toFixed(0)} MB before, ${mb(peak).toFixed(0)} MB at its peak (+${mb(peak - before).toFixed(0)} MB)`,
			].join('\n'),
		);
		const out = path.join(repoRoot, 'bench', 'results', 'attachments.json');
		fs.mkdirSync(path.dirname(out), { recursive: true });
		fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
	} finally {
		plain.close();
		server.proc.kill('SIGTERM');
		await server.exited;
		fs.rmSync(dir, { recursive: true, force: true });
	}
}

await main();
