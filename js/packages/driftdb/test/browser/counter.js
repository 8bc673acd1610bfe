// The auth test's page: the room's shared counter, a +1 button, and the last error the server sent. `start` connects
// with a room token; the test gives a writer page and a read-only page their tokens.
import { Api, DbConnection } from 'driftdb'

document.body.innerHTML = '<p>Count: <span id="count">0</span></p><button id="inc">+1</button><p id="error"></p>'

window.start = async (api, roomId, token) => {
  const room = await new Api(api).getRoom(roomId, token)
  const db = new DbConnection()
  let count = 0
  db.messageListener.addListener((m) => {
    if (m.type === 'error') document.getElementById('error').textContent = m.message
  })
  db.subscribe('counter', (e) => {
    count = e.value
    document.getElementById('count').textContent = String(count)
  })
  document.getElementById('inc').onclick = () =>
    db.send({ type: 'push', key: 'counter', value: count + 1, action: { type: 'replace' } })
  await db.connect({ room, token })
  return db.transport
}
