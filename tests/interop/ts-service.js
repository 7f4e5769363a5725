#!/usr/bin/env node
// Plays a service built on the TypeScript package (@castiel/redis-utils, on
// ioredis) that shares Redis with the Rust services: it builds keys and
// channels the way that package does, writes values the way its cache does
// (JSON.stringify, then SET with EX), publishes its invalidations
// ({"tenantId","type","id","timestamp"} on cache:invalidate:{type}:{tenantId}:{id}),
// reads with JSON.parse, and listens with PSUBSCRIBE cache:invalidate:*.
//
// Driven by services/main-api/tests/it/interop.rs; usable by hand too:
//
//   npm ci --prefix tests/interop
//   REDIS_PORT=6379 node tests/interop/ts-service.js get shard acme eu-1
//
// Redis is REDIS_HOST (default 127.0.0.1), REDIS_PORT (required) and
// REDIS_PASSWORD (optional; never printed). Every command prints one JSON
// line per result on stdout; `listen` prints one per message until killed.

'use strict';

const Redis = require('ioredis');

const CHANNEL_PREFIX = 'cache:invalidate:';
const ALL_INVALIDATIONS = `${CHANNEL_PREFIX}*`;

// The key layouts of the TypeScript package's shared types.
const KEYS = {
  shard: (tenantId, shardId) => `tenant:${tenantId}:shard:${shardId}:structured`,
  user: (tenantId, userId) => `tenant:${tenantId}:user:${userId}:profile`,
  acl: (tenantId, userId, shardId) => `tenant:${tenantId}:acl:${userId}:${shardId}`,
  vsearch: (tenantId, queryHash) => `tenant:${tenantId}:vsearch:${queryHash}`,
};

const USAGE = `usage: ts-service.js <command> ...
  set <family> <tenantId> <id...> <json> <ttlSeconds>  JSON value under the family's key, SET ... EX
  get <family> <tenantId> <id...>                      read a key: {key, type, pttl, value}
  scan <tenantId>                                      every key under tenant:{tenantId}:*
  invalidate <type> <tenantId> [id]                    the package's invalidation (id: "*" when absent)
  publish <channel> <payload>                          a raw PUBLISH
  listen                                               PSUBSCRIBE ${ALL_INVALIDATIONS}, one line per message
families: ${Object.keys(KEYS).join(', ')}`;

class UsageError extends Error {}

function print(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

function connect() {
  const port = Number(process.env.REDIS_PORT);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError('REDIS_PORT must be the port of the Redis to use (1 to 65535)');
  }
  return new Redis({
    host: process.env.REDIS_HOST || '127.0.0.1',
    port,
    password: process.env.REDIS_PASSWORD || undefined,
    // A test wants an error, not a retry loop, when Redis is not there.
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => (attempt > 3 ? null : 100),
  });
}

// The key of `family` for `ids`, as the package builds it.
function keyOf(family, ids) {
  const build = KEYS[family];
  if (!build) {
    throw new UsageError(`unknown family ${JSON.stringify(family)}`);
  }
  if (ids.length !== build.length || ids.some((id) => id === '')) {
    throw new UsageError(`family ${family} takes the tenant id and ${build.length - 1} more id(s)`);
  }
  return build(...ids);
}

// One key as a reader of the package sees it: its type, remaining TTL (ms)
// and, for a string, its value through JSON.parse (or why it would not parse).
async function describe(redis, key) {
  const [type, pttl, raw] = await Promise.all([
    redis.type(key),
    redis.pttl(key),
    redis.getBuffer(key).catch(() => null),
  ]);
  const described = { key, type, pttl };
  if (type === 'string' && raw !== null) {
    try {
      described.value = JSON.parse(raw.toString('utf8'));
      described.json = true;
    } catch (error) {
      described.json = false;
      described.parseError = error.message;
    }
  }
  return described;
}

async function set(redis, args) {
  if (args.length < 4) {
    throw new UsageError('set needs a family, ids, a JSON value and a TTL');
  }
  const ttl = Number(args[args.length - 1]);
  const json = args[args.length - 2];
  const key = keyOf(args[0], args.slice(1, -2));
  if (!Number.isInteger(ttl) || ttl < 1) {
    throw new UsageError('the TTL must be a whole number of seconds, at least 1');
  }
  // The package stores JSON.stringify(value) for anything but a string.
  const value = JSON.stringify(JSON.parse(json));
  print({ key, reply: await redis.set(key, value, 'EX', ttl) });
}

async function get(redis, args) {
  print(await describe(redis, keyOf(args[0], args.slice(1))));
}

async function scan(redis, args) {
  if (args.length !== 1) {
    throw new UsageError('scan needs a tenant id');
  }
  const keys = [];
  let cursor = '0';
  do {
    const [next, page] = await redis.scan(cursor, 'MATCH', `tenant:${args[0]}:*`, 'COUNT', 100);
    keys.push(...page);
    cursor = next;
  } while (cursor !== '0');
  keys.sort();
  print({ keys: await Promise.all(keys.map((key) => describe(redis, key))) });
}

async function invalidate(redis, args) {
  const [type, tenantId, id] = args;
  if (!type || !tenantId || args.length > 3) {
    throw new UsageError('invalidate needs a type, a tenant id and, optionally, an id');
  }
  const channel = `${CHANNEL_PREFIX}${type}:${tenantId}:${id ?? '*'}`;
  const payload = JSON.stringify({ tenantId, type, id: id ?? '*', timestamp: Date.now() });
  print({ channel, receivers: await redis.publish(channel, payload) });
}

async function publish(redis, args) {
  if (args.length !== 2) {
    throw new UsageError('publish needs a channel and a payload');
  }
  print({ channel: args[0], receivers: await redis.publish(args[0], args[1]) });
}

// Runs until killed (or stdin closes): the test reads the lines as they come.
async function listen(redis) {
  redis.on('pmessageBuffer', (_pattern, channel, message) => {
    const raw = message.toString('utf8');
    let payload = null;
    try {
      payload = JSON.parse(raw);
    } catch {
      // Not JSON: reported as null, with the raw text beside it.
    }
    print({ event: 'message', channel: channel.toString('utf8'), payload, raw });
  });
  await redis.psubscribe(ALL_INVALIDATIONS);
  print({ event: 'ready', pattern: ALL_INVALIDATIONS });
  await new Promise((resolve) => {
    process.stdin.on('end', resolve);
    process.stdin.on('close', resolve);
    process.stdin.resume();
  });
}

const COMMANDS = { set, get, scan, invalidate, publish, listen };

async function main() {
  const [command, ...args] = process.argv.slice(2);
  const run = COMMANDS[command];
  if (!run) {
    throw new UsageError(command ? `unknown command ${JSON.stringify(command)}` : 'no command');
  }
  const redis = connect();
  try {
    await run(redis, args);
  } finally {
    redis.disconnect();
  }
}

main().catch((error) => {
  if (error instanceof UsageError) {
    process.stderr.write(`ts-service.js: ${error.message}\n${USAGE}\n`);
    process.exit(2);
  }
  process.stderr.write(`ts-service.js: ${error.message}\n`);
  process.exit(1);
});
