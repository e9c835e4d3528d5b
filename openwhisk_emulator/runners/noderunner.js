// The nodejs action runner: started by the emulator's zygote with the control socket on fd 3.
// Same protocol as the python runner (see zygote.py): JSON lines in; a JSON header line (plus raw
// body) out. stdout/stderr (fds 1 and 2) belong to the action; results never travel there.
'use strict';

const net = require('net');
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const control = new net.Socket({ fd: 3, readable: true, writable: true });
let entry = null;
let sentinel = '';
let pending = '';
let busy = Promise.resolve();

function send(header, body) {
  control.write(JSON.stringify(header) + '\n');
  if (body !== undefined) {
    control.write(body);
  }
}

// Under back-pressure node queues stdout/stderr writes, so the sentinel goes through the same
// streams (after what the action wrote) and the reply waits until both are flushed.
function writeSentinels(then) {
  let pending = 2;
  let called = false;
  const finish = () => {
    if (!called && --pending <= 0) {
      called = true;
      then();
    }
  };
  for (const stream of [process.stdout, process.stderr]) {
    try {
      stream.write(sentinel, finish);
    } catch (e) {
      finish(); // the action closed its own stdio; the emulator stops waiting at EOF
    }
  }
  // A stream the action destroyed may never call back; the reply must not wait for it.
  setTimeout(() => {
    pending = 0;
    finish();
  }, 1000).unref();
}

// What serialize-error gives OpenWhisk for a rejected Promise: an Error's own fields plus
// name, message and stack; any other value as it is.
function serializeError(error) {
  if (!(error instanceof Error)) {
    return error;
  }
  const out = {};
  for (const key of Object.keys(error)) {
    out[key] = error[key];
  }
  out.name = error.name;
  out.message = error.message;
  out.stack = error.stack;
  return out;
}

function load(code, mainName) {
  if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(mainName)) {
    throw new Error(`Action entrypoint '${mainName}' is not a valid function name.`);
  }
  const module = { exports: {} };
  const localRequire = createRequire(path.join(process.cwd(), 'main.js'));
  // As OpenWhisk's runner: the entry is the named function, else module.exports / exports.
  const factory = new Function('module', 'exports', 'require',
    `${code}\n;try { return ${mainName}; } catch (e) {` +
    ` if (e instanceof ReferenceError) { return undefined; } throw e; }`);
  let handler = factory(module, module.exports, localRequire);
  if (typeof handler !== 'function') {
    const exported = module.exports;
    if (exported && typeof exported[mainName] === 'function') {
      handler = exported[mainName];
    } else if (typeof exported === 'function') {
      handler = exported;
    }
  }
  if (typeof handler !== 'function') {
    throw new Error(`Action entrypoint '${mainName}' is not a function.`);
  }
  return handler;
}

// A zip action, unzipped by the emulator: the module package.json's "main" names (else index.js),
// and the entry among its exports, as the nodejs runtime finds it.
function loadDir(dir, mainName) {
  let file = 'index.js';
  const manifest = path.join(dir, 'package.json');
  if (fs.existsSync(manifest)) {
    file = JSON.parse(fs.readFileSync(manifest, 'utf8')).main || file;
  }
  process.chdir(dir);
  const exported = require(path.resolve(dir, file));
  const handler = exported && typeof exported[mainName] === 'function'
    ? exported[mainName] : exported;
  if (typeof handler !== 'function') {
    throw new Error(`Action entrypoint '${mainName}' is not a function.`);
  }
  return handler;
}

function init(message) {
  sentinel = message.sentinel + '\n';
  try {
    entry = message.dir ? loadDir(message.dir, message.main || 'main')
      : load(message.code, message.main || 'main');
  } catch (e) {
    console.error('Error during initialization:', e);
    writeSentinels(() => {
      send({ ok: false, error: String(e) });
      control.end();
    });
    return;
  }
  send({ ok: true });
}

function finish(result) {
  let text;
  if (result === undefined) {
    text = '{}';
  } else {
    try {
      text = JSON.stringify(result);
    } catch (e) {
      text = undefined;
    }
    if (text === undefined) {
      text = String(result);
    }
  }
  const body = Buffer.from(text, 'utf8');
  writeSentinels(() => send({ status: 'result', size: body.length }, body));
}

async function run(message) {
  Object.assign(process.env, message.env || {});
  let returned;
  try {
    returned = entry(message.value || {});
  } catch (e) {
    // A synchronous throw is what the nodejs runtime answers with a 500, a developer error.
    console.error(e);
    writeSentinels(() => send({ status: 'developer', error: 'An error has occurred: ' + e }));
    return;
  }
  let result;
  try {
    result = await returned;
  } catch (error) {
    result = { error: error ? serializeError(error) : {} };
  }
  finish(result);
}

function handle(line) {
  const message = JSON.parse(line);
  if (message.op === 'init') {
    init(message);
  } else {
    busy = busy.then(() => run(message));
  }
}

control.setEncoding('utf8');
control.on('data', (chunk) => {
  pending += chunk;
  let index;
  while ((index = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, index);
    pending = pending.slice(index + 1);
    if (line) {
      handle(line);
    }
  }
});
control.on('end', () => process.exit(0));
control.on('error', () => process.exit(0));
