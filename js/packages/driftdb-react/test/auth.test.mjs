// The provider passes room tokens through: against a real server with `--auth-key-file` (an HS256 key made with
// `driftdb key`, tokens from `driftdb token`), `getToken` serves the room lookup and the connection, and a `token` prop
// works alike; a read-only token's writes are refused with an error.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import React from 'react'
import TestRenderer, { act } from 'react-test-renderer'
import { WebSocket } from 'ws'
import { Api } from 'driftdb'
import { startServer } from '../../../test-support/server.mjs'
import { MemoryStorage } from '../../../test-support/storage.mjs'
import { sleep } from '../../../test-support/wait.mjs'
import { DriftDBProvider, useDatabase, useSharedState } from '../dist/index.js'

globalThis.IS_REACT_ACT_ENVIRONMENT = true
globalThis.WebSocket = WebSocket
const h = React.createElement
const BIN = process.env.DRIFTDB_BIN || fileURLToPath(new URL('../../../../target/debug/driftdb', import.meta.url))

let dir
let server

/** Runs the `driftdb` CLI and returns its output. */
function driftdb(...args) {
  const run = spawnSync(BIN, args, { encoding: 'utf8' })
  assert.equal(run.status, 0, run.stderr)
  return run.stdout.trim()
}

const token = (room, can) => driftdb('token', '--key-file', join(dir, 'k.jwk'), '--room', room, '--can', can)

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'driftdb-react-auth-'))
  driftdb('key', '--kid', 'k', '--alg', 'hs256', '--dir', dir)
  server = await startServer({ args: ['--auth-key-file', join(dir, 'k.jwk')] })
})

after(async () => {
  await server?.stop()
  await rm(dir, { recursive: true, force: true })
})

async function until(check, what, timeout = 5_000) {
  const deadline = Date.now() + timeout
  for (;;) {
    try {
      check()
      return
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${e.message}`)
    }
    await act(async () => {
      await sleep(20)
    })
  }
}

function Text({ out }) {
  const [text, setText] = useSharedState('text', 'initial')
  const db = useDatabase()
  Object.assign(out, { text, setText, db })
  return h('p', null, text)
}

function mount(props) {
  globalThis.sessionStorage = new MemoryStorage()
  const out = {}
  let renderer
  act(() => {
    renderer = TestRenderer.create(h(DriftDBProvider, { api: server.url, ...props }, h(Text, { out })))
  })
  return { out, unmount: () => act(() => renderer.unmount()) }
}

test('getToken and token props reach the room lookup and the connection', async () => {
  const room = 'react-auth-1'
  const asked = []
  const getToken = async (id) => {
    asked.push(id)
    return token(id, 'read,write')
  }
  const writer = mount({ room, getToken })
  const reader = mount({ room, token: token(room, 'read') })
  try {
    await until(() => assert.equal(writer.out.db.status.connected && reader.out.db.status.connected, true), 'both up')
    assert.ok(asked.length >= 2 && asked.every((id) => id === room), `asked for the room: ${asked}`)
    act(() => writer.out.setText('from the writer'))
    await until(() => assert.equal(reader.out.text, 'from the writer'), 'the reader sees the write')
    const errors = []
    reader.out.db.messageListener.addListener((m) => m.type === 'error' && errors.push(m.message))
    act(() => reader.out.setText('from the reader'))
    await until(() => assert.deepEqual(errors, ['the token lacks the `write` capability']), 'the refusal')
    await assert.rejects(new Api(server.url).getRoom(room), /401/, 'without a token the lookup is refused')
  } finally {
    writer.unmount()
    reader.unmount()
  }
})
