import { DriftDBProvider } from 'driftdb-react'
import React, { useEffect, useMemo, useRef } from 'react'
import { DebugPanel } from './components/DebugPanel'
import { SharePanel } from './components/Share'
import { Status } from './components/Status'
import { readConfig } from './config'
import { DebugProvider } from './debug'
import { Home } from './demos/Home'
import { DEMOS } from './demos/registry'
import { IdentityProvider, useIdentity } from './identity'
import { Inspector } from './inspector/Inspector'
import { useRoute } from './router'

function Nav(props: { route: string }): React.ReactElement {
  const nav = useRef<HTMLElement | null>(null)
  // On a phone the links scroll sideways: keep the current one in view.
  useEffect(() => {
    nav.current?.querySelector('a.active')?.scrollIntoView({ block: 'nearest', inline: 'nearest' })
  }, [props.route])
  return (
    <nav className="nav" aria-label="Demos" ref={nav}>
      <a href="#/" className={props.route === '/' ? 'active' : ''}>
        Home
      </a>
      {DEMOS.map((d) => (
        <a key={d.route} href={`#${d.route}`} className={props.route === d.route ? 'active' : ''}>
          {d.title}
        </a>
      ))}
    </nav>
  )
}

function You(): React.ReactElement {
  const me = useIdentity()
  return (
    <section className="card you" aria-label="You">
      <h2>You</h2>
      <div className="you-row">
        <button
          type="button"
          className="swatch swatch-button"
          style={{ background: me.color }}
          onClick={me.nextColor}
          title="Change colour"
          aria-label="Change colour"
        />
        <input
          data-testid="my-name"
          defaultValue={me.name}
          maxLength={24}
          onChange={(e) => me.setName(e.currentTarget.value)}
          aria-label="Your name"
        />
      </div>
      <p className="muted">Your name and colour (click it to change), as others see them.</p>
    </section>
  )
}

function Shell(): React.ReactElement {
  const route = useRoute()
  if (route === '/inspect') {
    return (
      <div className="app">
        <main className="main">
          <Inspector />
        </main>
      </div>
    )
  }
  const demo = DEMOS.find((d) => d.route === route)
  const Page = demo?.component ?? Home
  return (
    <div className="app">
      <header className="topbar">
        <a className="brand" href="#/">
          <span className="logo" aria-hidden="true" />
          DriftDB <span className="muted">demos</span>
        </a>
        <Nav route={route} />
        <Status />
      </header>
      <div className="layout">
        <main className="main" data-testid={`page-${demo ? demo.route.slice(1) : 'home'}`}>
          {demo ? (
            <div className="page-title">
              <h1>{demo.title}</h1>
              <p className="muted">{demo.blurb}</p>
            </div>
          ) : null}
          <Page />
        </main>
        <aside className="side">
          <SharePanel route={route} />
          <You />
        </aside>
      </div>
      <DebugPanel />
      <footer className="footer muted">
        Served by <code>driftdb serve</code> · every tab with the same <code>?_driftdb_room=</code> shares the room
      </footer>
    </div>
  )
}

export function App(): React.ReactElement {
  const config = useMemo(() => readConfig(), [])
  return (
    <DriftDBProvider api={config.api} transport={config.transport}>
      <IdentityProvider>
        <DebugProvider>
          <Shell />
        </DebugProvider>
      </IdentityProvider>
    </DriftDBProvider>
  )
}
