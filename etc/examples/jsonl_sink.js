#!/usr/bin/env node
// A walnotify exec sink: appends every event to a JSON-lines file, dropping replays.
//
//     command = [ "node", "jsonl_sink.js", "events.jsonl" ];
//
// It speaks the protocol of walnotify's exec plugin (README, "The exec plugin"), with Node's own
// modules only. Events are appended as they come; a transaction that is aborted is cut off the
// file again; when walnotify asks for a flush, the file is fsynced and the last transaction
// ended is acknowledged (which acknowledges every one before it). The file is held by one copy
// at a time (PATH.lock), as a killed walnotify may leave one behind. At start, a torn last line
// left by a crash is cut, and the last line gives the highest identity, (commit LSN, seq),
// stored: an event that comes again is dropped.
'use strict';

const fs = require('fs');
const readline = require('readline');

const TAIL = 1 << 20; // bytes read back at start to find the last whole line

function lsnNumber(text) {
  const [high, low] = text.split('/');
  return (BigInt('0x' + high) << 32n) | BigInt('0x' + low);
}

function above(a, b) {
  return a.lsn > b.lsn || (a.lsn === b.lsn && a.seq > b.seq);
}

// fd 1 is written directly: synchronous, so a reply is out before the next line is read.
function reply(line) {
  fs.writeSync(1, line + '\n');
}

// Cuts a torn last line; returns the file's size and the identity of its last line.
function recover(fd) {
  const size = fs.fstatSync(fd).size;
  const start = Math.max(0, size - TAIL);
  const buf = Buffer.alloc(size - start);
  fs.readSync(fd, buf, 0, buf.length, start);
  const end = buf.lastIndexOf(0x0a) + 1;
  if (start + end < size) {
    fs.ftruncateSync(fd, start + end);
  }
  let stored = { lsn: 0n, seq: -1 };
  if (end > 0) {
    const from = buf.lastIndexOf(0x0a, end - 2) + 1;
    const last = JSON.parse(buf.toString('utf8', from, end - 1));
    stored = { lsn: lsnNumber(last.lsn), seq: last.seq };
  }
  return { size: start + end, stored };
}

function sleepMs(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

// The file is this process's alone: a copy left by a killed walnotify may still be finishing
// its input. PATH.lock holds the owner's pid; a lock whose owner is gone is taken over.
function lock(path) {
  const lockPath = path + '.lock';
  for (;;) {
    try {
      const fd = fs.openSync(lockPath, 'wx', 0o600);
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return lockPath;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    let owner = NaN;
    try {
      owner = parseInt(fs.readFileSync(lockPath, 'utf8'), 10);
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
    if (Number.isInteger(owner) && !alive(owner)) {
      fs.rmSync(lockPath, { force: true });
    } else {
      sleepMs(50);
    }
  }
}

function main() {
  const path = process.argv[2] || 'events.jsonl';
  const lockPath = lock(path);
  const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  let { size, stored } = recover(fd);
  let open = null; // the transaction in hand: where it started in the file, stored before it
  let unacked = null; // the commit LSN of the last transaction ended and not acknowledged
  let skipping = false; // after a reported failure, until walnotify's rewind line

  const dropOpen = () => {
    if (open !== null) {
      fs.ftruncateSync(fd, open.size);
      size = open.size;
      stored = open.stored;
      open = null;
    }
  };

  const marker = (msg) => {
    switch (msg.walnotify) {
      case 'rewind':
        skipping = false;
        dropOpen();
        return;
      case 'begin':
        if (!skipping) open = { size, stored };
        return;
      case 'commit':
        if (!skipping) {
          open = null;
          unacked = msg.lsn;
        }
        return;
      case 'abort':
        dropOpen();
        return;
      case 'flush':
        if (!skipping && unacked !== null) {
          fs.fsyncSync(fd);
          reply('ack ' + unacked);
          unacked = null;
        }
        return;
      default:
        return; // markers this sink does not know: later versions may add some
    }
  };

  const event = (line, msg) => {
    const id = { lsn: lsnNumber(msg.lsn), seq: msg.seq };
    if (skipping || !above(id, stored)) {
      return; // delivered again: stored already
    }
    try {
      size += fs.writeSync(fd, line + '\n', size);
    } catch (err) {
      // A full disk may pass: walnotify sends everything unacknowledged again.
      dropOpen();
      reply('retry ' + String(err.message).replace(/\n/g, ' '));
      skipping = true;
      return;
    }
    stored = id;
  };

  const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  input.on('line', (line) => {
    if (line.length === 0) return;
    const msg = JSON.parse(line);
    if (Object.prototype.hasOwnProperty.call(msg, 'walnotify')) {
      marker(msg);
    } else {
      event(line, msg);
    }
  });
  input.on('close', () => {
    // End of input: walnotify is stopping. Keep what is whole, and go.
    dropOpen();
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.rmSync(lockPath, { force: true });
    process.stderr.write('jsonl sink: end of input, ' + path + ' closed\n');
  });
}

main();
