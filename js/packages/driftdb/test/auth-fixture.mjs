// The auth tests' server: `driftdb serve --auth-key-file` with an Ed25519 key made by `jose`, and an admin token.
// Tokens are issued the way docs/auth.md tells a backend to.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import { startServer } from './helpers.mjs'

export const ADMIN_TOKEN = 'the-admin-token'
const KID = 'test-key-1'

/**
 * Starts the server before the file's first test and stops it after the last. Returns `{server, issue}`, set once
 * started: `issue(room, can, ttlSeconds = 600)` signs a token as the app's backend would.
 */
export function useAuthServer() {
  const env = { server: null, issue: null }
  let dir
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'driftdb-auth-js-'))
    const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true })
    const publicJwk = { ...(await exportJWK(publicKey)), kid: KID, alg: 'EdDSA' }
    await writeFile(join(dir, 'public.jwk'), JSON.stringify(publicJwk))
    await writeFile(join(dir, 'admin'), ADMIN_TOKEN)
    env.issue = (room, can, ttlSeconds = 600) =>
      new SignJWT({ room, can })
        .setProtectedHeader({ alg: 'EdDSA', kid: KID })
        .setSubject('tester')
        .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
        .sign(privateKey)
    env.server = await startServer({
      args: ['--webtransport', '--auth-key-file', join(dir, 'public.jwk'), '--admin-token-file', join(dir, 'admin')],
    })
  })
  after(async () => {
    await env.server?.stop()
    await rm(dir, { recursive: true, force: true })
  })
  return env
}
