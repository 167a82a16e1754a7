'use strict';
// The Node.js contender of walnotify's benchmark: pg-logical-replication's PgoutputPlugin
// (protocol version 1), with the library's default settings, reading one slot.
//
//   node stream.js --slot S --publication P --endpos LSN
//       stream until a commit or keepalive at or past LSN, then exit 0
//   node stream.js --slot S --publication P --latency-column ts_us --latency-out FILE
//       stream until SIGTERM; for every insert, the time the row was parsed minus the row's
//       microsecond timestamp column; at SIGTERM write count/p50/p95/p99/max (µs) to FILE
//
// The connection comes from the PG* environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE).
const fs = require('fs');
const { performance } = require('perf_hooks');
const { LogicalReplicationService, PgoutputPlugin } = require('pg-logical-replication');

function die(message) {
  process.stderr.write(`stream.js: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    const value = argv[i + 1];
    if (!key.startsWith('--') || value === undefined) die(`bad argument ${key}`);
    args[key.slice(2)] = value;
  }
  if (!args.slot || !args.publication) die('--slot and --publication are required');
  if (!args.endpos && !args['latency-out']) die('--endpos or --latency-out is required');
  return args;
}

function lsnToBigInt(lsn) {
  const m = /^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)$/.exec(lsn || '');
  if (!m) return null;
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

function percentile(sorted, pct) {
  const rank = Math.ceil((sorted.length * pct) / 100);
  return sorted[Math.max(rank, 1) - 1];
}

function writeLatency(file, samples, missing) {
  const sorted = Float64Array.from(samples).sort();
  let text = `count ${sorted.length}\nmissing ${missing}\ndropped 0\n`;
  if (sorted.length > 0) {
    text += `p50_us ${Math.round(percentile(sorted, 50))}\n`;
    text += `p95_us ${Math.round(percentile(sorted, 95))}\n`;
    text += `p99_us ${Math.round(percentile(sorted, 99))}\n`;
    text += `max_us ${Math.round(sorted[sorted.length - 1])}\n`;
  }
  fs.writeFileSync(file, text);
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const endpos = args.endpos ? lsnToBigInt(args.endpos) : null;
  if (args.endpos && endpos === null) die(`bad LSN ${args.endpos}`);
  const column = args['latency-column'] || 'ts_us';
  const samples = [];
  let missing = 0;
  let rows = 0;
  let finished = false;

  const service = new LogicalReplicationService({});
  const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [args.publication] });

  const finish = (code) => {
    if (finished) return;
    finished = true;
    if (args['latency-out']) writeLatency(args['latency-out'], samples, missing);
    service.stop().finally(() => process.exit(code));
  };

  service.on('data', (lsn, msg) => {
    if (msg.tag === 'insert') {
      rows++;
      if (args['latency-out']) {
        const arrivedUs = (performance.timeOrigin + performance.now()) * 1000;
        const written = msg.new ? Number(msg.new[column]) : NaN;
        if (Number.isFinite(written)) samples.push(arrivedUs - written);
        else missing++;
      }
    } else if (msg.tag === 'commit' && endpos !== null) {
      if (lsnToBigInt(msg.commitEndLsn) >= endpos) finish(0);
    }
  });
  service.on('heartbeat', (lsn, timestamp, shouldRespond) => {
    if (endpos !== null && lsnToBigInt(lsn) >= endpos) {
      finish(0);
      return;
    }
    if (shouldRespond) service.acknowledge(lsn);
  });
  service.on('error', (e) => die(`replication failed: ${e && e.message ? e.message : e}`));
  process.on('SIGTERM', () => finish(0));
  process.on('SIGINT', () => finish(0));

  service.subscribe(plugin, args.slot).catch((e) => {
    if (!finished) die(`replication failed: ${e && e.message ? e.message : e}`);
  });
  process.on('exit', () => {
    if (process.env.BENCH_VERBOSE) process.stderr.write(`stream.js: ${rows} inserts\n`);
  });
}

main();
