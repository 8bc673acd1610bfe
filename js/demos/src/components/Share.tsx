import { RoomQRCode, useRoom } from 'driftdb-react'
import React, { useEffect, useRef, useState } from 'react'

/** The link that joins this room on this page: the room in the query string, the demo in the hash. */
export function useShareUrl(route: string): string | null {
  const room = useRoom()
  if (!room) return null
  const url = new URL(window.location.href)
  url.search = ''
  url.searchParams.set('_driftdb_room', room.room)
  url.hash = `#${route}`
  return url.toString()
}

export function SharePanel(props: { route: string }): React.ReactElement {
  const url = useShareUrl(props.route)
  const [copied, setCopied] = useState(false)
  useEffect(() => {
    if (!copied) return
    const timer = setTimeout(() => setCopied(false), 1_500)
    return () => clearTimeout(timer)
  }, [copied])

  const input = useRef<HTMLInputElement | null>(null)
  const copy = () => {
    if (!url) return
    const select = () => input.current?.select()
    // No clipboard API outside secure contexts (e.g. a LAN address over http): select the link instead.
    if (!navigator.clipboard) return select()
    navigator.clipboard.writeText(url).then(() => setCopied(true), select)
  }
  const newRoom = new URL(window.location.href)
  newRoom.searchParams.delete('_driftdb_room')

  return (
    <section className="card share" aria-label="Share this room">
      <h2>Invite someone</h2>
      <p className="muted">Open this link in another tab or on your phone: it joins the same room.</p>
      <div className="share-row">
        <input
          ref={input}
          className="share-url"
          data-testid="share-url"
          readOnly
          value={url ?? 'creating a room…'}
          onFocus={(e) => e.currentTarget.select()}
          aria-label="Share link"
        />
        <button type="button" onClick={copy} disabled={!url}>
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
      <div className="qr">{url ? <RoomQRCode url={url} size={136} /> : null}</div>
      <a className="small-link" href={newRoom.toString()}>
        Start a new room
      </a>
    </section>
  )
}
