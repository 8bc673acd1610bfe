/**
 * One round-trip measurement, as in driftdb 1.0.12 (`driftdb/dist/latency`): started when created, finished by
 * `receivedResponse()`. `DbConnection.testLatency()` measures with ping/pong itself; this class is kept for apps that
 * import it.
 */
export class LatencyTest {
  private startTime: number
  private endTime: number | null = null
  private signal: Promise<void>
  private resolve: () => void = () => {}

  constructor() {
    this.startTime = performance.now()
    this.signal = new Promise<void>((resolve) => {
      this.resolve = resolve
    })
  }

  receivedResponse(): void {
    this.endTime = performance.now()
    this.resolve()
  }

  /** Milliseconds from creation to `receivedResponse()`. */
  async result(): Promise<number> {
    await this.signal
    return (this.endTime ?? performance.now()) - this.startTime
  }
}
