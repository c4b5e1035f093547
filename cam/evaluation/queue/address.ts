// The address of the Redis a queued evaluation runs through, `redis://HOST:PORT[/DB]` (no client here, so
// the command line can check it without loading one).

/** A queue address or connection that cannot be used; the message is one line naming the address. */
export class QueueError extends Error {
  override name = 'QueueError';
}

export interface RedisAddress {
  /** As given, for messages (a password is masked). */
  display: string;
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
}

/** Parses `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (or `rediss://` for TLS). */
export function parseRedisUrl(text: string): RedisAddress {
  const bad = (why: string) => new QueueError(`--queue: ${why}; expected redis://HOST:PORT[/DB], got "${text}"`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw bad(`unknown scheme "${url.protocol}"`);
  if (!url.hostname) throw bad('no host');
  const port = url.port ? Number(url.port) : 6379;
  const path = url.pathname.replace(/^\//, '');
  if (path && !/^\d+$/.test(path)) throw bad(`database "${path}" is not a number`);
  if (url.search || url.hash) throw bad('options after the database are not supported');
  const masked = new URL(text);
  if (masked.password) masked.password = '***';
  return {
    display: masked.href.replace(/\/$/, ''),
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port,
    db: path ? Number(path) : 0,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    tls: url.protocol === 'rediss:',
  };
}

/** The address as a URL again, password included (for the processes a worker starts). */
export function redisUrl(a: RedisAddress): string {
  const auth = a.password ? `${encodeURIComponent(a.username ?? '')}:${encodeURIComponent(a.password)}@` : '';
  const host = a.host.includes(':') ? `[${a.host}]` : a.host;
  return `${a.tls ? 'rediss' : 'redis'}://${auth}${host}:${a.port}/${a.db}`;
}
