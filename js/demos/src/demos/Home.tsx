import React from 'react'
import { DEMOS } from './registry'

export function Home(): React.ReactElement {
  return (
    <div className="home">
      <div className="hero">
        <h1>Real-time state for the browser, from one binary.</h1>
        <p>
          Every tab that opens this page with the same room link shares its state within milliseconds, over WebTransport
          when the browser has it and WebSocket otherwise. Open a demo, then open the share link in a second tab (or
          scan the QR code with your phone).
        </p>
      </div>
      <ul className="cards">
        {DEMOS.map((d) => (
          <li key={d.route}>
            <a className="card demo-card" href={`#${d.route}`} data-testid={`link-${d.route.slice(1)}`}>
              <h2>{d.title}</h2>
              <p className="muted">{d.blurb}</p>
              <span className="go">Open →</span>
            </a>
          </li>
        ))}
      </ul>
    </div>
  )
}
