/** Target (b) of `npm run bench`: a bare @hocuspocus/server, no extensions, on PORT. */
import { Server } from '@hocuspocus/server';

const port = Number(process.env.PORT);
const server = new Server({ port, address: '127.0.0.1', quiet: true });
await server.listen();
console.log(JSON.stringify({ msg: 'bench target listening', url: `http://127.0.0.1:${port}` }));
process.once('SIGTERM', () => void server.destroy().then(() => process.exit(0)));
