/**
 * Opting in to the server's extended message shapes.
 *
 * A client that does not ask gets exactly the reference DriftDB server's messages (what the published 1.0.12 client
 * expects). This client asks, with `ext=true` on the WebSocket and HTTP send URLs, and so also gets `epoch` on each
 * `init` (to detect a reset history) and `volatile` on volatile pushes. WebTransport always carries them.
 */
export function withExtensions(url: string): string {
  try {
    const u = new URL(url)
    u.searchParams.set('ext', 'true')
    return u.toString()
  } catch {
    // Not an absolute URL (a relative HTTP send URL, say): append the parameter unless it is already there.
    return /[?&]ext=true(&|$)/.test(url) ? url : `${url}${url.includes('?') ? '&' : '?'}ext=true`
  }
}
