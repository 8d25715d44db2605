// A TCP proxy the tests can cut, the way a network drop does: the
// reconnect tests (flapping.mjs) and the browser tests (pages/browser.mjs).
import net from 'node:net';

/**
 * A TCP proxy in front of `targets`. `cut()` closes every connection and
 * refuses new ones until `restore()`; each cut moves new connections on to
 * the next target, so one connection's polling and upgrade requests stay on
 * one node and its reconnect lands on another.
 */
export async function startFlappingProxy(targets) {
  const sockets = new Set();
  let open = true;
  let epoch = 0;
  const server = net.createServer((client) => {
    if (!open) return client.destroy();
    const { hostname, port } = new URL(targets[epoch % targets.length]);
    const upstream = net.connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      open = false;
      epoch += 1;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      open = true;
    },
    close() {
      this.cut();
      server.close();
    },
  };
}

