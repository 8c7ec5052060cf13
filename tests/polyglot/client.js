'use strict';
// Polyglot guard: a Node client built from the .proto files alone (no
// generated code) drives the Python servers. If the contract stops being
// usable from another language, this fails.
//
// Usage: node tests/polyglot/client.js <executor host:port> <memory host:port>
// TLS, as the attune CLI: ATTUNE_TLS_CA (PEM file of the CAs to trust) turns
// it on; ATTUNE_TLS_CERT and ATTUNE_TLS_KEY add a client certificate (mutual
// TLS); ATTUNE_TLS_SERVER_NAME is the name the servers' certificates carry.
// Success: one JSON line {"ok":true,"run_id":...,"checks":[...]} on stdout, exit 0.
// Failure: the reason on stderr, exit 1.

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'protos');
const PROTO_FILES = [
  'attune/common/v1/common.proto',
  'attune/executor/v1/executor.proto',
  'attune/memory/v1/memory.proto',
];
const TEMPLATE_ID = 'python_package_publish';
const PACKAGE_NAME = 'polyglot-guard';
// A simulated run takes well under a second; the margin is for slow CI.
const RUN_DEADLINE_MS = 30000;
const CALL_DEADLINE_MS = 10000;
const GRPC_NOT_FOUND = 5;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function deadline(ms) {
  return new Date(Date.now() + ms);
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: deadline(CALL_DEADLINE_MS) }, (error, response) => {
      if (error) {
        error.message = `${method}: ${error.message}`;
        reject(error);
      } else {
        resolve(response);
      }
    });
  });
}

function collect(stream, method) {
  return new Promise((resolve, reject) => {
    const events = [];
    stream.on('data', (event) => events.push(event));
    stream.on('error', (error) => {
      error.message = `${method}: ${error.message}`;
      reject(error);
    });
    stream.on('end', () => resolve(events));
  });
}

