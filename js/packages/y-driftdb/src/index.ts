import { type DbConnection, type ResetEvent, type SequenceValue } from 'driftdb'
import { fromBase64, toBase64 } from 'lib0/buffer'
import { Observable } from 'lib0/observable'
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates } from 'y-protocols/awareness'
import * as Y from 'yjs'

/**
 * What the provider appends to the document's stream: one Yjs update (base64, so that JSON and CBOR clients store
 * the same value), and `reset` marks a compacted snapshot (every update of the stream up to its seq, merged).
 */
export interface DocEntry {
  u: string
  reset?: true
}

/** What the provider relays on the awareness key: one y-protocols awareness update (base64). */
export interface AwarenessEntry {
  a: string
}

export interface DriftDBProviderOptions {
  /** The room's connection (shared with the rest of the app). */
  db: DbConnection
  /** The DriftDB key holding the document's stream (default `yjs`); awareness relays go on `${key}/awareness`. */
  key?: string
  /** The Y.Doc to sync. */
  doc: Y.Doc
  /** An existing Awareness for `doc` (default: a new one, destroyed with the provider). */
  awareness?: Awareness
  /** Compact the stream into one snapshot once the server reports more entries than this (default 50). */
  compactAbove?: number
  /** Re-send this client's awareness state at least this often (ms), since relays may be lost (default 5 000). */
  awarenessRefreshMs?: number
}

export type ProviderEvents = {
  /** The stored stream was replayed into the document (after the subscription and after each resubscription). */
  synced: (synced: boolean) => void
  /** The connection came up or went down. */
  status: (event: { connected: boolean }) => void
}

/** A marker origin: updates applied from the stream carry it, so they are not sent back. */
const REMOTE = Symbol('y-driftdb remote')

/**
 * Syncs a `Y.Doc` through a DriftDB key.
 *
 * - Every local update is appended to the key's stream as it happens; the stream replays the document to late
 *   joiners and after a reload.
 * - Nothing local is lost while offline or in flight: after every `init` (the first subscription and the
 *   resubscription that follows each reconnection) the provider sends the part of the document the stream lacks,
 *   computed from the stream's own state vector. Yjs updates are idempotent, so a resend never applies twice.
 * - Compaction: when the server reports the stream above `compactAbove` entries, the provider replaces every entry
 *   up to the last seq it received with one snapshot, the merge of exactly those entries. Entries after that seq
 *   are kept by the server, so a compaction never drops an update, and concurrent compactions by several clients
 *   are harmless (each snapshot holds all it replaces).
 * - Awareness (cursors, selections, names) goes out as volatile relays (datagrams over WebTransport): sent on every
 *   local change, re-sent every `awarenessRefreshMs`, and to newcomers when they first appear.
 */
export class DriftDBProvider extends Observable<keyof ProviderEvents> {
  readonly doc: Y.Doc
  readonly awareness: Awareness
  readonly key: string
  readonly awarenessKey: string
  /** True once the stored stream has been replayed on the current connection. */
  synced = false
  private readonly db: DbConnection
  private readonly compactAbove: number
  private readonly ownsAwareness: boolean
  /** The stream's entries since its last snapshot (snapshot included): what a compaction merges. */
  private stream: Uint8Array[] = []
  /** The highest seq of the stream received. */
  private lastSeq = 0
  /** The connection whose replay this provider has caught up with (0: none). */
  private syncedOn = 0
  private refresh: ReturnType<typeof setInterval> | null = null
  private destroyed = false

  constructor(options: DriftDBProviderOptions) {
    super()
    this.db = options.db
    this.doc = options.doc
    this.key = options.key ?? 'yjs'
    this.awarenessKey = `${this.key}/awareness`
    this.compactAbove = options.compactAbove ?? 50
    this.ownsAwareness = options.awareness === undefined
    this.awareness = options.awareness ?? new Awareness(this.doc)

    this.doc.on('update', this.onDocUpdate)
    this.awareness.on('update', this.onAwarenessUpdate)
    this.db.statusListener.addListener(this.onStatus)
    this.db.subscribe(this.key, this.onEntry, this.onSize, { onInit: this.onInit, onReset: this.onReset })
    this.db.subscribe(this.awarenessKey, this.onAwarenessRelay, undefined, { onInit: this.sendAwareness })
    this.refresh = setInterval(this.sendAwareness, options.awarenessRefreshMs ?? 5_000)
  }

  /** The state vector of what the stream holds (what the server has of the document). */
  private streamStateVector(): Uint8Array {
    return this.stream.length === 0 ? new Uint8Array([0]) : Y.encodeStateVectorFromUpdate(Y.mergeUpdates(this.stream))
  }

