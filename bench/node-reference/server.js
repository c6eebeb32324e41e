// The articles' Node.js design, written from their own advice, as the
// reference the Go gateway is measured against (bench/, `make bench`):
//   - Express, JSON bodies capped at 1 MiB;
//   - POST /register: validate, produce to Kafka (acks=all, idempotent), 202;
//   - GET /users/:id: L1 in-process Map (bounded, TTL) -> L2 Redis (the Go
//     gateway's envelope {"f": freshUntilMillis, "v": profile});
//   - the same GCRA rate limit, the same Lua script, in Redis, per client;
//   - cluster mode: WORKERS > 0 forks that many workers (one per core).
// Configuration: PORT, REDIS_HOST, REDIS_PORT, KAFKA_BROKERS, KAFKA_TOPIC,
// WORKERS, RATE_LIMIT_RATE, RATE_LIMIT_BURST, L1_TTL_MS, L1_SIZE.
'use strict';
const cluster = require('node:cluster');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

const env = (name, def) => process.env[name] ?? def;
const workers = Number(env('WORKERS', '0'));

if (workers > 0 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (w, code, signal) => {
    if (!shuttingDown) cluster.fork();
  });
  let shuttingDown = false;
  process.on('SIGTERM', () => {
    shuttingDown = true;
    for (const id in cluster.workers) cluster.workers[id].process.kill('SIGTERM');
  });
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

async function main() {
  const express = require('express');
  const Redis = require('ioredis');
  const { Kafka, logLevel } = require('kafkajs');

  const redis = new Redis({ host: env('REDIS_HOST', '127.0.0.1'), port: Number(env('REDIS_PORT', '6379')), enableAutoPipelining: true });
  redis.defineCommand('gcra', {
    numberOfKeys: 1,
    lua: fs.readFileSync(path.join(__dirname, '../../apps/gateway/internal/ratelimit/gcra.lua'), 'utf8'),
  });
  const kafka = new Kafka({ clientId: 'node-reference', brokers: env('KAFKA_BROKERS', '127.0.0.1:9092').split(','), logLevel: logLevel.ERROR });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const topic = env('KAFKA_TOPIC', 'registrations');

  const rate = Number(env('RATE_LIMIT_RATE', '100'));
  const burst = Number(env('RATE_LIMIT_BURST', '20'));
  const intervalUs = Math.floor(1e6 / rate);
  const l1 = new Map();
  const l1Size = Number(env('L1_SIZE', '10000'));
  const l1TTL = Number(env('L1_TTL_MS', '1000'));

  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '1mb' }));
  app.use(async (req, res, next) => {
    try {
      const [allowed, remaining, retryAfterUs] = await redis.gcra('rl:{' + req.ip + '}', intervalUs, burst, 1);
      res.set('RateLimit-Limit', String(burst));
      res.set('RateLimit-Remaining', String(remaining));
      if (!allowed) {
        res.set('Retry-After', String(Math.max(1, Math.ceil(retryAfterUs / 1e6))));
        return res.status(429).json({ error: 'rate limit exceeded' });
      }
      next();
    } catch (err) {
      next(); // fail open, as the Go gateway does when Redis is down
    }
  });

  app.post('/register', async (req, res) => {
    const { email, name, password } = req.body || {};
    const fields = {};
    if (typeof email !== 'string' || !email.includes('@')) fields.email = 'must be an email address';
    if (typeof name !== 'string' || name.length === 0) fields.name = 'required';
    if (typeof password !== 'string' || password.length < 8) fields.password = 'at least 8 characters';
    if (Object.keys(fields).length) return res.status(400).json({ message: 'validation failed', fields });
    const requestId = crypto.randomUUID();
    const key = email.trim().toLowerCase();
    try {
      await producer.send({
        topic,
        acks: -1,
        messages: [{ key, value: JSON.stringify({ request_id: requestId, email: key, name, password }), headers: { 'idempotency-key': requestId } }],
      });
    } catch (err) {
      res.set('Retry-After', '1');
      return res.status(503).json({ error: 'registration queue unavailable' });
    }
    res.status(202).json({ status: 'accepted', request_id: requestId });
  });

  app.get('/users/:id', async (req, res) => {
    const id = req.params.id;
    const now = Date.now();
    const hit = l1.get(id);
    if (hit && hit.until > now) {
      res.set('X-Cache', 'l1');
      return res.type('application/json').send(hit.value);
    }
    const raw = await redis.get('user:{' + id + '}');
    if (raw === null) return res.status(404).json({ error: 'user not found' });
    const value = JSON.stringify(JSON.parse(raw).v);
    if (l1.size >= l1Size) l1.delete(l1.keys().next().value);
    l1.set(id, { value, until: now + l1TTL });
    res.set('X-Cache', 'l2');
    res.type('application/json').send(value);
  });

  app.get('/healthz', (req, res) => res.send('ok'));

  const server = app.listen(Number(env('PORT', '3000')), '127.0.0.1');
  process.on('SIGTERM', () => {
    server.close(async () => {
      await producer.disconnect();
      redis.disconnect();
      process.exit(0);
    });
  });
}
