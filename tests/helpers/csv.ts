/**
 * A strict RFC 4180 reader for checking exports (used by the export tests and the export benchmark):
 * quoted fields, doubled quotes, CR and LF inside quoted fields, and every record, the last one
 * included, ended by CRLF. Anything else — a bare LF between records, a quote inside an unquoted
 * field, an unterminated quote — is an error, so a sloppy writer cannot pass by accident.
 */

export class CsvParseError extends Error {
	readonly code = 'csv_invalid';
}

/** The records of a CSV text, each an array of its fields. */
export function parseCsv(text: string): string[][] {
	const records: string[][] = [];
	let record: string[] = [];
	let i = 0;
	while (i < text.length) {
		if (text[i] === '"') {
			let value = '';
			let from = i + 1;
			for (;;) {
				const quote = text.indexOf('"', from);
				if (quote === -1) throw new CsvParseError(`unterminated quoted field starting at offset ${i}`);
				value += text.slice(from, quote);
				if (text[quote + 1] !== '"') {
					i = quote + 1;
					break;
				}
				value += '"';
				from = quote + 2;
			}
			record.push(value);
		} else {
			let end = i;
			while (end < text.length && text[end] !== ',' && text[end] !== '\r' && text[end] !== '\n') {
				if (text[end] === '"') throw new CsvParseError(`quote inside an unquoted field at offset ${end}`);
				end++;
			}
			record.push(text.slice(i, end));
			i = end;
		}

		if (text[i] === ',') {
			i++;
			if (i === text.length) throw new CsvParseError('the last record ends with a comma instead of CRLF');
		} else if (text[i] === '\r' && text[i + 1] === '\n') {
			records.push(record);
			record = [];
			i += 2;
		} else if (i === text.length) {
			throw new CsvParseError('the last record does not end with CRLF');
		} else {
			throw new CsvParseError(`expected a comma or CRLF at offset ${i}, found ${JSON.stringify(text[i])}`);
		}
	}
	return records;
}