  private append(update: Uint8Array): boolean {
    const value: DocEntry = { u: toBase64(update) }
    // Not through the offline queue: what does not go out now is sent by the next onInit.
    return this.db.send({ type: 'push', action: { type: 'append' }, value, key: this.key }, { queue: false })
  }

  private onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === REMOTE || this.destroyed) return
    // Before the replay, the diff sent by onInit carries this update.
    if (this.syncedOn === this.db.connectionId) this.append(update)
  }

  private onEntry = (event: SequenceValue): void => {
    const entry = event.value as Partial<DocEntry> | null
    if (entry === null || typeof entry !== 'object' || typeof entry.u !== 'string') return
    let update: Uint8Array
    try {
      update = fromBase64(entry.u)
      Y.applyUpdate(this.doc, update, REMOTE)
    } catch (error) {
      console.warn('y-driftdb: skipping an entry that is not a Yjs update', error)
      return
    }
    if (entry.reset === true) this.stream = [update]
    else this.stream.push(update)
    this.lastSeq = Math.max(this.lastSeq, event.seq)
  }

  /** After each replay: send what the stream lacks (offline edits, updates lost in flight), once. */
  private onInit = (): void => {
    this.syncedOn = this.db.connectionId
    const missing = Y.encodeStateAsUpdate(this.doc, this.streamStateVector())
    // An update with no structs and no deletions is 2 bytes long.
    if (missing.length > 2) this.append(missing)
    if (!this.synced) {
      this.synced = true
      this.emit('synced', [true])
    }
  }

  /** The server lost the key's history (or the connection moved to another room): a replay from 0 follows. */
  private onReset = (_event: ResetEvent): void => {
    this.stream = []
    this.lastSeq = 0
  }

  private onSize = (size: number): void => {
    if (size <= this.compactAbove || this.lastSeq === 0 || this.stream.length < 2) return
    const value: DocEntry = { u: toBase64(Y.mergeUpdates(this.stream)), reset: true }
    // Never queued: after a reconnection to a new history (a server restart), a seq of the old one would compact
    // entries this snapshot does not hold.
    this.db.send(
      { type: 'push', action: { type: 'compact', seq: this.lastSeq }, value, key: this.key },
      { queue: false },
    )
  }

  private onStatus = (status: { connected: boolean }): void => {
    if (!status.connected) {
      this.synced = false
      // Peers' cursors are stale while we cannot hear them; they come back with the next relays.
      const others = [...this.awareness.getStates().keys()].filter((c) => c !== this.doc.clientID)
      removeAwarenessStates(this.awareness, others, REMOTE)
    }
    this.emit('status', [{ connected: status.connected }])
  }

  private sendAwarenessOf(clients: number[]): void {
    if (this.destroyed || clients.length === 0) return
    const value: AwarenessEntry = { a: toBase64(encodeAwarenessUpdate(this.awareness, clients)) }
    this.db.send({ type: 'push', action: { type: 'relay' }, value, key: this.awarenessKey, volatile: true })
  }

  private sendAwareness = (): void => {
    if (this.awareness.getLocalState() !== null) this.sendAwarenessOf([this.doc.clientID])
  }

  private onAwarenessUpdate = (
    change: { added: number[]; updated: number[]; removed: number[] },
    origin: unknown,
  ): void => {
    if (origin === REMOTE) {
      // Someone new: tell them about us without waiting for the refresh.
      if (change.added.some((c) => c !== this.doc.clientID)) this.sendAwareness()
      return
    }
    this.sendAwarenessOf([...change.added, ...change.updated, ...change.removed])
  }

  private onAwarenessRelay = (event: SequenceValue): void => {
    const entry = event.value as Partial<AwarenessEntry> | null
    if (entry === null || typeof entry !== 'object' || typeof entry.a !== 'string') return
    try {
      applyAwarenessUpdate(this.awareness, fromBase64(entry.a), REMOTE)
    } catch (error) {
      console.warn('y-driftdb: skipping a relay that is not an awareness update', error)
    }
  }

  /** Stops syncing: tells the peers this client's cursor is gone and unsubscribes. The doc is left as it is. */
  override destroy(): void {
    if (this.destroyed) return
    removeAwarenessStates(this.awareness, [this.doc.clientID], 'destroy')
    this.destroyed = true
    if (this.refresh !== null) clearInterval(this.refresh)
    this.doc.off('update', this.onDocUpdate)
    this.awareness.off('update', this.onAwarenessUpdate)
    this.db.statusListener.removeListener(this.onStatus)
    this.db.unsubscribe(this.key, this.onEntry, this.onSize)
    this.db.unsubscribe(this.awarenessKey, this.onAwarenessRelay)
    if (this.ownsAwareness) this.awareness.destroy()
    super.destroy()
  }
}
