/** A list of listeners for one kind of event. */
export class EventListener<T> {
  listeners: Array<(event: T) => void> = []

  addListener(listener: (event: T) => void): void {
    this.listeners.push(listener)
  }

  removeListener(listener: (event: T) => void): void {
    this.listeners = this.listeners.filter((l) => l !== listener)
  }

  dispatch(event: T): void {
    for (const l of [...this.listeners]) l(event)
  }
}

/** Listeners grouped by key. */
export class SubscriptionManager<T> {
  subscriptions = new Map<string, EventListener<T>>()

  subscribe(key: string, listener: (event: T) => void): void {
    let subscription = this.subscriptions.get(key)
    if (!subscription) {
      subscription = new EventListener<T>()
      this.subscriptions.set(key, subscription)
    }
    subscription.addListener(listener)
  }

  unsubscribe(key: string, listener: (event: T) => void): void {
    const subscription = this.subscriptions.get(key)
    if (!subscription) return
    subscription.removeListener(listener)
    if (subscription.listeners.length === 0) this.subscriptions.delete(key)
  }

  listeners(key: string): Array<(event: T) => void> {
    return this.subscriptions.get(key)?.listeners ?? []
  }

  dispatch(key: string, event: T): void {
    this.subscriptions.get(key)?.dispatch(event)
  }
}
