// Debian's Chromium, headless, through playwright-core: the one way the browser tests start it.
// The background-networking flags keep it from calling out (this machine's network is closed).
import { chromium } from 'playwright-core';

export function launchChromium(userDataDir, viewport, extraArgs = []) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
      ...extraArgs,
    ],
    viewport,
  });
}