function loadServices() {
  // The options the brief fixes: proto field names as written, enums as
  // their names, 64-bit integers as strings (no precision loss), defaults
  // filled in, and a virtual field naming the set member of each oneof.
  const definition = protoLoader.loadSync(PROTO_FILES, {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    enums: String,
    longs: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition);
  return {
    ExecutorService: loaded.attune.executor.v1.ExecutorService,
    MemoryService: loaded.attune.memory.v1.MemoryService,
  };
}

async function runWorkflow(executor) {
  const call = executor.RunWorkflow(
    { template_id: TEMPLATE_ID, answers: { package_name: { string_value: PACKAGE_NAME } } },
    { deadline: deadline(RUN_DEADLINE_MS) },
  );
  const events = await collect(call, 'RunWorkflow');
  check(events.length > 0, 'RunWorkflow: the stream ended without events');

  const last = events[events.length - 1];
  check(last.event === 'run_finished', `RunWorkflow: last event is ${last.event}, not run_finished`);
  const run = last.run_finished.run;
  const runId = run.run_id;
  check(runId, 'RunWorkflow: run_finished carries no run_id');
  check(run.template_id === TEMPLATE_ID, `RunWorkflow: run template_id is ${run.template_id}`);

  // Every event belongs to this run and sequences count up from 1 (int64,
  // so they arrive as strings with longs: String).
  events.forEach((event, index) => {
    check(event.run_id === runId, `RunWorkflow: event ${index + 1} has run_id ${event.run_id}`);
    check(
      event.sequence === String(index + 1),
      `RunWorkflow: event ${index + 1} has sequence ${event.sequence}`,
    );
  });

  // The answer comes back through map<string, FormValue> with its oneof
  // member named, which is what a non-Python client relies on.
  const answer = run.answers.package_name;
  check(
    answer && answer.kind === 'string_value' && answer.string_value === PACKAGE_NAME,
    `RunWorkflow: run answers.package_name is ${JSON.stringify(answer)}`,
  );

  const kinds = events.map((event) => event.event);
  check(kinds.includes('run_persisted'), `RunWorkflow: no run_persisted event in ${kinds}`);
  const stored = events.find((event) => event.event === 'pattern_stored');
  check(stored, `RunWorkflow: no pattern_stored event in ${kinds}`);
  check(
    stored.pattern_stored.pattern_id === runId,
    `RunWorkflow: pattern_stored.pattern_id ${stored.pattern_stored.pattern_id} is not ${runId}`,
  );
  return runId;
}

async function searchRuns(executor, runId) {
  const response = await unary(executor, 'SearchRuns', { query: 'python package publish' });
  check(
    response.source === 'SEARCH_SOURCE_MEMORY',
    `SearchRuns: source is ${response.source} (degraded_reason: ${response.degraded_reason})`,
  );
  const ids = response.hits.map((hit) => hit.run_id);
  check(ids.includes(runId), `SearchRuns: run ${runId} not among hits ${ids}`);
}

async function getPattern(memory, runId) {
  const response = await unary(memory, 'GetPattern', { namespace: 'default', pattern_id: runId });
  const pattern = response.pattern;
  check(pattern, 'GetPattern: no pattern in the response');
  check(pattern.id === runId, `GetPattern: pattern id ${pattern.id} is not ${runId}`);
  check(pattern.run_id === runId, `GetPattern: pattern run_id ${pattern.run_id} is not ${runId}`);
  check(
    pattern.template_id === TEMPLATE_ID,
    `GetPattern: pattern template_id is ${pattern.template_id}`,
  );
}

async function searchPatterns(memory, runId) {
  const response = await unary(memory, 'SearchPatterns', { namespace: 'default', query: 'publish' });
  const ids = response.results.map((result) => result.pattern.id);
  check(ids.includes(runId), `SearchPatterns: run ${runId} not among results ${ids}`);
}

async function getTemplateNotFound(executor) {
  let response;
  try {
    response = await unary(executor, 'GetTemplate', { template_id: 'nope' });
  } catch (error) {
    check(
      error.code === GRPC_NOT_FOUND,
      `GetTemplate("nope"): code ${error.code}, expected ${GRPC_NOT_FOUND} (NOT_FOUND): ${error.message}`,
    );
    return;
  }
  const shown = JSON.stringify(response).slice(0, 200);
  throw new Error(`GetTemplate("nope"): succeeded, expected NOT_FOUND; got ${shown}`);
}

function transport(env) {
  // Plaintext unless a CA is given; the options name the server to verify.
  if (!env.ATTUNE_TLS_CA) return { credentials: grpc.credentials.createInsecure(), options: {} };
  check(!env.ATTUNE_TLS_CERT === !env.ATTUNE_TLS_KEY, 'set ATTUNE_TLS_CERT and ATTUNE_TLS_KEY together');
  const read = (name) => (env[name] ? fs.readFileSync(env[name]) : null);
  const credentials = grpc.credentials.createSsl(
    read('ATTUNE_TLS_CA'),
    read('ATTUNE_TLS_KEY'),
    read('ATTUNE_TLS_CERT'),
  );
  const name = env.ATTUNE_TLS_SERVER_NAME;
  const options = name ? { 'grpc.ssl_target_name_override': name, 'grpc.default_authority': name } : {};
  return { credentials, options };
}

async function main(argv) {
  check(argv.length === 2, 'usage: node client.js <executor host:port> <memory host:port>');
  const [executorAddress, memoryAddress] = argv;
  const { ExecutorService, MemoryService } = loadServices();
  const { credentials, options } = transport(process.env);
  const executor = new ExecutorService(executorAddress, credentials, options);
  const memory = new MemoryService(memoryAddress, credentials, options);
  const checks = [];
  try {
    const runId = await runWorkflow(executor);
    checks.push('run_workflow');
    await searchRuns(executor, runId);
    checks.push('search_runs');
    await getPattern(memory, runId);
    checks.push('get_pattern');
    await searchPatterns(memory, runId);
    checks.push('search_patterns');
    await getTemplateNotFound(executor);
    checks.push('get_template_not_found');
    return { ok: true, run_id: runId, checks };
  } finally {
    executor.close();
    memory.close();
  }
}

main(process.argv.slice(2)).then(
  // Exit from the write callback so the line is flushed and no lingering
  // handle keeps the process alive.
  (result) => process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0)),
  (error) => process.stderr.write(`polyglot client failed: ${error.message}\n`, () => process.exit(1)),
);
