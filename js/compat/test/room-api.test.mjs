// Room API (POST /new, GET /room/ID) through the reference `Api` class.

import { assert, useServer, withTimeout } from './helpers.mjs'

const serverTest = useServer()

serverTest('newRoom() returns the room id and its WebSocket and HTTP URLs', async (scope) => {
  const room = await scope.newRoom()
  assert.equal(typeof room.room, 'string')
  assert.ok(room.room.length > 0, 'room id is empty')

  // The server was reached at 127.0.0.1:PORT, so the URLs must name that host and port.
  const host = new URL(scope.server.url).host
  assert.equal(room.socket_url, `ws://${host}/room/${room.room}/connect`)
  assert.equal(room.http_url, `http://${host}/room/${room.room}/send`)
})

serverTest('getRoom(id) returns the same room information', async (scope) => {
  const room = await scope.newRoom()
  const fetched = await withTimeout(scope.api.getRoom(room.room), 'GET /room/ID')
  assert.deepEqual(fetched, room)
})

serverTest('every new room gets a distinct id', async (scope) => {
  const rooms = await Promise.all(Array.from({ length: 10 }, () => scope.newRoom()))
  const ids = new Set(rooms.map((room) => room.room))
  assert.equal(ids.size, rooms.length, `duplicate room ids: ${rooms.map((r) => r.room)}`)
})
