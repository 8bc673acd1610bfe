/** Reconnection delays: exponential growth with jitter, capped. */
export interface BackoffOptions {
  /** Delay before the first retry, in ms (default 250). */
  initialMs?: number
  /** Largest delay, in ms (default 10 000). */
  maxMs?: number
  /** Growth factor per failed attempt (default 2). */
  factor?: number
  /**
   * Fraction of the delay that is randomised (default 0.5): the delay is uniformly drawn from
   * `[d * (1 - jitter), d]` where `d` is the capped exponential delay.
   */
  jitter?: number
}

/**
 * The delay before reconnection attempt number `attempt` (0 for the first retry).
 *
 * @param random A source of uniform numbers in [0, 1) (for tests).
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initial = options.initialMs ?? 250
  const max = options.maxMs ?? 10_000
  const factor = options.factor ?? 2
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5))
  const capped = Math.min(max, initial * Math.pow(factor, Math.max(0, attempt)))
  return capped * (1 - jitter * random())
}
