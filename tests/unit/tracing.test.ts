import { context } from '@opentelemetry/api';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { inSpan, tracer, withActiveSpan } from '../../server/tracing.ts';

afterEach(() => {
	vi.restoreAllMocks();
});

describe('spans without tracing installed', () => {
	it('run their work without the OpenTelemetry API, with a span that records nothing', async () => {
		const started = vi.spyOn(tracer, 'startActiveSpan');
		const activated = vi.spyOn(context, 'with');
		let recording: boolean | undefined;
		const result = await inSpan('chat.validate', { attributes: { 'chat.room_id': 'r' } }, async (span) => {
			recording = span.isRecording();
			return withActiveSpan(span, () => 42);
		});
		expect(result).toBe(42);
		expect(recording).toBe(false);
		expect(started).not.toHaveBeenCalled();
		expect(activated).not.toHaveBeenCalled();
	});

	it("pass their work's failure on unchanged", async () => {
		const failure = new Error('refused');
		await expect(
			inSpan('chat.validate', {}, async () => {
				throw failure;
			}),
		).rejects.toBe(failure);
	});
});
