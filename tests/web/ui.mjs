// The dashboard in headless Chromium, driven by playwright-core:
//   node ui.mjs URL VM SCREENSHOT [SNAP]
// VM must be Running; SNAP, a Ready disk-only snapshot of it, is listed
// under Snapshots and reverted to from there.  Prints "ok - ..." / "not ok - ..." lines (the
// shell test numbers them) and exits non-zero when any check failed.
import { createRequire } from 'node:module';

const [url, vm, shot, snap] = process.argv.slice(2);
const npmDir = process.env.HYPERSDK_NPM_CACHE || '/var/cache/hypersdk/npm';
const require = createRequire(npmDir + '/node_modules/');
const { chromium } = require('playwright-core');

let failed = 0;
function check(desc, cond, detail) {
  console.log((cond ? 'ok - ' : 'not ok - ') + desc);
  if (!cond) {
    failed++;
    if (detail) console.log('  ' + detail);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.setDefaultTimeout(30000);

  const resp = await page.goto(url + '/k8s/vms');
  check('the page loads (HTTP ' + resp.status() + ')', resp.ok());
  const row = `#rows-running tr[data-vm="${vm}"]`;
  await page.waitForSelector(row);
  const names = await page.$$eval('#rows-running tr, #rows-stopped tr', (rs) => rs.map((r) => r.dataset.vm));
  check('it lists the VMs (' + names.length + ')', names.includes(vm), names.join(' '));
  check(vm + ' shows Running', (await page.textContent(row + ' .phase')) === 'Running');
  const cpus = await page.textContent('#t-cpus');
  check('resource totals are filled (' + cpus + ' vCPUs)', Number(cpus) >= 1);
  const badge = await page.waitForSelector('#grid .badge', { timeout: 10000 })
    .then((b) => b.textContent(), () => '');
  check('the header has a grid badge (' + badge + ')', / site-1 180 gCO2\/kWh$/.test(badge), badge);
  await page.waitForSelector('#live:not(.off)', { timeout: 10000 }).catch(() => {});
  check('live updates are connected', (await page.textContent('#live')) === 'live');

  await page.click(row + ' button[data-action="stop"]');
  // The guest ignores ACPI, so the stop takes --stop-timeout: long enough
  // to see it in flight, from /api/k8s/operations and the row.
  const op = await page.waitForSelector(`#ops-list li:has-text("stop ${vm}")`, { timeout: 5000 })
    .then(() => true, () => false);
  check('the stop shows under Operations while in flight', op);
  if (op) await page.screenshot({ path: shot.replace(/\.png$/, '-in-flight.png') });
  const stopped = `#rows-stopped tr[data-vm="${vm}"]`;
  await page.waitForSelector(stopped, { state: 'attached', timeout: 60000 });
  check('a click on stop moves ' + vm + ' to Stopped VMs', true);
  await page.click('button[data-tab="stopped"]');
  check('the Stopped tab shows it Stopped',
    (await page.textContent(stopped + ' .phase')) === 'Stopped');
  check('its start button is enabled again',
    await page.isEnabled(stopped + ' button[data-action="start"]'));
  await page.screenshot({ path: shot, fullPage: true });
  check('no console errors', errors.length === 0, errors.join(' | '));

  // Clone asks for the target in a dialog and sends a ctl message; the
  // answer (done, or the daemon's error) shows in the toast.
  await page.click(stopped + ' button[data-action="clone"]');
  await page.waitForSelector('#ask[open]');
  check('clone asks for the target name', await page.isVisible('#ask-input'));
  await page.fill('#ask-input', vm + '-c');
  await page.click('#ask-ok');
  // (The stop's own toast may still be up: wait for the clone's.)
  await page.waitForFunction(() => /^clone /.test(document.getElementById('toast').textContent))
    .catch(() => {});
  const said = await page.textContent('#toast');
  check('and shows the outcome: ' + said, /^clone /.test(said));

  if (snap) {
    await page.click('button[data-tab="snapshots"]');
    const srow = `#rows-snapshots tr[data-snapshot="${snap}"]`;
    await page.waitForSelector(srow, { timeout: 10000 });
    const cells = await page.$$eval(srow + ' td', (ts) => ts.map((t) => t.textContent));
    check('the Snapshots tab lists ' + snap + ' of ' + vm + ' (' + cells.slice(0, 6).join(', ') + ')',
      cells[1] === vm && cells[2] === 'Ready' && cells[5] === 'yes');
    check('its count is in the tab', Number(await page.textContent('#c-snapshots')) >= 1);
    await page.click(srow + ' button[data-action="revert"]');
    await page.waitForSelector('#ask[open]');
    await page.click('#ask-ok');
    await page.waitForFunction((s) => document.getElementById('toast').textContent.startsWith('revert ' + s),
      snap, { timeout: 60000 }).catch(() => {});
    const rsaid = await page.textContent('#toast');
    check('Revert reverts ' + vm + ' to ' + snap + ': ' + rsaid, rsaid === 'revert ' + snap + ': done');
    const op = await page.waitForSelector('#ops-list li[data-phase="Succeeded"]:has-text("restore ' + vm + '")',
      { timeout: 10000 }).then(() => true, () => false);
    check('the finished restore operation shows under Operations', op);
    await page.screenshot({ path: shot.replace(/\.png$/, '-snapshots.png'), fullPage: true });
  }
  check('still no console errors', errors.length === 0, errors.join(' | '));
} catch (e) {
  check('browser session', false, String(e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
